/* elementwise.c - GELU, residual with LayerScale and drop path, token embedding
 * with the mask token, mean pooling and row gather/scatter: the cheap ops of a
 * BEiT block that are not matmuls. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * INV_SQRT2));
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
    float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

void residual_forward(float *out, const float *res, const float *x, const float *gamma,
                      const float *keep_scale, int B, int T, int C) {
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      float k = keep_scale ? keep_scale[b] : 1.0f;
      size_t o = ((size_t)b * T + t) * C;
      for (int c = 0; c < C; c++) out[o + c] = res[o + c] + k * (gamma ? gamma[c] : 1.0f) * x[o + c];
    }
}

void residual_backward(float *dres, float *dx, float *dgamma, const float *dout,
                       const float *x, const float *gamma, const float *keep_scale,
                       int B, int T, int C) {
  size_t M = (size_t)B * T;
  if (dres) {
#pragma omp parallel for simd
    for (size_t i = 0; i < M * C; i++) dres[i] += dout[i];
  }
  if (dx) {
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++) {
        float k = keep_scale ? keep_scale[b] : 1.0f;
        size_t o = ((size_t)b * T + t) * C;
        for (int c = 0; c < C; c++) dx[o + c] += dout[o + c] * k * (gamma ? gamma[c] : 1.0f);
      }
  }
  if (dgamma) {
    /* parallel over channels: each thread owns its dgamma[c], no race */
#pragma omp parallel for
    for (int c = 0; c < C; c++) {
      double s = 0;
      for (int b = 0; b < B; b++) {
        float k = keep_scale ? keep_scale[b] : 1.0f;
        if (k == 0) continue;
        double sb = 0;
        for (int t = 0; t < T; t++) {
          size_t o = ((size_t)b * T + t) * C + c;
          sb += dout[o] * x[o];
        }
        s += k * sb;
      }
      dgamma[c] += (float)s;
    }
  }
}

void patchify(float *out, const float *img, int B, int Cin, int S, int P) {
  int G = S / P, K = Cin * P * P;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int p = 0; p < G * G; p++) {
      int gy = p / G, gx = p % G;
      float *o = out + ((size_t)b * G * G + p) * K;
      for (int c = 0; c < Cin; c++)
        for (int ky = 0; ky < P; ky++) {
          const float *row = img + (((size_t)b * Cin + c) * S + (size_t)gy * P + ky) * S + (size_t)gx * P;
          memcpy(o + (c * P + ky) * P, row, (size_t)P * sizeof(float));
        }
    }
}

void embed_forward(float *x, const float *e, const uint8_t *mask, const float *cls_token,
                   const float *mask_token, int B, int N, int C) {
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int n = 0; n < N; n++) {
      float *dst = x + ((size_t)b * N + n) * C;
      const float *src;
      if (n == 0) src = cls_token;
      else if (mask && mask[(size_t)b * (N - 1) + n - 1]) src = mask_token;
      else src = e + ((size_t)b * (N - 1) + n - 1) * C;
      memcpy(dst, src, (size_t)C * sizeof(float));
    }
}

void embed_backward(float *de, float *dcls, float *dmask_token, const float *dx,
                    const uint8_t *mask, int B, int N, int C) {
  /* per-channel reductions for the shared tokens (no races across threads) */
#pragma omp parallel for
  for (int c = 0; c < C; c++) {
    float sc = 0, sm = 0;
    for (int b = 0; b < B; b++) {
      sc += dx[(size_t)b * N * C + c];
      if (mask)
        for (int n = 1; n < N; n++)
          if (mask[(size_t)b * (N - 1) + n - 1]) sm += dx[((size_t)b * N + n) * C + c];
    }
    if (dcls) dcls[c] += sc;
    if (dmask_token) dmask_token[c] += sm;
  }
  if (!de) return;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int n = 1; n < N; n++) {
      if (mask && mask[(size_t)b * (N - 1) + n - 1]) continue;
      const float *src = dx + ((size_t)b * N + n) * C;
      float *dst = de + ((size_t)b * (N - 1) + n - 1) * C;
      for (int c = 0; c < C; c++) dst[c] += src[c];
    }
}

void mean_pool_forward(float *out, const float *inp, int B, int N, int C, int first) {
  float inv = 1.0f / (float)(N - first);
#pragma omp parallel for
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * C;
    memset(o, 0, (size_t)C * sizeof(float));
    for (int n = first; n < N; n++) {
      const float *x = inp + ((size_t)b * N + n) * C;
      for (int c = 0; c < C; c++) o[c] += x[c];
    }
    for (int c = 0; c < C; c++) o[c] *= inv;
  }
}

void mean_pool_backward(float *dinp, const float *dout, int B, int N, int C, int first) {
  float inv = 1.0f / (float)(N - first);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int n = first; n < N; n++) {
      float *d = dinp + ((size_t)b * N + n) * C;
      const float *g = dout + (size_t)b * C;
      for (int c = 0; c < C; c++) d[c] += g[c] * inv;
    }
}

void gather_rows(float *out, const float *inp, const int32_t *rows, int n, int C) {
#pragma omp parallel for
  for (int i = 0; i < n; i++)
    memcpy(out + (size_t)i * C, inp + (size_t)rows[i] * C, (size_t)C * sizeof(float));
}

/* rows are distinct in every use (masked positions), so rows can be parallel */
void scatter_add_rows(float *dinp, const float *dout, const int32_t *rows, int n, int C) {
#pragma omp parallel for
  for (int i = 0; i < n; i++) {
    float *d = dinp + (size_t)rows[i] * C;
    const float *g = dout + (size_t)i * C;
    for (int c = 0; c < C; c++) d[c] += g[c];
  }
}
