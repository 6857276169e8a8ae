"""Reader/writer for the RZGL logits-golden binary format (version 1).

Layout (all little-endian, no padding, no alignment):

    char[4]  magic        = "RZGL"
    u32      version      = 1
    u32      n_positions  (N)
    u32      vocab        (V)
    u32      k_top        (K)   number of (id, logit) pairs per position, sorted by logit desc
    u32      k_fixed      (F)   number of fixed-id logits per position
    i32      token_ids[N]       input token ids, position p = token_ids[p] (positions start at 0)
    i32      fixed_ids[F]       same ids for every position
    then N records, one per position p (logits predicting token p+1):
        f32  max_abs            max_v |logit[p, v]| over the full vocab
        f32  lse                logsumexp_v logit[p, v] over the full vocab (computed in float64)
        f32  gap                top1 - top2 logit (computed in float64, stored as f32)
        K x (i32 id, f32 logit) top-K, logit descending; ties broken by ascending id
        F x f32 logit           logit[p, fixed_ids[j]]

With K == V and F == 0 a record holds the complete logit vector (as a permutation).
Record size = 12 + 8*K + 4*F bytes; file size = 24 + 4*N + 4*F + N*record.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"RZGL"
VERSION = 1


@dataclass
class Rzgl:
    vocab: int
    token_ids: np.ndarray  # (N,) int32
    fixed_ids: np.ndarray  # (F,) int32
    max_abs: np.ndarray  # (N,) float32
    lse: np.ndarray  # (N,) float32
    gap: np.ndarray  # (N,) float32
    top_ids: np.ndarray  # (N, K) int32
    top_logits: np.ndarray  # (N, K) float32
    fixed_logits: np.ndarray  # (N, F) float32

    def full_logits(self) -> np.ndarray:
        """(N, V) float32; only valid when k_top == vocab."""
        n, k = self.top_ids.shape
        if k != self.vocab:
            raise ValueError("full_logits() needs k_top == vocab")
        out = np.empty((n, self.vocab), np.float32)
        np.put_along_axis(out, self.top_ids.astype(np.int64), self.top_logits, axis=1)
        return out


def summarize(logits: np.ndarray, token_ids, fixed_ids, k_top: int) -> Rzgl:
    """logits: (N, V) float32 array (the model's raw fp32 output)."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    n, v = logits.shape
    fixed_ids = np.asarray(fixed_ids, np.int32)
    l64 = logits.astype(np.float64)
    m = l64.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(l64 - m).sum(axis=1))).astype(np.float32)
    max_abs = np.abs(logits).max(axis=1).astype(np.float32)
    # sort by (-logit, id): lexsort uses the last key as primary
    ids = np.arange(v)
    order = np.stack([np.lexsort((ids, -logits[p].astype(np.float64))) for p in range(n)])
    top_ids = order[:, :k_top].astype(np.int32)
    top_logits = np.take_along_axis(logits, order[:, :k_top], axis=1)
    srt = np.take_along_axis(l64, order[:, :2], axis=1)
    gap = (srt[:, 0] - srt[:, 1]).astype(np.float32)
    fixed_logits = logits[:, fixed_ids.astype(np.int64)] if len(fixed_ids) else np.zeros((n, 0), np.float32)
    return Rzgl(v, np.asarray(token_ids, np.int32), fixed_ids, max_abs, lse, gap,
                top_ids, top_logits.astype(np.float32), fixed_logits.astype(np.float32))


def write(path, g: Rzgl) -> None:
    n = len(g.token_ids)
    k = g.top_ids.shape[1]
    f = len(g.fixed_ids)
    assert g.top_ids.shape == (n, k) and g.fixed_logits.shape == (n, f)
    rec = np.zeros(n, dtype=np.dtype([("max_abs", "<f4"), ("lse", "<f4"), ("gap", "<f4"),
                                       ("top", [("id", "<i4"), ("logit", "<f4")], (k,)),
                                       ("fixed", "<f4", (f,))]))
    rec["max_abs"], rec["lse"], rec["gap"] = g.max_abs, g.lse, g.gap
    rec["top"]["id"], rec["top"]["logit"] = g.top_ids, g.top_logits
    rec["fixed"] = g.fixed_logits
    with open(path, "wb") as fh:
        fh.write(MAGIC + struct.pack("<5I", VERSION, n, g.vocab, k, f))
        fh.write(np.asarray(g.token_ids, "<i4").tobytes())
        fh.write(np.asarray(g.fixed_ids, "<i4").tobytes())
        fh.write(rec.tobytes())


def read(path) -> Rzgl:
    data = open(path, "rb").read()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: bad magic")
    version, n, v, k, f = struct.unpack_from("<5I", data, 4)
    if version != VERSION:
        raise ValueError(f"{path}: unsupported version {version}")
    off = 24
    tok = np.frombuffer(data, "<i4", n, off).astype(np.int32); off += 4 * n
    fix = np.frombuffer(data, "<i4", f, off).astype(np.int32); off += 4 * f
    dt = np.dtype([("max_abs", "<f4"), ("lse", "<f4"), ("gap", "<f4"),
                   ("top", [("id", "<i4"), ("logit", "<f4")], (k,)), ("fixed", "<f4", (f,))])
    if len(data) != off + n * dt.itemsize:
        raise ValueError(f"{path}: size {len(data)} != expected {off + n * dt.itemsize}")
    rec = np.frombuffer(data, dt, n, off)
    return Rzgl(v, tok, fix, rec["max_abs"].copy(), rec["lse"].copy(), rec["gap"].copy(),
                rec["top"]["id"].reshape(n, k).copy(), rec["top"]["logit"].reshape(n, k).copy(),
                rec["fixed"].reshape(n, f).copy())


def compare_to_logits(g: Rzgl, logits: np.ndarray) -> dict:
    """Max abs differences between a stored golden and live (N, V) logits."""
    logits = np.asarray(logits, np.float32)
    ref = summarize(logits, g.token_ids, g.fixed_ids, g.top_ids.shape[1])
    stored_at_top = np.take_along_axis(logits, g.top_ids.astype(np.int64), axis=1)
    return {
        "top_logit": float(np.abs(stored_at_top - g.top_logits).max()),
        "top_ids_equal": bool((ref.top_ids == g.top_ids).all()),
        "fixed": float(np.abs(ref.fixed_logits - g.fixed_logits).max()) if g.fixed_logits.size else 0.0,
        "lse": float(np.abs(ref.lse - g.lse).max()),
        "max_abs": float(np.abs(ref.max_abs - g.max_abs).max()),
        "gap": float(np.abs(ref.gap - g.gap).max()),
    }
