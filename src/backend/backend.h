/* backend.h - the seam between the model walks and the hardware they run on: one
 * table of function pointers, for memory and for every kernel of ops/ops.h with
 * the same signature. The BEiT model, the dVAE, k-means and the optimizer call
 * kernels only through a table (m->be->gelu_forward(...)), so a second backend
 * (CUDA, src/cuda/) is a second table, not a second copy of the walks. The shape
 * of ggml's ggml_backend_i, without the graph: the walks stay plain C calls.
 * docs/architecture.md: where a new kernel or a new backend goes. */
#ifndef BEIT_BACKEND_H
#define BEIT_BACKEND_H

#include <stddef.h>

#include "ops/ops.h"

/* Memory: X(return type, name, (parameters)). Everything the walks keep (activation
 * arenas, the relative position index) is backend memory: they touch it only through
 * kernels, and host data crosses with upload / download. */
#define BEIT_BACKEND_MEMORY(X) \
  X(void *, alloc, (size_t bytes, const char *what)) /* NULL with the error set (beit_errorf) */ \
  X(void, free, (void *p))                           /* NULL is fine */ \
  X(void, upload, (void *dst, const void *host, size_t bytes)) \
  X(void, download, (void *host, const void *src, size_t bytes)) \
  X(void, copy, (void *dst, const void *src, size_t bytes)) /* within the backend's memory */ \
  X(void, zero, (float *x, size_t n))

/* Every kernel of ops/ops.h, in its order, with its signature (src/backend/cpu.c
 * checks each against ops.h at compile time). Not here: the shape arithmetic
 * relpos_table_rows, conv2d_out_h and conv2d_out_w, which touches no memory. */
#define BEIT_BACKEND_KERNELS(X) \
  X(void, gemm, (int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, \
      const float *B, int ldb, float beta, float *C, int ldc)) \
  X(void, column_sums_add, (float *sums, const float *x, int M, int N)) \
  X(void, linear_forward, (float *out, const float *inp, const float *weight, const float *bias, int M, int C, \
      int OC)) \
  X(void, linear_backward, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, \
      const float *weight, int M, int C, int OC)) \
  X(void, layernorm_forward, (float *out, float *mean, float *rstd, const float *inp, const float *weight, \
      const float *bias, int M, int C, float eps)) \
  X(void, layernorm_backward, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, \
      const float *weight, const float *mean, const float *rstd, int M, int C)) \
  X(void, gelu_forward, (float *out, const float *inp, size_t n)) \
  X(void, gelu_backward, (float *dinp, const float *dout, const float *inp, size_t n)) \
  X(void, gelu_forward_deriv, (float *out, float *deriv, const float *inp, size_t n)) \
  X(void, gelu_backward_deriv, (float *dinp, const float *dout, const float *deriv, size_t n)) \
  X(void, relpos_build_index, (int32_t *index, int Wh, int Ww)) \
  X(void, relpos_bias_forward, (float *bias, const float *table, const int32_t *index, int N, int H)) \
  X(void, relpos_bias_backward, (float *dtable, const float *dbias, const int32_t *index, int N, int H)) \
  X(void, attention_forward, (float *out, float *att, const float *qkv, const float *bias, int B, int N, int C, \
      int H)) \
  X(void, attention_backward, (float *dqkv, float *dbias, float *datt, const float *dout, const float *qkv, \
      const float *att, int B, int N, int C, int H)) \
  X(void, residual_forward, (float *out, const float *res, const float *x, const float *gamma, \
      const float *keep_scale, int B, int T, int C)) \
  X(void, residual_backward, (float *dres, float *dx, float *dgamma, const float *dout, const float *x, \
      const float *gamma, const float *keep_scale, int B, int T, int C)) \
  X(void, patchify, (float *out, const float *img, int B, int Cin, int S, int P)) \
  X(void, embed_forward, (float *x, const float *e, const uint8_t *mask, const float *cls_token, \
      const float *mask_token, int B, int N, int C)) \
  X(void, embed_backward, (float *de, float *dcls, float *dmask_token, const float *dx, const uint8_t *mask, int B, \
      int N, int C)) \
  X(void, mean_pool_forward, (float *out, const float *inp, int B, int N, int C, int first)) \
  X(void, mean_pool_backward, (float *dinp, const float *dout, int B, int N, int C, int first)) \
  X(void, gather_rows, (float *out, const float *inp, const int32_t *rows, int n, int C)) \
  X(void, scatter_add_rows, (float *dinp, const float *dout, const int32_t *rows, int n, int C)) \
  X(double, softmax_xent_forward, (float *probs, const float *logits, const int32_t *target, int M, int K)) \
  X(double, softmax_xent_loss, (const float *logits, const int32_t *target, int M, int K)) \
  X(void, softmax_xent_backward, (float *dlogits, const float *probs, const int32_t *target, int M, int K, \
      float scale)) \
  X(double, soft_xent_forward, (float *probs, const float *logits, const float *target_probs, int M, int K)) \
  X(void, soft_xent_backward, (float *dlogits, const float *probs, const float *target_probs, int M, int K, \
      float scale)) \
  X(void, smooth_targets, (float *target_probs, const int32_t *target, int M, int K, float eps)) \
  X(int, logits_rank, (const float *logits, int K, int label)) \
  X(int, logits_top1, (const float *logits, int K)) \
  X(double, mse_forward, (const float *pred, const float *target, size_t n)) \
  X(void, mse_backward, (float *dpred, const float *pred, const float *target, size_t n, float scale)) \
  X(void, adamw_update, (float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, \
      float eps, float wd, int64_t t)) \
  X(double, sum_squares, (const float *x, size_t n)) \
  X(void, scale_inplace, (float *x, size_t n, float s)) \
  X(size_t, conv2d_scratch_floats, (const conv2d_dims *d)) \
  X(void, conv2d_forward, (float *out, float *scratch, const float *inp, const float *weight, const float *bias, \
      const conv2d_dims *d)) \
  X(void, conv2d_backward, (float *dinp, float *dweight, float *dbias, float *scratch, const float *dout, \
      const float *inp, const float *weight, const conv2d_dims *d)) \
  X(void, maxpool2x2_forward, (float *out, uint8_t *argmax, const float *inp, int B, int C, int H, int W)) \
  X(void, maxpool2x2_backward, (float *dinp, const float *dout, const uint8_t *argmax, int B, int C, int H, int W)) \
  X(void, upsample2x_forward, (float *out, const float *inp, int B, int C, int H, int W)) \
  X(void, upsample2x_backward, (float *dinp, const float *dout, int B, int C, int H, int W)) \
  X(void, relu_forward, (float *out, const float *inp, size_t n)) \
  X(void, relu_backward, (float *dinp, const float *dout, const float *out, size_t n)) \
  X(void, qkv_bias_forward, (float *qkv_bias, const float *q_bias, const float *v_bias, int C)) \
  X(void, qkv_bias_backward, (float *dq_bias, float *dv_bias, const float *dqkv_bias, int C)) \
  X(void, pos_embed_forward, (float *x, const float *pos, int B, int N, int C)) \
  X(void, pos_embed_backward, (float *dpos, const float *dx, int B, int N, int C)) \
  X(int, masked_rows, (int32_t *rows, int32_t *targets, int32_t *patch_rows, const uint8_t *mask, \
      const int32_t *tokens, int B, int Np)) \
  X(void, token_rows, (int32_t *rows, int B, int N, int t)) \
  X(int64_t, top1_correct, (const float *logits, const int32_t *target, int M, int K)) \
  X(void, axpy, (float *y, const float *x, float a, size_t n)) \
  X(void, map_pixels, (float *out, const float *x, size_t n, float eps)) \
  X(void, unmap_pixels, (float *images, const float *out, int B, int C, size_t P, float eps)) \
  X(void, argmax_channels, (int32_t *codes, const float *x, int B, int V, int hw)) \
  X(void, one_hot_codes, (float *z, const int32_t *codes, int B, int V, int hw)) \
  X(void, gumbel_noise, (float *g, int B, size_t per_image, uint64_t seed, int64_t step, int shard, int shards)) \
  X(double, gumbel_softmax_forward, (float *q, float *z, const float *logits, const float *gumbel, int B, int V, \
      int hw, float tau)) \
  X(void, gumbel_softmax_backward, (float *dlogits, const float *dz, const float *z, const float *q, \
      const float *logits, int B, int V, int hw, float tau, float kl_coef)) \
  X(double, code_perplexity, (const float *q, int B, int V, int hw)) \
  X(void, code_mean, (float *qbar, const float *q, int B, int V, int hw)) \
  X(void, code_usage_kl_backward, (float *dlogits, const float *q, const float *qbar, int B, int V, int hw, \
      float coef)) \
  X(int, distinct_codes, (uint8_t *seen, const int32_t *codes, int n, int V)) \
  X(double, recon_loss_forward, (float *dout, const float *x, const float *out, int B, int C, size_t P, \
      int laplace)) \
  X(void, row_sum_squares, (float *out, const float *x, int rows, int D)) \
  X(void, row_standardize, (float *x, size_t rows, int D, float eps)) \
  X(void, nearest_centroid, (int32_t *labels, float *dist2, const float *x, size_t m, int D, const float *dots, \
      const float *cnorm, const float *C, int k)) \
  X(void, lower_dist2, (double *d2, const float *x, size_t n, int D, const float *c)) \
  X(double, sum_f64, (const double *x, size_t n)) \
  X(void, centroid_means, (float *C, const float *x, const size_t *order, const size_t *start, int k, int D)) \
  X(void, unpatchify, (float *img, const float *patches, const int32_t *index, int B, int Cin, int S, int P)) \
  X(void, vq_maps_to_rows, (float *rows, const float *maps, int B, int d, int hw)) \
  X(void, vq_rows_to_maps, (float *maps, const float *rows, int B, int d, int hw)) \
  X(void, vq_l2_normalize, (float *y, float *norm, const float *x, size_t n, int d)) \
  X(void, vq_l2_normalize_backward, (float *dx, const float *dy, const float *y, const float *norm, size_t n, \
      int d)) \
  X(void, vq_cosine_lookup, (int32_t *codes, float *sim, const float *x, const float *C, size_t n, int d, int V)) \
  X(void, vq_ema_update, (float *C, float *count, float *sum, const float *x, const int32_t *codes, size_t n, \
      int d, int V, float decay)) \
  X(int, vq_restart_dead, (float *C, float *count, float *sum, const float *x, const uint32_t *pick, int d, \
      int V, float threshold)) \
  X(double, vq_commitment, (float *dx, const float *x, const float *q, size_t n, int d, float beta))

#define BEIT_BACKEND_ENTRY_(ret, name, args) ret(*name) args;
typedef struct beit_backend {
  const char *name;  /* "cpu" */
  int host_memory;   /* 1: its memory is the host's (pointers are shared, upload is a copy) */
  BEIT_BACKEND_MEMORY(BEIT_BACKEND_ENTRY_)
  BEIT_BACKEND_KERNELS(BEIT_BACKEND_ENTRY_)
} beit_backend;
#undef BEIT_BACKEND_ENTRY_

/* The CPU backend: the kernels of src/ops with OpenMP and OpenBLAS. */
const beit_backend *beit_backend_cpu(void);
/* What a new model, dVAE, k-means tokenizer or optimizer uses: the CPU. */
const beit_backend *beit_backend_default(void);
/* The compiled backends (the CPU first); NULL past the end. */
const beit_backend *beit_backend_at(int i);

#endif
