/* linear.c - fully connected layer (torch F.linear) and the sgemm every op uses.
 *
 * Why split the matmul ourselves: BEiT's matmuls are tall and thin (batch x tokens
 * rows, 96-768 columns). OpenBLAS's own threading synchronises its threads inside
 * every call and, measured with perf on the mini model, spent 37% of the step in
 * sched_yield waiting. Giving each OpenMP thread a contiguous block of output rows
 * and calling single-threaded sgemm on it (OpenBLAS runs single-threaded inside an
 * OpenMP parallel region) needs no synchronisation inside the call. The sgemm is oneDNN's
 * when built in (BEIT_GEMM, src/core/core.h; docs/performance.md "GEMM libraries"). */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "ops/ops.h"

#ifdef BEIT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#define GEMM_SPLIT_MIN_FLOPS (1 << 18) /* below this a single call is cheaper */

/* One sgemm call in the library beit_gemm_active() names. oneDNN runs on the same OpenMP runtime:
 * inside a parallel region it runs single-threaded, outside it takes omp_get_max_threads(), as
 * OpenBLAS's OpenMP build does, so neither oversubscribes our threads. */
static void sgemm_call(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef BEIT_HAVE_DNNL
  if (beit_gemm_active() == BEIT_GEMM_DNNL &&
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) ==
          dnnl_success)
    return; /* it refuses only arguments that cblas_sgemm would refuse too */
#endif
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Which dimension gemm() splits over its threads. Each thread packs the whole of the operand it
 * does not split, so a row split of a short C packs every weight matrix once per thread: at
 * inference with batch 1 (197 rows by 768-3072 columns) splitting the columns instead made BEiT-B
 * 12% faster on 2 threads (six alternated pairs; docs/performance.md "GEMM libraries"). Elsewhere the rows, which
 * measured no clear difference: C of at least 512 rows amortises the packing, and the weight
 * gradients (trans_a) were not measured apart. BEIT_GEMM_SPLIT=rows|cols|auto (default auto),
 * read once, overrides it for experiments. The choice depends on the shape only, so a resumed run
 * still computes the same bits. */
static int split_columns(int trans_a, int M, int N) {
  static int mode = -1; /* 0 rows, 1 cols, 2 auto */
  if (mode < 0) {
    const char *e = getenv("BEIT_GEMM_SPLIT");
    mode = e && !strcmp(e, "rows") ? 0 : e && !strcmp(e, "cols") ? 1 : 2;
  }
  return mode == 1 || (mode == 2 && !trans_a && M < N && M <= 512);
}

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op = transpose when trans_*. */
void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
  int T = omp_in_parallel() ? 1 : omp_get_max_threads();
  int cols = split_columns(trans_a, M, N), L = cols ? N : M;
  if (T <= 1 || (double)M * N * K < GEMM_SPLIT_MIN_FLOPS || L < 2 * T) {
    sgemm_call(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#pragma omp parallel num_threads(T)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int l0 = (int)((long long)L * t / nt), l1 = (int)((long long)L * (t + 1) / nt);
    if (l1 > l0 && cols) { /* columns l0..l1 of op(B): rows of B when transposed, else a column offset */
      const float *b = trans_b ? B + (size_t)l0 * ldb : B + l0;
      sgemm_call(trans_a, trans_b, M, l1 - l0, K, alpha, A, lda, b, ldb, beta, C + l0, ldc);
    } else if (l1 > l0) { /* rows l0..l1 of op(A): row offset in A, or column offset when A is transposed */
      const float *a = trans_a ? A + l0 : A + (size_t)l0 * lda;
      sgemm_call(trans_a, trans_b, l1 - l0, N, K, alpha, a, lda, B, ldb, beta, C + (size_t)l0 * ldc, ldc);
    }
  }
}

/* sums[o] += sum over rows m of x[m, o], each column added up in row order (the same
 * bits for any thread count). Threads own blocks of up to 1024 columns: each row's
 * part is one contiguous read and the sums stay in L1 (blocks of 16 columns cost
 * the MIM head's 8192-column gradient a new page per row and block). */
void column_sums_add(float *sums, const float *x, int M, int N) {
  enum { WMAX = 1024 };
  int T = omp_get_max_threads(), W = (N + T - 1) / T;
  W = W <= 16 ? 16 : W >= WMAX ? WMAX : (W + 15) / 16 * 16;
#pragma omp parallel for
  for (int o0 = 0; o0 < N; o0 += W) {
    int w = N - o0 < W ? N - o0 : W;
    float acc[WMAX] = {0};
    for (int m = 0; m < M; m++) {
      const float *row = x + (size_t)m * N + o0;
#pragma omp simd
      for (int j = 0; j < w; j++) acc[j] += row[j];
    }
    for (int j = 0; j < w; j++) sums[o0 + j] += acc[j];
  }
}

/* out[M,OC] = inp[M,C] @ weight[OC,C]^T + bias */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int M, int C, int OC) {
  if (bias) {
#pragma omp parallel for
    for (int m = 0; m < M; m++) memcpy(out + (size_t)m * OC, bias, (size_t)OC * sizeof(float));
  }
  gemm(0, 1, M, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f, out, OC);
}

/* dinp[M,C] = dout @ weight (overwritten: ops.h); dweight[OC,C] += dout^T @ inp; dbias += colsum(dout) */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int M, int C, int OC) {
  if (dinp) gemm(0, 0, M, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
  if (dweight) gemm(1, 0, OC, C, M, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias) column_sums_add(dbias, dout, M, OC);
}
