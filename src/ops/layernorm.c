/* layernorm.c - LayerNorm over the last dimension (torch F.layer_norm), with the
 * per-row mean and reciprocal std saved for the backward pass. */
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int M, int C, float eps) {
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *x = inp + (size_t)m * C;
    float *y = out + (size_t)m * C;
    double s = 0, ss = 0;
    for (int c = 0; c < C; c++) s += x[c];
    double mu = s / C;
    for (int c = 0; c < C; c++) {
      double d = x[c] - mu;
      ss += d * d;
    }
    float r = (float)(1.0 / sqrt(ss / C + eps));
    float muf = (float)mu;
    for (int c = 0; c < C; c++) y[c] = (x[c] - muf) * r * weight[c] + bias[c];
    mean[m] = muf;
    rstd[m] = r;
  }
}

/* With xhat = (x - mean) * rstd and g = dout * weight:
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). Parameter grads are reduced
 * over rows per thread and then summed, so no atomics are needed. */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int M, int C) {
#pragma omp parallel
  {
    float *dw = calloc((size_t)C, sizeof(float)), *db = calloc((size_t)C, sizeof(float));
#pragma omp for
    for (int m = 0; m < M; m++) {
      const float *x = inp + (size_t)m * C, *dy = dout + (size_t)m * C;
      float mu = mean[m], r = rstd[m];
      float sum_g = 0, sum_gx = 0;
      for (int c = 0; c < C; c++) {
        float xhat = (x[c] - mu) * r, g = dy[c] * weight[c];
        sum_g += g;
        sum_gx += g * xhat;
        dw[c] += dy[c] * xhat;
        db[c] += dy[c];
      }
      float mg = sum_g / C, mgx = sum_gx / C;
      if (dinp) {
        float *dx = dinp + (size_t)m * C;
        for (int c = 0; c < C; c++) {
          float xhat = (x[c] - mu) * r;
          dx[c] += r * (dy[c] * weight[c] - mg - xhat * mgx);
        }
      }
    }
#pragma omp critical
    for (int c = 0; c < C; c++) {
      if (dweight) dweight[c] += dw[c];
      if (dbias) dbias[c] += db[c];
    }
    free(dw);
    free(db);
  }
}
