// GGUF v2/v3 reader: mmaps the file, parses every metadata value type (arrays included),
// honours general.alignment, and bounds-checks every offset and size against the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "core/tensor_view.h"

namespace razor {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* GgufValueTypeName(GgufValueType t);

// One metadata value. Scalars of any integer type are kept as int64/uint64; arrays keep their element type.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT32;
  GgufValueType array_type = GgufValueType::UINT32;  // element type when type == ARRAY
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;
  // Array payloads (only the one matching array_type is filled; nested arrays are rejected).
  std::vector<std::string> strings;
  std::vector<int64_t> ints;   // every integer element type (uint64 > INT64_MAX is rejected)
  std::vector<double> floats;  // FLOAT32 / FLOAT64
  std::vector<bool> bools;
  size_t array_size() const;
  std::string ToShortString() const;  // for `razor inspect`: arrays are abbreviated
};

class GgufFile {
 public:
  static Result<GgufFile> Open(const std::string& path);
  // Parses an in-memory image (used by the fuzzer and tests). `file` keeps the bytes alive.
  static Result<GgufFile> Parse(std::shared_ptr<MappedFile> file);
  static Result<GgufFile> ParseBytes(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }

  const std::vector<std::string>& keys() const { return key_order_; }  // in file order
  const GgufValue* Find(const std::string& key) const;
  // Typed getters: an error names the key and what was found instead (without the path: callers prefix it).
  Result<std::string> GetString(const std::string& key) const;
  Result<int64_t> GetInt(const std::string& key) const;  // any integer type
  Result<double> GetFloat(const std::string& key) const;  // FLOAT32/FLOAT64 (or integer)
  Result<bool> GetBool(const std::string& key) const;
  std::optional<int64_t> GetIntOr(const std::string& key) const;
  std::optional<double> GetFloatOr(const std::string& key) const;
  std::optional<std::string> GetStringOr(const std::string& key) const;
  Result<const std::vector<std::string>*> GetStringArray(const std::string& key) const;
  Result<const std::vector<int64_t>*> GetIntArray(const std::string& key) const;
  Result<const std::vector<double>*> GetFloatArray(const std::string& key) const;

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* FindTensor(const std::string& name) const;

 private:
  // Parses `size` bytes at `data`; the caller keeps them alive (file_ or copy_). Errors start with `path`.
  static Result<GgufFile> ParseImage(const uint8_t* data, size_t size, const std::string& path);

  std::shared_ptr<MappedFile> file_;           // owns the mapping (may be null for ParseBytes)
  std::shared_ptr<std::vector<uint8_t>> copy_; // owns bytes for ParseBytes
  std::string path_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::string> key_order_;
  std::map<std::string, GgufValue> kv_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace razor
