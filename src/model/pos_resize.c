/* pos_resize.c - see pos_resize.h. Both resizes are linear maps, so each is
 * written as a small interpolation matrix W [targets, sources] built once per
 * axis and applied separably (a tensor-product spline on a grid is exactly
 * "interpolate the rows, then the columns"). */
#include "model/pos_resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static double geometric_sum(double q, int n) { return (1.0 - pow(q, n)) / (1.0 - q); }

double beit_relpos_ratio(int src_side, int dst_side) {
  /* the same bisection, in the same order, as the reference: q is the last midpoint */
  double left = 1.01, right = 1.5, q = 0;
  while (right - left > 1e-6) {
    q = (left + right) / 2.0;
    if (geometric_sum(q, src_side / 2) > dst_side / 2) right = q;
    else left = q;
  }
  return q;
}

/* Source coordinates: -d_{n-1} .. -d_0, 0, d_0 .. d_{n-1}, d_0 = 1, d_k = d_{k-1} + q^k. */
static void geometric_coords(double *x, int src_side, int dst_side) {
  int n = src_side / 2;
  double q = beit_relpos_ratio(src_side, dst_side), cur = 1;
  x[n] = 0;
  for (int i = 0; i < n; i++) {
    x[n + 1 + i] = cur;
    x[n - 1 - i] = -cur;
    cur += pow(q, i + 1);
  }
}

/* Solves A z = b in place for a dense n x n system (partial pivoting). */
static void solve_dense(double *A, double *b, int n) {
  for (int k = 0; k < n; k++) {
    int p = k;
    for (int i = k + 1; i < n; i++) if (fabs(A[i * n + k]) > fabs(A[p * n + k])) p = i;
    if (p != k) {
      for (int j = 0; j < n; j++) { double t = A[k * n + j]; A[k * n + j] = A[p * n + j]; A[p * n + j] = t; }
      double t = b[k]; b[k] = b[p]; b[p] = t;
    }
    for (int i = k + 1; i < n; i++) {
      double f = A[i * n + k] / A[k * n + k];
      for (int j = k; j < n; j++) A[i * n + j] -= f * A[k * n + j];
      b[i] -= f * b[k];
    }
  }
  for (int k = n - 1; k >= 0; k--) {
    for (int j = k + 1; j < n; j++) b[k] -= A[k * n + j] * b[j];
    b[k] /= A[k * n + k];
  }
}

/* Second derivatives M of the not-a-knot cubic spline through (x, y), n >= 4:
 * continuity of the third derivative at x[1] and x[n-2] closes the system. */
static void spline_second_derivatives(const double *x, const double *y, int n, double *M, double *A) {
  memset(A, 0, (size_t)n * n * sizeof(double));
  double h0 = x[1] - x[0], h1 = x[2] - x[1];
  A[0] = h1, A[1] = -(h0 + h1), A[2] = h0, M[0] = 0;
  for (int i = 1; i < n - 1; i++) {
    double hl = x[i] - x[i - 1], hr = x[i + 1] - x[i];
    A[i * n + i - 1] = hl, A[i * n + i] = 2 * (hl + hr), A[i * n + i + 1] = hr;
    M[i] = 6 * ((y[i + 1] - y[i]) / hr - (y[i] - y[i - 1]) / hl);
  }
  double ha = x[n - 2] - x[n - 3], hb = x[n - 1] - x[n - 2];
  A[(n - 1) * n + n - 3] = hb, A[(n - 1) * n + n - 2] = -(ha + hb), A[(n - 1) * n + n - 1] = ha, M[n - 1] = 0;
  solve_dense(A, M, n);
}

static double spline_eval(const double *x, const double *y, const double *M, int n, double t) {
  t = t < x[0] ? x[0] : t > x[n - 1] ? x[n - 1] : t;  /* FITPACK's bispev clamps, so does interp2d */
  int i = 0;
  while (i < n - 2 && t > x[i + 1]) i++;
  double h = x[i + 1] - x[i], a = x[i + 1] - t, b = t - x[i];
  return (y[i] * a + y[i + 1] * b) / h + ((a * a * a / h - h * a) * M[i] + (b * b * b / h - h * b) * M[i + 1]) / 6;
}

/* W [m, n]: the spline through (x, e_j) evaluated at t, for every unit vector e_j. */
static void spline_matrix(double *W, const double *x, int n, const double *t, int m) {
  double *y = calloc((size_t)n, sizeof(double)), *M = malloc((size_t)n * sizeof(double));
  double *A = malloc((size_t)n * n * sizeof(double));
  for (int j = 0; j < n; j++) {
    memset(y, 0, (size_t)n * sizeof(double));
    y[j] = 1;
    spline_second_derivatives(x, y, n, M, A);
    for (int i = 0; i < m; i++) W[(size_t)i * n + j] = spline_eval(x, y, M, n, t[i]);
  }
  free(y), free(M), free(A);
}

/* out[m, m] = W z W^T for a square z [n, n] (row-major), accumulated in double. */
static void apply_separable(float *out, size_t out_stride, const double *W, const double *z, int n, int m) {
  double *rows = malloc((size_t)n * m * sizeof(double));  /* z W^T: each row resampled */
  for (int r = 0; r < n; r++)
    for (int c = 0; c < m; c++) {
      double s = 0;
      for (int k = 0; k < n; k++) s += z[(size_t)r * n + k] * W[(size_t)c * n + k];
      rows[(size_t)r * m + c] = s;
    }
  for (int r = 0; r < m; r++)
    for (int c = 0; c < m; c++) {
      double s = 0;
      for (int k = 0; k < n; k++) s += W[(size_t)r * n + k] * rows[(size_t)k * m + c];
      out[((size_t)r * m + c) * out_stride] = (float)s;
    }
  free(rows);
}

int beit_relpos_table_resize(float *dst, int dst_grid, const float *src, int src_grid, int heads) {
  int S = 2 * src_grid - 1, D = 2 * dst_grid - 1;
  if (S == D) {
    memcpy(dst, src, ((size_t)S * S + 3) * heads * sizeof(float));
    return BEIT_OK;
  }
  if (S < 4)
    return beit_errorf("a relative position table of a %dx%d patch grid is too small to resize (cubic needs 4 points)",
                       src_grid, src_grid);
  double *x = malloc((size_t)S * sizeof(double)), *t = malloc((size_t)D * sizeof(double));
  double *W = malloc((size_t)D * S * sizeof(double)), *z = malloc((size_t)S * S * sizeof(double));
  geometric_coords(x, S, D);
  for (int i = 0; i < D; i++) t[i] = i - D / 2;
  spline_matrix(W, x, S, t, D);
  for (int h = 0; h < heads; h++) {
    for (int i = 0; i < S * S; i++) z[i] = src[(size_t)i * heads + h];  /* rows: row offset, columns: column offset */
    apply_separable(dst + h, (size_t)heads, W, z, S, D);
  }
  for (int k = 0; k < 3; k++)
    memcpy(dst + ((size_t)D * D + k) * heads, src + ((size_t)S * S + k) * heads, (size_t)heads * sizeof(float));
  free(x), free(t), free(W), free(z);
  return BEIT_OK;
}

/* torch's bicubic convolution kernel (A = -0.75) for the 4 taps around a point at offset t. */
static void cubic_weights(double t, double w[4]) {
  const double A = -0.75;
  double x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
  w[0] = ((A * x0 - 5 * A) * x0 + 8 * A) * x0 - 4 * A;
  w[1] = ((A + 2) * x1 - (A + 3)) * x1 * x1 + 1;
  w[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
  w[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

/* W [m, n] of F.interpolate(bicubic, align_corners=False): source point (o + 0.5) n/m - 0.5,
 * taps clamped to the border. */
static void bicubic_matrix(double *W, int n, int m) {
  memset(W, 0, (size_t)m * n * sizeof(double));
  for (int o = 0; o < m; o++) {
    double real = (o + 0.5) * ((double)n / m) - 0.5, w[4];
    int base = (int)floor(real);
    cubic_weights(real - base, w);
    for (int k = 0; k < 4; k++) {
      int idx = base - 1 + k;
      idx = idx < 0 ? 0 : idx > n - 1 ? n - 1 : idx;
      W[(size_t)o * n + idx] += w[k];
    }
  }
}

void beit_pos_embed_resize(float *dst, int dst_grid, const float *src, int src_grid, int dim) {
  int n = src_grid, m = dst_grid;
  memcpy(dst, src, (size_t)dim * sizeof(float));  /* CLS slot */
  double *W = malloc((size_t)m * n * sizeof(double)), *z = malloc((size_t)n * n * sizeof(double));
  bicubic_matrix(W, n, m);
  for (int c = 0; c < dim; c++) {
    for (int i = 0; i < n * n; i++) z[i] = src[(size_t)(1 + i) * dim + c];
    apply_separable(dst + dim + c, (size_t)dim, W, z, n, m);
  }
  free(W), free(z);
}
