"""Shared pieces of the `razor serve` web tests (their fixture is in conftest.py): the real binary (RAZOR_BIN,
else build/release/razor) started on the test model (RAZOR_TEST_MODEL) at an ephemeral port, read from the
`razor serve: listening on http://HOST:PORT` line on stderr, and small stdlib HTTP helpers."""
import http.client
import json
import os
import pathlib
import re
import subprocess
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"razor serve: listening on http://([^:\s]+):(\d+)")
# A prompt of ~300 tokens: past razor's sinks + window (--window-min 64), so its non-retrieval heads are cut.
SENTENCE = "The quick brown fox jumps over the lazy dog while the farmer counts his sheep in the green valley. "
LONG_PROMPT = SENTENCE * 16 + "Now write a short story about the fox and the farmer."


class Server:
    def __init__(self, args, log_path, start_timeout):
        binary = pathlib.Path(os.environ.get("RAZOR_BIN", REPO / "build" / "release" / "razor"))
        model = os.environ.get("RAZOR_TEST_MODEL")
        if not binary.exists():
            pytest.fail(f"{binary} missing: build the CLI first (scripts/test.sh does) or set RAZOR_BIN")
        if not model:
            pytest.fail("RAZOR_TEST_MODEL not set (scripts/test.sh sets it)")
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([str(binary), "serve", "-m", model, "--port", "0", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + start_timeout  # the first razor start profiles the model (minutes)
        while True:
            m = LISTENING.search(self.log())
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
            if self.proc.poll() is not None:
                pytest.fail(f"razor serve exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"razor serve not listening after {start_timeout} s:\n{self.log()}")
            time.sleep(0.1)
        self.url = f"http://{self.host}:{self.port}"

    def log(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers dict lower-cased, body bytes) of one request."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            h = dict(headers or {})
            if data is not None:
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get_json(self, path, headers=None):
        status, _, body = self.request("GET", path, headers=headers)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)


class StreamingChat(threading.Thread):
    """A streaming chat request read in the background: `deltas` grows as chunks arrive, `done` at [DONE]."""

    def __init__(self, server, body):
        super().__init__(daemon=True)
        self.server, self.body = server, body
        self.deltas, self.done, self.error = [], False, None

    def run(self):
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=300)
        try:
            conn.request("POST", "/v1/chat/completions", body=json.dumps(self.body).encode(),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            if r.status != 200:
                self.error = f"{r.status}: {r.read()[:300]!r}"
                return
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.decode().strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    self.done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    self.error = chunk["error"]
                    break
                delta = chunk["choices"][0].get("delta", {}) if chunk["choices"] else {}
                if delta.get("content"):
                    self.deltas.append(delta["content"])
        except Exception as e:  # reported by the test that reads .error
            self.error = repr(e)
        finally:
            conn.close()


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


# Razor mode on one thread, with a short window so a ~300-token prompt compresses (conftest.py adds the
# `--profile` it made for the session).
RAZOR_ARGS = ["-t", "1", "--kv", "razor", "--window-min", "64", "--window-frac", "0.1"]
