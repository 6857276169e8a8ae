"""razor.LLM: one model on one engine, with the KV policy chosen at construction."""
from __future__ import annotations

import operator
import sys
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _razor
from .models import resolve_model
from .profile import HeadProfile

# The KV policy's parameters (RAZOR_ATTENTION.md; the CLI's flags of the same names) and their types.
_KV_PARAMS = {
    "sinks": int,              # --sinks: attention-sink tokens each compressed head keeps (N0)
    "window_min": int,         # --window-min: smallest local window S0, tokens
    "window_frac": float,      # --window-frac: window as a fraction of the prompt
    "compensation": bool,      # off: --no-compensation
    "echo": bool,              # off: --no-echo (retrieval heads from induction scores only)
    "induction_ratio": float,  # --induction-ratio: re-select the top fraction of KV heads by induction score
    "decode_fold": bool,       # --decode-fold: bounded memory during decode
    "streaming_window": int,   # streaming's window; 0: razor's budget for the prompt
    "profile": str,            # --profile: a head-profile JSON (default: cached beside the model)
}

Prompt = Union[str, Sequence[int]]


def _ids(name: str, ids: Any) -> List[int]:
    """Token ids as a list of int: a sequence or a 1-D numpy array of integers (floats and bools refused)."""
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{name} must be a 1-D array of integers, not {ids.ndim}-D {ids.dtype}")
        return ids.tolist()
    if isinstance(ids, (str, bytes, dict)) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} must be a sequence of token ids, not {type(ids).__name__}")
    out = []
    for t in ids:
        if isinstance(t, bool):
            raise TypeError(f"{name}: token ids are integers, not bool")
        try:
            out.append(operator.index(t))
        except TypeError:
            raise TypeError(f"{name}: token ids are integers, not {type(t).__name__}") from None
    return out


def _check_type(name: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {kind.__name__}, not {type(value).__name__}")
    return value


class LLM:
    """A model on razor's engine.

    model: a .gguf file, a Hugging Face checkpoint directory or a catalogue name (razor.catalog());
    device: "cpu", "cuda" (needs a build with CUDA) or "auto"; kv: "razor" (RazorAttention), "full" or
    "streaming" (StreamingLLM at razor's bytes); kv_type: "f16", "bf16" or "f32"; threads: CPU threads (0:
    every core); ctx: most tokens of a sequence (0: the model's context); kv_pool_mib: the KV pool (0: the
    machine's memory); exact: reference fp32 kernels. kv_params: sinks, window_min, window_frac, compensation,
    echo, induction_ratio, decode_fold, streaming_window, profile (a profile JSON path).

    razor and streaming need the model's head profile: loaded from beside the model, or made on first use
    (one to three minutes for a small model on two cores) and cached there."""

    def __init__(self, model: str = "smollm2-135m", device: str = "cpu", kv: str = "razor", kv_type: str = "f16",
                 threads: int = 0, ctx: int = 0, kv_pool_mib: int = 0, exact: bool = False, **kv_params: Any):
        options = _razor.SessionOptions()
        options.model_path = resolve_model(model)
        options.device = _check_type("device", device, str)
        options.kv = _check_type("kv", kv, str)
        options.kv_type = _check_type("kv_type", kv_type, str)
        options.threads = _check_type("threads", threads, int)
        options.context = _check_type("ctx", ctx, int)
        options.kv_pool_mib = _check_type("kv_pool_mib", kv_pool_mib, int)
        options.exact = _check_type("exact", exact, bool)
        for name, value in kv_params.items():
            if name not in _KV_PARAMS:
                raise TypeError(f"LLM() got an unexpected keyword argument '{name}' "
                                f"(KV parameters: {', '.join(_KV_PARAMS)})")
            value = _check_type(name, value, _KV_PARAMS[name])
            setattr(options, "profile_path" if name == "profile" else name, value)
        self._session = _razor.Session.open(options)
        self.model_path = options.model_path
        self.kv = kv
        self.last_result: Optional[Dict[str, Any]] = None

    # -- text <-> ids ----------------------------------------------------------------------------------------
    def tokenize(self, text: Union[str, bytes], add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of text (BOS first when the model asks for it and add_bos; special=True turns text like
        '<|im_start|>' into its special id)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return self._session.tokenize(_check_type("text", text, str), add_bos, special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of token ids (bytes that are not valid UTF-8 on their own, such as half a character, come
        back as U+FFFD)."""
        return self._session.detokenize(_ids("ids", ids))

    # -- properties --------------------------------------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return self._session.vocab_size

    @property
    def n_ctx(self) -> int:
        return self._session.context

    @property
    def backend(self) -> str:
        return self._session.backend

    # -- forward -----------------------------------------------------------------------------------------
    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """float32 [len(token_ids), vocab]: the logits at every position (teacher-forced), in one forward call."""
        return self._session.logits(_ids("token_ids", token_ids))

    def score(self, context: Sequence[int], continuation: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        """How likely the continuation is after the context, under this LLM's KV policy: the context runs as a
        prompt (razor compresses it, as for generate), then the continuation is teacher-forced on that cache.
        Returns (float64 [len(continuation)] log-probabilities, bool [len(continuation)] whether each token is
        the greedy choice). The context must not be empty (put bos_id or eos_id first)."""
        logprob, greedy = self._session.score_continuation(_ids("context", context), _ids("continuation", continuation))
        return logprob, greedy.view(bool)

    @property
    def bos_id(self) -> int:
        """The BOS token id (-1 when the vocabulary has none)."""
        return self._session.bos_id

    @property
    def eos_id(self) -> int:
        """The EOS token id (-1 when the vocabulary has none)."""
        return self._session.eos_id

    def _prompt_ids(self, prompt: Prompt) -> List[int]:
        if isinstance(prompt, str):
            return self.tokenize(prompt, add_bos=True, special=False)
        return _ids("prompt", prompt)

    def _start(self, ids: List[int], max_tokens: int, temperature: float, top_p: float, top_k: int, min_p: float,
               repeat_penalty: float, stop: Union[None, str, Sequence[str]], seed: int):
        if isinstance(stop, str):
            stop = [stop]
        stop = list(stop or [])
        for s in stop:
            _check_type("stop", s, str)
        return self._session.generate(ids, _check_type("max_tokens", max_tokens, int),
                                      _check_type("temperature", temperature, float),
                                      _check_type("top_p", top_p, float), _check_type("top_k", top_k, int),
                                      _check_type("min_p", min_p, float),
                                      _check_type("repeat_penalty", repeat_penalty, float), stop,
                                      _check_type("seed", seed, int), True)

    def _finish(self, generation) -> Dict[str, Any]:
        result = generation.result()
        result["kv"] = generation.kv()
        self.last_result = result
        return result

    def _pieces(self, generation) -> Iterator[str]:
        while True:
            piece = generation.next()
            if piece is None:
                self._finish(generation)
                return
            if piece:
                yield piece

    def generate(self, prompt: Prompt, max_tokens: int = 128, temperature: float = 0.0, top_p: float = 0.95,
                 top_k: int = 40, min_p: float = 0.05, repeat_penalty: float = 1.0,
                 stop: Union[None, str, Sequence[str]] = None, seed: int = 0, stream: bool = False):
        """Generates from a prompt (text, or token ids). temperature 0 is greedy (as razor run). Returns
        {"text", "token_ids", "stop_reason" ("eog" | "stop-string" | "length" | "context"), "timings", "kv"};
        stream=True returns an iterator of text pieces as they are decoded (the dict is then in last_result)."""
        generation = self._start(self._prompt_ids(prompt), max_tokens, temperature, top_p, top_k, min_p,
                                 repeat_penalty, stop, seed)
        if stream:
            return self._pieces(generation)
        for _ in self._pieces(generation):
            pass
        return self.last_result

    def __call__(self, prompt: Prompt, **kwargs: Any):
        return self.generate(prompt, **kwargs)

    # -- chat --------------------------------------------------------------------------------------------
    def create_chat_completion(self, messages: Sequence[Dict[str, str]], max_tokens: int = 128,
                               temperature: float = 0.0, top_p: float = 0.95, top_k: int = 40, min_p: float = 0.05,
                               repeat_penalty: float = 1.0, stop: Union[None, str, Sequence[str]] = None,
                               seed: int = 0, stream: bool = False):
        """OpenAI-shaped chat completion (as llama-cpp-python's): a "chat.completion" dict, or with stream=True
        an iterator of "chat.completion.chunk" dicts. The prompt is the model's own chat template."""
        pairs = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise TypeError("each message must be a dict with string 'role' and 'content'")
            pairs.append((m["role"], m["content"]))
        text = self._session.apply_chat(pairs)
        ids = self.tokenize(text, add_bos=False, special=True)
        generation = self._start(ids, max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, stop, seed)
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = self._session.model_name or self.model_path
        if stream:
            return self._chat_chunks(generation, ident, created, model)
        for _ in self._pieces(generation):
            pass
        r = self.last_result
        return {
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": r["text"]}, "logprobs": None,
                         "finish_reason": _finish_reason(r["stop_reason"])}],
            "usage": _usage(r),
        }

    def _chat_chunks(self, generation, ident: str, created: int, model: str) -> Iterator[Dict[str, Any]]:
        def chunk(delta: Dict[str, str], finish: Optional[str]) -> Dict[str, Any]:
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        yield chunk({"role": "assistant"}, None)
        for piece in self._pieces(generation):
            yield chunk({"content": piece}, None)
        yield chunk({}, _finish_reason(self.last_result["stop_reason"]))

    # -- KV and heads ------------------------------------------------------------------------------------
    def kv_stats(self) -> Dict[str, Any]:
        """The last generation's cache: bytes held, bytes of a full cache at the same length, reduction (0..1),
        heads kept whole / compressed, the window, and per (layer, KV head) numpy arrays head_tokens,
        head_bytes, head_compressed."""
        return self._session.last_kv()

    def profile(self, progress: bool = False, block: Optional[int] = None, repeats: Optional[int] = None,
                induction_ratio: Optional[float] = None, echo_ratio: Optional[float] = None,
                seed: Optional[int] = None) -> HeadProfile:
        """The retrieval-head profile razor uses: the cached one (made now if missing; progress=True prints it
        on stderr). With any of block / repeats / ratios / seed, a new profile is made now with them (others at
        their defaults: block 2500, repeats 4, induction 0.14, echo 0.01, seed 1) and used from then on."""
        custom = {"block": block, "repeats": repeats, "induction_ratio": induction_ratio, "echo_ratio": echo_ratio,
                  "seed": seed}
        if any(v is not None for v in custom.values()):
            d = self._session.make_profile(
                _check_type("induction_ratio", 0.14 if induction_ratio is None else induction_ratio, float),
                _check_type("echo_ratio", 0.01 if echo_ratio is None else echo_ratio, float),
                _check_type("block", 2500 if block is None else block, int),
                _check_type("repeats", 4 if repeats is None else repeats, int),
                _check_type("seed", 1 if seed is None else seed, int))
            return HeadProfile._from_engine(d)

        tty = sys.stderr.isatty()
        shown = [-1]

        def report(done: int, total: int) -> None:
            # One line rewritten in place on a terminal; else a line per 10 %, so a log stays short.
            percent = 100 * done // max(1, total)
            if percent == shown[0] or (not tty and percent % 10 and done < total):
                return
            shown[0] = percent
            print(f"{chr(13) if tty else ''}profiling retrieval heads: {percent}%",
                  end="" if tty and done < total else "\n", file=sys.stderr, flush=True)

        return HeadProfile._from_engine(self._session.ensure_profile(report if progress else None))


def _finish_reason(stop_reason: str) -> str:
    return "length" if stop_reason in ("length", "context") else "stop"


def _usage(r: Dict[str, Any]) -> Dict[str, int]:
    prompt = r["timings"]["prompt_tokens"]
    completion = r["timings"]["generated_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
