/* simd_avx2.c - simd_kernels.inc for AVX2 CPUs (compiled with -mavx2, CMakeLists.txt). */
#define SIMD_TABLE simd_avx2
#include "ops/simd_kernels.inc"
