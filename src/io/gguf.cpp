// GGUF reader. Layout (little-endian, v2/v3):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }            string = u64 length + bytes
//   n_tensors x { string name | u32 n_dims | u64 dims[n_dims] | u32 type | u64 offset }
//   padding to `alignment` | tensor data (offsets are relative to this data section)
// Every read is bounds-checked before it happens; counts are checked against the bytes left so that a lying
// header fails fast instead of allocating. Reads use memcpy: nothing in the file is assumed aligned.
#include "io/gguf.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

namespace razor {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// Smallest possible encodings, used to reject counts that cannot fit in the remaining bytes.
constexpr size_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, one dim, type, offset

// Printable, one-line, bounded rendering of a name read from the file (it may hold any bytes).
std::string Quote(const std::string& s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out + "'";
}

bool IsIntegerType(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool IsKnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

// Encoded size of one element of a fixed-size type; 8 (the length prefix) for STRING, the minimum it can take.
size_t MinEncodedBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 4 + 8;
  }
  return 1;
}

// Cursor over the file image. Every Read* checks the remaining bytes first and reports the offset on error.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Status Fail(const std::string& what) const { return FailAt(pos_, what); }
  Status FailAt(size_t offset, const std::string& what) const {
    return Err(fmt::format("{}: {} at offset {}", path_, what, offset));
  }

  Status Need(size_t n, const std::string& what) const {
    if (n > remaining()) {
      return Fail(fmt::format("file truncated: {} needs {} bytes but only {} remain", what, n, remaining()));
    }
    return Status::Ok();
  }

  template <class T>
  Status Read(T* out, const std::string& what) {
    RAZOR_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* out, const std::string& what) {
    uint64_t len = 0;
    const size_t start = pos_;
    RAZOR_RETURN_IF_ERROR(Read(&len, what + " length"));
    if (len > remaining()) {
      return FailAt(start, fmt::format("{} claims length {} but only {} bytes remain", what, len, remaining()));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string path_;
};

// Reads one element of integer type `t` into a signed 64-bit value; u64 above INT64_MAX is an error.
Status ReadIntElement(Cursor& c, GgufValueType t, int64_t* out, const std::string& what) {
  switch (t) {
    case GgufValueType::UINT8: { uint8_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::INT8: { int8_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::UINT16: { uint16_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::INT16: { int16_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::UINT32: { uint32_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::INT32: { int32_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::INT64: { int64_t v = 0; RAZOR_RETURN_IF_ERROR(c.Read(&v, what)); *out = v; break; }
    case GgufValueType::UINT64: {
      uint64_t v;
      RAZOR_RETURN_IF_ERROR(c.Read(&v, what));
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.FailAt(c.pos() - 8, fmt::format("{} = {} does not fit in int64", what, v));
      }
      *out = static_cast<int64_t>(v);
      break;
    }
    default:
      return c.Fail(fmt::format("{}: internal error, not an integer type", what));
  }
  return Status::Ok();
}

Status ReadFloatElement(Cursor& c, GgufValueType t, double* out, const std::string& what) {
  if (t == GgufValueType::FLOAT32) {
    float v;
    RAZOR_RETURN_IF_ERROR(c.Read(&v, what));
    *out = v;
  } else {
    RAZOR_RETURN_IF_ERROR(c.Read(out, what));
  }
  return Status::Ok();
}

Status ReadScalar(Cursor& c, GgufValueType t, GgufValue* v, const std::string& what) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::UINT16: case GgufValueType::UINT32: {
      int64_t x;
      RAZOR_RETURN_IF_ERROR(ReadIntElement(c, t, &x, what));
      v->scalar = static_cast<uint64_t>(x);
      break;
    }
    case GgufValueType::UINT64: {
      uint64_t x;  // scalars keep the full u64 range; GetInt rejects what does not fit
      RAZOR_RETURN_IF_ERROR(c.Read(&x, what));
      v->scalar = x;
      break;
    }
    case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64: {
      int64_t x;
      RAZOR_RETURN_IF_ERROR(ReadIntElement(c, t, &x, what));
      v->scalar = x;
      break;
    }
    case GgufValueType::FLOAT32: case GgufValueType::FLOAT64: {
      double x;
      RAZOR_RETURN_IF_ERROR(ReadFloatElement(c, t, &x, what));
      v->scalar = x;
      break;
    }
    case GgufValueType::BOOL: {
      uint8_t x;
      RAZOR_RETURN_IF_ERROR(c.Read(&x, what));
      v->scalar = x != 0;
      break;
    }
    case GgufValueType::STRING: {
      std::string s;
      RAZOR_RETURN_IF_ERROR(c.ReadString(&s, what));
      v->scalar = std::move(s);
      break;
    }
    case GgufValueType::ARRAY:
      return c.Fail(fmt::format("{}: internal error, array read as scalar", what));
  }
  return Status::Ok();
}

Status ReadArray(Cursor& c, GgufValue* v, const std::string& what) {
  const size_t start = c.pos();
  uint32_t elem_raw = 0;
  uint64_t n = 0;
  RAZOR_RETURN_IF_ERROR(c.Read(&elem_raw, what + " element type"));
  if (elem_raw == static_cast<uint32_t>(GgufValueType::ARRAY)) {
    return c.FailAt(start, fmt::format("{} is a nested array, which is not supported", what));
  }
  if (!IsKnownType(elem_raw)) {
    return c.FailAt(start, fmt::format("{} has unknown element type {}", what, elem_raw));
  }
  const auto elem = static_cast<GgufValueType>(elem_raw);
  RAZOR_RETURN_IF_ERROR(c.Read(&n, what + " length"));
  // Reject before reserving: n elements need at least n * MinEncodedBytes bytes.
  if (n > c.remaining() / MinEncodedBytes(elem)) {
    return c.FailAt(start, fmt::format("{} claims {} elements of type {} but only {} bytes remain", what, n,
                                       GgufValueTypeName(elem), c.remaining()));
  }
  v->type = GgufValueType::ARRAY;
  v->array_type = elem;
  const auto count = static_cast<size_t>(n);
  if (elem == GgufValueType::STRING) {
    v->strings.resize(count);
    for (size_t i = 0; i < count; ++i) RAZOR_RETURN_IF_ERROR(c.ReadString(&v->strings[i], what + " element"));
  } else if (IsIntegerType(elem)) {
    v->ints.resize(count);
    for (size_t i = 0; i < count; ++i) RAZOR_RETURN_IF_ERROR(ReadIntElement(c, elem, &v->ints[i], what + " element"));
  } else if (elem == GgufValueType::BOOL) {
    v->bools.resize(count);
    for (size_t i = 0; i < count; ++i) {
      uint8_t x;
      RAZOR_RETURN_IF_ERROR(c.Read(&x, what + " element"));
      v->bools[i] = x != 0;
    }
  } else {
    v->floats.resize(count);
    for (size_t i = 0; i < count; ++i) {
      RAZOR_RETURN_IF_ERROR(ReadFloatElement(c, elem, &v->floats[i], what + " element"));
    }
  }
  return Status::Ok();
}

// Overflow-safe round up of `x` to a multiple of the power of two `a`; false on overflow.
bool AlignUp(size_t x, size_t a, size_t* out) {
  const size_t mask = a - 1;
  if (x > std::numeric_limits<size_t>::max() - mask) return false;
  *out = (x + mask) & ~mask;
  return true;
}

// A tensor info as read, before the data section start is known.
struct PendingTensor {
  std::string name;
  TensorType type;
  std::vector<int64_t> shape;
  uint64_t offset;  // relative to the data section
  size_t nbytes;
  size_t info_offset;  // where its info record starts in the file, for error messages
};

Status ReadTensorInfo(Cursor& c, PendingTensor* t) {
  t->info_offset = c.pos();
  RAZOR_RETURN_IF_ERROR(c.ReadString(&t->name, "tensor name"));
  const std::string who = "tensor " + Quote(t->name);
  uint32_t n_dims = 0;
  RAZOR_RETURN_IF_ERROR(c.Read(&n_dims, who + " n_dims"));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return c.FailAt(t->info_offset, fmt::format("{} has {} dimensions (must be 1..{})", who, n_dims, kMaxDims));
  }
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t dim = 0;
    RAZOR_RETURN_IF_ERROR(c.Read(&dim, who + " dimension"));
    if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return c.FailAt(t->info_offset, fmt::format("{} has invalid dimension {} = {}", who, d, dim));
    }
    t->shape.push_back(static_cast<int64_t>(dim));
  }
  uint32_t type_id = 0;
  const size_t type_pos = c.pos();
  RAZOR_RETURN_IF_ERROR(c.Read(&type_id, who + " type"));
  const auto info = GetTensorTypeInfo(type_id);
  if (!info) return c.FailAt(type_pos, fmt::format("unknown tensor type {} for tensor {}", type_id, Quote(t->name)));
  t->type = static_cast<TensorType>(type_id);
  RAZOR_RETURN_IF_ERROR(c.Read(&t->offset, who + " data offset"));

  // Size: (shape[0] / block_elems) * block_bytes * product(shape[1..]), with overflow checks.
  if (t->shape[0] % info->block_elems != 0) {
    return c.FailAt(t->info_offset, fmt::format("{} of type {} has innermost dimension {}, not a multiple of the "
                                                "block size {}", who, info->name, t->shape[0], info->block_elems));
  }
  uint64_t bytes = static_cast<uint64_t>(t->shape[0] / info->block_elems) * static_cast<uint64_t>(info->block_bytes);
  for (size_t d = 1; d < t->shape.size(); ++d) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(t->shape[d]), &bytes)) {
      return c.FailAt(t->info_offset, fmt::format("{} is too large: its byte size overflows", who));
    }
  }
  // Also keep elements() (int64 product of dims) from overflowing for callers of TensorView.
  int64_t elems = 1;
  for (int64_t dim : t->shape) {
    if (__builtin_mul_overflow(elems, dim, &elems)) {
      return c.FailAt(t->info_offset, fmt::format("{} is too large: its element count overflows", who));
    }
  }
  t->nbytes = static_cast<size_t>(bytes);
  return Status::Ok();
}

}  // namespace

const char* GgufValueTypeName(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "UINT8";
    case GgufValueType::INT8: return "INT8";
    case GgufValueType::UINT16: return "UINT16";
    case GgufValueType::INT16: return "INT16";
    case GgufValueType::UINT32: return "UINT32";
    case GgufValueType::INT32: return "INT32";
    case GgufValueType::FLOAT32: return "FLOAT32";
    case GgufValueType::BOOL: return "BOOL";
    case GgufValueType::STRING: return "STRING";
    case GgufValueType::ARRAY: return "ARRAY";
    case GgufValueType::UINT64: return "UINT64";
    case GgufValueType::INT64: return "INT64";
    case GgufValueType::FLOAT64: return "FLOAT64";
  }
  return "unknown";
}

size_t GgufValue::array_size() const {
  if (type != GgufValueType::ARRAY) return 0;
  if (array_type == GgufValueType::STRING) return strings.size();
  if (array_type == GgufValueType::BOOL) return bools.size();
  if (array_type == GgufValueType::FLOAT32 || array_type == GgufValueType::FLOAT64) return floats.size();
  return ints.size();
}

std::string GgufValue::ToShortString() const {
  constexpr size_t kMaxElems = 4;
  constexpr size_t kMaxChars = 60;
  // Strings: UTF-8 passes through (token pieces are readable), control bytes are escaped, long ones cut
  // on a character boundary.
  auto quote_str = [&](const std::string& s) {
    size_t n = std::min(s.size(), kMaxChars);
    while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
    std::string out = "\"";
    for (size_t i = 0; i < n; ++i) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
      else if (c == '"' || c == '\\') out += std::string("\\") + static_cast<char>(c);
      else out += static_cast<char>(c);
    }
    return out + (n < s.size() ? "...\"" : "\"");
  };
  // FLOAT32 values print as floats (1e-05, not 9.999999747378752e-06).
  auto number = [](double d, GgufValueType t) {
    return t == GgufValueType::FLOAT32 ? fmt::format("{}", static_cast<float>(d)) : fmt::format("{}", d);
  };
  if (type != GgufValueType::ARRAY) {
    if (auto* u = std::get_if<uint64_t>(&scalar)) return fmt::format("{}", *u);
    if (auto* i = std::get_if<int64_t>(&scalar)) return fmt::format("{}", *i);
    if (auto* d = std::get_if<double>(&scalar)) return number(*d, type);
    if (auto* b = std::get_if<bool>(&scalar)) return *b ? "true" : "false";
    return quote_str(std::get<std::string>(scalar));
  }
  const size_t n = array_size();
  std::string out = fmt::format("[{} x {}", GgufValueTypeName(array_type), n);
  for (size_t i = 0; i < n && i < kMaxElems; ++i) {
    out += i == 0 ? ": " : ", ";
    if (array_type == GgufValueType::STRING) out += quote_str(strings[i]);
    else if (array_type == GgufValueType::BOOL) out += bools[i] ? "true" : "false";
    else if (array_type == GgufValueType::FLOAT32 || array_type == GgufValueType::FLOAT64) out += number(floats[i], array_type);
    else out += fmt::format("{}", ints[i]);
  }
  if (n > kMaxElems) out += ", ...";
  return out + "]";
}

Result<GgufFile> GgufFile::Open(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  return Parse(std::move(file));
}

Result<GgufFile> GgufFile::Parse(std::shared_ptr<MappedFile> file) {
  if (!file) return Err("GgufFile::Parse: no file");
  RAZOR_ASSIGN_OR_RETURN(GgufFile g, ParseImage(file->data(), file->size(), file->path()));
  g.file_ = std::move(file);
  return g;
}

Result<GgufFile> GgufFile::ParseBytes(const uint8_t* data, size_t size, const std::string& name) {
  auto copy = std::make_shared<std::vector<uint8_t>>(data, data + size);
  RAZOR_ASSIGN_OR_RETURN(GgufFile g, ParseImage(copy->data(), copy->size(), name));
  g.copy_ = std::move(copy);  // moving the shared_ptr keeps the tensor data pointers valid
  return g;
}

Result<GgufFile> GgufFile::ParseImage(const uint8_t* data, size_t size, const std::string& path) {
  GgufFile g;
  g.path_ = path;
  Cursor c(data, size, g.path_);

  // Header.
  char magic[4] = {};
  RAZOR_RETURN_IF_ERROR(c.Need(4, "magic"));
  RAZOR_RETURN_IF_ERROR(c.Read(&magic, "magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return c.FailAt(0, fmt::format("not a GGUF file: magic is {}, expected 'GGUF'",
                                   Quote(std::string(magic, magic + 4))));
  }
  RAZOR_RETURN_IF_ERROR(c.Read(&g.version_, "version"));
  if (g.version_ == 1) return c.FailAt(4, "GGUF version 1 is not supported (re-convert the model to v2 or v3)");
  if (g.version_ != 2 && g.version_ != 3) {
    if ((g.version_ & 0xffff) == 0 && (g.version_ >> 16) != 0) {
      return c.FailAt(4, fmt::format("GGUF version field {:#x} looks big-endian; only little-endian files are "
                                     "supported", g.version_));
    }
    return c.FailAt(4, fmt::format("unsupported GGUF version {} (supported: 2, 3)", g.version_));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  RAZOR_RETURN_IF_ERROR(c.Read(&n_tensors, "tensor count"));
  RAZOR_RETURN_IF_ERROR(c.Read(&n_kv, "metadata count"));
  if (n_kv > c.remaining() / kMinKvBytes) {
    return c.FailAt(16, fmt::format("header claims {} metadata entries but only {} bytes follow", n_kv,
                                    c.remaining()));
  }
  if (n_tensors > (c.remaining() - n_kv * kMinKvBytes) / kMinTensorInfoBytes) {
    return c.FailAt(8, fmt::format("header claims {} tensors but only {} bytes follow", n_tensors, c.remaining()));
  }

  // Metadata.
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t kv_start = c.pos();
    std::string key;
    RAZOR_RETURN_IF_ERROR(c.ReadString(&key, fmt::format("metadata key #{}", i)));
    if (g.kv_.count(key) != 0) return c.FailAt(kv_start, "duplicate metadata key " + Quote(key));
    const std::string what = "metadata " + Quote(key);
    uint32_t type_raw = 0;
    RAZOR_RETURN_IF_ERROR(c.Read(&type_raw, what + " type"));
    if (!IsKnownType(type_raw)) {
      return c.FailAt(kv_start, fmt::format("{} has unknown value type {}", what, type_raw));
    }
    GgufValue v;
    v.type = static_cast<GgufValueType>(type_raw);
    if (v.type == GgufValueType::ARRAY) {
      RAZOR_RETURN_IF_ERROR(ReadArray(c, &v, what));
    } else {
      RAZOR_RETURN_IF_ERROR(ReadScalar(c, v.type, &v, what));
    }
    g.key_order_.push_back(key);
    g.kv_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = g.Find("general.alignment")) {
    const uint64_t* u = std::get_if<uint64_t>(&a->scalar);
    const int64_t* s = std::get_if<int64_t>(&a->scalar);
    const bool is_int = a->type != GgufValueType::ARRAY && (u != nullptr || s != nullptr);
    const uint64_t value = u ? *u : (s && *s > 0 ? static_cast<uint64_t>(*s) : 0);
    if (!is_int || !std::has_single_bit(value)) {
      return c.FailAt(0, fmt::format("general.alignment = {} is invalid (must be a power of two > 0)",
                                     a->ToShortString()));
    }
    g.alignment_ = static_cast<size_t>(value);
  }

  // Tensor infos.
  std::vector<PendingTensor> pending(static_cast<size_t>(n_tensors));
  std::set<std::string> names;
  for (auto& t : pending) {
    RAZOR_RETURN_IF_ERROR(ReadTensorInfo(c, &t));
    if (!names.insert(t.name).second) return c.FailAt(t.info_offset, "duplicate tensor name " + Quote(t.name));
  }

  // Tensor data.
  if (!AlignUp(c.pos(), g.alignment_, &g.data_offset_)) {
    return c.Fail(fmt::format("alignment {} overflows the data section offset", g.alignment_));
  }
  if (!pending.empty() && g.data_offset_ > size) {
    return c.Fail(fmt::format("data section starts at offset {} (aligned to {}), past the end of the file ({} bytes)",
                              g.data_offset_, g.alignment_, size));
  }
  const size_t data_bytes = pending.empty() ? 0 : size - g.data_offset_;
  g.tensors_.reserve(pending.size());
  for (auto& t : pending) {
    if (t.offset % g.alignment_ != 0) {
      return c.FailAt(t.info_offset, fmt::format("tensor {} data offset {} is not a multiple of the alignment {}",
                                                 Quote(t.name), t.offset, g.alignment_));
    }
    if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset) {
      return c.FailAt(t.info_offset, fmt::format("tensor {} data ({} bytes at data offset {}) extends past the end "
                                                 "of the file (data section: {} bytes from file offset {})",
                                                 Quote(t.name), t.nbytes, t.offset, data_bytes, g.data_offset_));
    }
    TensorView view;
    view.name = std::move(t.name);
    view.type = t.type;
    view.shape = std::move(t.shape);
    view.data = data + g.data_offset_ + static_cast<size_t>(t.offset);
    view.nbytes = t.nbytes;
    g.tensor_index_.emplace(view.name, g.tensors_.size());
    g.tensors_.push_back(std::move(view));
  }
  return g;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const TensorView* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// Typed getters. Their errors do not start with the path: callers prefix it (see ConfigFromGguf).
namespace {

std::string Describe(const GgufValue& v) {
  if (v.type == GgufValueType::ARRAY) return fmt::format("an array of {}", GgufValueTypeName(v.array_type));
  return GgufValueTypeName(v.type);
}

Status Missing(const std::string& key) { return Err("metadata key " + Quote(key) + " is missing"); }
Status WrongType(const std::string& key, const GgufValue& v, const char* expected) {
  return Err(fmt::format("metadata key {} has type {}, expected {}", Quote(key), Describe(v), expected));
}

}  // namespace

Result<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufValueType::STRING) return WrongType(key, *v, "STRING");
  return std::get<std::string>(v->scalar);
}

Result<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (!IsIntegerType(v->type)) return WrongType(key, *v, "an integer");
  if (auto* s = std::get_if<int64_t>(&v->scalar)) return *s;
  const uint64_t u = std::get<uint64_t>(v->scalar);
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Err(fmt::format("metadata key {} = {} does not fit in int64", Quote(key), u));
  }
  return static_cast<int64_t>(u);
}

Result<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (auto* d = std::get_if<double>(&v->scalar); d && v->type != GgufValueType::ARRAY) return *d;
  if (IsIntegerType(v->type)) {
    if (auto* s = std::get_if<int64_t>(&v->scalar)) return static_cast<double>(*s);
    return static_cast<double>(std::get<uint64_t>(v->scalar));
  }
  return WrongType(key, *v, "a number");
}

Result<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufValueType::BOOL) return WrongType(key, *v, "BOOL");
  return std::get<bool>(v->scalar);
}

std::optional<int64_t> GgufFile::GetIntOr(const std::string& key) const {
  auto r = GetInt(key);
  return r ? std::optional<int64_t>(*r) : std::nullopt;
}

std::optional<double> GgufFile::GetFloatOr(const std::string& key) const {
  auto r = GetFloat(key);
  return r ? std::optional<double>(*r) : std::nullopt;
}

std::optional<std::string> GgufFile::GetStringOr(const std::string& key) const {
  auto r = GetString(key);
  return r ? std::optional<std::string>(std::move(*r)) : std::nullopt;
}

Result<const std::vector<std::string>*> GgufFile::GetStringArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufValueType::ARRAY || v->array_type != GgufValueType::STRING) {
    return WrongType(key, *v, "an array of STRING");
  }
  return &v->strings;
}

Result<const std::vector<int64_t>*> GgufFile::GetIntArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufValueType::ARRAY || !IsIntegerType(v->array_type)) return WrongType(key, *v, "an integer array");
  return &v->ints;
}

Result<const std::vector<double>*> GgufFile::GetFloatArray(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufValueType::ARRAY ||
      (v->array_type != GgufValueType::FLOAT32 && v->array_type != GgufValueType::FLOAT64)) {
    return WrongType(key, *v, "a float array");
  }
  return &v->floats;
}

}  // namespace razor
