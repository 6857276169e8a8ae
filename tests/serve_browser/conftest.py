"""The session's razor-mode `razor serve` (serve_web_support.Server with RAZOR_ARGS), shared by the tests here."""
import pytest

from serve_web_support import RAZOR_ARGS, Server


@pytest.fixture(scope="session")
def razor_server(tmp_path_factory):
    server = Server(RAZOR_ARGS, tmp_path_factory.mktemp("serve") / "razor_serve.log", start_timeout=900)
    yield server
    server.stop()
