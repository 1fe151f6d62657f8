/* attention.c - BEiT's relative position bias (the (2Wh-1)(2Ww-1)+3 table with
 * three CLS entries) and the multi-head attention core
 *   A = softmax(q k^T / sqrt(D) + bias),  O = A v
 * computed per (batch, head) with loops sized for BEiT's short sequences.
 * Derivation of the backward: dV = A^T dO; dA = dO V^T; dS = A * (dA - rowsum(dA*A));
 * dQ = dS K / sqrt(D); dK = dS^T Q / sqrt(D); dbias = sum over batch of dS. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ops/ops.h"
#include "ops/simd.h"

int relpos_table_rows(int Wh, int Ww) { return (2 * Wh - 1) * (2 * Ww - 1) + 3; }

void relpos_build_index(int32_t *index, int Wh, int Ww) {
  int N = Wh * Ww + 1, R = relpos_table_rows(Wh, Ww);
  for (int n = 1; n < N; n++)
    for (int m = 1; m < N; m++) {
      int rn = (n - 1) / Ww, cn = (n - 1) % Ww, rm = (m - 1) / Ww, cm = (m - 1) % Ww;
      index[n * N + m] = (rn - rm + Wh - 1) * (2 * Ww - 1) + (cn - cm + Ww - 1);
    }
  for (int m = 0; m < N; m++) index[m] = R - 3;      /* CLS as query */
  for (int n = 0; n < N; n++) index[n * N] = R - 2;  /* CLS as key */
  index[0] = R - 1;                                  /* CLS to CLS */
}

void relpos_bias_forward(float *bias, const float *table, const int32_t *index, int N, int H) {
#pragma omp parallel for
  for (int h = 0; h < H; h++)
    for (size_t i = 0; i < (size_t)N * N; i++) bias[(size_t)h * N * N + i] = table[(size_t)index[i] * H + h];
}

void relpos_bias_backward(float *dtable, const float *dbias, const int32_t *index, int N, int H) {
  /* each head owns one column of the table: parallel over heads is race-free */
#pragma omp parallel for
  for (int h = 0; h < H; h++)
    for (size_t i = 0; i < (size_t)N * N; i++) dtable[(size_t)index[i] * H + h] += dbias[(size_t)h * N * N + i];
}

/* Per (batch, head): q, k, v are column blocks of the qkv rows (leading dimension
 * 3C), so the products read them in place. Each (b, h) runs on one thread. Up to
 * ATT_FUSED_NMAX tokens with D a multiple of 16 (every preset: D = 16, 32, 64) and the
 * AVX-512 kernels active, the fused kernels of simd_kernels.inc do a whole (b, h) in one
 * pass, a block of query rows at a time; otherwise single-threaded OpenBLAS sgemm calls
 * (OpenBLAS inside an OpenMP region) with the softmax and dS loops between them. */
#define HEAD_PTR(base, which, h) ((base) + (size_t)(which) * C + (size_t)(h) * D)

static int g_fused = 1;
void attention_fused_set(int mode) { g_fused = mode; }

/* Auto: the fused kernels where they measured faster than OpenBLAS (AVX-512, docs/performance.md
 * "Where the time goes"); the AVX2 and generic builds of them are for tests and other CPUs. */
static int use_fused(int N, int D) {
  int on = g_fused == 2 || (g_fused == 1 && beit_isa_active() == BEIT_ISA_AVX512);
  return on && N <= ATT_FUSED_NMAX && D % 16 == 0;
}

static void head_forward_blas(float *out, float *A, const float *base, const float *bias, int N, int C, int D,
                              int h, float scale) {
  const simd_kernels *sk = simd();
  int ld = 3 * C;
  if (bias) memcpy(A, bias, (size_t)N * N * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, scale, HEAD_PTR(base, 0, h), ld,
              HEAD_PTR(base, 1, h), ld, bias ? 1.0f : 0.0f, A, N);
  for (int i = 0; i < N; i++) sk->softmax_row(A + (size_t)i * N, A + (size_t)i * N, N);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, 1.0f, A, N, HEAD_PTR(base, 2, h), ld, 0.0f, out,
              C);
}

void attention_forward(float *out, float *att, const float *qkv, const float *bias,
                       int B, int N, int C, int H) {
  const simd_kernels *sk = simd();
  int D = C / H, ld = 3 * C, fused = use_fused(N, D);
  float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel
  {
    float *scratch = fused ? malloc(ATT_SCRATCH_FLOATS(N, D) * sizeof(float)) : NULL;
#pragma omp for collapse(2) nowait
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++) {
        const float *base = qkv + (size_t)b * N * ld, *bi = bias ? bias + (size_t)h * N * N : NULL;
        float *A = att + ((size_t)b * H + h) * N * N, *o = out + (size_t)b * N * C + (size_t)h * D;
        if (scratch)
          sk->attention_head_forward(o, C, A, HEAD_PTR(base, 0, h), HEAD_PTR(base, 1, h), HEAD_PTR(base, 2, h), ld,
                                     bi, N, D, scale, scratch);
        else
          head_forward_blas(o, A, base, bi, N, C, D, h, scale);
      }
    free(scratch);
  }
}

static void head_backward_blas(float *dbase, float *dS, const float *go, const float *base, const float *A, int N,
                               int C, int D, int h, float scale) {
  int ld = 3 * C;
  /* dA = dO V^T;  dV = A^T dO */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, 1.0f, go, C, HEAD_PTR(base, 2, h), ld, 0.0f, dS, N);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, N, 1.0f, A, N, go, C, 0.0f, HEAD_PTR(dbase, 2, h), ld);
  /* dS = A * (dA - rowsum(dA * A)) */
  for (int i = 0; i < N; i++) {
    const float *a = A + (size_t)i * N;
    float *ds = dS + (size_t)i * N, rowdot = 0;
    for (int j = 0; j < N; j++) rowdot += ds[j] * a[j];
    for (int j = 0; j < N; j++) ds[j] = a[j] * (ds[j] - rowdot);
  }
  /* dQ = scale dS K;  dK = scale dS^T Q */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, scale, dS, N, HEAD_PTR(base, 1, h), ld, 0.0f,
              HEAD_PTR(dbase, 0, h), ld);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, N, scale, dS, N, HEAD_PTR(base, 0, h), ld, 0.0f,
              HEAD_PTR(dbase, 1, h), ld);
}

void attention_backward(float *dqkv, float *dbias, float *datt, const float *dout,
                        const float *qkv, const float *att, int B, int N, int C, int H) {
  const simd_kernels *sk = simd();
  int D = C / H, ld = 3 * C, fused = use_fused(N, D);
  float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel
  {
    float *scratch = fused ? malloc(ATT_SCRATCH_FLOATS(N, D) * sizeof(float)) : NULL;
#pragma omp for collapse(2) nowait
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++) {
        const float *base = qkv + (size_t)b * N * ld, *go = dout + (size_t)b * N * C + (size_t)h * D;
        float *dbase = dqkv + (size_t)b * N * ld;
        const float *A = att + ((size_t)b * H + h) * N * N;
        float *dS = datt + ((size_t)b * H + h) * N * N;
        if (scratch)
          sk->attention_head_backward(HEAD_PTR(dbase, 0, h), HEAD_PTR(dbase, 1, h), HEAD_PTR(dbase, 2, h), ld, dS,
                                      go, C, HEAD_PTR(base, 0, h), HEAD_PTR(base, 1, h), HEAD_PTR(base, 2, h), ld,
                                      A, N, D, scale, scratch);
        else
          head_backward_blas(dbase, dS, go, base, A, N, C, D, h, scale);
      }
    free(scratch);
  }
  if (!dbias) return;
#pragma omp parallel for
  for (int h = 0; h < H; h++)
    for (int b = 0; b < B; b++) {
      const float *ds = datt + ((size_t)b * H + h) * N * N;
      float *db = dbias + (size_t)h * N * N;
#pragma omp simd
      for (size_t i = 0; i < (size_t)N * N; i++) db[i] += ds[i];
    }
}
