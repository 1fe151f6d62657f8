/* train.h - what every training command shares: the AdamW optimizer over a
 * parameter table (with per-tensor decay flags, layer-wise lr decay, global-norm
 * clipping), the warmup + cosine schedule, the run folder (config.json, JSON-lines
 * log) and atomic, resumable checkpoints. Used by pretraining, fine-tuning, the
 * linear probe and the tokenizer trainer alike. */
#ifndef BEIT_TRAIN_H
#define BEIT_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "model/params.h"

typedef struct {
  float lr;             /* peak learning rate */
  float min_lr;         /* cosine floor */
  int64_t warmup_steps; /* linear from 0 to lr */
  int64_t total_steps;  /* warmup + cosine */
  float beta1, beta2, eps;
  float weight_decay;   /* applied to tensors whose table entry has decay = 1 */
  float layer_decay;    /* 1 = off; else lr scale decay^(num_layers + 1 - layer_id) */
  int num_layers;       /* L for layer decay */
  float clip_grad;      /* global L2 norm; 0 = off */
} beit_optim_cfg;

typedef struct {
  beit_params *p;
  beit_optim_cfg cfg;
  float *m, *v;        /* mirror p->data */
  int64_t step;        /* number of updates done */
} beit_optimizer;

/* lr at update `step` (0-based): linear warmup (step+1)/warmup*lr... see train/schedule.c */
double beit_lr_at(const beit_optim_cfg *cfg, int64_t step);
int beit_optimizer_init(beit_optimizer *o, beit_params *p, const beit_optim_cfg *cfg);
void beit_optimizer_free(beit_optimizer *o);
/* One AdamW update from p->grad: clip by global norm (if set), apply, step++.
 * Returns the gradient norm before clipping; a non-finite norm is returned
 * without touching the parameters (the caller reports it). */
double beit_optimizer_step(beit_optimizer *o);

#endif
