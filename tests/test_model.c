/* test_model.c - a whole small BEiT against the PyTorch reference (tests/ref/beit_ref.py):
 * loss, every parameter gradient, and the parameters after 5 AdamW steps with the
 * warmup + cosine schedule, for each head (MIM, pixel regression, classification with
 * hard and soft targets, layer decay). Also: parameter count of BEiT-B and the
 * save/load round trip. */
#include <math.h>
#include <string.h>

#include "fixture.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "test.h"
#include "train/train.h"

static void load_params(beit_model *m, const beit_safetensors *st, const char *prefix) {
  char name[256];
  int missing = 0;
  for (int i = 0; i < m->params.n; i++) {
    snprintf(name, sizeof name, "%s%s", prefix, m->params.t[i].name);
    int k = beit_st_find(st, name);
    if (k < 0 || beit_st_numel(&st->e[k]) != m->params.t[i].numel) {
      printf("  reference lacks %s or its size differs\n", name);
      missing++;
      continue;
    }
    beit_st_read_f32(st, k, m->params.data + m->params.t[i].offset, m->params.t[i].numel);
  }
  CHECK_TRUE(missing == 0, "every C parameter (%d) exists in the reference with the same size", m->params.n);
}

/* Compares every tensor of `buf` with the reference tensors "<prefix><name>".
 * With skip_flat, elements whose first reference gradient is below 1e-6 of the
 * tensor's largest are left out: Adam divides by sqrt(v), so for such a gradient
 * float32 noise decides the sign of a full lr-sized step (ill-conditioned, not a
 * kernel difference). Their count is printed. */
static void compare_params(const beit_model *m, const beit_safetensors *st, const char *prefix,
                           const float *buf, double atol, double rtol, int skip_flat) {
  char name[256], what[300];
  for (int i = 0; i < m->params.n; i++) {
    snprintf(name, sizeof name, "%s%s", prefix, m->params.t[i].name);
    size_t n, skipped = 0;
    float *ref = fx_f32(st, name, &n), *got = malloc(n * sizeof(float));
    memcpy(got, buf + m->params.t[i].offset, n * sizeof(float));
    if (skip_flat) {
      snprintf(name, sizeof name, "grad.%s", m->params.t[i].name);
      float *g = fx_f32(st, name, NULL), gmax = 0;
      for (size_t k = 0; k < n; k++) gmax = fmaxf(gmax, fabsf(g[k]));
      for (size_t k = 0; k < n; k++)
        if (fabsf(g[k]) < 1e-6f * gmax) got[k] = ref[k], skipped++;
      free(g);
    }
    if (skipped) snprintf(what, sizeof what, "%s%s (%zu flat left out)", prefix, m->params.t[i].name, skipped);
    else snprintf(what, sizeof what, "%s%s", prefix, m->params.t[i].name);
    check_close(what, got, ref, n, atol, rtol);
    free(ref);
    free(got);
  }
}

/* The gradient of a step whose backward pass recomputes each block's activations
 * (BEIT_GRAD_RECOMPUTE) must equal the one that kept them, drop path included
 * (the same blocks dropped in the recomputed forward). Leaves m as it found it. */
static void check_recompute(beit_model *m, beit_task task, const beit_input *b, float drop_path) {
  float keep_dp = m->cfg.drop_path;
  m->cfg.drop_path = drop_path;
  size_t n = m->params.total;
  float *kept = malloc(n * sizeof(float)), loss[2];
  for (int mode = 0; mode < 2; mode++) {
    BEIT_CHECK(beit_model_reserve(m, b->B, mode ? BEIT_GRAD_RECOMPUTE : BEIT_GRAD_KEEP) == BEIT_OK);
    beit_params_zero_grad(&m->params);
    beit_stats s;
    BEIT_CHECK(beit_forward(m, task, b, 1, 11, 3, &s) == BEIT_OK && beit_backward(m, b) == BEIT_OK);
    loss[mode] = (float)s.loss;
    if (!mode) memcpy(kept, m->params.grad, n * sizeof(float));
  }
  char what[96];
  snprintf(what, sizeof what, "recomputed activations, drop path %.1f: loss", drop_path);
  check_close(what, &loss[1], &loss[0], 1, 1e-7, 1e-7);
  snprintf(what, sizeof what, "recomputed activations, drop path %.1f: every gradient", drop_path);
  check_close(what, m->params.grad, kept, n, 1e-7, 1e-6);
  free(kept);
  m->cfg.drop_path = keep_dp;
  BEIT_CHECK(beit_model_reserve(m, b->B, BEIT_GRAD_KEEP) == BEIT_OK);
}

static void run_case(const char *task_name) {
  printf("case %s\n", task_name);
  char out[64];
  snprintf(out, sizeof out, "beit_ref_%s.safetensors", task_name);
  beit_safetensors st;
  if (fx_generate(&st, "beit_ref.py", out, task_name) != 0) {
    test_failed_++;
    return;
  }
  int classify = !strncmp(task_name, "classify", 8), pixel = !strcmp(task_name, "pixel");
  beit_task task = classify ? BEIT_TASK_CLASSIFY : pixel ? BEIT_TASK_PIXEL : BEIT_TASK_MIM;
  beit_config cfg = {.image_size = 16, .channels = 3, .patch_size = 4, .dim = 32, .depth = 2, .heads = 4,
                     .mlp_ratio = 4, .vocab_size = task == BEIT_TASK_MIM ? 37 : 0,
                     .num_classes = classify ? 5 : 0, .pixel_head = pixel, .layer_scale_init = 0.1f,
                     .rel_pos = classify ? BEIT_RELPOS_PER_BLOCK : BEIT_RELPOS_SHARED, .use_mean_pooling = 1,
                     .drop_path = 0, .ln_eps = 1e-6f};
  beit_model m;
  if (beit_model_init(&m, &cfg) != BEIT_OK || beit_model_reserve(&m, 3, 1) != BEIT_OK) {
    CHECK_TRUE(0, "model init: %s", beit_last_error());
    return;
  }
  load_params(&m, &st, "param.");
  beit_input b = {.B = 3, .images = fx_f32(&st, "in.images", 0), .mask = fx_u8(&st, "in.mask", 0),
                  .tokens = fx_i32(&st, "in.tokens", 0), .labels = fx_i32(&st, "in.labels", 0)};
  if (!strcmp(task_name, "classify_soft")) b.soft_labels = fx_f32(&st, "in.soft_labels", 0);
  beit_stats s;
  CHECK_TRUE(beit_forward(&m, task, &b, 1, 0, 0, &s) == BEIT_OK, "forward: %s", beit_last_error());
  float loss = (float)s.loss, *ref_loss = fx_f32(&st, "out.loss", 0);
  check_close("loss", &loss, ref_loss, 1, 1e-5, 1e-5);
  CHECK_TRUE(beit_backward(&m, &b) == BEIT_OK, "backward: %s", beit_last_error());
  compare_params(&m, &st, "grad.", m.params.grad, 1e-5, 1e-4, 0);
  check_recompute(&m, task, &b, 0.0f);
  check_recompute(&m, task, &b, 0.3f);

  /* 5 AdamW steps on the same batch, schedule and groups as the reference */
  beit_optim_cfg oc = {.lr = 2e-3f, .min_lr = 1e-5f, .warmup_steps = 2, .total_steps = 5, .beta1 = 0.9f,
                       .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f,
                       .layer_decay = classify ? 0.75f : 1.0f, .num_layers = cfg.depth, .clip_grad = 0};
  beit_optimizer opt;
  beit_optimizer_init(&opt, &m.params, &oc);
  float losses[5];
  for (int s = 0; s < 5; s++) {
    beit_params_zero_grad(&m.params);
    beit_stats bs;
    BEIT_CHECK(beit_forward(&m, task, &b, 1, 0, s, &bs) == BEIT_OK && beit_backward(&m, &b) == BEIT_OK);
    losses[s] = (float)bs.loss;
    beit_optimizer_step(&opt);
  }
  float *ref_losses = fx_f32(&st, "out.losses", 0);
  check_close("losses over 5 AdamW steps", losses, ref_losses, 5, 1e-5, 1e-4);
  compare_params(&m, &st, "final.", m.params.data, 1e-5, 1e-4, 1);
  free(ref_loss), free(ref_losses);
  free((void *)b.images), free((void *)b.mask), free((void *)b.tokens), free((void *)b.labels);
  free((void *)b.soft_labels);
  beit_optimizer_free(&opt);
  beit_model_free(&m);
  beit_st_close(&st);
}

static void test_param_count(void) {
  /* spec 1.1: the BEiT-B MIM model with shared rel-pos and lm_head has 91,965,776 parameters;
   * the 1000-class classifier with per-layer tables 86,530,984 */
  beit_config c = {.image_size = 224, .channels = 3, .patch_size = 16, .vocab_size = 8192,
                   .rel_pos = BEIT_RELPOS_SHARED};
  beit_config_preset(&c, "base");
  beit_model m;
  beit_model_init(&m, &c);
  size_t n = 0;
  for (int i = 0; i < m.params.n; i++) n += m.params.t[i].numel;
  CHECK_TRUE(n == 91965776, "BEiT-B MIM parameter count %zu == 91,965,776", n);
  beit_model_free(&m);
  c.vocab_size = 0, c.num_classes = 1000, c.rel_pos = BEIT_RELPOS_PER_BLOCK, c.use_mean_pooling = 1;
  beit_model_init(&m, &c);
  n = 0;
  for (int i = 0; i < m.params.n; i++) n += m.params.t[i].numel;
  CHECK_TRUE(n == 86530984, "BEiT-B classifier parameter count %zu == 86,530,984", n);
  beit_model_free(&m);
}

static void test_save_load_roundtrip(void) {
  beit_config c = {.image_size = 16, .channels = 1, .patch_size = 4, .vocab_size = 11};
  beit_config_preset(&c, "micro");
  c.rel_pos = BEIT_RELPOS_SHARED;
  beit_model a, b;
  beit_model_init(&a, &c);
  beit_model_init(&b, &c);
  beit_model_init_weights(&a, 42, 0.001f);
  char path[1024], *json = beit_config_to_json(&c);
  snprintf(path, sizeof path, "%s/roundtrip.safetensors", fx_dir());
  const char *meta[] = {"config", json};
  int ok = beit_params_save(&a.params, path, meta, 1) == BEIT_OK && beit_params_load(&b.params, path, 1) == BEIT_OK;
  CHECK_TRUE(ok, "save + load of a model (%s)", ok ? "ok" : beit_last_error());
  CHECK_TRUE(!memcmp(a.params.data, b.params.data, a.params.total * sizeof(float)), "round trip is bit-exact");
  beit_config back;
  CHECK_TRUE(beit_config_from_json(&back, json, "config") == BEIT_OK && back.dim == c.dim && back.depth == c.depth &&
                 back.vocab_size == 11 && back.rel_pos == BEIT_RELPOS_SHARED,
             "config.json round trip");
  free(json);
  beit_model_free(&a);
  beit_model_free(&b);
}

/* Every field of the weight and gradient views points at the tensor of its name
 * (NULL where the config has none), and together they cover the whole table. */
static int check_view(const beit_model *m, const beit_tensors *v, const float *buf) {
  const beit_params *p = &m->params;
  int bad = 0, bound = 0;
  char name[BEIT_NAME_MAX];
  struct { const float *ptr; const char *name; } top[] = {
      {v->cls_token, "cls_token"}, {v->pos_embed, "pos_embed"}, {v->mask_token, "mask_token"},
      {v->patch_w, "patch_embed.proj.weight"}, {v->patch_b, "patch_embed.proj.bias"},
      {v->rel_table, "rel_pos_bias.relative_position_bias_table"}, {v->norm_w, "norm.weight"}, {v->norm_b, "norm.bias"},
      {v->fc_norm_w, "fc_norm.weight"}, {v->fc_norm_b, "fc_norm.bias"}, {v->lm_head_w, "lm_head.weight"},
      {v->lm_head_b, "lm_head.bias"}, {v->pixel_w, "pixel_head.weight"}, {v->pixel_b, "pixel_head.bias"},
      {v->head_w, "head.weight"}, {v->head_b, "head.bias"}};
  for (size_t k = 0; k < sizeof top / sizeof *top; k++) {
    int i = beit_params_find(p, top[k].name);
    bad += i < 0 ? top[k].ptr != NULL : top[k].ptr != buf + p->t[i].offset;
    bound += i >= 0;
  }
  for (int l = 0; l < m->cfg.depth; l++) {
    const beit_block_tensors *b = &v->blocks[l];
    struct { const float *ptr; const char *suffix; } blk[] = {
        {b->gamma_1, "gamma_1"}, {b->gamma_2, "gamma_2"}, {b->norm1_w, "norm1.weight"}, {b->norm1_b, "norm1.bias"},
        {b->q_bias, "attn.q_bias"}, {b->v_bias, "attn.v_bias"},
        {b->rel_table, "attn.relative_position_bias_table"}, {b->qkv_w, "attn.qkv.weight"},
        {b->proj_w, "attn.proj.weight"}, {b->proj_b, "attn.proj.bias"}, {b->norm2_w, "norm2.weight"},
        {b->norm2_b, "norm2.bias"}, {b->fc1_w, "mlp.fc1.weight"}, {b->fc1_b, "mlp.fc1.bias"},
        {b->fc2_w, "mlp.fc2.weight"}, {b->fc2_b, "mlp.fc2.bias"}};
    for (size_t k = 0; k < sizeof blk / sizeof *blk; k++) {
      snprintf(name, sizeof name, "blocks.%d.%s", l, blk[k].suffix);
      int i = beit_params_find(p, name);
      bad += i < 0 ? blk[k].ptr != NULL : blk[k].ptr != buf + p->t[i].offset;
      bound += i >= 0;
    }
  }
  return !bad && bound == p->n;
}

static void test_tensor_views(void) {
  static const char *const what[] = {"MIM, shared table, LayerScale", "classifier, per-block tables, mean pooling",
                                     "classifier, no relative bias, absolute positions, CLS", "pixel head"};
  for (int k = 0; k < 4; k++) {
    beit_config c = {.image_size = 16, .channels = 1, .patch_size = 4, .ln_eps = 1e-6f};
    beit_config_preset(&c, "micro");
    c.vocab_size = k == 0 ? 11 : 0, c.num_classes = k == 1 || k == 2 ? 5 : 0, c.pixel_head = k == 3;
    c.rel_pos = k == 0 || k == 3 ? BEIT_RELPOS_SHARED : k == 1 ? BEIT_RELPOS_PER_BLOCK : BEIT_RELPOS_NONE;
    c.layer_scale_init = k == 0 ? 0.1f : 0, c.use_mean_pooling = k == 1, c.abs_pos_emb = k == 2;
    beit_model m;
    int ok = beit_model_init(&m, &c) == BEIT_OK;
    int before = ok && check_view(&m, &m.w, m.params.data) && m.g.blocks[0].qkv_w == NULL;
    ok = ok && beit_model_reserve(&m, 2, BEIT_GRAD_KEEP) == BEIT_OK;
    CHECK_TRUE(ok && before && check_view(&m, &m.g, m.params.grad),
               "%s: every tensor bound once into the weight and gradient views (%d tensors)", what[k], m.params.n);
    /* the JSON twin keeps Hugging Face's two booleans for each mode */
    char *json = beit_config_to_json(&c);
    beit_config back;
    CHECK_TRUE(beit_config_from_json(&back, json, "config") == BEIT_OK && back.rel_pos == c.rel_pos,
               "%s: relative position mode %d through config.json", what[k], (int)c.rel_pos);
    free(json);
    beit_model_free(&m);
  }
  beit_config c;
  const char *old = "{\"image_size\": 16, \"patch_size\": 4, \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                    "\"num_attention_heads\": 2, \"use_relative_position_bias\": false, "
                    "\"use_shared_relative_position_bias\": false}";
  CHECK_TRUE(beit_config_from_json(&c, old, "config") == BEIT_OK && c.rel_pos == BEIT_RELPOS_NONE,
             "a config.json with both relative position booleans false: no relative bias");
}

int main(void) {
  TEST_BEGIN("test_model");
  beit_set_threads(2);
  run_case("mim");
  run_case("pixel");
  run_case("classify");
  run_case("classify_soft");
  test_param_count();
  test_save_load_roundtrip();
  test_tensor_views();
  return TEST_END();
}
