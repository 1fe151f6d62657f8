/* attention.c - BEiT's relative position bias (the (2Wh-1)(2Ww-1)+3 table with
 * three CLS entries) and the multi-head attention core
 *   A = softmax(q k^T / sqrt(D) + bias),  O = A v
 * computed per (batch, head) with loops sized for BEiT's short sequences.
 * Derivation of the backward: dV = A^T dO; dA = dO V^T; dS = A * (dA - rowsum(dA*A));
 * dQ = dS K / sqrt(D); dK = dS^T Q / sqrt(D); dbias = sum over batch of dS. */
#include <cblas.h>
#include <math.h>
#include <string.h>

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
 * 3C), so the matmuls read them in place. Each (b, h) runs on one thread and its
 * sgemm calls are single-threaded (OpenBLAS inside an OpenMP region). */
#define HEAD_PTR(base, which, h) ((base) + (size_t)(which) * C + (size_t)(h) * D)

void attention_forward(float *out, float *att, const float *qkv, const float *bias,
                       int B, int N, int C, int H) {
  const simd_kernels *sk = simd();
  int D = C / H, ld = 3 * C;
  float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *base = qkv + (size_t)b * N * ld;
      float *A = att + ((size_t)b * H + h) * N * N;
      if (bias) memcpy(A, bias + (size_t)h * N * N, (size_t)N * N * sizeof(float));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, scale, HEAD_PTR(base, 0, h), ld,
                  HEAD_PTR(base, 1, h), ld, bias ? 1.0f : 0.0f, A, N);
      for (int i = 0; i < N; i++) sk->softmax_row(A + (size_t)i * N, A + (size_t)i * N, N);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, 1.0f, A, N, HEAD_PTR(base, 2, h), ld,
                  0.0f, out + (size_t)b * N * C + (size_t)h * D, C);
    }
}

void attention_backward(float *dqkv, float *dbias, float *datt, const float *dout,
                        const float *qkv, const float *att, int B, int N, int C, int H) {
  int D = C / H, ld = 3 * C;
  float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *base = qkv + (size_t)b * N * ld, *go = dout + (size_t)b * N * C + (size_t)h * D;
      float *dbase = dqkv + (size_t)b * N * ld;
      const float *A = att + ((size_t)b * H + h) * N * N;
      float *dS = datt + ((size_t)b * H + h) * N * N;
      /* dA = dO V^T;  dV += A^T dO */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, D, 1.0f, go, C, HEAD_PTR(base, 2, h), ld,
                  0.0f, dS, N);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, N, 1.0f, A, N, go, C, 1.0f,
                  HEAD_PTR(dbase, 2, h), ld);
      /* dS = A * (dA - rowsum(dA * A)) */
      for (int i = 0; i < N; i++) {
        const float *a = A + (size_t)i * N;
        float *ds = dS + (size_t)i * N, rowdot = 0;
        for (int j = 0; j < N; j++) rowdot += ds[j] * a[j];
        for (int j = 0; j < N; j++) ds[j] = a[j] * (ds[j] - rowdot);
      }
      /* dQ += scale dS K;  dK += scale dS^T Q */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, D, N, scale, dS, N, HEAD_PTR(base, 1, h), ld,
                  1.0f, HEAD_PTR(dbase, 0, h), ld);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, N, scale, dS, N, HEAD_PTR(base, 0, h), ld,
                  1.0f, HEAD_PTR(dbase, 1, h), ld);
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
