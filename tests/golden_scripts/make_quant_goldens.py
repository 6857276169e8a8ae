#!/usr/bin/env python3
"""Dequantization goldens for tests/dequantize_test.cpp, computed by gguf-py (gguf.quants).

Run from the repo root with the project venv:  .venv/bin/python tests/golden_scripts/make_quant_goldens.py
Writes tests/fixtures/quant/<TYPE>.rzqg for F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K, plus
tests/fixtures/quant/F32_TO_F16.rzqg (numpy's float32 -> float16 rounding, for Fp32ToFp16).

Each block is random bytes (every quant bit pattern is legal), except the fp16 scale fields, which are
overwritten with finite random halves (normal and a few subnormal, both signs, 2^-20 .. 4), so no
NaN/Inf reaches the comparison. F16/BF16 elements are random finite bit patterns (F16 includes
subnormals and signed zeros).

RZQG format, version 1, little-endian, packed:
  offset 0  char[4] magic "RZQG"
         4  u32     version = 1
         8  u32     ggml type id (GGMLQuantizationType; F32_TO_F16 uses id 0 = F32 input)
        12  u32     n_elements  N (multiple of the block size)
        16  u32     n_bytes     B (raw size of the encoded data)
        20  u8      data[B]     the encoded blocks as they lie in a GGUF file
    20 + B  f32     values[N]   gguf.quants.dequantize(data) (for F32_TO_F16: the float16 bits as
                                 u16[N] instead, i.e. N*2 bytes)
The C++ side requires bit-exact equality: gguf-py evaluates the same float32 expressions in the same
order as ggml-quants.c (d*q + m, d*sc, (d*sc)*q - dmin*m), with no fused multiply-add.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "quant"
SEED = 20240607

# type -> (block elements, block bytes, byte offsets of fp16 scale fields, number of blocks)
LAYOUT = {
    T.Q4_0: (32, 18, [0], 16),
    T.Q4_1: (32, 20, [0, 2], 16),
    T.Q5_0: (32, 22, [0], 16),
    T.Q5_1: (32, 24, [0, 2], 16),
    T.Q8_0: (32, 34, [0], 16),
    T.Q4_K: (256, 144, [0, 2], 4),
    T.Q5_K: (256, 176, [0, 2], 4),
    T.Q6_K: (256, 210, [208], 4),
}


def random_halves(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite fp16 scales: |x| in 2^-20 .. 4 (some subnormal), random sign."""
    mag = np.exp2(rng.uniform(-20.0, 2.0, n)).astype(np.float16)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float16)
    return (mag * sign).astype(np.float16)


def write(name: str, type_id: int, n: int, data: bytes, values: bytes) -> None:
    path = OUT / f"{name}.rzqg"
    path.write_bytes(b"RZQG" + struct.pack("<4I", 1, type_id, n, len(data)) + data + values)
    print(f"{path.relative_to(OUT.parents[2])}: {n} elements, {path.stat().st_size} bytes")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    for qtype, (qk, nbytes, scale_offsets, nblocks) in LAYOUT.items():
        raw = rng.integers(0, 256, size=(nblocks, nbytes), dtype=np.uint8)
        for off in scale_offsets:
            raw[:, off:off + 2] = random_halves(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
        values = quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
        assert values.size == nblocks * qk and np.all(np.isfinite(values))
        write(qtype.name, int(qtype), values.size, raw.tobytes(), values.tobytes())

    n = 512
    # F16: random finite bit patterns (exponent 31 = Inf/NaN excluded), includes subnormals and +-0.
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    h = np.where((h & 0x7C00) == 0x7C00, h & 0x83FF, h).astype(np.uint16)
    h[:4] = [0x0000, 0x8000, 0x0001, 0x83FF]
    write("F16", int(T.F16), n, h.tobytes(), quants.dequantize(h.view(np.uint8), T.F16).astype(np.float32).tobytes())

    b = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    b = np.where((b & 0x7F80) == 0x7F80, b & 0x807F, b).astype(np.uint16)
    write("BF16", int(T.BF16), n, b.tobytes(), quants.dequantize(b.view(np.uint8), T.BF16).astype(np.float32).tobytes())

    # float32 -> float16 rounding (nearest even, overflow to Inf, subnormals) as numpy does it.
    f = np.concatenate([
        rng.normal(0, 1, n // 4), rng.normal(0, 1e-5, n // 4), rng.normal(0, 3e4, n // 4),
        np.exp2(rng.uniform(-26, -14, n // 4)) * np.where(rng.random(n // 4) < 0.5, -1, 1),
    ]).astype(np.float32)
    f[:6] = [0.0, -0.0, 65504.0, 65519.996, 65520.0, 2.0**-25]
    with np.errstate(over="ignore"):
        f16 = f.astype(np.float16)
    write("F32_TO_F16", int(T.F32), n, f.tobytes(), f16.view(np.uint16).tobytes())


if __name__ == "__main__":
    main()
