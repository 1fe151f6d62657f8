/* augment.h - per-sample image transforms, uint8 HWC in, float CHW out:
 * random resized crop, horizontal flip, colour jitter, PIL-style antialiased
 * bilinear/bicubic/Lanczos resampling, the two pretraining views cut from one
 * crop box (spec section 4), the fine-tuning train transform and the eval
 * transform (resize shorter side to size/crop_pct, centre crop; spec 7.3). */
#ifndef BEIT_AUGMENT_H
#define BEIT_AUGMENT_H

#include "core/core.h"
#include "data/randaug.h"
#include "io/image.h"

typedef enum { BEIT_INTERP_BILINEAR = 0, BEIT_INTERP_BICUBIC, BEIT_INTERP_LANCZOS } beit_interp;

typedef struct {
  int top, left, h, w; /* pixels of the source image */
} beit_box;

typedef struct {
  float scale_min, scale_max; /* crop area share: 0.08 .. 1 */
  float ratio_min, ratio_max; /* crop w/h, log-uniform: 3/4 .. 4/3 */
  float hflip;                /* flip probability: 0.5 */
  float brightness, contrast, saturation; /* jitter strengths: 0.4 (0 = off) */
  beit_interp interp;         /* view A / train view: bicubic */
  beit_interp interp_b;       /* pretraining view B: Lanczos (spec section 4) */
  /* fine-tuning only (beit_aug_train), all off by default: */
  beit_randaug_cfg randaug;   /* timm's RandAugment after crop + flip (n = 0: off); replaces the jitter, as timm */
  float reprob;               /* random erasing probability, after normalisation (timm, mode pixel) */
  int crop_pad;               /* > 0: RandomCrop(S, padding N) of the image at S x S instead of the resized crop */
} beit_aug_cfg;

/* What one call drew (for tests and previews). */
typedef struct {
  beit_box box;
  int flip;
  int order[3];      /* jitter op order: 0 brightness, 1 contrast, 2 saturation */
  float factor[3];   /* jitter factors (1 = identity) */
  float gray_mean;   /* mean gray level the contrast op blends towards, [0, 1] */
  int ops[16];       /* RandAugment: the op of each layer (randaug.h), -1 when skipped */
  int erased;        /* random erasing happened, in box `erase` of the output */
  beit_box erase;
} beit_aug_params;

void beit_aug_defaults(beit_aug_cfg *cfg);

/* Random resized crop box (10 attempts, then a centre crop clamped to the ratio range). */
beit_box beit_rrc_box(beit_rng *rng, int H, int W, float scale_min, float scale_max, float ratio_min,
                      float ratio_max);
/* Draws jitter, flip and box in the torchvision order (jitter, flip, crop). */
void beit_aug_draw(const beit_aug_cfg *cfg, beit_rng *rng, const beit_image *img, beit_aug_params *p);

/* Resamples the box of `img` to out_h x out_w, float CHW in [0, 1]; mirrored
 * horizontally when flip (= flipping the image, then cropping the mirrored box). */
int beit_resize_box(const beit_image *img, beit_box box, int out_h, int out_w, beit_interp interp, int flip,
                    float *out);
/* Applies drawn jitter to a float CHW [0,1] image with c channels (saturation only when c = 3). */
void beit_jitter_apply(const beit_aug_params *p, float *chw, int c, int hw);
/* x = (x - mean[ch]) / std[ch] per channel. */
void beit_normalize(float *chw, int c, int hw, const float mean[3], const float std[3]);

/* Pretraining: one draw, view A (size_a, cfg->interp, normalised with mean/std)
 * and view B (size_b, cfg->interp_b, plain [0,1]). out_b may be NULL. */
int beit_aug_pretrain(const beit_aug_cfg *cfg, const beit_image *img, beit_rng *rng, int size_a, int size_b,
                      const float mean[3], const float std[3], float *out_a, float *out_b, beit_aug_params *drawn);
/* Fine-tuning train view, timm's order: random resized crop (or, with crop_pad,
 * RandomCrop(size, padding crop_pad) of the image resized to size x size; box then
 * holds the crop's offset in the padded image), flip, then jitter or, when
 * randaug.n > 0, RandAugment on the view rounded to uint8 as PIL's would be (fill:
 * the mean in 0..255), normalisation, random erasing with probability reprob. */
int beit_aug_train(const beit_aug_cfg *cfg, const beit_image *img, beit_rng *rng, int size, const float mean[3],
                   const float std[3], float *out, beit_aug_params *drawn);
/* timm's RandomErasing(p, mode 'pixel', one box) on a normalised CHW image: with
 * probability p, up to 10 tries of a box of area share U(0.02, 1/3) and aspect
 * h/w log-uniform in [0.3, 1/0.3], kept when it fits, filled with N(0, 1) per value.
 * Returns 1 when a box was erased (*box), else 0. */
int beit_random_erase(float *chw, int c, int h, int w, float p, beit_rng *rng, beit_box *box);
/* The eval preprocessing of a model (spec 7.3): what `beit eval`, `predict`,
 * `attention` and fine-tuning's evaluation all feed the model, taken from the
 * checkpoint (beit_checkpoint_eval_prep in model/convert.h). */
typedef struct {
  int size;              /* model input side S */
  float crop_pct;        /* centre-crop share: the shorter side goes to floor(S / crop_pct) */
  float mean[3], std[3]; /* (x - mean) / std per channel */
} beit_eval_prep;

/* {size, crop_pct (<= 0: beit_default_crop_pct(size)), mean, std}. */
beit_eval_prep beit_eval_prep_make(int size, float crop_pct, const float mean[3], const float std[3]);
/* Refuses what would make NaNs or absurd sizes: crop_pct outside (0, 1] or with
 * size / crop_pct above BEIT_IMAGE_MAX_SIDE (the crop check), a mean that is not
 * finite or a std that is not finite and > 0 (the normalisation check). The
 * message starts with the setting ("crop_pct 1e-09: ..."); callers prefix the
 * file or flag it came from. */
int beit_eval_crop_check(int size, float crop_pct);
int beit_eval_norm_check(const float mean[3], const float std[3]);
int beit_eval_prep_check(const beit_eval_prep *p);  /* both */
/* floor(size / crop_pct): the side the shorter image side is resized to (size
 * itself for a crop_pct that beit_eval_crop_check refuses). */
int beit_eval_resize_side(int size, float crop_pct);
/* Eval, timm's Resize(floor(size / crop_pct)) + CenterCrop(size): the shorter
 * side to floor(size / crop_pct) (bicubic, the longer one in proportion,
 * truncated), the centre size x size crop (offsets rounded half to even),
 * normalised. Pixels are copied exactly when the resize would keep the image's
 * size (crop_pct 1 on a size x size image: the identity). */
int beit_aug_eval(const beit_image *img, const beit_eval_prep *p, float *out);
/* The eval crop_pct for a model input of size x size when nobody chose one. */
float beit_default_crop_pct(int size);

#endif
