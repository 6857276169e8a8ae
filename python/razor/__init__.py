"""razor: a RazorAttention inference engine, from Python.

    import razor
    llm = razor.LLM("smollm2-135m", kv="razor")
    out = llm.generate("The capital of France is", max_tokens=16)
    print(out["text"], llm.kv_stats()["reduction"])

``razor.LLM`` loads a GGUF file, a Hugging Face checkpoint directory or a catalogue name (fetched into
``$RAZOR_HOME``, default ``~/.cache/razor``); errors from the engine are ``razor.RazorError``.
"""
from ._razor import RazorError, built_with_cuda
from .llm import LLM
from .models import catalog, pull, resolve_model
from .profile import HeadProfile

__version__ = "0.1.0"
__all__ = ["LLM", "HeadProfile", "RazorError", "built_with_cuda", "catalog", "pull", "resolve_model", "__version__"]
