"""Profile a model's heads, picture them, and hide one needle in a long prompt: full cache vs RazorAttention.

    pip install .[plot]
    python examples/profile_and_needle.py                    # smollm2-135m, a ~8,000-token haystack
    python examples/profile_and_needle.py --model qwen2.5-0.5b --tokens 12000 --out qwen-heads.png

Prints both answers, the KV bytes each cache held and razor's reduction; writes the head heatmap (retrieval heads
outlined) to --out. The first run profiles the model (a few minutes on two cores) and caches the profile beside it.
"""
import argparse
import os
import random
import sys

import razor

FILLER = [
    "The committee met on a grey morning to review the harbour accounts.",
    "Rain had kept the fishing boats in port for most of the week.",
    "A clerk read out the figures for timber, salt and rope, one by one.",
    "Nobody disputed the cost of repairing the northern sea wall.",
    "The lighthouse keeper asked again for a second lamp and more oil.",
    "Someone proposed a new market day; the motion was put off until spring.",
    "The old ferry was sold to a merchant from the southern coast.",
    "Children gathered on the quay to watch the gulls fight over scraps.",
]


def haystack(llm, tokens, depth, needle, seed):
    """About `tokens` tokens of filler sentences with the needle at `depth` (0..1) of the way through."""
    rng = random.Random(seed)
    sentences = []
    while len(llm.tokenize(" ".join(sentences))) < tokens:
        sentences.extend(rng.sample(FILLER, len(FILLER)))
    sentences.insert(int(depth * len(sentences)), needle)
    return " ".join(sentences)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="catalogue name or path (default: smollm2-135m)")
    ap.add_argument("--tokens", type=int, default=8000, help="haystack length in tokens (default: 8000)")
    ap.add_argument("--window-min", type=int, default=4000,
                    help="razor's smallest window S0 (default: 4000, the paper's; a prompt shorter is kept whole)")
    ap.add_argument("--depth", type=float, default=0.4, help="needle depth, 0..1 (default: 0.4)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: every core)")
    ap.add_argument("--out", default="heads.png", help="heatmap PNG (default: heads.png; an existing file is kept)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not 0 <= args.depth <= 1 or args.tokens < 100:
        ap.error("--depth is 0..1 and --tokens at least 100")

    code = f"{random.Random(args.seed).randrange(1000, 9999)}"
    needle = f"The secret passcode of the harbour office is {code}."
    question = "What is the secret passcode of the harbour office? Answer with the number only."
    answers = {}
    for kv in ("full", "razor"):
        llm = razor.LLM(args.model, kv=kv, threads=args.threads, window_min=args.window_min)
        if kv == "razor":
            profile = llm.profile(progress=True)
            print(f"{len(profile.retrieval)} retrieval heads of {profile.kv_induction.size} KV heads")
            if os.path.exists(args.out):
                print(f"{args.out} exists and is kept: no heatmap (pass another --out)")
            else:
                try:
                    profile.plot(path=args.out)
                    print(f"head heatmap: {args.out}")
                except ImportError:
                    print("no heatmap: pip install matplotlib")
        text = haystack(llm, args.tokens, args.depth, needle, args.seed)
        out = llm.create_chat_completion([{"role": "user", "content": f"{text}\n\n{question}"}], max_tokens=24)
        stats = llm.kv_stats()
        answer = out["choices"][0]["message"]["content"].strip()
        answers[kv] = answer
        print(f"{kv:>5}: {answer!r:<24} found={code in answer}  KV {stats['bytes'] / 2**20:7.2f} MiB "
              f"of a full {stats['full_bytes'] / 2**20:7.2f} MiB (reduction {100 * stats['reduction']:.1f} %), "
              f"{stats['sequence_tokens']} tokens")
    print(f"needle {code}: full {'found' if code in answers['full'] else 'missed'}, "
          f"razor {'found' if code in answers['razor'] else 'missed'}")


if __name__ == "__main__":
    sys.exit(main())
