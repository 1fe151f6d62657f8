/* elementwise.c - GELU, residual with LayerScale and drop path, token embedding
 * with the mask token, mean pooling and row gather/scatter: the cheap ops of a
 * BEiT block that are not matmuls. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/simd.h"

/* GELU: the exact erf form from a branch-free erfc and exp (simd_kernels.inc), 2e-7
 * absolute from libm's erff; threads take chunks of SIMD_CHUNK values. */
void gelu_forward(float *out, const float *inp, size_t n) {
  const simd_kernels *sk = simd();
#pragma omp parallel for
  for (size_t i = 0; i < n; i += SIMD_CHUNK)
    sk->gelu_forward(out + i, inp + i, n - i < SIMD_CHUNK ? n - i : SIMD_CHUNK);
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
  const simd_kernels *sk = simd();
#pragma omp parallel for
  for (size_t i = 0; i < n; i += SIMD_CHUNK)
    sk->gelu_backward(dinp + i, dout + i, inp + i, n - i < SIMD_CHUNK ? n - i : SIMD_CHUNK);
}

void gelu_forward_deriv(float *out, float *deriv, const float *inp, size_t n) {
  const simd_kernels *sk = simd();
#pragma omp parallel for
  for (size_t i = 0; i < n; i += SIMD_CHUNK)
    sk->gelu_forward_deriv(out + i, deriv + i, inp + i, n - i < SIMD_CHUNK ? n - i : SIMD_CHUNK);
}

void gelu_backward_deriv(float *dinp, const float *dout, const float *deriv, size_t n) {
  if (dinp == deriv) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * deriv[i];
  } else {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * deriv[i];
  }
}

/* out[c] = res[c] + k * gamma[c] * x[c] (gamma NULL: 1); out may be res. The test on
 * gamma stays out of the loops, which then vectorise. */
static void residual_row(float *out, const float *res, const float *x, const float *gamma, float k, int C) {
  if (gamma) {
#pragma omp simd
    for (int c = 0; c < C; c++) out[c] = res[c] + k * gamma[c] * x[c];
  } else {
#pragma omp simd
    for (int c = 0; c < C; c++) out[c] = res[c] + k * x[c];
  }
}

void residual_forward(float *out, const float *res, const float *x, const float *gamma,
                      const float *keep_scale, int B, int T, int C) {
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      size_t o = ((size_t)b * T + t) * C;
      residual_row(out + o, res + o, x + o, gamma, keep_scale ? keep_scale[b] : 1.0f, C);
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
        size_t o = ((size_t)b * T + t) * C;
        residual_row(dx + o, dx + o, dout + o, gamma, keep_scale ? keep_scale[b] : 1.0f, C);
      }
  }
  if (dgamma) {
    /* threads own blocks of 16 channels: row-major reads, no race on dgamma */
    enum { W = 16 };
#pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += W) {
      int w = C - c0 < W ? C - c0 : W;
      double s[W] = {0};
      for (int b = 0; b < B; b++) {
        float k = keep_scale ? keep_scale[b] : 1.0f, sb[W] = {0};
        if (k == 0) continue;
        for (int t = 0; t < T; t++) {
          size_t o = ((size_t)b * T + t) * C + c0;
#pragma omp simd
          for (int j = 0; j < w; j++) sb[j] += dout[o + j] * x[o + j];
        }
        for (int j = 0; j < w; j++) s[j] += k * sb[j];
      }
      for (int j = 0; j < w; j++) dgamma[c0 + j] += (float)s[j];
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
