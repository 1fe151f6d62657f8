/* cmd_tokenizer.c - `beit tokenizer train|encode|reconstruct`: trains the dVAE
 * (or k-means) visual tokenizer, writes the token grids of a whole dataset, and
 * shows originals beside their reconstructions with the mean absolute error, and
 * measures a tokenizer (codebook usage, perplexity, MAE / PSNR). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fail.h"
#include "core/core.h"
#include "train/tokenizer.h"

static int fail(const char *sub) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "beit tokenizer %s", sub);
  return cli_fail(cmd);
}

static int parse_choice(const char *flag, const char *val, const char *a, const char *b, int *out) {
  if (!strcmp(val, a)) return *out = 0, 0;
  if (!strcmp(val, b)) return *out = 1, 0;
  fprintf(stderr, "beit tokenizer: --%s expects %s or %s, got '%s'\n", flag, a, b, val);
  return 2;
}

/* A whole number of steps >= 0 (a flag whose other value is a word, e.g. --save-every auto). */
static int parse_steps(const char *flag, const char *val, long long *out) {
  char *end;
  errno = 0;
  long long x = strtoll(val, &end, 10);
  if (end == val || *end || errno || x < 0) {
    fprintf(stderr, "beit tokenizer train: --%s expects a number of steps or auto, got '%s'\n", flag, val);
    return 2;
  }
  *out = x;
  return 0;
}

/* ---- train ------------------------------------------------------------------- */
static int tok_train(int argc, char **argv) {
  beit_tok_train_cfg c;
  beit_tok_train_defaults(&c);
  const char *type = "dvae", *recon = "laplace", *norm = "patch", *kl = c.kl_usage ? "usage" : "cell";
  long long steps = c.steps, warmup = c.warmup, tau_steps = c.tau_steps, kl_warmup = c.kl_warmup, seed = 0;
  long long max_patches = c.km_max_patches, max_steps = 0, save_every = c.save_every;
  const char *save_every_s = "auto";
  int threads = 0, vocab = 0;
  const beit_arg args[] = {
      {"data", ARG_STR, &c.data, "dataset spec (fashion-mnist, mnist:DIR, cifar10:DIR, folder:DIR)", 0, 0},
      {"out", ARG_STR, &c.out, "run folder: tokenizer.safetensors, log.jsonl, config.json", 0, 0},
      {"type", ARG_STR, &type, "dvae, kmeans or vq (vector-quantised, EMA codebook)", 0, 0},
      {"image-size", ARG_INT, &c.dv.image_size, "input side (0 = the dataset's)", 0, 4096},
      {"vocab", ARG_INT, &vocab, "codebook size (k for kmeans; 0 = kmeans 512, vq 1024, dVAE 1024 for colour data and 512 for grey)", 0, 65536},
      {"n-hid", ARG_INT, &c.dv.n_hid, "dVAE width of the first group", 4, 4096},
      {"n-init", ARG_INT, &c.dv.n_init, "dVAE decoder input width (code embedding)", 1, 4096},
      {"groups", ARG_INT, &c.dv.n_groups, "dVAE groups (downsampling 2^(groups-1))", 1, 6},
      {"blocks", ARG_INT, &c.dv.n_blk_per_group, "dVAE residual blocks per group", 1, 8},
      {"recon", ARG_STR, &recon, "reconstruction loss: laplace (DALL-E) or mse", 0, 0},
      {"steps", ARG_I64, &steps, "dVAE updates (the lr, temperature and KL schedules span them)", 1, 1e12},
      {"max-steps", ARG_I64, &max_steps, "dVAE: stop after N updates, the schedules still for all --steps (0 = --steps)",
       0, 1e12},
      {"overwrite", ARG_FLAG, &c.overwrite, "the run folder holds a run: delete its files and start over", 0, 0},
      {"save-every", ARG_STR, &save_every_s, "dVAE, vq: write OUT/checkpoint.safetensors every N steps (auto = 100, "
       "0 = never); a SIGINT/SIGTERM also writes one and stops (exit 130/143; continue with --resume)", 0, 0},
      {"resume", ARG_FLAG, &c.resume, "dVAE, vq: continue the run in --out from its checkpoint (same flags; bit-exact)", 0,
       0},
      {"ema", ARG_FLOAT, &c.ema, "dVAE, vq: decay of an EMA of the weights, which is what gets saved (DALL-E 0.999; "
       "0 = off)", 0, 0.999999},
      {"batch", ARG_INT, &c.batch, "images per update (under mpirun: of all ranks together)", 1, 65536},
      {"lr", ARG_FLOAT, &c.lr, "peak AdamW learning rate", 0, 1},
      {"min-lr", ARG_FLOAT, &c.min_lr, "cosine floor of the learning rate", 0, 1},
      {"warmup", ARG_I64, &warmup, "linear lr warmup steps", 0, 1e12},
      {"weight-decay", ARG_FLOAT, &c.weight_decay, "AdamW weight decay (conv weights only)", 0, 10},
      {"clip-grad", ARG_FLOAT, &c.clip_grad, "global gradient-norm clip (0 = off)", 0, 1e6},
      {"tau-start", ARG_FLOAT, &c.tau_start, "initial Gumbel-softmax temperature", 1e-3, 100},
      {"tau-end", ARG_FLOAT, &c.tau_end, "final temperature (cosine schedule)", 1e-3, 100},
      {"tau-steps", ARG_I64, &tau_steps, "steps of the temperature schedule (0 = all)", 0, 1e12},
      {"straight-through", ARG_FLAG, &c.hard, "dVAE: the decoder gets the one-hot code of the relaxed sample (gradient "
       "through the relaxation)", 0, 0},
      {"kl", ARG_STR, &kl, "dVAE KL term: usage (the batch's average q to uniform: codebook usage without a penalty on "
       "information) or cell (DALL-E: each cell's q to uniform)", 0, 0},
      {"beta", ARG_FLOAT, &c.beta, "KL weight (as DALL-E: beta * KL / pixels)", 0, 1e4},
      {"kl-warmup", ARG_I64, &kl_warmup, "steps of the cosine KL-weight ramp from 0", 0, 1e12},
      {"crop-min", ARG_FLOAT, &c.crop_min, "random resized crop: smallest area share", 0.01, 1},
      {"hflip", ARG_FLOAT, &c.hflip, "horizontal flip probability", 0, 1},
      {"log-every", ARG_INT, &c.log_every, "steps per log line", 1, 1000000},
      {"eval-images", ARG_INT, &c.eval_images, "test images for the final MAE and usage", 1, 10000000},
      {"workers", ARG_INT, &c.workers, "data loader threads", 0, 64},
      {"seed", ARG_I64, &seed, "random seed (init, data order, Gumbel noise, k-means)", 0, 1e18},
      {"val-split", ARG_I64, &c.val_split, "hold out N training images, class-balanced, as pretrain's --val-split does "
       "(the same images for the same --split-seed): the tokenizer never sees the validation split (0 = none)", 0, 1e12},
      {"split-seed", ARG_I64, &c.split_seed, "seed of the --val-split choice (pretrain's --split-seed)", 0, 9.2e18},
      {"threads", ARG_INT, &threads, "compute threads (0 = all cores; under mpirun, shared by the ranks of a machine)", 0, 1024},
      {"patch", ARG_INT, &c.km.patch, "kmeans: patch size (the BEiT patch size)", 1, 256},
      {"iters", ARG_INT, &c.km_iters, "kmeans: Lloyd iterations", 1, 10000},
      {"images", ARG_INT, &c.km_images, "kmeans: training images (0 = all)", 0, 100000000},
      {"max-patches", ARG_I64, &max_patches, "kmeans: patches sampled for fitting (0 = all)", 0, 1e12},
      {"norm", ARG_STR, &norm, "kmeans: patch normalisation, patch or none", 0, 0},
      {"code-dim", ARG_INT, &c.code_dim, "vq: dimension of the l2-normalised codes", 2, 1024},
      {"commit", ARG_FLOAT, &c.vq_beta, "vq: commitment loss weight", 0, 100},
      {"decay", ARG_FLOAT, &c.vq_decay, "vq: EMA decay of the codebook", 0, 0.99999},
      {"dead", ARG_FLOAT, &c.vq_dead, "vq: restart a code whose EMA count of uses per batch falls below this", 0, 1e6},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit tokenizer train [options]",
                           "Train a visual tokenizer: the DALL-E dVAE (Gumbel-softmax, cosine temperature schedule, "
                           "a KL term that keeps the codebook used, AdamW), k-means over patches, or a vector-quantised tokenizer (the dVAE's "
                           "network around l2-normalised codes with cosine lookup, straight-through estimator, "
                           "commitment loss, k-means-initialised EMA codebook, dead-code restart).",
                           args, (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  int is_kmeans = !strcmp(type, "kmeans"), is_mse, no_norm, is_vq = !strcmp(type, "vq");
  if (!is_kmeans && !is_vq && strcmp(type, "dvae")) {
    fprintf(stderr, "beit tokenizer: --type expects dvae, kmeans or vq, got '%s'\n", type);
    return 2;
  }
  if (parse_choice("kl", kl, "cell", "usage", &c.kl_usage) || parse_choice("recon", recon, "laplace", "mse", &is_mse) ||
      parse_choice("norm", norm, "patch", "none", &no_norm))
    return 2;
  if (vocab == 1) {
    fprintf(stderr, "beit tokenizer train: --vocab 1: a codebook needs at least 2 codes\n");
    return 2;
  }
  if (!vocab) vocab = is_vq ? 1024 : is_kmeans ? 512 : 0;  /* dVAE: 1024 for colour data, 512 for grey */
  c.type = is_kmeans ? BEIT_TOK_KMEANS : is_vq ? BEIT_TOK_VQ : BEIT_TOK_DVAE;
  c.dv.recon = is_mse ? DVAE_RECON_MSE : DVAE_RECON_LAPLACE;
  c.dv.vocab = c.km.k = vocab;
  c.km.image_size = c.dv.image_size;
  c.km.normalize = no_norm ? KMEANS_NORM_NONE : KMEANS_NORM_PATCH;
  if (max_steps && is_kmeans) {
    fprintf(stderr, "beit tokenizer train: --max-steps counts dVAE updates (k-means has --iters)\n");
    return 2;
  }
  if (strcmp(save_every_s, "auto") && parse_steps("save-every", save_every_s, &save_every)) return 2;
  if ((strcmp(save_every_s, "auto") || c.resume || c.ema > 0) && is_kmeans) {
    fprintf(stderr, "beit tokenizer train: --save-every, --resume and --ema are for --type dvae and vq (k-means fits "
                    "in seconds: run it again)\n");
    return 2;
  }
  c.save_every = save_every;
  c.steps = steps, c.max_steps = max_steps, c.warmup = warmup, c.tau_steps = tau_steps, c.kl_warmup = kl_warmup;
  c.seed = (uint64_t)seed;
  c.km_max_patches = max_patches;
  beit_set_threads(threads);
  return cli_recipe_exit("beit tokenizer train", beit_tokenizer_train(&c));
}

/* ---- encode / reconstruct ------------------------------------------------------- */
static int open_both(beit_tokenizer *t, const char *ckpt, beit_dataset *ds, const char *data, const char *split) {
  int train;
  if (parse_choice("split", split, "test", "train", &train)) return 2;
  if (!ckpt) {
    fprintf(stderr, "beit tokenizer: --tokenizer CHECKPOINT is required\n");
    return 2;
  }
  if (beit_tokenizer_load(t, ckpt)) return 1;
  if (beit_dataset_open(ds, data, train)) {
    beit_tokenizer_free(t);
    return 1;
  }
  return 0;
}

static int tok_encode(int argc, char **argv) {
  const char *ckpt = NULL, *data = "fashion-mnist", *split = "train", *out = "tokens.bin";
  int batch = 256, threads = 0;
  const beit_arg args[] = {
      {"tokenizer", ARG_STR, &ckpt, "tokenizer checkpoint (from beit tokenizer train)", 0, 0},
      {"data", ARG_STR, &data, "dataset spec", 0, 0},
      {"split", ARG_STR, &split, "train or test", 0, 0},
      {"out", ARG_STR, &out, "token file (format: docs/tokenizer.md)", 0, 0},
      {"batch", ARG_INT, &batch, "images per encoder call", 1, 65536},
      {"threads", ARG_INT, &threads, "compute threads (0 = all cores)", 0, 1024},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit tokenizer encode --tokenizer CKPT [options]",
                           "Write the token grid of every image of a dataset split to a token file.", args,
                           (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  beit_set_threads(threads);
  beit_tokenizer t;
  beit_dataset ds;
  if ((rc = open_both(&t, ckpt, &ds, data, split))) return rc == 1 ? fail("encode") : rc;
  double t0 = beit_now();
  rc = beit_tokenizer_encode_dataset(&t, &ds, batch, out);
  if (!rc) printf("%.1f s, %.0f images/s\n", beit_now() - t0, ds.n / (beit_now() - t0));
  beit_tokenizer_free(&t);
  beit_dataset_close(&ds);
  return rc ? fail("encode") : 0;
}

static int tok_reconstruct(int argc, char **argv) {
  const char *ckpt = NULL, *data = "fashion-mnist", *split = "test", *out = "recon.png";
  int n = 32, threads = 0;
  long long first = 0;
  const beit_arg args[] = {
      {"tokenizer", ARG_STR, &ckpt, "tokenizer checkpoint", 0, 0},
      {"data", ARG_STR, &data, "dataset spec", 0, 0},
      {"split", ARG_STR, &split, "train or test", 0, 0},
      {"first", ARG_I64, &first, "index of the first image", 0, 1e12},
      {"n", ARG_INT, &n, "images to reconstruct (the MAE covers all of them)", 1, 10000000},
      {"out", ARG_STR, &out, "PNG: each original beside its reconstruction (at most 256)", 0, 0},
      {"threads", ARG_INT, &threads, "compute threads (0 = all cores)", 0, 1024},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit tokenizer reconstruct --tokenizer CKPT [options]",
                           "Encode images to tokens, decode them back, save originals beside reconstructions and "
                           "print the mean absolute error.",
                           args, (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  beit_set_threads(threads);
  beit_tokenizer t;
  beit_dataset ds;
  if ((rc = open_both(&t, ckpt, &ds, data, split))) return rc == 1 ? fail("reconstruct") : rc;
  double mae = NAN;
  rc = beit_tokenizer_reconstruct(&t, &ds, first, n, out, &mae);
  if (!rc) printf("%d images: mean absolute reconstruction error %.4f (pixels in [0, 1]); saved %s\n", n, mae, out);
  beit_tokenizer_free(&t);
  beit_dataset_close(&ds);
  return rc ? fail("reconstruct") : 0;
}

/* ---- eval ------------------------------------------------------------------------ */
static void print_tok_eval(const beit_tokenizer *t, const char *data, const beit_tok_eval *r) {
  printf("%s: %lld images, %lld tokens (%dx%d each), resized to %d px\n", data, (long long)r->images,
         (long long)r->tokens, t->grid, t->grid, t->image_size);
  printf("time per image %.3f ms (encode%s)\n", 1e3 * r->seconds_per_image, isnan(r->mae) ? "" : " + decode");
  printf("codes used %d/%d (%.1f%%), perplexity %.1f", r->used, t->vocab, 100.0 * r->used / t->vocab, r->perplexity);
  if (isnan(r->mae)) printf(", MAE n/a, PSNR n/a (this tokenizer does not decode)\n");
  else printf(", MAE %.4f, PSNR %.2f dB\n", r->mae, r->psnr);
}

static int tok_eval(int argc, char **argv) {
  const char *ckpt = NULL, *data = "fashion-mnist", *split = "test";
  int size = 0, batch = 256, threads = 0;
  long long n = 0;
  const beit_arg args[] = {
      {"tokenizer", ARG_STR, &ckpt, "tokenizer checkpoint (beit tokenizer train, or a converted dall_e encoder)", 0, 0},
      {"data", ARG_STR, &data, "dataset spec; images are resized to the tokenizer's input size", 0, 0},
      {"split", ARG_STR, &split, "test or train", 0, 0},
      {"image-size", ARG_INT, &size, "input side of a dall_e encoder (0 = 112); others take the size they were "
       "trained at, so it must be 0 or that", 0, 4096},
      {"n", ARG_I64, &n, "images to evaluate (0 = the whole split)", 0, 1e12},
      {"batch", ARG_INT, &batch, "images per encoder call", 1, 65536},
      {"threads", ARG_INT, &threads, "compute threads (0 = all cores)", 0, 1024},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit tokenizer eval --tokenizer CKPT --data D [options]",
                           "Measure a tokenizer on a dataset split: codes used of the vocabulary, perplexity of the "
                           "code histogram, reconstruction MAE and PSNR (tokenizers that decode), time per image.",
                           args, (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  int train;
  if (parse_choice("split", split, "test", "train", &train)) return 2;
  if (!ckpt) {
    fprintf(stderr, "beit tokenizer eval: --tokenizer CHECKPOINT is required\n");
    return 2;
  }
  beit_set_threads(threads);
  beit_tokenizer t;
  if (beit_tokenizer_load_sized(&t, ckpt, size ? size : BEIT_DALLE_IMAGE_SIZE)) return fail("eval");
  if (size && size != t.image_size) {
    fprintf(stderr, "beit tokenizer eval: --image-size %d: %s takes %d px images (the dataset's are resized to it)\n",
            size, ckpt, t.image_size);
    beit_tokenizer_free(&t);
    return 2;
  }
  beit_dataset ds;
  memset(&ds, 0, sizeof ds);
  beit_tok_eval r;
  rc = beit_dataset_open(&ds, data, train) ? BEIT_ERR : beit_tokenizer_eval(&t, &ds, n, batch, &r);
  if (!rc) print_tok_eval(&t, data, &r);
  beit_dataset_close(&ds);
  beit_tokenizer_free(&t);
  return rc ? fail("eval") : 0;
}

int cmd_tokenizer(int argc, char **argv) {
  static const beit_subcommand subs[] = {
      {"train", tok_train, "train a dVAE (DALL-E), k-means or VQ visual tokenizer"},
      {"encode", tok_encode, "write the token grids of a dataset to a token file"},
      {"reconstruct", tok_reconstruct, "originals beside reconstructions (PNG) and the mean absolute error"},
      {"eval", tok_eval, "codes used, perplexity, reconstruction MAE / PSNR and time per image on a dataset split"},
  };
  return beit_run_subcommand("tokenizer", subs, 4, argc, argv);
}
