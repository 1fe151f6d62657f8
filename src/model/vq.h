/* vq.h - a vector-quantised visual tokenizer: the dVAE's convolutional encoder and
 * decoder around a codebook of low-dimensional l2-normalised codes (BEiT v2) with
 * cosine-similarity lookup, a straight-through estimator and a commitment loss;
 * the codebook is initialised by k-means of encoder outputs, follows the encoder
 * by exponential moving averages (no gradient), and codes the batches stop using
 * restart from recent encoder outputs. Same encode/decode interface as the dVAE. */
#ifndef BEIT_VQ_H
#define BEIT_VQ_H

#include <stdint.h>

#include "model/dvae.h"

typedef struct {
  dvae_config net;  /* encoder / decoder; net.vocab is the code dimension D (the latent width) */
  int vocab;        /* V codes */
} vq_config;

typedef struct {
  float beta;       /* commitment weight: beta * mean (u - sg(q))^2 */
  float decay;      /* EMA decay of the codebook */
  float dead;       /* restart a code whose EMA count (uses per batch) falls below this */
  uint64_t seed;
  int64_t step;     /* restart picks: keyed by (seed, BEIT_RNG_VQ, step) */
} vq_train_opts;

typedef struct {
  double loss, recon, commit;
  int codes_used;   /* distinct codes in the batch */
} vq_stats;

typedef struct {
  vq_config cfg;
  dvae net;
  beit_params cb;   /* "quantizer.codebook" [V, D] (unit rows), "quantizer.ema_count" [V], "quantizer.ema_sum" [V, D] */
  /* training buffers, [N = B*h*w, D] unless noted */
  float *unit, *norm /* [N] */, *q, *zmap, *drows, *dmap;
  int32_t *codes;   /* [N]: the last forward's codes */
  uint32_t *pick;   /* [V] */
  size_t cap;       /* N the buffers hold */
  int B;
} vq_tok;

int vq_config_check(const vq_config *c);
int vq_grid_side(const vq_config *c);
int vq_create(vq_tok *v, const vq_config *c);
void vq_free(vq_tok *v);
/* Network weights as the dVAE's; codes random unit vectors (before vq_init_codebook). */
void vq_init_weights(vq_tok *v, uint64_t seed);
/* Codebook = k-means (Lloyd, k-means++ seeding) of the unit encoder outputs of
 * these images, normalised; the EMA state starts there with count 1 each. */
int vq_init_codebook(vq_tok *v, const float *images, int B, uint64_t seed);

/* Training: forward (loss = recon + commitment) keeps what backward needs;
 * backward ACCUMULATES into v->net.params.grad; vq_update_codebook then moves the
 * codebook by EMA towards this batch's assignments and restarts dead codes from
 * its encoder outputs (returns how many, or -1 on error). */
int vq_forward_train(vq_tok *v, const float *images, int B, const vq_train_opts *o, vq_stats *st);
int vq_backward(vq_tok *v, const vq_train_opts *o);
int vq_update_codebook(vq_tok *v, const vq_train_opts *o);

int vq_encode(vq_tok *v, const float *images, int B, int32_t *tokens);
int vq_decode(vq_tok *v, const int32_t *tokens, int B, float *images);

/* safetensors: the network's tensors and the quantizer's, metadata type "vq". */
int vq_save(const vq_tok *v, const char *path, const char *const *extra_kv, int n_extra);
int vq_load(vq_tok *v, const char *path);

#endif
