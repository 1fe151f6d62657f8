/* tokens.c - the token-level glue of the BEiT walk: q/v bias packing, the
 * absolute position embedding, the rows of masked (or CLS) tokens, and the top-1
 * count of a batch. Backward kernels accumulate (ops.h). */
#include <omp.h>
#include <string.h>

#include "ops/ops.h"

void qkv_bias_forward(float *qkv_bias, const float *q_bias, const float *v_bias, int C) {
  memcpy(qkv_bias, q_bias, (size_t)C * sizeof(float));
  memset(qkv_bias + C, 0, (size_t)C * sizeof(float));
  memcpy(qkv_bias + 2 * C, v_bias, (size_t)C * sizeof(float));
}

void qkv_bias_backward(float *dq_bias, float *dv_bias, const float *dqkv_bias, int C) {
  for (int i = 0; i < C; i++) {
    if (dq_bias) dq_bias[i] += dqkv_bias[i];
    if (dv_bias) dv_bias[i] += dqkv_bias[2 * C + i];
  }
}

void pos_embed_forward(float *x, const float *pos, int B, int N, int C) {
  size_t NC = (size_t)N * C;
#pragma omp parallel for
  for (int b = 0; b < B; b++) {
    float *xb = x + (size_t)b * NC;
#pragma omp simd
    for (size_t i = 0; i < NC; i++) xb[i] += pos[i];
  }
}

/* Threads own contiguous ranges of dpos, so every element adds the images in
 * order b = 0, 1, ... whatever the thread count. */
void pos_embed_backward(float *dpos, const float *dx, int B, int N, int C) {
  size_t NC = (size_t)N * C;
#pragma omp parallel
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t i0 = NC * t / nt, i1 = NC * (t + 1) / nt;
    for (int b = 0; b < B; b++) {
      const float *g = dx + (size_t)b * NC;
#pragma omp simd
      for (size_t i = i0; i < i1; i++) dpos[i] += g[i];
    }
  }
}

int masked_rows(int32_t *rows, int32_t *targets, int32_t *patch_rows, const uint8_t *mask, const int32_t *tokens,
                int B, int Np) {
  int n = 0;
  for (int b = 0; b < B; b++)
    for (int q = 0; q < Np; q++) {
      size_t at = (size_t)b * Np + q;
      if (!mask[at]) continue;
      rows[n] = b * (Np + 1) + 1 + q;
      if (targets && tokens) targets[n] = tokens[at];
      if (patch_rows) patch_rows[n] = (int32_t)at;
      n++;
    }
  return n;
}

void token_rows(int32_t *rows, int B, int N, int t) {
  for (int b = 0; b < B; b++) rows[b] = b * N + t;
}

int64_t top1_correct(const float *logits, const int32_t *target, int M, int K) {
  int64_t correct = 0;
#pragma omp parallel for reduction(+ : correct) if ((int64_t)M * K > 65536)
  for (int i = 0; i < M; i++) {
    int pred = logits_top1(logits + (size_t)i * K, K);
    correct += pred >= 0 && pred == target[i];
  }
  return correct;
}
