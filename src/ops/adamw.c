/* adamw.c - the AdamW update (torch.optim.AdamW semantics: decoupled decay
 * applied as p -= lr*wd*p before the Adam step) and norm helpers. */
#include <math.h>

#include "ops/ops.h"

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, int64_t t) {
  float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
  float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2), decay = 1.0f - lr * wd;
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) {
    m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
    v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
    p[i] = p[i] * decay - step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
  }
}

double sum_squares(const float *x, size_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s)
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

void scale_inplace(float *x, size_t n, float s) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) x[i] *= s;
}
