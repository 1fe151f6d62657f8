/* recipes.h - the BEiT recipes a user runs: masked-image-modeling pretraining,
 * fine-tuning a classifier (from a pretraining checkpoint or from scratch) and
 * evaluation. Each writes a run folder (config.json, log.jsonl, checkpoints)
 * and resumes exactly from its checkpoint. Defaults are the paper's, scaled for
 * small images where noted in the commands' --help. */
#ifndef BEIT_RECIPES_H
#define BEIT_RECIPES_H

#include <stdint.h>

#include "data/dataset.h"

typedef struct {
  const char *data;        /* dataset spec (fashion-mnist, cifar10:DIR, folder:ROOT, ...) */
  const char *out;         /* run folder */
  const char *model;       /* preset name */
  int image_size, patch_size;
  int epochs, batch, threads, workers;
  long long subset;        /* use only the first N training images (0 = all) */
  float lr, min_lr, warmup_epochs, weight_decay, beta2, clip_grad;
  float drop_path, layer_scale;
  float crop_scale_min;    /* random resized crop: smallest area share */
  float color_jitter;      /* brightness/contrast/saturation strength (0 = off) */
  long long seed;
  int resume;              /* continue from out/checkpoint.safetensors */
  int overwrite;           /* a fresh run into a folder holding a run: remove that run's files first */
  int extend_epochs;       /* --resume may raise --epochs (checked by the command line, cli/args.h) */
  long long max_steps;     /* stop after this many optimizer steps (0 = all); the schedule still spans --epochs */
  const char *args_record; /* the command's flags as JSON (cli/args.h), kept in config.json; may be NULL */
  int recompute;           /* recompute block activations in the backward pass (less memory) */
  int save_every;          /* checkpoint every N steps (0 = each epoch only) */
  int keep;                /* checkpoints kept: checkpoint.safetensors + checkpoint-1 .. -(keep-1) */
  int skip_nonfinite;      /* skip a step with a non-finite loss/gradient (at most 10 in a row) instead of stopping */
  int log_every;           /* log.jsonl line every N steps */
  int quiet;               /* no progress bar */
  /* the protocol (docs/training.md "Protocol: validation split"; beit_recipe_split) */
  long long val_split;     /* hold out N training images, class-balanced (0 = none: evaluate on the test split) */
  long long split_seed;    /* chooses them (and the labeled subset); independent of seed */
  long long labels_per_class; /* fine-tuning: train on N images per class of the rest (0 = all) */
  const char *weight_init; /* "beit" or "timm" (beit_model_init_named), for the weights not from --init */
  int argc;                /* the command line, for summary.json */
  char **argv;
  /* pretraining */
  const char *tokenizer;   /* tokenizer checkpoint, or "pixel" for the regression ablation */
  float mask_ratio;
  int random_mask;         /* ablation: random instead of blockwise */
  /* fine-tuning */
  const char *init;        /* pretraining checkpoint (NULL = from scratch) */
  float layer_decay, label_smoothing, mixup, cutmix;
  int use_cls;             /* classify from the CLS token instead of mean pooling */
  int eval_every;          /* evaluate every N epochs (and after the last step); 0 or 1 = each epoch */
  long long eval_subset;   /* evaluate on the first N test images (0 = all) */
  const char *randaug;     /* timm's RandAugment string (data/randaug.h); NULL or "none" = off */
  float reprob;            /* random erasing probability */
  int crop_pad;            /* RandomCrop padding instead of the resized crop: -1 = 4 up to 32 px else off, 0 = off */
  int model_ema;           /* keep an EMA of the weights: evaluation, best and model.safetensors use it */
  float model_ema_decay;
} beit_recipe_opts;

void beit_recipe_defaults_pretrain(beit_recipe_opts *o);
void beit_recipe_defaults_finetune(beit_recipe_opts *o);
/* The options checked against each other before any file or data is read or
 * anything large allocated (kind "pretrain" or "finetune"): the --model preset,
 * a full --batch in --subset and, when --image-size is given, --image-size /
 * --patch-size and the least memory the model needs (its encoder). Then
 * beit_recipe_check_data does the size checks for a size taken from the
 * dataset, before the loader opens. Messages name the flags. */
int beit_recipe_check(const beit_recipe_opts *o, const char *kind);
/* The model's input side S and patch side P for --image-size / --patch-size
 * (beit_resolve_sizes of data/loader.h: 0 = defaults, ds may be NULL when
 * image_size > 0), with a patch grid of at most 64 per side; messages name
 * the flags. */
int beit_check_sizes(int image_size, int patch_size, const beit_dataset *ds, int *S, int *P);
int beit_recipe_check_data(const beit_recipe_opts *o, const char *kind, const beit_dataset *ds);
/* The protocol's split of the training set ds (beit_split_make): ds becomes its
 * training part (all images but the held-out ones, or labels_per_class of each
 * class of them), *val (when val != NULL) the held-out part; nothing changes
 * when val_split and labels_per_class are 0. With dir != NULL, dir/val_indices.txt
 * and dir/labels_indices.txt list the indices chosen (one a line, 0-based in the
 * training split), written atomically. */
int beit_recipe_split(beit_dataset *ds, beit_dataset *val, long long val_split, long long labels_per_class,
                      long long split_seed, const char *dir);
/* What summary.json says of a run besides its epochs (beit_run_write_summary). */
typedef struct {
  const char *kind;        /* pretrain, finetune, linprobe */
  const char *command;     /* the command line as a JSON array of strings */
  long long seed, split_seed, val_split, labels_per_class;
  double seconds;          /* wall time of the run's work (resumed parts included) */
  int result;              /* the fields below are set (fine-tuning, linear probe) */
  long long best_epoch;    /* -1: none */
  double val_top1, test_top1, test_top5;  /* val_top1 < 0: no validation split */
  const char *selected_on; /* "val", "test" or "last" */
} beit_summary;
/* dir/summary.json, atomically: the fields of s, the CPU, the threads and, from
 * dir/log.jsonl, one entry per epoch (lines marked "final" or "partial" are not
 * epochs): pretraining {"epoch", "loss", "mim_accuracy"} from its "epoch_loss"
 * lines, else {"epoch", "val_top1" / "test_top1"} from its evaluations. */
int beit_run_write_summary(const char *dir, const beit_summary *s);
/* ["beit", argv...] as a JSON array (argv[0] is the subcommand); malloc'd, NULL when out of memory. */
char *beit_command_json(int argc, char **argv);

/* Each returns BEIT_OK (also when --max-steps ended it), BEIT_ERR (the message
 * in beit_last_error; nothing is printed and, under MPI, the caller ends the
 * other ranks: src/cli/fail.c), or BEIT_STOPPED when SIGINT or SIGTERM stopped
 * it after saving a checkpoint (the program exits 128 + the signal,
 * beit_stop_exit_code). */
enum { BEIT_STOPPED = 1 };
int beit_pretrain(const beit_recipe_opts *o);
int beit_finetune(const beit_recipe_opts *o);

typedef struct {
  const char *checkpoint;  /* any beit.c checkpoint; NULL = a randomly initialised --model */
  const char *data, *model, *out;
  int patch_size, image_size, layer, epochs, threads, quiet;  /* image_size 0 = the dataset's */
  int overwrite;           /* replace a run already in `out` */
  long long subset, seed;
  float lr, weight_decay;
  long long val_split, split_seed, labels_per_class;  /* as beit_recipe_opts */
  int argc;
  char **argv;
} beit_linprobe_opts;
/* Prints the accuracies on stdout; BEIT_OK or BEIT_ERR (message in beit_last_error). */
int beit_linprobe(const beit_linprobe_opts *o);

#endif
