/* layernorm.c - LayerNorm over the last dimension (torch F.layer_norm), with the
 * per-row mean and reciprocal std saved for the backward pass. The rows are the
 * vector kernels of simd_kernels.inc; this file splits them over the threads. */
#include <omp.h>
#include <stdlib.h>

#include "core/core.h"
#include "ops/ops.h"
#include "ops/simd.h"

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int M, int C, float eps) {
  const simd_kernels *sk = simd();
#pragma omp parallel for
  for (int m = 0; m < M; m++)
    sk->layernorm_row(out + (size_t)m * C, mean + m, rstd + m, inp + (size_t)m * C, weight, bias, C, eps);
}

/* Parameter grads are summed per thread over a fixed block of rows, then the
 * threads' sums in thread order: no atomics, and the same bits in every run with
 * the same thread count (not so in the order threads happen to finish). */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int M, int C) {
  const simd_kernels *sk = simd();
  int T = omp_in_parallel() ? 1 : omp_get_max_threads();
  float *part = calloc((size_t)T * 2 * C, sizeof(float));
  BEIT_CHECK(part != NULL);
#pragma omp parallel num_threads(T)
  {
    float *dw = part + (size_t)omp_get_thread_num() * 2 * C, *db = dw + C;
#pragma omp for schedule(static)
    for (int m = 0; m < M; m++)
      sk->layernorm_row_backward(dinp ? dinp + (size_t)m * C : NULL, dw, db, dout + (size_t)m * C,
                                inp + (size_t)m * C, weight, mean[m], rstd[m], C);
  }
  for (int t = 0; t < T; t++)
    for (int c = 0; c < C; c++) {
      if (dweight) dweight[c] += part[(size_t)t * 2 * C + c];
      if (dbias) dbias[c] += part[(size_t)t * 2 * C + C + c];
    }
  free(part);
}
