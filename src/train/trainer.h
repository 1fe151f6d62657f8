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
  int64_t steps_per_epoch, total_steps;
  beit_progress bar;
  double t_window;             /* start of the current logging window */
  int64_t window_images;
  double window_loss;
  int64_t window_correct, window_count, window_steps;
} beit_trainer;

/* Opens the training split (first o->subset images) and a loader in `mode`. */
int trainer_open_data(beit_trainer *t, const beit_recipe_opts *o, const char *kind, beit_load_mode mode,
                      int second_size, int num_mask, int random_mask);
/* Model from cfg, BEiT init, optimizer with the recipe's schedule; resumes from
 * out/checkpoint.safetensors when o->resume; opens the run folder. */
int trainer_open_model(beit_trainer *t, const beit_config *cfg, float layer_decay);
/* After forward/backward: optimizer step, non-finite check, stats, log, progress,
 * periodic checkpoint. Returns BEIT_ERR on a non-finite loss or gradient. */
int trainer_after_step(beit_trainer *t, const beit_batch *b, double loss, const beit_stats *s);
/* checkpoint.safetensors (resumable) and model.safetensors (weights + config). */
int trainer_save(beit_trainer *t);
/* Weights only (with config, class names and normalisation) as out/<name>. */
int trainer_save_weights(beit_trainer *t, const char *name);
void trainer_close(beit_trainer *t);
/* Model config in JSON with the recipe's arguments, for config.json and metadata. */
char *trainer_config_json(const beit_trainer *t);

#endif
