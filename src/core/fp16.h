// Scalar IEEE half <-> float and bfloat16 <-> float conversions, bit-exact (subnormals, Inf, NaN kept),
// header-only so kernels can inline them. Fp32ToFp16 rounds to nearest even like F16C's vcvtps2ph.
#pragma once

#include <cstdint>
#include <cstring>

namespace razor {

inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return BitsToFloat(sign | 0x7F800000u | (mant << 13));  // Inf / NaN (payload kept)
  if (exp != 0) return BitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return BitsToFloat(sign);  // +-0
  // Subnormal half: value = mant * 2^-24, exact in float.
  int e = -1;
  do {
    mant <<= 1;
    ++e;
  } while ((mant & 0x400u) == 0);
  mant &= 0x3FFu;
  return BitsToFloat(sign | static_cast<uint32_t>(112 - e) << 23 | (mant << 13));
}

inline uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatToBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // Inf or NaN (NaN stays quiet NaN)
    return static_cast<uint16_t>(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u | ((ax >> 13) & 0x3FFu) : 0u));
  }
  if (ax >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: Inf
  if (ax >= 0x38800000u) {  // normal half range (>= 2^-14)
    const uint32_t mant_round = ax + 0xFFFu + ((ax >> 13) & 1u);  // round to nearest even at bit 13
    return static_cast<uint16_t>(sign | ((mant_round - 0x38000000u) >> 13));
  }
  // Subnormal half or zero: value / 2^-24 rounded to nearest even.
  const int shift = 126 - static_cast<int>(ax >> 23);  // 14..; >24 means it rounds to 0 (or 1)
  if (shift > 24) return sign;
  const uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
  const uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  const uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
  return static_cast<uint16_t>(sign | r);
}

inline float BfloatToFloat(uint16_t h) { return BitsToFloat(static_cast<uint32_t>(h) << 16); }

// float -> bfloat16, round to nearest even (as torch's .to(bfloat16)); NaN stays a quiet NaN.
inline uint16_t FloatToBfloat(float f) {
  const uint32_t x = FloatToBits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace razor
