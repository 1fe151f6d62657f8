/* cmd_bench.c - `beit bench`: times one workload (MIM pretraining step, fine-tuning
 * step, inference, or the machine's sgemm limit) on synthetic data and prints
 *   <workload> <model>: <N> img/s, <G> GFLOP/s, peak RSS <M> MiB
 * FLOPs are counted analytically (beit_forward_flops: 2*M*N*K per matmul plus
 * attention's two N*N*C products); a training step counts 3x the forward. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "model/beit.h"
#include "train/train.h"

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

int cmd_bench(int argc, char **argv) {
  const char *workload = "pretrain", *model = "tiny";
  int image = 28, channels = 1, patch = 4, batch = 64, threads = 2, steps = 10, vocab = 8192, classes = 10;
  beit_arg args[] = {
      {"workload", ARG_STR, &workload, "pretrain | finetune | infer | sgemm", 0, 0},
      {"model", ARG_STR, &model, "preset: micro mini demo tiny small base large", 0, 0},
      {"image-size", ARG_INT, &image, "input side in pixels", 1, 4096},
      {"channels", ARG_INT, &channels, "1 or 3", 1, 3},
      {"patch-size", ARG_INT, &patch, "patch side in pixels", 1, 64},
      {"batch", ARG_INT, &batch, "images per step", 1, 65536},
      {"threads", ARG_INT, &threads, "threads (OpenMP and BLAS together)", 1, 1024},
      {"steps", ARG_INT, &steps, "timed steps (after one warm-up step)", 1, 100000},
      {"vocab", ARG_INT, &vocab, "visual token vocabulary (pretrain)", 2, 1 << 20},
      {"classes", ARG_INT, &classes, "classes (finetune, infer)", 2, 1 << 20},
  };
  int rc = beit_args_parse("beit bench [options]", "Time one workload on synthetic data.", args,
                           (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  beit_set_threads(threads);
  printf("BLAS: %s, threads %d\n", beit_blas_describe(), threads);
  if (!strcmp(workload, "sgemm")) {
    double g = bench_sgemm(threads);
    printf("sgemm: %.1f GFLOP/s, peak RSS %.0f MiB\n", g, beit_peak_rss_mib());
    return 0;
  }
  int pretrain = !strcmp(workload, "pretrain"), finetune = !strcmp(workload, "finetune"), infer = !strcmp(workload, "infer");
  if (!pretrain && !finetune && !infer) {
    fprintf(stderr, "beit bench: unknown workload '%s' (pretrain, finetune, infer, sgemm)\n", workload);
    return 2;
  }
  beit_config cfg = {0};
  if (beit_config_preset(&cfg, model) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 2;
  }
  cfg.image_size = image, cfg.channels = channels, cfg.patch_size = patch;
  cfg.vocab_size = pretrain ? vocab : 0;
  cfg.num_classes = pretrain ? 0 : classes;
  cfg.shared_rel_pos = pretrain;
  cfg.use_mean_pooling = 1;
  beit_model m;
  if (beit_model_init(&m, &cfg) != BEIT_OK || beit_model_reserve(&m, batch, !infer) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 1;
  }
  beit_model_init_weights(&m, 1, 0.001f);
  int Np = m.num_patches;
  size_t npix = (size_t)batch * channels * image * image;
  float *images = beit_alloc(npix * sizeof(float), "images");
  uint8_t *mask = beit_calloc((size_t)batch * Np, "mask");
  int32_t *tokens = beit_alloc((size_t)batch * Np * sizeof(int32_t), "tokens"), *labels = beit_alloc((size_t)batch * sizeof(int32_t), "labels");
  beit_rng r;
  beit_rng_seed(&r, 1, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < npix; i++) images[i] = (float)beit_rng_normal(&r);
  int masked_per_image = (int)(0.4 * Np + 0.5);
  for (int b = 0; b < batch; b++) {
    for (int q = 0; q < masked_per_image; q++) mask[(size_t)b * Np + (q * Np) / masked_per_image] = 1;
    for (int q = 0; q < Np; q++) tokens[(size_t)b * Np + q] = (int32_t)beit_rng_randint(&r, 0, vocab - 1);
    labels[b] = (int32_t)beit_rng_randint(&r, 0, classes - 1);
  }
  beit_input bt = {.B = batch, .images = images, .mask = mask, .tokens = tokens, .labels = labels};
  beit_optim_cfg oc = {.lr = 1e-3f, .min_lr = 1e-5f, .warmup_steps = 1, .total_steps = steps + 1, .beta1 = 0.9f,
                       .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f, .layer_decay = 1, .clip_grad = 3.0f};
  beit_optimizer opt;
  if (!infer && beit_optimizer_init(&opt, &m.params, &oc) != BEIT_OK) {
    fprintf(stderr, "beit bench: %s\n", beit_last_error());
    return 1;
  }
  beit_task task = pretrain ? BEIT_TASK_MIM : BEIT_TASK_CLASSIFY;
  double t0 = 0;
  for (int s = 0; s <= steps; s++) {
    if (s == 1) t0 = beit_now();  /* step 0 warms caches and thread pools */
    if (infer) {
      beit_forward(&m, task, &bt, 0, 0, s, NULL);
      continue;
    }
    beit_params_zero_grad(&m.params);
    beit_forward(&m, task, &bt, 1, 1, s, NULL);
    beit_backward(&m, &bt);
    beit_optimizer_step(&opt);
  }
  double secs = beit_now() - t0, ips = (double)steps * batch / secs;
  double flops = beit_forward_flops(&m, task, batch, masked_per_image * batch) * (infer ? 1 : 3);
  printf("model %s: %d tokens, dim %d, depth %d, %.1f M parameters, activations %.0f MiB\n", model, m.tokens,
         cfg.dim, cfg.depth, m.params.total / 1e6, beit_model_arena_bytes(&m) / 1048576.0);
  printf("%.1f ms/step over %d steps\n", 1e3 * secs / steps, steps);
  printf("%s %s: %.1f img/s, %.1f GFLOP/s, peak RSS %.0f MiB\n", workload, model, ips, flops * steps / secs / 1e9,
         beit_peak_rss_mib());
  if (!infer) beit_optimizer_free(&opt);
  beit_model_free(&m);
  beit_free(images), beit_free(mask), beit_free(tokens), beit_free(labels);
  return 0;
}
