/* loss.c - softmax cross-entropy with hard or soft targets (mean over rows),
 * label smoothing, MSE, and the rank of a label among the logits (every
 * accuracy in beit.c). Backward kernels accumulate (ops.h). */
#include <math.h>

#include "ops/ops.h"

static void softmax_row(float *p, const float *x, int K) {
  float mx = -INFINITY, s = 0;
  for (int k = 0; k < K; k++) mx = x[k] > mx ? x[k] : mx;
  for (int k = 0; k < K; k++) s += (p[k] = expf(x[k] - mx));
  float inv = 1.0f / s;
  for (int k = 0; k < K; k++) p[k] *= inv;
}

/* The loss alone, from log-sum-exp: nothing written. */
double softmax_xent_loss(const float *logits, const int32_t *target, int M, int K) {
  double loss = 0;
#pragma omp parallel for reduction(+ : loss)
  for (int m = 0; m < M; m++) {
    const float *x = logits + (size_t)m * K;
    float mx = -INFINITY;
    double s = 0;
    for (int k = 0; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    for (int k = 0; k < K; k++) s += expf(x[k] - mx);
    loss += log(s) - (x[target[m]] - mx);
  }
  return M ? loss / M : 0;
}

double softmax_xent_forward(float *probs, const float *logits, const int32_t *target, int M, int K) {
  double loss = 0;
#pragma omp parallel for reduction(+ : loss)
  for (int m = 0; m < M; m++) {
    float *p = probs + (size_t)m * K;
    softmax_row(p, logits + (size_t)m * K, K);
    loss -= log(fmax(p[target[m]], 1e-30));
  }
  return M ? loss / M : 0;
}

void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *target, int M, int K,
                           float scale) {
  float s = M ? scale / M : 0;
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *p = probs + (size_t)m * K;
    float *d = dlogits + (size_t)m * K;
    if (d == p)
      for (int k = 0; k < K; k++) d[k] = s * (p[k] - (k == target[m]));
    else
      for (int k = 0; k < K; k++) d[k] += s * (p[k] - (k == target[m]));
  }
}

double soft_xent_forward(float *probs, const float *logits, const float *target_probs, int M, int K) {
  double loss = 0;
#pragma omp parallel for reduction(+ : loss)
  for (int m = 0; m < M; m++) {
    float *p = probs + (size_t)m * K;
    const float *t = target_probs + (size_t)m * K;
    softmax_row(p, logits + (size_t)m * K, K);
    for (int k = 0; k < K; k++)
      if (t[k] != 0) loss -= t[k] * log(fmax(p[k], 1e-30));
  }
  return M ? loss / M : 0;
}

void soft_xent_backward(float *dlogits, const float *probs, const float *target_probs, int M, int K,
                        float scale) {
  float s = M ? scale / M : 0;
#pragma omp parallel for
  for (int m = 0; m < M; m++) {
    const float *p = probs + (size_t)m * K, *t = target_probs + (size_t)m * K;
    float *d = dlogits + (size_t)m * K;
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

int logits_top1(const float *x, int K) {
  int best = 0;
  for (int k = 1; k < K; k++) if (x[k] > x[best]) best = k;
  return logits_rank(x, K, best) == 0 ? best : -1;
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
