/* beit.c - the BEiT encoder and heads: parameter table (timm key names),
 * initialisation, the activation arena, forward and backward. The block math
 * follows the spec section 1.5/1.6; the gradient rule of ops.h (accumulate)
 * lets the residual stream's gradient live in one buffer, dresid. */
#include "model/beit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
#include <string.h>

#include "core/core.h"
#include "ops/ops.h"

/* ---------------------------------------------------------------- arena */
struct beit_acts {
  float *patches, *emb, *relbias, *keep, *qkv_bias;
  float **resid, **ln1, **ln1_mean, **ln1_rstd, **qkv, **att, **attn_out, **proj, **mid;
  float **ln2, **ln2_mean, **ln2_rstd, **fc1, **gelu, **fc2;
  int32_t *rows, *targets;
  float *head_in, *head_ln, *head_mean, *head_rstd, *logits, *probs, *pix_target;
  /* gradients (training arena only) */
  float *dresid, *dln, *dqkv, *datt, *dattn_out, *dproj, *dfc1, *dgelu, *dfc2, *drelbias, *dqkv_bias;
  float *demb, *dhead_in, *dhead_ln, *dlogits;
  float *block;  /* the single allocation */
  size_t bytes;
};

typedef struct { float *base; size_t used; } bump;

static float *take(bump *b, size_t nfloats) {
  float *p = b->base ? b->base + b->used : NULL;
  b->used += (nfloats + 15) & ~(size_t)15;
  return p;
}

/* Lays out every activation; with base == NULL it only counts. Forward-only
 * arenas share one set of per-block buffers across blocks (resid alternates). */
static size_t layout(beit_model *m, beit_acts *a, float *base, int B, int with_grad) {
  const beit_config *c = &m->cfg;
  int L = c->depth, N = m->tokens, Np = m->num_patches, C = c->dim, H = c->heads;
  int F = (int)(c->dim * c->mlp_ratio), Kp = c->channels * c->patch_size * c->patch_size;
  size_t BN = (size_t)B * N, headK = c->num_classes;
  if (c->vocab_size > (int)headK) headK = c->vocab_size;
  if (c->pixel_head && Kp > (int)headK) headK = Kp;
  size_t head_rows = (size_t)B * Np > (size_t)B ? (size_t)B * Np : (size_t)B;
  bump b = {base, 0};
  a->patches = take(&b, (size_t)B * Np * Kp);
  a->emb = take(&b, (size_t)B * Np * C);
  a->relbias = c->no_rel_pos ? NULL : take(&b, (size_t)(c->shared_rel_pos ? 1 : L) * H * N * N);
  a->keep = take(&b, (size_t)L * 2 * B);
  a->qkv_bias = take(&b, 3 * (size_t)C);
  int nb = with_grad == BEIT_GRAD_KEEP ? L : 1;   /* distinct per-block buffers */
  float **ptrs[] = {a->resid, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att, a->attn_out,
                    a->proj, a->mid, a->ln2, a->ln2_mean, a->ln2_rstd, a->fc1, a->gelu, a->fc2};
  size_t sizes[] = {BN * C, BN * C, BN, BN, BN * 3 * C, (size_t)B * H * N * N, BN * C,
                    BN * C, BN * C, BN * C, BN, BN, BN * F, BN * F, BN * C};
  /* The two LayerNorm outputs and the GELU output (6 of a block's 18 values per
   * token and channel) are not kept for the backward pass: it recomputes them
   * from the block's inputs, which costs one GELU and two normalisations. */
  int recomputed[] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0};
  for (int k = 1; k < 15; k++)
    for (int l = 0; l < L; l++) ptrs[k][l] = l < nb && (l == 0 || !recomputed[k]) ? take(&b, sizes[k]) : ptrs[k][0];
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
  if (with_grad) {
    a->dresid = take(&b, BN * C);
    a->dln = take(&b, BN * C);
    a->dqkv = take(&b, BN * 3 * C);
    a->datt = take(&b, (size_t)B * H * N * N);
    a->dattn_out = take(&b, BN * C);
    a->dproj = take(&b, BN * C);
    a->dfc1 = take(&b, BN * F);
    a->dgelu = take(&b, BN * F);
    a->dfc2 = take(&b, BN * C);
    a->drelbias = c->no_rel_pos ? NULL : take(&b, (size_t)H * N * N);
    a->dqkv_bias = take(&b, 3 * (size_t)C);
    a->demb = take(&b, (size_t)B * Np * C);
    a->dhead_in = take(&b, head_rows * C);
    a->dhead_ln = take(&b, head_rows * C);
    a->dlogits = take(&b, small_head);
  }
  return b.used * sizeof(float);
}

/* Allocates (alloc = 1) or frees the arena's 15 per-block pointer lists of depth + 1
 * entries. Returns 0 when an allocation failed. */
static int acts_lists(beit_acts *a, int depth, int alloc) {
  float ***lists[] = {&a->resid, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->att, &a->attn_out,
                      &a->proj, &a->mid, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fc1, &a->gelu, &a->fc2};
  int ok = 1;
  for (int k = 0; k < 15; k++) {
    if (alloc) ok &= (*lists[k] = calloc((size_t)depth + 1, sizeof(float *))) != NULL;
    else free(*lists[k]), *lists[k] = NULL;
  }
  return ok;
}

static void acts_free(beit_acts *a) {
  if (!a) return;
  beit_free(a->block);
  acts_lists(a, 0, 0);
  free(a);
}

int beit_model_reserve(beit_model *m, int max_batch, int with_grad) {
  if (!m || !m->params.data) return beit_errorf("beit_model_reserve: the model is not initialised (beit_model_init)");
  if (max_batch < 1) return beit_errorf("beit_model_reserve: max_batch %d must be at least 1", max_batch);
  if (with_grad != 0 && with_grad != BEIT_GRAD_KEEP && with_grad != BEIT_GRAD_RECOMPUTE)
    return beit_errorf("beit_model_reserve: with_grad %d is not 0, BEIT_GRAD_KEEP or BEIT_GRAD_RECOMPUTE", with_grad);
  acts_free(m->acts);
  m->acts = NULL;
  if (with_grad && beit_params_alloc_grad(&m->params) != BEIT_OK) return BEIT_ERR;
  beit_acts *a = calloc(1, sizeof *a);
  if (!a) return beit_errorf("out of memory");
  if (!acts_lists(a, m->cfg.depth, 1)) {
    acts_free(a);
    return beit_errorf("out of memory");
  }
  size_t bytes = layout(m, a, NULL, max_batch, with_grad);
  char what[96];
  snprintf(what, sizeof what, "the activations of a batch of %d", max_batch);
  if (beit_memory_check((double)bytes, what) != BEIT_OK) {
    acts_free(a);
    return BEIT_ERR;
  }
  a->block = beit_alloc(bytes, "activations");
  if (!a->block) {
    acts_free(a);
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

static void build_table(beit_model *m);

static void set_geometry(beit_model *m, const beit_config *cfg) {
  m->cfg = *cfg;
  m->grid = cfg->image_size / cfg->patch_size;
  m->num_patches = m->grid * m->grid;
  m->tokens = m->num_patches + 1;
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
static void add(beit_params *p, const char *name, int layer_id, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3) {
  int64_t shape[4] = {d0, d1, d2, d3};
  /* BEiT's no-decay set (spec 6): 1-D tensors, biases, cls_token, pos_embed */
  size_t len = strlen(name);
  int decay = !(ndim == 1 || (len > 5 && !strcmp(name + len - 5, ".bias")) || !strcmp(name, "cls_token") ||
                !strcmp(name, "pos_embed"));
  beit_params_add(p, name, ndim, shape, layer_id, decay);
}

static void build_table(beit_model *m) {
  const beit_config *c = &m->cfg;
  beit_params *p = &m->params;
  int C = c->dim, L = c->depth, F = (int)(c->dim * c->mlp_ratio);
  int R = relpos_table_rows(m->grid, m->grid);
  char n[BEIT_NAME_MAX];
  add(p, "cls_token", 0, 3, 1, 1, C, 0);
  if (c->abs_pos_emb) add(p, "pos_embed", 0, 3, 1, m->tokens, C, 0);
  if (c->vocab_size > 0 || c->pixel_head) add(p, "mask_token", 0, 3, 1, 1, C, 0);
  add(p, "patch_embed.proj.weight", 0, 4, C, c->channels, c->patch_size, c->patch_size);
  add(p, "patch_embed.proj.bias", 0, 1, C, 0, 0, 0);
  if (c->shared_rel_pos && !c->no_rel_pos)
    add(p, "rel_pos_bias.relative_position_bias_table", L + 1, 2, R, c->heads, 0, 0);
  for (int l = 0; l < L; l++) {
#define BLK(suffix, ...) (snprintf(n, sizeof n, "blocks.%d." suffix, l), add(p, n, l + 1, __VA_ARGS__))
    if (c->layer_scale_init > 0) {
      BLK("gamma_1", 1, C, 0, 0, 0);
      BLK("gamma_2", 1, C, 0, 0, 0);
    }
    BLK("norm1.weight", 1, C, 0, 0, 0);
    BLK("norm1.bias", 1, C, 0, 0, 0);
    BLK("attn.q_bias", 1, C, 0, 0, 0);
    BLK("attn.v_bias", 1, C, 0, 0, 0);
    if (!c->shared_rel_pos && !c->no_rel_pos) BLK("attn.relative_position_bias_table", 2, R, c->heads, 0, 0);
    BLK("attn.qkv.weight", 2, 3 * C, C, 0, 0);
    BLK("attn.proj.weight", 2, C, C, 0, 0);
    BLK("attn.proj.bias", 1, C, 0, 0, 0);
    BLK("norm2.weight", 1, C, 0, 0, 0);
    BLK("norm2.bias", 1, C, 0, 0, 0);
    BLK("mlp.fc1.weight", 2, F, C, 0, 0);
    BLK("mlp.fc1.bias", 1, F, 0, 0, 0);
    BLK("mlp.fc2.weight", 2, C, F, 0, 0);
    BLK("mlp.fc2.bias", 1, C, 0, 0, 0);
#undef BLK
  }
  if (c->vocab_size > 0 || c->pixel_head || (c->num_classes > 0 && !c->use_mean_pooling)) {
    add(p, "norm.weight", L + 1, 1, C, 0, 0, 0);
    add(p, "norm.bias", L + 1, 1, C, 0, 0, 0);
  }
  if (c->vocab_size > 0) {
    add(p, "lm_head.weight", L + 1, 2, c->vocab_size, C, 0, 0);
    add(p, "lm_head.bias", L + 1, 1, c->vocab_size, 0, 0, 0);
  }
  if (c->pixel_head) {
    int Kp = c->channels * c->patch_size * c->patch_size;
    add(p, "pixel_head.weight", L + 1, 2, Kp, C, 0, 0);
    add(p, "pixel_head.bias", L + 1, 1, Kp, 0, 0, 0);
  }
  if (c->num_classes > 0) {
    if (c->use_mean_pooling) {
      add(p, "fc_norm.weight", L + 1, 1, C, 0, 0, 0);
      add(p, "fc_norm.bias", L + 1, 1, C, 0, 0, 0);
    }
    add(p, "head.weight", L + 1, 2, c->num_classes, C, 0, 0);
    add(p, "head.bias", L + 1, 1, c->num_classes, 0, 0, 0);
  }
}

int beit_model_init(beit_model *m, const beit_config *cfg) {
  if (!m || !cfg) return beit_errorf("beit_model_init: the %s is NULL", m ? "config" : "model");
  memset(m, 0, sizeof *m);
  if (beit_config_validate(cfg) != BEIT_OK) return BEIT_ERR;
  set_geometry(m, cfg);
  beit_params_init(&m->params);
  build_table(m);
  char what[96];
  snprintf(what, sizeof what, "a model of %.1f M parameters (weights and gradients)", m->params.total / 1e6);
  if (beit_memory_check(table_bytes((double)m->params.total, m->tokens), what) != BEIT_OK) {
    beit_params_free(&m->params);
    return BEIT_ERR;
  }
  m->relpos_index = beit_alloc((size_t)m->tokens * m->tokens * sizeof(int32_t), "relative position index");
  if (!m->relpos_index || beit_params_alloc_data(&m->params) != BEIT_OK) {  /* gradients: beit_model_reserve */
    beit_model_free(m);
    return BEIT_ERR;
  }
  relpos_build_index(m->relpos_index, m->grid, m->grid);
  return BEIT_OK;
}

void beit_model_free(beit_model *m) {
  acts_free(m->acts);
  beit_free(m->relpos_index);
  beit_params_free(&m->params);
  memset(m, 0, sizeof *m);
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
      scale_inplace(x, t->numel, 1.0f / sqrtf(2.0f * t->layer_id));
    if (!strncmp(t->name, "head.", 5)) scale_inplace(x, t->numel, head_init_scale);
  }
}

/* ---------------------------------------------------------------- forward */
typedef struct {  /* named pointers into the parameter (or gradient) buffer for block l */
  float *g1, *g2, *n1w, *n1b, *qb, *vb, *table, *qkvw, *projw, *projb, *n2w, *n2b, *fc1w, *fc1b, *fc2w, *fc2b;
} block_ptrs;

static float *opt_ptr(const beit_params *p, float *buf, const char *name) {
  int i = beit_params_find(p, name);
  return i < 0 ? NULL : buf + p->t[i].offset;
}

static block_ptrs block_at(const beit_params *p, float *buf, int l) {
  char n[BEIT_NAME_MAX];
  block_ptrs b;
#define P(field, suffix) (snprintf(n, sizeof n, "blocks.%d." suffix, l), b.field = opt_ptr(p, buf, n))
  P(g1, "gamma_1"); P(g2, "gamma_2"); P(n1w, "norm1.weight"); P(n1b, "norm1.bias");
  P(qb, "attn.q_bias"); P(vb, "attn.v_bias"); P(table, "attn.relative_position_bias_table");
  P(qkvw, "attn.qkv.weight"); P(projw, "attn.proj.weight"); P(projb, "attn.proj.bias");
  P(n2w, "norm2.weight"); P(n2b, "norm2.bias"); P(fc1w, "mlp.fc1.weight"); P(fc1b, "mlp.fc1.bias");
  P(fc2w, "mlp.fc2.weight"); P(fc2b, "mlp.fc2.bias");
#undef P
  return b;
}

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
    float *k = m->acts->keep + (size_t)l * 2 * B;
    for (int i = 0; i < 2 * G; i++) {
      int branch = i / G, pos = i % G;
      float keep = (!train || rate <= 0) ? 1.0f : (beit_rng_uniform(&r) < 1.0 - rate ? 1.0f / (1.0f - rate) : 0.0f);
      if (pos % S == s) k[branch * B + pos / S] = keep;
    }
  }
}

static const float *keep_of(const beit_model *m, int l, int branch, int B) {
  const beit_config *c = &m->cfg;
  float rate = c->depth > 1 ? c->drop_path * l / (c->depth - 1) : 0;
  return rate > 0 ? m->acts->keep + (size_t)l * 2 * B + (size_t)branch * B : NULL;
}

static void block_forward(beit_model *m, int l, int B, const float *bias, const float *keep_a,
                          const float *keep_m) {
  const beit_config *c = &m->cfg;
  beit_acts *a = m->acts;
  int N = m->tokens, C = c->dim, F = (int)(c->dim * c->mlp_ratio), BN = B * N;
  block_ptrs w = block_at(&m->params, m->params.data, l);
  layernorm_forward(a->ln1[l], a->ln1_mean[l], a->ln1_rstd[l], a->resid[l], w.n1w, w.n1b, BN, C, c->ln_eps);
  memcpy(a->qkv_bias, w.qb, (size_t)C * sizeof(float));  /* [q_bias, 0, v_bias]: k has no bias */
  memset(a->qkv_bias + C, 0, (size_t)C * sizeof(float));
  memcpy(a->qkv_bias + 2 * C, w.vb, (size_t)C * sizeof(float));
  linear_forward(a->qkv[l], a->ln1[l], w.qkvw, a->qkv_bias, BN, C, 3 * C);
  attention_forward(a->attn_out[l], a->att[l], a->qkv[l], bias, B, N, C, c->heads);
  linear_forward(a->proj[l], a->attn_out[l], w.projw, w.projb, BN, C, C);
  residual_forward(a->mid[l], a->resid[l], a->proj[l], w.g1, keep_a, B, N, C);
  layernorm_forward(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l], a->mid[l], w.n2w, w.n2b, BN, C, c->ln_eps);
  linear_forward(a->fc1[l], a->ln2[l], w.fc1w, w.fc1b, BN, C, F);
  gelu_forward(a->gelu[l], a->fc1[l], (size_t)BN * F);
  linear_forward(a->fc2[l], a->gelu[l], w.fc2w, w.fc2b, BN, F, C);
  residual_forward(a->resid[l + 1], a->mid[l], a->fc2[l], w.g2, keep_m, B, N, C);
}

static float *relbias_of(beit_model *m, int l) {
  if (m->cfg.no_rel_pos) return NULL;
  size_t HNN = (size_t)m->cfg.heads * m->tokens * m->tokens;
  return m->acts->relbias + (m->cfg.shared_rel_pos ? 0 : (size_t)l * HNN);
}

/* Absolute position embedding, added after the mask-token replacement as in
 * the official code (spec 1.3): x[b] += pos for every image b. */
static void add_pos_embed(float *x, const float *pos, int B, int N, int C) {
  for (int b = 0; b < B; b++)
    for (size_t i = 0; i < (size_t)N * C; i++) x[(size_t)b * N * C + i] += pos[i];
}

/* Embeddings, then blocks 0 .. blocks-1 (all of them but for beit_encode_blocks). */
static void encoder_forward(beit_model *m, const beit_input *bt, int use_mask, int train, uint64_t seed,
                            int64_t step, int blocks) {
  const beit_config *c = &m->cfg;
  beit_acts *a = m->acts;
  const beit_params *p = &m->params;
  int B = bt->B, Np = m->num_patches, C = c->dim, Kp = c->channels * c->patch_size * c->patch_size;
  patchify(a->patches, bt->images, B, c->channels, c->image_size, c->patch_size);
  linear_forward(a->emb, a->patches, beit_params_get(p, "patch_embed.proj.weight"),
                 beit_params_get(p, "patch_embed.proj.bias"), B * Np, Kp, C);
  embed_forward(a->resid[0], a->emb, use_mask ? bt->mask : NULL, beit_params_get(p, "cls_token"),
                use_mask ? beit_params_get(p, "mask_token") : NULL, B, m->tokens, C);
  if (c->abs_pos_emb) add_pos_embed(a->resid[0], beit_params_get(p, "pos_embed"), B, m->tokens, C);
  if (c->shared_rel_pos && !c->no_rel_pos)
    relpos_bias_forward(a->relbias, beit_params_get(p, "rel_pos_bias.relative_position_bias_table"),
                        m->relpos_index, m->tokens, c->heads);
  sample_drop_path(m, bt, train, seed, step);
  m->last_blocks = blocks;
  for (int l = 0; l < blocks; l++) {
    if (!c->shared_rel_pos && !c->no_rel_pos)
      relpos_bias_forward(relbias_of(m, l), block_at(p, p->data, l).table, m->relpos_index, m->tokens, c->heads);
    block_forward(m, l, B, relbias_of(m, l), keep_of(m, l, 0, B), keep_of(m, l, 1, B));
  }
}

/* Rows of the masked patch tokens in the [B*N] token matrix, batch-major then
 * position-major (the order BEiT's labels use). Returns their count. */
static int masked_rows(beit_model *m, const beit_input *bt) {
  int n = 0, Np = m->num_patches;
  for (int b = 0; b < bt->B; b++)
    for (int q = 0; q < Np; q++)
      if (bt->mask[(size_t)b * Np + q]) {
        m->acts->rows[n] = b * m->tokens + 1 + q;
        if (bt->tokens) m->acts->targets[n] = bt->tokens[(size_t)b * Np + q];
        n++;
      }
  return n;
}

static int64_t count_correct(const float *logits, const int32_t *target, int M, int K) {
  int64_t correct = 0;
  for (int i = 0; i < M; i++) {
    int pred = logits_top1(logits + (size_t)i * K, K);
    correct += pred >= 0 && pred == target[i];
  }
  return correct;
}

static double head_masked_forward(beit_model *m, beit_task task, const beit_input *bt, beit_stats *st) {
  const beit_config *c = &m->cfg;
  beit_acts *a = m->acts;
  const beit_params *p = &m->params;
  int C = c->dim, Mt = masked_rows(m, bt);
  m->last_masked = Mt;
  gather_rows(a->head_in, a->resid[c->depth], a->rows, Mt, C);
  layernorm_forward(a->head_ln, a->head_mean, a->head_rstd, a->head_in, beit_params_get(p, "norm.weight"),
                    beit_params_get(p, "norm.bias"), Mt, C, c->ln_eps);
  double loss;
  if (task == BEIT_TASK_MIM) {
    int V = c->vocab_size;
    linear_forward(a->logits, a->head_ln, beit_params_get(p, "lm_head.weight"), beit_params_get(p, "lm_head.bias"),
                   Mt, C, V);
    /* the logits stay (beit_logits); the backward pass turns them into the gradient in place */
    loss = softmax_xent_loss(a->logits, a->targets, Mt, V);
    if (st) st->correct = count_correct(a->logits, a->targets, Mt, V), st->count = Mt;
  } else {
    int Kp = c->channels * c->patch_size * c->patch_size;
    linear_forward(a->logits, a->head_ln, beit_params_get(p, "pixel_head.weight"),
                   beit_params_get(p, "pixel_head.bias"), Mt, C, Kp);
    for (int i = 0; i < Mt; i++) {  /* target: the normalised pixels of each masked patch */
      int b = a->rows[i] / m->tokens, q = a->rows[i] % m->tokens - 1;
      memcpy(a->pix_target + (size_t)i * Kp, a->patches + ((size_t)b * m->num_patches + q) * Kp,
             (size_t)Kp * sizeof(float));
    }
    loss = mse_forward(a->logits, a->pix_target, (size_t)Mt * Kp);
    if (st) st->correct = 0, st->count = Mt;
  }
  return loss;
}

static double head_classify_forward(beit_model *m, const beit_input *bt, beit_stats *st) {
  const beit_config *c = &m->cfg;
  beit_acts *a = m->acts;
  const beit_params *p = &m->params;
  int B = bt->B, C = c->dim, K = c->num_classes;
  const char *nw = c->use_mean_pooling ? "fc_norm.weight" : "norm.weight";
  const char *nb = c->use_mean_pooling ? "fc_norm.bias" : "norm.bias";
  if (c->use_mean_pooling) mean_pool_forward(a->head_in, a->resid[c->depth], B, m->tokens, C, 1);
  else {
    for (int b = 0; b < B; b++) a->rows[b] = b * m->tokens;
    gather_rows(a->head_in, a->resid[c->depth], a->rows, B, C);
  }
  layernorm_forward(a->head_ln, a->head_mean, a->head_rstd, a->head_in, beit_params_get(p, nw),
                    beit_params_get(p, nb), B, C, c->ln_eps);
  linear_forward(a->logits, a->head_ln, beit_params_get(p, "head.weight"), beit_params_get(p, "head.bias"), B, C, K);
  double loss = 0;
  if (bt->soft_labels) loss = soft_xent_forward(a->probs, a->logits, bt->soft_labels, B, K);
  else if (bt->labels) loss = softmax_xent_forward(a->probs, a->logits, bt->labels, B, K);
  if (st) {
    st->count = bt->labels ? B : 0;
    st->correct = bt->labels ? count_correct(a->logits, bt->labels, B, K) : 0;
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
/* Gradient buffers are zeroed before each backward accumulates into them; split
 * over the threads because at small model sizes these memsets were 5% of a step. */
static void zero(float *x, size_t n) {
#pragma omp parallel
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
    memset(x + i0, 0, (i1 - i0) * sizeof(float));
  }
}

static void head_backward(beit_model *m, const beit_input *bt) {
  const beit_config *c = &m->cfg;
  beit_acts *a = m->acts;
  beit_params *p = &m->params;
  int B = bt->B, C = c->dim, N = m->tokens;
  int rows = m->task == BEIT_TASK_CLASSIFY ? B : m->last_masked;
  const char *hw, *hb, *nw, *nb;
  int K;
  if (m->task == BEIT_TASK_MIM) {
    K = c->vocab_size, hw = "lm_head.weight", hb = "lm_head.bias", nw = "norm.weight", nb = "norm.bias";
    softmax_xent_forward(a->logits, a->logits, a->targets, rows, K);  /* in place: probabilities, */
    softmax_xent_backward(a->logits, a->logits, a->targets, rows, K, 1.0f);  /* then their gradient */
  } else if (m->task == BEIT_TASK_PIXEL) {
    K = c->channels * c->patch_size * c->patch_size;
    hw = "pixel_head.weight", hb = "pixel_head.bias", nw = "norm.weight", nb = "norm.bias";
    zero(a->dlogits, (size_t)rows * K);
    mse_backward(a->dlogits, a->logits, a->pix_target, (size_t)rows * K, 1.0f);
  } else {
    K = c->num_classes, hw = "head.weight", hb = "head.bias";
    nw = c->use_mean_pooling ? "fc_norm.weight" : "norm.weight";
    nb = c->use_mean_pooling ? "fc_norm.bias" : "norm.bias";
    zero(a->dlogits, (size_t)rows * K);
    if (bt->soft_labels) soft_xent_backward(a->dlogits, a->probs, bt->soft_labels, rows, K, 1.0f);
    else softmax_xent_backward(a->dlogits, a->probs, bt->labels, rows, K, 1.0f);
  }
  zero(a->dhead_ln, (size_t)rows * C);
  linear_backward(a->dhead_ln, beit_params_grad(p, hw), beit_params_grad(p, hb),
                  m->task == BEIT_TASK_MIM ? a->logits : a->dlogits, a->head_ln,
                  beit_params_get(p, hw), rows, C, K);
  zero(a->dhead_in, (size_t)rows * C);
  layernorm_backward(a->dhead_in, beit_params_grad(p, nw), beit_params_grad(p, nb), a->dhead_ln, a->head_in,
                     beit_params_get(p, nw), a->head_mean, a->head_rstd, rows, C);
  zero(a->dresid, (size_t)B * N * C);
  if (m->task == BEIT_TASK_CLASSIFY && c->use_mean_pooling) mean_pool_backward(a->dresid, a->dhead_in, B, N, C, 1);
  else scatter_add_rows(a->dresid, a->dhead_in, a->rows, rows, C);
}

static void block_backward(beit_model *m, int l, int B, float *drelbias) {
  const beit_config *c = &m->cfg;
  beit_acts *a = m->acts;
  beit_params *p = &m->params;
  int N = m->tokens, C = c->dim, F = (int)(c->dim * c->mlp_ratio), BN = B * N;
  block_ptrs w = block_at(p, p->data, l), g = block_at(p, p->grad, l);
  const float *keep_a = keep_of(m, l, 0, B), *keep_m = keep_of(m, l, 1, B);
  /* MLP branch: dresid is d(resid[l+1]) and, through the identity path, d(mid) */
  /* the forward values not kept (see layout) */
  layernorm_forward(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l], a->mid[l], w.n2w, w.n2b, BN, C, c->ln_eps);
  gelu_forward(a->gelu[l], a->fc1[l], (size_t)BN * F);
  zero(a->dfc2, (size_t)BN * C);
  residual_backward(NULL, a->dfc2, g.g2, a->dresid, a->fc2[l], w.g2, keep_m, B, N, C);
  zero(a->dgelu, (size_t)BN * F);
  linear_backward(a->dgelu, g.fc2w, g.fc2b, a->dfc2, a->gelu[l], w.fc2w, BN, F, C);
  zero(a->dfc1, (size_t)BN * F);
  gelu_backward(a->dfc1, a->dgelu, a->fc1[l], (size_t)BN * F);
  zero(a->dln, (size_t)BN * C);
  linear_backward(a->dln, g.fc1w, g.fc1b, a->dfc1, a->ln2[l], w.fc1w, BN, C, F);
  layernorm_backward(a->dresid, g.n2w, g.n2b, a->dln, a->mid[l], w.n2w, a->ln2_mean[l], a->ln2_rstd[l], BN, C);
  /* attention branch: dresid is now d(mid) and becomes d(resid[l]) */
  zero(a->dproj, (size_t)BN * C);
  residual_backward(NULL, a->dproj, g.g1, a->dresid, a->proj[l], w.g1, keep_a, B, N, C);
  zero(a->dattn_out, (size_t)BN * C);
  linear_backward(a->dattn_out, g.projw, g.projb, a->dproj, a->attn_out[l], w.projw, BN, C, C);
  zero(a->dqkv, (size_t)BN * 3 * C);
  attention_backward(a->dqkv, drelbias, a->datt, a->dattn_out, a->qkv[l], a->att[l], B, N, C, c->heads);
  zero(a->dqkv_bias, 3 * (size_t)C);
  zero(a->dln, (size_t)BN * C);
  layernorm_forward(a->ln1[l], a->ln1_mean[l], a->ln1_rstd[l], a->resid[l], w.n1w, w.n1b, BN, C, c->ln_eps);
  linear_backward(a->dln, g.qkvw, a->dqkv_bias, a->dqkv, a->ln1[l], w.qkvw, BN, C, 3 * C);
  for (int i = 0; i < C; i++) {
    g.qb[i] += a->dqkv_bias[i];
    g.vb[i] += a->dqkv_bias[2 * C + i];
  }
  layernorm_backward(a->dresid, g.n1w, g.n1b, a->dln, a->resid[l], w.n1w, a->ln1_mean[l], a->ln1_rstd[l], BN, C);
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
  beit_acts *a = m->acts;
  beit_params *p = &m->params;
  int B = bt->B, N = m->tokens, C = c->dim, H = c->heads, Np = m->num_patches;
  int Kp = c->channels * c->patch_size * c->patch_size;
  size_t HNN = (size_t)H * N * N;
  int shared = c->shared_rel_pos && !c->no_rel_pos, per_block = !c->shared_rel_pos && !c->no_rel_pos;
  head_backward(m, bt);
  if (shared) zero(a->drelbias, HNN);
  for (int l = c->depth - 1; l >= 0; l--) {
    if (per_block) zero(a->drelbias, HNN);
    if (m->with_grad == BEIT_GRAD_RECOMPUTE)  /* the block's activations, from its kept input */
      block_forward(m, l, B, relbias_of(m, l), keep_of(m, l, 0, B), keep_of(m, l, 1, B));
    block_backward(m, l, B, a->drelbias);
    if (per_block) relpos_bias_backward(block_at(p, p->grad, l).table, a->drelbias, m->relpos_index, N, H);
  }
  if (c->abs_pos_emb) {  /* d(pos_embed) = batch sum of d(resid[0]) */
    float *dpos = beit_params_grad(p, "pos_embed");
    for (int b = 0; b < B; b++)
      for (size_t i = 0; i < (size_t)N * C; i++) dpos[i] += a->dresid[(size_t)b * N * C + i];
  }
  if (shared)
    relpos_bias_backward(beit_params_grad(p, "rel_pos_bias.relative_position_bias_table"), a->drelbias,
                         m->relpos_index, N, H);
  int masked = m->task != BEIT_TASK_CLASSIFY;
  zero(a->demb, (size_t)B * Np * C);
  embed_backward(a->demb, beit_params_grad(p, "cls_token"), masked ? beit_params_grad(p, "mask_token") : NULL,
                 a->dresid, masked ? bt->mask : NULL, B, N, C);
  linear_backward(NULL, beit_params_grad(p, "patch_embed.proj.weight"), beit_params_grad(p, "patch_embed.proj.bias"),
                  a->demb, a->patches, beit_params_get(p, "patch_embed.proj.weight"), B * Np, Kp, C);
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
  return m->acts->att[layer];
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
