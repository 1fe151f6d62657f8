/* loader.h - batches for training and evaluation: per-epoch shuffle from
 * (seed, epoch) identical on every rank, a disjoint equal-length slice per
 * rank, decoding + augmentation + masking by worker threads into a ring of
 * prefetched batches, bit-identical whatever the thread count, exact seek. */
#ifndef BEIT_LOADER_H
#define BEIT_LOADER_H

#include <stdint.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/masking.h"

typedef enum {
  BEIT_LOAD_PRETRAIN = 0, /* view A (normalised) + view B ([0,1]) + blockwise mask */
  BEIT_LOAD_TRAIN,        /* one augmented, normalised view + label */
  BEIT_LOAD_EVAL          /* eval transform, no shuffle */
} beit_load_mode;

typedef struct {
  beit_load_mode mode;
  int batch_size;
  int image_size;   /* S; 0 = the dataset's side if square, else 224 */
  int second_size;  /* S2 (pretrain view B); 0 = (S / patch) * 8, the dVAE input; < 0 = none */
  int patch_size;   /* mask grid is (S/patch)^2; 0 = 4 if S <= 64 else 16 */
  int num_mask;     /* 0 = beit_mask_default_count (75 of 14x14, else 40%) */
  int min_block, max_block; /* 0 = defaults (see masking.h) */
  int random_mask;  /* ablation: exactly num_mask random cells */
  beit_aug_cfg aug;
  float crop_pct;   /* eval transform; 0 = beit_default_crop_pct(image_size) */
  float mean[3], std[3]; /* std[0] == 0: the dataset's */
  uint64_t seed;
  int rank, world_size;
  int num_workers;  /* decoding threads; 0 = in the calling thread */
  int prefetch;     /* batches prepared ahead of the consumer */
  int drop_last;    /* drop the last partial batch of an epoch */
  int shuffle;      /* -1 = default: on for PRETRAIN/TRAIN, off for EVAL */
} beit_loader_cfg;

/* One batch; the arrays belong to the loader and stay valid until the next
 * call to beit_loader_next/seek/close. */
typedef struct {
  int n;                 /* samples (< batch_size only for a last partial batch) */
  int batch_size, channels, size, second_size, grid, num_patches;
  float *images;         /* [B, C, S, S] */
  float *images2;        /* [B, C, S2, S2] (pretrain) or NULL */
  uint8_t *masks;        /* [B, Np] (pretrain) or NULL */
  int32_t *labels;       /* [B] */
  int64_t *indices;      /* [B] dataset indices */
  int64_t epoch, step;   /* step within the epoch */
} beit_batch;

typedef struct beit_loader beit_loader;

void beit_loader_defaults(beit_loader_cfg *cfg, beit_load_mode mode);
/* The input side S and patch side P that --image-size / --patch-size give
 * (0: the dataset's side when square, else 224; patch 0: 4 up to 64 px, else
 * 16), as the loader resolves them; BEIT_ERR, naming those flags, when S is not a
 * multiple of P. ds may be NULL when image_size > 0 (a check before any data). */
int beit_resolve_sizes(int image_size, int patch_size, const beit_dataset *ds, int *S, int *P);
/* `ds` must outlive the loader. Starts at epoch 0, step 0. */
int beit_loader_open(beit_loader **out, const beit_dataset *ds, const beit_loader_cfg *cfg);
/* 1: a batch; 0: the epoch ended (the next call starts the next epoch); BEIT_ERR on
 * error (e.g. an unreadable file in fatal mode; it repeats until a seek). */
int beit_loader_next(beit_loader *L, beit_batch *batch);
/* Continue from (epoch, step_in_epoch) exactly as an uninterrupted run would. */
int beit_loader_seek(beit_loader *L, int64_t epoch, int64_t step);
void beit_loader_close(beit_loader *L);

int64_t beit_loader_steps_per_epoch(const beit_loader *L);
int64_t beit_loader_samples_per_epoch(const beit_loader *L); /* on this rank */
/* Seconds beit_loader_next has spent waiting for batches since the loader opened (without
 * workers: making them): the time the data pipeline held training up. */
double beit_loader_wait_seconds(const beit_loader *L);
/* The resolved settings (sizes, mask config, normalisation). */
const beit_loader_cfg *beit_loader_config(const beit_loader *L);
const beit_mask_cfg *beit_loader_mask_config(const beit_loader *L);

/* Fixed eval order: samples [first, first+count) through the eval transform
 * `prep` into out [count, C, S, S] and labels [count] (labels may be NULL). */
int beit_eval_images(const beit_dataset *ds, int64_t first, int count, const beit_eval_prep *prep, float *out,
                     int32_t *labels);

#endif
