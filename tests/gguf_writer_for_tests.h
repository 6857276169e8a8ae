// A tiny GGUF writer for tests: builds valid files in memory, plus knobs that corrupt them on purpose
// (lying counts, bad offsets, wrong magic/version, truncation) so readers can be tested on bad input.
// Header-only and independent of gtest so any test (or a corpus generator) can include it.
//
//   GgufWriterForTests w;
//   w.AddString("general.architecture", "llama").AddUint("llama.block_count", GgufValueType::UINT32, 2);
//   w.AddTensor("tok.weight", TensorType::F32, {4, 2}, F32Bytes({...}));
//   std::vector<uint8_t> bytes = w.Build();
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor_type.h"
#include "io/gguf.h"

namespace razor {

class GgufWriterForTests {
 public:
  using Bytes = std::vector<uint8_t>;

  // ---- file-level settings ----
  GgufWriterForTests& SetVersion(uint32_t v) { version_ = v; return *this; }
  GgufWriterForTests& SetMagic(const std::string& four_chars) { magic_ = four_chars; return *this; }
  // Lays tensor data out on `a`-byte boundaries; with write_kv also emits general.alignment (UINT32) first.
  GgufWriterForTests& SetAlignment(uint32_t a, bool write_kv = true) {
    alignment_ = a;
    write_alignment_kv_ = write_kv;
    return *this;
  }

  // ---- metadata, in the order added ----
  GgufWriterForTests& AddUint(const std::string& key, GgufValueType t, uint64_t v) {
    Bytes p;
    PutInt(&p, t, v);
    return AddRawKv(key, static_cast<uint32_t>(t), p);
  }
  GgufWriterForTests& AddInt(const std::string& key, GgufValueType t, int64_t v) {
    return AddUint(key, t, static_cast<uint64_t>(v));
  }
  GgufWriterForTests& AddFloat(const std::string& key, GgufValueType t, double v) {
    Bytes p;
    PutFloat(&p, t, v);
    return AddRawKv(key, static_cast<uint32_t>(t), p);
  }
  GgufWriterForTests& AddBool(const std::string& key, bool v) {
    return AddRawKv(key, static_cast<uint32_t>(GgufValueType::BOOL), Bytes{static_cast<uint8_t>(v ? 1 : 0)});
  }
  GgufWriterForTests& AddString(const std::string& key, const std::string& v) {
    Bytes p;
    PutString(&p, v);
    return AddRawKv(key, static_cast<uint32_t>(GgufValueType::STRING), p);
  }
  // Integer array of element type `elem` (values are truncated to its width).
  GgufWriterForTests& AddIntArray(const std::string& key, GgufValueType elem, const std::vector<int64_t>& v) {
    Bytes p = ArrayHeader(elem, v.size());
    for (int64_t x : v) PutInt(&p, elem, static_cast<uint64_t>(x));
    return AddRawKv(key, static_cast<uint32_t>(GgufValueType::ARRAY), p);
  }
  GgufWriterForTests& AddFloatArray(const std::string& key, GgufValueType elem, const std::vector<double>& v) {
    Bytes p = ArrayHeader(elem, v.size());
    for (double x : v) PutFloat(&p, elem, x);
    return AddRawKv(key, static_cast<uint32_t>(GgufValueType::ARRAY), p);
  }
  GgufWriterForTests& AddBoolArray(const std::string& key, const std::vector<bool>& v) {
    Bytes p = ArrayHeader(GgufValueType::BOOL, v.size());
    for (bool x : v) p.push_back(x ? 1 : 0);
    return AddRawKv(key, static_cast<uint32_t>(GgufValueType::ARRAY), p);
  }
  GgufWriterForTests& AddStringArray(const std::string& key, const std::vector<std::string>& v) {
    Bytes p = ArrayHeader(GgufValueType::STRING, v.size());
    for (const auto& s : v) PutString(&p, s);
    return AddRawKv(key, static_cast<uint32_t>(GgufValueType::ARRAY), p);
  }
  // Any type id with any payload (the bytes after the type field): for nested arrays, unknown types, lies.
  GgufWriterForTests& AddRawKv(const std::string& key, uint32_t type_id, const Bytes& payload) {
    kvs_.push_back({key, type_id, payload});
    return *this;
  }

  // ---- tensors ----
  // `dims` in GGUF order (dims[0] innermost). `data` is written as is (its size is not checked against dims,
  // so a test can make it too short). Returns the tensor's index for the knobs below.
  size_t AddTensor(const std::string& name, uint32_t type_id, const std::vector<uint64_t>& dims, const Bytes& data) {
    tensors_.push_back({name, type_id, dims, data, std::nullopt});
    return tensors_.size() - 1;
  }
  size_t AddTensor(const std::string& name, TensorType t, const std::vector<uint64_t>& dims, const Bytes& data) {
    return AddTensor(name, static_cast<uint32_t>(t), dims, data);
  }
  // Record `offset` (relative to the data section) in the tensor info instead of the real one; data stays put.
  GgufWriterForTests& SetTensorOffset(size_t index, uint64_t offset) {
    tensors_.at(index).offset_override = offset;
    return *this;
  }

  // ---- corruption knobs ----
  GgufWriterForTests& ClaimTensorCount(uint64_t n) { claim_tensors_ = n; return *this; }
  GgufWriterForTests& ClaimKvCount(uint64_t n) { claim_kvs_ = n; return *this; }
  GgufWriterForTests& TruncateTo(size_t n) { truncate_to_ = n; return *this; }

  // ---- output ----
  Bytes Build() const {
    Bytes out;
    const std::string magic = (magic_ + std::string(4, '\0')).substr(0, 4);
    out.insert(out.end(), magic.begin(), magic.end());
    Put<uint32_t>(&out, version_);
    const size_t n_kv = kvs_.size() + (write_alignment_kv_ ? 1 : 0);
    Put<uint64_t>(&out, claim_tensors_.value_or(tensors_.size()));
    Put<uint64_t>(&out, claim_kvs_.value_or(n_kv));
    if (write_alignment_kv_) {
      PutString(&out, "general.alignment");
      Put<uint32_t>(&out, static_cast<uint32_t>(GgufValueType::UINT32));
      Put<uint32_t>(&out, alignment_);
    }
    for (const auto& kv : kvs_) {
      PutString(&out, kv.key);
      Put<uint32_t>(&out, kv.type_id);
      out.insert(out.end(), kv.payload.begin(), kv.payload.end());
    }
    // Natural layout: each tensor's data starts at the next multiple of the alignment.
    std::vector<uint64_t> offsets;
    uint64_t cursor = 0;
    for (const auto& t : tensors_) {
      offsets.push_back(cursor);
      cursor = AlignUp(cursor + t.data.size());
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      PutString(&out, t.name);
      Put<uint32_t>(&out, static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) Put<uint64_t>(&out, d);
      Put<uint32_t>(&out, t.type_id);
      Put<uint64_t>(&out, t.offset_override.value_or(offsets[i]));
    }
    if (!tensors_.empty()) {
      out.resize(AlignUp(out.size()), 0);
      last_data_offset_ = out.size();
      for (size_t i = 0; i < tensors_.size(); ++i) {
        out.resize(last_data_offset_ + offsets[i], 0);
        out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
      }
    } else {
      last_data_offset_ = AlignUp(out.size());
    }
    if (truncate_to_ && *truncate_to_ < out.size()) out.resize(*truncate_to_);
    return out;
  }
  // Offset of the data section in the last Build() (before truncation).
  size_t data_offset() const { return last_data_offset_; }

  // Build() and write to `path`; false if the file could not be written.
  bool WriteTo(const std::string& path) const { return WriteFile(path, Build()); }
  static bool WriteFile(const std::string& path, const Bytes& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return static_cast<bool>(f);
  }

  // ---- byte helpers (public: tests use them to build raw payloads) ----
  template <class T>
  static void Put(Bytes* out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out->insert(out->end(), b, b + sizeof(T));
  }
  static void PutString(Bytes* out, const std::string& s) {
    Put<uint64_t>(out, s.size());
    out->insert(out->end(), s.begin(), s.end());
  }
  static Bytes ArrayHeader(GgufValueType elem, uint64_t n) {
    Bytes p;
    Put<uint32_t>(&p, static_cast<uint32_t>(elem));
    Put<uint64_t>(&p, n);
    return p;
  }
  static Bytes F32Bytes(const std::vector<float>& v) {
    Bytes p;
    for (float x : v) Put<float>(&p, x);
    return p;
  }

 private:
  static void PutInt(Bytes* out, GgufValueType t, uint64_t v) {
    switch (t) {
      case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL:
        Put<uint8_t>(out, static_cast<uint8_t>(v)); break;
      case GgufValueType::UINT16: case GgufValueType::INT16: Put<uint16_t>(out, static_cast<uint16_t>(v)); break;
      case GgufValueType::UINT32: case GgufValueType::INT32: Put<uint32_t>(out, static_cast<uint32_t>(v)); break;
      default: Put<uint64_t>(out, v); break;
    }
  }
  static void PutFloat(Bytes* out, GgufValueType t, double v) {
    if (t == GgufValueType::FLOAT32) Put<float>(out, static_cast<float>(v));
    else Put<double>(out, v);
  }
  uint64_t AlignUp(uint64_t x) const {
    const uint64_t a = alignment_ == 0 ? 1 : alignment_;  // a test may write alignment 0 on purpose
    return (x + a - 1) / a * a;
  }

  struct Kv {
    std::string key;
    uint32_t type_id;
    Bytes payload;
  };
  struct Tensor {
    std::string name;
    uint32_t type_id;
    std::vector<uint64_t> dims;
    Bytes data;
    std::optional<uint64_t> offset_override;
  };

  std::string magic_ = "GGUF";
  uint32_t version_ = 3;
  uint32_t alignment_ = 32;  // layout only; GGUF's default when general.alignment is absent
  bool write_alignment_kv_ = false;
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  std::optional<uint64_t> claim_tensors_, claim_kvs_;
  std::optional<size_t> truncate_to_;
  mutable size_t last_data_offset_ = 0;
};

}  // namespace razor
