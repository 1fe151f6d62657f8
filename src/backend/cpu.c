/* cpu.c - the CPU backend: host memory (64-byte aligned, beit_alloc) and the
 * kernels of src/ops as they are. It lives beside the table rather than in
 * src/ops so that ops stays a set of plain functions and every backend, this one
 * included, is one file that fills a beit_backend (registry: backend.c). */
#include <omp.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"

/* A table entry must have its kernel's exact type: a signature that drifts from
 * ops.h stops the build here instead of miscalling at run time. */
#define SAME_TYPE(ret, name, args) \
  _Static_assert(__builtin_types_compatible_p(__typeof__(&name), ret(*) args), #name " differs from ops/ops.h");
BEIT_BACKEND_KERNELS(SAME_TYPE)
#undef SAME_TYPE

static void copy_bytes(void *dst, const void *src, size_t bytes) {
  if (bytes) memcpy(dst, src, bytes);
}

/* Gradient buffers are zeroed before every backward accumulates into them; split
 * over the threads because at small model sizes these memsets were 5% of a step. */
static void zero_floats(float *x, size_t n) {
#pragma omp parallel
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
    memset(x + i0, 0, (i1 - i0) * sizeof(float));
  }
}

#define KERNEL(ret, name, args) .name = name,
static const beit_backend cpu = {
    .name = "cpu",
    .host_memory = 1,
    .alloc = beit_alloc,
    .free = beit_free,
    .upload = copy_bytes,
    .download = copy_bytes,
    .copy = copy_bytes,
    .zero = zero_floats,
    BEIT_BACKEND_KERNELS(KERNEL)
};
#undef KERNEL

const beit_backend *beit_backend_cpu(void) { return &cpu; }
