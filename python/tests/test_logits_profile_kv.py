"""Logits against transformers' goldens (the bound the C++ SmolLM2 test uses), the head profile as numpy arrays
and a picture, and the KV statistics of razor against a full cache."""
import math
import pathlib
import sys

import numpy as np
import pytest

import razor

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "golden_scripts"))
import rzgl  # noqa: E402  (the goldens' reader, numpy only)


@pytest.fixture(scope="module")
def golden():
    return rzgl.read(str(REPO / "tests" / "fixtures" / "hf" / "smollm2_logits.rzgl"))


def test_logits_shape_and_dtype(full_llm):
    ids = full_llm.tokenize("Hello there, how are you?")
    logits = full_llm.logits(ids)
    assert isinstance(logits, np.ndarray)
    assert logits.dtype == np.float32 and logits.shape == (len(ids), full_llm.n_vocab)
    assert np.isfinite(logits).all()


def test_exact_logits_match_transformers(model_path, golden):
    llm = razor.LLM(model_path, kv="full", kv_type="f32", exact=True, threads=2)
    ids = [int(t) for t in golden.token_ids[:128]]
    logits = llm.logits(ids)
    worst = 0.0
    for p in range(len(ids)):
        top_ids, top_logits = golden.top_ids[p], golden.top_logits[p]
        err = np.abs(logits[p, top_ids] - top_logits).max() / golden.max_abs[p]
        worst = max(worst, float(err))
    assert worst <= 1e-3, worst  # tests/model_smollm2_hf_test.cpp's bound for the exact path


def test_logits_of_the_last_position_pick_the_token_generate_picks(full_llm):
    ids = full_llm.tokenize("The capital of France is")
    first = full_llm.generate(ids, max_tokens=1)["token_ids"][0]
    assert int(full_llm.logits(ids)[-1].argmax()) == first


def test_razor_logits_of_a_prompt_are_the_full_caches(razor_llm, full_llm, long_prompt):
    ids = full_llm.tokenize(long_prompt)[:600]
    np.testing.assert_array_equal(razor_llm.logits(ids)[-1].argmax(), full_llm.logits(ids)[-1].argmax())


def test_profile_arrays(razor_llm):
    p = razor_llm.profile()
    assert p.kv_induction.shape == (30, 3) and p.kv_echo.shape == (30, 3)
    assert p.q_induction.shape == (30, 9) and p.q_induction.dtype == np.float32
    assert ((p.kv_induction >= 0) & (p.kv_induction <= 1)).all()
    # a KV head's score is the max over its group of three query heads
    np.testing.assert_allclose(p.kv_induction, p.q_induction.reshape(30, 3, 3).max(axis=2))
    assert p.retrieval.dtype == np.int32 and p.retrieval.shape[1] == 2
    assert len(p.by_induction) == math.ceil(0.14 * 90)
    assert p.retrieval_mask.sum() == len(p.retrieval)
    assert p.params["block"] == 256 and p.params["repeats"] == 2
    assert p.model["n_layers"] == 30


def test_profile_plot_and_save(razor_llm, tmp_path):
    pytest.importorskip("matplotlib")
    p = razor_llm.profile()
    png = tmp_path / "heads.png"
    ax = p.plot(path=str(png))
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(ax.patches) == len(p.retrieval)
    out = tmp_path / "profile.json"
    p.save(str(out))
    with pytest.raises(FileExistsError):
        p.save(str(out))  # nothing the user owns is overwritten without asking
    p.save(str(out), overwrite=True)
    assert '"razor-head-profile"' in out.read_text()


def test_a_new_profile_changes_the_selected_heads(model_path, quick_profile):
    llm = razor.LLM(model_path, kv="razor", threads=2, profile=quick_profile)
    wide = llm.profile(block=128, repeats=2, induction_ratio=0.3)
    assert len(wide.by_induction) == math.ceil(0.3 * 90)
    assert len(llm.profile().by_induction) == len(wide.by_induction)  # installed for this LLM


def test_kv_stats_razor_against_full(razor_llm, full_llm, long_prompt):
    with pytest.raises(razor.RazorError, match="no prompt has run"):
        razor.LLM(full_llm.model_path, kv="full", threads=1).kv_stats()
    razor_llm.generate(long_prompt, max_tokens=4)
    r = razor_llm.kv_stats()
    full_llm.generate(long_prompt, max_tokens=4)
    f = full_llm.kv_stats()
    assert r["sequence_tokens"] == f["sequence_tokens"] > 1500
    assert f["reduction"] == 0.0 and f["bytes"] == f["full_bytes"]
    assert r["full_bytes"] == f["full_bytes"]
    assert r["heads_compressed"] > 0 and r["heads_full"] + r["heads_compressed"] <= r["heads"] == 90
    assert r["reduction"] > 0.5, r["reduction"]
    assert r["head_tokens"].shape == (30, 3) and r["head_bytes"].shape == (30, 3)
    assert int(r["head_bytes"].sum()) == r["bytes"]
    profile = razor_llm.profile()
    compressed = r["head_compressed"].astype(bool)
    assert not (compressed & profile.retrieval_mask).any()  # retrieval heads keep every token
    assert (r["head_tokens"][profile.retrieval_mask] == r["sequence_tokens"]).all()
    # window W = max(window_min, window_frac * prompt), computed at compression; then sinks + W + decoded tokens
    assert 256 <= r["window"] < r["sequence_tokens"] // 2
    assert (r["head_tokens"][compressed] <= 4 + r["window"] + 8).all()


def test_streaming_matches_razors_bytes(model_path, quick_profile, razor_llm, long_prompt):
    s = razor.LLM(model_path, kv="streaming", threads=2, profile=quick_profile, window_min=256)
    s.generate(long_prompt, max_tokens=2)
    razor_llm.generate(long_prompt, max_tokens=2)
    a, b = s.kv_stats(), razor_llm.kv_stats()
    assert a["heads_compressed"] == 90
    assert abs(a["bytes"] - b["bytes"]) / b["bytes"] < 0.1
