"""Generation, streaming, chat completions and the token API, against the CLI engine and transformers."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import razor

REPO = pathlib.Path(__file__).resolve().parents[2]
PROMPT = "The three most important rules of writing clear code are"


def test_greedy_generate_equals_razor_run(full_llm, razor_binary, model_path):
    out = full_llm.generate(PROMPT, max_tokens=24)
    cli = subprocess.run([razor_binary, "run", "-m", model_path, "-p", PROMPT, "-n", "24", "-t", "2",
                          "--device", "cpu", "--no-progress"], capture_output=True, text=True, check=True)
    assert cli.stdout.rstrip("\n") == out["text"]
    assert len(out["token_ids"]) == 24
    assert out["stop_reason"] == "length"


def test_razor_greedy_equals_razor_run_with_the_same_profile(razor_llm, razor_binary, model_path, quick_profile,
                                                             long_prompt):
    out = razor_llm.generate(long_prompt, max_tokens=16)
    cli = subprocess.run([razor_binary, "run", "-m", model_path, "-p", long_prompt, "-n", "16", "-t", "2",
                          "--device", "cpu", "--no-progress", "--kv", "razor", "--profile", quick_profile,
                          "--window-min", "256"], capture_output=True, text=True, check=True)
    assert cli.stdout.rstrip("\n") == out["text"]
    assert razor_llm.kv_stats()["heads_compressed"] > 0


def test_result_has_timings_and_kv(full_llm):
    out = full_llm.generate(PROMPT, max_tokens=8)
    t = out["timings"]
    assert t["prompt_tokens"] == len(full_llm.tokenize(PROMPT))
    assert t["generated_tokens"] == 8
    assert t["prefill_s"] > 0 and t["decode_s"] > 0 and t["decode_tok_s"] > 0
    assert out["kv"]["mode"] == "full"
    assert out["kv"]["sequence_tokens"] == t["prompt_tokens"] + 7  # the last token is sampled, not run


def test_stream_yields_the_same_text_piece_by_piece(full_llm):
    whole = full_llm.generate(PROMPT, max_tokens=20, temperature=0.8, seed=7)
    pieces = list(full_llm.generate(PROMPT, max_tokens=20, temperature=0.8, seed=7, stream=True))
    assert len(pieces) > 5
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == whole["text"]
    assert full_llm.last_result["token_ids"] == whole["token_ids"]


def test_seed_makes_sampling_reproducible_and_different_seeds_differ(full_llm):
    a = full_llm.generate(PROMPT, max_tokens=24, temperature=1.2, top_k=0, top_p=1.0, min_p=0.0, seed=1)
    b = full_llm.generate(PROMPT, max_tokens=24, temperature=1.2, top_k=0, top_p=1.0, min_p=0.0, seed=1)
    c = full_llm.generate(PROMPT, max_tokens=24, temperature=1.2, top_k=0, top_p=1.0, min_p=0.0, seed=2)
    assert a["token_ids"] == b["token_ids"]
    assert a["token_ids"] != c["token_ids"]


def test_stop_strings_cut_the_text(full_llm):
    out = full_llm.generate("Count: one, two, three,", max_tokens=30, stop=[" six"])
    assert out["stop_reason"] == "stop-string"
    assert " six" not in out["text"] and "five" in out["text"]


def test_two_streams_interleave(full_llm):
    a = full_llm.generate("Count: one, two,", max_tokens=10, stream=True)
    b = full_llm.generate(PROMPT, max_tokens=10, stream=True)
    got_a, got_b = [], []
    for pa, pb in zip(a, b):
        got_a.append(pa)
        got_b.append(pb)
    got_a += list(a)
    got_b += list(b)
    assert "".join(got_a) == full_llm.generate("Count: one, two,", max_tokens=10)["text"]
    assert "".join(got_b) == full_llm.generate(PROMPT, max_tokens=10)["text"]


def test_chat_completion_is_openai_shaped(full_llm):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]
    r = full_llm.create_chat_completion(messages, max_tokens=12)
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-")
    assert isinstance(r["created"], int)
    choice = r["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] and u["completion_tokens"] > 0
    chunks = list(full_llm.create_chat_completion(messages, max_tokens=12, stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == choice["finish_reason"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == choice["message"]["content"]
    json.dumps(r)  # plain JSON types only


def test_chat_prompt_is_the_cli_chat_prompt(full_llm, razor_binary, model_path):
    r = full_llm.create_chat_completion([{"role": "user", "content": "Give me one tip for clear code."}],
                                        max_tokens=16)
    cli = subprocess.run([razor_binary, "run", "-m", model_path, "--chat", "-p", "Give me one tip for clear code.",
                          "-n", "16", "-t", "2", "--device", "cpu", "--no-progress"],
                         capture_output=True, text=True, check=True)
    assert cli.stdout.rstrip("\n") == r["choices"][0]["message"]["content"]


def test_tokenize_detokenize_round_trip(full_llm):
    text = "héllo wörld — 123 <|im_start|>"
    ids = full_llm.tokenize(text, add_bos=False)
    assert all(isinstance(i, int) for i in ids)
    assert full_llm.detokenize(ids) == text
    special = full_llm.tokenize("<|im_start|>", add_bos=False, special=True)
    assert len(special) == 1 and len(ids) > 3
    assert full_llm.tokenize(b"abc", add_bos=False) == full_llm.tokenize("abc", add_bos=False)


def test_token_ids_are_accepted_as_the_prompt(full_llm):
    ids = full_llm.tokenize(PROMPT)
    assert full_llm.generate(ids, max_tokens=8)["text"] == full_llm.generate(PROMPT, max_tokens=8)["text"]
    assert full_llm.generate(np.array(ids), max_tokens=8)["token_ids"] == full_llm.generate(ids, max_tokens=8)["token_ids"]
