/* cmd_demo.c - `beit demo`: the whole method on Fashion-MNIST in one command,
 * aimed at 10 minutes on 2 cores: train a tokenizer, pretrain a
 * small BEiT by masked image modeling, fine-tune it, evaluate it, and write the
 * pictures (reconstructions, masks, attention maps, curves) into one folder.
 * The default tokenizer is k-means over 7x7 patches (seconds to train); the
 * dVAE (--tokenizer dvae, 7x7 tokens of 4x4 patches) is the paper's but takes
 * minutes on its own, so it does not fit the 10-minute budget. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fail.h"
#include "core/core.h"
#include "data/loader.h"
#include "model/convert.h"
#include "train/evaluate.h"
#include "train/recipes.h"
#include "train/tokenizer.h"
#include "train/visualize.h"

typedef struct {
  const char *out, *model, *tokenizer;
  int threads, tok_steps, pt_epochs, ft_epochs, eval_every, patch, batch, overwrite;
  long long subset, ft_subset;
} demo_opts;

/* dir/name; dir is bounded so that the name always fits */
static void path_in(char *buf, size_t n, const char *dir, const char *name) { snprintf(buf, n, "%.900s/%s", dir, name); }

static int step_tokenizer(const demo_opts *d, char *tok_path, size_t n) {
  beit_tok_train_cfg tc;
  beit_tok_train_defaults(&tc);
  char dir[1100];
  path_in(dir, sizeof dir, d->out, "tokenizer");
  tc.data = "fashion-mnist";
  tc.out = dir;
  tc.steps = d->tok_steps;
  tc.workers = 2;
  tc.km.patch = d->patch;
  tc.overwrite = d->overwrite;
  tc.type = strcmp(d->tokenizer, "dvae") ? BEIT_TOK_KMEANS : BEIT_TOK_DVAE;
  if (tc.type == BEIT_TOK_KMEANS) printf("\n== 1/4 visual tokenizer: k-means, %d codes over %dx%d patches ==\n", tc.km.k, d->patch, d->patch);
  else printf("\n== 1/4 visual tokenizer: a dVAE, %lld steps ==\n", (long long)tc.steps);
  fflush(stdout);
  int rc = beit_tokenizer_train(&tc);  /* BEIT_STOPPED by Ctrl-C: ends the demo */
  if (rc != BEIT_OK) return rc;
  path_in(tok_path, n, dir, "tokenizer.safetensors");
  return BEIT_OK;
}

#define DEMO_SIDE 28  /* Fashion-MNIST */

/* The pretraining recipe of the demo (out: a buffer for the run folder). */
static void pretrain_opts(const demo_opts *d, const char *tok_path, char *dir, size_t n, beit_recipe_opts *o) {
  beit_recipe_defaults_pretrain(o);
  path_in(dir, n, d->out, "pretrain");
  o->out = dir, o->model = d->model, o->tokenizer = tok_path, o->epochs = d->pt_epochs, o->subset = d->subset;
  o->threads = d->threads, o->crop_scale_min = 0.5f, o->warmup_epochs = 0.5f, o->batch = d->batch, o->log_every = 10;
  o->image_size = DEMO_SIDE, o->patch_size = d->patch, o->color_jitter = 0, o->overwrite = d->overwrite;
}

static int step_pretrain(const demo_opts *d, const char *tok_path) {
  beit_recipe_opts o;
  char dir[1100];
  pretrain_opts(d, tok_path, dir, sizeof dir, &o);
  printf("\n== 2/4 masked image modeling: BEiT-%s, %d epoch(s) on %lld images ==\n", d->model, o.epochs, d->subset);
  fflush(stdout);
  return beit_pretrain(&o);
}

/* The fine-tuning recipe of the demo (dir, init: buffers for its paths). */
static void finetune_opts(const demo_opts *d, char *dir, char *init, size_t n, beit_recipe_opts *o) {
  beit_recipe_defaults_finetune(o);
  path_in(dir, n, d->out, "finetune");
  path_in(init, n, d->out, "pretrain/model.safetensors");
  o->out = dir, o->model = d->model, o->init = init, o->epochs = d->ft_epochs, o->subset = d->ft_subset;
  o->threads = d->threads;
  /* A short schedule underfits, so regularisation only slows it down: measured over
   * 3 epochs from the same pretrained encoder, no crop (flip only) gave +5 points
   * after the first epoch, and lr 8e-3 with layer decay 0.9, no drop path and no
   * label smoothing +1.7 points at the end, over crop [0.8, 1] with lr 4e-3,
   * layer decay 0.75, drop path 0.1, smoothing 0.1 (docs/training.md). */
  o->lr = 8e-3f, o->layer_decay = 0.9f, o->mixup = 0, o->cutmix = 0, o->crop_scale_min = 1.0f, o->warmup_epochs = 0.5f;
  o->drop_path = 0, o->label_smoothing = 0;
  o->randaug = "none", o->reprob = 0, o->crop_pad = 0;  /* not the recipe the demo was measured with */
  /* the test split is for the curve and the final number, not for picking an epoch: evaluated
     every few epochs and after the last, whose weights (model.safetensors) the demo reports */
  o->eval_every = d->eval_every;
  o->batch = d->batch, o->log_every = 20, o->image_size = DEMO_SIDE, o->patch_size = d->patch, o->color_jitter = 0;
  o->overwrite = d->overwrite;
}

static int step_finetune(const demo_opts *d) {
  beit_recipe_opts o;
  char dir[1100], init[1100];
  finetune_opts(d, dir, init, sizeof dir, &o);
  printf("\n== 3/4 fine-tuning: %d epoch(s) on %lld training images ==\n", o.epochs, d->ft_subset);
  fflush(stdout);
  return beit_finetune(&o);
}

static int step_pictures(const demo_opts *d, const char *tok_path, double *top1) {
  char path[1100], last[1100];
  beit_dataset test;
  beit_model m;
  beit_tokenizer tok;
  if (beit_dataset_open(&test, "fashion-mnist", 0) != BEIT_OK) return BEIT_ERR;
  path_in(last, sizeof last, d->out, "finetune/model.safetensors");  /* the last epoch's weights */
  beit_checkpoint_info info;
  if (beit_checkpoint_open(&m, last, &info) != BEIT_OK || beit_model_reserve(&m, 128, 0) != BEIT_OK) return BEIT_ERR;
  beit_eval_prep prep = beit_checkpoint_eval_prep(&m, &info, 0);  /* as `beit eval` of model.safetensors */
  beit_checkpoint_info_free(&info);
  printf("\n== 4/4 evaluation and pictures ==\n");
  beit_eval_result r;
  if (beit_evaluate(&m, &test, &prep, &r, 1) != BEIT_OK) return BEIT_ERR;
  *top1 = (double)r.top1 / r.n;
  free(r.confusion);
  /* attention of the CLS token at the last layer, 8 test images */
  int n = 8, S = m.cfg.image_size;
  float *imgs = beit_alloc((size_t)n * S * S * test.channels * sizeof(float), "attention images");
  if (!imgs || beit_eval_images(&test, 0, n, &prep, imgs, NULL) != BEIT_OK) return BEIT_ERR;
  path_in(path, sizeof path, d->out, "attention.png");
  if (beit_attention_png(&m, imgs, n, prep.mean, prep.std, path) != BEIT_OK) return BEIT_ERR;
  beit_free(imgs);
  path_in(path, sizeof path, d->out, "tokenizer-recon.png");
  double mae = -1;
  if (beit_tokenizer_load(&tok, tok_path) != BEIT_OK) return BEIT_ERR;
  if (beit_tokenizer_reconstruct(&tok, &test, 0, 16, path, &mae) != BEIT_OK)  /* k-means on normalised patches cannot */
    printf("no tokenizer reconstructions: %s\n", beit_last_error());
  beit_tokenizer_free(&tok);
  path_in(path, sizeof path, d->out, "mask-preview.png");
  char patch[16];
  snprintf(patch, sizeof patch, "%d", d->patch);
  char *argv[] = {"data", "preview", "--data", "fashion-mnist", "--patch-size", patch, "--tokenizer", (char *)tok_path,
                  "--crop-min", "0.5", "--out", path, NULL};
  if (cmd_data(12, argv) != 0) return beit_errorf("mask preview failed");
  char pt[1100], ft[1100], tk[1100];
  path_in(pt, sizeof pt, d->out, "pretrain");
  path_in(ft, sizeof ft, d->out, "finetune");
  path_in(tk, sizeof tk, d->out, "tokenizer");
  const char *pruns[] = {pt}, *fruns[] = {ft}, *truns[] = {tk};
  path_in(path, sizeof path, d->out, "curve-pretrain-loss.png");
  if (beit_plot_png(pruns, 1, "loss", path) != BEIT_OK) return BEIT_ERR;
  path_in(path, sizeof path, d->out, "curve-pretrain-accuracy.png");
  if (beit_plot_png(pruns, 1, "accuracy", path) != BEIT_OK) return BEIT_ERR;
  path_in(path, sizeof path, d->out, "curve-finetune-loss.png");
  if (beit_plot_png(fruns, 1, "loss", path) != BEIT_OK) return BEIT_ERR;
  path_in(path, sizeof path, d->out, "curve-tokenizer-loss.png");  /* only the dVAE logs a loss */
  if (!strcmp(d->tokenizer, "dvae") && beit_plot_png(truns, 1, "loss", path) != BEIT_OK) return BEIT_ERR;
  if (mae >= 0) printf("tokenizer reconstruction MAE on 16 test images: %.4f\n", mae);
  beit_model_free(&m);
  beit_dataset_close(&test);
  return BEIT_OK;
}

/* Every flag and the tokenizer's grid against the patch size, before minutes of
 * tokenizer training: returns 2 (usage) or 1 (a recipe refused) with the message. */
static int check_demo(const demo_opts *d) {
  if (strcmp(d->tokenizer, "kmeans") && strcmp(d->tokenizer, "dvae"))
    return fprintf(stderr, "beit demo: --tokenizer expects kmeans or dvae, got '%s'\n", d->tokenizer), 2;
  if (DEMO_SIDE % d->patch)
    return fprintf(stderr, "beit demo: --patch-size %d does not divide the %d px of Fashion-MNIST\n", d->patch,
                   DEMO_SIDE), 2;
  dvae_config dv;
  dvae_config_small(&dv);
  if (!strcmp(d->tokenizer, "dvae") && dvae_grid_side(&dv) != DEMO_SIDE / d->patch)
    return fprintf(stderr, "beit demo: --tokenizer dvae gives %dx%d tokens, --patch-size %d a %dx%d patch grid: pass "
                   "--patch-size %d\n", dvae_grid_side(&dv), dvae_grid_side(&dv), d->patch, DEMO_SIDE / d->patch,
                   DEMO_SIDE / d->patch, DEMO_SIDE / dvae_grid_side(&dv)), 2;
  if (d->subset < d->batch || d->ft_subset < d->batch)
    return fprintf(stderr, "beit demo: --%s %lld is smaller than --batch %d: not one full batch per epoch\n",
                   d->subset < d->batch ? "pretrain-subset" : "finetune-subset",
                   d->subset < d->batch ? d->subset : d->ft_subset, d->batch), 2;
  beit_recipe_opts pt, ft;
  char dir[1100], init[1100];
  pretrain_opts(d, "pixel", dir, sizeof dir, &pt);
  if (beit_recipe_check(&pt, "pretrain") != BEIT_OK)
    return fprintf(stderr, "beit demo: %s\n", beit_last_error()), 1;
  finetune_opts(d, dir, init, sizeof dir, &ft);
  if (beit_recipe_check(&ft, "finetune") != BEIT_OK)
    return fprintf(stderr, "beit demo: %s\n", beit_last_error()), 1;
  return 0;
}

int cmd_demo(int argc, char **argv) {
  demo_opts d = {.out = "runs/demo", .model = "mini", .tokenizer = "kmeans", .threads = 0, .tok_steps = 1500,
                 .pt_epochs = 3, .ft_epochs = 12, .eval_every = 5, .patch = 7, .batch = 256, .subset = 60000, .ft_subset = 60000};
  beit_arg a[] = {
      {"out", ARG_STR, &d.out, "folder for everything the demo writes", 0, 0},
      {"model", ARG_STR, &d.model, "BEiT preset", 0, 0},
      {"tokenizer", ARG_STR, &d.tokenizer, "kmeans or dvae (the paper's; --patch-size 4 for its 7x7 tokens)", 0, 0},
      {"patch-size", ARG_INT, &d.patch, "BEiT patch side (28 must be a multiple)", 1, 28},
      {"batch", ARG_INT, &d.batch, "images per step (pretraining and fine-tuning)", 1, 4096},
      {"tokenizer-steps", ARG_INT, &d.tok_steps, "dVAE training steps (--tokenizer dvae)", 1, 1e9},
      {"pretrain-epochs", ARG_INT, &d.pt_epochs, "masked image modeling epochs", 1, 1e6},
      {"pretrain-subset", ARG_I64, &d.subset, "training images used for pretraining", 1, 1e9},
      {"finetune-epochs", ARG_INT, &d.ft_epochs, "fine-tuning epochs", 1, 1e6},
      {"finetune-subset", ARG_I64, &d.ft_subset, "training images used for fine-tuning", 1, 1e9},
      {"eval-every", ARG_INT, &d.eval_every, "fine-tuning: evaluate the test split every N epochs and after the last "
       "(the demo reports the last epoch)", 1, 1e6},
      {"threads", ARG_INT, &d.threads, "threads (0 = all cores)", 0, 1024},
      {"overwrite", ARG_FLAG, &d.overwrite, "replace the runs of an earlier demo in --out (else refused)", 0, 0},
  };
  int rc = beit_args_parse("beit demo [options]",
                           "Tokenizer, masked image modeling, fine-tuning and pictures on Fashion-MNIST.", a,
                           (int)(sizeof a / sizeof a[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if ((rc = check_demo(&d))) return rc;
  beit_set_threads(d.threads);
  double t0 = beit_now(), top1 = 0;
  char tok[1100];
  printf("beit demo: %s; %d threads; writing into %s\n", beit_blas_describe(), beit_get_threads(), d.out);
  rc = beit_mkdir_p(d.out);
  if (rc == BEIT_OK) rc = step_tokenizer(&d, tok, sizeof tok);
  if (rc == BEIT_OK) rc = step_pretrain(&d, tok);  /* BEIT_STOPPED by Ctrl-C: ends the demo too */
  if (rc == BEIT_OK) rc = step_finetune(&d);
  if (rc == BEIT_OK) rc = step_pictures(&d, tok, &top1);
  if (rc != BEIT_OK) return cli_recipe_exit("beit demo", rc);
  double minutes = (beit_now() - t0) / 60;
  char path[1100];
  path_in(path, sizeof path, d.out, "summary.json");
  FILE *f = fopen(path, "w");
  if (f) {
    fprintf(f, "{\"test_top1\": %.4f, \"minutes\": %.2f, \"model\": \"%s\", \"pretrain_epochs\": %d, "
               "\"pretrain_subset\": %lld, \"finetune_epochs\": %d, \"tokenizer_steps\": %d, \"weights\": "
               "\"finetune/model.safetensors\"}\n",
            top1, minutes, d.model, d.pt_epochs, d.subset, d.ft_epochs, d.tok_steps);
    fclose(f);
  }
  printf("\n== done in %.1f minutes ==\nFashion-MNIST test top-1 (the last epoch): %.2f%%\n", minutes, 100 * top1);
  printf("pictures in %s/:\n  attention.png            CLS attention at the last layer: image, each head, mean\n"
         "%s"
         "  mask-preview.png         augmented pretraining views with their blockwise masks\n"
         "  curve-*.png              training curves (tokenizer, pretraining, fine-tuning)\n"
         "runs: %s/{tokenizer,pretrain,finetune} (config.json, log.jsonl, checkpoints)\n", d.out,
         strcmp(d.tokenizer, "dvae") ? "" : "  tokenizer-recon.png      test images and their dVAE reconstructions\n", d.out);
  return 0;
}
