// golden_reader.h - header-only reader for the RZGL logits goldens produced by
// tests/golden_scripts/make_hf_goldens.py (reference: Hugging Face transformers).
// C++17 or later, STL only.
//
// ---------------------------------------------------------------------------
// RZGL format, version 1. Little-endian, tightly packed (no padding/alignment):
//
//   offset 0   char[4] magic        "RZGL"
//          4   u32     version      1
//          8   u32     n_positions  N
//         12   u32     vocab        V
//         16   u32     k_top        K   (<= V)
//         20   u32     k_fixed      F   (<= V)
//         24   i32     token_ids[N]     input ids; token_ids[p] sits at position p (positions start at 0)
//              i32     fixed_ids[F]     the same F vocab ids for every position
//              then N records, record p = logits at position p (predicting token p+1):
//                f32   max_abs          max over the FULL vocab of |logit|
//                f32   lse              logsumexp over the FULL vocab (computed in float64, stored f32)
//                f32   gap              top1 - top2 logit (computed in float64, stored f32)
//                K x { i32 id; f32 logit }   top-K, logit descending, ties broken by ascending id
//                F x f32 logit          logit of fixed_ids[j]
//
//   record size = 12 + 8*K + 4*F bytes; file size = 24 + 4*N + 4*F + N*record (checked exactly).
//   With K == V and F == 0 each record is the complete logit vector (see full_logits()).
//
// Logits are the fp32 outputs of transformers' model in float32 with eager attention.
// ---------------------------------------------------------------------------
//
// Error handling: read_logits_golden()/parse_logits_golden() throw std::runtime_error
// (message includes the file name and the reason) on a missing/short/oversized file, bad
// magic, unknown version, K or F > V, ids outside [0, V), or non-finite header stats.
// try_read_logits_golden() is the noexcept variant returning bool (+ optional message).
//
// Usage:
//   auto g = razor::golden::read_logits_golden("tests/fixtures/hf/tiny_llama/logits.rzgl");
//   for (size_t p = 0; p < g.n_positions(); ++p) {
//     const auto& r = g.positions[p];             // r.top[0].id is the argmax
//     if (g.has_full_logits()) { std::vector<float> l = g.full_logits(p); ... }
//   }
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace razor::golden {

struct TopEntry {
  int32_t id = 0;
  float logit = 0.0f;
};

struct PositionRecord {
  float max_abs = 0.0f;        // max |logit| over the full vocab
  float lse = 0.0f;            // logsumexp over the full vocab
  float gap = 0.0f;            // top1 - top2
  std::vector<TopEntry> top;   // k_top entries, logit descending
  std::vector<float> fixed;    // k_fixed logits, aligned with LogitsGolden::fixed_ids
};

struct LogitsGolden {
  uint32_t version = 0;
  uint32_t vocab = 0;
  uint32_t k_top = 0;
  uint32_t k_fixed = 0;
  std::vector<int32_t> token_ids;        // n_positions
  std::vector<int32_t> fixed_ids;        // k_fixed
  std::vector<PositionRecord> positions; // n_positions

  size_t n_positions() const { return token_ids.size(); }
  bool has_full_logits() const { return k_top == vocab; }

  // Complete logit vector of position p, indexed by token id. Throws std::runtime_error
  // unless k_top == vocab (the tiny-model goldens).
  std::vector<float> full_logits(size_t p) const {
    if (!has_full_logits()) throw std::runtime_error("RZGL: full_logits() needs k_top == vocab");
    if (p >= positions.size()) throw std::runtime_error("RZGL: position out of range");
    std::vector<float> out(vocab, 0.0f);
    for (const TopEntry& e : positions[p].top) out[static_cast<size_t>(e.id)] = e.logit;
    return out;
  }

  // Argmax at position p (ties -> lowest id, like the stored ordering).
  int32_t top1(size_t p) const { return positions.at(p).top.at(0).id; }
};

namespace detail {

inline uint32_t load_u32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline int32_t load_i32(const unsigned char* p) {
  const uint32_t u = load_u32(p);
  int32_t v;
  std::memcpy(&v, &u, 4);
  return v;
}
inline float load_f32(const unsigned char* p) {
  const uint32_t u = load_u32(p);
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
[[noreturn]] inline void fail(const std::string& name, const std::string& why) {
  throw std::runtime_error("RZGL " + name + ": " + why);
}

}  // namespace detail

// Parse an in-memory RZGL image. `name` is only used in error messages.
inline LogitsGolden parse_logits_golden(const void* data, size_t size, const std::string& name = "<memory>") {
  using namespace detail;
  const auto* b = static_cast<const unsigned char*>(data);
  if (size < 24) fail(name, "file too short for header (" + std::to_string(size) + " bytes)");
  if (std::memcmp(b, "RZGL", 4) != 0) fail(name, "bad magic (expected \"RZGL\")");
  LogitsGolden g;
  g.version = load_u32(b + 4);
  const uint32_t n = load_u32(b + 8);
  g.vocab = load_u32(b + 12);
  g.k_top = load_u32(b + 16);
  g.k_fixed = load_u32(b + 20);
  if (g.version != 1) fail(name, "unsupported version " + std::to_string(g.version));
  if (g.vocab == 0) fail(name, "vocab is 0");
  if (g.k_top > g.vocab || g.k_fixed > g.vocab) fail(name, "k_top/k_fixed larger than vocab");
  // All counts are < 2^32, so these products fit in 64 bits without overflow.
  const uint64_t rec = 12ull + 8ull * g.k_top + 4ull * g.k_fixed;
  const uint64_t expect = 24ull + 4ull * n + 4ull * g.k_fixed + static_cast<uint64_t>(n) * rec;
  if (static_cast<uint64_t>(size) != expect)
    fail(name, "size " + std::to_string(size) + " != expected " + std::to_string(expect));

  auto check_id = [&](int32_t id, const char* what) {
    if (id < 0 || static_cast<uint32_t>(id) >= g.vocab)
      fail(name, std::string(what) + " id " + std::to_string(id) + " outside [0, vocab)");
  };
  const unsigned char* p = b + 24;
  g.token_ids.resize(n);
  for (uint32_t i = 0; i < n; ++i, p += 4) g.token_ids[i] = load_i32(p);
  g.fixed_ids.resize(g.k_fixed);
  for (uint32_t i = 0; i < g.k_fixed; ++i, p += 4) check_id(g.fixed_ids[i] = load_i32(p), "fixed");
  g.positions.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    PositionRecord& r = g.positions[i];
    r.max_abs = load_f32(p);
    r.lse = load_f32(p + 4);
    r.gap = load_f32(p + 8);
    p += 12;
    if (!std::isfinite(r.max_abs) || !std::isfinite(r.lse) || !std::isfinite(r.gap))
      fail(name, "non-finite stats at position " + std::to_string(i));
    r.top.resize(g.k_top);
    for (uint32_t k = 0; k < g.k_top; ++k, p += 8) {
      r.top[k].id = load_i32(p);
      r.top[k].logit = load_f32(p + 4);
      check_id(r.top[k].id, "top");
    }
    r.fixed.resize(g.k_fixed);
    for (uint32_t k = 0; k < g.k_fixed; ++k, p += 4) r.fixed[k] = load_f32(p);
  }
  return g;
}

// Read and parse a file. Throws std::runtime_error on any problem.
inline LogitsGolden read_logits_golden(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("RZGL " + path + ": cannot open");
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error("RZGL " + path + ": read error");
  return parse_logits_golden(buf.data(), buf.size(), path);
}

// Non-throwing variant: returns false (and sets *error if given) on any problem.
inline bool try_read_logits_golden(const std::string& path, LogitsGolden& out,
                                   std::string* error = nullptr) noexcept {
  try {
    out = read_logits_golden(path);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
  } catch (...) {
    if (error) *error = "RZGL " + path + ": unknown error";
  }
  return false;
}

}  // namespace razor::golden
