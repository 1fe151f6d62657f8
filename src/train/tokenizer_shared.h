/* tokenizer_shared.h - private to src/train: the pieces of tokenizer_train.c
 * that the VQ trainer (tokenizer_vq.c) shares with the dVAE and k-means ones. */
#ifndef BEIT_TOKENIZER_SHARED_H
#define BEIT_TOKENIZER_SHARED_H

#include "train/tokenizer.h"
#include "train/train.h"

int beit_tok_train_vq(beit_tok_train_cfg *c);
int beit_tok_check_flags(const beit_tok_train_cfg *c, int image_size);
/* The updates a dVAE or VQ run makes: --steps, or --max-steps when smaller (the schedules span --steps). */
int64_t beit_tok_end_step(const beit_tok_train_cfg *c);
/* The input side when --image-size is not given (a folder: the size its images share). */
int beit_tok_default_size(const beit_tok_train_cfg *c, const beit_dataset *ds, int *size);
/* The training split, less the --val-split images (their list in OUT/val_indices.txt), and the test split. */
int beit_tok_open_data(const beit_tok_train_cfg *c, beit_dataset *train, beit_dataset *test);
/* resume_step >= 0: a resumed run (log.jsonl trimmed to it), else a fresh one */
int beit_tok_open_run_folder(beit_run *run, const beit_tok_train_cfg *c, int64_t resume_step);
int beit_tok_evaluate(beit_tokenizer *t, const beit_dataset *test, int n, double *mae, int *used, double *ppl);
/* Writes OUT/tokenizer.safetensors of a trained dVAE or VQ tokenizer (refusing
 * non-finite weights; rc != 0 writes nothing) with its steps and test figures in
 * the metadata, prints the run's summary, frees t; returns the final status. */
int beit_tok_save_trained(const beit_tok_train_cfg *c, beit_tokenizer *t, int rc, long long steps, double seconds,
                          int n, double mae, int used, double ppl);
/* An exponential moving average of the network's weights ("ema.<name>"), as
 * DALL-E kept one: e = d e + (1 - d) w after every update, with d = min(decay,
 * (1 + t) / (10 + t)) at update t so that a short run does not keep its random
 * init. decay 0: off (every call is a no-op, table() is NULL). */
typedef struct {
  beit_params p;
  float decay;
} beit_tok_ema;
int beit_tok_ema_init(beit_tok_ema *e, const beit_params *w, float decay);
void beit_tok_ema_update(beit_tok_ema *e, const beit_params *w, int64_t step);
void beit_tok_ema_apply(const beit_tok_ema *e, beit_params *w);  /* w's weights := the average */
void beit_tok_ema_free(beit_tok_ema *e);
/* The state a checkpoint keeps beside the network: `more` (NULL = none) and the EMA when on. */
beit_ckpt_extra beit_tok_ckpt_extra(beit_tok_ema *e, beit_params *more);
/* At the top of a step (`step` updates done): when SIGINT/SIGTERM asked to stop
 * and the checkpoint of `step` is saved, the line that says so (rank 0), and BEIT_STOPPED. */
int beit_tok_stopped(const beit_tok_train_cfg *c, int64_t step);
void beit_tok_warn_collapse(int used, int64_t tokens, int64_t step, int vocab, int *warned);

#endif
