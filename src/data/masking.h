/* masking.h - which patches BEiT hides: the blockwise generator of spec
 * section 3 (BEiT's masking_generator, for any Wh x Ww grid) and plain random
 * masking of exactly k cells for the ablation. Output: uint8 mask[Wh*Ww]. */
#ifndef BEIT_MASKING_H
#define BEIT_MASKING_H

#include <stdint.h>

#include "core/core.h"

typedef struct {
  int height, width;       /* grid Wh x Ww (rows x cols) */
  int num_masking_patches; /* target count; never exceeded */
  int min_num_patches;     /* per-block minimum area */
  int max_num_patches;     /* per-block maximum area */
  double min_aspect, max_aspect; /* block h/w range, sampled log-uniform */
  int random;              /* 1: plain random masking of exactly num_masking_patches */
} beit_mask_cfg;

/* BEiT's count for a grid: 75 for 14x14 (the official setting), otherwise
 * round(0.4 * Wh * Ww) (e.g. 20 for 7x7). */
int beit_mask_default_count(int height, int width);
/* Default per-block minimum: min(16, max(4, round(num_masking_patches / 4))),
 * i.e. 16 for 75 of 14x14 and 5 for 20 of 7x7. */
int beit_mask_default_min_block(int num_masking_patches);
/* Fills cfg; num <= 0 -> default count, min_block <= 0 -> default rule,
 * max_block <= 0 -> num, aspect 0.3 .. 1/0.3. Returns BEIT_ERR on a bad grid/count. */
int beit_mask_cfg_init(beit_mask_cfg *cfg, int height, int width, int num, int min_block, int max_block);

/* Blockwise masking drawing from `rng`; returns the number of masked cells. */
int beit_mask_blockwise(const beit_mask_cfg *cfg, beit_rng *rng, uint8_t *mask);
/* Same, also recording each accepted block (up to cap) for tests and plots. */
typedef struct {
  int top, left, h, w, added;
} beit_mask_block;
int beit_mask_blockwise_traced(const beit_mask_cfg *cfg, beit_rng *rng, uint8_t *mask, beit_mask_block *blocks,
                               int cap, int *nblocks);
/* Exactly k distinct cells out of n. */
int beit_mask_random(int n, int k, beit_rng *rng, uint8_t *mask);
/* The mask for one sample: rng seeded (seed, BEIT_RNG_MASK, epoch, index);
 * blockwise or random as cfg->random says. Returns the masked count. */
int beit_mask_sample(const beit_mask_cfg *cfg, uint64_t seed, int64_t epoch, int64_t index, uint8_t *mask);

#endif
