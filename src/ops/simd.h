/* simd.h - the kernels that exist once per vector ISA (simd_kernels.inc, compiled
 * by simd.c, simd_avx2.c and simd_avx512.c with their own target flags) and the
 * table of the one beit_isa_active() picked. Each works on one row or one chunk,
 * single-threaded; the public kernels of ops.h split the work over threads. */
#ifndef BEIT_OPS_SIMD_H
#define BEIT_OPS_SIMD_H

#include <stddef.h>

/* AdamW's per-step constants (adamw.c): p = p * decay - step * m / (sqrt(v) * rbc2 + eps) */
typedef struct { float beta1, beta2, decay, step, rbc2, eps; } adamw_consts;

typedef struct {
  void (*gelu_forward)(float *out, const float *inp, size_t n);
  void (*gelu_backward)(float *dinp, const float *dout, const float *inp, size_t n);
  /* out = gelu(inp), deriv = gelu'(inp) */
  void (*gelu_forward_deriv)(float *out, float *deriv, const float *inp, size_t n);
  /* p = softmax(x) over K values (p may be x); returns log(sum_k e^x[k]) */
  double (*softmax_row)(float *p, const float *x, int K);
  /* log(sum_k e^x[k]) */
  double (*logsumexp_row)(const float *x, int K);
  /* y = (x - mean) * rstd * w + b over C values; writes the row's mean and rstd */
  void (*layernorm_row)(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                        int C, float eps);
  /* dw += dy * xhat, db += dy and, when dx, dx += the input gradient (layernorm.c) */
  void (*layernorm_row_backward)(float *dx, float *dw, float *db, const float *dy, const float *x,
                                 const float *w, float mean, float rstd, int C);
  void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, const adamw_consts *k);
} simd_kernels;

extern const simd_kernels simd_generic, simd_avx2, simd_avx512;

/* The table of the active ISA (beit_isa_active). */
const simd_kernels *simd(void);

/* Chunk of the element-wise kernels' thread split: a multiple of 16, so only the
 * last chunk has a partial vector. */
#define SIMD_CHUNK 4096

#endif
