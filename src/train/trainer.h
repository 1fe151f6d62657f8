/* trainer.h - the machinery every training recipe shares: dataset and loader,
 * model, optimizer, run folder, exact resume, the progress bar, the log line
 * and checkpoints. A recipe (pretrain.c, finetune.c) only says what one step does. */
#ifndef BEIT_TRAINER_H
#define BEIT_TRAINER_H

#include "core/core.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/beit.h"
#include "train/recipes.h"
#include "train/train.h"

typedef struct {
  const beit_recipe_opts *o;
  const char *kind;            /* "pretrain" / "finetune": names files and messages */
  beit_dataset ds;
  beit_loader *loader;
  beit_model model;
  beit_optimizer opt;
  beit_run run;
  beit_train_state st;
  int64_t steps_per_epoch, total_steps;  /* total_steps: --epochs worth, what the schedule spans */
  int64_t end_step;            /* where this run stops: total_steps, or --max-steps when smaller */
  beit_progress bar;
  double t_window;             /* start of the current logging window */
  double wait_window;          /* the loader's wait seconds at that start */
  int64_t window_images;
  double window_loss;
  int64_t window_correct, window_count, window_steps;
  int rank, world;             /* data parallelism (core/dist.h); 0 of 1 without MPI */
  int stop;                    /* a stop every rank agreed on at the last step */
  double t_start;              /* when training started (for the allreduce share) */
  int64_t window_skipped;      /* steps of the window skipped as non-finite (--skip-nonfinite) */
  int skipped_in_row;          /* consecutive non-finite steps */
  int saves_at_epoch_end;      /* the recipe checkpoints after its end-of-epoch evaluation itself,
                                  so --save-every must not checkpoint that step before it */
  beit_dataset val;            /* the images --val-split holds out of ds (n = 0 without) */
  double t_begin, seconds0;    /* this process's start; the run's work before it (time.json at resume) */
  char *command;               /* the command line that started the run, as JSON (summary.json) */
  int ema_in;                  /* the model holds the EMA weights (trainer_use_ema) */
} beit_trainer;

/* Claims the run folder (rank 0; beit_run_claim: the lock, a fresh run refused in
 * a used folder unless --overwrite), then opens the training split, holds out
 * --val-split images into t->val and keeps --labels-per-class (beit_recipe_split),
 * takes the first o->subset images of the rest and opens a loader in `mode`.
 * Under MPI the loader takes this rank's slice and o->batch / ranks images per
 * step (o->batch, the global batch, must be a multiple of the ranks). */
int trainer_open_data(beit_trainer *t, const beit_recipe_opts *o, const char *kind, beit_load_mode mode,
                      int second_size, int num_mask, int random_mask);
/* Model from cfg, BEiT init, optimizer with the recipe's schedule; resumes from
 * out/checkpoint.safetensors when o->resume (read by rank 0, sent to every
 * rank); opens the run folder (rank 0 only). */
int trainer_open_model(beit_trainer *t, const beit_config *cfg, float layer_decay);
/* After forward/backward: gradients and loss averaged over the ranks, optimizer
 * step, non-finite check, stats, log, progress, periodic checkpoint. A
 * non-finite loss or gradient returns BEIT_ERR naming the step and the first
 * tensor (table order) whose gradient is not finite, before any weight changes;
 * with o->skip_nonfinite the step is skipped instead (no update, but it counts
 * as a step), up to BEIT_MAX_NONFINITE_SKIPS in a row. */
int trainer_after_step(beit_trainer *t, const beit_batch *b, double loss, const beit_stats *s);
/* Ctrl-C / SIGTERM: under MPI, only once every rank knows (agreed at each step). */
int trainer_stopping(const beit_trainer *t);
/* After the loop: the final checkpoint (trainer_save), the progress bar ended,
 * and what happened said on stderr. Returns BEIT_OK (the end, or --max-steps),
 * BEIT_ERR, or BEIT_STOPPED after a stop by a signal. */
int trainer_finish(beit_trainer *t);
/* checkpoint.safetensors (resumable) and model.safetensors (weights + config);
 * collective under MPI, written by rank 0. */
int trainer_save(beit_trainer *t);
/* The eval preprocessing of the model being trained: its input size, the
 * default crop_pct, the loader's mean/std. Fine-tuning evaluates with it and
 * every file written carries it (metadata normalize, crop_pct). */
beit_eval_prep trainer_eval_prep(const beit_trainer *t);
/* --model-ema: on = 1 puts the EMA weights in the model (the trained ones in the
 * optimizer's EMA buffer), on = 0 swaps them back; no-op without an EMA or when already so. */
void trainer_use_ema(beit_trainer *t, int on);
/* Weights only (with config, class names and eval preprocessing) as out/<name>;
 * rank 0. With --model-ema these are the EMA weights. */
int trainer_save_weights(beit_trainer *t, const char *name);
void trainer_close(beit_trainer *t);
/* The wall time of the run's work so far: the resumed state's plus this process's. */
double trainer_seconds(const beit_trainer *t);
/* The fields of summary.json the trainer knows (kind, command, seeds, split, time). */
beit_summary trainer_summary(const beit_trainer *t);
/* Model config in JSON with the recipe's arguments, for config.json and metadata. */
char *trainer_config_json(const beit_trainer *t);

#endif
