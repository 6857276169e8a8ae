// Hugging Face safetensors reader: one mmapped file (SafetensorsFile) or a checkpoint directory that holds either
// model.safetensors or model.safetensors.index.json plus its shards (SafetensorsCheckpoint).
// File layout: u64 little-endian header length N | N bytes of JSON | data. The JSON maps tensor names to
// {"dtype", "shape" (PyTorch order, outermost first), "data_offsets": [begin, end)} relative to the data start.
// Views are exposed in GGUF order (shape reversed: shape[0] innermost). Only F32/F16/BF16 are accepted.
// Note: safetensors does not align tensor data, so a view's data pointer may be unaligned for its type.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "core/tensor_view.h"

namespace razor {

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in header order
  const TensorView* FindTensor(const std::string& name) const;
  // The mapping the views point into; share it to keep them alive.
  const std::shared_ptr<MappedFile>& mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::string path_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

class SafetensorsCheckpoint {
 public:
  // `dir` holds model.safetensors.index.json (sharded; preferred when present) or model.safetensors.
  static Result<SafetensorsCheckpoint> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Every tensor of every shard; the views stay valid while this object (or a copy of it) lives.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* FindTensor(const std::string& name) const;
  size_t shard_count() const { return shards_.size(); }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<MappedFile>> shards_;  // keeps every mapping alive
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace razor
