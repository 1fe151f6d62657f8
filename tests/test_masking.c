/* test_masking.c - blockwise masking (spec section 3): count never above the
 * target, the 14x14/75 count distribution the spec simulated, blocks are
 * rectangles of the allowed aspect, determinism, no positional bias (quadrant
 * and mirror-symmetry tests); random masking gives exactly k cells. */
#include <math.h>

#include "data/masking.h"
#include "test.h"

#define DRAWS 20000

static void test_defaults(void) {
  beit_mask_cfg c;
  beit_mask_cfg_init(&c, 14, 14, 0, 0, 0);
  CHECK_TRUE(c.num_masking_patches == 75 && c.min_num_patches == 16 && c.max_num_patches == 75,
             "14x14 defaults: %d patches, blocks %d..%d", c.num_masking_patches, c.min_num_patches, c.max_num_patches);
  beit_mask_cfg_init(&c, 7, 7, 0, 0, 0);
  CHECK_TRUE(c.num_masking_patches == 20 && c.min_num_patches == 5 && c.max_num_patches == 20,
             "7x7 defaults: %d patches, blocks %d..%d", c.num_masking_patches, c.min_num_patches, c.max_num_patches);
  CHECK_TRUE(beit_mask_cfg_init(&c, 7, 7, 50, 0, 0) == BEIT_ERR, "50 of 49 cells refused: %s", beit_last_error());
  CHECK_TRUE(beit_mask_cfg_init(&c, 0, 7, 5, 0, 0) == BEIT_ERR, "empty grid refused: %s", beit_last_error());
}

/* Count distribution over DRAWS masks of 14x14 / 75. The spec's simulation of
 * the reference (200k draws) gives mean 74.47 and P(75) = 0.666; with a count
 * standard deviation near 1, the mean's standard error here is ~0.007, so a
 * 0.05 tolerance is > 5 standard errors; P(75)'s is 0.0033, tolerance 0.02. */
static void test_count_14(void) {
  beit_mask_cfg c;
  beit_mask_cfg_init(&c, 14, 14, 0, 0, 0);
  uint8_t m[196];
  int over = 0, lo = 999, hi = 0, full = 0, mismatch = 0;
  double sum = 0;
  for (int i = 0; i < DRAWS; i++) {
    int n = beit_mask_sample(&c, 7, 0, i, m), ones = 0;
    for (int k = 0; k < 196; k++) ones += m[k];
    mismatch += ones != n;
    over += n > 75, full += n == 75, sum += n;
    if (n < lo) lo = n;
    if (n > hi) hi = n;
  }
  double mean = sum / DRAWS, pfull = (double)full / DRAWS;
  CHECK_TRUE(over == 0 && mismatch == 0, "never more than 75 masked (range %d..%d), return value = mask sum", lo, hi);
  CHECK_TRUE(fabs(mean - 74.47) < 0.05, "mean masked %.3f vs 74.47 from the spec (tol 0.05)", mean);
  CHECK_TRUE(fabs(pfull - 0.666) < 0.02, "P(count = 75) %.3f vs 0.666 (tol 0.02)", pfull);
}

/* Each block is a rectangle strictly smaller than the grid whose h/w is
 * consistent with an aspect in [0.3, 1/0.3] after rounding h and w. */
static void test_blocks(void) {
  beit_mask_cfg c;
  beit_mask_cfg_init(&c, 14, 14, 0, 0, 0);
  uint8_t m[196], u[196];
  beit_mask_block bl[64];
  int bad_shape = 0, bad_union = 0, bad_budget = 0, total = 0;
  for (int i = 0; i < 2000; i++) {
    beit_rng rng;
    beit_rng_seed(&rng, 3, BEIT_RNG_MASK, 0, (uint64_t)i);
    int nb, count = beit_mask_blockwise_traced(&c, &rng, m, bl, 64, &nb), sum = 0;
    memset(u, 0, sizeof u);
    for (int b = 0; b < nb && b < 64; b++) {
      beit_mask_block k = bl[b];
      double ar_hi = (k.h + 0.5) / (k.w - 0.5), ar_lo = (k.h - 0.5) / (k.w + 0.5);
      bad_shape += k.h < 1 || k.w < 1 || k.h >= 14 || k.w >= 14 || k.top < 0 || k.left < 0 || k.top + k.h > 14 ||
                   k.left + k.w > 14 || ar_hi < 0.3 || ar_lo > 1 / 0.3;
      bad_budget += k.added > 75 - sum || k.added <= 0;
      sum += k.added;
      for (int y = k.top; y < k.top + k.h; y++)
        for (int x = k.left; x < k.left + k.w; x++) u[y * 14 + x] = 1;
    }
    bad_union += memcmp(u, m, 196) != 0 || sum != count;
    total += nb;
  }
  CHECK_TRUE(bad_shape == 0, "%d blocks: all rectangles inside the grid, h,w < 14, aspect in range", total);
  CHECK_TRUE(bad_budget == 0, "each block adds 1..(remaining budget) new cells");
  CHECK_TRUE(bad_union == 0, "mask = union of the blocks; count = sum of new cells");
}

static void test_determinism(void) {
  beit_mask_cfg c;
  beit_mask_cfg_init(&c, 14, 14, 0, 0, 0);
  uint8_t a[196], b[196], d[196], e[196];
  beit_mask_sample(&c, 42, 3, 17, a);
  beit_mask_sample(&c, 42, 3, 17, b);
  beit_mask_sample(&c, 42, 3, 18, d);
  beit_mask_sample(&c, 42, 4, 17, e);
  CHECK_TRUE(!memcmp(a, b, 196), "same (seed, epoch, index) gives the same mask");
  CHECK_TRUE(memcmp(a, d, 196) && memcmp(a, e, 196), "another index or epoch gives another mask");
}

/* Positional bias. The generator is symmetric under mirroring rows or columns,
 * so all four 7x7 quadrants have the same expected masked count. For each pair
 * we test the per-mask difference of quadrant counts against 5 of its standard
 * errors (estimated from the draws; false alarm ~1e-6 per pair), and the
 * per-cell frequency map against its mirror images within 5 binomial standard
 * errors of a difference (sqrt(2 p (1-p) / DRAWS), about 0.024). */
static void test_bias(int random) {
  beit_mask_cfg c;
  beit_mask_cfg_init(&c, 14, 14, 0, 0, 0);
  c.random = random;
  static double freq[196];
  double q[4], dsum[6] = {0}, dsq[6] = {0};
  int pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  uint8_t m[196];
  memset(freq, 0, sizeof freq);
  for (int i = 0; i < DRAWS; i++) {
    beit_mask_sample(&c, 11, 0, i, m);
    memset(q, 0, sizeof q);
    for (int k = 0; k < 196; k++) freq[k] += m[k], q[(k / 14 >= 7) * 2 + (k % 14 >= 7)] += m[k];
    for (int p = 0; p < 6; p++) {
      double d = q[pairs[p][0]] - q[pairs[p][1]];
      dsum[p] += d, dsq[p] += d * d;
    }
  }
  double worst = 0;
  for (int p = 0; p < 6; p++) {
    double mean = dsum[p] / DRAWS, var = dsq[p] / DRAWS - mean * mean, se = sqrt(var / DRAWS);
    if (fabs(mean) / se > worst) worst = fabs(mean) / se;
  }
  CHECK_TRUE(worst < 5, "%s: quadrant counts agree (worst pair %.2f standard errors < 5)", random ? "random" : "blockwise",
             worst);
  double worst_mirror = 0, corner = 0, centre = 0;
  for (int y = 0; y < 14; y++)
    for (int x = 0; x < 14; x++) {
      double p = freq[y * 14 + x] / DRAWS, tol = 5 * sqrt(2 * p * (1 - p) / DRAWS) + 1e-9;
      double dv = fabs(p - freq[(13 - y) * 14 + x] / DRAWS), dh = fabs(p - freq[y * 14 + 13 - x] / DRAWS);
      if (fmax(dv, dh) / tol > worst_mirror) worst_mirror = fmax(dv, dh) / tol;
    }
  corner = freq[0] / DRAWS, centre = freq[7 * 14 + 7] / DRAWS;
  CHECK_TRUE(worst_mirror < 1, "%s: cell frequencies mirror-symmetric (worst %.0f%% of tol); corner %.3f centre %.3f",
             random ? "random" : "blockwise", 100 * worst_mirror, corner, centre);
}

static void test_small_grid(void) {
  beit_mask_cfg c;
  beit_mask_cfg_init(&c, 7, 7, 0, 0, 0);
  uint8_t m[49];
  int over = 0, lo = 99;
  double sum = 0;
  for (int i = 0; i < DRAWS; i++) {
    int n = beit_mask_sample(&c, 5, 1, i, m);
    over += n > 20, sum += n;
    if (n < lo) lo = n;
  }
  CHECK_TRUE(over == 0 && sum / DRAWS > 18.5, "7x7 / 20: never above 20, mean %.2f, min %d", sum / DRAWS, lo);
  beit_mask_cfg one;
  beit_mask_cfg_init(&one, 1, 1, 1, 0, 0);
  CHECK_TRUE(beit_mask_sample(&one, 1, 0, 0, m) == 0, "1x1 grid: no block fits strictly inside, 0 masked, no hang");
}

static void test_random(void) {
  uint8_t m[196];
  int ks[5] = {0, 1, 20, 75, 196}, ok = 1;
  for (int t = 0; t < 5; t++)
    for (int i = 0; i < 200; i++) {
      beit_rng rng;
      beit_rng_seed(&rng, 9, BEIT_RNG_MASK, 0, (uint64_t)i);
      int n = beit_mask_random(196, ks[t], &rng, m), ones = 0;
      for (int k = 0; k < 196; k++) ones += m[k];
      ok &= n == ks[t] && ones == ks[t];
    }
  CHECK_TRUE(ok, "random masking gives exactly k of 196 for k = 0, 1, 20, 75, 196");
  test_bias(1);
}

int main(void) {
  TEST_BEGIN("test_masking");
  test_defaults();
  test_count_14();
  test_blocks();
  test_determinism();
  test_bias(0);
  test_small_grid();
  test_random();
  return TEST_END();
}
