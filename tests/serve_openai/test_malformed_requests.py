"""1,000 malformed requests to `razor serve` over raw sockets, generated deterministically (random.Random(fixed
seed)) in fixed counts per class: invalid JSON (truncations and byte flips of a valid body), a wrong type for every
field, out-of-range values, unknown routes and wrong methods, bad or missing Content-Length, bodies and headers
over the limits (HttpLimits: 1 MiB body, 16 KiB headers), garbage request lines, bad header lines. And
half-sent requests left open do not hold up other clients.

Each one must get, without hanging, an HTTP status in 400..499 with the status the class calls for, a JSON body
{"error": {"message": str, "type": str, ...}} of the announced Content-Length, and a closed connection; 405s carry
an Allow header. Afterwards the server still answers /health and the same greedy completion as before the flood,
generated no token for any of them, and /metrics shows nothing running or waiting and no KV held.

Every body case starts from a base body that is valid (test_base_bodies_are_valid sends each and gets 200) and
breaks exactly one rule, so none can be accepted by accident; JSON cases are checked unparseable by Python's
strict json module before they are sent."""
import collections
import json
import random
import socket
import time

import pytest

from openai_support import model_id, raw_exchange, metrics, wait_until

SEED = 20240917
TOTAL = 1000
BODY_LIMIT = 1 << 20    # tools/serve/http_message.h HttpLimits::max_body_bytes
HEADER_LIMIT = 16 << 10  # HttpLimits::max_header_bytes
COUNTS = {  # class -> how many of the 1,000
    "truncated_json": 120,
    "byte_flip_json": 120,
    "not_an_object": 20,
    "wrong_type": 200,
    "out_of_range": 160,
    "route_or_method": 100,
    "content_length": 100,
    "oversized": 40,
    "garbage_request_line": 70,
    "bad_header": 70,
}
assert sum(COUNTS.values()) == TOTAL

ROUTES = {"/": "GET", "/health": "GET", "/v1/models": "GET", "/metrics": "GET", "/razor/sequences": "GET",
          "/v1/completions": "POST", "/v1/chat/completions": "POST"}
COMPLETIONS, CHAT = "/v1/completions", "/v1/chat/completions"


def base_body(path):
    """A valid request (max_tokens 1, greedy) that names every field the server reads, each with a valid value."""
    body = {"model": model_id(), "max_tokens": 1, "temperature": 0, "top_p": 1, "min_p": 0, "top_k": 0,
            "repetition_penalty": 1, "seed": 1, "n": 1, "stream": False, "stream_options": {"include_usage": False},
            "presence_penalty": 0, "frequency_penalty": 0, "stop": ["\x01"], "razor": {"kv": "full"}}
    if path == CHAT:
        body["messages"] = [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    else:
        body["prompt"] = "Hello"
    return body


def encode(body):
    return json.dumps(body, separators=(",", ":")).encode()


def post(path, payload, extra_headers=b""):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + extra_headers +
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def unparseable(data):
    try:
        json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return True
    return False


# --- the rule table of body fields: (path or None for both, field, bad values, param the error names) ---
NUMBER = ["x", True, [1], {"v": 1}]            # not numbers (a bool is not a number in JSON)
INTEGER = NUMBER + [1.5, 2.0]                  # not integers (2.0 is a JSON float)
BOOL = [1, 0, "true", [True], {"b": 1}]
WRONG_TYPES = [
    (None, "model", [1, True, ["m"], {"id": "m"}], "model"),
    (None, "max_tokens", INTEGER, "max_tokens"),
    (CHAT, "max_completion_tokens", INTEGER, "max_completion_tokens"),
    (None, "temperature", NUMBER, "temperature"),
    (None, "top_p", NUMBER, "top_p"),
    (None, "min_p", NUMBER, "min_p"),
    (None, "repetition_penalty", NUMBER, "repetition_penalty"),
    (None, "top_k", INTEGER, "top_k"),
    (None, "seed", INTEGER, "seed"),
    (None, "n", INTEGER, "n"),
    (None, "presence_penalty", NUMBER, "presence_penalty"),
    (None, "frequency_penalty", NUMBER, "frequency_penalty"),
    (None, "stream", BOOL, "stream"),
    (None, "stream_options", ["x", 1, True, [1]], "stream_options"),
    (None, "stream_options.include_usage", BOOL, ("include_usage", "stream_options.include_usage")),
    (None, "stop", [1, True, {"s": "x"}, [1], ["a", 2], [None]], "stop"),
    (None, "razor", ["razor", 1, True, ["kv"]], "razor"),
    (None, "razor.kv", [1, True, ["full"], {"m": "full"}], "razor.kv"),
    (COMPLETIONS, "prompt", [None, 1, True, {"t": "x"}, [1], ["a", "b"], [["a"]], []], "prompt"),
    (CHAT, "messages", [None, "Hi", 1, {"role": "user"}, [1], ["Hi"], [{"content": "Hi"}],
                        [{"role": 1, "content": "Hi"}], [{"role": "user"}], [{"role": "user", "content": 1}],
                        [{"role": "user", "content": {"text": "Hi"}}],
                        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                        [{"role": "user", "content": [{"type": "text", "text": 5}]}],
                        [{"role": "user", "content": ["Hi"]}]], "messages"),
]
# Values of the right type outside the range (OpenAI's ranges; razor's extensions by their documented bounds).
OUT_OF_RANGE = [
    (None, "model", ["", "gpt-4o", model_id() + "x", model_id().upper()], "model"),  # 404 model_not_found
    (None, "max_tokens", [0, -1, -(2 ** 63), 2 ** 62, 2 ** 63, 2 ** 64 + 1], "max_tokens"),  # 2**62: past any ctx
    (CHAT, "max_completion_tokens", [0, -5, 2 ** 62], "max_completion_tokens"),
    (None, "temperature", [-0.01, 2.01, 5, -1e9, 1e300], "temperature"),
    (None, "top_p", [0, -0.5, 1.01, 2], "top_p"),
    (None, "min_p", [-0.1, 1.5], "min_p"),
    (None, "repetition_penalty", [0, -1, 10.5, 1e6], "repetition_penalty"),
    (None, "top_k", [-1, 2 ** 30 + 1, 2 ** 62], "top_k"),
    (None, "seed", [2 ** 63, 2 ** 64, -(2 ** 63) - 1], "seed"),  # outside int64
    (None, "n", [0, 2, 16, -1], "n"),
    (None, "presence_penalty", [0.5, -2.5, 3], "presence_penalty"),   # only 0 is supported; OpenAI allows [-2, 2]
    (None, "frequency_penalty", [1, -2.01, 2.5], "frequency_penalty"),
    (None, "stop", [["s"] * 17, ["x"] * 100], "stop"),  # OpenAI: up to 4; razor: up to 16
    (None, "razor.kv", ["", "razor", "streaming", "fulll", "FULL"], "razor.kv"),  # razor / streaming: no profile
    (COMPLETIONS, "prompt", [""], "prompt"),
    (CHAT, "messages", [[], [{"role": "tool", "content": "x"}], [{"role": "", "content": "x"}]], "messages"),
]


def with_field(body, field, value):
    body = json.loads(json.dumps(body))
    parent, _, leaf = field.rpartition(".")
    target = body[parent] if parent else body
    target[leaf] = value
    return body


def rule_cases(table):
    out = []
    for path_only, field, values, param in table:
        for path in ([path_only] if path_only else [COMPLETIONS, CHAT]):
            for v in values:
                out.append((path, field, v, param))
    return out


def request_line(method, target):
    return method.encode() + b" " + target.encode() + b" HTTP/1.1\r\nHost: t\r\n"


class Case:
    def __init__(self, kind, data, status, half_close=False, param=None, note=""):
        self.kind, self.data, self.status, self.half_close, self.param, self.note = (
            kind, data, status, half_close, param, note)

    def __repr__(self):
        return f"<{self.kind} {self.note} expect {self.status}: {self.data[:120]!r}>"


def generate(rng):
    """The 1,000 cases, COUNTS[kind] of each, in a shuffled (seeded) order."""
    cases = []
    valid = {p: encode(base_body(p)) for p in (COMPLETIONS, CHAT)}

    def take(kind, make):
        for i in range(COUNTS[kind]):
            cases.append(make(i))

    def truncated(i):
        path = rng.choice([COMPLETIONS, CHAT])
        full = valid[path]
        cut = rng.randrange(0, len(full))  # a proper prefix of an object never parses (it lacks its last "}")
        payload = full[:cut]
        assert unparseable(payload)
        return Case("truncated_json", post(path, payload), 400, note=f"cut {cut}")

    def flipped(i):
        path = rng.choice([COMPLETIONS, CHAT])
        while True:
            b = bytearray(valid[path])
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            if unparseable(bytes(b)):
                return Case("byte_flip_json", post(path, bytes(b)), 400)

    def not_object(i):
        path = [COMPLETIONS, CHAT][i % 2]
        payload = [b"[]", b"null", b"42", b'"prompt"', b"true", b"[{\"prompt\":\"Hi\"}]", b"-1.5e3", b"false",
                   b"\"\"", b"[[]]"][i // 2 % 10]
        return Case("not_an_object", post(path, payload), 400)

    wrong = rule_cases(WRONG_TYPES)
    out_of_range = rule_cases(OUT_OF_RANGE)

    def from_rules(kind, rules):
        def make(i):
            path, field, value, param = rules[i % len(rules)]  # every rule at least once (asserted below)
            status = 404 if field == "model" and isinstance(value, str) else 400
            payload = encode(with_field(base_body(path), field, value))
            return Case(kind, post(path, payload), status, param=param, note=f"{path} {field}={value!r}"[:80])
        return make

    unknown_paths = ["/v1/completion", "/v1/completions/", "/v2/completions", "/v1/chat", "/v1/models/x", "/v1",
                     "/healthz", "/../etc/passwd", "/%2e%2e/", "/v1//completions", "//health", "/V1/COMPLETIONS",
                     "/metrics/x", "/razor", "/a?b=c", "/" + "x" * 2000]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "get", "post", "FOO"]

    def route(i):
        if i % 2 == 0:  # an unknown route, whatever the method: 404
            path, method = rng.choice(unknown_paths), rng.choice(methods)
            return Case("route_or_method", request_line(method, path) + b"Content-Length: 0\r\n\r\n", 404,
                        note=f"{method} {path[:30]}")
        path = rng.choice(sorted(ROUTES))  # a known route, another method (methods are case-sensitive): 405
        method = rng.choice([m for m in methods if m != ROUTES[path]])
        query = rng.choice(["", "?x=1"])
        return Case("route_or_method", request_line(method, path + query) + b"Content-Length: 0\r\n\r\n", 405,
                    note=f"{method} {path}")

    def content_length(i):
        path = rng.choice([COMPLETIONS, CHAT])
        payload = valid[path]
        head = request_line("POST", path) + b"Content-Type: application/json\r\n"
        variant = i % 10
        if variant == 0:  # POST without Content-Length: 411
            return Case("content_length", head + b"\r\n", 411, note="missing")
        if variant == 1:  # ... with a body but no length: 411
            return Case("content_length", head + b"\r\n" + payload, 411, note="missing, body sent")
        if variant == 2:  # chunked: not supported, asks for a length (411)
            chunked = hex(len(payload))[2:].encode() + b"\r\n" + payload + b"\r\n0\r\n\r\n"
            return Case("content_length", head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked, 411, note="chunked")
        if variant == 3:  # not a decimal number: 400
            bad = rng.choice([b"abc", b"-1", b"+5", b"1e3", b"0x10", b"5 5", b"12abc", b"", b" ", b"1.0", b"\xff"])
            return Case("content_length", head + b"Content-Length: " + bad + b"\r\n\r\n" + payload, 400,
                        note=f"value {bad!r}")
        if variant == 4:  # more digits than any length: 400
            return Case("content_length", head + b"Content-Length: " + b"9" * rng.randint(19, 40) + b"\r\n\r\n", 400,
                        note="too many digits")
        if variant == 5:  # shorter than the body: the body read is a truncated object, not JSON: 400
            n = rng.randrange(0, len(payload))
            return Case("content_length", head + b"Content-Length: " + str(n).encode() + b"\r\n\r\n" + payload, 400,
                        note=f"short {n}")
        if variant == 6:  # longer than what is sent, then the client closes its side: 400 (not a hang)
            n = rng.randrange(0, len(payload))
            return Case("content_length", head + b"Content-Length: " + str(len(payload) + 10).encode() +
                        b"\r\n\r\n" + payload[:n], 400, half_close=True, note=f"long, sent {n}")
        if variant == 7:  # zero: an empty body is not JSON: 400
            return Case("content_length", head + b"Content-Length: 0\r\n\r\n", 400, note="zero")
        if variant == 8:  # a malformed length on a GET: 400 as well
            return Case("content_length", request_line("GET", "/health") + b"Content-Length: x1\r\n\r\n", 400,
                        note="GET bad length")
        # a transfer coding beside a length (RFC 9112 6.1: a server may reject it; 400 and 411 both refuse)
        return Case("content_length", head + b"Transfer-Encoding: gzip\r\nContent-Length: " +
                    str(len(payload)).encode() + b"\r\n\r\n" + payload, (400, 411), note="transfer-encoding + length")

    def oversized(i):
        path = rng.choice([COMPLETIONS, CHAT])
        variant = i % 4
        if variant == 0:  # announced over the limit, a part of it sent: 413 at once
            n = rng.choice([BODY_LIMIT + 1, BODY_LIMIT + rng.randrange(1, 1 << 30), 10 ** 17])
            sent = b"x" * rng.randrange(0, 1 << 16)
            return Case("oversized", request_line("POST", path) + b"Content-Length: " + str(n).encode() +
                        b"\r\n\r\n" + sent, 413, note=f"announced {n}")
        if variant == 1:  # a whole valid-looking body over the limit: 413
            payload = encode({"model": model_id(), "prompt": "a" * (BODY_LIMIT + rng.randrange(1, 4096))})
            return Case("oversized", post(path, payload), 413, note=f"sent {len(payload)}")
        if variant == 2:  # one header line over the header limit: 431
            pad = b"X-Pad: " + b"a" * (HEADER_LIMIT + rng.randrange(1, 8192)) + b"\r\n"
            return Case("oversized", request_line("GET", "/health") + pad + b"\r\n", 431, note="long header")
        many = b"".join(b"X-H%d: %s\r\n" % (k, b"v" * 200) for k in range(HEADER_LIMIT // 200 + 10))
        return Case("oversized", request_line("GET", "/health") + many + b"\r\n", 431, note="many headers")

    def garbage_line(i):
        variant = i % 7
        if variant == 0:  # printable noise without spaces
            line = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789/:.-_") for _ in
                           range(rng.randint(1, 60))).encode()
        elif variant == 1:  # random bytes (no CR / LF)
            line = bytes(rng.choice([b for b in range(256) if b not in (10, 13)]) for _ in range(rng.randint(1, 60)))
            if line.endswith(b" HTTP/1.1") or line.endswith(b" HTTP/1.0"):
                line += b"!"
        elif variant == 2:  # an unsupported HTTP version
            line = b"GET /health " + rng.choice([b"HTTP/2.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1", b"HTTP/0.9",
                                                 b"HTTP/1.1 ", b"HTTP/1.1x", b"HTTP/11"])
        elif variant == 3:  # missing parts
            line = rng.choice([b"GET", b"GET /health", b"/health HTTP/1.1", b" /health HTTP/1.1", b"GET  HTTP/1.1",
                               b"", b" ", b"  ", b"HTTP/1.1"])
        elif variant == 4:  # a target that is not a path
            # (not the absolute form http://host/path, which RFC 9112 says a server must accept)
            line = b"GET " + rng.choice([b"health", b"*", b"?x=1", b"v1/models", b"%2fhealth"]) + b" HTTP/1.1"
        elif variant == 5:  # a TLS ClientHello's first bytes, as from an https:// client (CR/LF-free)
            line = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) + \
                bytes(rng.randrange(14, 256) for _ in range(32))
        else:  # NUL bytes in the line
            line = b"GET\x00/health\x00HTTP/1.1"
        return Case("garbage_request_line", line + b"\r\n\r\n", 400, note=repr(line[:30]))

    def bad_header(i):
        path = rng.choice(["/health", COMPLETIONS, "/v1/models"])
        bad = rng.choice([b"NoColonHere", b": empty-name", b":", b" folded continuation", b"\tfolded",
                          b"\x00\x01\x02", b"   ", b"Host", b"X-" + bytes(rng.randrange(33, 58) for _ in range(8))])
        if bad.startswith(b"X-") and b":" in bad:
            bad = bad.replace(b":", b"_")
        where = rng.choice(["first", "last"])
        headers = [b"Host: t", b"Accept: */*"]
        headers.insert(0 if where == "first" else len(headers), bad)
        if path == COMPLETIONS:
            headers.append(b"Content-Length: " + str(len(valid[path])).encode())
        data = request_line("GET" if path != COMPLETIONS else "POST", path).split(b"\r\n")[0] + b"\r\n" + \
            b"\r\n".join(headers) + b"\r\n\r\n" + (valid[path] if path == COMPLETIONS else b"")
        return Case("bad_header", data, 400, note=f"{bad!r} {where}")

    take("truncated_json", truncated)
    take("byte_flip_json", flipped)
    take("not_an_object", not_object)
    assert COUNTS["wrong_type"] >= len(wrong) and COUNTS["out_of_range"] >= len(out_of_range)
    take("wrong_type", from_rules("wrong_type", wrong))
    take("out_of_range", from_rules("out_of_range", out_of_range))
    take("route_or_method", route)
    take("content_length", content_length)
    take("oversized", oversized)
    take("garbage_request_line", garbage_line)
    take("bad_header", bad_header)
    rng.shuffle(cases)
    return cases


def test_case_generation_is_deterministic():
    a, b = generate(random.Random(SEED)), generate(random.Random(SEED))
    assert [c.data for c in a] == [c.data for c in b]
    assert len(a) == TOTAL
    assert collections.Counter(c.kind for c in a) == COUNTS


def test_base_bodies_are_valid(server):
    # Controls: the starting point of every case, framed by the same helpers, is a request the server accepts,
    # so what fails in the flood is the one thing each case breaks.
    for path in (COMPLETIONS, CHAT):
        status, _, body = server.request("POST", path, body=base_body(path))  # through http.client
        assert status == 200, (path, body[:300])
        assert json.loads(body)["usage"]["completion_tokens"] == 1
        r = raw_exchange(server.host, server.port, post(path, encode(base_body(path))))  # as the cases are framed
        assert r.status == 200 and r.closed, r
        assert json.loads(r.body)["usage"]["completion_tokens"] == 1
    for path, method in ROUTES.items():  # the route cases' framing, with the right method
        r = raw_exchange(server.host, server.port, request_line(method, path) + b"Content-Length: 0\r\n\r\n")
        assert r.status == (200 if method == "GET" else 400), (path, r)  # an empty POST body is not JSON
    r = raw_exchange(server.host, server.port, b"GET /health HTTP/1.1\r\nHost: t\r\nAccept: */*\r\nX-Ok: 1\r\n\r\n")
    assert r.status == 200, r  # the bad-header cases' framing with a good header


def greedy_text(server):
    status, _, body = server.request("POST", COMPLETIONS, body={"model": model_id(), "prompt": "The sky is",
                                                               "max_tokens": 8, "temperature": 0})
    assert status == 200, body[:300]
    return json.loads(body)["choices"][0]["text"]


def idle(server):
    m = metrics(server)
    return (m["razor:num_requests_running"] == 0 and m["razor:num_requests_waiting"] == 0 and
            m["razor:kv_cache_usage_perc"] == 0 and m["razor:kv_bytes_held"] == 0) and m


def test_thousand_malformed_requests(server):
    before_text = greedy_text(server)
    before = wait_until(lambda: idle(server), timeout=10)
    assert before, metrics(server)

    cases = generate(random.Random(SEED))
    failures, hangs, seen = [], [], collections.Counter()
    for case in cases:
        try:
            r = raw_exchange(server.host, server.port, case.data, half_close=case.half_close, timeout=10)
        except socket.timeout:
            hangs.append(case)
            continue
        except (AssertionError, OSError) as e:
            failures.append((case, repr(e)))
            continue
        problems = []
        if r.status not in (case.status if isinstance(case.status, tuple) else (case.status,)):
            problems.append(f"status {r.status}, expected {case.status}")
        if not 400 <= r.status <= 499:
            problems.append("not a 4xx")
        if not r.closed:
            problems.append("connection left open")
        if r.headers.get("content-type") != "application/json":
            problems.append(f"content-type {r.headers.get('content-type')!r}")
        if int(r.headers.get("content-length", -1)) != len(r.body):
            problems.append(f"content-length {r.headers.get('content-length')} for a body of {len(r.body)}")
        if r.status == 405 and not r.headers.get("allow"):
            problems.append("405 without Allow")
        try:
            err = json.loads(r.body)["error"]
            if not (isinstance(err.get("message"), str) and err["message"] and isinstance(err.get("type"), str)
                    and err["type"]):
                problems.append(f"error object {err}")
            if case.param is not None:
                allowed = case.param if isinstance(case.param, tuple) else (case.param,)
                if err.get("param") not in allowed:
                    problems.append(f"param {err.get('param')!r}, expected {case.param!r}")
            if case.kind in ("truncated_json", "byte_flip_json") and "json" not in err["message"].lower():
                problems.append(f"message {err['message']!r} does not say the JSON is invalid")
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"body not an OpenAI error: {e!r}")
        if problems:
            failures.append((case, f"{problems} {r!r}"))
        seen[case.kind] += 1

    assert not hangs, f"{len(hangs)} hung: {hangs[:5]}"
    assert not failures, f"{len(failures)} of {TOTAL} wrong; first ones:\n" + "\n".join(
        f"{c!r}\n    -> {why}" for c, why in failures[:15])
    assert seen == COUNTS

    # The server is unharmed and ran none of them.
    status, _, body = server.request("GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    after = wait_until(lambda: idle(server), timeout=10)
    assert after, metrics(server)
    assert after["razor:generation_tokens_total"] == before["razor:generation_tokens_total"]
    assert after["razor:prompt_tokens_total"] == before["razor:prompt_tokens_total"]
    assert greedy_text(server) == before_text
    assert wait_until(lambda: idle(server), timeout=10), metrics(server)


def test_half_sent_requests_do_not_block_others(server):
    # Connections that send part of a request and wait (a slow or stuck client) hold only their own thread:
    # meanwhile /health and a completion are answered at once. (Each would get 408 at the 30 s read deadline.)
    partial = [b"", b"GET /hea", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"pro",
               b"GET /health HTTP/1.1\r\nHost: t\r\n"] * 5
    socks = []
    try:
        for data in partial:
            sk = socket.create_connection((server.host, server.port), timeout=10)
            sk.sendall(data)
            socks.append(sk)
        t0 = time.monotonic()
        r = raw_exchange(server.host, server.port, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
        assert r.status == 200, r
        assert greedy_text(server)
        assert time.monotonic() - t0 < 5
    finally:
        for sk in socks:
            sk.close()
    assert wait_until(lambda: idle(server), timeout=10), metrics(server)
