/* adamw.c - the AdamW update (torch.optim.AdamW semantics: decoupled decay
 * applied as p -= lr*wd*p before the Adam step) and norm helpers. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "core/core.h"
#include "ops/ops.h"
#include "ops/simd.h"

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, int64_t t) {
  float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
  adamw_consts k = {beta1, beta2, 1.0f - lr * wd, lr / bc1, 1.0f / sqrtf(bc2), eps};
  const simd_kernels *sk = simd();
#pragma omp parallel for
  for (size_t i = 0; i < n; i += SIMD_CHUNK)
    sk->adamw(p + i, g + i, m + i, v + i, n - i < SIMD_CHUNK ? n - i : SIMD_CHUNK, &k);
}

/* Each thread sums one fixed block and the blocks are added in order, so the clipping
 * norm has the same bits in every run with the same thread count (a reduction clause
 * adds the threads' sums in the order they finish). */
double sum_squares(const float *x, size_t n) {
  int T = omp_in_parallel() ? 1 : omp_get_max_threads();
  double *part = calloc((size_t)T, sizeof(double)), s = 0;
  BEIT_CHECK(part != NULL);
#pragma omp parallel num_threads(T)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t per = (n + nt - 1) / nt, i0 = per * t < n ? per * t : n, i1 = n - i0 < per ? n : i0 + per;
    double acc = 0;
    for (size_t i = i0; i < i1; i++) acc += (double)x[i] * x[i];
    part[t] = acc;
  }
  for (int t = 0; t < T; t++) s += part[t];
  free(part);
  return s;
}

void scale_inplace(float *x, size_t n, float s) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) x[i] *= s;
}
