/* randaug.h - timm's RandAugment on uint8 HWC images (1 or 3 channels): the
 * policy string ("rand-m9-mstd0.5-inc1"), the 15 ops of timm's list computed as
 * PIL computes them (LUTs, ImageEnhance blends, bicubic affine transforms with a
 * fill colour), and the per-image draw (n ops with replacement, each applied with
 * probability p at a magnitude drawn around m). */
#ifndef BEIT_RANDAUG_H
#define BEIT_RANDAUG_H

#include <stdint.h>

#include "core/core.h"
#include "io/image.h"

typedef struct {
  int n;          /* ops per image; 0 = RandAugment off */
  float m;        /* magnitude, 0..mmax */
  float mstd;     /* std of the per-op gaussian magnitude (inf: uniform in [0, m]); 0 = fixed */
  float mmax;     /* magnitude clip, timm's 10 */
  float p;        /* probability that a drawn op is applied, timm's 0.5 */
  int inc;        /* the increasing-severity variants (timm's _RAND_INCREASING_TRANSFORMS) */
} beit_randaug_cfg;

/* timm's order (rand_augment_ops): the index an op has in beit_randaug_op. */
enum {
  BEIT_RA_AUTOCONTRAST = 0, BEIT_RA_EQUALIZE, BEIT_RA_INVERT, BEIT_RA_ROTATE, BEIT_RA_POSTERIZE, BEIT_RA_SOLARIZE,
  BEIT_RA_SOLARIZE_ADD, BEIT_RA_COLOR, BEIT_RA_CONTRAST, BEIT_RA_BRIGHTNESS, BEIT_RA_SHARPNESS, BEIT_RA_SHEAR_X,
  BEIT_RA_SHEAR_Y, BEIT_RA_TRANSLATE_X, BEIT_RA_TRANSLATE_Y, BEIT_RA_NUM_OPS
};
extern const char *const beit_randaug_op_names[BEIT_RA_NUM_OPS];

/* "none" (or NULL, or ""): n = 0. Otherwise timm's syntax: "rand" then '-'-separated
 * sections mM (magnitude), nN (ops per image), mstdS, mmaxX, pP, incI (0/1), e.g.
 * "rand-m9-mstd0.5-inc1"; defaults n 2, m 10, mstd 0, mmax 10, p 0.5, inc 0.
 * BEIT_ERR naming the string and the bad section. */
int beit_randaug_parse(const char *s, beit_randaug_cfg *cfg);

/* One op at a magnitude already drawn (0..10 scale; its level argument as timm's
 * level functions make it, negated when `negate` for the signed ones) on img in
 * place; fill: the colour of pixels an affine op brings in (fill[0] for 1 channel). */
int beit_randaug_op(beit_image *img, int op, double magnitude, int negate, int inc, const uint8_t fill[3]);

/* timm's RandAugment.__call__: cfg->n ops drawn uniformly with replacement, each
 * applied with probability cfg->p at magnitude m (+ mstd * N(0,1)) clipped to
 * [0, mmax]. ops_out (may be NULL) gets the drawn op of each layer, -1 when skipped. */
int beit_randaug_apply(const beit_randaug_cfg *cfg, beit_image *img, beit_rng *rng, const uint8_t fill[3],
                       int *ops_out);

#endif
