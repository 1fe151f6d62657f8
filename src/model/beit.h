/* beit.h - the BEiT encoder (ViT with relative position bias, LayerScale, q/v
 * biases, drop path) and its three heads: masked image modeling (visual tokens),
 * pixel regression (the paper's ablation) and classification. Parameters use
 * timm's key names. Activations live in one arena sized for a maximum batch. */
#ifndef BEIT_MODEL_H
#define BEIT_MODEL_H

#include <stdint.h>

#include "model/params.h"

/* Relative position bias: a table per block (timm's fine-tuned models), one table
 * all blocks share (BEiT pretraining), or none (vanilla ViT checkpoints). Zero, a
 * config's default, is per block. The JSON twin keeps Hugging Face's two booleans. */
typedef enum { BEIT_RELPOS_PER_BLOCK = 0, BEIT_RELPOS_SHARED = 1, BEIT_RELPOS_NONE = 2 } beit_relpos;

typedef struct {
  int image_size, channels, patch_size;
  int dim, depth, heads;
  float mlp_ratio;
  int vocab_size;          /* MIM head (lm_head) size; 0 = no MIM head */
  int num_classes;         /* classifier head size; 0 = no classifier */
  int pixel_head;          /* 1 = pixel-regression head (predict masked patches) */
  float layer_scale_init;  /* gamma_1/gamma_2 init; 0 = no LayerScale */
  beit_relpos rel_pos;
  int abs_pos_emb;         /* 1 = learned absolute position embedding pos_embed [1, N+1, dim] */
  int use_mean_pooling;    /* classifier feature: 1 = fc_norm(mean of patches), 0 = norm(CLS) */
  float drop_path;         /* max drop-path rate (linear over blocks) */
  float ln_eps;
} beit_config;

/* Fills cfg with a named preset (tiny, small, base, large, and the small demo
 * sizes); returns BEIT_ERR for an unknown name. Image/patch/head fields are
 * left for the caller. */
int beit_config_preset(beit_config *cfg, const char *name);
/* Upper limits of beit_config_validate (ViT-22B has dim 6144, ImageNet-22k 21841 classes). */
#define BEIT_MAX_IMAGE_SIZE 4096
#define BEIT_MAX_DIM 16384
#define BEIT_MAX_CLASSES (1 << 20)
/* Checks divisibility and ranges; the message names the offending field. */
int beit_config_validate(const beit_config *cfg);
/* JSON twin (Hugging Face BeitConfig field names where they exist). Caller frees. */
char *beit_config_to_json(const beit_config *cfg);
int beit_config_from_json(beit_config *cfg, const char *json, const char *source);

typedef enum { BEIT_TASK_MIM, BEIT_TASK_PIXEL, BEIT_TASK_CLASSIFY } beit_task;

typedef struct {
  int B;
  const float *images;       /* [B, C, S, S], normalised */
  const uint8_t *mask;       /* [B, Np] 1 = masked (MIM/pixel), NULL = none */
  const int32_t *tokens;     /* [B, Np] visual token of every patch (MIM) */
  const int32_t *labels;     /* [B] class ids (classify) */
  const float *soft_labels;  /* [B, K] target distribution (mixup / smoothing), or NULL */
  /* Data parallelism: these B samples are positions shard, shard + shards, ...
   * of a global batch of B * shards (the loader's rank slice), so drop path
   * draws what one process with the global batch would. 0 = not sharded. */
  int shard, shards;
} beit_input;

typedef struct {
  double loss;
  int64_t correct, count;    /* top-1 over masked tokens (MIM) or images (classify) */
} beit_stats;

typedef struct beit_acts beit_acts;
struct beit_backend;

/* One block's tensors as pointers into a buffer laid out like the parameters (the
 * weights or their gradients); NULL where the config has none. */
typedef struct {
  float *gamma_1, *gamma_2, *norm1_w, *norm1_b, *q_bias, *v_bias, *rel_table, *qkv_w, *proj_w, *proj_b;
  float *norm2_w, *norm2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} beit_block_tensors;

/* Every tensor of the model, bound once when its buffer is allocated: the forward
 * and backward passes never look a name up (the names are for checkpoints). */
typedef struct {
  float *cls_token, *pos_embed, *mask_token, *patch_w, *patch_b;
  float *rel_table;               /* the shared table (BEIT_RELPOS_SHARED) */
  beit_block_tensors *blocks;     /* [depth] */
  float *norm_w, *norm_b, *fc_norm_w, *fc_norm_b;
  float *lm_head_w, *lm_head_b, *pixel_w, *pixel_b, *head_w, *head_b;
} beit_tensors;

typedef struct {
  beit_config cfg;
  beit_params params;
  beit_tensors w, g;               /* views of params.data and params.grad (NULLs until it exists) */
  const struct beit_backend *be;   /* runs every kernel and holds the arena (beit_model_init: the default) */
  int grid, num_patches, tokens;   /* grid side, Np, N = Np + 1 */
  int32_t *relpos_index;           /* [N*N], backend memory */
  beit_acts *acts;
  int max_batch, with_grad;
  /* what the last forward did (backward replays it) */
  beit_task task;
  int last_B, last_masked;
  int last_blocks;                 /* blocks it ran (depth, but for beit_encode_blocks) */
} beit_model;

int beit_model_init(beit_model *m, const beit_config *cfg);
void beit_model_free(beit_model *m);
/* BEiT initialisation (spec 1.8): unilm's trunc_normal_(std=0.02), which cuts at
 * +-1 sigma (a = -std, b = std), zero biases, the 1/sqrt(2*layer) rescale of
 * attn.proj and fc2, LayerScale, head init scale. */
void beit_model_init_weights(beit_model *m, uint64_t seed, float head_init_scale);
/* The initialisations --weight-init names: "beit" (beit_model_init_weights) and
 * "timm", timm's ViT from scratch (vision_transformer.py init_weights, mode ''):
 * Linear weights and pos_embed trunc_normal_(std=0.02) cut at +-2 absolute, i.e.
 * a normal N(0, 0.02) in effect; cls_token N(0, 1e-6); biases 0, LayerNorm 1 / 0;
 * the patch-embedding convolution PyTorch's default (uniform +-1/sqrt(fan_in),
 * weight and bias); no depth rescale, no head scale. BEIT_ERR naming
 * --weight-init for another name (m == NULL: only the check). */
int beit_model_init_named(beit_model *m, const char *scheme, uint64_t seed, float head_init_scale);
/* Allocates the activation arena for batches up to max_batch. with_grad = 0
 * gives a small forward-only arena (eval, predict); BEIT_GRAD_RECOMPUTE keeps
 * only each block's input and recomputes the block's forward pass during the
 * backward pass (one more forward per step, activations of one block instead
 * of all). Prints nothing. */
enum { BEIT_GRAD_KEEP = 1, BEIT_GRAD_RECOMPUTE = 2 };
int beit_model_reserve(beit_model *m, int max_batch, int with_grad);
size_t beit_model_arena_bytes(const beit_model *m);
/* Bytes a model of cfg needs: weights, gradients, the activation arena for
 * `batch` (with_grad as in beit_model_reserve) and, with_optimizer, the AdamW
 * moments; -1 (error set) for an invalid config. Allocates nothing large, so it
 * can refuse a config before anything big exists. beit_model_init and
 * beit_model_reserve also check their own share against the available memory. */
double beit_model_memory_bytes(const beit_config *cfg, int batch, int with_grad, int with_optimizer);
/* Parameters a model of cfg has (a table is built, nothing allocated); -1 for an
 * invalid config. */
double beit_config_param_count(const beit_config *cfg);

/* Forward pass and loss. train = 1 enables drop path, keyed by (seed, step).
 * Fills st (may be NULL) with the loss (NaN/inf are reported there, not as an
 * error) and the top-1 counts. BEIT_ERR, with a message, for misuse: no arena,
 * a batch outside 1..max_batch, a task whose head the model lacks (e.g.
 * classification on a pretraining model), a missing mask/tokens, a label or
 * masked token outside the head's range. */
int beit_forward(beit_model *m, beit_task task, const beit_input *batch, int train,
                 uint64_t seed, int64_t step, beit_stats *st);
/* Encoder only (no mask, no head, no drop path): fills the hidden states that
 * beit_hidden returns. Works for any checkpoint, with or without a head.
 * BEIT_ERR as beit_forward for a missing arena or a batch outside 1..max_batch. */
int beit_encode(beit_model *m, const float *images, int B);
/* The embeddings and the first `blocks` blocks only (0..depth), so that in a
 * forward-only arena beit_hidden(m, blocks) and beit_attention(m, blocks - 1)
 * hold that block's values. BEIT_ERR for a batch above the arena's or a block
 * out of range. */
int beit_encode_blocks(beit_model *m, const float *images, int B, int blocks);
/* Backward of the last beit_forward (once): accumulates into m->params.grad.
 * BEIT_ERR for an arena without gradients, no forward to replay, or a batch
 * other than the forward's. */
int beit_backward(beit_model *m, const beit_input *batch);

/* Views into the arena after a forward; NULL without an arena or for a layer
 * outside the model. A forward-only arena keeps only the block it ran last
 * (beit_encode_blocks picks it): beit_hidden and beit_attention return NULL for
 * any other block, never overwritten data. */
const float *beit_logits(const beit_model *m);            /* classify: [B, K]; MIM: [masked, V] (until beit_backward) */
const float *beit_attention(const beit_model *m, int layer); /* 0..depth-1: [B, H, N, N] of block `layer` */
const float *beit_hidden(const beit_model *m, int layer);    /* 0..depth: block input of `layer` (depth = final), [B, N, C] */

/* Builds a model from a checkpoint: a beit.c file (its "config" metadata gives
 * the architecture; optimizer state is ignored) or a timm / unilm / Hugging Face
 * one, whose architecture is inferred (model/convert.h, docs/checkpoints.md). */
int beit_model_open(beit_model *m, const char *path);

/* FLOPs of one forward for a batch (matmuls + attention), for benchmarks. */
double beit_forward_flops(const beit_model *m, beit_task task, int B, int masked);

#endif
