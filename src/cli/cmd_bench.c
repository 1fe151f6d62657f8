/* cmd_bench.c - `beit bench`: times one workload (MIM pretraining step, fine-tuning
 * step, inference, dVAE tokenizer encode, or the machine's sgemm limit) on synthetic
 * data and prints
 *   <workload> <model>: <N> img/s, <G> GFLOP/s, peak RSS <M> MiB
 * FLOPs are counted analytically (docs/performance.md): beit_forward_flops for the
 * transformer (2*M*N*K per matmul plus attention's two N*N*C products; a training
 * step counts 3x the forward), 2*cout*cin*k*k*H*W per conv for the dVAE encoder. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "model/beit.h"
#include "model/dvae.h"
#include "train/recipes.h"
#include "train/train.h"

typedef struct {
  const char *workload, *model;
  int image, channels, patch, batch, threads, steps, vocab, classes, recompute, masked;
} bench_opts;

static double bench_sgemm(int threads) {
  int n = 1536;
  float *a = beit_alloc((size_t)n * n * sizeof(float), "sgemm A"), *b = beit_alloc((size_t)n * n * sizeof(float), "sgemm B");
  float *c = beit_calloc((size_t)n * n * sizeof(float), "sgemm C");
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 17);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
  double best = 0;
  for (int r = 0; r < 5; r++) {
    double t = beit_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double g = 2.0 * n * n * n / (beit_now() - t) / 1e9;
    if (g > best) best = g;
  }
  beit_free(a), beit_free(b), beit_free(c);
  printf("sgemm %dx%dx%d, %d threads: %.1f GFLOP/s (best of 5)\n", n, n, n, threads, best);
  return best;
}

static void print_result(const bench_opts *o, double secs, double flops_per_step) {
  printf("%.1f ms/step over %d steps\n", 1e3 * secs / o->steps, o->steps);
  printf("%s %s: %.1f img/s, %.1f GFLOP/s, peak RSS %.0f MiB\n", o->workload, o->model,
         (double)o->steps * o->batch / secs, flops_per_step * o->steps / secs / 1e9, beit_peak_rss_mib());
}

/* ---- dVAE tokenizer encode ---------------------------------------------------- */

/* One encoder forward per image: 2*cout*cin*k*k*H*W for every conv (stride 1,
 * 'same' padding, so H*W is the stage's side squared); ReLUs, pooling, map_pixels
 * and the argmax are not counted. */
static double dvae_encoder_flops(const dvae *d) {
  double f = 0;
  for (int i = 0; i < d->n_enc; i++)
    for (int k = 0; k < 5; k++) {
      const conv2d_dims *c = &d->enc[i].dims[k];
      if (d->enc[i].w[k] >= 0) f += 2.0 * c->OC * c->IC * c->K * c->K * c->H * c->W;
    }
  return f;
}

static int tokenizer_preset(dvae_config *cfg, const char *name) {
  if (!strcmp(name, "small")) dvae_config_small(cfg);
  else if (!strcmp(name, "dalle")) dvae_config_dalle(cfg);
  else return beit_errorf("unknown tokenizer '%s' (small: 28x28x1 Fashion-MNIST dVAE, dalle: 112x112x3 DALL-E)", name);
  return BEIT_OK;
}

static int bench_tokenize(const bench_opts *o) {
  dvae_config cfg;
  if (tokenizer_preset(&cfg, o->model) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 2;
  }
  if (o->image) cfg.image_size = o->image;
  if (o->channels) cfg.channels = o->channels;
  dvae d;
  if (dvae_create(&d, &cfg, 0) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 2;
  }
  dvae_init_weights(&d, 1);
  int grid = dvae_grid_side(&cfg);
  size_t npix = (size_t)o->batch * cfg.channels * cfg.image_size * cfg.image_size;
  float *images = beit_alloc(npix * sizeof(float), "images");
  int32_t *tokens = beit_alloc((size_t)o->batch * grid * grid * sizeof(int32_t), "tokens");
  int rc = images && tokens ? BEIT_OK : BEIT_ERR;
  beit_rng r;
  beit_rng_seed(&r, 1, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; rc == BEIT_OK && i < npix; i++) images[i] = (float)beit_rng_uniform(&r);
  double t0 = 0;
  for (int s = 0; rc == BEIT_OK && s <= o->steps; s++) {
    if (s == 1) t0 = beit_now();  /* step 0 sizes the arena and starts the thread pool */
    rc = dvae_encode(&d, images, o->batch, tokens);
  }
  double secs = beit_now() - t0;
  if (rc == BEIT_OK) {
    printf("tokenizer %s: %dx%dx%d -> %dx%d tokens, vocab %d, n_hid %d, %.2f M parameters\n", o->model,
           cfg.image_size, cfg.image_size, cfg.channels, grid, grid, cfg.vocab, cfg.n_hid, d.params.total / 1e6);
    print_result(o, secs, dvae_encoder_flops(&d) * o->batch);
  } else {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
  }
  beit_free(images), beit_free(tokens);
  dvae_free(&d);
  return rc == BEIT_OK ? 0 : 1;
}

/* ---- BEiT training steps and inference ---------------------------------------- */

static void fill_synthetic(const bench_opts *o, int Np, int masked_per_image, float *images, uint8_t *mask,
                           int32_t *tokens, int32_t *labels) {
  size_t npix = (size_t)o->batch * o->channels * o->image * o->image;
  beit_rng r;
  beit_rng_seed(&r, 1, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < npix; i++) images[i] = (float)beit_rng_normal(&r);
  for (int b = 0; b < o->batch; b++) {
    for (int q = 0; q < masked_per_image; q++) mask[(size_t)b * Np + (q * Np) / masked_per_image] = 1;
    for (int q = 0; q < Np; q++) tokens[(size_t)b * Np + q] = (int32_t)beit_rng_randint(&r, 0, o->vocab - 1);
    labels[b] = (int32_t)beit_rng_randint(&r, 0, o->classes - 1);
  }
}

/* Everything the run will hold (model, arena, AdamW moments, the synthetic
 * batch), checked before any of it is allocated. */
static int check_memory(const bench_opts *o, const beit_config *cfg, int grad) {
  double need = beit_model_memory_bytes(cfg, o->batch, grad, grad != 0);
  if (need < 0) return BEIT_ERR;
  need += (double)o->batch * (cfg->channels * (double)o->image * o->image * sizeof(float) + 8);
  char what[160];
  snprintf(what, sizeof what, "%s of --model %s at --batch %d (%dx%d px)", o->workload, o->model, o->batch, o->image,
           o->image);
  return beit_memory_check(need, what);
}

static int bench_beit(const bench_opts *o) {
  int pretrain = !strcmp(o->workload, "pretrain"), infer = !strcmp(o->workload, "infer");
  beit_config cfg = {0};
  if (beit_config_preset(&cfg, o->model) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 2;
  }
  cfg.image_size = o->image, cfg.channels = o->channels, cfg.patch_size = o->patch;
  cfg.vocab_size = pretrain ? o->vocab : 0;
  cfg.num_classes = pretrain ? 0 : o->classes;
  cfg.rel_pos = pretrain ? BEIT_RELPOS_SHARED : BEIT_RELPOS_PER_BLOCK;
  cfg.use_mean_pooling = 1;
  beit_model m;
  int grad = infer ? 0 : o->recompute ? BEIT_GRAD_RECOMPUTE : BEIT_GRAD_KEEP, S, P;
  if (beit_check_sizes(o->image, o->patch, NULL, &S, &P) != BEIT_OK || check_memory(o, &cfg, grad) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 1;
  }
  if (beit_model_init(&m, &cfg) != BEIT_OK || beit_model_reserve(&m, o->batch, grad) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 1;
  }
  beit_model_init_weights(&m, 1, 0.001f);
  int Np = m.num_patches, batch = o->batch;
  int masked_per_image = o->masked ? o->masked : (int)(0.4 * Np + 0.5);  /* BEiT-B's paper setting: 75 of 196 */
  if (masked_per_image > Np) {
    fprintf(stderr, "beit bench: --masked %d is more than the %d patches of an image\n", o->masked, Np);
    beit_model_free(&m);
    return 2;
  }
  float *images = beit_alloc((size_t)batch * o->channels * o->image * o->image * sizeof(float), "images");
  uint8_t *mask = beit_calloc((size_t)batch * Np, "mask");
  int32_t *tokens = beit_alloc((size_t)batch * Np * sizeof(int32_t), "tokens");
  int32_t *labels = beit_alloc((size_t)batch * sizeof(int32_t), "labels");
  fill_synthetic(o, Np, masked_per_image, images, mask, tokens, labels);
  beit_input bt = {.B = batch, .images = images, .mask = mask, .tokens = tokens, .labels = labels};
  beit_optim_cfg oc = {.lr = 1e-3f, .min_lr = 1e-5f, .warmup_steps = 1, .total_steps = o->steps + 1, .beta1 = 0.9f,
                       .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f, .layer_decay = 1, .clip_grad = 3.0f};
  beit_optimizer opt;
  if (!infer && beit_optimizer_init(&opt, &m.params, &oc) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 1;
  }
  beit_task task = pretrain ? BEIT_TASK_MIM : BEIT_TASK_CLASSIFY;
  double t0 = 0;
  int rc = BEIT_OK;
  for (int s = 0; s <= o->steps && rc == BEIT_OK; s++) {
    if (s == 1) t0 = beit_now();  /* step 0 warms caches and thread pools */
    if (infer) {
      rc = beit_forward(&m, task, &bt, 0, 0, s, NULL);
      continue;
    }
    beit_params_zero_grad(&m.params);
    rc = beit_forward(&m, task, &bt, 1, 1, s, NULL);
    if (rc == BEIT_OK) rc = beit_backward(&m, &bt);
    if (rc == BEIT_OK) beit_optimizer_step(&opt);
  }
  double secs = beit_now() - t0;
  double flops = beit_forward_flops(&m, task, batch, masked_per_image * batch) * (infer ? 1 : 3);
  if (rc != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
  } else {
    printf("model %s: %d tokens, dim %d, depth %d, %.1f M parameters, activations %.0f MiB\n", o->model, m.tokens,
           cfg.dim, cfg.depth, m.params.total / 1e6, beit_model_arena_bytes(&m) / 1048576.0);
    print_result(o, secs, flops);
  }
  if (!infer) beit_optimizer_free(&opt);
  beit_model_free(&m);
  beit_free(images), beit_free(mask), beit_free(tokens), beit_free(labels);
  return rc == BEIT_OK ? 0 : 1;
}

int cmd_bench(int argc, char **argv) {
  bench_opts o = {.workload = "pretrain", .model = NULL, .image = 0, .channels = 0, .patch = 4, .batch = 64,
                  .threads = 2, .steps = 10, .vocab = 8192, .classes = 10};
  beit_arg args[] = {
      {"workload", ARG_STR, &o.workload, "pretrain | finetune | infer | tokenize | sgemm", 0, 0},
      {"model", ARG_STR, &o.model, "BEiT preset: micro mini demo tiny small base large; for tokenize the "
                                   "dVAE: small dalle (none: tiny, or small for tokenize)", 0, 0},
      {"image-size", ARG_INT, &o.image, "input side in pixels (0: 28, or the tokenizer's own)", 0, 4096},
      {"channels", ARG_INT, &o.channels, "1 or 3 (0: 1, or the tokenizer's own)", 0, 3},
      {"patch-size", ARG_INT, &o.patch, "patch side in pixels (BEiT workloads)", 1, 64},
      {"batch", ARG_INT, &o.batch, "images per step", 1, 65536},
      {"threads", ARG_INT, &o.threads, "threads (OpenMP and BLAS together)", 1, 1024},
      {"steps", ARG_INT, &o.steps, "timed steps (after one warm-up step)", 1, 100000},
      {"vocab", ARG_INT, &o.vocab, "visual token vocabulary (pretrain)", 2, 1 << 20},
      {"masked", ARG_INT, &o.masked, "masked patches per image (pretrain; 0 = 40% of the patches)", 0, 1 << 20},
      {"classes", ARG_INT, &o.classes, "classes (finetune, infer)", 2, 1 << 20},
      {"recompute", ARG_FLAG, &o.recompute, "training: recompute each block's forward in the backward pass "
                                            "(less memory; GFLOP/s still counts the model's 3 forwards)", 0, 0},
  };
  int rc = beit_args_parse("beit bench [options]", "Time one workload on synthetic data.", args,
                           (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  beit_set_threads(o.threads);
  printf("BLAS: %s, threads %d\n", beit_blas_describe(), o.threads);
  if (!strcmp(o.workload, "sgemm")) {
    double g = bench_sgemm(o.threads);
    printf("sgemm: %.1f GFLOP/s, peak RSS %.0f MiB\n", g, beit_peak_rss_mib());
    return 0;
  }
  int tokenize = !strcmp(o.workload, "tokenize");
  if (!o.model) o.model = tokenize ? "small" : "tiny";
  if (tokenize) return bench_tokenize(&o);
  if (strcmp(o.workload, "pretrain") && strcmp(o.workload, "finetune") && strcmp(o.workload, "infer")) {
    fprintf(stderr, "beit bench: unknown workload '%s' (pretrain, finetune, infer, tokenize, sgemm)\n", o.workload);
    return 2;
  }
  if (!o.image) o.image = 28;
  if (!o.channels) o.channels = 1;
  return bench_beit(&o);
}
