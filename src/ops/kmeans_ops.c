/* kmeans_ops.c - the k-means tokenizer's kernels: row norms and per-patch
 * standardisation, the nearest centroid from sgemm dot products (near ties settled
 * exactly), k-means++ distances, centroid means, and patches back to images. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

void row_sum_squares(float *out, const float *x, int rows, int D) {
#pragma omp parallel for schedule(static)
  for (int j = 0; j < rows; j++) {
    double s = 0;
    for (int e = 0; e < D; e++) s += (double)x[(size_t)j * D + e] * x[(size_t)j * D + e];
    out[j] = (float)s;
  }
}

void row_standardize(float *x, size_t rows, int D, float eps) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < rows; i++) {
    float *v = x + i * D;
    double m = 0, var = 0;
    for (int e = 0; e < D; e++) m += v[e];
    m /= D;
    for (int e = 0; e < D; e++) var += (v[e] - m) * (v[e] - m);
    float inv = (float)(1.0 / sqrt(var / D + eps));
    for (int e = 0; e < D; e++) v[e] = (float)(v[e] - m) * inv;
  }
}

static double exact_dist2(const float *x, const float *c, int D) {
  double s = 0;
  for (int e = 0; e < D; e++) s += ((double)x[e] - c[e]) * ((double)x[e] - c[e]);
  return s;
}

/* Among the centroids whose sgemm distance is within rounding of the best, the
 * nearest by an exact distance (the lower index on a tie). The sgemm rounding
 * depends on the batch size and the threads (how BLAS blocks the product), so
 * without this a near-tie could give another token on 2 ranks than in one process. */
static int settle_near_tie(const float *x, const float *C, int D, const float *dr, const float *cnorm, int k, int best,
                           float bv, double xx) {
  double slack = 1e-4 * (xx + cnorm[best]), bd = -1;
  for (int j = 0; j < k; j++) {
    if (cnorm[j] - 2 * dr[j] > bv + slack) continue;
    double d = exact_dist2(x, C + (size_t)j * D, D);
    if (bd < 0 || d < bd) bd = d, best = j;
  }
  return best;
}

void nearest_centroid(int32_t *labels, float *dist2, const float *x, size_t m, int D, const float *dots,
                      const float *cnorm, const float *C, int k) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < m; i++) {
    const float *dr = dots + i * k;
    int best = 0, second = -1;
    float bv = cnorm[0] - 2 * dr[0], sv = INFINITY;
    for (int j = 1; j < k; j++) {
      float v = cnorm[j] - 2 * dr[j];
      if (v < bv) sv = bv, second = best, bv = v, best = j;
      else if (v < sv) sv = v, second = j;
    }
    double xx = 0;
    for (int e = 0; e < D; e++) xx += (double)x[i * D + e] * x[i * D + e];
    if (second >= 0 && sv - bv <= 1e-4 * (xx + cnorm[best]))
      best = settle_near_tie(x + i * D, C, D, dr, cnorm, k, best, bv, xx);
    labels[i] = best;
    if (dist2) dist2[i] = (float)(xx + bv > 0 ? xx + bv : 0);
  }
}

void lower_dist2(double *d2, const float *x, size_t n, int D, const float *c) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    for (int e = 0; e < D; e++) s += ((double)x[i * D + e] - c[e]) * ((double)x[i * D + e] - c[e]);
    if (s < d2[i]) d2[i] = s;
  }
}

double sum_f64(const double *x, size_t n) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (size_t i = 0; i < n; i++) total += x[i];
  return total;
}

/* one thread per centroid, summing its members in order */
void centroid_means(float *C, const float *x, const size_t *order, const size_t *start, int k, int D) {
#pragma omp parallel for schedule(dynamic, 8)
  for (int j = 0; j < k; j++) {
    size_t cnt = start[j + 1] - start[j];
    if (!cnt) continue;
    double acc[D];
    memset(acc, 0, sizeof acc);
    for (size_t t = start[j]; t < start[j + 1]; t++)
      for (int e = 0; e < D; e++) acc[e] += x[order[t] * D + e];
    for (int e = 0; e < D; e++) C[(size_t)j * D + e] = (float)(acc[e] / (double)cnt);
  }
}

void unpatchify(float *img, const float *patches, const int32_t *index, int B, int Cin, int S, int P) {
  const int G = S / P, D = Cin * P * P;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int p = 0; p < G * G; p++) {
      size_t at = (size_t)b * G * G + p;
      const float *v = patches + (index ? (size_t)index[at] : at) * D;
      for (int ch = 0; ch < Cin; ch++)
        for (int y = 0; y < P; y++)
          for (int xx = 0; xx < P; xx++)
            img[(((size_t)b * Cin + ch) * S + (p / G) * P + y) * S + (p % G) * P + xx] = v[(ch * P + y) * P + xx];
    }
}
