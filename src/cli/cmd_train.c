/* cmd_train.c - `beit pretrain` and `beit finetune`: flags onto beit_recipe_opts
 * (one table for the flags both share), then the recipe in src/train/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fail.h"
#include "core/core.h"
#include "core/dist.h"
#include "train/recipes.h"

#define MAX_ARGS 64

/* Flags common to both recipes; returns how many were added. */
static int common_args(beit_arg *a, beit_recipe_opts *o) {
  beit_arg common[] = {
      {"data", ARG_STR, &o->data, "dataset: fashion-mnist, mnist:DIR, cifar10:DIR, cifar100:DIR, folder:ROOT", 0, 0},
      {"out", ARG_STR, &o->out, "run folder (config.json, log.jsonl, checkpoints)", 0, 0, ARG_RESUME_SAFE},
      {"model", ARG_STR, &o->model, "preset: micro mini demo tiny small base large", 0, 0},
      {"image-size", ARG_INT, &o->image_size, "input side (0 = the dataset's)", 0, 4096},
      {"patch-size", ARG_INT, &o->patch_size, "patch side (0 = 4 below 64 px, else 16)", 0, 256},
      {"epochs", ARG_INT, &o->epochs, "epochs (the learning-rate schedule spans them all)", 1, 100000, ARG_RESUME_GROWS},
      {"max-steps", ARG_I64, &o->max_steps, "stop after N optimizer steps, a complete run with its files, the schedule "
                                            "still for all --epochs (0 = no limit; continue with --resume)", 0, 1e15,
       ARG_RESUME_SAFE},
      {"batch", ARG_INT, &o->batch, "images per step (under mpirun: of all ranks together)", 1, 65536},
      {"subset", ARG_I64, &o->subset, "use only the first N training images (0 = all)", 0, 1e12},
      {"lr", ARG_FLOAT, &o->lr, "peak learning rate", 1e-9, 10},
      {"min-lr", ARG_FLOAT, &o->min_lr, "cosine schedule floor", 0, 10},
      {"warmup-epochs", ARG_FLOAT, &o->warmup_epochs, "linear warmup epochs", 0, 1e5},
      {"weight-decay", ARG_FLOAT, &o->weight_decay, "AdamW weight decay", 0, 10},
      {"beta2", ARG_FLOAT, &o->beta2, "AdamW beta2", 0, 1},
      {"clip-grad", ARG_FLOAT, &o->clip_grad, "global gradient norm clip (0 = off)", 0, 1e6},
      {"drop-path", ARG_FLOAT, &o->drop_path, "stochastic depth rate of the last block", 0, 0.99},
      {"layer-scale", ARG_FLOAT, &o->layer_scale, "LayerScale init (0 = off)", 0, 10},
      {"crop-scale-min", ARG_FLOAT, &o->crop_scale_min, "random resized crop: smallest area share", 0.01, 1},
      {"color-jitter", ARG_FLOAT, &o->color_jitter, "brightness/contrast/saturation jitter (0 = off)", 0, 1},
      {"seed", ARG_I64, &o->seed, "seed of every random choice (but --split-seed's)", 0, 9.2e18},
      {"val-split", ARG_I64, &o->val_split, "hold out N training images, class-balanced, as the validation split "
                                            "(pretraining never sees them; fine-tuning evaluates and selects on them "
                                            "and tests once at the end; 0 = none)", 0, 1e12},
      {"split-seed", ARG_I64, &o->split_seed, "seed of the --val-split (and --labels-per-class) choice, apart from "
                                              "--seed so every seed sees the same split", 0, 9.2e18},
      {"weight-init", ARG_STR, &o->weight_init, "initialisation of the weights not loaded from --init: beit (unilm's "
                                                "trunc-normal 0.02 cut at 1 sigma) or timm (timm's ViT from scratch: "
                                                "normal 0.02, not cut)", 0, 0},
      {"threads", ARG_INT, &o->threads, "threads (0 = all cores; under mpirun, shared by the ranks of a machine; "
                                        "another count on --resume rounds sums differently)", 0, 1024, ARG_RESUME_SAFE},
      {"workers", ARG_INT, &o->workers, "data loading threads", 0, 256, ARG_RESUME_SAFE},
      {"resume", ARG_FLAG, &o->resume, "continue from the run folder's checkpoint, with the run's options (see below)",
       0, 0, ARG_RESUME_SAFE},
      {"extend-epochs", ARG_FLAG, &o->extend_epochs, "with --resume: allow a larger --epochs (the schedule changes)",
       0, 0, ARG_RESUME_SAFE},
      {"overwrite", ARG_FLAG, &o->overwrite, "the run folder holds a run: delete its files and start over", 0, 0,
       ARG_RESUME_SAFE},
      {"recompute", ARG_FLAG, &o->recompute, "keep only each block's input, recompute the rest in the backward pass "
                                             "(about a third of the memory, about 25% slower)", 0, 0, ARG_RESUME_SAFE},
      {"save-every", ARG_INT, &o->save_every, "also checkpoint every N steps (0 = per epoch / at the end)", 0, 1e9,
       ARG_RESUME_SAFE},
      {"keep", ARG_INT, &o->keep, "checkpoints kept: checkpoint.safetensors and checkpoint-1..-(N-1) (docs/reliability.md)",
       1, 99, ARG_RESUME_SAFE},
      {"skip-nonfinite", ARG_FLAG, &o->skip_nonfinite,
       "skip a step whose loss or gradient is NaN/inf (at most 10 in a row) instead of stopping", 0, 0, ARG_RESUME_SAFE},
      {"log-every", ARG_INT, &o->log_every, "log.jsonl line every N steps", 1, 1e9, ARG_RESUME_SAFE},
      {"quiet", ARG_FLAG, &o->quiet, "no progress (the bar on a terminal, else a line every 30 s)", 0, 0, ARG_RESUME_SAFE},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int n = (int)(sizeof common / sizeof common[0]);
  memcpy(a, common, sizeof common);
  return n;
}

/* The checks --resume and --overwrite need before the recipe runs (rank 0 reads
 * the run's config.json), and the record of the flags for config.json. */
static int run_recipe(const char *cmd, const beit_arg *a, int n, beit_recipe_opts *o,
                      int (*recipe)(const beit_recipe_opts *), int argc, char **argv) {
  if (o->resume && o->overwrite) {
    fprintf(stderr, "beit %s: --resume and --overwrite exclude each other\n", cmd);
    return 2;
  }
  if (o->extend_epochs && !o->resume) {
    fprintf(stderr, "beit %s: --extend-epochs goes with --resume\n", cmd);
    return 2;
  }
  char full[64];
  snprintf(full, sizeof full, "beit %s", cmd);
  if (o->resume && beit_dist_is_root() && beit_args_check_resume(cmd, a, n, o->out) != BEIT_OK) return cli_fail(full);
  char *record = beit_args_record(cmd, a, n);
  o->args_record = record;
  o->argc = argc, o->argv = argv;
  int rc = recipe(o);
  free(record);
  return cli_recipe_exit(full, rc);
}

int cmd_pretrain(int argc, char **argv) {
  beit_recipe_opts o;
  beit_recipe_defaults_pretrain(&o);
  beit_arg a[MAX_ARGS];
  int n = common_args(a, &o);
  a[n++] = (beit_arg){"tokenizer", ARG_STR, &o.tokenizer, "tokenizer checkpoint (dVAE or k-means), or 'pixel' to regress pixels", 0, 0};
  a[n++] = (beit_arg){"mask-ratio", ARG_FLOAT, &o.mask_ratio, "share of patches masked (paper: 75 of 196)", 0.01, 0.95};
  a[n++] = (beit_arg){"random-mask", ARG_FLAG, &o.random_mask, "ablation: random instead of blockwise masking", 0, 0};
  int rc = beit_args_parse("beit pretrain --tokenizer TOK.safetensors [options]",
                           "Pretrain BEiT by masked image modeling: predict the visual tokens of masked patches.",
                           a, n, argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!o.tokenizer) {
    fprintf(stderr, "beit pretrain: --tokenizer is required (train one with 'beit tokenizer train', or pass 'pixel')\n");
    return 2;
  }
  return run_recipe("pretrain", a, n, &o, beit_pretrain, argc, argv);
}

int cmd_finetune(int argc, char **argv) {
  beit_recipe_opts o;
  beit_recipe_defaults_finetune(&o);
  beit_arg a[MAX_ARGS];
  int n = common_args(a, &o);
  a[n++] = (beit_arg){"init", ARG_STR, &o.init, "pretraining checkpoint to start from (none = from scratch)", 0, 0};
  a[n++] = (beit_arg){"layer-decay", ARG_FLOAT, &o.layer_decay, "layer-wise lr decay (1 = off)", 0.01, 1};
  a[n++] = (beit_arg){"smoothing", ARG_FLOAT, &o.label_smoothing, "label smoothing", 0, 0.99};
  a[n++] = (beit_arg){"mixup", ARG_FLOAT, &o.mixup, "mixup alpha (0 = off)", 0, 100};
  a[n++] = (beit_arg){"cutmix", ARG_FLOAT, &o.cutmix, "cutmix alpha (0 = off)", 0, 100};
  a[n++] = (beit_arg){"use-cls", ARG_FLAG, &o.use_cls, "classify from the CLS token instead of mean pooling", 0, 0};
  a[n++] = (beit_arg){"eval-every", ARG_INT, &o.eval_every, "evaluate every N epochs (and at the end)", 1, 1e6,
                      ARG_RESUME_SAFE};
  a[n++] = (beit_arg){"eval-subset", ARG_I64, &o.eval_subset, "evaluate on the first N test images (0 = all)", 0, 1e12};
  a[n++] = (beit_arg){"labels-per-class", ARG_I64, &o.labels_per_class, "train on N images per class of the training "
                      "images left after --val-split, a fixed list chosen by --split-seed (0 = all)", 0, 1e12};
  a[n++] = (beit_arg){"randaug", ARG_STR, &o.randaug, "timm's RandAugment after crop and flip: rand-mM-nN-mstdS-incI "
                      "(unilm's default; none = off); on, it replaces --color-jitter, as in timm", 0, 0};
  a[n++] = (beit_arg){"reprob", ARG_FLOAT, &o.reprob, "random erasing probability (timm's mode pixel: one box of N(0,1) "
                      "values after normalisation; 0 = off)", 0, 1};
  a[n++] = (beit_arg){"crop-pad", ARG_INT, &o.crop_pad, "RandomCrop(S, padding N) + flip instead of the random resized "
                      "crop (-1 = 4 when the input is 32 px or less, as unilm's datasets.py, else off; 0 = off)", -1, 1024};
  a[n++] = (beit_arg){"model-ema", ARG_FLAG, &o.model_ema, "keep an exponential moving average of the weights (timm's "
                      "ModelEma, after each step): evaluated, and saved as best/model.safetensors", 0, 0};
  a[n++] = (beit_arg){"model-ema-decay", ARG_FLOAT, &o.model_ema_decay, "EMA decay per step", 0, 1};
  int rc = beit_args_parse("beit finetune [--init PRETRAINED.safetensors] [options]",
                           "Fine-tune a BEiT classifier and evaluate it every epoch: on the --val-split images, keeping "
                           "the best as best.safetensors and testing it once at the end, or without --val-split on the "
                           "test split (the epoch then selected on the test split).", a, n, argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  return run_recipe("finetune", a, n, &o, beit_finetune, argc, argv);
}

int cmd_linprobe(int argc, char **argv) {
  beit_linprobe_opts o = {.data = "fashion-mnist", .model = "mini", .out = NULL, .patch_size = 4, .layer = 0,
                          .epochs = 20, .lr = 4e-3f, .weight_decay = 1e-4f};
  beit_arg a[] = {
      {"checkpoint", ARG_STR, &o.checkpoint, "encoder checkpoint (none = a random --model, the baseline)", 0, 0},
      {"data", ARG_STR, &o.data, "dataset spec", 0, 0},
      {"model", ARG_STR, &o.model, "preset of the random encoder", 0, 0},
      {"patch-size", ARG_INT, &o.patch_size, "patch side of the random encoder", 1, 256},
      {"image-size", ARG_INT, &o.image_size, "input side of the random encoder (0 = the dataset's)", 0, 4096},
      {"layer", ARG_INT, &o.layer, "block whose output is probed, 1..depth (0 = 3/4 of the depth, as the paper)", 0, 64},
      {"epochs", ARG_INT, &o.epochs, "epochs of the linear classifier", 1, 100000},
      {"lr", ARG_FLOAT, &o.lr, "peak learning rate (cosine to 0)", 1e-9, 10},
      {"weight-decay", ARG_FLOAT, &o.weight_decay, "AdamW weight decay", 0, 10},
      {"subset", ARG_I64, &o.subset, "training images (0 = all)", 0, 1e12},
      {"seed", ARG_I64, &o.seed, "seed", 0, 9.2e18},
      {"val-split", ARG_I64, &o.val_split, "hold out N training images, class-balanced (as pretrain's --val-split): "
                                           "the probe of the epoch best on them is tested once (0 = none: the last)",
       0, 1e12},
      {"split-seed", ARG_I64, &o.split_seed, "seed of the --val-split and --labels-per-class choice", 0, 9.2e18},
      {"labels-per-class", ARG_I64, &o.labels_per_class, "train on N images per class of the rest (0 = all)", 0, 1e12},
      {"threads", ARG_INT, &o.threads, "threads (0 = all cores)", 0, 1024},
      {"out", ARG_STR, &o.out, "folder for probe.json", 0, 0},
      {"overwrite", ARG_FLAG, &o.overwrite, "the folder holds a run: delete its files first", 0, 0},
      {"quiet", ARG_FLAG, &o.quiet, "no progress bar", 0, 0},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit linprobe [--checkpoint CKPT] [options]",
                           "Linear probe: frozen encoder, mean-pooled patch tokens of one block, a linear classifier.",
                           a, (int)(sizeof a / sizeof a[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  o.argc = argc, o.argv = argv;
  return cli_recipe_exit("beit linprobe", beit_linprobe(&o));
}
