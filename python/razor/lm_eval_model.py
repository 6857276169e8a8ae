"""razor as a model of EleutherAI's lm-evaluation-harness (pip install razor[lm_eval]): its tasks through any KV
policy, the context compressed as a prompt is and the continuation scored on that cache.

    import lm_eval, razor.lm_eval_model
    lm = razor.lm_eval_model.RazorLM(pretrained="smollm2-135m", kv="razor", threads=2)
    lm_eval.simple_evaluate(model=lm, tasks=["hellaswag"])

or from the shell (the model is registered as "razor", with the harness's own flags):

    python -m razor.lm_eval_model --model razor --model_args pretrained=smollm2-135m,kv=razor --tasks hellaswag
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from .llm import LLM


@register_model("razor")
class RazorLM(LM):
    """pretrained: a catalogue name or a path (as razor.LLM's model); every other argument is razor.LLM's (kv,
    kv_type, threads, ctx, window_min, profile, ...). max_gen_toks: generate_until's default length."""

    def __init__(self, pretrained: str = "smollm2-135m", max_gen_toks: int = 256, batch_size: Any = 1,
                 device: str = "cpu", **llm_args: Any) -> None:
        super().__init__()
        del batch_size  # requests run one at a time (one sequence each); the harness passes it regardless
        self.llm = LLM(pretrained, device=device, **llm_args)
        self.max_gen_toks = int(max_gen_toks)
        # The token a context starts from when it is empty (the harness's "prefix token").
        prefix = self.llm.bos_id if self.llm.bos_id >= 0 else self.llm.eos_id
        if prefix < 0:
            raise ValueError("the model's vocabulary has neither BOS nor EOS: no token to start an empty context")
        self.prefix_token_id = prefix

    @property
    def max_length(self) -> int:
        return self.llm.n_ctx

    # -- helpers -------------------------------------------------------------------------------------------
    def _encode_pair(self, context: str, continuation: str) -> Tuple[List[int], List[int]]:
        """Token ids of context and continuation as the harness's own HF model splits them: a context's trailing
        spaces move to the continuation, and the continuation is what tokenizing both adds past the context's
        length (whole[len(context_ids):], also where a token merges across the boundary)."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        whole = self.llm.tokenize(context + continuation, add_bos=True)
        context_ids = self.llm.tokenize(context, add_bos=True)
        continuation_ids = whole[len(context_ids):]
        if not context_ids:
            context_ids = [self.prefix_token_id]
        return context_ids, continuation_ids

    def _score(self, context_ids: Sequence[int], continuation_ids: Sequence[int]) -> Tuple[float, bool]:
        if not continuation_ids:
            return 0.0, True
        # The engine steps the context and every continuation token but the last: max_length + 1 tokens fit.
        # A context that does not fit with its continuation loses its oldest tokens (as the harness's HF model).
        room = self.max_length + 1 - len(continuation_ids)
        if room < 1:
            raise ValueError(f"a continuation of {len(continuation_ids)} tokens does not fit the context of "
                             f"{self.max_length}")
        context_ids = list(context_ids)[-room:]
        logprob, greedy = self.llm.score(context_ids, continuation_ids)
        return float(logprob.sum()), bool(greedy.all())

    # -- the harness's three request types -----------------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> List[Tuple[float, bool]]:
        out = []
        for request in requests:
            context, continuation = request.args
            result = self._score(*self._encode_pair(context, continuation))
            self.cache_hook.add_partial("loglikelihood", request.args, result)
            out.append(result)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> List[float]:
        out = []
        for request in requests:
            (text,) = request.args
            ids = self.llm.tokenize(text, add_bos=False)
            total = 0.0
            windows = get_rolling_token_windows(token_list=ids, prefix_token=self.prefix_token_id,
                                                max_seq_len=self.max_length, context_len=1)
            for context_ids, continuation_ids in map(make_disjoint_window, windows):
                total += self._score(context_ids, continuation_ids)[0]
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> List[str]:
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.pop("until", None)
            until = [until] if isinstance(until, str) else list(until or [])
            max_tokens = int(gen_kwargs.pop("max_gen_toks", self.max_gen_toks))
            sample = bool(gen_kwargs.pop("do_sample", False))
            temperature = float(gen_kwargs.pop("temperature", 0.0)) if sample else 0.0
            top_p = float(gen_kwargs.pop("top_p", 1.0))
            seed = int(gen_kwargs.pop("seed", 0))
            ids = self.llm.tokenize(context, add_bos=True)
            ids = ids[-max(1, self.max_length - max_tokens):]
            result = self.llm.generate(ids, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                       stop=until or None, seed=seed)
            text = _cut_at_stop(result["text"], until)
            self.cache_hook.add_partial("generate_until", request.args, text)
            out.append(text)
        return out


def _cut_at_stop(text: str, until: Sequence[str]) -> str:
    cut = len(text)
    for s in until:
        if s:
            i = text.find(s)
            if i >= 0:
                cut = min(cut, i)
    return text[:cut]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The harness's command line, with "razor" registered as a model."""
    import sys

    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
