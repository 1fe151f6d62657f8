/* bench_tokenizer.c - throughput of the visual tokenizers on the CPU: dVAE encode
 * (images/s at batch 64), one dVAE training step (forward + backward + AdamW),
 * the k-means encode, and one forward of the full-size DALL-E encoder (112x112).
 * Rates are the best of three windows. For stable numbers run with
 * OMP_WAIT_POLICY=passive (see docs/tokenizer.md, "Threads"). The dVAE encode
 * against PyTorch is `beit bench --workload tokenize` (bench/run.sh); this program
 * adds the training step, k-means and the DALL-E encoder, best-window rates.
 * --conv: the encoder forward per image (dvae_encoder_logits, what vq_encode and dvae_encode run)
 * with each conv2d method built in (BEIT_CONV: im2col, dnnl), taking turns inside every round so
 * that a shared machine's load hits both alike; best round each (docs/performance.md, "Convolutions").
 * usage: bench_tokenizer [threads (2)] [--no-dalle | --conv [rounds (5)]] */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "model/dvae.h"
#include "model/kmeans.h"
#include "train/train.h"

static float *random_images(int n, size_t per_image) {
  float *x = malloc((size_t)n * per_image * sizeof(float));
  beit_rng r;
  beit_rng_seed(&r, 1, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < (size_t)n * per_image; i++) x[i] = (float)beit_rng_uniform(&r);
  return x;
}

/* Best calls/s over 3 windows of at least min_s/3 seconds and 2 calls each (the
 * best window is the least disturbed by other processes on a shared machine). */
static double rate(void (*fn)(void *), void *ctx, double min_s) {
  fn(ctx);  /* warm-up: arena allocation, BLAS threads */
  double best = 0;
  for (int w = 0; w < 3; w++) {
    double t0 = beit_now();
    int n = 0;
    while (n < 2 || beit_now() - t0 < min_s / 3) fn(ctx), n++;
    double r = n / (beit_now() - t0);
    best = r > best ? r : best;
  }
  return best;
}

typedef struct {
  dvae *d;
  kmeans_tok *km;
  beit_optimizer *opt;
  float *x;
  int B;
  int32_t *tok;
  float *logits;
  int64_t step;
} ctx_t;

static void do_encode(void *p) {
  ctx_t *c = p;
  dvae_encode(c->d, c->x, c->B, c->tok);
}

static void do_kmeans_encode(void *p) {
  ctx_t *c = p;
  kmeans_encode(c->km, c->x, c->B, c->tok);
}

static void do_train_step(void *p) {
  ctx_t *c = p;
  dvae_train_opts o = {.tau = 1.0f, .beta = 1.0f, .seed = 1, .step = c->step++};
  dvae_stats s;
  beit_params_zero_grad(&c->d->params);
  if (dvae_forward_train(c->d, c->x, c->B, &o, &s)) return;
  if (dvae_backward(c->d, &o)) return;
  beit_optimizer_step(c->opt);
}

static void bench_small(void) {
  dvae_config cfg;
  dvae_config_small(&cfg);
  dvae d;
  if (dvae_create(&d, &cfg, 1)) { fprintf(stderr, "%s\n", beit_last_error()); return; }
  dvae_init_weights(&d, 1);
  const int B = 64;
  ctx_t c = {.d = &d, .x = random_images(B, 28 * 28), .B = B, .tok = malloc(B * 49 * sizeof(int32_t))};
  double enc = rate(do_encode, &c, 2.0) * B;
  beit_optim_cfg oc = {.lr = 1e-3f, .min_lr = 1e-3f, .total_steps = 1000, .beta1 = 0.9f, .beta2 = 0.999f,
                       .eps = 1e-8f, .weight_decay = 1e-4f, .layer_decay = 1};
  beit_optimizer opt;
  beit_optimizer_init(&opt, &d.params, &oc);
  c.opt = &opt;
  double train = rate(do_train_step, &c, 3.0) * B;
  printf("dvae small (28x28x1 -> 7x7, vocab %d, n_hid %d, %d params): encode %.0f images/s, "
         "train step %.0f images/s (batch %d)\n",
         cfg.vocab, cfg.n_hid, (int)d.params.total, enc, train, B);
  kmeans_tok km;
  kmeans_config kc = {.image_size = 28, .channels = 1, .patch = 4, .k = 512, .normalize = 1};
  if (kmeans_create(&km, &kc) == BEIT_OK) {
    kmeans_init_random_centroids(&km, 1);
    c.km = &km;
    printf("kmeans (patch 4, k 512): encode %.0f images/s (batch %d)\n", rate(do_kmeans_encode, &c, 1.0) * B, B);
    kmeans_free(&km);
  }
  beit_optimizer_free(&opt);
  free(c.x), free(c.tok);
  dvae_free(&d);
}

static void bench_dalle(void) {
  dvae_config cfg;
  dvae_config_dalle(&cfg);
  dvae d;
  if (dvae_create(&d, &cfg, 0)) { fprintf(stderr, "%s\n", beit_last_error()); return; }
  dvae_init_weights(&d, 1);
  ctx_t c = {.d = &d, .x = random_images(2, 3 * 112 * 112), .B = 2, .tok = malloc(2 * 196 * sizeof(int32_t))};
  double r = rate(do_encode, &c, 2.0) * c.B;
  printf("dvae DALL-E (112x112x3 -> 14x14, vocab 8192, 53.8M params): encode %.2f images/s (batch 2)\n", r);
  free(c.x), free(c.tok);
  dvae_free(&d);
}

static void do_logits(void *p) {
  ctx_t *c = p;
  dvae_encoder_logits(c->d, c->x, c->B, c->logits);
}

/* One encoder (cfg) at batch B: microseconds per image of each conv method, best of `rounds`. */
static void bench_conv_case(const char *name, const dvae_config *cfg, int B, int rounds) {
  dvae d;
  if (dvae_create(&d, cfg, 0)) { fprintf(stderr, "%s\n", beit_last_error()); return; }
  dvae_init_weights(&d, 1);
  int side = dvae_grid_side(cfg);
  ctx_t c = {.d = &d, .B = B, .x = random_images(B, (size_t)cfg->channels * cfg->image_size * cfg->image_size),
             .logits = malloc((size_t)B * cfg->vocab * side * side * sizeof(float))};
  double best[BEIT_CONV_COUNT] = {0};
  for (int r = 0; r < rounds; r++)
    for (int m = 0; m < BEIT_CONV_COUNT; m++)
      if (beit_conv_built((beit_conv_impl)m) && beit_conv_set((beit_conv_impl)m) == BEIT_OK) {
        double v = rate(do_logits, &c, 0.6) * B;
        best[m] = v > best[m] ? v : best[m];
      }
  printf("%-34s batch %3d:", name, B);
  for (int m = 0; m < BEIT_CONV_COUNT; m++)
    if (best[m] > 0) printf("  %s %8.1f us/image", beit_conv_name((beit_conv_impl)m), 1e6 / best[m]);
  if (best[BEIT_CONV_DNNL] > 0) printf("  (dnnl/im2col time %.2f)", best[BEIT_CONV_IM2COL] / best[BEIT_CONV_DNNL]);
  printf("\n");
  free(c.x), free(c.logits);
  dvae_free(&d);
}

static void bench_conv(int rounds) {
  /* the VQ tokenizer of the pretraining profile (CIFAR-10, code_dim 32) and the small dVAE */
  dvae_config vq = {.image_size = 32, .channels = 3, .n_hid = 32, .n_init = 64, .n_blk_per_group = 1,
                    .n_groups = 3, .vocab = 32, .recon = DVAE_RECON_LAPLACE}, small;
  dvae_config_small(&small);
  static const int batches[] = {256, 64, 1};
  for (int i = 0; i < 3; i++) bench_conv_case("vq encoder 32x32x3 n_hid 32 D 32", &vq, batches[i], rounds);
  for (int i = 0; i < 2; i++) bench_conv_case("dvae small encoder 28x28x1", &small, batches[i], rounds);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  beit_set_threads(threads > 0 ? threads : 2);
  printf("bench_tokenizer: %d threads\n", beit_get_threads());
  if (argc > 2 && !strcmp(argv[2], "--conv")) {
    printf("%s\n", beit_blas_describe());
    bench_conv(argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 5);
    return 0;
  }
  bench_small();
  if (!(argc > 2 && !strcmp(argv[2], "--no-dalle"))) bench_dalle();
  return 0;
}
