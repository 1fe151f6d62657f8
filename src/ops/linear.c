/* linear.c - fully connected layer through cblas_sgemm (torch F.linear). */
#include <cblas.h>
#include <string.h>

#include "ops/ops.h"

/* out[M,OC] = inp[M,C] @ weight[OC,C]^T + bias */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int M, int C, int OC) {
  if (bias) {
#pragma omp parallel for
    for (int m = 0; m < M; m++) memcpy(out + (size_t)m * OC, bias, (size_t)OC * sizeof(float));
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OC, C, 1.0f, inp, C, weight, C,
              bias ? 1.0f : 0.0f, out, OC);
}

/* dinp[M,C] += dout @ weight; dweight[OC,C] += dout^T @ inp; dbias += colsum(dout) */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int M, int C, int OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, C, OC, 1.0f, dout, OC, weight, C,
                1.0f, dinp, C);
  if (dweight)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, M, 1.0f, dout, OC, inp, C, 1.0f,
                dweight, C);
  if (dbias) {
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
      float s = 0;
      for (int m = 0; m < M; m++) s += dout[(size_t)m * OC + o];
      dbias[o] += s;
    }
  }
}
