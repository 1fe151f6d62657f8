/* masking.c - BEiT's blockwise masking (spec section 3: log-uniform aspect,
 * 10 attempts per block, strict w < Ww and h < Wh, only newly masked cells
 * count, stop when a block adds nothing) and exact-k random masking. */
#include "data/masking.h"

#include <math.h>
#include <string.h>

int beit_mask_default_count(int height, int width) {
  if (height == 14 && width == 14) return 75;
  return (int)lround(0.4 * height * width);
}

int beit_mask_default_min_block(int num_masking_patches) {
  int m = (int)lround(num_masking_patches / 4.0);
  if (m < 4) m = 4;
  return m > 16 ? 16 : m;
}

int beit_mask_cfg_init(beit_mask_cfg *cfg, int height, int width, int num, int min_block, int max_block) {
  memset(cfg, 0, sizeof *cfg);
  if (height <= 0 || width <= 0 || height > 1024 || width > 1024)
    return beit_errorf("mask grid %dx%d: expected 1..1024 per side", height, width);
  if (num <= 0) num = beit_mask_default_count(height, width);
  if (num > height * width)
    return beit_errorf("mask count %d exceeds the %dx%d grid (%d cells)", num, height, width, height * width);
  cfg->height = height, cfg->width = width;
  cfg->num_masking_patches = num;
  cfg->min_num_patches = min_block > 0 ? min_block : beit_mask_default_min_block(num);
  cfg->max_num_patches = max_block > 0 ? max_block : num;
  cfg->min_aspect = 0.3, cfg->max_aspect = 1 / 0.3;
  return BEIT_OK;
}

/* Python's round(): half to even; nearbyint does that in the default mode. */
static int round_half_even(double x) { return (int)nearbyint(x); }

/* Marks the still-unmasked cells of the rectangle; returns how many. */
static int fill_block(const beit_mask_cfg *c, uint8_t *mask, int top, int left, int h, int w) {
  int added = 0;
  for (int i = top; i < top + h; i++)
    for (int j = left; j < left + w; j++)
      if (!mask[i * c->width + j]) mask[i * c->width + j] = 1, added++;
  return added;
}

static int count_block(const beit_mask_cfg *c, const uint8_t *mask, int top, int left, int h, int w) {
  int n = 0;
  for (int i = top; i < top + h; i++)
    for (int j = left; j < left + w; j++) n += mask[i * c->width + j];
  return n;
}

/* One block of at most `budget` new cells, up to 10 attempts; *blk gets the block. */
static int try_block(const beit_mask_cfg *c, beit_rng *rng, uint8_t *mask, int budget, beit_mask_block *blk) {
  double log_lo = log(c->min_aspect), log_hi = log(c->max_aspect);
  for (int attempt = 0; attempt < 10; attempt++) {
    double area = beit_rng_uniform_range(rng, c->min_num_patches, budget); /* reversed if budget < min */
    double ar = exp(beit_rng_uniform_range(rng, log_lo, log_hi));
    int h = round_half_even(sqrt(area * ar)), w = round_half_even(sqrt(area / ar));
    if (w < c->width && h < c->height) {
      int top = (int)beit_rng_randint(rng, 0, c->height - h);
      int left = (int)beit_rng_randint(rng, 0, c->width - w);
      int fresh = h * w - count_block(c, mask, top, left, h, w);
      int added = (fresh > 0 && fresh <= budget) ? fill_block(c, mask, top, left, h, w) : 0;
      *blk = (beit_mask_block){top, left, h, w, added};
      if (added > 0) return added;
    }
  }
  return 0;
}

int beit_mask_blockwise_traced(const beit_mask_cfg *c, beit_rng *rng, uint8_t *mask, beit_mask_block *blocks,
                               int cap, int *nblocks) {
  memset(mask, 0, (size_t)c->height * c->width);
  int count = 0, nb = 0;
  while (count < c->num_masking_patches) {
    int budget = c->num_masking_patches - count;
    if (budget > c->max_num_patches) budget = c->max_num_patches;
    beit_mask_block blk;
    int delta = try_block(c, rng, mask, budget, &blk);
    if (delta == 0) break;
    if (blocks && nb < cap) blocks[nb] = blk;
    nb++;
    count += delta;
  }
  if (nblocks) *nblocks = nb;
  return count;
}

int beit_mask_blockwise(const beit_mask_cfg *c, beit_rng *rng, uint8_t *mask) {
  return beit_mask_blockwise_traced(c, rng, mask, NULL, 0, NULL);
}

int beit_mask_random(int n, int k, beit_rng *rng, uint8_t *mask) {
  if (k > n) k = n;
  int chosen = 0;
  for (int i = 0; i < n; i++) {  /* selection sampling: each cell taken with prob (k-chosen)/(n-i) */
    mask[i] = beit_rng_randint(rng, 0, n - i - 1) < k - chosen;
    chosen += mask[i];
  }
  return chosen;
}

int beit_mask_sample(const beit_mask_cfg *cfg, uint64_t seed, int64_t epoch, int64_t index, uint8_t *mask) {
  beit_rng rng;
  beit_rng_seed(&rng, seed, BEIT_RNG_MASK, (uint64_t)epoch, (uint64_t)index);
  if (cfg->random) return beit_mask_random(cfg->height * cfg->width, cfg->num_masking_patches, &rng, mask);
  return beit_mask_blockwise(cfg, &rng, mask);
}
