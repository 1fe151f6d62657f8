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

struct beit_backend;

typedef struct {
  beit_params *p;
  beit_optim_cfg cfg;
  const struct beit_backend *be;  /* runs the update and the clipping (init: the default) */
  float *m, *v;        /* mirror p->data */
  int64_t step;        /* number of updates done */
  float *ema;          /* NULL, or the EMA of p->data (beit_optimizer_ema_init) */
  float ema_decay;
} beit_optimizer;

/* lr at update `step` (0-based): linear warmup (step+1)/warmup*lr... see train/schedule.c */
double beit_lr_at(const beit_optim_cfg *cfg, int64_t step);
int beit_optimizer_init(beit_optimizer *o, beit_params *p, const beit_optim_cfg *cfg);
void beit_optimizer_free(beit_optimizer *o);
/* One AdamW update from p->grad: clip by global norm (if set), apply, step++.
 * Returns the gradient norm before clipping; a non-finite norm is returned
 * without touching the parameters (the caller reports it). */
double beit_optimizer_step(beit_optimizer *o);
/* An exponential moving average of the weights, timm's ModelEma: started as a
 * copy of p->data, then after every update ema = decay * ema + (1 - decay) * p
 * (scale_inplace + axpy of the backend). Saved in checkpoints as optim.ema.NAME. */
int beit_optimizer_ema_init(beit_optimizer *o, float decay);
void beit_optimizer_ema_reset(beit_optimizer *o);  /* ema = p->data (after loading pretrained weights) */

/* ---- run folder: its lock, config.json, log.jsonl ------------------------- */
typedef struct {
  char dir[1024];
  FILE *log;
  int lock_fd, locked;  /* DIR/.lock, held for the run's lifetime */
} beit_run;

/* Claims DIR for this process before anything is read or written there:
 * creates it and takes an exclusive flock on DIR/.lock (which holds the pid);
 * a folder another process holds is refused at once, naming its pid. A fresh
 * run (resume = 0) into a folder holding a run (any file a run writes: config.json,
 * log.jsonl, checkpoint*.safetensors, model / best / tokenizer.safetensors,
 * probe.json, summary.json, time.json, val_indices.txt, labels_indices.txt, their .tmp /
 * .bad leftovers) is refused, naming the folder and the
 * ways out (--resume when can_resume, --overwrite); with overwrite those files
 * (and no others) are removed first. */
int beit_run_claim(beit_run *r, const char *dir, int resume, int overwrite, int can_resume);
/* In the claimed folder: writes config.json (atomically). A fresh run truncates
 * log.jsonl; a resumed run (resume_step >= 0) keeps only the lines whose
 * "step" is <= resume_step, so the log has no duplicated steps. */
int beit_run_open(beit_run *r, const char *config_json, int64_t resume_step);
/* Appends one JSON object line and flushes it (crash-safe). BEIT_ERR (message
 * naming log.jsonl and the errno text) when the write fails, e.g. disk full. */
int beit_run_log(beit_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes the log and releases the folder's lock (a no-op on an unclaimed run). */
void beit_run_close(beit_run *r);
/* path = dir/name */
void beit_run_path(const beit_run *r, const char *name, char *out, size_t n);

/* ---- test hook: a non-finite step on purpose (docs/reliability.md) ---------
 * BEIT_TEST_NAN="STEP:WHAT[:COUNT]" makes steps STEP .. STEP+COUNT-1 (numbered
 * from 1, as in log.jsonl) non-finite: WHAT "loss" turns the loss into NaN,
 * otherwise WHAT is a comma-separated list of parameter names whose gradient
 * gets a NaN. Nothing happens when the variable is unset. */
void beit_test_inject_nan(int64_t step, double *loss, beit_params *p);
/* Consecutive non-finite steps --skip-nonfinite tolerates before stopping. */
#define BEIT_MAX_NONFINITE_SKIPS 10

/* ---- Ctrl-C: the first SIGINT/SIGTERM asks the loop to checkpoint and stop */
void beit_install_stop_handler(void);
int beit_stop_requested(void);
/* The exit code of a run so stopped: 128 + the signal (130 SIGINT, 143 SIGTERM);
 * 143 on an MPI rank that only learnt of another rank's signal. */
int beit_stop_exit_code(void);

/* ---- checkpoints ----------------------------------------------------------
 * One safetensors file: the model's tensors under their own names, the AdamW
 * moments as "optim.m.<name>" / "optim.v.<name>", and metadata holding the model
 * config, the command's arguments and the position to resume from. Written to
 * a temp file, fsynced and renamed, so the previous checkpoint survives a crash. */
typedef struct {
  int64_t step;          /* optimizer updates done */
  int64_t epoch;         /* epoch to continue in */
  int64_t step_in_epoch; /* batches of that epoch already consumed */
  double best;           /* best evaluation metric so far (fine-tuning) */
  double best_top5;      /* the top-5 of that evaluation */
  int64_t best_epochs;   /* epochs done at that evaluation (0 = none yet) */
  double epoch_loss;     /* sums over this epoch's updates so far: loss, */
  int64_t epoch_steps, epoch_correct, epoch_count;  /* updates, correct / counted predictions */
} beit_train_state;

int beit_checkpoint_save(const char *path, const beit_params *p, const beit_optimizer *opt,
                         const beit_train_state *s, const char *const *meta_kv, int n_meta);
/* Loads parameters (and, when opt != NULL, the AdamW moments and step) plus the
 * state. strict: refuse tensors the model does not have (optimizer keys excepted).
 * A file whose checksum does not match is refused (io/safetensors.h). */
int beit_checkpoint_load(const char *path, beit_params *p, beit_optimizer *opt, beit_train_state *s,
                         int strict);

/* ---- keeping the last N checkpoints -----------------------------------------
 * DIR/checkpoint.safetensors is the newest, DIR/checkpoint-1.safetensors the
 * one before, ..., DIR/checkpoint-(N-1).safetensors the oldest kept. */
#define BEIT_CHECKPOINT_SCAN 100   /* resume looks at checkpoint-1 .. -99 */
/* k = 0: checkpoint.safetensors; k > 0: checkpoint-k.safetensors */
void beit_checkpoint_name(const char *dir, int k, char *out, size_t n);
/* Refuses non-finite values, rotates the older files (keep = N, 1 = only
 * checkpoint.safetensors), then writes DIR/checkpoint.safetensors atomically.
 * On any failure the files already there stay whole and loadable. */
int beit_checkpoint_save_kept(const char *dir, int keep, const beit_params *p, const beit_optimizer *opt,
                              const beit_train_state *s, const char *const *meta_kv, int n_meta);
/* Loads the newest checkpoint of DIR that opens, verifies and fits (newest
 * first), telling on stderr which it skipped and why; the skipped ones are
 * renamed to NAME.bad. `used` receives the path loaded. */
int beit_checkpoint_resume(const char *dir, beit_params *p, beit_optimizer *opt, beit_train_state *s, char *used,
                           size_t n);

/* Tables of training state beside the model's (a VQ codebook and its EMA sums, an
 * EMA of the weights): saved under their own names without AdamW moments; the
 * _x variants take them (NULL = none) and the plain ones are the _x with none. */
typedef struct {
  beit_params *t[4];
  int n;
} beit_ckpt_extra;
int beit_checkpoint_save_x(const char *path, const beit_params *p, const beit_optimizer *opt,
                           const beit_ckpt_extra *x, const beit_train_state *s, const char *const *meta_kv,
                           int n_meta);
int beit_checkpoint_load_x(const char *path, beit_params *p, beit_optimizer *opt, const beit_ckpt_extra *x,
                           beit_train_state *s, int strict);
int beit_checkpoint_save_kept_x(const char *dir, int keep, const beit_params *p, const beit_optimizer *opt,
                                const beit_ckpt_extra *x, const beit_train_state *s, const char *const *meta_kv,
                                int n_meta);
int beit_checkpoint_resume_x(const char *dir, beit_params *p, beit_optimizer *opt, const beit_ckpt_extra *x,
                             beit_train_state *s, char *used, size_t n);

#endif
