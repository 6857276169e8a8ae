// One dispatch point for auto-vectorised loops: the function is compiled for AVX-512, AVX2+FMA and
// baseline x86-64, and the loader picks the best clone for the CPU at run time (GCC ifunc).
// Hand-written intrinsic kernels (quantized dot products) dispatch in ops/matmul_fast*.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define RAZOR_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RAZOR_VECTOR_CLONES
#endif
