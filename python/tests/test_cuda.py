"""device="cuda": the package on the GPU engine. Skips unless the extension was built with CUDA (the CI wheel is
CPU-only) and a GPU is present; bench/gpu_python_check.sh runs it on the H200."""
import subprocess

import numpy as np
import pytest

import razor

pytestmark = pytest.mark.skipif(not razor.built_with_cuda(), reason="the extension was built without CUDA")


@pytest.fixture(scope="module")
def cuda_llm(model_path):
    try:
        return razor.LLM(model_path, device="cuda", kv="full")
    except razor.RazorError as e:
        if "CUDA driver" in str(e) or "CUDA device" in str(e) or "compute capability" in str(e):
            pytest.skip(f"no usable GPU: {e}")
        raise


def test_cuda_greedy_equals_cli(cuda_llm, model_path, razor_binary):
    prompt = "The three primary colours are"
    ours = cuda_llm.generate(prompt, max_tokens=24)["text"]
    cli = subprocess.run([razor_binary, "run", "-m", model_path, "-p", prompt, "-n", "24", "--temp", "0",
                          "--device", "cuda", "--kv", "full"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, check=True).stdout
    assert "cuda" in cuda_llm.backend.lower()
    assert cli in (ours, ours + "\n")  # razor run ends its output with a newline


def test_cuda_logits_agree_with_cpu(cuda_llm, full_llm, long_prompt):
    ids = full_llm.tokenize(long_prompt)[:512]
    gpu = cuda_llm.logits(ids)
    cpu = full_llm.logits(ids)
    assert gpu.shape == cpu.shape == (512, full_llm.n_vocab) and gpu.dtype == np.float32
    # bf16 weights on the GPU against the GGUF's own on the CPU: the same predictions almost everywhere.
    agree = (gpu.argmax(axis=1) == cpu.argmax(axis=1)).mean()
    assert agree > 0.9, agree
    corr = np.corrcoef(gpu[-1], cpu[-1])[0, 1]
    assert corr > 0.98, corr


def test_cuda_razor_cache_compresses(model_path, quick_profile, long_prompt):
    llm = razor.LLM(model_path, device="cuda", kv="razor", profile=quick_profile, window_min=256)
    out = llm.generate(long_prompt, max_tokens=8)
    stats = llm.kv_stats()
    assert len(out["token_ids"]) == 8
    assert stats["heads_compressed"] > 0 and stats["reduction"] > 0.5, stats["reduction"]
    logprob, greedy = llm.score(llm.tokenize(long_prompt), out["token_ids"])
    assert greedy.all(), greedy
