/* randaug.c - see randaug.h. Each op follows Pillow's C code (ImageOps LUTs,
 * ImagingBlend, the SMOOTH 3x3 filter, ImagingGenericTransform with the bicubic
 * filter) so that tests/ref/randaug_ref.py can compare it with PIL itself (equal value
 * for value on its fixtures). */
#include "data/randaug.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const beit_randaug_op_names[BEIT_RA_NUM_OPS] = {
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};

/* ---- the policy string ------------------------------------------------------ */
static int parse_num(const char *s, double *out) {
  char *end;
  double x = strtod(s, &end);
  if (end == s || *end || !(x >= 0)) return BEIT_ERR;
  *out = x;
  return BEIT_OK;
}

int beit_randaug_parse(const char *s, beit_randaug_cfg *cfg) {
  *cfg = (beit_randaug_cfg){.n = 2, .m = 10, .mstd = 0, .mmax = 10, .p = 0.5f, .inc = 0};
  if (!s || !*s || !strcmp(s, "none")) {
    cfg->n = 0;
    return BEIT_OK;
  }
  char buf[256];
  if (strlen(s) >= sizeof buf || strncmp(s, "rand", 4) || (s[4] && s[4] != '-'))
    return beit_errorf("'%s': expected 'none' or timm's RandAugment string, e.g. rand-m9-mstd0.5-inc1", s);
  strcpy(buf, s);
  for (char *save = NULL, *sec = strtok_r(buf + 4, "-", &save); sec; sec = strtok_r(NULL, "-", &save)) {
    size_t k = strcspn(sec, "0123456789.");
    double x;
    char key[16];
    if (k == 0 || k >= sizeof key || parse_num(sec + k, &x) != BEIT_OK)
      return beit_errorf("'%s': section '%s' is not a key followed by a number (m9, n2, mstd0.5, mmax10, p0.5, inc1)",
                         s, sec);
    memcpy(key, sec, k), key[k] = 0;
    if (!strcmp(key, "m") && x <= 100) cfg->m = (float)x;
    else if (!strcmp(key, "n") && x == floor(x) && x >= 1 && x <= 16) cfg->n = (int)x;
    else if (!strcmp(key, "mstd")) cfg->mstd = x > 100 ? INFINITY : (float)x;  /* timm: > 100 means uniform */
    else if (!strcmp(key, "mmax") && x <= 100) cfg->mmax = (float)x;
    else if (!strcmp(key, "p") && x <= 1) cfg->p = (float)x;
    else if (!strcmp(key, "inc") && (x == 0 || x == 1)) cfg->inc = (int)x;
    else
      return beit_errorf("'%s': section '%s': unknown key or value out of range (m 0..100, n 1..16, mstd >= 0, "
                         "mmax 0..100, p 0..1, inc 0 or 1)", s, sec);
  }
  return BEIT_OK;
}

/* ---- lookup-table ops (ImageOps) ---------------------------------------------- */
static void apply_luts(beit_image *img, const uint8_t lut[3][256]) {
  size_t n = (size_t)img->h * img->w;
  for (size_t i = 0; i < n; i++)
    for (int ch = 0; ch < img->c; ch++) img->data[i * img->c + ch] = lut[ch][img->data[i * img->c + ch]];
}

static void histogram(const beit_image *img, int ch, long long h[256]) {
  memset(h, 0, 256 * sizeof *h);
  size_t n = (size_t)img->h * img->w;
  for (size_t i = 0; i < n; i++) h[img->data[i * img->c + ch]]++;
}

static void lut_autocontrast(const long long *h, uint8_t *lut) {
  int lo = 0, hi = 255;
  while (lo < 256 && !h[lo]) lo++;
  while (hi >= 0 && !h[hi]) hi--;
  for (int i = 0; i < 256; i++) lut[i] = (uint8_t)i;
  if (hi <= lo) return;
  double scale = 255.0 / (hi - lo), offset = -lo * scale;
  for (int i = 0; i < 256; i++) {
    int v = (int)(i * scale + offset);  /* Python int(): towards zero */
    lut[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
}

static void lut_equalize(const long long *h, uint8_t *lut) {
  long long total = 0, last = 0;
  int nonzero = 0;
  for (int i = 0; i < 256; i++)
    if (h[i]) total += h[i], last = h[i], nonzero++;
  long long step = nonzero > 1 ? (total - last) / 255 : 0;
  for (int i = 0; i < 256; i++) lut[i] = (uint8_t)i;
  if (!step) return;
  long long n = step / 2;
  for (int i = 0; i < 256; i++) {
    long long v = n / step;
    lut[i] = (uint8_t)(v > 255 ? 255 : v);
    n += h[i];
  }
}

static void lut_op(beit_image *img, int op, int arg) {
  uint8_t lut[3][256];
  for (int ch = 0; ch < img->c; ch++) {
    long long h[256];
    if (op == BEIT_RA_AUTOCONTRAST || op == BEIT_RA_EQUALIZE) histogram(img, ch, h);
    for (int i = 0; i < 256; i++) {
      int v = i;
      if (op == BEIT_RA_INVERT) v = 255 - i;
      if (op == BEIT_RA_POSTERIZE && arg < 8) v = i & ~((1 << (8 - (arg < 0 ? 0 : arg))) - 1);
      if (op == BEIT_RA_SOLARIZE) v = i < arg ? i : 255 - i;
      if (op == BEIT_RA_SOLARIZE_ADD) v = i < 128 ? (i + arg > 255 ? 255 : i + arg) : i;
      lut[ch][i] = (uint8_t)v;
    }
    if (op == BEIT_RA_AUTOCONTRAST) lut_autocontrast(h, lut[ch]);
    if (op == BEIT_RA_EQUALIZE) lut_equalize(h, lut[ch]);
  }
  apply_luts(img, lut);
}

/* ---- ImageEnhance: blend(degenerate, image, factor) --------------------------- */
/* Pillow's RGB -> L (Convert.c rgb2l). */
static inline int luma(const uint8_t *p) { return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16; }

/* ImageFilter.SMOOTH (1 1 1 / 1 5 1 / 1 1 1, / 13): the border is copied. */
static void smooth(const beit_image *img, uint8_t *out) {
  int H = img->h, W = img->w, c = img->c;
  memcpy(out, img->data, (size_t)H * W * c);
  if (H < 3 || W < 3) return;
  const float k = 1.0f / 13, k5 = 5.0f / 13;
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++)
      for (int ch = 0; ch < c; ch++) {
        float ss = 0.5f;
        for (int dy = 1; dy >= -1; dy--) {  /* Pillow's order: row y+1 first */
          const uint8_t *r = img->data + ((size_t)(y + dy) * W + x) * c + ch;
          ss += (float)r[-c] * k + (float)r[0] * (dy == 0 ? k5 : k) + (float)r[c] * k;
        }
        out[((size_t)y * W + x) * c + ch] = ss <= 0 ? 0 : ss >= 255 ? 255 : (uint8_t)ss;
      }
}

/* ImagingBlend: in1 + alpha * (in2 - in1), truncated, clipped when extrapolating. */
static void blend(uint8_t *img, const uint8_t *deg, size_t n, float alpha) {
  for (size_t i = 0; i < n; i++) {
    float v = (float)deg[i] + alpha * (float)((int)img[i] - (int)deg[i]);
    img[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
  }
}

static int enhance(beit_image *img, int op, float factor) {
  size_t n = (size_t)img->h * img->w, bytes = n * img->c;
  uint8_t *deg = malloc(bytes ? bytes : 1);
  if (!deg) return beit_errorf("out of memory for RandAugment (%zu bytes)", bytes);
  if (op == BEIT_RA_BRIGHTNESS) memset(deg, 0, bytes);
  if (op == BEIT_RA_SHARPNESS) smooth(img, deg);
  if (op == BEIT_RA_COLOR)
    for (size_t i = 0; i < n; i++)
      for (int ch = 0; ch < img->c; ch++)
        deg[i * img->c + ch] = img->c == 3 ? (uint8_t)luma(img->data + 3 * i) : img->data[i];
  if (op == BEIT_RA_CONTRAST) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += img->c == 3 ? luma(img->data + 3 * i) : img->data[i];
    memset(deg, (int)(sum / (double)n + 0.5), bytes);  /* ImageStat mean of the L image, rounded */
  }
  blend(img->data, deg, bytes, factor);
  free(deg);
  return BEIT_OK;
}

/* ---- affine ops: Image.transform(AFFINE, bicubic, fillcolor) ------------------ */
static inline double cubic(double v1, double v2, double v3, double v4, double d) {
  double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Output pixel (x, y) samples the source at a * (x + .5) + b * (y + .5) + c, d * (...) + e * (...) + f. */
static int affine(beit_image *img, const double m[6], const uint8_t fill[3]) {
  int H = img->h, W = img->w, C = img->c;
  size_t bytes = (size_t)H * W * C;
  uint8_t *src = malloc(bytes ? bytes : 1);
  if (!src) return beit_errorf("out of memory for RandAugment (%zu bytes)", bytes);
  memcpy(src, img->data, bytes);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t *o = img->data + ((size_t)y * W + x) * C;
      double xin = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2], yin = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5];
      if (xin < 0 || xin >= W || yin < 0 || yin >= H) {
        for (int ch = 0; ch < C; ch++) o[ch] = fill[C == 3 ? ch : 0];
        continue;
      }
      xin -= 0.5, yin -= 0.5;
      int x0 = (int)floor(xin), y0 = (int)floor(yin);
      double dx = xin - x0, dy = yin - y0;
      for (int ch = 0; ch < C; ch++) {
        double row[4];
        for (int j = 0; j < 4; j++) {
          const uint8_t *r = src + (size_t)clampi(y0 - 1 + j, 0, H - 1) * W * C + ch;
          row[j] = cubic(r[clampi(x0 - 1, 0, W - 1) * C], r[clampi(x0, 0, W - 1) * C], r[clampi(x0 + 1, 0, W - 1) * C],
                         r[clampi(x0 + 2, 0, W - 1) * C], dx);
        }
        double v = cubic(row[0], row[1], row[2], row[3], dy);
        o[ch] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
      }
    }
  free(src);
  return BEIT_OK;
}

/* Python's round(x, 15) closely enough for a rotation matrix. */
static double round15(double x) { return nearbyint(x * 1e15) / 1e15; }

/* Image.rotate(deg) about the centre, same size (the matrix Pillow builds). */
static int rotate(beit_image *img, double deg, const uint8_t fill[3]) {
  double r = fmod(deg, 360.0);
  if (r < 0) r += 360.0;  /* Python's angle % 360 */
  double a = -(r * (M_PI / 180.0)), cx = img->w / 2.0, cy = img->h / 2.0;
  double m[6] = {round15(cos(a)), round15(sin(a)), 0, round15(-sin(a)), round15(cos(a)), 0};
  m[2] = m[0] * -cx + m[1] * -cy + cx;
  m[5] = m[3] * -cx + m[4] * -cy + cy;
  return affine(img, m, fill);
}

/* ---- one op at a magnitude (timm's level functions) ---------------------------- */
int beit_randaug_op(beit_image *img, int op, double mag, int negate, int inc, const uint8_t fill[3]) {
  if (img->c != 1 && img->c != 3) return beit_errorf("RandAugment: %d channels, expected 1 or 3", img->c);
  double s = negate ? -1 : 1, lv = mag / 10;
  switch (op) {
    case BEIT_RA_AUTOCONTRAST: case BEIT_RA_EQUALIZE: case BEIT_RA_INVERT: lut_op(img, op, 0); return BEIT_OK;
    case BEIT_RA_POSTERIZE: lut_op(img, op, inc ? 4 - (int)(lv * 4) : (int)(lv * 4)); return BEIT_OK;
    case BEIT_RA_SOLARIZE: lut_op(img, op, inc ? 256 - (int)(lv * 256) : (int)(lv * 256)); return BEIT_OK;
    case BEIT_RA_SOLARIZE_ADD: lut_op(img, op, (int)(lv * 110)); return BEIT_OK;
    case BEIT_RA_COLOR: case BEIT_RA_CONTRAST: case BEIT_RA_BRIGHTNESS: case BEIT_RA_SHARPNESS: {
      double f = inc ? fmax(0.1, 1.0 + s * lv * 0.9) : lv * 1.8 + 0.1;
      return enhance(img, op, (float)f);
    }
    case BEIT_RA_ROTATE: return rotate(img, s * lv * 30, fill);
    case BEIT_RA_SHEAR_X: return affine(img, (double[6]){1, s * lv * 0.3, 0, 0, 1, 0}, fill);
    case BEIT_RA_SHEAR_Y: return affine(img, (double[6]){1, 0, 0, s * lv * 0.3, 1, 0}, fill);
    case BEIT_RA_TRANSLATE_X: return affine(img, (double[6]){1, 0, s * lv * 0.45 * img->w, 0, 1, 0}, fill);
    case BEIT_RA_TRANSLATE_Y: return affine(img, (double[6]){1, 0, 0, 0, 1, s * lv * 0.45 * img->h}, fill);
  }
  return beit_errorf("RandAugment: no op %d (0..%d)", op, BEIT_RA_NUM_OPS - 1);
}

/* The ops whose level timm negates with probability 1/2 (_randomly_negate). */
static int is_signed(int op, int inc) {
  if (op == BEIT_RA_ROTATE || op >= BEIT_RA_SHEAR_X) return 1;
  return inc && op >= BEIT_RA_COLOR && op <= BEIT_RA_SHARPNESS;
}

int beit_randaug_apply(const beit_randaug_cfg *cfg, beit_image *img, beit_rng *rng, const uint8_t fill[3],
                       int *ops_out) {
  for (int k = 0; k < cfg->n; k++) {
    int op = (int)beit_rng_randint(rng, 0, BEIT_RA_NUM_OPS - 1);
    if (ops_out) ops_out[k] = -1;
    if (beit_rng_uniform(rng) >= cfg->p) continue;  /* timm: skipped when random() > p */
    double mag = cfg->m;
    if (isinf(cfg->mstd)) mag = beit_rng_uniform_range(rng, 0, cfg->m);
    else if (cfg->mstd > 0) mag += cfg->mstd * beit_rng_normal(rng);
    mag = fmax(0.0, fmin(mag, cfg->mmax));
    int negate = is_signed(op, cfg->inc) && beit_rng_uniform(rng) < 0.5;
    if (ops_out) ops_out[k] = op;
    if (beit_randaug_op(img, op, mag, negate, cfg->inc, fill) != BEIT_OK) return BEIT_ERR;
  }
  return BEIT_OK;
}
