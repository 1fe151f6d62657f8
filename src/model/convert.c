/* convert.c - see convert.h. One path for every scheme: a view maps each of our
 * tensor names (timm's) to the file's name(s); the architecture is inferred
 * through the view, the model built, and every tensor read through it, so a
 * key missing or of the wrong shape is reported under the file's own name. */
#include "model/convert.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"
#include "core/core.h"
#include "io/safetensors.h"
#include "model/pos_resize.h"

static const char IMAGENET_CLASSES[] =
#include "imagenet_classes.inc"
    ;

const char *beit_imagenet_class_names(void) { return IMAGENET_CLASSES; }

static const char *const SCHEMES[] = {"beit", "timm", "unilm", "hf"};

const char *beit_scheme_name(beit_scheme s) { return SCHEMES[s]; }

int beit_scheme_parse(const char *name, beit_scheme *s) {
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, SCHEMES[i])) {
      *s = (beit_scheme)i;
      return BEIT_OK;
    }
  return beit_errorf("unknown checkpoint scheme '%s' (known: beit, timm, unilm, hf)", name);
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

/* ------------------------------------------------------------------ names */
typedef struct {
  const beit_safetensors *st;
  beit_scheme scheme;
  const char *hf_prefix;  /* "beit." inside task models, "" for a bare BeitModel */
  int hf_top_norm;        /* BeitForMaskedImageModeling: the final norm is the top-level "layernorm" */
} view;

/* Hugging Face names: "@" stands for the BeitModel prefix. */
static const char *const HF_TOP[][2] = {
    {"cls_token", "@embeddings.cls_token"},
    {"mask_token", "@embeddings.mask_token"},
    {"pos_embed", "@embeddings.position_embeddings"},
    {"patch_embed.proj.weight", "@embeddings.patch_embeddings.projection.weight"},
    {"patch_embed.proj.bias", "@embeddings.patch_embeddings.projection.bias"},
    {"rel_pos_bias.relative_position_bias_table", "@encoder.relative_position_bias.relative_position_bias_table"},
    {"fc_norm.weight", "@pooler.layernorm.weight"},
    {"fc_norm.bias", "@pooler.layernorm.bias"},
    {"head.weight", "classifier.weight"},
    {"head.bias", "classifier.bias"},
    {"lm_head.weight", "lm_head.weight"},
    {"lm_head.bias", "lm_head.bias"},
};
static const char *const HF_BLOCK[][2] = {
    {"gamma_1", "lambda_1"},
    {"gamma_2", "lambda_2"},
    {"norm1.weight", "layernorm_before.weight"},
    {"norm1.bias", "layernorm_before.bias"},
    {"norm2.weight", "layernorm_after.weight"},
    {"norm2.bias", "layernorm_after.bias"},
    {"attn.q_bias", "attention.attention.query.bias"},
    {"attn.v_bias", "attention.attention.value.bias"},
    {"attn.relative_position_bias_table", "attention.attention.relative_position_bias.relative_position_bias_table"},
    {"attn.proj.weight", "attention.output.dense.weight"},
    {"attn.proj.bias", "attention.output.dense.bias"},
    {"mlp.fc1.weight", "intermediate.dense.weight"},
    {"mlp.fc1.bias", "intermediate.dense.bias"},
    {"mlp.fc2.weight", "output.dense.weight"},
    {"mlp.fc2.bias", "output.dense.bias"},
};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void hf_name(char *out, const view *v, const char *pattern, int block) {
  char tmp[BEIT_NAME_MAX];
  snprintf(tmp, sizeof tmp, pattern, block);
  if (tmp[0] == '@') snprintf(out, BEIT_NAME_MAX, "%s%s", v->hf_prefix, tmp + 1);
  else snprintf(out, BEIT_NAME_MAX, "%s", tmp);
}

/* The file's name(s) of our tensor `ours`: 1 part, or 3 for HF's separate
 * query/key/value weights (stacked rows of our qkv.weight); 0 = no counterpart. */
static int scheme_names(const view *v, const char *ours, char out[3][BEIT_NAME_MAX]) {
  if (v->scheme != BEIT_SCHEME_HF) {
    snprintf(out[0], BEIT_NAME_MAX, "%s", ours);
    return v->scheme == BEIT_SCHEME_BEIT || !starts_with(ours, "pixel_head");
  }
  int block, used = 0;
  if (sscanf(ours, "blocks.%d.%n", &block, &used) == 1 && used > 0) {
    const char *rest = ours + used;
    if (!strcmp(rest, "attn.qkv.weight")) {
      const char *qkv[3] = {"query", "key", "value"};
      for (int k = 0; k < 3; k++) {
        char pattern[BEIT_NAME_MAX];
        snprintf(pattern, sizeof pattern, "@encoder.layer.%%d.attention.attention.%s.weight", qkv[k]);
        hf_name(out[k], v, pattern, block);
      }
      return 3;
    }
    for (int i = 0; i < COUNT(HF_BLOCK); i++)
      if (!strcmp(rest, HF_BLOCK[i][0])) {
        char pattern[BEIT_NAME_MAX];
        snprintf(pattern, sizeof pattern, "@encoder.layer.%%d.%s", HF_BLOCK[i][1]);
        hf_name(out[0], v, pattern, block);
        return 1;
      }
    return 0;
  }
  if (starts_with(ours, "norm.")) {
    snprintf(out[0], BEIT_NAME_MAX, "%slayernorm.%s", v->hf_top_norm ? "" : v->hf_prefix, ours + 5);
    return 1;
  }
  for (int i = 0; i < COUNT(HF_TOP); i++)
    if (!strcmp(ours, HF_TOP[i][0])) {
      hf_name(out[0], v, HF_TOP[i][1], 0);
      return 1;
    }
  return 0;
}

/* The file's entry for our tensor (its first part), or NULL. */
static const beit_st_entry *find(const view *v, const char *ours) {
  char names[3][BEIT_NAME_MAX];
  if (!scheme_names(v, ours, names)) return NULL;
  int i = beit_st_find(v->st, names[0]);
  return i < 0 ? NULL : &v->st->e[i];
}

static const beit_st_entry *findf(const view *v, const char *fmt, int i) {
  char name[BEIT_NAME_MAX];
  snprintf(name, sizeof name, fmt, i);
  return find(v, name);
}

static void detect_scheme(view *v) {
  const beit_safetensors *st = v->st;
  v->scheme = BEIT_SCHEME_TIMM;
  v->hf_prefix = "";
  if (beit_st_meta(st, "config")) {
    v->scheme = BEIT_SCHEME_BEIT;
    return;
  }
  int index_buffers = 0;
  for (int i = 0; i < st->n; i++) {
    const char *k = st->e[i].name;
    if (starts_with(k, "beit.embeddings.") || starts_with(k, "beit.encoder.")) v->scheme = BEIT_SCHEME_HF, v->hf_prefix = "beit.";
    else if (v->scheme != BEIT_SCHEME_HF && (starts_with(k, "embeddings.") || starts_with(k, "encoder.layer.")))
      v->scheme = BEIT_SCHEME_HF;
    index_buffers |= ends_with(k, "relative_position_index");
  }
  if (v->scheme == BEIT_SCHEME_HF) v->hf_top_norm = beit_st_find(st, "lm_head.weight") >= 0;
  else if (index_buffers) v->scheme = BEIT_SCHEME_UNILM;  /* the official code saves its index buffers; timm does not */
}

/* ------------------------------------------------------------------ files */
static cJSON *read_json(const char *path) {
  uint8_t *buf;
  size_t n;
  if (beit_read_file(path, &buf, &n) != BEIT_OK) return NULL;
  cJSON *j = cJSON_ParseWithLength((const char *)buf, n);
  beit_free(buf);
  if (!j || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    beit_errorf("%s: not a JSON object", path);
    return NULL;
  }
  return j;
}

/* path -> weights file and, in the hub layout (a folder, or a file called
 * model.safetensors), the config.json / preprocessor_config.json beside it. */
static int resolve_paths(const char *path, char *weights, char *config, char *preproc, size_t n) {
  char dir[1100];
  config[0] = preproc[0] = 0;
  if (beit_is_dir(path)) {
    snprintf(dir, sizeof dir, "%.1000s", path);
    snprintf(weights, n, "%.1000s/model.safetensors", path);
    if (!beit_is_file(weights))
      return beit_errorf("%s: folder without model.safetensors (pytorch_model.bin is not read; see docs/checkpoints.md)",
                         path);
  } else {
    snprintf(weights, n, "%.1000s", path);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (strcmp(base, "model.safetensors")) return BEIT_OK;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
  }
  snprintf(config, n, "%.1000s/config.json", dir);
  snprintf(preproc, n, "%.1000s/preprocessor_config.json", dir);
  if (!beit_is_file(config)) config[0] = 0;
  if (!beit_is_file(preproc)) preproc[0] = 0;
  return BEIT_OK;
}

/* ------------------------------------------------------------------ architecture */
static int json_int(const cJSON *j, const char *key, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!v) return 0;
  if (cJSON_IsArray(v) && cJSON_GetArraySize(v) >= 1) v = cJSON_GetArrayItem(v, 0);  /* image_size [h, w] */
  if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
  else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e9) *out = (int)v->valuedouble;
  else return 0;
  return 1;
}

static int json_num(const cJSON *j, const char *key, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!v || !cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
  *out = v->valuedouble;
  return 1;
}

/* A config.json field against what the tensors say. */
static int agree(const char *cfg_path, const cJSON *j, const char *field, int from_shapes, const char *why) {
  int said;
  if (!j || !json_int(j, field, &said) || said == from_shapes) return BEIT_OK;
  return beit_errorf("%s says %s = %d, but %s", cfg_path, field, said, why);
}

static int need(const beit_st_entry *e, const char *path, const char *what) {
  return e ? BEIT_OK : beit_errorf("%s: no '%s' tensor: not a BEiT checkpoint (or an unsupported one)", path, what);
}

/* e has `ndim` dimensions, each equal to want[d] (-1 = any) and in 1 .. 2^24
 * (an empty tensor could otherwise carry any size into the architecture). */
static int shape_is(const beit_st_entry *e, const char *path, int ndim, const int64_t *want) {
  int ok = e->ndim == ndim, sane = 1;
  for (int d = 0; d < e->ndim; d++) sane &= e->shape[d] >= 1 && e->shape[d] <= (1 << 24);
  for (int d = 0; ok && d < ndim; d++) ok = want[d] < 0 || e->shape[d] == want[d];
  if (ok && sane) return BEIT_OK;
  char have[96], exp[96];
  shape_str(e->shape, e->ndim, have, sizeof have);
  shape_str(want, ndim, exp, sizeof exp);
  if (!sane) return beit_errorf("%s: '%s' has shape %s: a dimension of 0 or above 2^24", path, e->name, have);
  return beit_errorf("%s: '%s' has shape %s, expected %s (-1 = any)", path, e->name, have, exp);
}

/* Side g of the patch grid whose relative position table has `rows` rows, or 0. */
static int grid_of_table(int64_t rows) {
  for (int g = 1; g <= 256; g++)
    if ((int64_t)(2 * g - 1) * (2 * g - 1) + 3 == rows) return g;
  return 0;
}

static int grid_of_tokens(int64_t tokens) {
  for (int g = 1; g <= 256; g++)
    if ((int64_t)g * g + 1 == tokens) return g;
  return 0;
}

/* Hugging Face config.json: eps and LayerScale from it, every other field
 * checked against what the tensors say. */
static int agree_with_hf(const view *v, const cJSON *hf, const char *cfg_path, beit_config *c) {
  char why[400];
  const beit_st_entry *pe = find(v, "patch_embed.proj.weight"), *fc1 = find(v, "blocks.0.mlp.fc1.weight");
  const beit_st_entry *shared = find(v, "rel_pos_bias.relative_position_bias_table");
  const beit_st_entry *per = find(v, "blocks.0.attn.relative_position_bias_table"), *table = shared ? shared : per;
  const beit_st_entry *pos = find(v, "pos_embed"), *lm = find(v, "lm_head.weight"), *head = find(v, "head.weight");
  int D = c->dim, P = c->patch_size, heads = c->heads, grid = c->image_size / P;
  double eps, ls;
  if (json_num(hf, "layer_norm_eps", &eps) && eps > 0) c->ln_eps = (float)eps;
  if (json_num(hf, "layer_scale_init_value", &ls) && ls > 0 && c->layer_scale_init > 0) c->layer_scale_init = (float)ls;
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(hf, "hidden_act");
  if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "gelu")))
    return beit_errorf("%s: hidden_act must be \"gelu\" (exact GELU), got %s", cfg_path,
                       cJSON_IsString(act) ? act->valuestring : "a non-string");
  int rc = BEIT_OK;
#define AGREE(field, value, ...) \
  (snprintf(why, sizeof why, __VA_ARGS__), rc = rc ? rc : agree(cfg_path, hf, field, value, why))
  AGREE("hidden_size", D, "'%s' is [%d, ...]", pe->name, D);
  AGREE("patch_size", P, "'%s' has %dx%d kernels", pe->name, P, P);
  AGREE("num_channels", c->channels, "'%s' reads %d channels", pe->name, c->channels);
  AGREE("num_hidden_layers", c->depth, "the file holds %d layers", c->depth);
  AGREE("intermediate_size", (int)fc1->shape[0], "'%s' is [%lld, %d]", fc1->name, (long long)fc1->shape[0], D);
  AGREE("num_attention_heads", heads, "'%s' has %d columns (one per head)", table ? table->name : "config", heads);
  AGREE("image_size", c->image_size, "the position parameters are for a %dx%d patch grid (%d px)", grid, grid, c->image_size);
  AGREE("use_shared_relative_position_bias", c->rel_pos == BEIT_RELPOS_SHARED, "the file %s a shared table",
        shared ? "has" : "has no");
  AGREE("use_relative_position_bias", per != NULL, "the file %s per-layer tables", per ? "has" : "has no");
  AGREE("use_absolute_position_embeddings", pos != NULL, "the file %s position_embeddings", pos ? "has" : "has no");
  if (lm) AGREE("vocab_size", c->vocab_size, "'%s' has %d rows", lm->name, c->vocab_size);
  if (head) AGREE("use_mean_pooling", c->use_mean_pooling, "the file %s a pooler layernorm", c->use_mean_pooling ? "has" : "has no");
  int ls_said;
  if (json_int(hf, "layer_scale_init_value", &ls_said) && ls_said == 0 && c->layer_scale_init > 0)
    rc = rc ? rc : beit_errorf("%s says layer_scale_init_value = 0, but the file has lambda_1/lambda_2", cfg_path);
#undef AGREE
  return rc;
}

/* The architecture from the tensors (through the view), checked against the
 * Hugging Face config.json `hf` when there is one. */
static int infer_config(const view *v, const cJSON *hf, const char *cfg_path, beit_config *c) {
  const char *path = v->st->path;
  memset(c, 0, sizeof *c);
  const beit_st_entry *pe = find(v, "patch_embed.proj.weight"), *cls = find(v, "cls_token");
  if (need(pe, path, "patch_embed.proj.weight") || need(cls, path, "cls_token") ||
      shape_is(pe, path, 4, (int64_t[]){-1, -1, -1, pe->shape[2]}))
    return BEIT_ERR;
  int D = (int)pe->shape[0], P = (int)pe->shape[2];
  c->dim = D, c->channels = (int)pe->shape[1], c->patch_size = P;
  if (shape_is(cls, path, 3, (int64_t[]){1, 1, D})) return BEIT_ERR;
  while (c->depth < 1024 && findf(v, "blocks.%d.norm1.weight", c->depth)) c->depth++;
  const beit_st_entry *fc1 = find(v, "blocks.0.mlp.fc1.weight");
  if (c->depth == 0 || need(fc1, path, "blocks.0.mlp.fc1.weight") || shape_is(fc1, path, 2, (int64_t[]){-1, D}))
    return c->depth ? BEIT_ERR : beit_errorf("%s: no transformer blocks found", path);
  c->mlp_ratio = (float)fc1->shape[0] / D;
  c->layer_scale_init = find(v, "blocks.0.gamma_1") ? 0.1f : 0;
  const beit_st_entry *shared = find(v, "rel_pos_bias.relative_position_bias_table");
  const beit_st_entry *per = find(v, "blocks.0.attn.relative_position_bias_table"), *table = shared ? shared : per;
  const beit_st_entry *pos = find(v, "pos_embed");
  if (shared && per)
    return beit_errorf("%s: both a shared table ('%s') and per-block tables ('%s'): not supported", path, shared->name,
                       per->name);
  c->rel_pos = shared ? BEIT_RELPOS_SHARED : per ? BEIT_RELPOS_PER_BLOCK : BEIT_RELPOS_NONE;
  c->abs_pos_emb = pos != NULL;
  int grid = 0, heads = 0;
  if (table) {
    if (shape_is(table, path, 2, (int64_t[]){-1, -1})) return BEIT_ERR;
    if (!(grid = grid_of_table(table->shape[0])))
      return beit_errorf("%s: '%s' has %lld rows, not (2g-1)^2 + 3 for any patch grid g", path, table->name,
                         (long long)table->shape[0]);
    heads = (int)table->shape[1];
  }
  if (pos) {
    int g = shape_is(pos, path, 3, (int64_t[]){1, -1, D}) ? -1 : grid_of_tokens(pos->shape[1]);
    if (g <= 0) return g < 0 ? BEIT_ERR : beit_errorf("%s: '%s' has %lld positions, not 1 + g^2", path, pos->name,
                                                      (long long)pos->shape[1]);
    if (grid && g != grid)
      return beit_errorf("%s: '%s' is for a %dx%d patch grid but '%s' for %dx%d", path, pos->name, g, g, table->name,
                         grid, grid);
    grid = g;
  }
  int hf_image = 0, hf_heads = 0;
  if (hf) json_int(hf, "image_size", &hf_image), json_int(hf, "num_attention_heads", &hf_heads);
  if (!grid && hf_image > 0) grid = hf_image / P;
  if (!grid) return beit_errorf("%s: neither a relative position table nor pos_embed tells the image size", path);
  if (!heads) heads = hf_heads > 0 ? hf_heads : D % 64 == 0 ? D / 64 : 0;  /* every released BEiT: 64 per head */
  if (heads <= 0) return beit_errorf("%s: no relative position table to tell the number of heads", path);
  c->heads = heads, c->image_size = grid * P;
  const beit_st_entry *lm = find(v, "lm_head.weight"), *head = find(v, "head.weight"), *pix = find(v, "pixel_head.weight");
  if (lm && shape_is(lm, path, 2, (int64_t[]){-1, D})) return BEIT_ERR;
  if (head && shape_is(head, path, 2, (int64_t[]){-1, D})) return BEIT_ERR;
  c->vocab_size = lm ? (int)lm->shape[0] : 0;
  c->num_classes = head ? (int)head->shape[0] : 0;
  c->pixel_head = pix != NULL;
  c->use_mean_pooling = !head || find(v, "fc_norm.weight") != NULL;
  if (head && !c->use_mean_pooling && !find(v, "norm.weight"))
    return beit_errorf("%s: classifier '%s' without a final norm (neither fc_norm nor norm)", path, head->name);
  c->ln_eps = v->scheme == BEIT_SCHEME_HF ? 1e-12f : 1e-6f;  /* HF BeitConfig default; official and timm: 1e-6 */
  c->drop_path = 0.1f;
  return hf ? agree_with_hf(v, hf, cfg_path, c) : BEIT_OK;
}

/* ------------------------------------------------------------------ reading */
static int verify_index(const beit_model *m, const beit_safetensors *st, int j) {
  const beit_st_entry *e = &st->e[j];
  size_t N = (size_t)m->tokens;
  if (beit_st_numel(e) != N * N) {
    char have[96];
    shape_str(e->shape, e->ndim, have, sizeof have);
    return beit_errorf("%s: '%s' has shape %s, expected [%zu, %zu] for a %dx%d patch grid", st->path, e->name, have, N,
                       N, m->grid, m->grid);
  }
  int64_t *idx = malloc(N * N * sizeof(int64_t));
  int rc = idx ? beit_st_read_i64(st, j, idx, N * N) : beit_errorf("out of memory");
  for (size_t i = 0; i < N * N && rc == BEIT_OK; i++)
    if (idx[i] != m->relpos_index[i])
      rc = beit_errorf("%s: '%s' differs from BEiT's relative position index at [%zu, %zu] (%lld, expected %d)", st->path,
                       e->name, i / N, i % N, (long long)idx[i], m->relpos_index[i]);
  free(idx);
  return rc;
}

static int read_tensor(beit_model *m, const view *v, const beit_tensor_info *t, char *used) {
  const beit_safetensors *st = v->st;
  char names[3][BEIT_NAME_MAX], have[96], want[96];
  int parts = scheme_names(v, t->name, names);
  if (parts == 0) return beit_errorf("%s: %s has no name for '%s'", st->path, beit_scheme_name(v->scheme), t->name);
  int64_t shape[BEIT_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] /= parts;
  size_t numel = t->numel / (size_t)parts;
  for (int k = 0; k < parts; k++) {
    int j = beit_st_find(st, names[k]);
    if (j < 0) return beit_errorf("%s: missing tensor '%s' (this architecture needs it)", st->path, names[k]);
    const beit_st_entry *e = &st->e[j];
    int same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == shape[d];
    if (!same) {
      shape_str(e->shape, e->ndim, have, sizeof have);
      shape_str(shape, t->ndim, want, sizeof want);
      return beit_errorf("%s: '%s' has shape %s, expected %s for this architecture", st->path, e->name, have, want);
    }
    if (e->dtype != BEIT_ST_F32 && e->dtype != BEIT_ST_F16 && e->dtype != BEIT_ST_BF16 && e->dtype != BEIT_ST_F64)
      return beit_errorf("%s: '%s' has dtype %s, expected a float type", st->path, e->name, beit_st_dtype_name(e->dtype));
    if (beit_st_read_f32(st, j, m->params.data + t->offset + (size_t)k * numel, numel) != BEIT_OK) return BEIT_ERR;
    used[j] = 1;
  }
  return BEIT_OK;
}

/* Reads every tensor of m through the view; index buffers are verified, a
 * leftover tensor is an error (optimizer state of our own checkpoints aside). */
static int read_all(beit_model *m, const view *v, int *ignored) {
  const beit_safetensors *st = v->st;
  char *used = calloc((size_t)st->n + 1, 1);
  int rc = used ? BEIT_OK : beit_errorf("out of memory");
  for (int i = 0; i < m->params.n && rc == BEIT_OK; i++) rc = read_tensor(m, v, &m->params.t[i], used);
  int extra = 0;
  char list[600] = "";
  *ignored = 0;
  for (int j = 0; j < st->n && rc == BEIT_OK; j++) {
    const char *k = st->e[j].name;
    if (used[j] || (v->scheme == BEIT_SCHEME_BEIT && starts_with(k, "optim."))) continue;
    if (ends_with(k, "relative_position_index")) {
      rc = verify_index(m, st, j);
      (*ignored)++;
      continue;
    }
    if (extra++ < 4) snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%.100s'", extra > 1 ? ", " : "", k);
  }
  free(used);
  if (rc == BEIT_OK && extra)
    rc = beit_errorf("%s: %d tensor%s this BEiT has no place for (%s names): %s%s", st->path, extra, extra > 1 ? "s" : "",
                     beit_scheme_name(v->scheme), list, extra > 4 ? ", ..." : "");
  return rc;
}

/* ------------------------------------------------------------------ class names, normalisation */
void beit_checkpoint_info_free(beit_checkpoint_info *info) {
  if (!info) return;
  for (int k = 0; k < info->num_names; k++) free(info->class_names[k]);
  free(info->class_names);
  info->class_names = NULL;
  info->num_names = 0;
}

static int set_names_from_text(beit_checkpoint_info *info, const char *text, int K) {
  info->class_names = calloc((size_t)K + 1, sizeof(char *));
  if (!info->class_names) return beit_errorf("out of memory for %d class names", K);
  info->num_names = K;
  const char *p = text;
  for (int k = 0; k < K; k++) {
    const char *end = p ? strchr(p, '\n') : NULL;
    size_t len = p ? (end ? (size_t)(end - p) : strlen(p)) : 0;
    char buf[32];
    const char *name = p;
    if (len == 0) len = (size_t)snprintf(buf, sizeof buf, "class %d", k), name = buf;
    if (!(info->class_names[k] = malloc(len + 1))) return beit_errorf("out of memory for %d class names", K);
    memcpy(info->class_names[k], name, len);
    info->class_names[k][len] = 0;
    p = p && end ? end + 1 : NULL;
  }
  return BEIT_OK;
}

/* id2label {"0": "name", ...} or label_names ["name", ...] -> newline-separated, or NULL. */
static char *names_from_json(const cJSON *j, int K) {
  const cJSON *id2 = cJSON_GetObjectItemCaseSensitive(j, "id2label"), *list = cJSON_GetObjectItemCaseSensitive(j, "label_names");
  if (!cJSON_IsObject(id2) && !cJSON_IsArray(list)) return NULL;
  size_t len = 1;
  const char **names = calloc((size_t)K + 1, sizeof(char *));
  if (!names) return NULL;
  for (int k = 0; k < K; k++) {
    char key[16];
    snprintf(key, sizeof key, "%d", k);
    const cJSON *s = cJSON_IsObject(id2) ? cJSON_GetObjectItemCaseSensitive(id2, key) : cJSON_GetArrayItem(list, k);
    names[k] = cJSON_IsString(s) && !strchr(s->valuestring, '\n') ? s->valuestring : "";
    len += strlen(names[k]) + 1;
  }
  char *text = calloc(len, 1);
  for (int k = 0; k < K && text; k++) strcat(strcat(text, names[k]), k + 1 < K ? "\n" : "");
  free(names);
  return text;
}

static int json_triplet(const cJSON *j, const char *key, float out[3]) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) return 0;
  for (int c = 0; c < 3; c++) {
    const cJSON *x = cJSON_GetArrayItem(a, c);
    if (!cJSON_IsNumber(x)) return 0;
    out[c] = (float)x->valuedouble;
  }
  return 1;
}

/* Fills names, mean/std and crop share: our metadata first, then config.json
 * (HF id2label, timm label_names / pretrained_cfg), preprocessor_config.json,
 * then the defaults (ImageNet-1k names for 1000 classes; BEiT's 0.5/0.5). */
static int fill_info(beit_checkpoint_info *info, const beit_model *m, const beit_safetensors *st, const cJSON *cfg,
                     const cJSON *pre) {
  int K = m->cfg.num_classes;
  const char *meta_names = beit_st_meta(st, "class_names"), *norm = beit_st_meta(st, "normalize");
  const cJSON *pcfg = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "pretrained_cfg") : NULL;
  char *json_names = cfg && K > 0 ? names_from_json(cfg, K) : NULL;
  if (K > 0) {
    if (meta_names) info->names_from = "the checkpoint's class_names";
    else if (json_names) info->names_from = "config.json";
    else if (K == 1000) info->names_from = "data/imagenet_classes.txt (ImageNet-1k)";
    else info->names_from = "class numbers";
    info->names_stated = meta_names || json_names;
    const char *text = meta_names ? meta_names : json_names ? json_names : K == 1000 ? IMAGENET_CLASSES : NULL;
    if (set_names_from_text(info, text, K) != BEIT_OK) {
      free(json_names);
      return beit_error_context("%s", info->weights);
    }
  }
  free(json_names);
  for (int c = 0; c < 3; c++) info->mean[c] = info->std[c] = 0.5f;
  info->norm_from = "BEiT's default 0.5/0.5";
  float mean[3], std[3];
  if (norm && sscanf(norm, "%f %f %f %f %f %f", &mean[0], &mean[1], &mean[2], &std[0], &std[1], &std[2]) == 6) {
    memcpy(info->mean, mean, sizeof mean), memcpy(info->std, std, sizeof std);
    info->norm_from = "the checkpoint's normalize";
  } else if (pre && json_triplet(pre, "image_mean", mean) && json_triplet(pre, "image_std", std)) {
    memcpy(info->mean, mean, sizeof mean), memcpy(info->std, std, sizeof std);
    info->norm_from = "preprocessor_config.json";
  } else if (pcfg && json_triplet(pcfg, "mean", mean) && json_triplet(pcfg, "std", std)) {
    memcpy(info->mean, mean, sizeof mean), memcpy(info->std, std, sizeof std);
    info->norm_from = "config.json pretrained_cfg";
  }
  if (beit_eval_norm_check(info->mean, info->std) != BEIT_OK)
    return beit_error_context("%s (from %s)", info->weights, info->norm_from);
  double crop = 0;
  const char *meta_crop = beit_st_meta(st, "crop_pct"), *crop_from = "its metadata";
  int stated = meta_crop != NULL;
  if (meta_crop) {
    char *end;
    crop = strtod(meta_crop, &end);
    if (end == meta_crop || *end) crop = NAN;  /* not a number: refused below */
  } else if (pcfg && json_num(pcfg, "crop_pct", &crop)) {
    stated = 1, crop_from = "config.json pretrained_cfg";
  }
  info->crop_pct = stated ? (float)crop : 0;  /* 0 = not stated */
  if (stated && beit_eval_crop_check(m->cfg.image_size, info->crop_pct) != BEIT_OK)
    return beit_error_context("%s (from %s)", info->weights, crop_from);
  return BEIT_OK;
}

beit_eval_prep beit_checkpoint_eval_prep(const beit_model *m, const beit_checkpoint_info *info, float crop_pct) {
  return beit_eval_prep_make(m->cfg.image_size, crop_pct > 0 ? crop_pct : info->crop_pct, info->mean, info->std);
}

/* ------------------------------------------------------------------ opening */
/* A small hostile file must not make us allocate gigabytes: before the model
 * exists, its config must describe no more parameters than the file has bytes of
 * tensors (1 byte a value: half of fp16, leaving room for an absent head). */
static int check_fits_file(const beit_safetensors *st, const beit_config *c) {
  double n = beit_config_param_count(c);
  if (n < 0) return beit_error_context("%s", st->path);
  if (n > (double)st->data_size)
    return beit_errorf("%s: the configuration describes %.0f parameters, but the file holds only %zu bytes of tensors",
                       st->path, n, st->data_size);
  return BEIT_OK;
}

int beit_checkpoint_open(beit_model *m, const char *path, beit_checkpoint_info *info) {
  if (!m || !path) return beit_errorf("beit_checkpoint_open: the %s is NULL", m ? "path" : "model");
  beit_checkpoint_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof *info);
  memset(m, 0, sizeof *m);
  char pre_path[1100];
  if (resolve_paths(path, info->weights, info->config, pre_path, sizeof info->weights) != BEIT_OK) return BEIT_ERR;
  beit_safetensors st;
  if (beit_st_open(&st, info->weights) != BEIT_OK) return BEIT_ERR;
  view v = {.st = &st};
  detect_scheme(&v);
  info->scheme = v.scheme;
  cJSON *cfg = NULL, *pre = NULL;
  int rc = BEIT_OK;
  if (v.scheme != BEIT_SCHEME_BEIT && info->config[0] && !(cfg = read_json(info->config))) rc = BEIT_ERR;
  if (rc == BEIT_OK && v.scheme != BEIT_SCHEME_BEIT && pre_path[0] && !(pre = read_json(pre_path))) rc = BEIT_ERR;
  if (cfg && !cJSON_GetObjectItemCaseSensitive(cfg, "model_type") && !cJSON_GetObjectItemCaseSensitive(cfg, "pretrained_cfg")) {
    cJSON_Delete(cfg);  /* some other program's config.json */
    cfg = NULL;
  }
  if (!cfg) info->config[0] = 0;
  if (cfg && v.scheme == BEIT_SCHEME_UNILM && cJSON_GetObjectItemCaseSensitive(cfg, "pretrained_cfg"))
    v.scheme = info->scheme = BEIT_SCHEME_TIMM;  /* timm's hub layout; older timm versions saved index buffers too */
  beit_config c;
  if (rc == BEIT_OK) {
    if (v.scheme == BEIT_SCHEME_BEIT) rc = beit_config_from_json(&c, beit_st_meta(&st, "config"), info->weights);
    else rc = infer_config(&v, v.scheme == BEIT_SCHEME_HF ? cfg : NULL, info->config, &c);
  }
  if (rc == BEIT_OK) rc = check_fits_file(&st, &c);
  if (rc == BEIT_OK) rc = beit_model_init(m, &c);
  if (rc == BEIT_OK) {
    rc = read_all(m, &v, &info->ignored);
    if (rc == BEIT_OK) rc = fill_info(info, m, &st, cfg, pre);
    if (rc != BEIT_OK) beit_model_free(m);
  }
  cJSON_Delete(cfg);
  cJSON_Delete(pre);
  beit_st_close(&st);
  if (info == &local || rc != BEIT_OK) beit_checkpoint_info_free(info);
  return rc;
}

/* ------------------------------------------------------------------ writing */
static char *join_names(const beit_checkpoint_info *info, int K) {
  size_t len = 1;
  for (int k = 0; k < K; k++) len += strlen(info->class_names[k]) + 1;
  char *s = calloc(len, 1);
  for (int k = 0; k < K && s; k++) strcat(strcat(s, info->class_names[k]), k + 1 < K ? "\n" : "");
  if (!s) beit_errorf("out of memory for %d class names", K);
  return s;
}

static int usable_names(const beit_checkpoint_info *info, int K) {
  return info && K > 0 && info->num_names == K && info->class_names;
}

static float eval_crop_pct(const beit_checkpoint_info *info, int S) {
  if (info && info->crop_pct > 0) return info->crop_pct;
  return beit_default_crop_pct(S);
}

static int write_weights(const beit_model *m, const beit_checkpoint_info *info, beit_scheme scheme, const char *path) {
  const beit_params *p = &m->params;
  view v = {.scheme = scheme, .hf_prefix = "beit.", .hf_top_norm = m->cfg.vocab_size > 0};
  int index_tensors = scheme != BEIT_SCHEME_UNILM || m->cfg.rel_pos == BEIT_RELPOS_NONE ? 0
                      : m->cfg.rel_pos == BEIT_RELPOS_SHARED ? 1 : m->cfg.depth;
  int cap = 3 * p->n + index_tensors;
  beit_st_tensor *t = calloc((size_t)cap, sizeof *t);
  const int64_t **i64 = calloc((size_t)cap, sizeof *i64);
  char (*names)[BEIT_NAME_MAX] = calloc((size_t)cap, sizeof *names);
  int64_t (*shapes)[BEIT_MAX_DIMS] = calloc((size_t)cap, sizeof *shapes);
  size_t NN = (size_t)m->tokens * m->tokens;
  int64_t *index = malloc(NN * sizeof(int64_t)), index_shape[2] = {m->tokens, m->tokens};
  int n = 0, rc = t && i64 && names && shapes && index ? BEIT_OK : beit_errorf("out of memory");
  for (int i = 0; i < p->n && rc == BEIT_OK; i++) {
    const beit_tensor_info *ti = &p->t[i];
    char parts[3][BEIT_NAME_MAX];
    int k = scheme_names(&v, ti->name, parts);
    if (k == 0) {
      rc = beit_errorf("'%s' has no counterpart in the %s scheme (the pixel-regression head is beit.c's own)", ti->name,
                       beit_scheme_name(scheme));
      break;
    }
    for (int part = 0; part < k; part++, n++) {
      snprintf(names[n], BEIT_NAME_MAX, "%s", parts[part]);
      memcpy(shapes[n], ti->shape, sizeof shapes[n]);
      shapes[n][0] /= k;
      t[n] = (beit_st_tensor){names[n], ti->ndim, shapes[n], p->data + ti->offset + (size_t)part * (ti->numel / k)};
    }
  }
  for (size_t i = 0; rc == BEIT_OK && i < NN; i++) index[i] = m->relpos_index[i];
  for (int l = 0; l < index_tensors && rc == BEIT_OK; l++, n++) {
    if (m->cfg.rel_pos == BEIT_RELPOS_SHARED) snprintf(names[n], BEIT_NAME_MAX, "rel_pos_bias.relative_position_index");
    else snprintf(names[n], BEIT_NAME_MAX, "blocks.%d.attn.relative_position_index", l);
    t[n] = (beit_st_tensor){names[n], 2, index_shape, NULL};
    i64[n] = index;
  }
  char *json = beit_config_to_json(&m->cfg), *class_text = usable_names(info, m->cfg.num_classes)
                                                               ? join_names(info, m->cfg.num_classes) : NULL;
  if (rc == BEIT_OK && (!json || (usable_names(info, m->cfg.num_classes) && !class_text)))
    rc = beit_errorf("%s: out of memory for the metadata", path);
  char norm[160], crop[32];
  const float *mean = info ? info->mean : (const float[]){0.5f, 0.5f, 0.5f}, *std = info ? info->std : mean;
  snprintf(norm, sizeof norm, "%g %g %g %g %g %g", mean[0], mean[1], mean[2], std[0], std[1], std[2]);
  snprintf(crop, sizeof crop, "%g", eval_crop_pct(info, m->cfg.image_size));
  const char *kv[10];
  int nm = 0;
  kv[2 * nm] = "format", kv[2 * nm + 1] = "pt", nm++;  /* transformers refuses safetensors without it */
  kv[2 * nm] = "normalize", kv[2 * nm + 1] = norm, nm++;
  kv[2 * nm] = "crop_pct", kv[2 * nm + 1] = crop, nm++;
  if (class_text) kv[2 * nm] = "class_names", kv[2 * nm + 1] = class_text, nm++;
  if (scheme == BEIT_SCHEME_BEIT) kv[2 * nm] = "config", kv[2 * nm + 1] = json, nm++;
  if (rc == BEIT_OK) rc = beit_st_write_i64(path, t, (const int64_t *const *)i64, n, kv, nm);
  free(json), free(class_text), free(t), free(i64), free(names), free(shapes), free(index);
  return rc;
}

static int write_json(const char *path, cJSON *j) {
  char *s = cJSON_Print(j);
  int rc = s ? beit_write_file_atomic(path, s, strlen(s)) : beit_errorf("%s: out of memory", path);
  free(s);
  return rc;
}

/* A float as the shortest decimal that reads back as it (1e-06, not 9.99999997e-07). */
static double tidy(float f) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.7g", f);
  return strtod(buf, NULL);
}

/* Hugging Face BeitConfig for m (field names of configuration_beit.py). */
static cJSON *hf_config_json(const beit_model *m, const beit_checkpoint_info *info) {
  const beit_config *c = &m->cfg;
  cJSON *j = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(j, "architectures");
  const char *cls = c->num_classes > 0 ? "BeitForImageClassification" : c->vocab_size > 0 ? "BeitForMaskedImageModeling" : "BeitModel";
  cJSON_AddItemToArray(arch, cJSON_CreateString(cls));
  cJSON_AddStringToObject(j, "model_type", "beit");
  cJSON_AddNumberToObject(j, "hidden_size", c->dim);
  cJSON_AddNumberToObject(j, "num_hidden_layers", c->depth);
  cJSON_AddNumberToObject(j, "num_attention_heads", c->heads);
  cJSON_AddNumberToObject(j, "intermediate_size", (int)lroundf(c->dim * c->mlp_ratio));
  cJSON_AddStringToObject(j, "hidden_act", "gelu");
  cJSON_AddNumberToObject(j, "hidden_dropout_prob", 0.0);
  cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", 0.0);
  cJSON_AddNumberToObject(j, "initializer_range", 0.02);
  cJSON_AddNumberToObject(j, "layer_norm_eps", tidy(c->ln_eps));
  cJSON_AddNumberToObject(j, "image_size", c->image_size);
  cJSON_AddNumberToObject(j, "patch_size", c->patch_size);
  cJSON_AddNumberToObject(j, "num_channels", c->channels);
  cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size > 0 ? c->vocab_size : 8192);
  cJSON_AddBoolToObject(j, "use_mask_token", c->vocab_size > 0);
  cJSON_AddBoolToObject(j, "use_absolute_position_embeddings", c->abs_pos_emb);
  cJSON_AddBoolToObject(j, "use_relative_position_bias", c->rel_pos == BEIT_RELPOS_PER_BLOCK);
  cJSON_AddBoolToObject(j, "use_shared_relative_position_bias", c->rel_pos == BEIT_RELPOS_SHARED);
  cJSON_AddNumberToObject(j, "layer_scale_init_value", tidy(c->layer_scale_init));
  cJSON_AddNumberToObject(j, "drop_path_rate", tidy(c->drop_path));
  cJSON_AddBoolToObject(j, "use_mean_pooling", c->num_classes > 0 ? c->use_mean_pooling : 1);
  cJSON_AddStringToObject(j, "torch_dtype", "float32");
  if (c->num_classes > 0) {
    cJSON *id2 = cJSON_AddObjectToObject(j, "id2label"), *l2i = cJSON_AddObjectToObject(j, "label2id");
    for (int k = 0; k < c->num_classes; k++) {
      char key[16], fallback[32];
      snprintf(key, sizeof key, "%d", k);
      snprintf(fallback, sizeof fallback, "LABEL_%d", k);
      const char *name = usable_names(info, c->num_classes) ? info->class_names[k] : fallback;
      cJSON_AddStringToObject(id2, key, name);
      if (!cJSON_GetObjectItemCaseSensitive(l2i, name)) cJSON_AddNumberToObject(l2i, name, k);  /* first of duplicates */
    }
  }
  return j;
}

/* BeitImageProcessor settings close to our eval transform (it resizes to a square). */
static cJSON *hf_preprocessor_json(const beit_model *m, const beit_checkpoint_info *info) {
  int S = m->cfg.image_size, R = beit_eval_resize_side(S, eval_crop_pct(info, S));
  const float *mean = info ? info->mean : (const float[]){0.5f, 0.5f, 0.5f}, *std = info ? info->std : mean;
  cJSON *j = cJSON_CreateObject(), *size, *crop;
  cJSON_AddStringToObject(j, "image_processor_type", "BeitImageProcessor");
  cJSON_AddBoolToObject(j, "do_resize", 1);
  size = cJSON_AddObjectToObject(j, "size");
  cJSON_AddNumberToObject(size, "height", R), cJSON_AddNumberToObject(size, "width", R);
  cJSON_AddNumberToObject(j, "resample", 3);  /* PIL bicubic */
  cJSON_AddBoolToObject(j, "do_center_crop", 1);
  crop = cJSON_AddObjectToObject(j, "crop_size");
  cJSON_AddNumberToObject(crop, "height", S), cJSON_AddNumberToObject(crop, "width", S);
  cJSON_AddBoolToObject(j, "do_rescale", 1);
  cJSON_AddNumberToObject(j, "rescale_factor", 1.0 / 255);
  cJSON_AddBoolToObject(j, "do_normalize", 1);
  cJSON *a = cJSON_AddArrayToObject(j, "image_mean"), *b = cJSON_AddArrayToObject(j, "image_std");
  for (int c = 0; c < 3; c++)
    cJSON_AddItemToArray(a, cJSON_CreateNumber(tidy(mean[c]))), cJSON_AddItemToArray(b, cJSON_CreateNumber(tidy(std[c])));
  cJSON_AddBoolToObject(j, "do_reduce_labels", 0);
  return j;
}

int beit_checkpoint_export(const beit_model *m, const beit_checkpoint_info *info, beit_scheme scheme, const char *out) {
  if (scheme != BEIT_SCHEME_HF) return write_weights(m, info, scheme, out);
  if (m->cfg.abs_pos_emb && m->cfg.vocab_size > 0)
    fprintf(stderr, "beit: note: transformers adds position_embeddings before the mask token replaces masked patches; "
                    "official BEiT (and beit.c) after, so masked-image-modeling outputs differ\n");
  char path[1200];
  if (beit_mkdir_p(out) != BEIT_OK) return BEIT_ERR;
  snprintf(path, sizeof path, "%.1100s/model.safetensors", out);
  if (write_weights(m, info, scheme, path) != BEIT_OK) return BEIT_ERR;
  cJSON *cfg = hf_config_json(m, info), *pre = hf_preprocessor_json(m, info);
  snprintf(path, sizeof path, "%.1100s/config.json", out);
  int rc = write_json(path, cfg);
  snprintf(path, sizeof path, "%.1100s/preprocessor_config.json", out);
  if (rc == BEIT_OK) rc = write_json(path, pre);
  cJSON_Delete(cfg);
  cJSON_Delete(pre);
  return rc;
}

/* ------------------------------------------------------------------ surgery */
static int same_shape(const beit_tensor_info *a, const beit_tensor_info *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

static int resize_table(float *dst, const beit_tensor_info *dt, const float *src, const beit_tensor_info *sti) {
  int gd = grid_of_table(dt->shape[0]), gs = grid_of_table(sti->shape[0]);
  if (dt->shape[1] != sti->shape[1] || !gd || !gs) return BEIT_ERR;
  return beit_relpos_table_resize(dst, gd, src, gs, (int)dt->shape[1]);
}

static int shape_error(const char *src_name, const beit_tensor_info *dt, const beit_tensor_info *sti) {
  char have[96], want[96];
  shape_str(sti->shape, sti->ndim, have, sizeof have);
  shape_str(dt->shape, dt->ndim, want, sizeof want);
  return beit_errorf("%s: '%s' has shape %s, the model being built expects %s", src_name, dt->name, have, want);
}

int beit_checkpoint_transfer(beit_model *dst, const beit_model *src, const char *src_name, beit_transfer_report *r) {
  memset(r, 0, sizeof *r);
  const beit_params *sp = &src->params;
  beit_params *dp = &dst->params;
  char *used = calloc((size_t)sp->n + 1, 1);
  int shared = beit_params_find(sp, "rel_pos_bias.relative_position_bias_table"), rc = BEIT_OK;
  for (int i = 0; i < dp->n && rc == BEIT_OK; i++) {
    const beit_tensor_info *dt = &dp->t[i];
    float *out = dp->data + dt->offset;
    int j = beit_params_find(sp, dt->name);
    if (j < 0 && shared >= 0 && ends_with(dt->name, "attn.relative_position_bias_table")) {
      j = shared;  /* spec 1.4: the pretraining table becomes each block's own */
      r->from_shared++;
    }
    if (j < 0) {
      r->kept++;
      continue;
    }
    const beit_tensor_info *sti = &sp->t[j];
    const float *in = sp->data + sti->offset;
    used[j] = 1;
    if (same_shape(dt, sti)) {
      memcpy(out, in, dt->numel * sizeof(float));
      r->copied++;
    } else if (ends_with(dt->name, "relative_position_bias_table")) {
      if (resize_table(out, dt, in, sti) != BEIT_OK) rc = beit_error_context("%s: '%s'", src_name, dt->name);
      r->resized++;
    } else if (!strcmp(dt->name, "pos_embed") && dst->cfg.dim == src->cfg.dim) {
      beit_pos_embed_resize(out, dst->grid, in, src->grid, dst->cfg.dim);
      r->resized++;
    } else if (starts_with(dt->name, "head.")) {
      r->kept++;  /* another number of classes: the head starts afresh (official fine-tuning does the same) */
    } else {
      rc = shape_error(src_name, dt, sti);
    }
  }
  for (int j = 0; j < sp->n; j++) r->unused += !used[j];
  if (rc == BEIT_OK && beit_params_find(sp, "pos_embed") >= 0 && beit_params_find(dp, "pos_embed") < 0)
    fprintf(stderr, "beit: note: %s has absolute position embeddings; this model has none, they are dropped\n", src_name);
  free(used);
  return rc;
}

int beit_checkpoint_load_pretrained(beit_model *dst, const char *path, beit_transfer_report *r) {
  beit_model src;
  if (beit_checkpoint_open(&src, path, NULL) != BEIT_OK) return BEIT_ERR;
  int rc = beit_checkpoint_transfer(dst, &src, path, r);
  if (rc == BEIT_OK && r->copied + r->resized == 0) rc = beit_errorf("%s: no tensor fits the model", path);
  beit_model_free(&src);
  return rc;
}

int beit_model_open(beit_model *m, const char *path) { return beit_checkpoint_open(m, path, NULL); }
