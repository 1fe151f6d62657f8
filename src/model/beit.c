/* beit.c - the BEiT encoder and heads: parameter table (timm key names),
 * initialisation, the activation arena, forward and backward. The block math
 * follows the spec section 1.5/1.6; the gradient rule of ops.h (accumulate)
 * lets the residual stream's gradient live in one buffer, dresid. */
#include "model/beit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"

/* ---------------------------------------------------------------- arena */
typedef struct {  /* what one block's forward pass leaves for its backward pass */
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *attn_out, *proj, *mid;
  float *ln2, *ln2_mean, *ln2_rstd, *fc1, *gelu, *fc2;
} block_acts;

struct beit_acts {  /* backend memory, except keep_host */
  float *patches, *emb, *relbias, *keep, *qkv_bias;
  float **resid;      /* [depth + 1]: the input of every block, then the encoder's output */
  block_acts *blk;    /* [depth] */
  int32_t *rows, *targets, *patch_rows;
  float *head_in, *head_ln, *head_mean, *head_rstd, *logits, *probs, *pix_target;
  /* gradients (training arena only) */
  float *dresid, *dln, *dqkv, *datt, *dattn_out, *dproj, *dfc1, *dgelu, *dfc2, *drelbias, *dqkv_bias;
  float *demb, *dhead_in, *dhead_ln, *dlogits;
  float *keep_host;   /* the drop-path draws before their upload to keep */
  float *block;       /* the single allocation */
  size_t bytes;
};

typedef struct { float *base; size_t used; } bump;

static float *take(bump *b, size_t nfloats) {
  float *p = b->base ? b->base + b->used : NULL;
  b->used += (nfloats + 15) & ~(size_t)15;
  return p;
}

#define BLOCK_FIELD(blk, offset) (*(float **)((char *)(blk) + (offset)))

/* Lays out every activation; with base == NULL it only counts. Forward-only
 * arenas share one set of per-block buffers across blocks (resid alternates). */
static size_t layout(beit_model *m, beit_acts *a, float *base, int B, int with_grad) {
  const beit_config *c = &m->cfg;
  int L = c->depth, N = m->tokens, Np = m->num_patches, C = c->dim, H = c->heads;
  int F = (int)(c->dim * c->mlp_ratio), Kp = c->channels * c->patch_size * c->patch_size;
  size_t BN = (size_t)B * N, headK = c->num_classes, BHNN = (size_t)B * H * N * N;
  if (c->vocab_size > (int)headK) headK = c->vocab_size;
  if (c->pixel_head && Kp > (int)headK) headK = Kp;
  size_t head_rows = (size_t)B * Np > (size_t)B ? (size_t)B * Np : (size_t)B;
  bump b = {base, 0};
  a->patches = take(&b, (size_t)B * Np * Kp);
  a->emb = take(&b, (size_t)B * Np * C);
  a->relbias = c->rel_pos == BEIT_RELPOS_NONE ? NULL
               : take(&b, (size_t)(c->rel_pos == BEIT_RELPOS_SHARED ? 1 : L) * H * N * N);
  a->keep = take(&b, (size_t)L * 2 * B);
  a->qkv_bias = take(&b, 3 * (size_t)C);
  /* A block's values: size in floats, and whether the backward pass recomputes it
   * from the block's inputs instead of keeping it (then every block shares block
   * 0's buffer). The two LayerNorm outputs, the GELU output and mid (the attention
   * branch's residual sum) are 7 of a block's 18 values per token and channel, and
   * cost one GELU, two normalisations and one residual sum. */
  const struct { size_t field, floats; int recomputed; } per_block[] = {
      {offsetof(block_acts, ln1), BN * C, 1},       {offsetof(block_acts, ln1_mean), BN, 0},
      {offsetof(block_acts, ln1_rstd), BN, 0},      {offsetof(block_acts, qkv), BN * 3 * C, 0},
      {offsetof(block_acts, att), BHNN, 0},         {offsetof(block_acts, attn_out), BN * C, 0},
      {offsetof(block_acts, proj), BN * C, 0},      {offsetof(block_acts, mid), BN * C, 1},
      {offsetof(block_acts, ln2), BN * C, 1},       {offsetof(block_acts, ln2_mean), BN, 0},
      {offsetof(block_acts, ln2_rstd), BN, 0},      {offsetof(block_acts, fc1), BN * F, 0},
      {offsetof(block_acts, gelu), BN * F, 1},      {offsetof(block_acts, fc2), BN * C, 0}};
  int nb = with_grad == BEIT_GRAD_KEEP ? L : 1;   /* distinct per-block buffers */
  for (size_t k = 0; k < sizeof per_block / sizeof *per_block; k++)
    for (int l = 0; l < L; l++)
      BLOCK_FIELD(&a->blk[l], per_block[k].field) = l < nb && (l == 0 || !per_block[k].recomputed)
                                                        ? take(&b, per_block[k].floats)
                                                        : BLOCK_FIELD(&a->blk[0], per_block[k].field);
  for (int l = 0; l <= L; l++) a->resid[l] = (with_grad || l < 2) ? take(&b, BN * C) : a->resid[l % 2];
  a->rows = (int32_t *)take(&b, head_rows);
  a->targets = (int32_t *)take(&b, head_rows);
  a->head_in = take(&b, head_rows * C);
  a->head_ln = take(&b, head_rows * C);
  a->head_mean = take(&b, head_rows);
  a->head_rstd = take(&b, head_rows);
  a->logits = take(&b, head_rows * headK);
  /* probs and dlogits: the classifier's (B x classes) and the pixel head's; the
   * MIM head computes its probabilities and their gradient in a->logits */
  size_t small_head = (size_t)B * c->num_classes;
  if (c->pixel_head && head_rows * Kp > small_head) small_head = head_rows * Kp;
  a->probs = take(&b, (size_t)B * c->num_classes);
  a->pix_target = c->pixel_head ? take(&b, head_rows * Kp) : NULL;
  a->patch_rows = c->pixel_head ? (int32_t *)take(&b, head_rows) : NULL;
  if (with_grad) {
    a->dresid = take(&b, BN * C);
    a->dln = take(&b, BN * C);
    a->dqkv = take(&b, BN * 3 * C);
    a->datt = take(&b, BHNN);
    a->dattn_out = take(&b, BN * C);
    a->dproj = take(&b, BN * C);
    a->dfc1 = take(&b, BN * F);
    a->dgelu = take(&b, BN * F);
    a->dfc2 = take(&b, BN * C);
    a->drelbias = c->rel_pos == BEIT_RELPOS_NONE ? NULL : take(&b, (size_t)H * N * N);
    a->dqkv_bias = take(&b, 3 * (size_t)C);
    a->demb = take(&b, (size_t)B * Np * C);
    a->dhead_in = take(&b, head_rows * C);
    a->dhead_ln = take(&b, head_rows * C);
    a->dlogits = take(&b, small_head);
  }
  return b.used * sizeof(float);
}

/* Allocates (alloc = 1) or frees the arena's per-block lists. Returns 0 when an
 * allocation failed. */
static int acts_lists(beit_acts *a, int depth, int alloc) {
  if (!alloc) {
    free(a->resid), free(a->blk);
    a->resid = NULL, a->blk = NULL;
    return 1;
  }
  a->resid = calloc((size_t)depth + 1, sizeof *a->resid);
  a->blk = calloc((size_t)depth, sizeof *a->blk);
  return a->resid && a->blk;
}

static void acts_free(const beit_backend *be, beit_acts *a) {
  if (!a) return;
  be->free(a->block);
  free(a->keep_host);
  acts_lists(a, 0, 0);
  free(a);
}

static void bind_tensors(beit_model *m, float *buf, beit_tensors *view);

int beit_model_reserve(beit_model *m, int max_batch, int with_grad) {
  if (!m || !m->params.data) return beit_errorf("beit_model_reserve: the model is not initialised (beit_model_init)");
  if (max_batch < 1) return beit_errorf("beit_model_reserve: max_batch %d must be at least 1", max_batch);
  if (with_grad != 0 && with_grad != BEIT_GRAD_KEEP && with_grad != BEIT_GRAD_RECOMPUTE)
    return beit_errorf("beit_model_reserve: with_grad %d is not 0, BEIT_GRAD_KEEP or BEIT_GRAD_RECOMPUTE", with_grad);
  acts_free(m->be, m->acts);
  m->acts = NULL;
  if (with_grad) {
    if (beit_params_alloc_grad(&m->params) != BEIT_OK) return BEIT_ERR;
    bind_tensors(m, m->params.grad, &m->g);
  }
  beit_acts *a = calloc(1, sizeof *a);
  if (!a) return beit_errorf("out of memory");
  a->keep_host = malloc((size_t)m->cfg.depth * 2 * max_batch * sizeof(float));
  if (!a->keep_host || !acts_lists(a, m->cfg.depth, 1)) {
    acts_free(m->be, a);
    return beit_errorf("out of memory");
  }
  size_t bytes = layout(m, a, NULL, max_batch, with_grad);
  char what[96];
  snprintf(what, sizeof what, "the activations of a batch of %d", max_batch);
  if (beit_memory_check((double)bytes, what) != BEIT_OK) {
    acts_free(m->be, a);
    return BEIT_ERR;
  }
  a->block = m->be->alloc(bytes, "activations");
  if (!a->block) {
    acts_free(m->be, a);
    return beit_error_context("batch %d needs %.0f MiB of activations", max_batch, bytes / 1048576.0);
  }
  layout(m, a, a->block, max_batch, with_grad);
  a->bytes = bytes;
  m->acts = a;
  m->max_batch = max_batch;
  m->with_grad = with_grad;
  return BEIT_OK;
}

size_t beit_model_arena_bytes(const beit_model *m) { return m->acts ? m->acts->bytes : 0; }

/* The one list of the model's tensors, walked twice: building, it adds each to the
 * parameter table (name, shape, decay flag, layer id); binding, it points the
 * matching field of a beit_tensors view into a buffer of the table's layout. */
typedef struct {
  beit_params *p;
  beit_tensors *view;  /* NULL: building the table */
  float *buf;
  int next;            /* binding: the table entry the walk is at */
} table_walk;

static void walk_table(beit_model *m, table_walk *w);

static void set_geometry(beit_model *m, const beit_config *cfg) {
  m->cfg = *cfg;
  m->grid = cfg->image_size / cfg->patch_size;
  m->num_patches = m->grid * m->grid;
  m->tokens = m->num_patches + 1;
}

static void build_table(beit_model *m) {
  table_walk w = {&m->params, NULL, NULL, 0};
  walk_table(m, &w);
}

/* Weights + gradients + relative position index, in bytes. */
static double table_bytes(double params, int tokens) {
  return params * 2 * sizeof(float) + (double)tokens * tokens * sizeof(int32_t);
}

double beit_config_param_count(const beit_config *cfg) {
  if (beit_config_validate(cfg) != BEIT_OK) return -1;
  beit_model m;
  memset(&m, 0, sizeof m);
  set_geometry(&m, cfg);
  beit_params_init(&m.params);
  build_table(&m);
  double n = m.params.failed ? beit_errorf("out of memory building the parameter table") : (double)m.params.total;
  beit_params_free(&m.params);
  return n;
}

double beit_model_memory_bytes(const beit_config *cfg, int batch, int with_grad, int with_optimizer) {
  double n = beit_config_param_count(cfg);
  if (n < 0) return -1;
  beit_model m;
  memset(&m, 0, sizeof m);
  set_geometry(&m, cfg);
  double bytes = table_bytes(n, m.tokens) + (with_optimizer ? n * 2 * sizeof(float) : 0);
  beit_acts a;
  memset(&a, 0, sizeof a);
  int ok = acts_lists(&a, cfg->depth, 1);
  if (ok) bytes += (double)layout(&m, &a, NULL, batch, with_grad);
  acts_lists(&a, 0, 0);
  return ok ? bytes : beit_errorf("out of memory estimating the model's memory");
}

/* ---------------------------------------------------------------- parameters */
static void add(table_walk *w, float **field, const char *name, int layer_id, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3) {
  if (w->view) {
    const beit_tensor_info *t = &w->p->t[w->next++];
    BEIT_CHECK(!strcmp(t->name, name));
    *field = w->buf + t->offset;
    return;
  }
  int64_t shape[4] = {d0, d1, d2, d3};
  /* BEiT's no-decay set (spec 6): 1-D tensors, biases, cls_token, pos_embed */
  size_t len = strlen(name);
  int decay = !(ndim == 1 || (len > 5 && !strcmp(name + len - 5, ".bias")) || !strcmp(name, "cls_token") ||
                !strcmp(name, "pos_embed"));
  beit_params_add(w->p, name, ndim, shape, layer_id, decay);
}

static void walk_table(beit_model *m, table_walk *w) {
  const beit_config *c = &m->cfg;
  int C = c->dim, L = c->depth, F = (int)(c->dim * c->mlp_ratio);
  int R = relpos_table_rows(m->grid, m->grid);
  char n[BEIT_NAME_MAX];
#define TOP(field, ...) add(w, w->view ? &w->view->field : NULL, __VA_ARGS__)
  TOP(cls_token, "cls_token", 0, 3, 1, 1, C, 0);
  if (c->abs_pos_emb) TOP(pos_embed, "pos_embed", 0, 3, 1, m->tokens, C, 0);
  if (c->vocab_size > 0 || c->pixel_head) TOP(mask_token, "mask_token", 0, 3, 1, 1, C, 0);
  TOP(patch_w, "patch_embed.proj.weight", 0, 4, C, c->channels, c->patch_size, c->patch_size);
  TOP(patch_b, "patch_embed.proj.bias", 0, 1, C, 0, 0, 0);
  if (c->rel_pos == BEIT_RELPOS_SHARED)
    TOP(rel_table, "rel_pos_bias.relative_position_bias_table", L + 1, 2, R, c->heads, 0, 0);
  for (int l = 0; l < L; l++) {
#define BLK(field, suffix, ...)                   \
  (snprintf(n, sizeof n, "blocks.%d." suffix, l), \
   add(w, w->view ? &w->view->blocks[l].field : NULL, n, l + 1, __VA_ARGS__))
    if (c->layer_scale_init > 0) {
      BLK(gamma_1, "gamma_1", 1, C, 0, 0, 0);
      BLK(gamma_2, "gamma_2", 1, C, 0, 0, 0);
    }
    BLK(norm1_w, "norm1.weight", 1, C, 0, 0, 0);
    BLK(norm1_b, "norm1.bias", 1, C, 0, 0, 0);
    BLK(q_bias, "attn.q_bias", 1, C, 0, 0, 0);
    BLK(v_bias, "attn.v_bias", 1, C, 0, 0, 0);
    if (c->rel_pos == BEIT_RELPOS_PER_BLOCK) BLK(rel_table, "attn.relative_position_bias_table", 2, R, c->heads, 0, 0);
    BLK(qkv_w, "attn.qkv.weight", 2, 3 * C, C, 0, 0);
    BLK(proj_w, "attn.proj.weight", 2, C, C, 0, 0);
    BLK(proj_b, "attn.proj.bias", 1, C, 0, 0, 0);
    BLK(norm2_w, "norm2.weight", 1, C, 0, 0, 0);
    BLK(norm2_b, "norm2.bias", 1, C, 0, 0, 0);
    BLK(fc1_w, "mlp.fc1.weight", 2, F, C, 0, 0);
    BLK(fc1_b, "mlp.fc1.bias", 1, F, 0, 0, 0);
    BLK(fc2_w, "mlp.fc2.weight", 2, C, F, 0, 0);
    BLK(fc2_b, "mlp.fc2.bias", 1, C, 0, 0, 0);
#undef BLK
  }
  if (c->vocab_size > 0 || c->pixel_head || (c->num_classes > 0 && !c->use_mean_pooling)) {
    TOP(norm_w, "norm.weight", L + 1, 1, C, 0, 0, 0);
    TOP(norm_b, "norm.bias", L + 1, 1, C, 0, 0, 0);
  }
  if (c->vocab_size > 0) {
    TOP(lm_head_w, "lm_head.weight", L + 1, 2, c->vocab_size, C, 0, 0);
    TOP(lm_head_b, "lm_head.bias", L + 1, 1, c->vocab_size, 0, 0, 0);
  }
  if (c->pixel_head) {
    int Kp = c->channels * c->patch_size * c->patch_size;
    TOP(pixel_w, "pixel_head.weight", L + 1, 2, Kp, C, 0, 0);
    TOP(pixel_b, "pixel_head.bias", L + 1, 1, Kp, 0, 0, 0);
  }
  if (c->num_classes > 0) {
    if (c->use_mean_pooling) {
      TOP(fc_norm_w, "fc_norm.weight", L + 1, 1, C, 0, 0, 0);
      TOP(fc_norm_b, "fc_norm.bias", L + 1, 1, C, 0, 0, 0);
    }
    TOP(head_w, "head.weight", L + 1, 2, c->num_classes, C, 0, 0);
    TOP(head_b, "head.bias", L + 1, 1, c->num_classes, 0, 0, 0);
  }
#undef TOP
}

/* Points every field of `view` into buf (p->data or p->grad); absent ones NULL. */
static void bind_tensors(beit_model *m, float *buf, beit_tensors *view) {
  beit_block_tensors *blocks = view->blocks;
  memset(view, 0, sizeof *view);
  memset(blocks, 0, (size_t)m->cfg.depth * sizeof *blocks);
  view->blocks = blocks;
  table_walk w = {&m->params, view, buf, 0};
  walk_table(m, &w);
  BEIT_CHECK(w.next == m->params.n);
}

int beit_model_init(beit_model *m, const beit_config *cfg) {
  if (!m || !cfg) return beit_errorf("beit_model_init: the %s is NULL", m ? "config" : "model");
  memset(m, 0, sizeof *m);
  if (beit_config_validate(cfg) != BEIT_OK) return BEIT_ERR;
  m->be = beit_backend_default();
  set_geometry(m, cfg);
  beit_params_init(&m->params);
  build_table(m);
  char what[96];
  snprintf(what, sizeof what, "a model of %.1f M parameters (weights and gradients)", m->params.total / 1e6);
  if (beit_memory_check(table_bytes((double)m->params.total, m->tokens), what) != BEIT_OK) {
    beit_params_free(&m->params);
    return BEIT_ERR;
  }
  m->w.blocks = calloc((size_t)cfg->depth, sizeof *m->w.blocks);
  m->g.blocks = calloc((size_t)cfg->depth, sizeof *m->g.blocks);
  m->relpos_index = m->be->alloc((size_t)m->tokens * m->tokens * sizeof(int32_t), "relative position index");
  if (!m->w.blocks || !m->g.blocks || !m->relpos_index ||
      beit_params_alloc_data(&m->params) != BEIT_OK) {  /* gradients: beit_model_reserve */
    if (!m->w.blocks || !m->g.blocks) beit_errorf("out of memory");
    beit_model_free(m);
    return BEIT_ERR;
  }
  bind_tensors(m, m->params.data, &m->w);
  m->be->relpos_build_index(m->relpos_index, m->grid, m->grid);
  return BEIT_OK;
}

void beit_model_free(beit_model *m) {
  const beit_backend *be = m->be ? m->be : beit_backend_default();
  acts_free(be, m->acts);
  be->free(m->relpos_index);
  free(m->w.blocks);
  free(m->g.blocks);
  beit_params_free(&m->params);
  memset(m, 0, sizeof *m);
}

/* The weights are host memory, initialised here before any backend sees them. */
static void scale_host(float *x, size_t n, float s) {
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

void beit_model_init_weights(beit_model *m, uint64_t seed, float head_init_scale) {
  beit_params *p = &m->params;
  for (int i = 0; i < p->n; i++) {
    const beit_tensor_info *t = &p->t[i];
    float *x = p->data + t->offset;
    beit_rng r;
    beit_rng_seed(&r, seed, BEIT_RNG_INIT, (uint64_t)i, 0);
    float fill = 0;
    int random = 0;
    if (ends_with(t->name, "gamma_1") || ends_with(t->name, "gamma_2")) fill = m->cfg.layer_scale_init;
    else if (strstr(t->name, "norm") && ends_with(t->name, ".weight")) fill = 1;
    else if (ends_with(t->name, ".weight") || !strcmp(t->name, "cls_token") || !strcmp(t->name, "mask_token") ||
             !strcmp(t->name, "pos_embed"))
      random = 1;
    for (size_t k = 0; k < t->numel; k++) x[k] = random ? beit_rng_trunc_normal(&r, 0.02f, -0.02f, 0.02f) : fill;
    /* residual-branch outputs shrink with depth: 1/sqrt(2*layer) */
    if (ends_with(t->name, "attn.proj.weight") || ends_with(t->name, "mlp.fc2.weight"))
      scale_host(x, t->numel, 1.0f / sqrtf(2.0f * t->layer_id));
    if (!strncmp(t->name, "head.", 5)) scale_host(x, t->numel, head_init_scale);
  }
}

/* timm's ViT init (beit.h); tensors are named as beit_model_init_weights reads them. */
static void init_timm(beit_model *m, uint64_t seed) {
  beit_params *p = &m->params;
  const beit_tensor_info *conv = &p->t[beit_params_find(p, "patch_embed.proj.weight")];
  float bound = 1.0f / sqrtf((float)(conv->numel / conv->shape[0]));  /* kaiming_uniform_(a=sqrt(5)): 1/sqrt(fan_in) */
  for (int i = 0; i < p->n; i++) {
    const beit_tensor_info *t = &p->t[i];
    float *x = p->data + t->offset;
    beit_rng r;
    beit_rng_seed(&r, seed, BEIT_RNG_INIT, (uint64_t)i, 1);
    int patch = !strncmp(t->name, "patch_embed.proj.", 17), norm = strstr(t->name, "norm") != NULL;
    for (size_t k = 0; k < t->numel; k++) {
      if (patch) x[k] = (float)beit_rng_uniform_range(&r, -bound, bound);
      else if (!strcmp(t->name, "cls_token")) x[k] = (float)(1e-6 * beit_rng_normal(&r));
      else if (ends_with(t->name, "gamma_1") || ends_with(t->name, "gamma_2")) x[k] = m->cfg.layer_scale_init;
      else if (norm) x[k] = ends_with(t->name, ".weight") ? 1 : 0;
      else if (ends_with(t->name, ".weight") || !strcmp(t->name, "mask_token") || !strcmp(t->name, "pos_embed"))
        x[k] = beit_rng_trunc_normal(&r, 0.02f, -2, 2);
      else x[k] = 0;
    }
  }
}

int beit_model_init_named(beit_model *m, const char *scheme, uint64_t seed, float head_init_scale) {
  int timm = scheme && !strcmp(scheme, "timm");
  if (!timm && scheme && strcmp(scheme, "beit"))
    return beit_errorf("--weight-init '%s': expected beit (unilm's trunc-normal 0.02 cut at 1 sigma) or timm (timm's "
                       "ViT from scratch: normal 0.02)", scheme);
  if (!m) return BEIT_OK;
  if (timm) init_timm(m, seed);
  else beit_model_init_weights(m, seed, head_init_scale);
  return BEIT_OK;
}

/* ---------------------------------------------------------------- forward */
/* Per-sample keep scale for the two residual branches of every block. The
 * draws are those of the whole global batch (2 * B * shards per block, branch
 * major); a shard keeps the ones of its positions. */
static void sample_drop_path(beit_model *m, const beit_input *bt, int train, uint64_t seed, int64_t step) {
  const beit_config *c = &m->cfg;
  int B = bt->B, S = bt->shards > 1 ? bt->shards : 1, s = bt->shards > 1 ? bt->shard : 0, G = B * S;
  for (int l = 0; l < c->depth; l++) {
    float rate = c->depth > 1 ? c->drop_path * l / (c->depth - 1) : 0;
    beit_rng r;
    beit_rng_seed(&r, seed, BEIT_RNG_DROPPATH, (uint64_t)step, (uint64_t)l);
    float *k = m->acts->keep_host + (size_t)l * 2 * B;
    for (int i = 0; i < 2 * G; i++) {
      int branch = i / G, pos = i % G;
      float keep = (!train || rate <= 0) ? 1.0f : (beit_rng_uniform(&r) < 1.0 - rate ? 1.0f / (1.0f - rate) : 0.0f);
      if (pos % S == s) k[branch * B + pos / S] = keep;
    }
  }
  m->be->upload(m->acts->keep, m->acts->keep_host, (size_t)c->depth * 2 * B * sizeof(float));
}

static const float *keep_of(const beit_model *m, int l, int branch, int B) {
  const beit_config *c = &m->cfg;
  float rate = c->depth > 1 ? c->drop_path * l / (c->depth - 1) : 0;
  return rate > 0 ? m->acts->keep + (size_t)l * 2 * B + (size_t)branch * B : NULL;
}

static void block_forward(beit_model *m, int l, int B, const float *bias, const float *keep_a,
                          const float *keep_m) {
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  beit_acts *a = m->acts;
  block_acts *k = &a->blk[l];
  const beit_block_tensors *w = &m->w.blocks[l];
  int N = m->tokens, C = c->dim, F = (int)(c->dim * c->mlp_ratio), BN = B * N;
  be->layernorm_forward(k->ln1, k->ln1_mean, k->ln1_rstd, a->resid[l], w->norm1_w, w->norm1_b, BN, C, c->ln_eps);
  be->qkv_bias_forward(a->qkv_bias, w->q_bias, w->v_bias, C);
  be->linear_forward(k->qkv, k->ln1, w->qkv_w, a->qkv_bias, BN, C, 3 * C);
  be->attention_forward(k->attn_out, k->att, k->qkv, bias, B, N, C, c->heads);
  be->linear_forward(k->proj, k->attn_out, w->proj_w, w->proj_b, BN, C, C);
  be->residual_forward(k->mid, a->resid[l], k->proj, w->gamma_1, keep_a, B, N, C);
  be->layernorm_forward(k->ln2, k->ln2_mean, k->ln2_rstd, k->mid, w->norm2_w, w->norm2_b, BN, C, c->ln_eps);
  be->linear_forward(k->fc1, k->ln2, w->fc1_w, w->fc1_b, BN, C, F);
  be->gelu_forward(k->gelu, k->fc1, (size_t)BN * F);
  be->linear_forward(k->fc2, k->gelu, w->fc2_w, w->fc2_b, BN, F, C);
  be->residual_forward(a->resid[l + 1], k->mid, k->fc2, w->gamma_2, keep_m, B, N, C);
}

static float *relbias_of(beit_model *m, int l) {
  if (m->cfg.rel_pos == BEIT_RELPOS_NONE) return NULL;
  size_t HNN = (size_t)m->cfg.heads * m->tokens * m->tokens;
  return m->acts->relbias + (m->cfg.rel_pos == BEIT_RELPOS_SHARED ? 0 : (size_t)l * HNN);
}

/* Embeddings, then blocks 0 .. blocks-1 (all of them but for beit_encode_blocks). */
static void encoder_forward(beit_model *m, const beit_input *bt, int use_mask, int train, uint64_t seed,
                            int64_t step, int blocks) {
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  const beit_tensors *w = &m->w;
  beit_acts *a = m->acts;
  int B = bt->B, Np = m->num_patches, C = c->dim, Kp = c->channels * c->patch_size * c->patch_size;
  be->patchify(a->patches, bt->images, B, c->channels, c->image_size, c->patch_size);
  be->linear_forward(a->emb, a->patches, w->patch_w, w->patch_b, B * Np, Kp, C);
  be->embed_forward(a->resid[0], a->emb, use_mask ? bt->mask : NULL, w->cls_token, use_mask ? w->mask_token : NULL, B,
                    m->tokens, C);
  /* added after the mask-token replacement, as in the official code (spec 1.3) */
  if (c->abs_pos_emb) be->pos_embed_forward(a->resid[0], w->pos_embed, B, m->tokens, C);
  if (c->rel_pos == BEIT_RELPOS_SHARED)
    be->relpos_bias_forward(a->relbias, w->rel_table, m->relpos_index, m->tokens, c->heads);
  sample_drop_path(m, bt, train, seed, step);
  m->last_blocks = blocks;
  for (int l = 0; l < blocks; l++) {
    if (c->rel_pos == BEIT_RELPOS_PER_BLOCK)
      be->relpos_bias_forward(relbias_of(m, l), w->blocks[l].rel_table, m->relpos_index, m->tokens, c->heads);
    block_forward(m, l, B, relbias_of(m, l), keep_of(m, l, 0, B), keep_of(m, l, 1, B));
  }
}

/* A head's tensors in a view (weights or gradients) and its width. */
typedef struct { float *norm_w, *norm_b, *w, *b; int K; } head_tensors;

static head_tensors head_of(const beit_model *m, const beit_tensors *t, beit_task task) {
  const beit_config *c = &m->cfg;
  int fc = task == BEIT_TASK_CLASSIFY && c->use_mean_pooling;
  head_tensors h = {fc ? t->fc_norm_w : t->norm_w, fc ? t->fc_norm_b : t->norm_b, NULL, NULL, 0};
  if (task == BEIT_TASK_MIM) h.w = t->lm_head_w, h.b = t->lm_head_b, h.K = c->vocab_size;
  else if (task == BEIT_TASK_PIXEL)
    h.w = t->pixel_w, h.b = t->pixel_b, h.K = c->channels * c->patch_size * c->patch_size;
  else h.w = t->head_w, h.b = t->head_b, h.K = c->num_classes;
  return h;
}

static double head_masked_forward(beit_model *m, beit_task task, const beit_input *bt, beit_stats *st) {
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  beit_acts *a = m->acts;
  head_tensors h = head_of(m, &m->w, task);
  int C = c->dim, K = h.K, pixel = task == BEIT_TASK_PIXEL;
  /* the masked patch tokens' rows, with the visual token or the patch of each */
  int Mt = be->masked_rows(a->rows, a->targets, pixel ? a->patch_rows : NULL, bt->mask, bt->tokens, bt->B,
                           m->num_patches);
  m->last_masked = Mt;
  be->gather_rows(a->head_in, a->resid[c->depth], a->rows, Mt, C);
  be->layernorm_forward(a->head_ln, a->head_mean, a->head_rstd, a->head_in, h.norm_w, h.norm_b, Mt, C, c->ln_eps);
  be->linear_forward(a->logits, a->head_ln, h.w, h.b, Mt, C, K);
  if (pixel) {  /* target: the normalised pixels of each masked patch */
    be->gather_rows(a->pix_target, a->patches, a->patch_rows, Mt, K);
    if (st) st->correct = 0, st->count = Mt;
    return be->mse_forward(a->logits, a->pix_target, (size_t)Mt * K);
  }
  /* the logits stay (beit_logits); the backward pass turns them into the gradient in place */
  double loss = be->softmax_xent_loss(a->logits, a->targets, Mt, K);
  if (st) st->correct = be->top1_correct(a->logits, a->targets, Mt, K), st->count = Mt;
  return loss;
}

static double head_classify_forward(beit_model *m, const beit_input *bt, beit_stats *st) {
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  beit_acts *a = m->acts;
  head_tensors h = head_of(m, &m->w, BEIT_TASK_CLASSIFY);
  int B = bt->B, C = c->dim, K = h.K;
  if (c->use_mean_pooling) be->mean_pool_forward(a->head_in, a->resid[c->depth], B, m->tokens, C, 1);
  else {
    be->token_rows(a->rows, B, m->tokens, 0);  /* the CLS tokens */
    be->gather_rows(a->head_in, a->resid[c->depth], a->rows, B, C);
  }
  be->layernorm_forward(a->head_ln, a->head_mean, a->head_rstd, a->head_in, h.norm_w, h.norm_b, B, C, c->ln_eps);
  be->linear_forward(a->logits, a->head_ln, h.w, h.b, B, C, K);
  double loss = 0;
  if (bt->soft_labels) loss = be->soft_xent_forward(a->probs, a->logits, bt->soft_labels, B, K);
  else if (bt->labels) loss = be->softmax_xent_forward(a->probs, a->logits, bt->labels, B, K);
  if (st) {
    st->count = bt->labels ? B : 0;
    st->correct = bt->labels ? be->top1_correct(a->logits, bt->labels, B, K) : 0;
  }
  return loss;
}

/* Misuse of the API (a model without an arena, a batch it was not reserved for,
 * a task its heads cannot do, missing or out-of-range inputs) is an error with
 * a message, not an abort: these come from the caller, not from beit.c. */
static int check_batch(const beit_model *m, const float *images, int B, const char *fn) {
  if (!m) return beit_errorf("%s: the model is NULL", fn);
  if (!m->acts) return beit_errorf("%s: the model has no activation arena (call beit_model_reserve first)", fn);
  if (!images) return beit_errorf("%s: the images are NULL", fn);
  if (B < 1 || B > m->max_batch)
    return beit_errorf("%s: a batch of %d images; the model is reserved for 1..%d", fn, B, m->max_batch);
  return BEIT_OK;
}

static const char *task_name(beit_task task) {
  return task == BEIT_TASK_MIM ? "masked image modeling" : task == BEIT_TASK_PIXEL ? "pixel regression"
                                                                                    : "classification";
}

/* Every id of ids[0..n) (only where mask is set, when mask != NULL) lies in 0..K-1. */
static int check_ids(const int32_t *ids, const uint8_t *mask, size_t n, int K, const char *what) {
  for (size_t i = 0; i < n; i++)
    if ((!mask || mask[i]) && (ids[i] < 0 || ids[i] >= K))
      return beit_errorf("beit_forward: %s %d at %zu is outside 0..%d", what, ids[i], i, K - 1);
  return BEIT_OK;
}

static int check_task(const beit_model *m, beit_task task, const beit_input *bt) {
  const beit_config *c = &m->cfg;
  size_t cells = (size_t)bt->B * m->num_patches;
  int has_head = task == BEIT_TASK_MIM ? c->vocab_size > 0 : task == BEIT_TASK_PIXEL ? c->pixel_head
               : task == BEIT_TASK_CLASSIFY ? c->num_classes > 0 : -1;
  if (has_head < 0) return beit_errorf("beit_forward: unknown task %d", (int)task);
  const char *head = task == BEIT_TASK_MIM ? "an lm_head" : task == BEIT_TASK_PIXEL ? "a pixel_head" : "a classifier head";
  if (!has_head)
    return beit_errorf("beit_forward: %s needs %s, and this model has none (vocab_size %d, pixel_head %d, "
                       "num_classes %d)%s", task_name(task), head, c->vocab_size, c->pixel_head, c->num_classes,
                       task == BEIT_TASK_CLASSIFY ? "; fine-tune a pretraining checkpoint first, or use beit_encode" : "");
  if (bt->shards > 1 && (bt->shard < 0 || bt->shard >= bt->shards))
    return beit_errorf("beit_forward: shard %d is outside 0..%d", bt->shard, bt->shards - 1);
  if (task == BEIT_TASK_CLASSIFY)
    return bt->labels ? check_ids(bt->labels, NULL, (size_t)bt->B, c->num_classes, "label") : BEIT_OK;
  if (!bt->mask) return beit_errorf("beit_forward: %s needs a mask (beit_input.mask is NULL)", task_name(task));
  if (task == BEIT_TASK_PIXEL) return BEIT_OK;
  if (!bt->tokens)
    return beit_errorf("beit_forward: masked image modeling needs the visual tokens (beit_input.tokens is NULL)");
  return check_ids(bt->tokens, bt->mask, cells, c->vocab_size, "visual token");
}

int beit_forward(beit_model *m, beit_task task, const beit_input *bt, int train, uint64_t seed,
                 int64_t step, beit_stats *st) {
  if (!bt) return beit_errorf("beit_forward: the batch is NULL");
  if (check_batch(m, bt->images, bt->B, "beit_forward") != BEIT_OK || check_task(m, task, bt) != BEIT_OK)
    return BEIT_ERR;
  m->task = task;
  m->last_B = bt->B;
  encoder_forward(m, bt, task != BEIT_TASK_CLASSIFY, train, seed, step, m->cfg.depth);
  beit_stats local;
  if (!st) st = &local;
  memset(st, 0, sizeof *st);
  st->loss = task == BEIT_TASK_CLASSIFY ? head_classify_forward(m, bt, st) : head_masked_forward(m, task, bt, st);
  return BEIT_OK;
}

int beit_encode(beit_model *m, const float *images, int B) {
  if (check_batch(m, images, B, "beit_encode") != BEIT_OK) return BEIT_ERR;
  beit_input in = {.B = B, .images = images};
  encoder_forward(m, &in, 0, 0, 0, 0, m->cfg.depth);
  m->last_B = 0;  /* the head's values are gone: nothing for beit_backward to replay */
  return BEIT_OK;
}

int beit_encode_blocks(beit_model *m, const float *images, int B, int blocks) {
  if (check_batch(m, images, B, "beit_encode_blocks") != BEIT_OK) return BEIT_ERR;
  if (blocks < 0 || blocks > m->cfg.depth) return beit_errorf("beit_encode_blocks: block %d: the model has blocks 0 to %d", blocks, m->cfg.depth);
  beit_input in = {.B = B, .images = images};
  encoder_forward(m, &in, 0, 0, 0, 0, blocks);
  m->last_B = 0;
  return BEIT_OK;
}

/* ---------------------------------------------------------------- backward */
/* Gradient buffers are zeroed before each backward kernel accumulates into them. */
static void head_backward(beit_model *m, const beit_input *bt) {
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  beit_acts *a = m->acts;
  head_tensors h = head_of(m, &m->w, m->task), g = head_of(m, &m->g, m->task);
  int B = bt->B, C = c->dim, N = m->tokens, K = h.K;
  int rows = m->task == BEIT_TASK_CLASSIFY ? B : m->last_masked;
  if (m->task == BEIT_TASK_MIM) {
    be->softmax_xent_forward(a->logits, a->logits, a->targets, rows, K);      /* in place: probabilities, */
    be->softmax_xent_backward(a->logits, a->logits, a->targets, rows, K, 1.0f);  /* then their gradient */
  } else if (m->task == BEIT_TASK_PIXEL) {
    be->zero(a->dlogits, (size_t)rows * K);
    be->mse_backward(a->dlogits, a->logits, a->pix_target, (size_t)rows * K, 1.0f);
  } else {
    be->zero(a->dlogits, (size_t)rows * K);
    if (bt->soft_labels) be->soft_xent_backward(a->dlogits, a->probs, bt->soft_labels, rows, K, 1.0f);
    else be->softmax_xent_backward(a->dlogits, a->probs, bt->labels, rows, K, 1.0f);
  }
  be->linear_backward(a->dhead_ln, g.w, g.b, m->task == BEIT_TASK_MIM ? a->logits : a->dlogits, a->head_ln, h.w, rows,
                      C, K);
  be->zero(a->dhead_in, (size_t)rows * C);
  be->layernorm_backward(a->dhead_in, g.norm_w, g.norm_b, a->dhead_ln, a->head_in, h.norm_w, a->head_mean,
                         a->head_rstd, rows, C);
  be->zero(a->dresid, (size_t)B * N * C);
  if (m->task == BEIT_TASK_CLASSIFY && c->use_mean_pooling) be->mean_pool_backward(a->dresid, a->dhead_in, B, N, C, 1);
  else be->scatter_add_rows(a->dresid, a->dhead_in, a->rows, rows, C);
}

/* fresh: block_forward has just run for this block (--recompute), so the values the
 * backward pass otherwise recomputes (see layout) are already in place. */
static void block_backward(beit_model *m, int l, int B, float *drelbias, int fresh) {
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  beit_acts *a = m->acts;
  block_acts *k = &a->blk[l];
  const beit_block_tensors *w = &m->w.blocks[l], *g = &m->g.blocks[l];
  int N = m->tokens, C = c->dim, F = (int)(c->dim * c->mlp_ratio), BN = B * N;
  const float *keep_a = keep_of(m, l, 0, B), *keep_m = keep_of(m, l, 1, B);
  /* MLP branch: dresid is d(resid[l+1]) and, through the identity path, d(mid) */
  /* the forward values not kept (see layout): the same calls as block_forward's, so the same bits */
  if (!fresh) {
    be->residual_forward(k->mid, a->resid[l], k->proj, w->gamma_1, keep_a, B, N, C);
    be->layernorm_forward(k->ln2, k->ln2_mean, k->ln2_rstd, k->mid, w->norm2_w, w->norm2_b, BN, C, c->ln_eps);
  }
  be->gelu_forward_deriv(k->gelu, a->dfc1, k->fc1, (size_t)BN * F);  /* dfc1 holds gelu'(fc1) until ... */
  be->zero(a->dfc2, (size_t)BN * C);
  be->residual_backward(NULL, a->dfc2, g->gamma_2, a->dresid, k->fc2, w->gamma_2, keep_m, B, N, C);
  be->linear_backward(a->dgelu, g->fc2_w, g->fc2_b, a->dfc2, k->gelu, w->fc2_w, BN, F, C);
  be->gelu_backward_deriv(a->dfc1, a->dgelu, a->dfc1, (size_t)BN * F);  /* ... here, in place: dgelu * gelu' */
  be->linear_backward(a->dln, g->fc1_w, g->fc1_b, a->dfc1, k->ln2, w->fc1_w, BN, C, F);
  be->layernorm_backward(a->dresid, g->norm2_w, g->norm2_b, a->dln, k->mid, w->norm2_w, k->ln2_mean, k->ln2_rstd, BN,
                         C);
  /* attention branch: dresid is now d(mid) and becomes d(resid[l]) */
  be->zero(a->dproj, (size_t)BN * C);
  be->residual_backward(NULL, a->dproj, g->gamma_1, a->dresid, k->proj, w->gamma_1, keep_a, B, N, C);
  be->linear_backward(a->dattn_out, g->proj_w, g->proj_b, a->dproj, k->attn_out, w->proj_w, BN, C, C);
  be->attention_backward(a->dqkv, drelbias, a->datt, a->dattn_out, k->qkv, k->att, B, N, C, c->heads);
  be->zero(a->dqkv_bias, 3 * (size_t)C);
  if (!fresh)
    be->layernorm_forward(k->ln1, k->ln1_mean, k->ln1_rstd, a->resid[l], w->norm1_w, w->norm1_b, BN, C, c->ln_eps);
  be->linear_backward(a->dln, g->qkv_w, a->dqkv_bias, a->dqkv, k->ln1, w->qkv_w, BN, C, 3 * C);
  be->qkv_bias_backward(g->q_bias, g->v_bias, a->dqkv_bias, C);
  be->layernorm_backward(a->dresid, g->norm1_w, g->norm1_b, a->dln, a->resid[l], w->norm1_w, k->ln1_mean, k->ln1_rstd,
                         BN, C);
}

int beit_backward(beit_model *m, const beit_input *bt) {
  if (!m || !bt) return beit_errorf("beit_backward: the %s is NULL", m ? "batch" : "model");
  if (!m->acts || !m->with_grad)
    return beit_errorf("beit_backward: the model is reserved without gradients (beit_model_reserve with_grad 0)");
  if (!m->last_B) return beit_errorf("beit_backward: no beit_forward to differentiate (one beit_backward per beit_forward)");
  if (bt->B != m->last_B)
    return beit_errorf("beit_backward: a batch of %d images, but the last beit_forward had %d", bt->B, m->last_B);
  if (m->task == BEIT_TASK_CLASSIFY ? !bt->labels && !bt->soft_labels : !bt->mask)
    return beit_errorf("beit_backward: the batch has no %s", m->task == BEIT_TASK_CLASSIFY ? "labels" : "mask");
  const beit_config *c = &m->cfg;
  const beit_backend *be = m->be;
  const beit_tensors *w = &m->w, *g = &m->g;
  beit_acts *a = m->acts;
  int B = bt->B, N = m->tokens, C = c->dim, H = c->heads, Np = m->num_patches;
  int Kp = c->channels * c->patch_size * c->patch_size;
  size_t HNN = (size_t)H * N * N;
  head_backward(m, bt);
  if (c->rel_pos == BEIT_RELPOS_SHARED) be->zero(a->drelbias, HNN);
  for (int l = c->depth - 1; l >= 0; l--) {
    if (c->rel_pos == BEIT_RELPOS_PER_BLOCK) be->zero(a->drelbias, HNN);
    int recompute = m->with_grad == BEIT_GRAD_RECOMPUTE;
    if (recompute)  /* the block's activations, from its kept input */
      block_forward(m, l, B, relbias_of(m, l), keep_of(m, l, 0, B), keep_of(m, l, 1, B));
    block_backward(m, l, B, a->drelbias, recompute);
    if (c->rel_pos == BEIT_RELPOS_PER_BLOCK)
      be->relpos_bias_backward(g->blocks[l].rel_table, a->drelbias, m->relpos_index, N, H);
  }
  if (c->abs_pos_emb) be->pos_embed_backward(g->pos_embed, a->dresid, B, N, C);
  if (c->rel_pos == BEIT_RELPOS_SHARED) be->relpos_bias_backward(g->rel_table, a->drelbias, m->relpos_index, N, H);
  int masked = m->task != BEIT_TASK_CLASSIFY;
  be->zero(a->demb, (size_t)B * Np * C);
  be->embed_backward(a->demb, g->cls_token, masked ? g->mask_token : NULL, a->dresid, masked ? bt->mask : NULL, B, N,
                     C);
  be->linear_backward(NULL, g->patch_w, g->patch_b, a->demb, a->patches, w->patch_w, B * Np, Kp, C);
  m->last_B = 0;  /* the MIM head turned its logits into their gradient in place */
  return BEIT_OK;
}

/* ---------------------------------------------------------------- views */
const float *beit_logits(const beit_model *m) { return m && m->acts ? m->acts->logits : NULL; }
/* A forward-only arena shares one set of buffers across blocks (the hidden
 * states alternate between two): only what the last block run wrote is there. */
const float *beit_attention(const beit_model *m, int layer) {
  if (!m || !m->acts || layer < 0 || layer >= m->cfg.depth) return NULL;
  if (m->with_grad != BEIT_GRAD_KEEP && layer != m->last_blocks - 1) return NULL;
  return m->acts->blk[layer].att;
}
const float *beit_hidden(const beit_model *m, int layer) {
  if (!m || !m->acts || layer < 0 || layer > m->cfg.depth) return NULL;
  if (!m->with_grad && layer != m->last_blocks) return NULL;
  return m->acts->resid[layer];
}

double beit_forward_flops(const beit_model *m, beit_task task, int B, int masked) {
  const beit_config *c = &m->cfg;
  double N = m->tokens, C = c->dim, F = c->dim * c->mlp_ratio, Kp = c->channels * c->patch_size * c->patch_size;
  double per_block = 2 * N * C * 3 * C + 2 * N * C * C + 2 * 2 * N * C * F + 2 * 2 * N * N * C;
  double head = task == BEIT_TASK_MIM ? 2.0 * masked / B * C * c->vocab_size
              : task == BEIT_TASK_PIXEL ? 2.0 * masked / B * C * Kp : 2.0 * C * c->num_classes;
  return B * (2 * (N - 1) * Kp * C + c->depth * per_block + head);
}
