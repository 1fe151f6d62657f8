/* attention.c - BEiT's relative position bias (the (2Wh-1)(2Ww-1)+3 table with
 * three CLS entries) and the multi-head attention core
 *   A = softmax(q k^T / sqrt(D) + bias),  O = A v
 * computed per (batch, head) with loops sized for BEiT's short sequences.
 * Derivation of the backward: dV = A^T dO; dA = dO V^T; dS = A * (dA - rowsum(dA*A));
 * dQ = dS K / sqrt(D); dK = dS^T Q / sqrt(D); dbias = sum over batch of dS. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

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

void attention_forward(float *out, float *att, const float *qkv, const float *bias,
                       int B, int N, int C, int H) {
  int D = C / H;
  size_t C3 = 3 * (size_t)C;
  float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *base = qkv + (size_t)b * N * C3;
      float *A = att + ((size_t)b * H + h) * N * N;
      const float *bh = bias ? bias + (size_t)h * N * N : NULL;
      for (int i = 0; i < N; i++) {
        const float *q = base + i * C3 + (size_t)h * D;
        float *a = A + (size_t)i * N, mx = -INFINITY;
        for (int j = 0; j < N; j++) {
          const float *k = base + j * C3 + C + (size_t)h * D;
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (int d = 0; d < D; d++) s += q[d] * k[d];
          s = s * scale + (bh ? bh[(size_t)i * N + j] : 0.0f);
          a[j] = s;
          if (s > mx) mx = s;
        }
        float sum = 0;
        for (int j = 0; j < N; j++) {
          a[j] = expf(a[j] - mx);
          sum += a[j];
        }
        float inv = 1.0f / sum;
        float *o = out + ((size_t)b * N + i) * C + (size_t)h * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int j = 0; j < N; j++) {
          a[j] *= inv;
          const float *v = base + j * C3 + 2 * (size_t)C + (size_t)h * D;
#pragma omp simd
          for (int d = 0; d < D; d++) o[d] += a[j] * v[d];
        }
      }
    }
}

void attention_backward(float *dqkv, float *dbias, float *datt, const float *dout,
                        const float *qkv, const float *att, int B, int N, int C, int H) {
  int D = C / H;
  size_t C3 = 3 * (size_t)C;
  float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *base = qkv + (size_t)b * N * C3;
      float *dbase = dqkv + (size_t)b * N * C3;
      const float *A = att + ((size_t)b * H + h) * N * N;
      float *dS = datt + ((size_t)b * H + h) * N * N;
      for (int i = 0; i < N; i++) {
        const float *go = dout + ((size_t)b * N + i) * C + (size_t)h * D;
        const float *a = A + (size_t)i * N;
        float *ds = dS + (size_t)i * N, rowdot = 0;
        for (int j = 0; j < N; j++) {
          const float *v = base + j * C3 + 2 * (size_t)C + (size_t)h * D;
          float *dv = dbase + j * C3 + 2 * (size_t)C + (size_t)h * D;
          float da = 0;
#pragma omp simd reduction(+ : da)
          for (int d = 0; d < D; d++) da += go[d] * v[d];
#pragma omp simd
          for (int d = 0; d < D; d++) dv[d] += a[j] * go[d];
          ds[j] = da;
          rowdot += da * a[j];
        }
        for (int j = 0; j < N; j++) ds[j] = a[j] * (ds[j] - rowdot);
        const float *q = base + i * C3 + (size_t)h * D;
        float *dq = dbase + i * C3 + (size_t)h * D;
        for (int j = 0; j < N; j++) {
          const float *k = base + j * C3 + C + (size_t)h * D;
          float *dk = dbase + j * C3 + C + (size_t)h * D;
          float g = ds[j] * scale;
#pragma omp simd
          for (int d = 0; d < D; d++) {
            dq[d] += g * k[d];
            dk[d] += g * q[d];
          }
        }
      }
    }
  if (!dbias) return;
#pragma omp parallel for
  for (int h = 0; h < H; h++)
    for (int b = 0; b < B; b++) {
      const float *ds = datt + ((size_t)b * H + h) * N * N;
      float *db = dbias + (size_t)h * N * N;
      for (size_t i = 0; i < (size_t)N * N; i++) db[i] += ds[i];
    }
}
