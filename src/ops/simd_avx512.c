/* simd_avx512.c - simd_kernels.inc for AVX-512 CPUs (compiled with -mavx512f, CMakeLists.txt). */
#define SIMD_TABLE simd_avx512
#include "ops/simd_kernels.inc"
