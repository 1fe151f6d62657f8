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
  /* One (image, head) of attention_forward (ops.h) for N <= ATT_FUSED_NMAX, D % 16 == 0:
   * att[N][N] = softmax(scale q k^T + bias) (bias [N][N] or NULL), out = att v; q, k, v rows
   * ldqkv apart, out rows ldo apart; scratch: ATT_SCRATCH_FLOATS(N, D) floats. */
  void (*attention_head_forward)(float *out, int ldo, float *att, const float *q, const float *k, const float *v,
                                 int ldqkv, const float *bias, int N, int D, float scale, float *scratch);
  /* Its backward: dv += att^T dout; ds[N][N] = the logits' gradient; dq += scale ds k;
   * dk += scale ds^T q (dq, dk, dv rows ldd apart, dout rows ldo apart). */
  void (*attention_head_backward)(float *dq, float *dk, float *dv, int ldd, float *ds, const float *dout, int ldo,
                                  const float *q, const float *k, const float *v, int ldqkv, const float *att,
                                  int N, int D, float scale, float *scratch);
} simd_kernels;

/* The longest sequence of the fused attention kernels (BEiT at 256 px, patch 16), and
 * their scratch: a transposed, padded K or V and one block of score rows. */
#define ATT_FUSED_NMAX 257
#define ATT_SCRATCH_FLOATS(N, D) ((size_t)((D) + 8) * ((N) + 16))

/* Tests and benchmarks (not a kernel of ops.h): 0 sends every size to the sgemm path; 1 (the
 * default) lets N <= ATT_FUSED_NMAX with D % 16 == 0 take the fused kernels when the AVX-512
 * kernels are active, 2 on every ISA (attention.c). Not thread-safe. */
void attention_fused_set(int mode);

extern const simd_kernels simd_generic, simd_avx2, simd_avx512;

/* The table of the active ISA (beit_isa_active). */
const simd_kernels *simd(void);

/* Chunk of the element-wise kernels' thread split: a multiple of 16, so only the
 * last chunk has a partial vector. */
#define SIMD_CHUNK 4096

#endif
