/* vq.c - the kernels of vector quantisation (src/model/vq.c): layout changes,
 * l2 normalisation and its backward, cosine-similarity code lookup, the EMA
 * codebook update, dead-code restart and the commitment loss. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

void vq_maps_to_rows(float *rows, const float *maps, int B, int d, int hw) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < d; c++)
      for (int p = 0; p < hw; p++) rows[((size_t)b * hw + p) * d + c] = maps[((size_t)b * d + c) * hw + p];
}

void vq_rows_to_maps(float *maps, const float *rows, int B, int d, int hw) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < d; c++)
      for (int p = 0; p < hw; p++) maps[((size_t)b * d + c) * hw + p] = rows[((size_t)b * hw + p) * d + c];
}

void vq_l2_normalize(float *y, float *norm, const float *x, size_t n, int d) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    for (int c = 0; c < d; c++) s += (double)x[i * d + c] * x[i * d + c];
    double r = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;
    for (int c = 0; c < d; c++) y[i * d + c] = (float)(x[i * d + c] / r);
    if (norm) norm[i] = (float)r;
  }
}

void vq_l2_normalize_backward(float *dx, const float *dy, const float *y, const float *norm, size_t n, int d) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    double dot = 0;
    for (int c = 0; c < d; c++) dot += (double)y[i * d + c] * dy[i * d + c];
    for (int c = 0; c < d; c++) dx[i * d + c] = (float)((dy[i * d + c] - y[i * d + c] * dot) / norm[i]);
  }
}

/* codes[i] = argmax_k <x_i, C_k> (the first of equals; NaN never wins), sim[i] its value.
 * The similarities are sgemm products of tiles of 64 rows by 256 codes (a tile of 64 KiB stays in
 * L2): the plain dot-product loop could not be vectorised (a float reduction) and was 9% of a
 * pretraining step with VQ tokens. */
void vq_cosine_lookup(int32_t *codes, float *sim, const float *x, const float *C, size_t n, int d, int V) {
  enum { ROWS = 64, CODES = 256 };
  const size_t tiles = (n + ROWS - 1) / ROWS;
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < tiles; t++) {
    float s[ROWS * CODES], best[ROWS];
    int32_t arg[ROWS];
    const size_t i0 = t * ROWS;
    const int rows = n - i0 < ROWS ? (int)(n - i0) : ROWS;
    for (int r = 0; r < rows; r++) best[r] = -INFINITY, arg[r] = 0;
    for (int k0 = 0; k0 < V; k0 += CODES) {
      const int w = V - k0 < CODES ? V - k0 : CODES;
      gemm(0, 1, rows, w, d, 1.0f, x + i0 * d, d, C + (size_t)k0 * d, d, 0.0f, s, CODES);
      for (int r = 0; r < rows; r++)
        for (int k = 0; k < w; k++)
          if (s[r * CODES + k] > best[r]) best[r] = s[r * CODES + k], arg[r] = k0 + k;
    }
    for (int r = 0; r < rows; r++) {
      codes[i0 + r] = arg[r];
      if (sim) sim[i0 + r] = best[r];
    }
  }
}

void vq_ema_update(float *C, float *count, float *sum, const float *x, const int32_t *codes, size_t n, int d, int V,
                   float decay) {
  const float a = 1.0f - decay;
  for (int k = 0; k < V; k++) {
    count[k] *= decay;
    for (int c = 0; c < d; c++) sum[(size_t)k * d + c] *= decay;
  }
  for (size_t i = 0; i < n; i++) {  /* serial: the sums come out the same in every run */
    int k = codes[i];
    count[k] += a;
    for (int c = 0; c < d; c++) sum[(size_t)k * d + c] += a * x[i * d + c];
  }
#pragma omp parallel for schedule(static)
  for (int k = 0; k < V; k++) {
    double s = 0;
    for (int c = 0; c < d; c++) s += (double)sum[(size_t)k * d + c] * sum[(size_t)k * d + c];
    if (s > 0)
      for (int c = 0; c < d; c++) C[(size_t)k * d + c] = (float)(sum[(size_t)k * d + c] / sqrt(s));
  }
}

int vq_restart_dead(float *C, float *count, float *sum, const float *x, const uint32_t *pick, int d, int V,
                    float threshold) {
  int j = 0;
  for (int k = 0; k < V; k++) {
    if (!(count[k] < threshold)) continue;
    const float *src = x + (size_t)pick[j++] * d;
    memcpy(C + (size_t)k * d, src, (size_t)d * sizeof(float));
    memcpy(sum + (size_t)k * d, src, (size_t)d * sizeof(float));
    count[k] = 1.0f;
  }
  return j;
}

double vq_commitment(float *dx, const float *x, const float *q, size_t n, int d, float beta) {
  const size_t N = n * (size_t)d;
  const double g = 2.0 * beta / (double)N;
  double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
  for (size_t i = 0; i < N; i++) {
    double r = (double)x[i] - q[i];
    s += r * r;
    dx[i] += (float)(g * r);
  }
  return beta * s / (double)N;
}
