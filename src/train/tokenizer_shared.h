/* tokenizer_shared.h - private to src/train: the pieces of tokenizer_train.c
 * that the VQ trainer (tokenizer_vq.c) shares with the dVAE and k-means ones. */
#ifndef BEIT_TOKENIZER_SHARED_H
#define BEIT_TOKENIZER_SHARED_H

#include "train/tokenizer.h"
#include "train/train.h"

int beit_tok_train_vq(beit_tok_train_cfg *c);
int beit_tok_check_flags(const beit_tok_train_cfg *c, int image_size);
int beit_tok_open_run_folder(beit_run *run, const beit_tok_train_cfg *c);
int beit_tok_evaluate(beit_tokenizer *t, const beit_dataset *test, int n, double *mae, int *used, double *ppl);
/* Writes OUT/tokenizer.safetensors of a trained dVAE or VQ tokenizer (refusing
 * non-finite weights; rc != 0 writes nothing) with its steps and test figures in
 * the metadata, prints the run's summary, frees t; returns the final status. */
int beit_tok_save_trained(const beit_tok_train_cfg *c, beit_tokenizer *t, int rc, long long steps, double seconds,
                          int n, double mae, int used, double ppl);
void beit_tok_warn_collapse(int used, int64_t tokens, int64_t step, int vocab, int *warned);

#endif
