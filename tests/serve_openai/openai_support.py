"""Shared pieces of the `razor serve` tests through the official `openai` client (fixtures in conftest.py):
the served-model id as a client expects it (derived from RAZOR_TEST_MODEL, not asked of the server), a client
factory, `razor run` as an independent path to the same greedy text, a raw-socket HTTP exchange for requests no
client would send, and a reader of GET /metrics. The server process itself is serve_web_support.Server (the
browser tests' helper: the real binary on RAZOR_TEST_MODEL at an ephemeral port), imported from there."""
import errno
import os
import pathlib
import re
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "serve_browser"))
from serve_web_support import Server, wait_until  # noqa: E402  (the shared server helper; not edited here)

openai = pytest.importorskip("openai")

__all__ = ["Server", "wait_until", "openai", "REPO", "razor_bin", "model_path", "model_id", "make_client",
           "razor_run", "RawResponse", "raw_exchange", "metrics"]

API_KEY = "sk-razor-test"  # any key: a server started without --api-key ignores it


def razor_bin():
    return pathlib.Path(os.environ.get("RAZOR_BIN", REPO / "build" / "release" / "razor"))


def model_path():
    model = os.environ.get("RAZOR_TEST_MODEL")
    if not model:
        pytest.fail("RAZOR_TEST_MODEL not set (scripts/test.sh sets it)")
    return model


def model_id():
    """The `model` a client names: razor serve documents it as the model file's name (cmd_serve.cpp ModelId)."""
    return pathlib.Path(model_path()).name


def make_client(server, api_key=API_KEY):
    # No retries: a 5xx or a dropped connection must show up as the error it is, not be retried away.
    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=120)


def razor_run(prompt, n_predict, chat=False, extra=()):
    """`razor run` greedy: (completion text, prompt tokens, generated tokens, stop reason). Its stdout is exactly
    the generated text followed by one newline (cmd_run.cpp: on_text writes each piece, then printf("\\n")); the
    figures come from its stderr summary line `prompt: N tokens, ... | generated: M tokens, ... | stop: R | ...`
    (R: length, eog = the model's end token, stop-string, context)."""
    args = [str(razor_bin()), "run", "-m", model_path(), "-p", prompt, "-n", str(n_predict), "--temp", "0",
            "--no-progress", *(["--chat"] if chat else []), *extra]
    p = subprocess.run(args, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (args, p.stderr.decode(errors="replace"))
    out = p.stdout.decode("utf-8")
    assert out.endswith("\n"), repr(out[-40:])
    err = p.stderr.decode(errors="replace")
    m = re.search(r"prompt: (\d+) tokens.*\| generated: (\d+) tokens.*\| stop: ([a-z-]+)", err)
    assert m, err
    return out[:-1], int(m.group(1)), int(m.group(2)), m.group(3)


class RawResponse:
    def __init__(self, status, reason, headers, body, closed):
        self.status, self.reason, self.headers, self.body, self.closed = status, reason, headers, body, closed

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers} {self.body[:200]!r} closed={self.closed}>"


def _recv(sock, buf):
    """Appends one recv to buf; False at the end of the stream (EOF, or a reset after the server closed)."""
    try:
        chunk = sock.recv(65536)
    except ConnectionResetError:
        return False
    if not chunk:
        return False
    buf += chunk
    return True


def raw_exchange(host, port, data, half_close=False, timeout=10.0):
    """Sends `data` as is on a fresh connection (then shuts the write side when half_close), reads one HTTP
    response (status line, headers, Content-Length body) and checks the server then closes the connection.
    Raises socket.timeout when the server does not answer (a hang). A server that answers before reading the
    whole request (413 / 431 / 411) and closes may reset the connection: send errors are tolerated, the reply is
    still read; a reset after the complete reply counts as closed."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            if not _recv(sock, buf):
                raise AssertionError(f"connection ended before a complete response head: {bytes(buf[:300])!r}")
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.[01] (\d{3}) (.*)", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep, f"bad response header {line!r}"
            headers[name.strip().lower()] = value.strip()
        body = bytearray(rest)
        length = headers.get("content-length")
        if length is not None:
            want = int(length)
            while len(body) < want:
                if not _recv(sock, body):
                    raise AssertionError(f"body cut short: {len(body)} of {want} bytes")
            extra = bytearray()
            closed = not _recv(sock, extra)  # the server closes every connection after its response
            body += extra
        else:  # no length: the body runs to the close
            while _recv(sock, body):
                pass
            closed = True
        return RawResponse(int(m.group(1)), m.group(2), headers, bytes(body), closed)
    finally:
        sock.close()


def metrics(server):
    """GET /metrics (Prometheus text) as {name: value} for the razor:* samples."""
    status, _, body = server.request("GET", "/metrics")
    assert status == 200, body[:300]
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("razor:") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out
