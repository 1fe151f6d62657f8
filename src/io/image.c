/* image.c - PNG (libpng) and JPEG (libjpeg-turbo) decoding with error handlers
 * that longjmp back instead of exiting, atomic PNG encoding, and the canvas
 * drawing helpers declared in image.h. */
#include "io/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs stdio.h first */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/core.h"

int beit_image_reserve(beit_image *img, int h, int w, int c) {
  size_t need = (size_t)h * (size_t)w * (size_t)c;
  if (need > img->cap) {
    uint8_t *p = beit_alloc(need, "image");
    if (!p) return BEIT_ERR;
    if (img->data) memcpy(p, img->data, img->cap);
    beit_free(img->data);
    img->data = p;
    img->cap = need;
  }
  img->h = h, img->w = w, img->c = c;
  return BEIT_OK;
}

void beit_image_free(beit_image *img) {
  beit_free(img->data);
  memset(img, 0, sizeof *img);
}

static int check_dims(const char *name, long long h, long long w) {
  if (h <= 0 || w <= 0 || h > BEIT_IMAGE_MAX_SIDE || w > BEIT_IMAGE_MAX_SIDE ||
      h * w > BEIT_IMAGE_MAX_PIXELS)
    return beit_errorf("%s: image is %lldx%lld, expected 1..%d per side and at most %lld pixels", name,
                       w, h, BEIT_IMAGE_MAX_SIDE, BEIT_IMAGE_MAX_PIXELS);
  return BEIT_OK;
}

/* ---- decoding limits -------------------------------------------------------- */
static long long g_max_pixels = BEIT_IMAGE_DEFAULT_MAX_PIXELS;

void beit_image_set_max_pixels(long long n) {
  g_max_pixels = n < 1 ? 1 : n > BEIT_IMAGE_MAX_PIXELS ? BEIT_IMAGE_MAX_PIXELS : n;
}

long long beit_image_max_pixels(void) { return g_max_pixels; }

int beit_image_check_pixels(const char *name, long long h, long long w) {
  if (check_dims(name, h, w)) return BEIT_ERR;
  if (h * w > g_max_pixels)
    return beit_errorf("%s: image is %lldx%lld = %.1f Mpx, over the limit of %.1f Mpx (--max-image-pixels %lld)", name,
                       w, h, h * w / 1e6, g_max_pixels / 1e6, g_max_pixels);
  return BEIT_OK;
}

/* The integer factor a decoder may shrink an h x w image by: its shorter side stays
 * at least 2 * min_side, so the resize to min_side after it still filters from twice
 * the target (PIL's reducing_gap = 2). At most 256, which keeps box sums in 32 bits. */
static int reduce_factor(long long h, long long w, int min_side) {
  if (min_side <= 0) return 1;
  long long f = (h < w ? h : w) / (2LL * min_side);
  return f < 1 ? 1 : f > 256 ? 256 : (int)f;
}

/* The memory check the model uses, for a decoder about to hold `need` bytes. */
static int decode_memory_check(const char *name, long long h, long long w, double need) {
  if (need < (double)(16 << 20)) return BEIT_OK;  /* reading /proc per small image would cost more than it saves */
  char what[1200];
  snprintf(what, sizeof what, "%s: decoding a %lldx%lld image", name, w, h);
  return beit_memory_check(need, what);
}

/* ---- PNG decoding ---------------------------------------------------------- */
typedef struct {
  const uint8_t *buf;
  size_t size, pos;
  char msg[256];
  jmp_buf jb;
  png_bytep *rows;
  uint8_t *row;   /* reducing: one decoded row */
  uint32_t *acc;  /* reducing: box sums of the output row */
} png_src;

static void png_fail(png_structp png, png_const_charp msg) {
  png_src *s = png_get_error_ptr(png);
  if (!s->msg[0]) snprintf(s->msg, sizeof s->msg, "%s", msg);
  longjmp(s->jb, 1);
}

static void png_quiet(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
  png_src *s = png_get_io_ptr(png);
  if (n > s->size - s->pos) {
    snprintf(s->msg, sizeof s->msg, "truncated: needed %zu bytes at offset %zu, file has %zu", n, s->pos,
             s->size);
    longjmp(s->jb, 1);
  }
  memcpy(out, s->buf + s->pos, n);
  s->pos += n;
}

/* Sets up the 8-bit gray/RGB output transforms for whatever the file holds. */
static void png_set_transforms(png_structp png, png_infop info) {
  int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_scale_16(png);
  if ((type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
}

/* Averages each f x f box of the h x w x c rows into img (edge boxes over what they cover). */
static void png_emit_row(png_src *s, beit_image *img, int oy, int rows, int f, int w) {
  int c = img->c;
  uint8_t *out = img->data + (size_t)oy * img->w * c;
  for (int ox = 0; ox < img->w; ox++) {
    uint32_t n = (uint32_t)rows * (uint32_t)(w - ox * f < f ? w - ox * f : f);
    for (int ch = 0; ch < c; ch++) out[ox * c + ch] = (uint8_t)((s->acc[ox * c + ch] + n / 2) / n);
  }
  memset(s->acc, 0, sizeof(uint32_t) * (size_t)img->w * c);
}

/* Row by row into a 1/f-size image: the full image never exists in memory. */
static int png_read_reduced(png_structp png, png_src *s, const char *name, beit_image *img, int h, int w, int f) {
  int c = img->c;
  s->row = malloc((size_t)w * c);
  s->acc = calloc((size_t)img->w * c, sizeof(uint32_t));
  if (!s->row || !s->acc) return beit_errorf("%s: out of memory", name);
  for (int y = 0; y < h; y++) {
    png_read_row(png, s->row, NULL);
    for (int ox = 0, x = 0; ox < img->w; ox++)
      for (int end = x + f < w ? x + f : w; x < end; x++)
        for (int ch = 0; ch < c; ch++) s->acc[ox * c + ch] += s->row[x * c + ch];
    if ((y + 1) % f == 0 || y == h - 1) png_emit_row(s, img, y / f, y % f + 1, f, w);
  }
  return BEIT_OK;
}

static int png_decode_body(png_structp png, png_infop info, png_src *s, const char *name, int min_side,
                           beit_image *img) {
  if (setjmp(s->jb)) return beit_errorf("%s: corrupt PNG: %s", name, s->msg);
  png_set_read_fn(png, s, png_read_mem);
  png_read_info(png, info);
  int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
  if (beit_image_check_pixels(name, h, w)) return BEIT_ERR;
  /* Adam7 rows arrive in passes over the whole image: only plain PNGs are reduced */
  int f = png_get_interlace_type(png, info) == PNG_INTERLACE_NONE ? reduce_factor(h, w, min_side) : 1;
  png_set_transforms(png, info);
  int c = png_get_channels(png, info);
  if (c != 1 && c != 3) return beit_errorf("%s: PNG gives %d channels after conversion", name, c);
  int oh = (h + f - 1) / f, ow = (w + f - 1) / f;
  if (decode_memory_check(name, h, w, (double)oh * ow * c + (f > 1 ? 5.0 * w * c : 8.0 * h))) return BEIT_ERR;
  if (beit_image_reserve(img, oh, ow, c)) return BEIT_ERR;
  if (f > 1) {
    if (png_read_reduced(png, s, name, img, h, w, f)) return BEIT_ERR;
  } else {
    s->rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!s->rows) return beit_errorf("%s: out of memory", name);
    for (int y = 0; y < h; y++) s->rows[y] = img->data + (size_t)y * w * c;
    png_read_image(png, s->rows);
  }
  png_read_end(png, NULL);
  return BEIT_OK;
}

static int png_decode(const uint8_t *buf, size_t size, const char *name, int min_side, beit_image *img) {
  png_src s = {.buf = buf, .size = size};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_fail, png_quiet);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return beit_errorf("%s: cannot initialise libpng", name);
  }
  int rc = png_decode_body(png, info, &s, name, min_side, img);
  free(s.rows), free(s.row), free(s.acc);
  png_destroy_read_struct(&png, &info, NULL);
  return rc;
}

/* ---- JPEG decoding --------------------------------------------------------- */
typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
  uint8_t *row; /* CMYK scanline */
} jpg_err;

static void jpg_fail(j_common_ptr ci) {
  jpg_err *e = (jpg_err *)ci->err;
  ci->err->format_message(ci, e->msg);
  longjmp(e->jb, 1);
}

/* Warnings mean corrupt or truncated data: refuse them, except trailing junk. */
static void jpg_emit(j_common_ptr ci, int level) {
  if (level < 0 && ci->err->msg_code != JWRN_EXTRANEOUS_DATA) jpg_fail(ci);
}

static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, int w, int inverted) {
  for (int x = 0; x < w; x++) {
    int k = in[4 * x + 3];
    for (int ch = 0; ch < 3; ch++) {
      int v = in[4 * x + ch];
      out[3 * x + ch] = inverted ? (uint8_t)((v * k + 127) / 255)
                                 : (uint8_t)(((255 - v) * (255 - k) + 127) / 255);
    }
  }
}

static int jpg_read_pixels(struct jpeg_decompress_struct *ci, jpg_err *e, beit_image *img) {
  int w = (int)ci->output_width, comps = ci->output_components;
  if (comps == 4 && !(e->row = malloc((size_t)w * 4))) return BEIT_ERR;
  while (ci->output_scanline < ci->output_height) {
    uint8_t *dst = img->data + (size_t)ci->output_scanline * w * img->c;
    JSAMPROW row = comps == 4 ? e->row : dst;
    jpeg_read_scanlines(ci, &row, 1);
    if (comps == 4) cmyk_to_rgb(e->row, dst, w, ci->saw_Adobe_marker);
  }
  return BEIT_OK;
}

static int jpg_decode_body(struct jpeg_decompress_struct *ci, jpg_err *e, const uint8_t *buf,
                           size_t size, const char *name, int min_side, beit_image *img) {
  if (setjmp(e->jb)) return beit_errorf("%s: corrupt JPEG: %s", name, e->msg);
  jpeg_create_decompress(ci);
  jpeg_mem_src(ci, buf, (unsigned long)size);
  jpeg_read_header(ci, TRUE);
  long long h = ci->image_height, w = ci->image_width;
  if (beit_image_check_pixels(name, h, w)) return BEIT_ERR;
  J_COLOR_SPACE cs = ci->jpeg_color_space;
  ci->out_color_space = cs == JCS_GRAYSCALE ? JCS_GRAYSCALE
                        : (cs == JCS_CMYK || cs == JCS_YCCK) ? JCS_CMYK : JCS_RGB;
  int f = reduce_factor(h, w, min_side);
  ci->scale_num = 1, ci->scale_denom = f >= 8 ? 8 : f >= 4 ? 4 : f >= 2 ? 2 : 1;  /* DCT scaling: 1/2, 1/4, 1/8 */
  jpeg_calc_output_dimensions(ci);
  /* a progressive file keeps every DCT coefficient (2 bytes each) until the last scan */
  double coefs = ci->progressive_mode ? 2.0 * h * w * ci->num_components : 0;
  if (decode_memory_check(name, h, w, (double)ci->output_height * ci->output_width * 4 + coefs)) return BEIT_ERR;
  jpeg_start_decompress(ci);
  int c = ci->output_components == 1 ? 1 : 3;
  if (beit_image_reserve(img, (int)ci->output_height, (int)ci->output_width, c)) return BEIT_ERR;
  if (jpg_read_pixels(ci, e, img)) return beit_errorf("%s: out of memory", name);
  jpeg_finish_decompress(ci);
  return BEIT_OK;
}

static int jpg_decode(const uint8_t *buf, size_t size, const char *name, int min_side, beit_image *img) {
  struct jpeg_decompress_struct ci;
  jpg_err e;
  memset(&ci, 0, sizeof ci);
  memset(&e, 0, sizeof e);
  ci.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = jpg_fail;
  e.pub.emit_message = jpg_emit;
  int rc = jpg_decode_body(&ci, &e, buf, size, name, min_side, img);
  jpeg_destroy_decompress(&ci);
  free(e.row);
  return rc;
}

/* ---- dispatch -------------------------------------------------------------- */
static int is_png(const uint8_t *b, size_t n) { return n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8); }
static int is_jpeg(const uint8_t *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

int beit_image_decode_scaled(const uint8_t *buf, size_t size, const char *name, int min_side, beit_image *img) {
  if (is_png(buf, size)) return png_decode(buf, size, name, min_side, img);
  if (is_jpeg(buf, size)) return jpg_decode(buf, size, name, min_side, img);
  return beit_errorf("%s: not a PNG or JPEG file (%zu bytes, unrecognised signature at offset 0)", name,
                     size);
}

int beit_image_decode(const uint8_t *buf, size_t size, const char *name, beit_image *img) {
  return beit_image_decode_scaled(buf, size, name, 0, img);
}

int beit_image_load_scaled(const char *path, int min_side, beit_image *img) {
  uint8_t *buf;
  size_t n;
  if (beit_read_file(path, &buf, &n)) return BEIT_ERR;
  int rc = beit_image_decode_scaled(buf, n, path, min_side, img);
  beit_free(buf);
  return rc;
}

int beit_image_load(const char *path, beit_image *img) { return beit_image_load_scaled(path, 0, img); }

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int png_probe(const uint8_t *hdr, size_t n, const char *path, int *h, int *w, int *c) {
  if (n < 33 || memcmp(hdr + 12, "IHDR", 4)) return beit_errorf("%s: PNG without IHDR at offset 12", path);
  *w = (int)be32(hdr + 16), *h = (int)be32(hdr + 20);
  int type = hdr[25];
  *c = (type == 0 || type == 4) ? 1 : 3;
  return beit_image_check_pixels(path, be32(hdr + 20), be32(hdr + 16));
}

static int jpg_probe_body(struct jpeg_decompress_struct *ci, jpg_err *e, FILE *f, const char *path,
                          int *h, int *w, int *c) {
  if (setjmp(e->jb)) return beit_errorf("%s: corrupt JPEG header: %s", path, e->msg);
  jpeg_create_decompress(ci);
  jpeg_stdio_src(ci, f);
  jpeg_read_header(ci, TRUE);
  *h = (int)ci->image_height, *w = (int)ci->image_width;
  *c = ci->jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
  return beit_image_check_pixels(path, ci->image_height, ci->image_width);
}

static int jpg_probe(FILE *f, const char *path, int *h, int *w, int *c) {
  struct jpeg_decompress_struct ci;
  jpg_err e;
  memset(&ci, 0, sizeof ci);
  memset(&e, 0, sizeof e);
  ci.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = jpg_fail;
  e.pub.emit_message = jpg_emit;
  rewind(f);
  int rc = jpg_probe_body(&ci, &e, f, path, h, w, c);
  jpeg_destroy_decompress(&ci);
  return rc;
}

int beit_image_probe(const char *path, int *h, int *w, int *c) {
  FILE *f = beit_fopen_read(path);
  if (!f) return BEIT_ERR;
  uint8_t hdr[33];
  size_t n = fread(hdr, 1, sizeof hdr, f);
  int rc = is_png(hdr, n)    ? png_probe(hdr, n, path, h, w, c)
           : is_jpeg(hdr, n) ? jpg_probe(f, path, h, w, c)
                             : beit_errorf("%s: not a PNG or JPEG file (unrecognised signature at offset 0)", path);
  fclose(f);
  return rc;
}

int beit_image_convert(beit_image *img, int channels) {
  if (img->c == channels) return BEIT_OK;
  size_t n = (size_t)img->h * img->w;
  if (channels == 1 && img->c == 3) {
    for (size_t i = 0; i < n; i++) {
      const uint8_t *p = img->data + 3 * i;
      img->data[i] = (uint8_t)((299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000);
    }
    img->c = 1;
    return BEIT_OK;
  }
  if (channels == 3 && img->c == 1) {
    if (beit_image_reserve(img, img->h, img->w, 3)) return BEIT_ERR;
    for (size_t i = n; i-- > 0;) memset(img->data + 3 * i, img->data[i], 3);
    return BEIT_OK;
  }
  return beit_errorf("cannot convert a %d-channel image to %d channels", img->c, channels);
}

/* ---- PNG encoding ---------------------------------------------------------- */
typedef struct {
  uint8_t *buf;
  size_t n, cap;
  jmp_buf jb;
  char msg[256];
} png_sink;

static void png_sink_fail(png_structp png, png_const_charp msg) {
  png_sink *s = png_get_error_ptr(png);
  snprintf(s->msg, sizeof s->msg, "%s", msg);
  longjmp(s->jb, 1);
}

static void png_sink_write(png_structp png, png_bytep data, size_t n) {
  png_sink *s = png_get_io_ptr(png);
  if (s->n + n > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 65536;
    while (cap < s->n + n) cap *= 2;
    uint8_t *p = realloc(s->buf, cap);
    if (!p) png_error(png, "out of memory");
    s->buf = p, s->cap = cap;
  }
  memcpy(s->buf + s->n, data, n);
  s->n += n;
}

static void png_sink_flush(png_structp png) { (void)png; }

static int png_encode_body(png_structp png, png_infop info, png_sink *s, const uint8_t *data, int h,
                           int w, int c) {
  if (setjmp(s->jb)) return BEIT_ERR;
  png_set_write_fn(png, s, png_sink_write, png_sink_flush);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(data + (size_t)y * w * c));
  png_write_end(png, NULL);
  return BEIT_OK;
}

int beit_png_save(const char *path, const uint8_t *data, int h, int w, int c) {
  if ((c != 1 && c != 3) || check_dims(path, h, w))
    return beit_errorf("%s: cannot save a %dx%dx%d image as PNG (want 1 or 3 channels)", path, w, h, c);
  png_sink s = {0};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, png_sink_fail, png_quiet);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  int rc = info ? png_encode_body(png, info, &s, data, h, w, c) : BEIT_ERR;
  png_destroy_write_struct(&png, info ? &info : NULL);
  if (rc) {
    free(s.buf);
    return beit_errorf("%s: PNG encoding failed: %s", path, s.msg[0] ? s.msg : "libpng init");
  }
  rc = beit_write_file_atomic(path, s.buf, s.n);
  free(s.buf);
  return rc;
}

/* ---- canvas ---------------------------------------------------------------- */
int beit_canvas_init(beit_canvas *cv, int w, int h, const uint8_t bg[3]) {
  memset(cv, 0, sizeof *cv);
  if (w <= 0 || h <= 0 || check_dims("canvas", h, w)) return BEIT_ERR;
  cv->rgb = beit_alloc((size_t)w * h * 3, "canvas");
  if (!cv->rgb) return BEIT_ERR;
  cv->w = w, cv->h = h;
  beit_canvas_fill(cv, 0, 0, w, h, bg);
  return BEIT_OK;
}

void beit_canvas_free(beit_canvas *cv) {
  beit_free(cv->rgb);
  memset(cv, 0, sizeof *cv);
}

int beit_canvas_save_png(const beit_canvas *cv, const char *path) {
  return beit_png_save(path, cv->rgb, cv->h, cv->w, 3);
}

/* Clips [x, x+w) x [y, y+h) to the canvas; returns 0 when nothing is left. */
static int clip(const beit_canvas *cv, int *x0, int *y0, int *x1, int *y1, int x, int y, int w, int h) {
  *x0 = x < 0 ? 0 : x, *y0 = y < 0 ? 0 : y;
  *x1 = x + w > cv->w ? cv->w : x + w, *y1 = y + h > cv->h ? cv->h : y + h;
  return *x0 < *x1 && *y0 < *y1;
}

/* Writes without reading: beit_canvas_init fills fresh (uninitialised) memory. */
void beit_canvas_fill(beit_canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3]) {
  int x0, y0, x1, y1;
  if (!clip(cv, &x0, &y0, &x1, &y1, x, y, w, h)) return;
  for (int yy = y0; yy < y1; yy++)
    for (int xx = x0; xx < x1; xx++) memcpy(cv->rgb + ((size_t)yy * cv->w + xx) * 3, rgb, 3);
}

void beit_canvas_tint(beit_canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3], float alpha) {
  int x0, y0, x1, y1;
  if (!clip(cv, &x0, &y0, &x1, &y1, x, y, w, h)) return;
  for (int yy = y0; yy < y1; yy++)
    for (int xx = x0; xx < x1; xx++) {
      uint8_t *p = cv->rgb + ((size_t)yy * cv->w + xx) * 3;
      for (int ch = 0; ch < 3; ch++) p[ch] = (uint8_t)(p[ch] + alpha * (rgb[ch] - p[ch]) + 0.5f);
    }
}

void beit_canvas_frame(beit_canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3]) {
  beit_canvas_fill(cv, x, y, w, 1, rgb);
  beit_canvas_fill(cv, x, y + h - 1, w, 1, rgb);
  beit_canvas_fill(cv, x, y, 1, h, rgb);
  beit_canvas_fill(cv, x + w - 1, y, 1, h, rgb);
}

static inline uint8_t to_byte(float v, float lo, float hi) {
  float t = (v - lo) / (hi - lo) * 255.0f + 0.5f;
  return t <= 0 ? 0 : t >= 255 ? 255 : (uint8_t)t;
}

void beit_canvas_blit_u8(beit_canvas *cv, int x, int y, int dw, int dh, const uint8_t *src, int sh,
                         int sw, int sc) {
  int x0, y0, x1, y1;
  if (!clip(cv, &x0, &y0, &x1, &y1, x, y, dw, dh)) return;
  for (int yy = y0; yy < y1; yy++) {
    int sy = (int)((long long)(yy - y) * sh / dh);
    for (int xx = x0; xx < x1; xx++) {
      int sx = (int)((long long)(xx - x) * sw / dw);
      const uint8_t *s = src + ((size_t)sy * sw + sx) * sc;
      uint8_t *p = cv->rgb + ((size_t)yy * cv->w + xx) * 3;
      for (int ch = 0; ch < 3; ch++) p[ch] = s[sc == 3 ? ch : 0];
    }
  }
}

void beit_canvas_blit_f32(beit_canvas *cv, int x, int y, int dw, int dh, const float *src, int sh,
                          int sw, int sc, float lo, float hi) {
  int x0, y0, x1, y1;
  if (!clip(cv, &x0, &y0, &x1, &y1, x, y, dw, dh)) return;
  size_t plane = (size_t)sh * sw;
  for (int yy = y0; yy < y1; yy++) {
    int sy = (int)((long long)(yy - y) * sh / dh);
    for (int xx = x0; xx < x1; xx++) {
      int sx = (int)((long long)(xx - x) * sw / dw);
      uint8_t *p = cv->rgb + ((size_t)yy * cv->w + xx) * 3;
      for (int ch = 0; ch < 3; ch++)
        p[ch] = to_byte(src[(sc == 3 ? ch : 0) * plane + (size_t)sy * sw + sx], lo, hi);
    }
  }
}

void beit_grid_size(const beit_grid *g, int *w, int *h) {
  *w = 2 * g->margin + g->cols * g->cell_w + (g->cols - 1) * g->pad;
  *h = 2 * g->margin + g->rows * g->cell_h + (g->rows - 1) * g->pad;
}

void beit_grid_cell(const beit_grid *g, int k, int *x, int *y) {
  *x = g->margin + (k % g->cols) * (g->cell_w + g->pad);
  *y = g->margin + (k / g->cols) * (g->cell_h + g->pad);
}
