"""Bad input becomes a Python exception with the engine's one-line message and never crashes the interpreter;
Ctrl-C stops a generation and leaves the LLM usable; long calls let other Python threads run."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import razor


def one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and text, repr(text)
    return text


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(razor.RazorError) as e:
        razor.LLM(str(tmp_path / "nope.gguf"))
    assert "neither a file nor a catalogue name" in one_line(e.value)
    with pytest.raises(razor.RazorError):
        razor.pull("bad name; rm -rf /")


def test_corrupt_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(200))
    with pytest.raises(razor.RazorError) as e:
        razor.LLM(str(bad), kv="full")
    assert "bad.gguf" in one_line(e.value) or "GGUF" in one_line(e.value)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(razor.RazorError):
        razor.LLM(str(empty), kv="full")


def test_bad_option_values(model_path):
    with pytest.raises(razor.RazorError, match="unknown KV mode|razor"):
        razor.LLM(model_path, kv="bogus")
    with pytest.raises(razor.RazorError, match="f16"):
        razor.LLM(model_path, kv="full", kv_type="int3")
    with pytest.raises(razor.RazorError, match="device"):
        razor.LLM(model_path, kv="full", device="tpu")
    with pytest.raises(razor.RazorError, match="window_frac"):
        razor.LLM(model_path, kv="full", window_frac=3.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'sink'"):
        razor.LLM(model_path, kv="full", sink=4)
    with pytest.raises(TypeError):
        razor.LLM(model_path, kv="full", threads="two")
    # More threads than CPUs is refused before any is started (a review's threads=100000 made 32K threads).
    with pytest.raises(razor.RazorError, match="threads=100000: expected 0 .* to [0-9]+"):
        razor.LLM(model_path, kv="full", threads=100000)
    with pytest.raises(razor.RazorError, match="threads=-1"):
        razor.LLM(model_path, kv="full", threads=-1)
    with pytest.raises(razor.RazorError, match="kv_pool_mib="):
        razor.LLM(model_path, kv="full", kv_pool_mib=1 << 50)
    if not razor.built_with_cuda():
        with pytest.raises(razor.RazorError, match="built without CUDA"):
            razor.LLM(model_path, kv="full", device="cuda")


def test_bad_call_arguments(full_llm):
    with pytest.raises(razor.RazorError, match="out of range"):
        full_llm.logits([0, full_llm.n_vocab + 5])
    with pytest.raises(razor.RazorError, match="out of range"):
        full_llm.detokenize([-1])
    with pytest.raises(razor.RazorError, match="at least one"):
        full_llm.logits([])
    with pytest.raises(razor.RazorError, match="empty prompt"):
        full_llm.generate([], max_tokens=4)
    with pytest.raises(TypeError):
        full_llm.generate({"prompt": "x"})
    with pytest.raises(razor.RazorError, match="max_tokens"):
        full_llm.generate("hi", max_tokens=-1)
    with pytest.raises(razor.RazorError, match="role"):
        full_llm.create_chat_completion([{"role": "wizard", "content": "x"}])
    with pytest.raises(TypeError):
        full_llm.create_chat_completion([{"role": "user"}])
    with pytest.raises(TypeError, match="integers, not float"):
        full_llm.logits([1, 2.7])
    with pytest.raises(TypeError, match="integers, not bool"):
        full_llm.generate([1, True])
    with pytest.raises(TypeError, match="1-D array of integers"):
        full_llm.logits(np.zeros((2, 2), dtype=np.int64))
    assert full_llm.logits(np.array([1, 2], dtype=np.uint16)).shape == (2, full_llm.n_vocab)


@pytest.mark.parametrize("name,value", [("temperature", -0.5), ("temperature", float("nan")), ("top_p", 0.0),
                                        ("top_p", 1.5), ("min_p", 2.0), ("repeat_penalty", 0.0), ("top_k", -3)])
def test_sampling_values_out_of_range(full_llm, name, value):
    with pytest.raises(razor.RazorError, match=f"{name}="):
        full_llm.generate("hi", max_tokens=2, **{name: value})


def test_text_that_is_not_utf8_on_its_own(full_llm):
    """A byte token (half a character) and a generation cut inside a character come back as str with U+FFFD,
    not as a UnicodeDecodeError that loses the result."""
    partial = [i for i in range(full_llm.n_vocab) if "\ufffd" in full_llm.detokenize([i])]
    assert partial, "the byte-level vocabulary has tokens that are bytes of a character"
    out = full_llm.generate("中文：我喜欢吃苹果和香蕉，因为", max_tokens=1, temperature=1.0, top_k=0, top_p=1.0,
                            min_p=0.0, seed=0)
    assert isinstance(out["text"], str) and len(out["token_ids"]) == 1
    pieces = list(full_llm.generate("中文：我喜欢吃苹果和香蕉，因为", max_tokens=1, temperature=1.0, top_k=0,
                                    top_p=1.0, min_p=0.0, seed=0, stream=True))
    assert "".join(pieces) == out["text"]
    with pytest.raises(razor.RazorError, match="messages is empty"):
        full_llm.create_chat_completion([])


def test_a_prompt_longer_than_the_context(model_path):
    llm = razor.LLM(model_path, kv="full", ctx=64, threads=1)
    with pytest.raises(razor.RazorError) as e:
        llm.generate("word " * 200, max_tokens=4)
    assert "longer than the context" in one_line(e.value)
    with pytest.raises(razor.RazorError, match="longer than the context"):
        llm.logits(list(range(100)))
    out = llm.generate("word " * 50, max_tokens=100)  # fits, then runs into the context
    assert out["stop_reason"] == "context"


def test_an_exhausted_kv_pool_is_an_error_and_the_llm_stays_usable(model_path):
    llm = razor.LLM(model_path, kv="full", kv_pool_mib=2, threads=1)
    with pytest.raises(razor.RazorError, match="KV pool"):
        llm.generate("word " * 600, max_tokens=4)
    assert llm.generate("Hello", max_tokens=2)["token_ids"]


def test_ctrl_c_stops_a_generation_and_the_llm_stays_usable(full_llm):
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        full_llm.generate("Once upon a time", max_tokens=100000)
    assert time.monotonic() - t0 < 30
    timer.join()
    assert len(full_llm.generate("Once upon a time", max_tokens=3)["token_ids"]) == 3


def test_ctrl_c_in_a_child_interpreter_exits_cleanly(model_path, tmp_path):
    """The whole path as a user meets it: SIGINT to a python running a generation ends it with
    KeyboardInterrupt (exit 130-ish via the traceback), not a crash (negative return code = killed by a signal)."""
    script = tmp_path / "gen.py"
    script.write_text(
        "import razor, sys\n"
        f"llm = razor.LLM({model_path!r}, kv='full', threads=1)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    llm.generate('Once upon a time', max_tokens=100000)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "interrupted" in out


def test_a_long_engine_call_releases_the_gil(full_llm, long_prompt):
    """One call into the engine (logits of ~1,500 tokens): a Python thread keeps running meanwhile. Holding the
    GIL, the call would let it tick about once (a C call never yields the GIL)."""
    ids = full_llm.tokenize(long_prompt)[:1500]
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.05)
        before = ticks
        start = time.perf_counter()
        full_llm.logits(ids)
        elapsed_ms = 1000 * (time.perf_counter() - start)
        during = ticks - before
    finally:
        stop.set()
        t.join()
    assert elapsed_ms > 100, elapsed_ms  # long enough to tell
    assert during > 0.2 * elapsed_ms, (during, elapsed_ms)


def test_profiling_while_another_thread_generates(model_path, quick_profile):
    """profile() and generate() on one LLM from two threads take turns on the engine: the generations keep
    their greedy answers (a profiler sharing the thread pool with a step garbled them, or crashed)."""
    llm = razor.LLM(model_path, kv="full", threads=2)
    prompt = "The capital of France is"
    want = llm.generate(prompt, max_tokens=16)["text"]
    got = []

    def generate():
        for _ in range(3):
            got.append(llm.generate(prompt, max_tokens=16)["text"])

    t = threading.Thread(target=generate)
    t.start()
    profile = llm.profile(block=128, repeats=2)
    t.join()
    assert got == [want] * 3
    assert profile.kv_induction.shape == (30, 3)


def test_two_threads_generate_at_once_and_get_their_own_answers(full_llm):
    prompts = ["Count: one, two,", "The capital of France is"]
    want = [full_llm.generate(p, max_tokens=12)["text"] for p in prompts]
    got = [None, None]

    def run(i):
        got[i] = full_llm.generate(prompts[i], max_tokens=12)["text"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
