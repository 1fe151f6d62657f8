/* tokenizer.h - visual tokenizers as the rest of beit uses them: one handle over
 * the dVAE and the k-means tokenizer (load, encode, decode), the token-grid file
 * written by `beit tokenizer encode`, and the training / encoding / reconstruction
 * drivers behind `beit tokenizer train|encode|reconstruct`. */
#ifndef BEIT_TOKENIZER_H
#define BEIT_TOKENIZER_H

#include <stdint.h>

#include "data/dataset.h"
#include "model/dvae.h"
#include "model/kmeans.h"
#include "model/vq.h"

enum { BEIT_TOK_DVAE = 1, BEIT_TOK_KMEANS = 2, BEIT_TOK_VQ = 3 };

typedef struct {
  int type;                /* BEIT_TOK_DVAE, BEIT_TOK_KMEANS or BEIT_TOK_VQ */
  dvae dv;
  kmeans_tok km;
  vq_tok vq;
  int image_size, channels; /* input images [B, channels, image_size, image_size] in [0, 1] */
  int grid, vocab;          /* tokens [B, grid*grid], values 0..vocab-1 */
} beit_tokenizer;

/* Reads a checkpoint written by `beit tokenizer train` (the metadata "type" says
 * which kind), or a dall_e encoder converted to safetensors (no metadata, keys
 * "blocks.input.w", ...: encoder only, input BEIT_DALLE_IMAGE_SIZE as in BEiT).
 * Errors name the file. */
#define BEIT_DALLE_IMAGE_SIZE 112
int beit_tokenizer_load(beit_tokenizer *t, const char *path);
/* The same with the input side of a dall_e encoder (its file does not say it). */
int beit_tokenizer_load_sized(beit_tokenizer *t, const char *path, int dalle_size);
void beit_tokenizer_free(beit_tokenizer *t);
int beit_tokenizer_encode(beit_tokenizer *t, const float *images, int B, int32_t *tokens);
/* Token grids back to [0, 1] images (dVAE; k-means only without normalisation). */
int beit_tokenizer_decode(beit_tokenizer *t, const int32_t *tokens, int B, float *images);

/* ---- token files ---------------------------------------------------------------
 * Little-endian: bytes 0-7 magic "BEITTOKS", u32 version (1), u32 grid_h, u32 grid_w,
 * u32 vocab (2..65536), u64 n, then n * grid_h * grid_w u16 token ids, image-major,
 * each grid row-major. Readers check the magic, version, sizes and every id. */
#define BEIT_TOKENS_MAGIC "BEITTOKS"
#define BEIT_TOKENS_VERSION 1
#define BEIT_TOKENS_HEADER 32
typedef struct {
  int64_t n;
  int grid_h, grid_w, vocab;
  int32_t *tokens;  /* [n, grid_h * grid_w] */
} beit_token_file;

int beit_tokens_write(const char *path, const int32_t *tokens, int64_t n, int grid_h, int grid_w, int vocab);
int beit_tokens_read(const char *path, beit_token_file *tf);
void beit_tokens_free(beit_token_file *tf);

/* ---- training ------------------------------------------------------------------ */
typedef struct {
  const char *data, *out;     /* dataset spec, run folder */
  int type;                   /* BEIT_TOK_DVAE, BEIT_TOK_KMEANS or BEIT_TOK_VQ */
  dvae_config dv;             /* image_size 0 = the dataset's side; vocab 0 = 1024 for colour data, 512 for grey;
                               * VQ: the network, dv.vocab the codebook size */
  int64_t steps;              /* dVAE updates: the schedules span them */
  int64_t max_steps;          /* stop after this many (0 = steps) */
  int overwrite;              /* a run already in `out`: remove its files first (else refused) */
  int resume;                 /* dVAE, VQ: continue the run in `out` from its checkpoint */
  int64_t save_every;         /* dVAE, VQ: OUT/checkpoint.safetensors every N steps (0 = never; default
                               * BEIT_TOK_SAVE_EVERY); a SIGINT/SIGTERM also saves one, then stops */
  float ema;                  /* dVAE, VQ: decay of an EMA of the weights, saved as the tokenizer (0 = off) */
  int batch;
  float lr, min_lr, weight_decay, clip_grad;
  int64_t warmup;             /* lr warmup steps */
  float tau_start, tau_end;   /* Gumbel temperature: cosine from start to end ... */
  int64_t tau_steps;          /* ... over this many steps (0 = all steps) */
  int kl_usage;               /* dVAE: KL of the batch's average q to uniform instead of each cell's q (--kl usage) */
  int hard;                   /* dVAE: straight-through Gumbel (the decoder sees one-hot codes, as at eval) */
  float beta;                 /* KL weight: cosine from 0 to beta ... */
  int64_t kl_warmup;          /* ... over this many steps */
  float crop_min, hflip;      /* augmentation: random resized crop scale [crop_min, 1], flips */
  int log_every, eval_images; /* log interval; test images for the final MAE */
  long long val_split, split_seed; /* hold out pretraining's --val-split (0 = none): the tokenizer is trained on
                                    * the images pretraining sees, never on the validation split */
  uint64_t seed;
  int workers;                /* data loader threads */
  /* k-means */
  kmeans_config km;
  int km_iters, km_images;    /* Lloyd iterations; training images (0 = all) */
  int64_t km_max_patches;
  /* VQ (the network and schedules as the dVAE's) */
  int code_dim;               /* D of the l2-normalised codes */
  float vq_beta, vq_decay, vq_dead;  /* commitment weight, EMA decay, dead-code threshold (EMA uses per batch) */
} beit_tok_train_cfg;

/* dVAE, VQ: the default checkpoint interval (a checkpoint is a few MB: the weights, two moments, the EMAs) */
#define BEIT_TOK_SAVE_EVERY 100

void beit_tok_train_defaults(beit_tok_train_cfg *c);
/* Trains, writes OUT/tokenizer.safetensors, OUT/log.jsonl and OUT/config.json,
 * then reports the test reconstruction error and codebook usage on stdout.
 * BEIT_STOPPED (train/recipes.h) when SIGINT or SIGTERM stopped a dVAE or VQ
 * run after it saved OUT/checkpoint.safetensors (continue it with resume). */
int beit_tokenizer_train(const beit_tok_train_cfg *c);

/* Encodes every image of ds (eval transform, [0,1]) and writes a token file. */
int beit_tokenizer_encode_dataset(beit_tokenizer *t, const beit_dataset *ds, int batch, const char *out_path);
/* Images [first, first+n) and their reconstructions side by side in a PNG (the
 * first BEIT_RECON_PNG_MAX of them); *mae = mean absolute error over all n images.
 * png may be NULL (error only). */
#define BEIT_RECON_PNG_MAX 256
int beit_tokenizer_reconstruct(beit_tokenizer *t, const beit_dataset *ds, int64_t first, int n, const char *png,
                               double *mae);

/* ---- evaluation (tokenizer_eval.c) ---------------------------------------------- */
/* Whether the tokens can be turned back into pixels (dVAE with a decoder; k-means without normalisation). */
int beit_tokenizer_can_decode(const beit_tokenizer *t);
typedef struct {
  int64_t images, tokens;
  int used;                 /* distinct codes over all tokens */
  double perplexity;        /* exp(entropy) of the code histogram */
  double mae, psnr;         /* pixels in [0, 1]; NAN when the tokenizer cannot decode (psnr INFINITY when exact) */
  double seconds_per_image; /* encode (+ decode) time, data reading excluded */
} beit_tok_eval;
/* Encodes (and decodes) images [0, n) of ds (n <= 0: all) in batches, each resized
 * to the tokenizer's input size by the eval transform (a centre crop of ratio 1). */
int beit_tokenizer_eval(beit_tokenizer *t, const beit_dataset *ds, int64_t n, int batch, beit_tok_eval *r);

/* Codebook usage of a token histogram: distinct codes and exp(entropy). */
void beit_token_usage(const int64_t *hist, int vocab, int *used, double *perplexity);

#endif
