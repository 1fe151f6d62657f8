/* image.h - pictures in and out: PNG/JPEG decoding into uint8 HWC (1 or 3
 * channels), atomic PNG saving, and a small RGB canvas (fill, tint, nearest-
 * neighbour blits of uint8/float images, grid layout) that plots build on. */
#ifndef BEIT_IMAGE_H
#define BEIT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Decoding refuses anything larger than this per side or in total. */
#define BEIT_IMAGE_MAX_SIDE 16384
#define BEIT_IMAGE_MAX_PIXELS (256ll * 1024 * 1024)
/* The default of the decoding limit below (the CLI's --max-image-pixels). */
#define BEIT_IMAGE_DEFAULT_MAX_PIXELS 64000000ll

/* Decompression bombs: every decoder (PNG, JPEG, probe, IDX) refuses an image whose
 * header declares more than this many pixels (width x height), before allocating
 * anything, with "PATH: image is WxH = N Mpx, over the limit of M Mpx". Clamped to
 * 1..BEIT_IMAGE_MAX_PIXELS; process-wide, so set it before decoding starts. */
void beit_image_set_max_pixels(long long n);
long long beit_image_max_pixels(void);
/* BEIT_ERR with that message when h x w is over the limit (or outside the hard ones). */
int beit_image_check_pixels(const char *name, long long h, long long w);

/* uint8 image, row-major HWC. `cap` is the allocated byte count so that a
 * decoder can reuse the buffer; start from a zeroed struct. */
typedef struct {
  int h, w, c;
  uint8_t *data;
  size_t cap;
} beit_image;

/* Makes room for h*w*c bytes (reusing the buffer when large enough). */
int beit_image_reserve(beit_image *img, int h, int w, int c);
void beit_image_free(beit_image *img);

/* Decodes a PNG or JPEG (detected from its first bytes). Palette, 16-bit,
 * low-bit gray are expanded/reduced to 8 bits; alpha is dropped (like PIL's
 * convert("RGB")); CMYK/YCCK JPEGs are converted to RGB. Corrupt or truncated
 * files are refused with a message naming `path`. */
int beit_image_load(const char *path, beit_image *img);
int beit_image_decode(const uint8_t *buf, size_t size, const char *name, beit_image *img);
/* The same, for a caller that will resize the shorter side to min_side (the eval
 * transform): a large image may come back shrunk by an integer factor, its shorter
 * side still >= 2 * min_side, and is never held at full size. JPEG: libjpeg's DCT
 * scaling (1/2, 1/4, 1/8); non-interlaced PNG: decoded row by row into box averages.
 * min_side <= 0: full size, as beit_image_load. Decoding is under the memory check
 * of beit_memory_check ("PATH: decoding a WxH image needs X GiB, Y GiB available"). */
int beit_image_load_scaled(const char *path, int min_side, beit_image *img);
int beit_image_decode_scaled(const uint8_t *buf, size_t size, const char *name, int min_side, beit_image *img);
/* Reads only the header: size and the channel count beit_image_load would give. */
int beit_image_probe(const char *path, int *h, int *w, int *c);
/* Converts in place to 1 (ITU-R 601 luma) or 3 (gray replicated) channels. */
int beit_image_convert(beit_image *img, int channels);

/* Writes a gray (c=1) or RGB (c=3) uint8 PNG atomically (tmp + rename). */
int beit_png_save(const char *path, const uint8_t *data, int h, int w, int c);

/* ---- canvas ---------------------------------------------------------------- */
typedef struct {
  int w, h;
  uint8_t *rgb; /* h*w*3 */
} beit_canvas;

int beit_canvas_init(beit_canvas *cv, int w, int h, const uint8_t bg[3]);
void beit_canvas_free(beit_canvas *cv);
int beit_canvas_save_png(const beit_canvas *cv, const char *path);
/* Rectangles are clipped to the canvas. */
void beit_canvas_fill(beit_canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Blends the rectangle towards `rgb`: p = (1-alpha) p + alpha rgb. */
void beit_canvas_tint(beit_canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3], float alpha);
/* One-pixel outline of a rectangle. */
void beit_canvas_frame(beit_canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Draws a uint8 HWC image (c = 1 or 3) into the dw x dh rectangle at (x, y),
 * nearest-neighbour scaled. */
void beit_canvas_blit_u8(beit_canvas *cv, int x, int y, int dw, int dh, const uint8_t *src, int sh,
                         int sw, int sc);
/* Same for a float CHW image (c = 1 or 3): values in [lo, hi] map to 0..255. */
void beit_canvas_blit_f32(beit_canvas *cv, int x, int y, int dw, int dh, const float *src, int sh,
                          int sw, int sc, float lo, float hi);

/* Grid of equal cells: margin around, pad between cells. */
typedef struct {
  int rows, cols, cell_w, cell_h, pad, margin;
} beit_grid;
void beit_grid_size(const beit_grid *g, int *w, int *h);
/* Top-left corner of cell number `k` (row-major). */
void beit_grid_cell(const beit_grid *g, int k, int *x, int *y);

#endif
