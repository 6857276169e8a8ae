"""`razor serve` as the official `openai` Python client sees it: completions and chat completions (non-streaming
and streaming with usage), greedy text equal to `razor run`'s for the same prompt and token count (also for
multi-byte UTF-8 output), stop strings cut exactly where the unconstrained greedy text holds them, seeded sampling
reproducible, and a stream the client closes early cancelled on the server."""
import time

import pytest

from openai_support import metrics, model_id, razor_run, wait_until

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "Name a color."}]
N = 16  # tokens per greedy call: SmolLM2 does not end either prompt by then (asserted: finish_reason "length")


@pytest.fixture(scope="module")
def greedy(client):
    """The non-streaming greedy answers both streaming tests compare against."""
    comp = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=N, temperature=0)
    chat = client.chat.completions.create(model=model_id(), messages=CHAT, max_tokens=N, temperature=0)
    return comp, chat


def check_usage(usage, completion_tokens):
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens == completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_completion(greedy):
    r, _ = greedy
    assert r.object == "text_completion"
    assert r.model == model_id()
    assert r.id and isinstance(r.created, int) and r.created > 0
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0
    assert isinstance(c.text, str) and c.text.strip()
    assert c.finish_reason == "length"
    check_usage(r.usage, N)


def test_completion_default_max_tokens(client):
    # OpenAI's default max_tokens for /v1/completions is 16.
    r = client.completions.create(model=model_id(), prompt=PROMPT, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 16


def test_chat_completion(greedy):
    _, r = greedy
    assert r.object == "chat.completion"
    assert r.model == model_id()
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert isinstance(c.message.content, str) and c.message.content.strip()
    assert c.finish_reason == "length"
    check_usage(r.usage, N)
    # The chat template wraps the message: more prompt tokens than the bare text has words.
    assert r.usage.prompt_tokens > len(CHAT[0]["content"].split())


def read_stream(stream, chat):
    """(chunks, concatenated text) of a streamed answer."""
    chunks = list(stream)
    text = ""
    for ch in chunks:
        for c in ch.choices:
            piece = c.delta.content if chat else c.text
            text += piece or ""
    return chunks, text


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_stream_matches_non_streaming(client, greedy, chat):
    ref = greedy[1] if chat else greedy[0]
    ref_text = ref.choices[0].message.content if chat else ref.choices[0].text
    common = dict(model=model_id(), max_tokens=N, temperature=0, stream=True, stream_options={"include_usage": True})
    if chat:
        stream = client.chat.completions.create(messages=CHAT, **common)
    else:
        stream = client.completions.create(prompt=PROMPT, **common)
    chunks, text = read_stream(stream, chat)
    assert len(chunks) >= 3
    assert len({ch.id for ch in chunks}) == 1, "every chunk of one stream carries the same id"
    assert chunks[0].id != ref.id, "each request gets its own id"
    assert all(ch.model == model_id() for ch in chunks)
    assert all(ch.object == ("chat.completion.chunk" if chat else "text_completion") for ch in chunks)
    assert text == ref_text

    *content, final = chunks
    # The final chunk: usage, no choices (stream_options.include_usage); usage equal to the non-streaming call's.
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (
        ref.usage.prompt_tokens, ref.usage.completion_tokens, ref.usage.total_tokens)
    # Before it: one choice each, usage null; only the last of them has a finish_reason.
    assert all(len(ch.choices) == 1 and ch.usage is None for ch in content)
    assert content[-1].choices[0].finish_reason == "length"
    assert all(ch.choices[0].finish_reason is None for ch in content[:-1])
    if chat:
        assert content[0].choices[0].delta.role == "assistant"


def test_stream_without_usage(client):
    stream = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=4, temperature=0, stream=True)
    chunks = list(stream)
    assert chunks and all(ch.usage is None and len(ch.choices) == 1 for ch in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


# `razor run`'s stop reasons as OpenAI's finish_reason: its end-of-generation token and a stop string are "stop".
FINISH = {"length": "length", "eog": "stop", "stop-string": "stop"}


def test_completion_equals_razor_run(client):
    n = 24
    text, prompt_tokens, generated, reason = razor_run(PROMPT, n)
    assert text and reason == "length" and generated == n
    r = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=n, temperature=0)
    assert r.choices[0].text == text
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt_tokens, generated)
    assert r.choices[0].finish_reason == "length"


def test_chat_equals_razor_run_chat(client):
    # 32 tokens: SmolLM2 ends this answer with its end token before (22 tokens), so finish_reason "stop" is seen.
    n = 32
    text, prompt_tokens, generated, reason = razor_run(CHAT[0]["content"], n, chat=True)
    assert text and reason in FINISH
    r = client.chat.completions.create(model=model_id(), messages=CHAT, max_tokens=n, temperature=0)
    assert r.choices[0].message.content == text
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt_tokens, generated)
    assert r.choices[0].finish_reason == FINISH[reason]


def test_utf8_output_equals_razor_run_and_stream(client):
    # Japanese output: tokens that end inside a UTF-8 character must not reach the client as broken pieces.
    prompt, n = "日本語で挨拶", 24
    text, _, generated, reason = razor_run(prompt, n)
    assert any(ord(ch) > 0x3000 for ch in text), text  # the output is multi-byte (CJK), as the test needs
    r = client.completions.create(model=model_id(), prompt=prompt, max_tokens=n, temperature=0)
    assert r.choices[0].text == text
    stream = client.completions.create(model=model_id(), prompt=prompt, max_tokens=n, temperature=0, stream=True)
    pieces = [ch.choices[0].text for ch in stream if ch.choices]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_stream_closed_early_is_cancelled(server, client):
    before = metrics(server)["razor:generation_tokens_total"]
    n = 4000
    stream = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=n, temperature=0, stream=True)
    got = []
    for ch in stream:
        got.append(ch)
        if len(got) == 3:
            break
    assert all(ch.choices[0].finish_reason is None for ch in got)  # still generating when the client leaves
    assert metrics(server)["razor:num_requests_running"] == 1
    stream.close()
    idle = wait_until(lambda: (lambda m: m["razor:num_requests_running"] == 0 and m["razor:kv_bytes_held"] == 0
                                         and m)(metrics(server)), timeout=10)
    assert idle, metrics(server)
    time.sleep(0.5)
    after = metrics(server)["razor:generation_tokens_total"]
    assert after - before < n // 4, f"{after - before} tokens generated for a stream closed after 3 chunks"
    # The server serves the next request as before.
    r = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=4, temperature=0)
    assert r.usage.completion_tokens == 4


@pytest.fixture(scope="module")
def unconstrained(client):
    """The greedy text without stops and its token pieces (from the stream), to choose stop strings from."""
    n = 24
    stream = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=n, temperature=0, stream=True)
    pieces = [ch.choices[0].text for ch in stream if ch.choices and ch.choices[0].text]
    text = "".join(pieces)
    assert len(pieces) >= 8, pieces
    return text, pieces, n


def spanning_stop(pieces, i):
    """A stop string across the boundary of pieces i and i+1 (so the server must hold text back to find it)."""
    a, b = pieces[i], pieces[i + 1]
    return a[-2:] + b[:2]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_stop_string(client, unconstrained, stream):
    text, pieces, n = unconstrained
    stop = spanning_stop(pieces, 3)
    cut = text.find(stop)
    assert cut >= 0
    kwargs = dict(model=model_id(), prompt=PROMPT, max_tokens=n, temperature=0, stop=stop)
    if stream:
        chunks = list(client.completions.create(stream=True, **kwargs))
        got = "".join(ch.choices[0].text or "" for ch in chunks if ch.choices)
        finish = chunks[-1].choices[0].finish_reason
    else:
        r = client.completions.create(**kwargs)
        got, finish = r.choices[0].text, r.choices[0].finish_reason
        assert r.usage.completion_tokens < n
    assert got == text[:cut]
    assert stop not in got
    assert finish == "stop"


def test_stop_strings_earliest_wins(client, unconstrained):
    text, pieces, n = unconstrained
    early, late = spanning_stop(pieces, 2), spanning_stop(pieces, 6)
    cut = min(i for i in (text.find(early), text.find(late)) if i >= 0)
    r = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=n, temperature=0, stop=[late, early])
    assert r.choices[0].text == text[:cut]
    assert r.choices[0].finish_reason == "stop"


def test_stop_string_absent(client, unconstrained):
    text, _, n = unconstrained
    stop = "\x01never\x02"
    assert stop not in text
    r = client.completions.create(model=model_id(), prompt=PROMPT, max_tokens=n, temperature=0, stop=[stop])
    assert r.choices[0].text == text
    assert r.choices[0].finish_reason == "length"


def test_seed_reproducible(client):
    def sample(seed, stream=False):
        kw = dict(model=model_id(), prompt="Once upon a time", max_tokens=12, temperature=1.0, seed=seed)
        if stream:
            return "".join(ch.choices[0].text or "" for ch in client.completions.create(stream=True, **kw)
                           if ch.choices)
        return client.completions.create(**kw).choices[0].text

    first = sample(7)
    assert sample(7) == first
    assert sample(7, stream=True) == first  # the streaming path draws the same tokens
    # Sampling at temperature 1 is not greedy: different seeds give different texts (4 seeds, not all equal).
    assert len({first, *(sample(s) for s in (1, 2, 3))}) > 1
