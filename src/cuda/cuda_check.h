// CUDA / cuBLAS error checks. A failed call inside a kernel launcher or a backend method that cannot return
// a Status is a broken device (lost context, illegal address): it aborts with the call and the error string,
// never continues on wrong data.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define RAZOR_CUDA_CHECK(call)                                                                               \
  do {                                                                                                       \
    const cudaError_t razor_err_ = static_cast<cudaError_t>(call);                                          \
    if (razor_err_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "razor: CUDA error %s at %s:%d: %s\n", cudaGetErrorName(razor_err_), __FILE__,   \
                   __LINE__, cudaGetErrorString(razor_err_));                                                \
      std::abort();                                                                                          \
    }                                                                                                        \
  } while (0)

#define RAZOR_CUBLAS_CHECK(call)                                                                             \
  do {                                                                                                       \
    const cublasStatus_t razor_st_ = (call);                                                                 \
    if (razor_st_ != CUBLAS_STATUS_SUCCESS) {                                                                \
      std::fprintf(stderr, "razor: cuBLAS error %d at %s:%d\n", static_cast<int>(razor_st_), __FILE__,       \
                   __LINE__);                                                                                \
      std::abort();                                                                                          \
    }                                                                                                        \
  } while (0)
