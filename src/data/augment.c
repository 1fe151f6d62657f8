/* augment.c - crop-box sampling, separable antialiased resampling (the filter
 * is widened by the downscale factor and clamped to the crop window, like
 * PIL's resize of a cropped image), colour jitter and the view builders. */
#include "data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void beit_aug_defaults(beit_aug_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);  /* RandAugment, erasing and the padded crop off */
  cfg->scale_min = 0.08f, cfg->scale_max = 1.0f;
  cfg->ratio_min = 3.0f / 4.0f, cfg->ratio_max = 4.0f / 3.0f;
  cfg->hflip = 0.5f;
  cfg->brightness = cfg->contrast = cfg->saturation = 0.4f;
  cfg->interp = BEIT_INTERP_BICUBIC;
  cfg->interp_b = BEIT_INTERP_LANCZOS;
}

/* Python round(): half to even. */
static int round_py(double x) { return (int)nearbyint(x); }

beit_box beit_rrc_box(beit_rng *rng, int H, int W, float scale_min, float scale_max, float ratio_min,
                      float ratio_max) {
  double area = (double)H * W, lr0 = log(ratio_min), lr1 = log(ratio_max);
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = area * beit_rng_uniform_range(rng, scale_min, scale_max);
    double ar = exp(beit_rng_uniform_range(rng, lr0, lr1));
    int w = round_py(sqrt(target * ar)), h = round_py(sqrt(target / ar));
    if (w > 0 && h > 0 && w <= W && h <= H) {
      int top = (int)beit_rng_randint(rng, 0, H - h), left = (int)beit_rng_randint(rng, 0, W - w);
      return (beit_box){top, left, h, w};
    }
  }
  double in_ratio = (double)W / H;
  int w = W, h = H;
  if (in_ratio < ratio_min) h = round_py(W / (double)ratio_min);
  else if (in_ratio > ratio_max) w = round_py(H * (double)ratio_max);
  if (h > H) h = H;
  if (w > W) w = W;
  if (h < 1) h = 1;
  if (w < 1) w = 1;
  return (beit_box){(H - h) / 2, (W - w) / 2, h, w};
}

/* ---- colour jitter --------------------------------------------------------- */
static float gray_mean(const beit_image *img) {
  size_t n = (size_t)img->h * img->w;
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = img->data + i * img->c;
    sum += img->c == 3 ? 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] : p[0];
  }
  return (float)(sum / (255.0 * (double)n));
}

static float draw_factor(beit_rng *rng, float strength) {
  if (strength <= 0) return 1.0f;
  double lo = 1.0 - strength < 0 ? 0 : 1.0 - strength;
  return (float)beit_rng_uniform_range(rng, lo, 1.0 + strength);
}

/* Jitter acts on the full image before the crop (spec section 4 step 1); every
 * op is affine per pixel, so applying it to the resized views is the same up to
 * clamping, provided the contrast op blends towards the full image's mean. */
static void draw_jitter(const beit_aug_cfg *cfg, beit_rng *rng, const beit_image *img, beit_aug_params *p) {
  for (int k = 0; k < 3; k++) p->order[k] = k;
  for (int k = 2; k > 0; k--) {
    int j = (int)beit_rng_randint(rng, 0, k), t = p->order[k];
    p->order[k] = p->order[j], p->order[j] = t;
  }
  p->factor[0] = draw_factor(rng, cfg->brightness);
  p->factor[1] = draw_factor(rng, cfg->contrast);
  p->factor[2] = img->c == 3 ? draw_factor(rng, cfg->saturation) : 1.0f;
  p->gray_mean = p->factor[1] != 1.0f ? gray_mean(img) : 0.5f;
  for (int k = 0; k < 3 && p->order[k] != 1; k++)
    if (p->order[k] == 0) p->gray_mean = fminf(1.0f, p->gray_mean * p->factor[0]);
}

static inline float clamp01(float x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

void beit_jitter_apply(const beit_aug_params *p, float *x, int c, int hw) {
  size_t n = (size_t)c * hw;
  for (int k = 0; k < 3; k++) {
    int op = p->order[k];
    float f = p->factor[op];
    if (f == 1.0f || (op == 2 && c != 3)) continue;
    if (op == 0)
      for (size_t i = 0; i < n; i++) x[i] = clamp01(x[i] * f);
    if (op == 1)
      for (size_t i = 0; i < n; i++) x[i] = clamp01(f * x[i] + (1 - f) * p->gray_mean);
    if (op == 2)
      for (int i = 0; i < hw; i++) {
        float g = 0.299f * x[i] + 0.587f * x[hw + i] + 0.114f * x[2 * hw + i];
        for (int ch = 0; ch < 3; ch++) x[ch * hw + i] = clamp01(f * x[ch * hw + i] + (1 - f) * g);
      }
  }
}

void beit_aug_draw(const beit_aug_cfg *cfg, beit_rng *rng, const beit_image *img, beit_aug_params *p) {
  memset(p, 0, sizeof *p);
  draw_jitter(cfg, rng, img, p);
  p->flip = cfg->hflip > 0 && beit_rng_uniform(rng) < cfg->hflip;
  p->box = beit_rrc_box(rng, img->h, img->w, cfg->scale_min, cfg->scale_max, cfg->ratio_min, cfg->ratio_max);
}

/* ---- resampling ------------------------------------------------------------ */
static double sinc(double x) { return x == 0 ? 1.0 : sin(M_PI * x) / (M_PI * x); }

static double filter_eval(beit_interp f, double x) {
  x = fabs(x);
  if (f == BEIT_INTERP_BILINEAR) return x < 1 ? 1 - x : 0;
  if (f == BEIT_INTERP_LANCZOS) return x < 3 ? sinc(x) * sinc(x / 3) : 0;
  const double a = -0.5; /* PIL's bicubic */
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

static double filter_support(beit_interp f) {
  return f == BEIT_INTERP_BILINEAR ? 1.0 : f == BEIT_INTERP_LANCZOS ? 3.0 : 2.0;
}

/* Per output index: first source index, tap count and normalised weights. */
typedef struct {
  int *start, *count, taps;
  float *w;
} axis_w;

static void axis_free(axis_w *a) {
  free(a->start), free(a->count), free(a->w);
}

/* Output n samples of the source interval [x0, x0+len), reading only [lo, hi). */
static int axis_init(axis_w *a, int n, double x0, double len, int lo, int hi, beit_interp f) {
  double scale = len / n, fs = scale > 1 ? scale : 1, support = filter_support(f) * fs;
  a->taps = (int)ceil(2 * support) + 2;
  a->start = malloc(sizeof(int) * n), a->count = malloc(sizeof(int) * n);
  a->w = malloc(sizeof(float) * (size_t)n * a->taps);
  if (!a->start || !a->count || !a->w) return beit_errorf("out of memory for resampling weights");
  for (int i = 0; i < n; i++) {
    double center = x0 + (i + 0.5) * scale, sum = 0;
    int j0 = (int)floor(center - support), j1 = (int)ceil(center + support);
    if (j0 < lo) j0 = lo;
    if (j1 > hi) j1 = hi;
    if (j1 - j0 > a->taps) j1 = j0 + a->taps;
    float *w = a->w + (size_t)i * a->taps;
    for (int j = j0; j < j1; j++) sum += w[j - j0] = (float)filter_eval(f, (j + 0.5 - center) / fs);
    for (int j = j0; j < j1; j++) w[j - j0] = sum != 0 ? (float)(w[j - j0] / sum) : 0;
    a->start[i] = j0, a->count[i] = j1 - j0;
  }
  return BEIT_OK;
}

/* One output pixel of the horizontal pass: taps over c interleaved channels
 * (inlined with a constant c so the loops specialise). */
static inline void tap_row(const float *restrict w, const uint8_t *restrict s, int count, float *restrict dst,
                           const int c) {
  float a0 = 0, a1 = 0, a2 = 0;
  for (int k = 0; k < count; k++) {
    a0 += w[k] * s[k * c];
    if (c == 3) a1 += w[k] * s[k * c + 1], a2 += w[k] * s[k * c + 2];
  }
  dst[0] = a0;
  if (c == 3) dst[1] = a1, dst[2] = a2;
}

/* Horizontal pass over source rows [r0, r1) into tmp[(r-r0), out_w, c]. */
static void pass_h(const beit_image *img, const axis_w *ax, int out_w, int r0, int r1, float *tmp) {
  int c = img->c;
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = img->data + (size_t)r * img->w * c;
    float *dst = tmp + (size_t)(r - r0) * out_w * c;
    for (int i = 0; i < out_w; i++) {
      const float *w = ax->w + (size_t)i * ax->taps;
      const uint8_t *s = row + (size_t)ax->start[i] * c;
      if (c == 1) tap_row(w, s, ax->count[i], dst + i, 1);
      else tap_row(w, s, ax->count[i], dst + 3 * i, 3);
    }
  }
}

/* acc[j] += wk * src[j]: contiguous, vectorisable. */
static void axpy(float *restrict acc, const float *restrict src, float wk, size_t n) {
  for (size_t j = 0; j < n; j++) acc[j] += wk * src[j];
}

/* Vertical pass into CHW [0,1], mirroring columns when flip. Rows are
 * accumulated whole (contiguous, vectorisable) in acc[out_w * c]. */
static void pass_v(const float *tmp, const axis_w *ay, int r0, int out_h, int out_w, int c, int flip, float *acc,
                   float *out) {
  size_t plane = (size_t)out_h * out_w, len = (size_t)out_w * c;
  for (int o = 0; o < out_h; o++) {
    const float *w = ay->w + (size_t)o * ay->taps;
    const float *base = tmp + (size_t)(ay->start[o] - r0) * len;
    memset(acc, 0, sizeof(float) * len);
    for (int k = 0; k < ay->count[o]; k++) axpy(acc, base + (size_t)k * len, w[k], len);
    for (int i = 0; i < out_w; i++) {
      int x = flip ? out_w - 1 - i : i;
      for (int ch = 0; ch < c; ch++) out[ch * plane + (size_t)o * out_w + x] = clamp01(acc[i * c + ch] * (1.0f / 255.0f));
    }
  }
}

/* Exact copy when the box maps 1:1 onto the output. */
static void copy_box(const beit_image *img, beit_box b, int flip, float *out) {
  size_t plane = (size_t)b.h * b.w;
  for (int y = 0; y < b.h; y++)
    for (int x = 0; x < b.w; x++) {
      const uint8_t *s = img->data + ((size_t)(b.top + y) * img->w + b.left + x) * img->c;
      int dx = flip ? b.w - 1 - x : x;
      for (int ch = 0; ch < img->c; ch++) out[ch * plane + (size_t)y * b.w + dx] = s[ch] * (1.0f / 255.0f);
    }
}

/* General form: source rectangle (y0, x0, bh, bw) in pixels, filter reads clamped to `win`. */
static int resample(const beit_image *img, double y0, double x0, double bh, double bw, beit_box win, int out_h,
                    int out_w, beit_interp f, int flip, float *out) {
  axis_w ax = {0}, ay = {0};
  float *tmp = NULL;
  int rc = axis_init(&ax, out_w, x0, bw, win.left, win.left + win.w, f);
  if (rc == BEIT_OK) rc = axis_init(&ay, out_h, y0, bh, win.top, win.top + win.h, f);
  if (rc == BEIT_OK) {
    int r0 = ay.start[0], r1 = ay.start[out_h - 1] + ay.count[out_h - 1];
    for (int o = 0; o < out_h; o++) {
      if (ay.start[o] < r0) r0 = ay.start[o];
      if (ay.start[o] + ay.count[o] > r1) r1 = ay.start[o] + ay.count[o];
    }
    size_t len = (size_t)out_w * img->c;
    tmp = malloc(sizeof(float) * (size_t)(r1 - r0 + 1) * len);
    if (!tmp) rc = beit_errorf("out of memory resampling to %dx%d", out_w, out_h);
    else pass_h(img, &ax, out_w, r0, r1, tmp), pass_v(tmp, &ay, r0, out_h, out_w, img->c, flip, tmp + (r1 - r0) * len, out);
  }
  free(tmp);
  axis_free(&ax), axis_free(&ay);
  return rc;
}

int beit_resize_box(const beit_image *img, beit_box b, int out_h, int out_w, beit_interp interp, int flip,
                    float *out) {
  if (b.top < 0 || b.left < 0 || b.h <= 0 || b.w <= 0 || b.top + b.h > img->h || b.left + b.w > img->w ||
      out_h <= 0 || out_w <= 0 || (img->c != 1 && img->c != 3))
    return beit_errorf("crop box %dx%d+%d+%d outside the %dx%d image (or empty output %dx%d, or %d channels)", b.w, b.h,
                       b.left, b.top, img->w, img->h, out_w, out_h, img->c);
  if (b.h == out_h && b.w == out_w) {
    copy_box(img, b, flip, out);
    return BEIT_OK;
  }
  return resample(img, b.top, b.left, b.h, b.w, b, out_h, out_w, interp, flip, out);
}

void beit_normalize(float *x, int c, int hw, const float mean[3], const float std[3]) {
  for (int ch = 0; ch < c; ch++) {
    float m = mean[ch], inv = 1.0f / std[ch];
    for (int i = 0; i < hw; i++) x[(size_t)ch * hw + i] = (x[(size_t)ch * hw + i] - m) * inv;
  }
}

/* The flipped image's box [left, left+w) is the original's [W-left-w, W-left), mirrored. */
static beit_box unflip_box(beit_box b, int W, int flip) {
  if (flip) b.left = W - b.left - b.w;
  return b;
}

static int make_view(const beit_aug_params *p, const beit_image *img, int size, beit_interp f, float *out) {
  beit_box src = unflip_box(p->box, img->w, p->flip);
  if (beit_resize_box(img, src, size, size, f, p->flip, out)) return BEIT_ERR;
  beit_jitter_apply(p, out, img->c, size * size);
  return BEIT_OK;
}

int beit_aug_pretrain(const beit_aug_cfg *cfg, const beit_image *img, beit_rng *rng, int size_a, int size_b,
                      const float mean[3], const float std[3], float *out_a, float *out_b, beit_aug_params *drawn) {
  beit_aug_params p;
  beit_aug_draw(cfg, rng, img, &p);
  if (drawn) *drawn = p;
  if (make_view(&p, img, size_a, cfg->interp, out_a)) return BEIT_ERR;
  beit_normalize(out_a, img->c, size_a * size_a, mean, std);
  return out_b ? make_view(&p, img, size_b, cfg->interp_b, out_b) : BEIT_OK;
}

/* torchvision's RandomCrop(size, padding N) (zeros) after the image is resized to
 * size x size, then the flip; jitter last (it sees the padding, as ColorJitter does). */
static int pad_crop_view(const beit_aug_cfg *cfg, const beit_image *img, beit_rng *rng, int size,
                         beit_aug_params *p, float *out) {
  int N = cfg->crop_pad, C = img->c;
  memset(p, 0, sizeof *p);
  draw_jitter(cfg, rng, img, p);
  p->box = (beit_box){(int)beit_rng_randint(rng, 0, 2 * N), (int)beit_rng_randint(rng, 0, 2 * N), size, size};
  p->flip = cfg->hflip > 0 && beit_rng_uniform(rng) < cfg->hflip;
  size_t plane = (size_t)size * size;
  float *full = beit_alloc(sizeof(float) * C * plane, "the padded crop");
  if (!full || beit_resize_box(img, (beit_box){0, 0, img->h, img->w}, size, size, cfg->interp, 0, full)) {
    beit_free(full);
    return BEIT_ERR;
  }
  for (int c = 0; c < C; c++)
    for (int y = 0; y < size; y++)
      for (int x = 0; x < size; x++) {
        int sy = p->box.top - N + y, sx = p->box.left - N + (p->flip ? size - 1 - x : x);
        int in = sy >= 0 && sx >= 0 && sy < size && sx < size;
        out[c * plane + (size_t)y * size + x] = in ? full[c * plane + (size_t)sy * size + sx] : 0;
      }
  beit_free(full);
  beit_jitter_apply(p, out, C, (int)plane);
  return BEIT_OK;
}

/* RandAugment works on what PIL would hold: the view rounded to uint8, HWC. */
static int randaug_view(const beit_randaug_cfg *ra, float *x, int C, int size, const float mean[3], beit_rng *rng,
                        int *ops) {
  beit_image im = {0};
  size_t plane = (size_t)size * size;
  if (beit_image_reserve(&im, size, size, C) != BEIT_OK) return BEIT_ERR;
  uint8_t fill[3];
  for (int c = 0; c < 3; c++) fill[c] = (uint8_t)fmin(255, nearbyint(255 * mean[c < C ? c : 0]));  /* timm's img_mean */
  for (int c = 0; c < C; c++)
    for (size_t i = 0; i < plane; i++) im.data[i * C + c] = (uint8_t)(x[c * plane + i] * 255 + 0.5f);
  int rc = beit_randaug_apply(ra, &im, rng, fill, ops);
  for (int c = 0; c < C; c++)
    for (size_t i = 0; i < plane; i++) x[c * plane + i] = im.data[i * C + c] * (1.0f / 255.0f);
  beit_image_free(&im);
  return rc;
}

int beit_random_erase(float *x, int C, int H, int W, float prob, beit_rng *rng, beit_box *box) {
  if (prob <= 0 || beit_rng_uniform(rng) >= prob) return 0;
  double area = (double)H * W, lr = log(0.3);
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = beit_rng_uniform_range(rng, 0.02, 1 / 3.0) * area;
    double ar = exp(beit_rng_uniform_range(rng, lr, -lr));
    int h = round_py(sqrt(target * ar)), w = round_py(sqrt(target / ar));
    if (w >= W || h >= H) continue;
    *box = (beit_box){(int)beit_rng_randint(rng, 0, H - h), (int)beit_rng_randint(rng, 0, W - w), h, w};
    for (int c = 0; c < C; c++)
      for (int y = box->top; y < box->top + h; y++)
        for (int i = box->left; i < box->left + w; i++) x[((size_t)c * H + y) * W + i] = (float)beit_rng_normal(rng);
    return 1;
  }
  return 0;
}

int beit_aug_train(const beit_aug_cfg *cfg, const beit_image *img, beit_rng *rng, int size, const float mean[3],
                   const float std[3], float *out, beit_aug_params *drawn) {
  if (cfg->crop_pad <= 0 && cfg->randaug.n <= 0 && cfg->reprob <= 0)
    return beit_aug_pretrain(cfg, img, rng, size, 0, mean, std, out, NULL, drawn);
  beit_aug_cfg c = *cfg;
  if (c.randaug.n > 0) c.brightness = c.contrast = c.saturation = 0;  /* timm: no jitter with an auto-augment policy */
  beit_aug_params p;
  if (c.crop_pad > 0) {
    if (pad_crop_view(&c, img, rng, size, &p, out) != BEIT_OK) return BEIT_ERR;
  } else {
    beit_aug_draw(&c, rng, img, &p);
    if (make_view(&p, img, size, c.interp, out) != BEIT_OK) return BEIT_ERR;
  }
  for (int k = 0; k < 16; k++) p.ops[k] = -1;
  if (c.randaug.n > 0 && randaug_view(&c.randaug, out, img->c, size, mean, rng, p.ops) != BEIT_OK) return BEIT_ERR;
  beit_normalize(out, img->c, size * size, mean, std);
  p.erased = beit_random_erase(out, img->c, size, size, c.reprob, rng, &p.erase);
  if (drawn) *drawn = p;
  return BEIT_OK;
}

/* 0.875 (224 of 256, spec 7.3) between, and 1 from 384 px (BEiT's 384 fine-tuning
 * evaluates uncropped) and up to 64 px: small images (28 px Fashion-MNIST resized
 * to 32, say) train on crops of the whole image, and a centre crop of 87.5% at test
 * time shows the model a zoom it never saw (measured: 62% instead of 85% top-1). */
float beit_default_crop_pct(int size) { return size <= 64 || size >= 384 ? 1.0f : 0.875f; }

beit_eval_prep beit_eval_prep_make(int size, float crop_pct, const float mean[3], const float std[3]) {
  beit_eval_prep p = {.size = size, .crop_pct = crop_pct > 0 ? crop_pct : beit_default_crop_pct(size)};
  memcpy(p.mean, mean, sizeof p.mean), memcpy(p.std, std, sizeof p.std);
  return p;
}

int beit_eval_resize_side(int size, float crop_pct) {
  /* a crop_pct beit_eval_crop_check refuses must not overflow int here (the loader asks before checking) */
  if (!(crop_pct > 0 && crop_pct <= 1) || size / (double)crop_pct > BEIT_IMAGE_MAX_SIDE) return size;
  return (int)floor(size / crop_pct + 1e-9);
}

int beit_eval_crop_check(int size, float crop_pct) {
  /* compared in double: a tiny crop_pct must not overflow int before the check */
  if (!(crop_pct > 0 && crop_pct <= 1) || size / (double)crop_pct > BEIT_IMAGE_MAX_SIDE)
    return beit_errorf("crop_pct %g: expected 0 < crop_pct <= 1 with %d / crop_pct at most %d px", crop_pct, size,
                       BEIT_IMAGE_MAX_SIDE);
  return BEIT_OK;
}

int beit_eval_norm_check(const float mean[3], const float std[3]) {
  for (int c = 0; c < 3; c++)
    if (!isfinite(mean[c]) || !isfinite(std[c]) || !(std[c] > 0))
      return beit_errorf("normalisation mean %g %g %g, std %g %g %g: expected finite values and std > 0", mean[0],
                         mean[1], mean[2], std[0], std[1], std[2]);
  return BEIT_OK;
}

int beit_eval_prep_check(const beit_eval_prep *p) {
  return beit_eval_crop_check(p->size, p->crop_pct) != BEIT_OK ? BEIT_ERR : beit_eval_norm_check(p->mean, p->std);
}

int beit_aug_eval(const beit_image *img, const beit_eval_prep *p, float *out) {
  if (beit_eval_prep_check(p) != BEIT_OK) return BEIT_ERR;
  if (img->c != 1 && img->c != 3) return beit_errorf("eval transform: %d channels, expected 1 or 3", img->c);
  int H = img->h, W = img->w, size = p->size, rc = BEIT_OK;
  long long s = beit_eval_resize_side(size, p->crop_pct), nh = s, nw = s;
  if (W <= H) nh = s * H / W;
  else nw = s * W / H;
  int top = round_py((nh - size) / 2.0), left = round_py((nw - size) / 2.0);
  if (nh == H && nw == W) {
    copy_box(img, (beit_box){top, left, size, size}, 0, out);
  } else {
    double sy = (double)H / nh, sx = (double)W / nw;
    rc = resample(img, top * sy, left * sx, size * sy, size * sx, (beit_box){0, 0, H, W}, size, size,
                  BEIT_INTERP_BICUBIC, 0, out);
  }
  if (rc == BEIT_OK) beit_normalize(out, img->c, size * size, p->mean, p->std);
  return rc;
}
