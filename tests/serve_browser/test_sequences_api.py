"""GET /razor/sequences and GET / over plain HTTP (no browser): the JSON's shape while a razor sequence streams,
the page's content type, and the API-key rule (the page is open, the report is not)."""
import pytest

from serve_web_support import LONG_PROMPT, Server, StreamingChat, wait_until

TOP_KEYS = {"pool_bytes", "kv_bytes_held", "kv_bytes_full_equivalent", "running", "waiting", "sequences"}
SEQ_KEYS = {"id", "kv", "prompt_tokens", "prefilled", "generated", "length", "kv_bytes", "full_bytes", "reduction",
            "heads", "heads_compressed", "n_layers", "n_kv_heads", "head_tokens", "head_compressed"}


def test_page_is_html(razor_server):
    status, headers, body = razor_server.request("GET", "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    html = body.decode()
    assert "<title>razor serve</title>" in html
    for needle in ('id="prompt"', 'id="send"', 'id="stop"', 'id="messages"', 'id="kv-panel"', "/razor/sequences"):
        assert needle in html
    assert "http://" not in html and "https://" not in html  # self-contained: nothing fetched from elsewhere
    assert razor_server.request("POST", "/", body={})[0] == 405


def test_sequences_idle(razor_server):
    report = razor_server.get_json("/razor/sequences")
    assert set(report) == TOP_KEYS
    assert report["pool_bytes"] > 0
    assert report["sequences"] == [] and report["running"] == 0


def test_sequences_while_streaming(razor_server):
    chat = StreamingChat(razor_server, {"messages": [{"role": "user", "content": LONG_PROMPT}], "max_tokens": 64,
                                        "temperature": 0, "stream": True, "razor": {"kv": "razor"}})
    chat.start()
    seen = []

    def decoding_sequence():
        report = razor_server.get_json("/razor/sequences")
        if report["sequences"] and report["sequences"][0]["generated"] > 0:
            seen.append(report)
            return report
        return None

    report = wait_until(lambda: decoding_sequence() or chat.done or chat.error, timeout=120, interval=0.02)
    assert seen, f"no decoding sequence seen in /razor/sequences (stream done={chat.done}, error={chat.error})"
    report = seen[0]
    assert set(report) == TOP_KEYS
    assert report["running"] == len(report["sequences"]) == 1
    assert report["waiting"] == 0
    assert 0 < report["kv_bytes_held"] <= report["pool_bytes"]
    s = report["sequences"][0]
    assert set(s) == SEQ_KEYS
    assert s["kv"] == "razor" and s["id"] >= 1
    assert s["prefilled"] == s["prompt_tokens"] > 250
    assert s["length"] >= s["prompt_tokens"]
    assert report["kv_bytes_full_equivalent"] == s["full_bytes"] > 0
    assert 0 < s["kv_bytes"] < s["full_bytes"]
    assert s["reduction"] == pytest.approx(1 - s["kv_bytes"] / s["full_bytes"])
    assert s["heads"] == s["n_layers"] * s["n_kv_heads"] > 0
    assert 0 < s["heads_compressed"] < s["heads"]  # the retrieval heads keep everything
    for grid, kind in ((s["head_tokens"], int), (s["head_compressed"], int)):
        assert len(grid) == s["n_layers"]
        assert all(len(row) == s["n_kv_heads"] and all(isinstance(v, kind) for v in row) for row in grid)
    flags = [f for row in s["head_compressed"] for f in row]
    tokens = [t for row in s["head_tokens"] for t in row]
    assert set(flags) <= {0, 1} and sum(flags) >= s["heads_compressed"]
    assert all(0 < t <= s["length"] for t in tokens)
    assert all(t < s["length"] for t, f in zip(tokens, flags) if f)  # a compressed head holds less
    assert any(t == s["length"] for t, f in zip(tokens, flags) if not f)  # a retrieval head holds all

    chat.join(timeout=120)
    assert chat.done and chat.error is None and chat.deltas
    gone = wait_until(lambda: razor_server.get_json("/razor/sequences")["running"] == 0, timeout=10)
    assert gone, "the finished sequence is still in /razor/sequences"
    assert razor_server.get_json("/razor/sequences")["sequences"] == []


def test_api_key_rule(tmp_path):
    server = Server(["-t", "1", "--kv", "full", "--api-key", "sekrit"], tmp_path / "key_serve.log", start_timeout=120)
    try:
        assert server.request("GET", "/")[0] == 200  # the page: no key (it asks for one)
        assert server.request("GET", "/razor/sequences")[0] == 401
        assert server.request("GET", "/razor/sequences", headers={"Authorization": "Bearer nope"})[0] == 401
        report = server.get_json("/razor/sequences", headers={"Authorization": "Bearer sekrit"})
        assert set(report) == TOP_KEYS and report["sequences"] == []
    finally:
        server.stop()
