"""Fixtures of the `razor serve` tests through the official `openai` client: one full-KV server per test module
(module scope, so each file's tests share one process and the modules do not see each other's traffic), and an
`openai.OpenAI` client pointed at it."""
import pytest

from openai_support import Server, make_client

# The default KV policy, full (no head profile needed, so no profiling at start).
SERVE_ARGS = ["--kv", "full"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(SERVE_ARGS, tmp_path_factory.mktemp("serve_openai") / "razor_serve.log", start_timeout=180)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    c = make_client(server)
    yield c
    c.close()
