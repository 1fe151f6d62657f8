/* simd.c - the generic (SSE2) build of simd_kernels.inc, and the choice among the
 * per-ISA tables (the ISA itself is picked by beit_isa_active, src/core/cpu.c). */
#include "core/core.h"

#define SIMD_TABLE simd_generic
#include "ops/simd_kernels.inc"

const simd_kernels *simd(void) {
  switch (beit_isa_active()) {
    case BEIT_ISA_AVX512: return &simd_avx512;
    case BEIT_ISA_AVX2: return &simd_avx2;
    default: return &simd_generic;
  }
}
