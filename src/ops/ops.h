/* ops.h - the CPU kernels: pure functions on flat float32 arrays.
 *
 * Shape vocabulary: B batch, N tokens (1 + patches), C width, H heads,
 * D = C/H head dim, M rows (= B*N or any flattened leading dims), K classes/vocab.
 * Order of arguments: outputs, saved tensors, inputs, weights, sizes.
 *
 * THE GRADIENT RULE: every backward kernel ACCUMULATES (+=) into all of its
 * gradient outputs, parameter and input gradients alike; callers zero them
 * first. Two exceptions, both input gradients with a single producer: linear_backward
 * OVERWRITES (=) its input gradient dinp (the GEMM's beta 0), because every caller's
 * dinp is a fresh buffer and zeroing it, then reading it back in the GEMM, cost 2.5%
 * of a mini training step; attention_backward OVERWRITES dqkv likewise (each head's
 * dq, dk, dv is one product).
 * A NULL gradient pointer means "not needed" and is skipped.
 * (tests/test_ops.c checks this rule by calling backward twice.) */
#ifndef BEIT_OPS_H
#define BEIT_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- sgemm, row-major: C[M,N] = alpha op(A) op(B) + beta C, output rows split
 * over the OpenMP threads (one single-threaded BLAS call each). */
void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* sums[o] += sum over the M rows of x[M,N] (bias gradients) */
void column_sums_add(float *sums, const float *x, int M, int N);

/* ---- linear: out[M,OC] = inp[M,C] @ weight[OC,C]^T + bias[OC]  (torch F.linear) */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int M, int C, int OC);
/* dinp = dout @ weight (overwritten), dweight += dout^T @ inp, dbias += column sums of dout */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int M, int C, int OC);

/* ---- layernorm over the last dim C (torch F.layer_norm); mean, rstd: [M] saved */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int M, int C, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int M, int C);

/* ---- GELU, exact erf form (torch nn.GELU()) */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* The backward pass's GELU in one pass over inp: out = gelu(inp) (the value the forward
 * pass did not keep) and deriv = gelu'(inp) (one exponential for both); then
 * gelu_backward_deriv: dinp += dout * deriv, or, with dinp == deriv, dinp = dout * deriv
 * in place (the derivative's buffer becomes the input gradient). */
void gelu_forward_deriv(float *out, float *deriv, const float *inp, size_t n);
void gelu_backward_deriv(float *dinp, const float *dout, const float *deriv, size_t n);

/* ---- relative position bias (BEiT): table [R,H], R = (2Wh-1)(2Ww-1)+3.
 * index [N*N] with N = Wh*Ww+1 (token 0 = CLS), as in the spec section 1.4. */
int relpos_table_rows(int Wh, int Ww);
void relpos_build_index(int32_t *index, int Wh, int Ww);
/* bias[H,N,N] = table[index[n*N+m], h] */
void relpos_bias_forward(float *bias, const float *table, const int32_t *index, int N, int H);
void relpos_bias_backward(float *dtable, const float *dbias, const int32_t *index, int N, int H);

/* ---- multi-head self-attention core.
 * qkv[B,N,3C]: rows hold [q | k | v], head h owning columns h*D..h*D+D-1 of each.
 * att[B,H,N,N]: saved softmax probabilities. out[B,N,C] head-major concat.
 * bias[H,N,N] (may be NULL) is added to the logits; q is scaled by D^-1/2 first.
 * Backward: dqkv[B,N,3C] is overwritten (the gradient rule's second exception);
 * datt[B,H,N,N] is scratch (overwritten); dbias[H,N,N] accumulates the logit
 * gradient summed over the batch. */
void attention_forward(float *out, float *att, const float *qkv, const float *bias,
                       int B, int N, int C, int H);
void attention_backward(float *dqkv, float *dbias, float *datt, const float *dout,
                        const float *qkv, const float *att, int B, int N, int C, int H);

/* ---- residual with layer scale and drop path:
 * out[b,t,c] = res[b,t,c] + keep_scale[b] * gamma[c] * x[b,t,c]
 * gamma (NULL = 1) is LayerScale; keep_scale (NULL = 1) is per-sample drop path
 * (0 or 1/keep_prob). out may alias res. */
void residual_forward(float *out, const float *res, const float *x, const float *gamma,
                      const float *keep_scale, int B, int T, int C);
/* dres += dout; dx += dout*gamma*keep; dgamma += sum dout*x*keep. */
void residual_backward(float *dres, float *dx, float *dgamma, const float *dout,
                       const float *x, const float *gamma, const float *keep_scale,
                       int B, int T, int C);

/* ---- patches: img[B,Cin,S,S] -> out[B, (S/P)^2, Cin*P*P], each patch flattened
 * channel-major (c, ky, kx) like Conv2d(k=P, s=P) weight [C, Cin, P, P]. */
void patchify(float *out, const float *img, int B, int Cin, int S, int P);

/* ---- token embedding: x[B,N,C] = [cls ; mask[b,p] ? mask_token : e[b,p,:] ]
 * e[B,N-1,C] are the patch embeddings, mask[B,N-1] (NULL = none masked). */
void embed_forward(float *x, const float *e, const uint8_t *mask, const float *cls_token,
                   const float *mask_token, int B, int N, int C);
void embed_backward(float *de, float *dcls, float *dmask_token, const float *dx,
                    const uint8_t *mask, int B, int N, int C);

/* ---- mean over tokens first..N-1: out[B,C]  (BEiT pools patch tokens, CLS excluded) */
void mean_pool_forward(float *out, const float *inp, int B, int N, int C, int first);
void mean_pool_backward(float *dinp, const float *dout, int B, int N, int C, int first);

/* ---- gather rows: out[i,:] = inp[rows[i],:]  (masked positions for the MIM head) */
void gather_rows(float *out, const float *inp, const int32_t *rows, int n, int C);
void scatter_add_rows(float *dinp, const float *dout, const int32_t *rows, int n, int C);

/* ---- softmax cross-entropy, mean over M rows.
 * Hard targets: target[M] (class ids); soft targets: target_probs[M,K] (mixup,
 * label smoothing). probs[M,K] is saved. Returns the mean loss. Backward writes
 * dlogits += scale * (probs - target) / M. Both may work in place: the forward
 * with probs == logits, softmax_xent_backward with dlogits == probs, which then
 * overwrites the probabilities with the gradient instead of accumulating (the MIM
 * head's rows x 8192 buffers are the largest of a small model's step: it takes
 * the loss with softmax_xent_loss, and in the backward pass turns its logits into
 * probabilities and then into their gradient, in place). */
double softmax_xent_forward(float *probs, const float *logits, const int32_t *target, int M, int K);
double softmax_xent_loss(const float *logits, const int32_t *target, int M, int K);  /* writes nothing */
void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *target, int M, int K,
                           float scale);
double soft_xent_forward(float *probs, const float *logits, const float *target_probs, int M, int K);
void soft_xent_backward(float *dlogits, const float *probs, const float *target_probs, int M, int K,
                        float scale);
/* Label smoothing: target_probs[m,k] = eps/K + (1-eps)*[k == target[m]] */
void smooth_targets(float *target_probs, const int32_t *target, int M, int K, float eps);

/* ---- ranking of one row of K logits: the one rule behind every top-1 / top-k
 * count and every prediction. A tie or a non-finite value never counts in a
 * class's favour: logits_rank is how many OTHER classes score >= the label's
 * logit (0 = top-1), and K when that logit is not finite or any logit is NaN;
 * logits_top1 is the class scoring above all others, -1 when none does (a tie at
 * the top, a NaN, an infinite maximum). logits_top1(x, K) == y iff
 * logits_rank(x, K, y) == 0. */
int logits_rank(const float *logits, int K, int label);
int logits_top1(const float *logits, int K);

/* ---- mean squared error over n values (pixel-regression ablation) */
double mse_forward(const float *pred, const float *target, size_t n);
void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* ---- AdamW (decoupled weight decay, torch.optim.AdamW): t is the 1-based step.
 * p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p) */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, int64_t t);
/* sum of squares (double accumulation) and in-place scale, for global-norm clipping */
double sum_squares(const float *x, size_t n);
void scale_inplace(float *x, size_t n, float s);

/* ==== visual tokenizer kernels (conv2d.c, pool.c; issue 4) ====================
 * conv2d (torch F.conv2d): inp[B,IC,H,W], weight[OC,IC/groups,K,K], bias[OC]
 * (NULL = none), zero padding, out[B,OC,OH,OW] with OH = (H+2pad-K)/stride+1.
 * im2col + sgemm; `scratch` holds conv2d_scratch_floats(d) floats (overwritten). */
typedef struct { int B, IC, H, W, OC, K, stride, pad, groups; } conv2d_dims;
int conv2d_out_h(const conv2d_dims *d);
int conv2d_out_w(const conv2d_dims *d);
size_t conv2d_scratch_floats(const conv2d_dims *d);
void conv2d_forward(float *out, float *scratch, const float *inp, const float *weight,
                    const float *bias, const conv2d_dims *d);
void conv2d_backward(float *dinp, float *dweight, float *dbias, float *scratch, const float *dout,
                     const float *inp, const float *weight, const conv2d_dims *d);
/* 2x2 max pooling, stride 2 (odd sizes floored); argmax[B,C,H/2,W/2] in 0..3 saved. */
void maxpool2x2_forward(float *out, uint8_t *argmax, const float *inp, int B, int C, int H, int W);
void maxpool2x2_backward(float *dinp, const float *dout, const uint8_t *argmax, int B, int C, int H,
                         int W);
/* nearest-neighbour x2 upsampling: inp[B,C,H,W] -> out[B,C,2H,2W] */
void upsample2x_forward(float *out, const float *inp, int B, int C, int H, int W);
void upsample2x_backward(float *dinp, const float *dout, int B, int C, int H, int W);
/* ReLU; the backward masks with the forward OUTPUT (so it may run in place). */
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);

/* ==== the loops the model walks used to run themselves (tokens.c, dvae_ops.c,
 * kmeans_ops.c): each is a kernel so that a backend can run it ================== */

/* ---- attention q/v biases: qkv_bias[3C] = [q_bias | 0 | v_bias] (k has no bias);
 * the backward adds the q and v thirds of dqkv_bias[3C] to dq_bias, dv_bias. */
void qkv_bias_forward(float *qkv_bias, const float *q_bias, const float *v_bias, int C);
void qkv_bias_backward(float *dq_bias, float *dv_bias, const float *dqkv_bias, int C);

/* ---- learned absolute position embedding, in place: x[b] += pos[N,C] for every
 * image b of x[B,N,C]; dpos += sum over b of dx[b]. */
void pos_embed_forward(float *x, const float *pos, int B, int N, int C);
void pos_embed_backward(float *dpos, const float *dx, int B, int N, int C);

/* ---- masked positions of mask[B,Np], batch-major then position-major (the order
 * BEiT's labels use). Writes for the i-th masked patch: rows[i], its row in the
 * [B*(Np+1)] token matrix (token 0 of an image is CLS); targets[i] = tokens[its
 * patch] (skipped when tokens or targets is NULL); patch_rows[i], its row in the
 * [B*Np] patch matrix (NULL = not needed). Returns the count. */
int masked_rows(int32_t *rows, int32_t *targets, int32_t *patch_rows, const uint8_t *mask, const int32_t *tokens,
                int B, int Np);
/* rows[b] = b*N + t: token t of every image of a [B*N] token matrix */
void token_rows(int32_t *rows, int B, int N, int t);
/* rows i of logits[M,K] whose logits_top1 is target[i] (the top-1 count of a batch) */
int64_t top1_correct(const float *logits, const int32_t *target, int M, int K);

/* ---- y += a * x */
void axpy(float *y, const float *x, float a, size_t n);

/* ---- dVAE latent layer. Logits and codes are [B, V, hw]: channel k of position p
 * at (b*V + k)*hw + p, softmax over k (stride hw).
 * map_pixels: out = (1 - 2 eps) x + eps; unmap_pixels: images[B,C,P] =
 * clamp((sigmoid(out) - eps) / (1 - 2 eps), 0, 1) of the first C of the 2C
 * channels of out[B,2C,P]. */
void map_pixels(float *out, const float *x, size_t n, float eps);
void unmap_pixels(float *images, const float *out, int B, int C, size_t P, float eps);
/* codes[b*hw + p] = argmax over k of x[b,k,p] (the first maximum wins) */
void argmax_channels(int32_t *codes, const float *x, int B, int V, int hw);
/* z[B,V,hw] = the one-hot grids of codes[B*hw] (each in 0..V-1) */
void one_hot_codes(float *z, const int32_t *codes, int B, int V, int hw);
/* Gumbel(0,1) noise g[B, per_image]: image b of shard `shard` of `shards` draws
 * from the key (seed, BEIT_RNG_GUMBEL, step, b*shards + shard), so a sharded batch
 * gets what one process with the whole batch would (shards 0 = not sharded). */
void gumbel_noise(float *g, int B, size_t per_image, uint64_t seed, int64_t step, int shard, int shards);
/* q = softmax(logits), z = softmax((logits + gumbel) / tau); returns the sum over
 * the B*hw positions of KL(q || uniform over V). */
double gumbel_softmax_forward(float *q, float *z, const float *logits, const float *gumbel, int B, int V, int hw,
                              float tau);
/* dlogits += (1/tau) z (dz - <z, dz>) + kl_coef * d(sum of KL)/d(logits) */
void gumbel_softmax_backward(float *dlogits, const float *dz, const float *z, const float *q, const float *logits,
                             int B, int V, int hw, float tau, float kl_coef);
/* exp(entropy) of the code distribution q averaged over the B*hw positions */
double code_perplexity(const float *q, int B, int V, int hw);
/* qbar[V] = q[B,V,hw] averaged over the B*hw positions (the batch's code usage) */
void code_mean(float *qbar, const float *q, int B, int V, int hw);
/* dlogits += coef * the gradient, through q = softmax(logits), of sum_k qbar_k ln qbar_k
 * taken as sum over positions of <q, ln qbar>: coef q (ln qbar - <q, ln qbar>) at each position */
void code_usage_kl_backward(float *dlogits, const float *q, const float *qbar, int B, int V, int hw, float coef);
/* distinct values among codes[n] (each in 0..V-1); seen is V bytes of scratch */
int distinct_codes(uint8_t *seen, const int32_t *codes, int n, int V);
/* Reconstruction loss of the decoder output out[B,2C,P] (C mu channels, then C
 * ln-b channels) against x[B,C,P] (mapped pixels): laplace = 1 the logit-Laplace
 * NLL |logit(x) - mu|/b + ln(2b) + ln(x(1-x)), 0 the MSE (sigmoid(mu) - x)^2.
 * Returns the mean over B*C*P and WRITES (not accumulates) its gradient dout[B,2C,P]
 * (the ln-b channels get 0 under MSE): the loss is where the gradient starts. */
double recon_loss_forward(float *dout, const float *x, const float *out, int B, int C, size_t P, int laplace);

/* ---- k-means. x[n,D] rows, C[k,D] centroids. */
/* out[r] = sum of x[r,:]^2 (double accumulation) for the rows of x[rows,D] */
void row_sum_squares(float *out, const float *x, int rows, int D);
/* each row of x[rows,D] in place: (x - mean) / sqrt(var + eps) */
void row_standardize(float *x, size_t rows, int D, float eps);
/* labels[i] = the nearest centroid of x[i] from dots[m,k] = x C^T and cnorm[k] =
 * |c|^2 (argmin |c|^2 - 2 x.c; a near tie is settled by exact distances, the lower
 * index winning), dist2[i] (NULL = not needed) its squared distance. */
void nearest_centroid(int32_t *labels, float *dist2, const float *x, size_t m, int D, const float *dots,
                      const float *cnorm, const float *C, int k);
/* d2[i] = min(d2[i], |x[i] - c|^2) in double */
void lower_dist2(double *d2, const float *x, size_t n, int D, const float *c);
double sum_f64(const double *x, size_t n);
/* C[j] = mean of the rows order[start[j] .. start[j+1]) of x, for every j with members */
void centroid_means(float *C, const float *x, const size_t *order, const size_t *start, int k, int D);
/* the inverse of patchify: img[B,Cin,S,S] from patch vectors; patch p of image b
 * is patches[index ? index[b*G*G + p] : b*G*G + p], G = S/P */
void unpatchify(float *img, const float *patches, const int32_t *index, int B, int Cin, int S, int P);

/* ---- vector quantisation (vq.c): rows x [n, d] against a codebook C [V, d] ---- */
/* [B, d, hw] (channel-major maps) <-> rows [B*hw, d] */
void vq_maps_to_rows(float *rows, const float *maps, int B, int d, int hw);
void vq_rows_to_maps(float *maps, const float *rows, int B, int d, int hw);
/* y_i = x_i / max(|x_i|, 1e-12); norm (may be NULL) gets the divisor. y may be x. */
void vq_l2_normalize(float *y, float *norm, const float *x, size_t n, int d);
/* The backward of vq_l2_normalize: dx_i = (dy_i - y_i <y_i, dy_i>) / norm_i. */
void vq_l2_normalize_backward(float *dx, const float *dy, const float *y, const float *norm, size_t n, int d);
/* codes[i] = argmax_k <x_i, C_k> (the lowest k on ties): the nearest code by
 * cosine similarity when rows and codes are unit vectors; sim (may be NULL) the maximum. */
void vq_cosine_lookup(int32_t *codes, float *sim, const float *x, const float *C, size_t n, int d, int V);
/* EMA codebook update from the assignments of one batch:
 * count_k = decay count_k + (1 - decay) n_k, sum_k = decay sum_k + (1 - decay) sum_{codes_i = k} x_i,
 * C_k = sum_k / |sum_k| (kept when |sum_k| = 0). */
void vq_ema_update(float *C, float *count, float *sum, const float *x, const int32_t *codes, size_t n, int d, int V,
                   float decay);
/* Dead-code restart: the j-th code (in order of k) with count_k < threshold becomes
 * x[pick[j]] (a recent encoder output, unit length), with sum_k = x[pick[j]] and count_k = 1.
 * pick holds V entries (the caller draws them); returns how many codes restarted. */
int vq_restart_dead(float *C, float *count, float *sum, const float *x, const uint32_t *pick, int d, int V,
                    float threshold);
/* Commitment loss beta * mean over n*d of (x - q)^2 (q held fixed); ADDS its gradient to dx. */
double vq_commitment(float *dx, const float *x, const float *q, size_t n, int d, float beta);

#endif
