/* conv2d.c - 2-D convolution (torch F.conv2d: NCHW, weight [OC, IC/groups, K, K],
 * optional bias, stride, zero padding, groups) as im2col + cblas_sgemm. The batch
 * is processed in chunks so that one GEMM covers several images; the caller owns
 * the scratch (sized by conv2d_scratch_floats), so nothing is allocated per call.
 * The forward runs through oneDNN's convolution instead when built with it and
 * BEIT_CONV allows (conv2d_dnnl.c); im2col stays for the backward and any shape
 * oneDNN refuses. */
#include <cblas.h>
#include <string.h>

#include "core/core.h"
#include "ops/conv2d_dnnl.h"
#include "ops/ops.h"

/* Scratch target per chunk, in floats (16 MiB): GEMMs over many images run
 * faster than per-image ones (measured: chunks of 1-32 MiB within 10% of each
 * other, smaller ones slower); the cap bounds memory at large inputs. */
#define CONV_CHUNK_FLOATS ((size_t)4 << 20)

int conv2d_out_h(const conv2d_dims *d) { return (d->H + 2 * d->pad - d->K) / d->stride + 1; }
int conv2d_out_w(const conv2d_dims *d) { return (d->W + 2 * d->pad - d->K) / d->stride + 1; }

static size_t col_rows(const conv2d_dims *d) { return (size_t)(d->IC / d->groups) * d->K * d->K; }
static size_t out_plane(const conv2d_dims *d) { return (size_t)conv2d_out_h(d) * conv2d_out_w(d); }

/* Images per chunk: the col matrix of one group plus the [OC, nb*OH*OW] staging
 * matrix must fit the target (at least one image). */
static int chunk_images(const conv2d_dims *d) {
  size_t per_image = (col_rows(d) + (size_t)d->OC) * out_plane(d);
  size_t nb = per_image ? CONV_CHUNK_FLOATS / per_image : 1;
  if (nb < 1) nb = 1;
  if (nb > (size_t)d->B) nb = (size_t)d->B;
  return (int)nb;
}

size_t conv2d_scratch_floats(const conv2d_dims *d) {
  return (size_t)chunk_images(d) * (col_rows(d) + (size_t)d->OC) * out_plane(d);
}

/* Output columns ox whose input column ox*s - p + kx lies inside [0, W): [*lo, *hi). */
static void valid_cols(const conv2d_dims *d, int kx, int OW, int *lo, int *hi) {
  int a = d->pad - kx, b = d->W - 1 + d->pad - kx;  /* need a <= ox*s <= b */
  *lo = a <= 0 ? 0 : (a + d->stride - 1) / d->stride;
  *hi = b < 0 ? 0 : b / d->stride + 1;
  if (*hi > OW) *hi = OW;
  if (*lo > *hi) *lo = *hi;
}

/* col[(c*K + ky)*K + kx][b*OHW + oy*OW + ox] = inp[b0+b][c0+c][oy*s-p+ky][ox*s-p+kx] (0 outside). */
static void im2col(float *col, const float *inp, const conv2d_dims *d, int b0, int nb, int c0) {
  const int K = d->K, s = d->stride, p = d->pad, OH = conv2d_out_h(d), OW = conv2d_out_w(d);
  const int rows = (int)col_rows(d);
  const size_t ohw = (size_t)OH * OW, ncol = (size_t)nb * ohw;
#pragma omp parallel for collapse(2) schedule(static)
  for (int r = 0; r < rows; r++)
    for (int b = 0; b < nb; b++) {
      int c = r / (K * K), ky = r / K % K, kx = r % K, lo, hi;
      valid_cols(d, kx, OW, &lo, &hi);
      const float *plane = inp + ((size_t)(b0 + b) * d->IC + c0 + c) * d->H * d->W;
      float *dst = col + (size_t)r * ncol + (size_t)b * ohw;
      for (int oy = 0; oy < OH; oy++) {
        int iy = oy * s - p + ky;
        float *row = dst + (size_t)oy * OW;
        if (iy < 0 || iy >= d->H || lo == hi) { memset(row, 0, (size_t)OW * sizeof(float)); continue; }
        const float *src = plane + (size_t)iy * d->W - p + kx;  /* src[ox*s] = input column ox*s-p+kx */
        for (int ox = 0; ox < lo; ox++) row[ox] = 0.0f;
        if (s == 1) memcpy(row + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
        else for (int ox = lo; ox < hi; ox++) row[ox] = src[ox * s];
        for (int ox = hi; ox < OW; ox++) row[ox] = 0.0f;
      }
    }
}

/* The adjoint of im2col: dinp[b0+b][c0+c][iy][ix] += col[...]; one thread per
 * (image, channel) plane, so no two threads write the same element. */
static void col2im_add(float *dinp, const float *col, const conv2d_dims *d, int b0, int nb, int c0) {
  const int K = d->K, s = d->stride, p = d->pad, OH = conv2d_out_h(d), OW = conv2d_out_w(d);
  const int ICg = d->IC / d->groups;
  const size_t ohw = (size_t)OH * OW, ncol = (size_t)nb * ohw;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < nb; b++)
    for (int c = 0; c < ICg; c++) {
      float *plane = dinp + ((size_t)(b0 + b) * d->IC + c0 + c) * d->H * d->W;
      for (int ky = 0; ky < K; ky++)
        for (int kx = 0; kx < K; kx++) {
          int lo, hi;
          valid_cols(d, kx, OW, &lo, &hi);
          const float *src = col + ((size_t)(c * K + ky) * K + kx) * ncol + (size_t)b * ohw;
          for (int oy = 0; oy < OH; oy++) {
            int iy = oy * s - p + ky;
            if (iy < 0 || iy >= d->H) continue;
            float *dst = plane + (size_t)iy * d->W - p + kx;
            const float *row = src + (size_t)oy * OW;
            if (s == 1) {
#pragma omp simd
              for (int ox = lo; ox < hi; ox++) dst[ox] += row[ox];
            } else {
              for (int ox = lo; ox < hi; ox++) dst[ox * s] += row[ox];
            }
          }
        }
    }
}

/* out[b0+b][oc][q] = stage[oc][b*OHW + q] + bias[oc] */
static void unstage_output(float *out, const float *stage, const float *bias, const conv2d_dims *d,
                           int b0, int nb) {
  const size_t ohw = out_plane(d), ncol = (size_t)nb * ohw;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < nb; b++)
    for (int oc = 0; oc < d->OC; oc++) {
      const float *src = stage + (size_t)oc * ncol + (size_t)b * ohw;
      float *dst = out + ((size_t)(b0 + b) * d->OC + oc) * ohw;
      float bv = bias ? bias[oc] : 0.0f;
      for (size_t q = 0; q < ohw; q++) dst[q] = src[q] + bv;
    }
}

/* stage[oc][b*OHW + q] = dout[b0+b][oc][q] */
static void stage_grad(float *stage, const float *dout, const conv2d_dims *d, int b0, int nb) {
  const size_t ohw = out_plane(d), ncol = (size_t)nb * ohw;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < nb; b++)
    for (int oc = 0; oc < d->OC; oc++)
      memcpy(stage + (size_t)oc * ncol + (size_t)b * ohw, dout + ((size_t)(b0 + b) * d->OC + oc) * ohw,
             ohw * sizeof(float));
}

/* 1x1, stride 1, no padding, one group: per image out[b] = W @ inp[b] straight
 * on the NCHW planes, with no im2col or staging copies. Faster than the batched
 * GEMM unless the planes are small and the weight large (measured on the dVAE:
 * e.g. 128->512 at 7x7 is 1.6x faster batched, 8->32 at 28x28 4x faster per image). */
static int use_pointwise(const conv2d_dims *d) {
  return d->K == 1 && d->stride == 1 && d->pad == 0 && d->groups == 1 &&
         ((long)d->IC * d->OC <= 4096 || (long)d->H * d->W >= 196);
}

static void pointwise_forward(float *out, const float *inp, const float *weight, const float *bias,
                              const conv2d_dims *d) {
  const int HW = d->H * d->W;
  for (int b = 0; b < d->B; b++) {
    float *o = out + (size_t)b * d->OC * HW;
    if (bias) {
#pragma omp parallel for schedule(static)
      for (int oc = 0; oc < d->OC; oc++)
        for (int q = 0; q < HW; q++) o[(size_t)oc * HW + q] = bias[oc];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->OC, HW, d->IC, 1.0f, weight, d->IC,
                inp + (size_t)b * d->IC * HW, HW, bias ? 1.0f : 0.0f, o, HW);
  }
}

static void pointwise_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, const conv2d_dims *d) {
  const int HW = d->H * d->W;
  for (int b = 0; b < d->B; b++) {
    const float *g = dout + (size_t)b * d->OC * HW;
    if (dweight)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->OC, d->IC, HW, 1.0f, g, HW,
                  inp + (size_t)b * d->IC * HW, HW, 1.0f, dweight, d->IC);
    if (dinp)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d->IC, HW, d->OC, 1.0f, weight, d->IC, g, HW, 1.0f,
                  dinp + (size_t)b * d->IC * HW, HW);
  }
  if (dbias) {
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < d->OC; oc++) {
      float s = 0;
      for (int b = 0; b < d->B; b++)
        for (int q = 0; q < HW; q++) s += dout[((size_t)b * d->OC + oc) * HW + q];
      dbias[oc] += s;
    }
  }
}

void conv2d_forward(float *out, float *scratch, const float *inp, const float *weight,
                    const float *bias, const conv2d_dims *d) {
  if (beit_conv_active() == BEIT_CONV_DNNL &&
      conv2d_dnnl_forward(out, scratch, conv2d_scratch_floats(d), inp, weight, bias, d))
    return;
  if (use_pointwise(d)) return pointwise_forward(out, inp, weight, bias, d);
  const int G = d->groups, OCg = d->OC / G, ICg = d->IC / G, nbmax = chunk_images(d);
  const int rows = (int)col_rows(d);
  for (int b0 = 0; b0 < d->B; b0 += nbmax) {
    int nb = d->B - b0 < nbmax ? d->B - b0 : nbmax;
    int ncol = nb * (int)out_plane(d);
    float *col = scratch, *stage = scratch + (size_t)rows * ncol;
    for (int g = 0; g < G; g++) {
      im2col(col, inp, d, b0, nb, g * ICg);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OCg, ncol, rows, 1.0f,
                  weight + (size_t)g * OCg * rows, rows, col, ncol, 0.0f, stage + (size_t)g * OCg * ncol,
                  ncol);
    }
    unstage_output(out, stage, bias, d, b0, nb);
  }
}

static void bias_grad(float *dbias, const float *stage, int OC, size_t ncol) {
#pragma omp parallel for schedule(static)
  for (int oc = 0; oc < OC; oc++) {
    const float *row = stage + (size_t)oc * ncol;
    float s = 0;
    for (size_t q = 0; q < ncol; q++) s += row[q];
    dbias[oc] += s;
  }
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, float *scratch, const float *dout,
                     const float *inp, const float *weight, const conv2d_dims *d) {
  if (use_pointwise(d)) return pointwise_backward(dinp, dweight, dbias, dout, inp, weight, d);
  const int G = d->groups, OCg = d->OC / G, ICg = d->IC / G, nbmax = chunk_images(d);
  const int rows = (int)col_rows(d);
  for (int b0 = 0; b0 < d->B; b0 += nbmax) {
    int nb = d->B - b0 < nbmax ? d->B - b0 : nbmax;
    int ncol = nb * (int)out_plane(d);
    float *col = scratch, *stage = scratch + (size_t)rows * ncol;
    stage_grad(stage, dout, d, b0, nb);
    if (dbias) bias_grad(dbias, stage, d->OC, (size_t)ncol);
    for (int g = 0; g < G; g++) {
      const float *dstage = stage + (size_t)g * OCg * ncol;
      if (dweight) {  /* dW_g[OCg, rows] += dout_g @ col^T */
        im2col(col, inp, d, b0, nb, g * ICg);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OCg, rows, ncol, 1.0f, dstage, ncol, col,
                    ncol, 1.0f, dweight + (size_t)g * OCg * rows, rows);
      }
      if (dinp) {  /* dcol = W_g^T @ dout_g, then scatter-add into dinp */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, ncol, OCg, 1.0f,
                    weight + (size_t)g * OCg * rows, rows, dstage, ncol, 0.0f, col, ncol);
        col2im_add(dinp, col, d, b0, nb, g * ICg);
      }
    }
  }
}
