/* test_data_aug.c - augmentation: crop boxes stay inside the image with the
 * allowed area/aspect, flipping is a mirror, resampling keeps constants and
 * ramps and antialiases, the eval transform is exact for same-size images,
 * the two pretraining views come from one box, and jitter does what it says. */
#include <math.h>

#include "data/augment.h"
#include "test.h"

static const float ZERO[3] = {0, 0, 0}, ONE[3] = {1, 1, 1};

static beit_image ramp_image(int h, int w, int c) {
  beit_image img = {0};
  beit_image_reserve(&img, h, w, c);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int ch = 0; ch < c; ch++) {
        int v = ch == 0 ? x * 255 / (w - 1) : ch == 1 ? y * 255 / (h - 1) : (x * 7 + y * 13) & 255;
        img.data[((size_t)y * w + x) * c + ch] = (uint8_t)v;
      }
  return img;
}

static void test_rrc_box(void) {
  int dims[4][2] = {{28, 28}, {256, 256}, {100, 37}, {10, 300}};
  int inside = 1, area_ok = 1, fallback_ok = 1, n = 0;
  (void)fallback_ok;
  for (int d = 0; d < 4; d++)
    for (int i = 0; i < 3000; i++) {
      beit_rng rng;
      beit_rng_seed(&rng, 1, BEIT_RNG_AUGMENT, (uint64_t)d, (uint64_t)i);
      int H = dims[d][0], W = dims[d][1];
      beit_box b = beit_rrc_box(&rng, H, W, 0.08f, 1.0f, 0.75f, 4.0f / 3);
      inside &= b.top >= 0 && b.left >= 0 && b.h >= 1 && b.w >= 1 && b.top + b.h <= H && b.left + b.w <= W;
      /* w, h are the rounded sqrt(target*ar), sqrt(target/ar): the true values lie within 0.5 */
      double wl = b.w - 0.5, wh = b.w + 0.5, hl = b.h - 0.5, hh = b.h + 0.5, HW = (double)H * W;
      if (d < 3) area_ok &= wh * hh >= 0.08 * HW && wl * hl <= HW && wh / hl >= 0.75 && wl / hh <= 4.0 / 3;
      else fallback_ok &= (b.h == 10 && b.w == 13 && b.left == (300 - 13) / 2 && b.top == 0) || wh * hh >= 0.08 * HW;
      n++;
    }
  CHECK_TRUE(inside, "%d crop boxes all inside their image (28x28, 256x256, 37x100, 300x10)", n);
  CHECK_TRUE(area_ok, "crop area share within [0.08, 1] and ratio within [3/4, 4/3] up to rounding");
  CHECK_TRUE(fallback_ok, "300x10 image: sampled boxes or the centre fallback 13x10 at (143, 0)");
}

static void test_flip(void) {
  beit_image img = ramp_image(40, 50, 3), mir = {0};
  beit_image_reserve(&mir, 40, 50, 3);
  for (int y = 0; y < 40; y++)
    for (int x = 0; x < 50; x++) memcpy(mir.data + (y * 50 + x) * 3, img.data + (y * 50 + 49 - x) * 3, 3);
  beit_box b = {5, 7, 22, 31}, bm = {5, 50 - 7 - 31, 22, 31};
  float o1[3 * 24 * 24], o2[3 * 24 * 24];
  beit_resize_box(&img, bm, 24, 24, BEIT_INTERP_BICUBIC, 1, o1);
  beit_resize_box(&mir, b, 24, 24, BEIT_INTERP_BICUBIC, 0, o2);
  check_close("flip(crop of mirrored box) = crop of mirror image", o1, o2, 3 * 24 * 24, 1e-5, 0);
  beit_aug_cfg cfg;
  beit_aug_defaults(&cfg);
  beit_aug_params p;
  int flips = 0;
  for (int i = 0; i < 4000; i++) {
    beit_rng rng;
    beit_rng_seed(&rng, 2, BEIT_RNG_AUGMENT, 0, (uint64_t)i);
    beit_aug_draw(&cfg, &rng, &img, &p);
    flips += p.flip;
  }
  /* binomial(4000, 0.5): sd 31.6 -> 5 sd = 158 */
  CHECK_TRUE(abs(flips - 2000) < 158, "flip rate %d / 4000 (p = 0.5, 5 sd = 158)", flips);
  beit_image_free(&img), beit_image_free(&mir);
}

static void test_resample(void) {
  beit_image img = {0};
  beit_image_reserve(&img, 64, 64, 1);
  memset(img.data, 102, 64 * 64);
  float out[48 * 48], ref[48 * 48];
  for (int i = 0; i < 48 * 48; i++) ref[i] = 102 / 255.0f;
  for (int f = 0; f < 3; f++) {
    beit_resize_box(&img, (beit_box){3, 5, 37, 41}, 48, 48, (beit_interp)f, 0, out);
    check_close(f == 0 ? "bilinear keeps a constant" : f == 1 ? "bicubic keeps a constant" : "lanczos keeps a constant", out,
                ref, 48 * 48, 1e-6, 0);
  }
  /* 1-pixel checkerboard shrunk 4x: antialiasing averages it to ~0.5 */
  for (int y = 0; y < 64; y++)
    for (int x = 0; x < 64; x++) img.data[y * 64 + x] = ((x + y) & 1) ? 255 : 0;
  beit_resize_box(&img, (beit_box){0, 0, 64, 64}, 16, 16, BEIT_INTERP_BICUBIC, 0, out);
  float worst = 0;
  for (int i = 0; i < 256; i++) worst = fmaxf(worst, fabsf(out[i] - 0.5f));
  CHECK_TRUE(worst < 0.06f, "antialiased 4x downscale of a checkerboard stays near 0.5 (worst %.3f)", worst);
  /* a horizontal ramp maps linearly (interior pixels, away from the window edge) */
  beit_image r = ramp_image(32, 256, 1);
  float o[20 * 100];
  beit_resize_box(&r, (beit_box){4, 30, 20, 200}, 20, 100, BEIT_INTERP_BICUBIC, 0, o);
  float worst_ramp = 0;
  for (int i = 4; i < 96; i++) {
    double src = 30 + (i + 0.5) * 2.0 - 0.5; /* source pixel coordinate of the output centre */
    double exact = src / 255.0;
    worst_ramp = fmaxf(worst_ramp, fabsf(o[10 * 100 + i] - (float)exact));
  }
  CHECK_TRUE(worst_ramp < 1.5f / 255, "bicubic 2x downscale of a ramp is linear (worst %.2f/255)", worst_ramp * 255);
  CHECK_TRUE(beit_resize_box(&r, (beit_box){0, 250, 10, 10}, 4, 4, BEIT_INTERP_BILINEAR, 0, o) == BEIT_ERR,
             "box outside the image refused: %s", beit_last_error());
  beit_image_free(&img), beit_image_free(&r);
}

static int aug_eval(const beit_image *img, int size, float crop_pct, const float mean[3], const float std[3],
                    float *out) {
  beit_eval_prep p = beit_eval_prep_make(size, crop_pct, mean, std);
  return beit_aug_eval(img, &p, out);
}

static void test_eval(void) {
  beit_image img = ramp_image(28, 28, 1);
  float out[28 * 28], ref[28 * 28];
  const float mean[3] = {0.2860f, 0, 0}, std[3] = {0.3530f, 1, 1};
  aug_eval(&img, 28, 1.0f, mean, std, out);
  for (int i = 0; i < 28 * 28; i++) ref[i] = (img.data[i] * (1.0f / 255.0f) - mean[0]) * (1.0f / std[0]);
  int exact = !memcmp(out, ref, sizeof out);
  CHECK_TRUE(exact, "eval transform of a 28x28 image at size 28, crop_pct 1, is the identity (bit exact, normalised)");
  beit_image big = ramp_image(32, 32, 3);
  float o3[3 * 28 * 28], r3[3 * 28 * 28];
  aug_eval(&big, 28, 0.875f, ZERO, ONE, o3); /* 28/0.875 = 32: no resize, centre crop at 2 */
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < 28; y++)
      for (int x = 0; x < 28; x++) r3[(c * 28 + y) * 28 + x] = big.data[((y + 2) * 32 + x + 2) * 3 + c] / 255.0f;
  check_close("eval 32x32 -> 28: centre crop, no resampling", o3, r3, 3 * 28 * 28, 1e-6, 0);
  beit_image wide = ramp_image(64, 128, 1);
  float ow[16 * 16];
  aug_eval(&wide, 16, 0.5f, ZERO, ONE, ow); /* shorter side -> 32 (x0.5), 64 wide; crop 16 at (8, 24) */
  float worst = 0;
  for (int i = 2; i < 14; i++) {
    double src = (24 + i + 0.5) * 2 - 0.5, want = src * 255 / 127 / 255;
    worst = fmaxf(worst, fabsf(ow[8 * 16 + i] - (float)want));
  }
  CHECK_TRUE(worst < 1.5f / 255, "eval 64x128 -> 16 (crop_pct 0.5): resize + centre crop of a ramp (worst %.2f/255)", worst * 255);
  CHECK_TRUE(aug_eval(&img, 28, 1.5f, mean, std, out) == BEIT_ERR, "crop_pct 1.5 refused");
  /* a 28 px image evaluated at 32 with the default crop keeps its border pixels, as
   * the training crops of the whole image do (a 0.875 centre crop would drop them) */
  beit_image edge = ramp_image(28, 28, 1);
  float o32[32 * 32];
  aug_eval(&edge, 32, beit_default_crop_pct(32), ZERO, ONE, o32);
  CHECK_TRUE(fabsf(o32[0]) < 0.02f && fabsf(o32[31] - 1.0f) < 0.02f,
             "28 -> 32 px at the default crop_pct (%.3f) keeps the ramp's ends: %.3f and %.3f (want 0 and 1)",
             beit_default_crop_pct(32), o32[0], o32[31]);
  CHECK_TRUE(beit_default_crop_pct(224) == 0.875f && beit_default_crop_pct(384) == 1.0f,
             "default crop_pct 0.875 at 224 px, 1 at 384 px (spec 7.3)");
  beit_image_free(&edge);
  beit_image_free(&img), beit_image_free(&big), beit_image_free(&wide);
}

static double plane_mean(const float *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i];
  return s / n;
}

/* Column trend of a plane: mean of the right half minus the left half. */
static double lr_trend(const float *x, int s) {
  double l = 0, r = 0;
  for (int y = 0; y < s; y++)
    for (int i = 0; i < s / 2; i++) l += x[y * s + i], r += x[y * s + s - 1 - i];
  return (r - l) / (s * s / 2);
}

/* On an x/y ramp, each view's mean R/G is the box centre; both views agree. */
static void test_two_views(void) {
  beit_image img = ramp_image(96, 80, 3);
  beit_aug_cfg cfg;
  beit_aug_defaults(&cfg);
  cfg.brightness = cfg.contrast = cfg.saturation = 0;
  static float a[3 * 28 * 28], b[3 * 56 * 56];
  int agree = 1, centre_ok = 1, flip_dir = 1, flips = 0;
  double worst = 0;
  for (int i = 0; i < 200; i++) {
    beit_rng rng;
    beit_rng_seed(&rng, 5, BEIT_RNG_AUGMENT, 0, (uint64_t)i);
    beit_aug_params p;
    beit_aug_pretrain(&cfg, &img, &rng, 28, 56, ZERO, ONE, a, b, &p);
    double ra = plane_mean(a, 784), rb = plane_mean(b, 3136), ga = plane_mean(a + 784, 784), gb = plane_mean(b + 3136, 3136);
    double left = p.flip ? 80 - p.box.left - p.box.w : p.box.left;
    double cx = (left + p.box.w / 2.0 - 0.5) / 79, cy = (p.box.top + p.box.h / 2.0 - 0.5) / 95;
    worst = fmax(worst, fmax(fabs(ra - rb), fabs(ga - gb)));
    agree &= fabs(ra - rb) < 0.01 && fabs(ga - gb) < 0.01;
    centre_ok &= fabs(ra - cx) < 0.01 && fabs(ga - cy) < 0.01;
    double ta = lr_trend(a, 28), tb = lr_trend(b, 56);
    flip_dir &= p.flip ? (ta < 0 && tb < 0) : (ta > 0 && tb > 0);
    flips += p.flip;
  }
  CHECK_TRUE(agree, "200 draws: views A (28) and B (56) have the same mean x/y position (worst %.4f < 0.01)", worst);
  CHECK_TRUE(centre_ok, "that position is the drawn box's centre");
  CHECK_TRUE(flip_dir && flips > 50 && flips < 150, "both views are flipped together (%d of 200 flipped)", flips);
  beit_rng r1, r2;
  static float a2[3 * 28 * 28], b2[3 * 56 * 56];
  beit_aug_defaults(&cfg);
  beit_rng_seed(&r1, 9, BEIT_RNG_AUGMENT, 1, 2);
  beit_rng_seed(&r2, 9, BEIT_RNG_AUGMENT, 1, 2);
  beit_aug_pretrain(&cfg, &img, &r1, 28, 56, ZERO, ONE, a, b, NULL);
  beit_aug_pretrain(&cfg, &img, &r2, 28, 56, ZERO, ONE, a2, b2, NULL);
  CHECK_TRUE(!memcmp(a, a2, sizeof a) && !memcmp(b, b2, sizeof b), "same rng key -> identical views (with jitter)");
  beit_image_free(&img);
}

static void test_jitter(void) {
  float x[3 * 4] = {0.2f, 0.4f, 0.6f, 0.8f, 0.2f, 0.4f, 0.6f, 0.8f, 0.2f, 0.4f, 0.6f, 0.8f};
  beit_aug_params p = {.order = {0, 1, 2}, .factor = {1.5f, 1, 1}, .gray_mean = 0.5f};
  beit_jitter_apply(&p, x, 3, 4);
  CHECK_TRUE(fabsf(x[0] - 0.3f) < 1e-6f && x[3] == 1.0f, "brightness 1.5: 0.2 -> %.3f, 0.8 -> %.3f (clamped)", x[0], x[3]);
  float y[4] = {0.2f, 0.4f, 0.6f, 0.8f};
  p = (beit_aug_params){.order = {1, 0, 2}, .factor = {1, 0.5f, 0.1f}, .gray_mean = 0.3f};
  beit_jitter_apply(&p, y, 1, 4);
  CHECK_TRUE(fabsf(y[0] - 0.25f) < 1e-6f && fabsf(y[3] - 0.55f) < 1e-6f,
             "contrast 0.5 blends towards the image mean 0.3; saturation ignored for gray (%.3f, %.3f)", y[0], y[3]);
  float z[3] = {1.0f, 0.0f, 0.0f};
  p = (beit_aug_params){.order = {2, 0, 1}, .factor = {1, 1, 0}, .gray_mean = 0.5f};
  beit_jitter_apply(&p, z, 3, 1);
  CHECK_TRUE(fabsf(z[0] - 0.299f) < 1e-6f && fabsf(z[1] - 0.299f) < 1e-6f, "saturation 0 turns red into its gray 0.299");
  /* the contrast mean is the full image's gray level, scaled by an earlier brightness */
  beit_image img = {0};
  beit_image_reserve(&img, 2, 2, 1);
  memset(img.data, 51, 4); /* 0.2 */
  beit_aug_cfg cfg;
  beit_aug_defaults(&cfg);
  int ok = 1;
  for (int i = 0; i < 100; i++) {
    beit_rng rng;
    beit_rng_seed(&rng, 3, BEIT_RNG_AUGMENT, 0, (uint64_t)i);
    beit_aug_draw(&cfg, &rng, &img, &p);
    int bright_first = 0;
    for (int k = 0; k < 3 && p.order[k] != 1; k++) bright_first |= p.order[k] == 0;
    float want = bright_first ? 0.2f * p.factor[0] : 0.2f;
    ok &= fabsf(p.gray_mean - want) < 1e-5f && p.factor[2] == 1.0f && p.factor[0] >= 0.6f && p.factor[0] <= 1.4f;
  }
  CHECK_TRUE(ok, "drawn jitter: factors in [0.6, 1.4], gray image has no saturation, contrast mean tracks brightness");
  beit_image_free(&img);
}

int main(void) {
  TEST_BEGIN("test_data_aug");
  test_rrc_box();
  test_flip();
  test_resample();
  test_eval();
  test_two_views();
  test_jitter();
  return TEST_END();
}
