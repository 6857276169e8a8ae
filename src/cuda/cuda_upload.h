// Host -> device copies that never block the host: each upload is staged in a pinned, bump-allocated arena
// and copied with cudaMemcpyAsync on the backend's stream. The arena restarts once the stream is known idle
// (Reset(), after a synchronisation); when it fills up first, it synchronises itself. (Pageable sources would
// make every copy wait for the stream: one stall per upload, several per layer.)
#pragma once

#include <cstddef>
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace razor {

class CudaOpTimeline;

class CudaUploader {
 public:
  explicit CudaUploader(cudaStream_t stream) : stream_(stream) {}
  ~CudaUploader();
  CudaUploader(const CudaUploader&) = delete;
  CudaUploader& operator=(const CudaUploader&) = delete;

  // Copies n bytes from host src to device dst, ordered on the stream; src may be reused at once.
  void Upload(void* dst, const void* src, size_t n);
  // Copies the pieces, each starting 16-byte aligned (offsets[i] from dst), to dst in one copy: a copy costs
  // the stream a few microseconds whatever its size. Returns the bytes written.
  struct Piece {
    const void* src;
    size_t bytes;
  };
  size_t UploadPieces(void* dst, const Piece* pieces, int n, size_t* offsets);
  // The bytes UploadPieces needs for these pieces.
  static size_t PiecesBytes(const Piece* pieces, int n);
  // The stream has been synchronised: every staged copy is done.
  void Reset() { used_ = 0; }
  cudaStream_t stream() const { return stream_; }
  // RAZOR_CUDA_STATS=ops: the backend's timeline, where uploads and the KV pools' operations mark themselves.
  void set_timeline(CudaOpTimeline* t) { timeline_ = t; }
  CudaOpTimeline* timeline() const { return timeline_; }

 private:
  CudaOpTimeline* timeline_ = nullptr;
  cudaStream_t stream_;
  uint8_t* Stage(size_t n);  // n bytes of the arena, synchronising first when it is full
  uint8_t* base_ = nullptr;
  size_t cap_ = 0, used_ = 0;
};

}  // namespace razor
