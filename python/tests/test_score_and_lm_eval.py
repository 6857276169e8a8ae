"""llm.score (a continuation's log-probabilities under the KV policy) and the lm-evaluation-harness model, on
two small tasks written here: a multiple-choice one (loglikelihood) and a generation one (generate_until)."""
import json
import os

import numpy as np
import pytest

import razor


def log_softmax(rows):
    rows = rows.astype(np.float64)
    m = rows.max(axis=-1, keepdims=True)
    return rows - m - np.log(np.exp(rows - m).sum(axis=-1, keepdims=True))


def test_score_full_equals_log_softmax_of_logits(full_llm):
    context = full_llm.tokenize("The quick brown fox jumps over the")
    continuation = full_llm.tokenize(" lazy dog and runs away", add_bos=False)
    logprob, greedy = full_llm.score(context, continuation)
    assert logprob.shape == greedy.shape == (len(continuation),)
    assert logprob.dtype == np.float64 and greedy.dtype == bool
    rows = log_softmax(full_llm.logits(context + continuation))[len(context) - 1:-1]
    expected = rows[np.arange(len(continuation)), continuation]
    np.testing.assert_allclose(logprob, expected, atol=2e-3)
    np.testing.assert_array_equal(greedy, rows.argmax(axis=-1) == continuation)
    assert (logprob < 0).all()


def test_score_on_a_compressed_cache_follows_decoding(razor_llm, full_llm, long_prompt):
    """The continuation razor itself decodes greedily is greedy at every position when scored in one step on
    the compressed cache (the step appends as decoding does), and its probabilities are not the full cache's."""
    ids = razor_llm.tokenize(long_prompt)
    out = razor_llm.generate(ids, max_tokens=8)
    assert razor_llm.kv_stats()["heads_compressed"] > 0
    continuation = out["token_ids"]
    assert len(continuation) == 8
    logprob, greedy = razor_llm.score(ids, continuation)
    assert greedy.all(), greedy
    full_logprob, _ = full_llm.score(ids, continuation)
    assert not np.allclose(logprob, full_logprob, atol=1e-6)


def test_score_errors(full_llm):
    with pytest.raises(razor.RazorError, match="empty context"):
        full_llm.score([], [1, 2])
    with pytest.raises(razor.RazorError, match="empty continuation"):
        full_llm.score([1], [])
    with pytest.raises(razor.RazorError, match="longer than the context"):
        full_llm.score([1] * full_llm.n_ctx, [2, 3])
    with pytest.raises(razor.RazorError, match="out of range"):
        full_llm.score([1], [full_llm.n_vocab])


def test_score_fills_the_context_exactly(model_path):
    """The last continuation token is scored, never stepped: context + continuation may be one past ctx."""
    llm = razor.LLM(model_path, kv="full", threads=2, ctx=64)
    logprob, _ = llm.score([1] * 62, [2, 3, 4])  # 64 tokens stepped
    assert logprob.shape == (3,) and np.isfinite(logprob).all()
    with pytest.raises(razor.RazorError, match="65 tokens are longer than the context of 64"):
        llm.score([1] * 63, [2, 3, 4])


def test_score_with_decode_fold_steps_like_decoding(model_path, quick_profile, long_prompt):
    """decode_fold folds the window after each step: scored a token per step, razor's own greedy continuation
    is greedy everywhere."""
    llm = razor.LLM(model_path, kv="razor", threads=2, profile=quick_profile, window_min=256, decode_fold=True)
    ids = llm.tokenize(long_prompt)
    out = llm.generate(ids, max_tokens=6)
    _, greedy = llm.score(ids, out["token_ids"])
    assert greedy.all(), greedy


# -- lm-evaluation-harness ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_eval():
    if os.environ.get("RAZOR_REQUIRE_LM_EVAL") == "1":  # CI installs it: a missing harness fails, not skips
        return __import__("lm_eval")
    return pytest.importorskip("lm_eval")

QUESTIONS = [
    ("The capital of France is", [" Paris", " banana", " seventeen"]),
    ("One, two, three, four,", [" five", " purple", " yesterday"]),
    ("The sun rises in the", [" east", " spoon", " loudly"]),
    ("Water is made of hydrogen and", [" oxygen", " cheese", " Tuesday"]),
]


def write_task(directory, name, rows, spec):
    data = directory / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    lines = [f"task: {name}", "dataset_path: json", "dataset_kwargs:", "  data_files:", f"    test: {data}",
             "test_split: test", *spec]
    (directory / f"{name}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def harness_lm(model_path, lm_eval):
    from razor.lm_eval_model import RazorLM

    return RazorLM(pretrained=model_path, kv="full", threads=2)


def test_lm_eval_tasks_through_razor(harness_lm, full_llm, tmp_path, monkeypatch):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    # The target of each question: the choice the full cache's own logits rank first (computed here, through
    # llm.logits, not through the harness), so a harness model that scores anything else gets acc < 1.
    rows = []
    for question, choices in QUESTIONS:
        sums = []
        for choice in choices:
            q = full_llm.tokenize(question)
            c = full_llm.tokenize(question + choice)[len(q):]
            rows_lp = log_softmax(full_llm.logits(q + c))[len(q) - 1:-1]
            sums.append(rows_lp[np.arange(len(c)), c].sum())
        rows.append({"question": question, "choices": choices, "answer": int(np.argmax(sums))})
    assert [r["answer"] for r in rows].count(0) >= 3  # the sensible answer wins for most: a working model
    write_task(tmp_path, "razor_choice", rows,
               ["output_type: multiple_choice", "doc_to_text: question", "doc_to_choice: choices",
                "doc_to_target: answer", "target_delimiter: ''", "metric_list:", "  - metric: acc"])
    # generate_until: the target is razor generate's own greedy text up to the first newline, so exact match
    # checks that the harness's request reaches generate with its prompt, length and stop string intact.
    prompts = ["List three colours:", "Count from one to five:"]
    gen_rows = []
    for p in prompts:
        text = full_llm.generate(p, max_tokens=12)["text"]
        gen_rows.append({"prompt": p, "target": text.split("\n")[0]})
    write_task(tmp_path, "razor_gen", gen_rows,
               ["output_type: generate_until", "doc_to_text: prompt", "doc_to_target: target",
                "generation_kwargs:", "  until: [\"\\n\"]", "  max_gen_toks: 12", "  do_sample: false",
                "metric_list:", "  - metric: exact_match"])
    results = simple_evaluate(model=harness_lm, tasks=["razor_choice", "razor_gen"],
                              task_manager=TaskManager(include_path=str(tmp_path)), limit=None,
                              log_samples=False)["results"]
    assert results["razor_choice"]["acc,none"] == 1.0, results
    assert results["razor_gen"]["exact_match,none"] == 1.0, results


class Request:  # the harness's Instance, as far as a model reads it
    def __init__(self, *args):
        self.args = args


def test_loglikelihood_rolling_in_one_window_and_in_several(harness_lm, full_llm, model_path, lm_eval):
    from razor.lm_eval_model import RazorLM

    text = "The quick brown fox jumps over the lazy dog. " * 12
    ids = full_llm.tokenize(text, add_bos=False)
    assert 100 < len(ids) < 200
    # One window: every token given all before it, after the prefix token (BOS or EOS), from llm.logits.
    prefix = harness_lm.prefix_token_id
    rows = log_softmax(full_llm.logits([prefix] + ids))[:-1]
    expected = float(rows[np.arange(len(ids)), ids].sum())
    (got,) = harness_lm.loglikelihood_rolling([Request(text)])
    assert got == pytest.approx(expected, abs=0.02)
    # ctx 64: disjoint windows, each filling the whole context (the last token of each scored, not stepped).
    small = RazorLM(pretrained=model_path, kv="full", threads=2, ctx=64)
    (windowed,) = small.loglikelihood_rolling([Request(text)])
    assert np.isfinite(windowed) and windowed < 0
    assert windowed < expected  # less context per token: less likely text (repetitive text gains from context)


def test_lm_eval_model_argument_string(model_path, quick_profile, lm_eval):
    from razor.lm_eval_model import RazorLM

    lm = RazorLM.create_from_arg_string(f"pretrained={model_path},kv=razor,threads=1,window_min=64,"
                                        f"profile={quick_profile}")
    assert lm.llm.kv == "razor" and lm.max_length == lm.llm.n_ctx
    with pytest.raises(TypeError, match="unexpected keyword"):
        RazorLM.create_from_arg_string(f"pretrained={model_path},no_such_flag=3")
