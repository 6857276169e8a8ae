#include "io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace razor {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keeps header order for tensors()

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the reference implementation's limit

struct DtypeInfo {
  TensorType type;
  size_t bytes;
};

bool LookupDtype(const std::string& dtype, DtypeInfo* out) {
  if (dtype == "F32") *out = {TensorType::F32, 4};
  else if (dtype == "F16") *out = {TensorType::F16, 2};
  else if (dtype == "BF16") *out = {TensorType::BF16, 2};
  else return false;
  return true;
}

// Printable, bounded rendering of a name from the file.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f) ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  }
  return out + (s.size() > 80 ? "...'" : "'");
}

bool IsUnsignedArray(const Json& j, size_t want_size_or_zero) {
  if (!j.is_array() || (want_size_or_zero != 0 && j.size() != want_size_or_zero)) return false;
  for (const auto& e : j) {
    if (!e.is_number_unsigned()) return false;
  }
  return true;
}

// Parses one header entry into `view`; `data`/`data_bytes` describe the data section after the header.
Status ParseEntry(const std::string& path, const std::string& name, const Json& e, const uint8_t* data,
                  size_t data_bytes, TensorView* view) {
  const std::string who = fmt::format("{}: tensor {}", path, Quote(name));
  if (!e.is_object()) return Err(who + ": header entry is not a JSON object");
  auto dtype_it = e.find("dtype");
  auto shape_it = e.find("shape");
  auto offs_it = e.find("data_offsets");
  if (dtype_it == e.end() || !dtype_it->is_string()) return Err(who + ": missing or non-string \"dtype\"");
  if (shape_it == e.end() || !IsUnsignedArray(*shape_it, 0)) {
    return Err(who + ": \"shape\" must be an array of non-negative integers");
  }
  if (offs_it == e.end() || !IsUnsignedArray(*offs_it, 2)) {
    return Err(who + ": \"data_offsets\" must be [begin, end] with non-negative integers");
  }
  const auto dtype = dtype_it->get<std::string>();
  DtypeInfo info{};
  if (!LookupDtype(dtype, &info)) {
    return Err(fmt::format("{}: unsupported dtype {} (supported: F32, F16, BF16)", who, Quote(dtype)));
  }
  // Element count and byte size, checked for overflow (shape values are u64 in JSON).
  uint64_t elems = 1;
  std::vector<int64_t> shape;
  for (const auto& d : *shape_it) {
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(elems, dim, &elems) ||
        elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Err(who + ": shape is too large (element count overflows)");
    }
    shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(elems, static_cast<uint64_t>(info.bytes), &nbytes)) {
    return Err(who + ": shape is too large (byte size overflows)");
  }
  const uint64_t begin = (*offs_it)[0].get<uint64_t>();
  const uint64_t end = (*offs_it)[1].get<uint64_t>();
  if (begin > end || end > data_bytes) {
    return Err(fmt::format("{}: data_offsets [{}, {}) are outside the data section of {} bytes", who, begin, end,
                           data_bytes));
  }
  if (end - begin != nbytes) {
    return Err(fmt::format("{}: data_offsets [{}, {}) hold {} bytes but {} x {} elements need {}", who, begin, end,
                           end - begin, dtype, elems, nbytes));
  }
  view->name = name;
  view->type = info.type;
  view->shape.assign(shape.rbegin(), shape.rend());  // PyTorch order -> GGUF order
  view->data = data + begin;
  view->nbytes = static_cast<size_t>(nbytes);
  return Status::Ok();
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  const size_t size = file->size();
  if (size < 8) return Err(fmt::format("{}: file truncated: {} bytes, too small for the 8-byte header length", path, size));
  uint64_t header_len = 0;
  std::memcpy(&header_len, file->data(), 8);  // little-endian on every host we build for
  if (header_len > size - 8) {
    return Err(fmt::format("{}: header length {} at offset 0 exceeds the {} bytes after it", path, header_len, size - 8));
  }
  if (header_len > kMaxHeaderBytes) {
    return Err(fmt::format("{}: header length {} exceeds the limit of {} bytes", path, header_len, kMaxHeaderBytes));
  }
  const auto* header = reinterpret_cast<const char*>(file->data() + 8);
  Json j = Json::parse(header, header + header_len, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Err(fmt::format("{}: header (offset 8, {} bytes) is not valid JSON", path, header_len));
  if (!j.is_object()) return Err(path + ": header is not a JSON object");

  SafetensorsFile f;
  f.path_ = path;
  const uint8_t* data = file->data() + 8 + header_len;
  const size_t data_bytes = size - 8 - static_cast<size_t>(header_len);
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") continue;
    TensorView view;
    RAZOR_RETURN_IF_ERROR(ParseEntry(path, name, entry, data, data_bytes, &view));
    f.index_.emplace(view.name, f.tensors_.size());
    f.tensors_.push_back(std::move(view));
  }
  f.file_ = std::move(file);
  return f;
}

const TensorView* SafetensorsFile::FindTensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<SafetensorsCheckpoint> SafetensorsCheckpoint::Open(const std::string& dir) {
  SafetensorsCheckpoint ck;
  ck.dir_ = dir;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single_path = fs::path(dir) / "model.safetensors";
  std::error_code ec;

  // Shard file names in first-use order, and the tensors the index says each one holds.
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> expected;  // tensor name -> shard file name
  std::string source;                           // what named the shards, for error messages
  if (fs::is_regular_file(dir, ec)) {
    shard_names.push_back(fs::path(dir).filename().string());
    ck.dir_ = fs::path(dir).parent_path().string();
    source = dir;
  } else if (fs::exists(index_path, ec)) {
    source = index_path.string();
    std::ifstream in(index_path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) return Err(source + ": cannot read");
    const std::string text = ss.str();
    Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Err(source + ": not a valid JSON object");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) return Err(source + ": missing \"weight_map\" object");
    for (const auto& [tensor, shard] : wm->items()) {
      if (!shard.is_string()) return Err(fmt::format("{}: weight_map entry {} is not a string", source, Quote(tensor)));
      const auto name = shard.get<std::string>();
      if (name.empty() || fs::path(name).is_absolute() || name.find("..") != std::string::npos) {
        return Err(fmt::format("{}: shard name {} for tensor {} is not a plain file name", source, Quote(name),
                               Quote(tensor)));
      }
      if (expected.emplace(tensor, name).second &&
          std::find(shard_names.begin(), shard_names.end(), name) == shard_names.end()) {
        shard_names.push_back(name);
      }
    }
    if (shard_names.empty()) return Err(source + ": weight_map is empty");
  } else if (fs::exists(single_path, ec)) {
    source = single_path.string();
    shard_names.push_back("model.safetensors");
  } else {
    return Err(fmt::format("{}: no model.safetensors or model.safetensors.index.json found", dir));
  }

  std::map<std::string, const SafetensorsFile*> owner;  // tensor name -> shard, for duplicate/missing checks
  std::vector<SafetensorsFile> files;
  files.reserve(shard_names.size());
  for (const auto& name : shard_names) {
    const std::string shard_path = (fs::path(ck.dir_) / name).string();
    auto f = SafetensorsFile::Open(shard_path);
    if (!f) {
      if (!fs::exists(shard_path, ec)) {
        return Err(fmt::format("{}: shard {} is missing (looked for {})", source, Quote(name), shard_path));
      }
      return f.status();
    }
    files.push_back(std::move(*f));
  }
  for (const auto& f : files) {
    for (const auto& t : f.tensors()) {
      if (!owner.emplace(t.name, &f).second) {
        return Err(fmt::format("{}: tensor {} appears in more than one shard (also in {})", f.path(), Quote(t.name),
                               owner[t.name]->path()));
      }
      ck.index_.emplace(t.name, ck.tensors_.size());
      ck.tensors_.push_back(t);
    }
    ck.shards_.push_back(f.mapping());
  }
  for (const auto& [tensor, shard] : expected) {
    auto it = owner.find(tensor);
    if (it == owner.end() || fs::path(it->second->path()).filename() != fs::path(shard).filename()) {
      return Err(fmt::format("{}: tensor {} is mapped to {} but that shard does not hold it", source, Quote(tensor),
                             Quote(shard)));
    }
  }
  return ck;
}

const TensorView* SafetensorsCheckpoint::FindTensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace razor
