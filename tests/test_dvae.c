/* test_dvae.c - the dVAE against our PyTorch module (tests/ref/dvae_ref.py): loss,
 * encoder logits and every parameter gradient for a logit-Laplace and an MSE model
 * fed the same Gumbel noise; a dall_e-named encoder file loads and gives PyTorch's
 * logits, broken files are refused by name; checkpoints round-trip; batching. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "model/dvae.h"
#include "train/tokenizer.h"
#include "test.h"

static const char *fixtures(void) {
  return getenv("BEIT_TEST_FIXTURES") ? getenv("BEIT_TEST_FIXTURES") : "/tmp";
}

static int run_ref(const char *args) {
  const char *root = getenv("BEIT_ROOT") ? getenv("BEIT_ROOT") : ".";
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/dvae_ref.py %s", root, args);
  int rc = system(cmd);
  CHECK_TRUE(rc == 0, "dvae_ref.py %s", args);
  return rc == 0;
}

static float *read_tensor(const beit_safetensors *st, const char *name, size_t numel) {
  int i = beit_st_find(st, name);
  float *x = malloc(numel * sizeof(float) + 1);
  if (i < 0 || beit_st_numel(&st->e[i]) != numel || beit_st_read_f32(st, i, x, numel)) {
    CHECK_TRUE(0, "fixture %s has %zu values", name, numel);
    free(x);
    return NULL;
  }
  return x;
}

/* |got - ref| <= rel * (max|ref| + |ref|): relative to the tensor's scale. */
static int close_scaled(const char *what, const float *got, const float *ref, size_t n, double rel) {
  double mx = 0;
  for (size_t i = 0; i < n; i++) mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
  return check_close(what, got, ref, n, rel * mx + 1e-12, rel);
}

static int check_scalar(const char *what, double got, const beit_safetensors *st, const char *key, double rel) {
  float *r = read_tensor(st, key, 1);
  if (!r) return 0;
  float g = (float)got;
  int ok = check_close(what, &g, r, 1, 0, rel);
  free(r);
  return ok;
}

/* One training forward/backward against PyTorch; the case must match TEST_CASES
 * in dvae_ref.py. */
static void train_case(const char *tag, const dvae_config *c, int B, float tau, float beta, int hard, int usage) {
  char path[1024];
  snprintf(path, sizeof path, "%s/dvae_%s.safetensors", fixtures(), tag);
  dvae d;
  beit_safetensors st;
  int ok = dvae_create(&d, c, 1) == BEIT_OK && beit_st_open(&st, path) == BEIT_OK;
  CHECK_TRUE(ok, "%s: build and open: %s", tag, ok ? "" : beit_last_error());
  if (!ok) return;
  ok = beit_params_load_from(&d.params, &st, 0) == BEIT_OK;
  CHECK_TRUE(ok, "%s: weights load by dall_e name (%d tensors)%s%s", tag, d.params.n, ok ? "" : ": ",
             ok ? "" : beit_last_error());
  int side = dvae_grid_side(c);
  size_t nimg = (size_t)B * c->channels * c->image_size * c->image_size, nlat = (size_t)B * c->vocab * side * side;
  float *x = read_tensor(&st, "x", nimg), *g = read_tensor(&st, "gumbel", nlat);
  float *logits = read_tensor(&st, "out.logits", nlat);
  if (ok && x && g && logits) {
    dvae_train_opts o = {.tau = tau, .beta = beta, .gumbel = g, .hard = hard, .kl_usage = usage};
    dvae_stats s;
    char what[160];
    ok = dvae_forward_train(&d, x, B, &o, &s) == BEIT_OK;
    CHECK_TRUE(ok, "%s: forward", tag);
    snprintf(what, sizeof what, "%s: loss %.6f", tag, s.loss);
    check_scalar(what, s.loss, &st, "out.loss", 1e-5);
    snprintf(what, sizeof what, "%s: recon %.6f", tag, s.recon);
    check_scalar(what, s.recon, &st, "out.recon", 1e-5);
    snprintf(what, sizeof what, "%s: kl %.6f", tag, s.kl);
    check_scalar(what, s.kl, &st, "out.kl", 1e-4);
    snprintf(what, sizeof what, "%s: encoder logits", tag);
    close_scaled(what, d.enc_act[d.n_enc - 1].out, logits, nlat, 1e-5);
    beit_params_zero_grad(&d.params);
    CHECK_TRUE(dvae_backward(&d, &o) == BEIT_OK, "%s: backward", tag);
    int nbad = 0;
    for (int i = 0; i < d.params.n; i++) {
      const beit_tensor_info *t = &d.params.t[i];
      char key[BEIT_NAME_MAX + 8];
      snprintf(key, sizeof key, "grad.%s", t->name);
      float *ref = read_tensor(&st, key, t->numel);
      snprintf(what, sizeof what, "%s: d %s", tag, t->name);
      if (ref) nbad += !close_scaled(what, d.params.grad + t->offset, ref, t->numel, 1e-4);
      free(ref);
    }
    CHECK_TRUE(nbad == 0, "%s: all %d parameter gradients match", tag, d.params.n);
  }
  free(x), free(g), free(logits);
  beit_st_close(&st);
  dvae_free(&d);
}

static void expect_refused(const char *file, const char *must_name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", fixtures(), file);
  dvae d;
  int rc = dvae_load_dalle_encoder(&d, path, 32);
  const char *msg = beit_last_error();
  CHECK_TRUE(rc != BEIT_OK && strstr(msg, must_name) && strstr(msg, file), "%s refused: %s", file, msg);
  if (rc == BEIT_OK) dvae_free(&d);
}

static void dalle_encoder(void) {
  char path[1024];
  dvae d;
  snprintf(path, sizeof path, "%s/dalle_encoder.safetensors", fixtures());
  int ok = dvae_load_dalle_encoder(&d, path, 32) == BEIT_OK;
  CHECK_TRUE(ok, "dall_e encoder loads: %s", ok ? "yes" : beit_last_error());
  if (!ok) return;
  const dvae_config *c = &d.cfg;
  CHECK_TRUE(c->n_hid == 16 && c->channels == 3 && c->n_groups == 4 && c->n_blk_per_group == 2 && c->vocab == 64 &&
                 !d.has_decoder,
             "architecture read from shapes: n_hid %d, %d ch, %d groups x %d blocks, vocab %d", c->n_hid,
             c->channels, c->n_groups, c->n_blk_per_group, c->vocab);
  beit_safetensors st;
  snprintf(path, sizeof path, "%s/dalle_io.safetensors", fixtures());
  if (beit_st_open(&st, path) == BEIT_OK) {
    float *x = read_tensor(&st, "x", 2 * 3 * 32 * 32), *ref = read_tensor(&st, "logits", 2 * 64 * 16);
    float *logits = malloc(2 * 64 * 16 * sizeof(float));
    int32_t tok[32];
    if (x && ref && dvae_encoder_logits(&d, x, 2, logits) == BEIT_OK) {
      close_scaled("dall_e encoder logits (32x32x3, 4 groups)", logits, ref, 2 * 64 * 16, 1e-5);
      dvae_encode(&d, x, 2, tok);
      int same = 0;
      for (int i = 0; i < 32; i++) {
        int b = i / 16, p = i % 16, best = 0;
        for (int k = 1; k < 64; k++)
          if (ref[(b * 64 + k) * 16 + p] > ref[(b * 64 + best) * 16 + p]) best = k;
        same += tok[i] == best;
      }
      CHECK_TRUE(same == 32, "dvae_encode = argmax of PyTorch logits at %d/32 positions", same);
    }
    free(x), free(ref), free(logits);
    beit_st_close(&st);
  }
  dvae_free(&d);
  beit_tokenizer t;
  snprintf(path, sizeof path, "%s/dalle_encoder.safetensors", fixtures());
  ok = beit_tokenizer_load(&t, path) == BEIT_OK;
  CHECK_TRUE(ok && t.type == BEIT_TOK_DVAE && t.image_size == 112 && t.grid == 14 && t.vocab == 64,
             "beit_tokenizer_load takes a dall_e encoder file as a 112x112 -> 14x14 tokenizer");
  if (ok) beit_tokenizer_free(&t);
  expect_refused("dalle_missing.safetensors", "blocks.group_2.block_1.id_path.b");
  expect_refused("dalle_badshape.safetensors", "blocks.group_3.block_2.res_path.conv_2.w");
  expect_refused("dalle_extra.safetensors", "blocks.group_1.block_1.res_path.conv_5.w");
}

static void roundtrip_and_batching(void) {
  dvae_config c;
  dvae_config_small(&c);
  c.n_hid = 8, c.n_init = 8, c.vocab = 16, c.recon = DVAE_RECON_MSE;
  dvae a, b;
  dvae_create(&a, &c, 1);
  dvae_init_weights(&a, 11);
  char path[1024];
  snprintf(path, sizeof path, "%s/dvae_roundtrip.safetensors", fixtures());
  const char *extra[2] = {"note", "test"};
  int ok = dvae_save(&a, path, extra, 1) == BEIT_OK && dvae_load(&b, path) == BEIT_OK;
  CHECK_TRUE(ok, "save + load %s", ok ? "" : beit_last_error());
  if (!ok) return dvae_free(&a);
  CHECK_TRUE(!memcmp(&a.cfg, &b.cfg, sizeof c) && b.has_decoder, "config round-trips through the metadata");
  check_close("parameters round-trip", b.params.data, a.params.data, a.params.total, 0, 0);
  /* 70 images: more than one inference chunk; each must equal its own encode */
  enum { N = 70 };
  size_t img = 28 * 28;
  float *x = malloc(N * img * sizeof(float)), *rec = malloc(N * img * sizeof(float));
  beit_rng r;
  beit_rng_seed(&r, 2, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < N * img; i++) x[i] = (float)beit_rng_uniform(&r);
  int32_t *t_all = malloc(N * 49 * sizeof(int32_t)), t_one[49];
  dvae_encode(&b, x, N, t_all);
  int same = 1;
  for (int i = 0; i < N; i += 23) {
    dvae_encode(&a, x + i * img, 1, t_one);
    same &= !memcmp(t_one, t_all + i * 49, sizeof t_one);
  }
  CHECK_TRUE(same, "batched encode (70 images, chunked) = one-by-one encode");
  ok = dvae_decode(&b, t_all, N, rec) == BEIT_OK;
  int in_range = ok;
  for (size_t i = 0; ok && i < N * img; i++) in_range &= rec[i] >= 0 && rec[i] <= 1;
  CHECK_TRUE(in_range, "decode of 70 token grids gives pixels in [0, 1]");
  t_all[5] = 16;
  CHECK_TRUE(dvae_decode(&b, t_all, 1, rec) != BEIT_OK, "a token outside the vocabulary is refused: %s",
             beit_last_error());
  free(x), free(rec), free(t_all);
  dvae_free(&a), dvae_free(&b);
}

/* The published architecture builds (54M parameters); to stay fast the forward
 * runs at 32x32 with the full widths and vocabulary (bench_tokenizer runs 112x112). */
static void original_size(void) {
  dvae_config c;
  dvae_config_dalle(&c);
  dvae d;
  int ok = dvae_create(&d, &c, 0) == BEIT_OK;
  CHECK_TRUE(ok && d.params.n == 2 * (2 + 4 * 2 * 4 + 3),
             "the DALL-E encoder (112x112x3, n_hid 256, 4x2 blocks, vocab 8192) builds: %d tensors, %zu floats",
             ok ? d.params.n : 0, ok ? d.params.total : 0);
  if (ok) dvae_free(&d);
  c.image_size = 32;
  if (dvae_create(&d, &c, 0)) return;
  dvae_init_weights(&d, 1);
  float *x = calloc(3 * 32 * 32, sizeof(float));
  int32_t tok[16];
  double t0 = beit_now();
  ok = dvae_encode(&d, x, 1, tok) == BEIT_OK;
  int in_range = ok;
  for (int i = 0; i < 16; i++) in_range &= tok[i] >= 0 && tok[i] < 8192;
  CHECK_TRUE(in_range, "its full-width encoder runs forward (32x32 -> 4x4 tokens in %.2f s)", beit_now() - t0);
  free(x);
  dvae_free(&d);
}

/* The training driver end to end on Fashion-MNIST: 3 steps, then the checkpoint
 * loads as a tokenizer and reconstructs; the log has one line per interval. */
static void train_smoke(void) {
  beit_tok_train_cfg c;
  beit_tok_train_defaults(&c);
  char out[1024], path[1100];
  snprintf(out, sizeof out, "%s/tok_run", fixtures());
  c.out = out, c.overwrite = 1, c.steps = 3, c.batch = 8, c.log_every = 2, c.eval_images = 16, c.kl_warmup = 1, c.workers = 0;
  c.dv.n_hid = 8, c.dv.n_init = 8, c.dv.vocab = 32;
  double t0 = beit_now();
  int ok = beit_tokenizer_train(&c) == BEIT_OK;
  CHECK_TRUE(ok, "beit_tokenizer_train: 3 steps on fashion-mnist in %.1f s%s%s", beit_now() - t0, ok ? "" : ": ",
             ok ? "" : beit_last_error());
  if (!ok) return;
  snprintf(path, sizeof path, "%s/log.jsonl", out);
  FILE *f = fopen(path, "r");
  int lines = 0, ch;
  while (f && (ch = fgetc(f)) != EOF) lines += ch == '\n';
  if (f) fclose(f);
  CHECK_TRUE(lines == 2, "log.jsonl has %d lines (steps 2 and 3)", lines);
  beit_tokenizer t;
  beit_dataset ds;
  snprintf(path, sizeof path, "%s/tokenizer.safetensors", out);
  ok = beit_tokenizer_load(&t, path) == BEIT_OK && beit_dataset_open(&ds, "fashion-mnist", 0) == BEIT_OK;
  CHECK_TRUE(ok && t.grid == 7 && t.vocab == 32 && t.image_size == 28, "the checkpoint loads as a 28x28 -> 7x7 tokenizer");
  if (!ok) return;
  double mae = -1;
  snprintf(path, sizeof path, "%s/recon.png", out);
  ok = beit_tokenizer_reconstruct(&t, &ds, 0, 4, path, &mae) == BEIT_OK;
  CHECK_TRUE(ok && mae >= 0 && mae <= 1, "reconstruct 4 test images: MAE %.3f, PNG written", mae);
  beit_dataset_close(&ds);
  beit_tokenizer_free(&t);
}

int main(void) {
  TEST_BEGIN("test_dvae");
  beit_set_threads(2);
  char args[1100];
  snprintf(args, sizeof args, "all %s", fixtures());
  run_ref(args);
  dvae_config a = {.image_size = 16, .channels = 1, .n_hid = 8, .n_init = 12, .n_blk_per_group = 2,
                   .n_groups = 3, .vocab = 32, .recon = DVAE_RECON_LAPLACE};
  train_case("laplace", &a, 3, 0.7f, 1.5f, 0, 0);
  dvae_config b = {.image_size = 8, .channels = 3, .n_hid = 8, .n_init = 8, .n_blk_per_group = 1,
                   .n_groups = 2, .vocab = 16, .recon = DVAE_RECON_MSE};
  train_case("mse", &b, 2, 1.3f, 0.5f, 0, 0);
  dvae_config h = {.image_size = 16, .channels = 3, .n_hid = 8, .n_init = 12, .n_blk_per_group = 1,
                   .n_groups = 3, .vocab = 32, .recon = DVAE_RECON_LAPLACE};
  train_case("hard", &h, 3, 0.5f, 1.5f, 1, 0);  /* straight-through */
  train_case("usage", &h, 3, 0.5f, 1.5f, 1, 1);  /* and the usage KL */
  dalle_encoder();
  roundtrip_and_batching();
  original_size();
  train_smoke();
  return TEST_END();
}
