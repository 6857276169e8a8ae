"""Shared fixtures: the default model (RAZOR_TEST_MODEL, as the C++ tests; else the catalogue's default, pulled
into the cache), the razor binary the CLI comparisons run (RAZOR_BINARY, else build/release/razor), and one
quick head profile (block 256 x 2) made once, so razor sequences need no minutes-long default profile."""
import os
import pathlib

import pytest

import razor

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def model_path():
    return os.environ.get("RAZOR_TEST_MODEL") or razor.resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def razor_binary():
    path = pathlib.Path(os.environ.get("RAZOR_BINARY", REPO / "build" / "release" / "razor"))
    if not path.exists():
        pytest.fail(f"{path} missing: build the CLI first (scripts/test.sh does) or set RAZOR_BINARY")
    return str(path)


@pytest.fixture(scope="session")
def full_llm(model_path):
    return razor.LLM(model_path, kv="full", threads=2)


@pytest.fixture(scope="session")
def quick_profile(full_llm, tmp_path_factory):
    profile = full_llm.profile(block=256, repeats=2)
    path = tmp_path_factory.mktemp("profile") / "smollm2.razor-profile.json"
    profile.save(str(path))
    return str(path)


@pytest.fixture(scope="session")
def razor_llm(model_path, quick_profile):
    return razor.LLM(model_path, kv="razor", threads=2, profile=quick_profile, window_min=256)


@pytest.fixture(scope="session")
def long_prompt():
    """~1,900 tokens of the repository's own docs: long enough that razor drops tokens at window_min 256."""
    text = (REPO / "docs" / "EVAL.md").read_text(encoding="utf-8")
    return text[:7000]
