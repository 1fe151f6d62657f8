/* loss.c - softmax cross-entropy with hard or soft targets (mean over rows),
 * label smoothing, MSE, and the rank of a label among the logits (every
 * accuracy in beit.c). Backward kernels accumulate (ops.h). */
#include <math.h>
#include <stdlib.h>

#include "core/core.h"
#include "ops/ops.h"
#include "ops/simd.h"

/* The losses are summed one row at a time after the parallel loop, in row order: the
 * same bits whatever the thread count (a reduction clause adds the threads' sums in
 * the order they finish). */
static double *row_losses(int M) {
  double *r = calloc(M > 0 ? (size_t)M : 1, sizeof(double));
  BEIT_CHECK(r != NULL);
  return r;
}

static double mean_of(double *row_loss, int M) {
  double s = 0;
  for (int m = 0; m < M; m++) s += row_loss[m];
  free(row_loss);
  return M ? s / M : 0;
}

/* The loss alone, from log-sum-exp: nothing written. */
double softmax_xent_loss(const float *logits, const int32_t *target, int M, int K) {
  const simd_kernels *sk = simd();
  double *loss = row_losses(M);
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *x = logits + (size_t)m * K;
    loss[m] = sk->logsumexp_row(x, K) - x[target[m]];
  }
  return mean_of(loss, M);
}

double softmax_xent_forward(float *probs, const float *logits, const int32_t *target, int M, int K) {
  const simd_kernels *sk = simd();
  double *loss = row_losses(M);
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *x = logits + (size_t)m * K;
    double xt = x[target[m]];  /* read first: probs may be the logits */
    loss[m] = sk->softmax_row(probs + (size_t)m * K, x, K) - xt;
  }
  return mean_of(loss, M);
}

/* The target's entry apart, so the loop over the row has no condition and vectorises. */
void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *target, int M, int K,
                           float scale) {
  float s = M ? scale / M : 0;
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *p = probs + (size_t)m * K;
    float *d = dlogits + (size_t)m * K, g = s * (p[target[m]] - 1), dt = d == p ? g : d[target[m]] + g;
    if (d == p) {
#pragma omp simd
      for (int k = 0; k < K; k++) d[k] = s * p[k];
    } else {
#pragma omp simd
      for (int k = 0; k < K; k++) d[k] += s * p[k];
    }
    d[target[m]] = dt;
  }
}

double soft_xent_forward(float *probs, const float *logits, const float *target_probs, int M, int K) {
  const simd_kernels *sk = simd();
  double *loss = row_losses(M);
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *t = target_probs + (size_t)m * K, *x = logits + (size_t)m * K;
    double tsum = 0, tx = 0;  /* loss = sum_k t_k (lse - x_k) */
    for (int k = 0; k < K; k++)
      if (t[k] != 0) tsum += t[k], tx += (double)t[k] * x[k];
    loss[m] = tsum * sk->softmax_row(probs + (size_t)m * K, x, K) - tx;
  }
  return mean_of(loss, M);
}

void soft_xent_backward(float *dlogits, const float *probs, const float *target_probs, int M, int K,
                        float scale) {
  float s = M ? scale / M : 0;
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *p = probs + (size_t)m * K, *t = target_probs + (size_t)m * K;
    float *d = dlogits + (size_t)m * K;
#pragma omp simd
    for (int k = 0; k < K; k++) d[k] += s * (p[k] - t[k]);
  }
}

void smooth_targets(float *target_probs, const int32_t *target, int M, int K, float eps) {
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++)
      target_probs[(size_t)m * K + k] = eps / K + (k == target[m] ? 1.0f - eps : 0.0f);
}

int logits_rank(const float *x, int K, int label) {
  float v = x[label];
  if (!isfinite(v)) return K;
  int r = 0;
  for (int k = 0; k < K; k++) {
    if (isnan(x[k])) return K;
    r += k != label && x[k] >= v;
  }
  return r;
}

/* The same answer as "the argmax, if logits_rank says it is alone at the top", in passes
 * the compiler vectorises: the MIM head's 8192 logits per masked token made the scalar,
 * branchy argmax + rank 10% of a pretraining step (perf, mini 32 px, vocab 8192). */
int logits_top1(const float *x, int K) {
  float top = -INFINITY;
  int nan = 0, at_top = 0;
#pragma omp simd reduction(max : top) reduction(| : nan)
  for (int k = 0; k < K; k++) {
    top = x[k] > top ? x[k] : top;
    nan |= x[k] != x[k];
  }
  if (nan || !isfinite(top)) return -1;
#pragma omp simd reduction(+ : at_top)
  for (int k = 0; k < K; k++) at_top += x[k] == top;
  if (at_top != 1) return -1;
  int best = 0;
  while (x[best] != top) best++;
  return best;
}

double mse_forward(const float *pred, const float *target, size_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s)
  for (size_t i = 0; i < n; i++) {
    double d = (double)pred[i] - target[i];
    s += d * d;
  }
  return n ? s / n : 0;
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
  float s = n ? 2.0f * scale / (float)n : 0;
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) dpred[i] += s * (pred[i] - target[i]);
}
