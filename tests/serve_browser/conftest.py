"""The session's razor-mode `razor serve` (serve_web_support.Server with RAZOR_ARGS), shared by the tests here.
It runs on a head profile this session makes itself (`razor profile`, a short block: seconds), never on one a
previous run left cached beside the model."""
import os
import pathlib
import subprocess

import pytest

from serve_web_support import REPO, RAZOR_ARGS, Server


@pytest.fixture(scope="session")
def razor_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    binary = pathlib.Path(os.environ.get("RAZOR_BIN", REPO / "build" / "release" / "razor"))
    model = os.environ.get("RAZOR_TEST_MODEL")
    if not binary.exists() or not model:
        pytest.fail("the razor binary (RAZOR_BIN) and RAZOR_TEST_MODEL are needed (scripts/test.sh sets both)")
    profile = tmp / "profile.json"
    made = subprocess.run([str(binary), "profile", "-m", model, "-t", "1", "-o", str(profile), "--block", "64",
                           "--repeats", "2"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if made.returncode != 0 or not profile.exists():
        pytest.fail(f"razor profile failed ({made.returncode}):\n{made.stderr[-2000:]}")
    server = Server(RAZOR_ARGS + ["--profile", str(profile)], tmp / "razor_serve.log", start_timeout=300)
    yield server
    server.stop()
