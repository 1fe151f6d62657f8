/* test_interop.c - checkpoints of timm, unilm and Hugging Face against the
 * PyTorch references of tests/ref/interop_ref.py (each scheme's own module with
 * that library's names): logits of every imported model within 1e-4; export ->
 * import bit-exact for every scheme; exports loaded by the reference with
 * load_state_dict(strict=True) give our logits; malformed files refused naming
 * the key and the shapes; relative position tables resized as unilm's scipy
 * code does; `beit predict / attention / convert` on image files.
 * BEIT_TEST_BEIT_B=1 adds BEiT-B at 224 (timm and HF names). */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "model/convert.h"
#include "io/image.h"
#include "model/pos_resize.h"
#include "test.h"

static char DIR_[900];

typedef struct {
  const char *name;
  beit_scheme scheme;
} test_case;

static const test_case CASES[] = {
    {"timm_cls", BEIT_SCHEME_TIMM}, {"timm_abs", BEIT_SCHEME_TIMM}, {"unilm_mim", BEIT_SCHEME_UNILM},
    {"hf_cls", BEIT_SCHEME_HF},     {"hf_mim", BEIT_SCHEME_HF},     {"hf_abs", BEIT_SCHEME_HF},
};

static int python(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/interop_ref.py %s", fx_root(), args);
  int rc = system(cmd);
  if (rc) printf("  FAIL reference failed: %s\n", cmd);
  return rc;
}

static void path_of(char *out, size_t n, const char *name, beit_scheme s) {
  snprintf(out, n, "%s/%s%s", DIR_, name, s == BEIT_SCHEME_HF ? "" : ".safetensors");
}

/* Our logits for the reference inputs: [B, K] (classifier) or [masked, V] (MIM). */
static float *our_logits(beit_model *m, const beit_safetensors *ref, size_t *count) {
  int i = beit_st_find(ref, "in.images");
  int B = (int)ref->e[i].shape[0];
  float *images = fx_f32(ref, "in.images", NULL);
  uint8_t *mask = beit_st_find(ref, "in.mask") >= 0 ? fx_u8(ref, "in.mask", NULL) : NULL;
  int32_t *tokens = calloc((size_t)B * m->num_patches, sizeof(int32_t));
  beit_model_reserve(m, B, 0);
  beit_input in = {.B = B, .images = images, .mask = mask, .tokens = tokens};
  int classify = m->cfg.num_classes > 0;
  BEIT_CHECK(beit_forward(m, classify ? BEIT_TASK_CLASSIFY : BEIT_TASK_MIM, &in, 0, 0, 0, NULL) == BEIT_OK);
  size_t rows = (size_t)B;
  if (!classify) {
    rows = 0;
    for (size_t k = 0; k < (size_t)B * m->num_patches; k++) rows += mask[k];
  }
  *count = rows * (size_t)(classify ? m->cfg.num_classes : m->cfg.vocab_size);
  float *out = malloc(*count * sizeof(float));
  memcpy(out, beit_logits(m), *count * sizeof(float));
  free(images), free(mask), free(tokens);
  return out;
}

static int same_architecture(const beit_config *a, const beit_config *b) {
  return a->image_size == b->image_size && a->channels == b->channels && a->patch_size == b->patch_size &&
         a->dim == b->dim && a->depth == b->depth && a->heads == b->heads && a->mlp_ratio == b->mlp_ratio &&
         a->vocab_size == b->vocab_size && a->num_classes == b->num_classes && a->rel_pos == b->rel_pos &&
         a->abs_pos_emb == b->abs_pos_emb && a->use_mean_pooling == b->use_mean_pooling &&
         (a->layer_scale_init > 0) == (b->layer_scale_init > 0);
}

static int same_weights(const beit_model *a, const beit_model *b) {
  if (a->params.n != b->params.n || a->params.total != b->params.total) return 0;
  for (int i = 0; i < a->params.n; i++)
    if (strcmp(a->params.t[i].name, b->params.t[i].name) ||
        memcmp(a->params.data + a->params.t[i].offset, b->params.data + b->params.t[i].offset,
               a->params.t[i].numel * sizeof(float)))
      return 0;
  return 1;
}

/* Export to every scheme and back: the weights bit for bit, the architecture,
 * the class names; adds a strict PyTorch load of each foreign export to `jobs`. */
static void round_trips(const test_case *c, const beit_model *m, const beit_checkpoint_info *info, FILE *jobs) {
  for (int s = 0; s < 4; s++) {
    char out[1200], name[256];
    snprintf(name, sizeof name, "rt_%s.%s", c->name, beit_scheme_name((beit_scheme)s));
    path_of(out, sizeof out, name, (beit_scheme)s);
    beit_model back;
    beit_checkpoint_info bi;
    int ok = beit_checkpoint_export(m, info, (beit_scheme)s, out) == BEIT_OK &&
             beit_checkpoint_open(&back, out, &bi) == BEIT_OK;
    CHECK_TRUE(ok, "%s: export to %s and import (%s)", c->name, beit_scheme_name((beit_scheme)s),
               ok ? "ok" : beit_last_error());
    if (!ok) continue;
    int names_ok = m->cfg.num_classes == 0 || (bi.num_names == info->num_names &&
                                              !strcmp(bi.class_names[m->cfg.num_classes - 1],
                                                      info->class_names[m->cfg.num_classes - 1]));
    /* without relative position tables there are no index buffers: unilm's names are timm's */
    int unilm_as_timm = s == BEIT_SCHEME_UNILM && m->cfg.rel_pos == BEIT_RELPOS_NONE;
    beit_scheme expect = unilm_as_timm ? BEIT_SCHEME_TIMM : (beit_scheme)s;
    CHECK_TRUE(bi.scheme == expect && same_architecture(&m->cfg, &back.cfg) && same_weights(m, &back) &&
                   names_ok && (s == BEIT_SCHEME_TIMM || s == BEIT_SCHEME_UNILM || back.cfg.ln_eps == m->cfg.ln_eps),
               "%s -> %s -> beit.c: detected as %s, same architecture, weights bit-exact, class names kept", c->name,
               beit_scheme_name((beit_scheme)s), beit_scheme_name(bi.scheme));
    if (s != BEIT_SCHEME_BEIT)
      fprintf(jobs, "%s %s %s/%s.ref.safetensors %s/%s.torch.safetensors %d\n", beit_scheme_name((beit_scheme)s), out,
              DIR_, c->name, DIR_, name, m->cfg.heads);
    beit_checkpoint_info_free(&bi);
    beit_model_free(&back);
  }
}

static void check_case(const test_case *c, FILE *jobs) {
  char path[1200], refp[1200], what[200];
  path_of(path, sizeof path, c->name, c->scheme);
  snprintf(refp, sizeof refp, "%s/%s.ref.safetensors", DIR_, c->name);
  beit_model m;
  beit_checkpoint_info info;
  beit_safetensors ref;
  if (beit_checkpoint_open(&m, path, &info) != BEIT_OK || beit_st_open(&ref, refp) != BEIT_OK) {
    CHECK_TRUE(0, "%s: open: %s", c->name, beit_last_error());
    return;
  }
  CHECK_TRUE(info.scheme == c->scheme, "%s: scheme detected as %s", c->name, beit_scheme_name(info.scheme));
  size_t n, nref;
  float *got = our_logits(&m, &ref, &n), *want = fx_f32(&ref, "out.logits", &nref);
  snprintf(what, sizeof what, "%s logits vs PyTorch (%s names)", c->name, beit_scheme_name(c->scheme));
  if (n == nref) check_close(what, got, want, n, 1e-4, 0);
  else CHECK_TRUE(0, "%s: %zu logits, the reference has %zu", c->name, n, nref);
  /* what the strict PyTorch loads of the exports must reproduce: our logits; timm
   * and unilm fix LayerNorm eps to 1e-6 (no config), so those with eps 1e-6 */
  char ours[1300];
  snprintf(ours, sizeof ours, "%s/%s.ours.safetensors", DIR_, c->name);
  beit_st_write(ours, &(beit_st_tensor){"out.logits", 1, (int64_t[]){(int64_t)n}, got}, 1, NULL, 0);
  float eps = m.cfg.ln_eps, *got6 = (m.cfg.ln_eps = 1e-6f, our_logits(&m, &ref, &n));
  m.cfg.ln_eps = eps;
  snprintf(ours, sizeof ours, "%s/%s.ours-eps6.safetensors", DIR_, c->name);
  beit_st_write(ours, &(beit_st_tensor){"out.logits", 1, (int64_t[]){(int64_t)n}, got6}, 1, NULL, 0);
  if (jobs) round_trips(c, &m, &info, jobs);
  free(got), free(got6), free(want);
  beit_st_close(&ref);
  beit_checkpoint_info_free(&info);
  beit_model_free(&m);
}

static void check_torch_loads(void) {
  for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++)
    for (int s = 1; s < 4; s++) {
      char a[1200], b[1200], what[200];
      snprintf(a, sizeof a, "%s/rt_%s.%s.torch.safetensors", DIR_, CASES[k].name, beit_scheme_name((beit_scheme)s));
      snprintf(b, sizeof b, "%s/%s.ours%s.safetensors", DIR_, CASES[k].name, s == BEIT_SCHEME_HF ? "" : "-eps6");
      beit_safetensors ta, tb;
      if (beit_st_open(&ta, a) != BEIT_OK || beit_st_open(&tb, b) != BEIT_OK) {
        CHECK_TRUE(0, "%s", beit_last_error());
        continue;
      }
      size_t na, nb;
      float *x = fx_f32(&ta, "out.logits", &na), *y = fx_f32(&tb, "out.logits", &nb);
      snprintf(what, sizeof what, "%s exported as %s, strict torch load", CASES[k].name, beit_scheme_name((beit_scheme)s));
      if (na == nb) check_close(what, x, y, na, 1e-4, 0);
      free(x), free(y);
      beit_st_close(&ta), beit_st_close(&tb);
    }
}

/* ---- malformed checkpoints: a copy of a fixture with one change */
typedef struct {
  const char *drop;          /* tensor left out */
  const char *reshape;       /* tensor written with `shape` (values: zeros) */
  int64_t shape[4];
  int ndim;
  const char *add;           /* extra tensor [3] */
  const char *bump_index;    /* int tensor with one entry changed */
} change;

static int rewrite(const char *src, const char *dst, const change *ch) {
  beit_safetensors st;
  if (beit_st_open(&st, src) != BEIT_OK) return BEIT_ERR;
  int n = st.n + 1, k = 0;
  beit_st_tensor *t = calloc((size_t)n, sizeof *t);
  const int64_t **i64 = calloc((size_t)n, sizeof *i64);
  float **bufs = calloc((size_t)n, sizeof *bufs);
  for (int i = 0; i < st.n; i++) {
    const beit_st_entry *e = &st.e[i];
    if (ch->drop && !strcmp(e->name, ch->drop)) continue;
    size_t numel = beit_st_numel(e);
    t[k] = (beit_st_tensor){e->name, e->ndim, e->shape, NULL};
    if (e->dtype == BEIT_ST_I64) {
      int64_t *v = malloc(numel * sizeof(int64_t) + 8);
      beit_st_read_i64(&st, i, v, numel);
      if (ch->bump_index && !strcmp(e->name, ch->bump_index)) v[numel / 2] += 1;
      i64[k] = v;
      bufs[k] = (float *)v;
    } else if (ch->reshape && !strcmp(e->name, ch->reshape)) {
      size_t m = 1;
      for (int d = 0; d < ch->ndim; d++) m *= (size_t)ch->shape[d];
      bufs[k] = calloc(m + 1, sizeof(float));
      t[k].ndim = ch->ndim, t[k].shape = ch->shape, t[k].data = bufs[k];
    } else {
      bufs[k] = malloc(numel * sizeof(float) + 4);
      beit_st_read_f32(&st, i, bufs[k], numel);
      t[k].data = bufs[k];
    }
    k++;
  }
  static const int64_t three[1] = {3};
  static const float zeros[3] = {0};
  if (ch->add) t[k++] = (beit_st_tensor){ch->add, 1, three, zeros};
  const char *meta[] = {"format", "pt"};
  int rc = beit_st_write_i64(dst, t, i64, k, meta, 1);
  for (int i = 0; i < n; i++) free(bufs[i]);
  free(t), free(i64), free(bufs);
  beit_st_close(&st);
  return rc;
}

static void expect_refusal(const char *what, const char *path, const char *must1, const char *must2, const char *must3) {
  beit_model m;
  int rc = beit_checkpoint_open(&m, path, NULL);
  const char *msg = beit_last_error();
  int ok = rc != BEIT_OK && strstr(msg, must1) && (!must2 || strstr(msg, must2)) && (!must3 || strstr(msg, must3));
  CHECK_TRUE(ok, "%s refused: %s", what, rc == BEIT_OK ? "(was accepted)" : msg);
  if (rc == BEIT_OK) beit_model_free(&m);
}

static void check_malformed(void) {
  char src[1200], dst[1200];
  snprintf(src, sizeof src, "%s/timm_cls.safetensors", DIR_);
  snprintf(dst, sizeof dst, "%s/bad.safetensors", DIR_);
  change c1 = {.drop = "blocks.1.attn.proj.bias"};
  if (rewrite(src, dst, &c1) == BEIT_OK) expect_refusal("missing key", dst, "'blocks.1.attn.proj.bias'", NULL, NULL);
  change c2 = {.reshape = "blocks.0.attn.qkv.weight", .shape = {96, 31}, .ndim = 2};
  if (rewrite(src, dst, &c2) == BEIT_OK)
    expect_refusal("wrong shape", dst, "'blocks.0.attn.qkv.weight'", "[96, 31]", "[96, 32]");
  change c3 = {.add = "blocks.0.attn.k_bias"};
  if (rewrite(src, dst, &c3) == BEIT_OK) expect_refusal("unknown key", dst, "'blocks.0.attn.k_bias'", NULL, NULL);
  change c4 = {.reshape = "blocks.0.attn.relative_position_bias_table", .shape = {50, 4}, .ndim = 2};
  if (rewrite(src, dst, &c4) == BEIT_OK)
    expect_refusal("table of no grid", dst, "'blocks.0.attn.relative_position_bias_table'", "50 rows", NULL);
  change c5 = {.reshape = "blocks.1.attn.relative_position_bias_table", .shape = {124, 4}, .ndim = 2};
  if (rewrite(src, dst, &c5) == BEIT_OK)
    expect_refusal("tables of two grids", dst, "'blocks.1.attn.relative_position_bias_table'", "[124, 4]", "[52, 4]");
  snprintf(src, sizeof src, "%s/unilm_mim.safetensors", DIR_);
  change c6 = {.bump_index = "rel_pos_bias.relative_position_index"};
  if (rewrite(src, dst, &c6) == BEIT_OK)
    expect_refusal("wrong index buffer", dst, "'rel_pos_bias.relative_position_index'", "differs", NULL);
  /* Hugging Face: a missing key projection, and a config.json that disagrees */
  char dir[1000], cmd[4000];
  snprintf(dir, sizeof dir, "%s/bad_hf", DIR_);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s/hf_cls/config.json' '%s/'", dir, dir, DIR_, dir);
  if (system(cmd) == 0) {
    snprintf(src, sizeof src, "%s/hf_cls/model.safetensors", DIR_);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    change c7 = {.drop = "beit.encoder.layer.1.attention.attention.key.weight"};
    if (rewrite(src, dst, &c7) == BEIT_OK)
      expect_refusal("HF missing key", dir, "'beit.encoder.layer.1.attention.attention.key.weight'", NULL, NULL);
    change c8 = {.reshape = "beit.encoder.layer.0.attention.attention.value.weight", .shape = {32, 16}, .ndim = 2};
    if (rewrite(src, dst, &c8) == BEIT_OK)
      expect_refusal("HF wrong shape", dir, "'beit.encoder.layer.0.attention.attention.value.weight'", "[32, 16]",
                     "[32, 32]");
    change none = {0};
    rewrite(src, dst, &none);
    snprintf(cmd, sizeof cmd, "sed -i 's/\"hidden_size\": 32/\"hidden_size\": 64/' '%s/config.json'", dir);
    if (system(cmd) == 0) expect_refusal("HF config.json mismatch", dir, "hidden_size = 64", "[32, ...]", NULL);
  }
}

/* ---- timm's hub layout: model.safetensors + config.json with pretrained_cfg and label_names */
static void check_timm_hub_layout(void) {
  char dir[1000], cmd[4000];
  snprintf(dir, sizeof dir, "%s/timm_hub", DIR_);
  char src[1100], dst[1100];
  snprintf(src, sizeof src, "%s/rt_timm_cls.unilm.safetensors", DIR_);  /* with index buffers */
  snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
  snprintf(cmd, sizeof cmd,
           "rm -rf '%s' && mkdir -p '%s' && echo '{\"architecture\": \"beit_tiny\", \"num_classes\": 5, "
           "\"label_names\": [\"a\", \"b\", \"c\", \"d\", \"e\"], \"pretrained_cfg\": {\"mean\": [0.485, 0.456, 0.406], "
           "\"std\": [0.229, 0.224, 0.225], \"crop_pct\": 0.9}}' > '%s/config.json'",
           dir, dir, dir);
  beit_model m;
  beit_checkpoint_info info;
  change none = {0};  /* a copy without our metadata */
  if (system(cmd) != 0 || rewrite(src, dst, &none) != BEIT_OK || beit_checkpoint_open(&m, dir, &info) != BEIT_OK) {
    CHECK_TRUE(0, "timm hub folder: %s", beit_last_error());
    return;
  }
  CHECK_TRUE(info.scheme == BEIT_SCHEME_TIMM && info.num_names == 5 && !strcmp(info.class_names[4], "e") &&
                 info.mean[0] == 0.485f && info.std[2] == 0.225f && info.crop_pct == 0.9f && info.ignored == 2,
             "timm hub folder: timm names (index buffers checked: %d), label_names, pretrained_cfg mean/std/crop_pct",
             info.ignored);
  beit_checkpoint_info_free(&info);
  beit_model_free(&m);
}

/* ---- resizing: the C resize against scipy's interp2d / torch's bicubic */
static void check_resize(void) {
  char path[1000], args[1100], key[64], what[128];
  snprintf(path, sizeof path, "%s/resize.safetensors", DIR_);
  snprintf(args, sizeof args, "resize %s", path);
  beit_safetensors st;
  if (python(args) != 0 || beit_st_open(&st, path) != BEIT_OK) {
    test_failed_++;
    return;
  }
  const struct { const char *name; int gs, gd, h; } tables[] = {
      {"t4to6", 4, 6, 3}, {"t14to24", 14, 24, 12}, {"t14to32", 14, 32, 2}, {"t6to4", 6, 4, 2}, {"t3to8", 3, 8, 2}};
  for (size_t k = 0; k < sizeof tables / sizeof tables[0]; k++) {
    size_t nin, nout;
    snprintf(key, sizeof key, "%s.in", tables[k].name);
    float *in = fx_f32(&st, key, &nin);
    snprintf(key, sizeof key, "%s.out", tables[k].name);
    float *want = fx_f32(&st, key, &nout), *got = malloc(nout * sizeof(float));
    int rc = beit_relpos_table_resize(got, tables[k].gd, in, tables[k].gs, tables[k].h);
    snprintf(key, sizeof key, "%s.q", tables[k].name);
    double q_ref = atof(beit_st_meta(&st, key)), q = beit_relpos_ratio(2 * tables[k].gs - 1, 2 * tables[k].gd - 1);
    CHECK_TRUE(rc == BEIT_OK && q == q_ref, "%s: ratio q = %.7f (reference %.7f)", tables[k].name, q, q_ref);
    snprintf(what, sizeof what, "rel-pos table %dx%d -> %dx%d grid vs scipy interp2d", tables[k].gs, tables[k].gs,
             tables[k].gd, tables[k].gd);
    check_close(what, got, want, nout, 1e-5, 1e-5);
    free(in), free(want), free(got);
  }
  const struct { const char *name; int gs, gd, dim; } pos[] = {{"p4to6", 4, 6, 5}, {"p6to4", 6, 4, 3}, {"p14to24", 14, 24, 4}};
  for (size_t k = 0; k < sizeof pos / sizeof pos[0]; k++) {
    size_t nout;
    snprintf(key, sizeof key, "%s.in", pos[k].name);
    float *in = fx_f32(&st, key, NULL);
    snprintf(key, sizeof key, "%s.out", pos[k].name);
    float *want = fx_f32(&st, key, &nout), *got = malloc(nout * sizeof(float));
    beit_pos_embed_resize(got, pos[k].gd, in, pos[k].gs, pos[k].dim);
    snprintf(what, sizeof what, "pos_embed %dx%d -> %dx%d vs F.interpolate bicubic", pos[k].gs, pos[k].gs, pos[k].gd,
             pos[k].gd);
    check_close(what, got, want, nout, 1e-5, 1e-5);
    free(in), free(want), free(got);
  }
  float tiny[2 * 2 * 3 + 3 * 1] = {0}, out[7 * 7 + 3];
  CHECK_TRUE(beit_relpos_table_resize(out, 4, tiny, 2, 1) != BEIT_OK, "a 2x2-grid table is refused: %s",
             beit_last_error());
  beit_st_close(&st);
}

/* ---- fine-tuning surgery: MIM checkpoint (shared table, 16 px) -> classifier at 24 px */
static void check_transfer(void) {
  char path[1200];
  snprintf(path, sizeof path, "%s/unilm_mim.safetensors", DIR_);
  beit_model src, dst;
  if (beit_checkpoint_open(&src, path, NULL) != BEIT_OK) {
    CHECK_TRUE(0, "%s", beit_last_error());
    return;
  }
  beit_config c = src.cfg;
  c.image_size = 24, c.vocab_size = 0, c.num_classes = 10, c.rel_pos = BEIT_RELPOS_PER_BLOCK, c.use_mean_pooling = 1;
  beit_model_init(&dst, &c);
  beit_model_init_weights(&dst, 3, 0.001f);
  float *head0 = malloc(10 * 32 * sizeof(float));
  memcpy(head0, beit_params_get(&dst.params, "head.weight"), 10 * 32 * sizeof(float));
  beit_transfer_report r;
  int rc = beit_checkpoint_transfer(&dst, &src, path, &r);
  CHECK_TRUE(rc == BEIT_OK && r.from_shared == c.depth && r.resized == c.depth && r.unused == 5,
             "transfer: %d copied, %d resized, %d from the shared table, %d kept, %d unused (%s)", r.copied, r.resized,
             r.from_shared, r.kept, r.unused, rc == BEIT_OK ? "ok" : beit_last_error());
  int R = (2 * 6 - 1) * (2 * 6 - 1) + 3, ok = 1;
  float *expect = malloc((size_t)R * c.heads * sizeof(float));
  beit_relpos_table_resize(expect, 6, beit_params_get(&src.params, "rel_pos_bias.relative_position_bias_table"), 4,
                           c.heads);
  for (int l = 0; l < c.depth; l++) {
    char name[96];
    snprintf(name, sizeof name, "blocks.%d.attn.relative_position_bias_table", l);
    ok &= !memcmp(beit_params_get(&dst.params, name), expect, (size_t)R * c.heads * sizeof(float));
  }
  ok &= !memcmp(beit_params_get(&dst.params, "head.weight"), head0, 10 * 32 * sizeof(float));
  ok &= !memcmp(beit_params_get(&dst.params, "blocks.1.mlp.fc2.weight"), beit_params_get(&src.params, "blocks.1.mlp.fc2.weight"),
                32 * 128 * sizeof(float));
  CHECK_TRUE(ok, "each block's table is the resized shared one; encoder copied; head as initialised");
  beit_model_free(&dst);
  c.dim = 64, c.heads = 4;
  beit_model_init(&dst, &c);
  rc = beit_checkpoint_transfer(&dst, &src, path, &r);
  CHECK_TRUE(rc != BEIT_OK && strstr(beit_last_error(), "[1, 1, 32]") && strstr(beit_last_error(), "[1, 1, 64]"),
             "a checkpoint of another width is refused: %s", beit_last_error());
  beit_model_free(&dst);
  beit_model_free(&src);
  free(head0), free(expect);
}

/* ---- the commands on an image file, with a 1000-class classifier in timm names */
static int run_capture(const char *cmd, char *out, size_t n) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t k = fread(out, 1, n - 1, p);
  out[k] = 0;
  return pclose(p);
}

static void check_commands(void) {
  const char *bin = getenv("BEIT_BIN");
  if (!bin || access(bin, X_OK) != 0) {
    printf("  skip commands: BEIT_BIN not set (run through tests/run.sh)\n");
    return;
  }
  beit_config c = {.image_size = 16, .channels = 3, .patch_size = 4, .num_classes = 1000, .use_mean_pooling = 1};
  beit_config_preset(&c, "micro");
  beit_model m;
  beit_model_init(&m, &c);
  beit_model_init_weights(&m, 11, 1.0f);
  float *hw = beit_params_get(&m.params, "head.weight");
  for (int i = 0; i < 1000 * c.dim; i++) hw[i] *= 50;  /* distinct logits */
  char ckpt[1200], img[1200], ref[1200], jobs[1200], out[1200], cmd[6000], text[8192];
  snprintf(ckpt, sizeof ckpt, "%s/in1k_timm.safetensors", DIR_);
  snprintf(img, sizeof img, "%s/photo.png", DIR_);
  CHECK_TRUE(beit_checkpoint_export(&m, NULL, BEIT_SCHEME_TIMM, ckpt) == BEIT_OK, "export a 1000-class model (timm names)");
  uint8_t px[16 * 16 * 3];
  float x[3 * 16 * 16];
  beit_rng r;
  beit_rng_seed(&r, 5, BEIT_RNG_TEST, 0, 0);
  for (int i = 0; i < 16 * 16 * 3; i++) px[i] = (uint8_t)beit_rng_randint(&r, 0, 255);
  for (int ch = 0; ch < 3; ch++)  /* the standard transform of an image already 16x16: (x/255 - 0.5) / 0.5 */
    for (int i = 0; i < 256; i++) x[ch * 256 + i] = (px[i * 3 + ch] / 255.0f - 0.5f) / 0.5f;
  beit_png_save(img, px, 16, 16, 3);
  snprintf(ref, sizeof ref, "%s/photo.ref.safetensors", DIR_);
  beit_st_write(ref, &(beit_st_tensor){"in.images", 4, (int64_t[]){1, 3, 16, 16}, x}, 1, NULL, 0);
  snprintf(jobs, sizeof jobs, "%s/photo.jobs", DIR_);
  snprintf(out, sizeof out, "%s/photo.torch.safetensors", DIR_);
  FILE *f = fopen(jobs, "w");
  fprintf(f, "timm %s %s %s %d\n", ckpt, ref, out, c.heads);
  fclose(f);
  snprintf(cmd, sizeof cmd, "load %s", jobs);
  beit_safetensors st;
  if (python(cmd) != 0 || beit_st_open(&st, out) != BEIT_OK) {
    test_failed_++;
    beit_model_free(&m);
    return;
  }
  float *logits = fx_f32(&st, "out.logits", NULL);
  beit_st_close(&st);
  snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s --top 5 %s 2>&1", bin, ckpt, img);
  int rc = run_capture(cmd, text, sizeof text);
  const char *names = beit_imagenet_class_names();
  int ok = rc == 0;
  const char *cursor = text;
  for (int k = 0; k < 5 && ok; k++) {
    int best = 0;
    for (int j = 1; j < 1000; j++) if (logits[j] > logits[best]) best = j;
    logits[best] = -INFINITY;
    const char *p = names;
    for (int j = 0; j < best; j++) p = strchr(p, '\n') + 1;
    char want[128];
    snprintf(want, sizeof want, "%%  %.*s\n", (int)(strchr(p, '\n') - p), p);
    const char *hit = strstr(cursor, want);
    ok = hit != NULL;
    if (hit) cursor = hit + 1;
    else printf("       expected line ending '%s' in order\n", want + 3);
  }
  CHECK_TRUE(ok, "beit predict: the top-5 ImageNet names of the PyTorch logits, in order");
  if (!ok) printf("%s\n", text);
  snprintf(out, sizeof out, "%s/photo-attention.png", DIR_);
  snprintf(cmd, sizeof cmd, "%s attention --checkpoint %s --out %s %s 2>&1", bin, ckpt, out, img);
  int h = 0, w = 0, ch = 0;
  rc = run_capture(cmd, text, sizeof text);
  CHECK_TRUE(rc == 0 && beit_image_probe(out, &h, &w, &ch) == BEIT_OK && w > h && h > 0,
             "beit attention writes a %dx%d PNG", w, h);
  if (rc) printf("%s\n", text);
  snprintf(out, sizeof out, "%s/photo-hf", DIR_);
  snprintf(cmd, sizeof cmd, "%s convert --in %s --out %s --to hf 2>&1", bin, ckpt, out);
  rc = run_capture(cmd, text, sizeof text);
  beit_model back;
  ok = rc == 0 && beit_model_open(&back, out) == BEIT_OK;
  CHECK_TRUE(ok && same_weights(&m, &back), "beit convert --to hf, then open the folder: same weights");
  if (rc) printf("%s\n", text);
  if (ok) beit_model_free(&back);
  free(logits);
  beit_model_free(&m);
}

/* BEiT-B at 224 with 1000 classes, timm and HF names: logits only. */
static void check_base(void) {
  printf("BEiT-B at 224 (BEIT_TEST_BEIT_B=1)\n");
  char args[1200];
  snprintf(args, sizeof args, "make %s base", DIR_);
  if (python(args) != 0) {
    test_failed_++;
    return;
  }
  const test_case base[] = {{"base_timm", BEIT_SCHEME_TIMM}, {"base_hf", BEIT_SCHEME_HF}};
  for (int k = 0; k < 2; k++) check_case(&base[k], NULL);
  snprintf(args, sizeof args, "rm -rf '%s'/base_*", DIR_);  /* 350 MB each */
  if (system(args) != 0) printf("  (could not remove %s/base_*)\n", DIR_);
}

int main(void) {
  TEST_BEGIN("test_interop");
  beit_set_threads(2);
  snprintf(DIR_, sizeof DIR_, "%s/interop", fx_dir());
  char args[1200];
  snprintf(args, sizeof args, "make %s tiny", DIR_);
  if (python(args) != 0) {
    test_failed_++;
    return TEST_END();
  }
  char jobs[1000];
  snprintf(jobs, sizeof jobs, "%s/exports.jobs", DIR_);
  FILE *f = fopen(jobs, "w");
  for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) check_case(&CASES[k], f);
  fclose(f);
  snprintf(args, sizeof args, "load %s", jobs);
  if (python(args) == 0) check_torch_loads();
  else test_failed_++;
  check_malformed();
  check_timm_hub_layout();
  check_resize();
  check_transfer();
  check_commands();
  const char *base = getenv("BEIT_TEST_BEIT_B");
  if (base && base[0] == '1') check_base();
  return TEST_END();
}
