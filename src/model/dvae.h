/* dvae.h - the DALL-E discrete VAE tokenizer (spec section 5): a convolutional
 * encoder that maps an image to a grid of logits over a vocabulary, and a decoder
 * from (relaxed) one-hot grids back to pixels, with forward + backward for training
 * (Gumbel-softmax, logit-Laplace or MSE reconstruction, KL to the uniform prior). */
#ifndef BEIT_DVAE_H
#define BEIT_DVAE_H

#include <stdint.h>

#include "model/params.h"
#include "ops/ops.h"

enum { DVAE_RECON_LAPLACE = 0, DVAE_RECON_MSE = 1 };
#define DVAE_EPS 0.1f     /* map_pixels: x -> (1 - 2 eps) x + eps */
#define DVAE_MAX_STAGES 64
#define DVAE_MAX_WIDTH 4096   /* n_hid and n_init at most */
#define DVAE_MAX_SIDE 16384   /* image size at most */

typedef struct {
  int image_size;      /* S: square input side */
  int channels;        /* 1 (grey) or 3 (RGB) */
  int n_hid;           /* width of the first encoder group (DALL-E 256) */
  int n_init;          /* decoder input width, the code embedding size (DALL-E 128) */
  int n_blk_per_group; /* DALL-E 2 */
  int n_groups;        /* DALL-E 4; the encoder downsamples by 2^(n_groups-1) */
  int vocab;           /* DALL-E 8192 */
  int recon;           /* DVAE_RECON_LAPLACE (DALL-E) or DVAE_RECON_MSE */
} dvae_config;

/* 28x28x1 -> 7x7 tokens, vocab 512, n_hid 32, 3 groups x 1 block (Fashion-MNIST;
 * one block per group trains ~1.7x faster than two for about the same loss per step). */
void dvae_config_small(dvae_config *c);
/* The published DALL-E tokenizer as BEiT uses it: 112x112x3 -> 14x14, vocab 8192. */
void dvae_config_dalle(dvae_config *c);
int dvae_config_check(const dvae_config *c);
int dvae_grid_side(const dvae_config *c);   /* S / 2^(n_groups-1) */

/* One layer of the network walk: an input/output conv, a residual block, a
 * pooling or an upsampling step. Convs index the parameter table. */
enum { DVAE_ST_CONV, DVAE_ST_BLOCK, DVAE_ST_POOL, DVAE_ST_UPSAMPLE, DVAE_ST_RELU_CONV };
typedef struct {
  int kind;
  int cin, cout, side_in, side_out, hid;
  float gain;              /* block: residual post-gain 1/n_layers^2 */
  int w[5], b[5];          /* conv 0: the conv (or block id path, -1 = identity); 1..4: res path */
  conv2d_dims dims[5];     /* B is set at run time */
} dvae_stage;

typedef struct {
  float *out;              /* [B, cout, side_out, side_out] */
  float *r[4];             /* block: relu outputs feeding conv_1..conv_4; relu-conv: r[0] */
  uint8_t *argmax;         /* pool */
} dvae_act;

typedef struct {
  double loss, recon, kl;  /* recon: mean per value; kl: mean per token position, nats */
  double perplexity;       /* exp(entropy) of the batch-average code distribution q */
  int codes_used;          /* distinct argmax codes in the batch */
} dvae_stats;

typedef struct {
  float tau;               /* Gumbel-softmax temperature */
  float beta;              /* KL weight; the KL enters as beta * KL_sum / (C*S*S) per image */
  uint64_t seed;
  int64_t step;            /* noise key: (seed, BEIT_RNG_GUMBEL, step, image) */
  const float *gumbel;     /* [B, vocab, h, w] fixed noise instead of drawing (tests); NULL = draw */
  int kl_usage;            /* the KL term is KL(qbar || uniform) of the batch's average q (the codebook-usage part
                            * of DALL-E's per-cell KL(q || uniform), without its penalty on information) */
  int hard;                /* straight-through: the decoder gets the one-hot argmax of the relaxed sample, the
                            * gradient flows through the relaxed sample (as at eval, no soft mixture leaks) */
  /* data parallelism: the B images are positions shard, shard + shards, ... of
   * the global batch, and "image" in the noise key is that position (0 = not sharded) */
  int shard, shards;
} dvae_train_opts;

struct beit_backend;

typedef struct {
  dvae_config cfg;
  const struct beit_backend *be;  /* runs every kernel and holds the arena (dvae_create: the default) */
  int has_decoder;
  beit_params params;      /* "encoder.blocks..." and "decoder.blocks..." (dall_e names) */
  int n_enc, n_dec;
  dvae_stage enc[DVAE_MAX_STAGES], dec[DVAE_MAX_STAGES];
  dvae_act enc_act[DVAE_MAX_STAGES], dec_act[DVAE_MAX_STAGES];
  /* activation arena, sized for cap_B images in mode (1 = inference, 2 = training) */
  int cap_B, mode, B;
  uint8_t *arena;
  float *qbar;             /* training: q averaged over the batch's cells [vocab] (data parallel: the trainer
                            * averages it over the ranks between forward and backward) */
  float *xm, *q, *z, *zsoft, *gumbel, *dlogits, *dz, *dout, *g[2], *gtmp[2], *work, *scratch, *tmp[3];
  uint8_t *am_tmp, *seen;
  int32_t *tokens;         /* argmax codes of the last forward, [B, h*w] */
  int32_t *sampled;        /* training, straight-through: argmax codes of the relaxed sample */
} dvae;

/* Builds the parameter table (zero weights); with_decoder = 0 for an encoder only. */
int dvae_create(dvae *d, const dvae_config *c, int with_decoder);
void dvae_free(dvae *d);
/* DALL-E init: w ~ N(0, 1/(n_in k^2)), b = 0, keyed by (seed, BEIT_RNG_INIT, tensor). */
void dvae_init_weights(dvae *d, uint64_t seed);

/* Inference. images [B, C, S, S] in [0, 1] (map_pixels is applied inside). */
int dvae_encoder_logits(dvae *d, const float *images, int B, float *logits /* [B,V,h,w] */);
int dvae_encode(dvae *d, const float *images, int B, int32_t *tokens /* [B, h*w] */);
/* Decodes token grids to images in [0, 1]: x = clamp((sigmoid(mu) - eps)/(1 - 2eps), 0, 1). */
int dvae_decode(dvae *d, const int32_t *tokens, int B, float *images);

/* Training: forward computes the loss and keeps what backward needs; backward
 * ACCUMULATES the gradient of stats.loss into d->params.grad (BEIT_ERR when
 * there is no training forward to differentiate). */
int dvae_forward_train(dvae *d, const float *images, int B, const dvae_train_opts *o, dvae_stats *st);
int dvae_backward(dvae *d, const dvae_train_opts *o);
/* KL(qbar || uniform) in nats of the last training forward's (or the trainer's averaged) qbar. */
double dvae_usage_kl(const dvae *d);

/* Training with a latent of the caller's (src/model/vq.c): the encoder output
 * [B, vocab, h, w] (vocab = the latent width), then the decoder on the caller's z
 * of that shape (reconstruction loss, mean per value, in *recon), then the
 * gradient w.r.t. z, then the encoder's backward from the caller's gradient
 * w.r.t. its output. Both backwards ACCUMULATE into d->params.grad. */
const float *dvae_train_encode(dvae *d, const float *images, int B);
int dvae_train_decode(dvae *d, const float *z, double *recon);
const float *dvae_train_backward_decoder(dvae *d);
void dvae_train_backward_encoder(dvae *d, const float *dlatent);
/* Parameters of a valid config (nothing allocated): to refuse a file too small for it. */
double dvae_param_count(const dvae_config *c, int with_decoder);
/* Inference decoder on a latent z [B, vocab, h, w] to [0, 1] images. */
int dvae_decode_latent(dvae *d, const float *z, int B, float *images);

/* Checkpoints: safetensors with the config in the metadata (extra_kv adds more pairs). */
int dvae_save(const dvae *d, const char *path, const char *const *extra_kv, int n_extra);
int dvae_load(dvae *d, const char *path);
/* An encoder saved from openai/DALL-E's dall_e package (keys "blocks.input.w", ...
 * without our "encoder." prefix): the architecture is read from the shapes, every
 * key and shape is checked, unknown keys are refused. */
int dvae_load_dalle_encoder(dvae *d, const char *path, int image_size);

#endif
