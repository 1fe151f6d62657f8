/* test_data_fixtures.h - writers for the data tests' input files (IDX, gzip,
 * CIFAR records, JPEG, PNG) under $BEIT_TEST_FIXTURES; nothing is downloaded.
 * Header-only so each test program stays a single .c file. */
#ifndef BEIT_TEST_DATA_FIXTURES_H
#define BEIT_TEST_DATA_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <zlib.h>

#include "core/core.h"
#include "io/image.h"

/* $BEIT_TEST_FIXTURES/<sub> (default build/fixtures/<sub>), created. */
static inline const char *fx_dir(const char *sub) {
  static char buf[8][1024];
  static int next = 0;
  char *out = buf[next++ % 8];
  const char *root = getenv("BEIT_TEST_FIXTURES");
  snprintf(out, 1024, "%s/%s", root && *root ? root : "build/fixtures", sub);
  if (beit_mkdir_p(out)) { fprintf(stderr, "fixtures: %s\n", beit_last_error()); exit(1); }
  return out;
}

static inline void fx_path(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
}

static inline void fx_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n)) { fprintf(stderr, "fixtures: cannot write %s\n", path); exit(1); }
  fclose(f);
}

/* gzip (not zlib) stream of data; caller frees. */
static inline uint8_t *fx_gzip(const uint8_t *data, size_t n, size_t *out_n) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  size_t cap = deflateBound(&zs, n) + 64;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)data, zs.avail_in = (uInt)n;
  zs.next_out = out, zs.avail_out = (uInt)cap;
  deflate(&zs, Z_FINISH);
  *out_n = cap - zs.avail_out;
  deflateEnd(&zs);
  return out;
}

static inline void fx_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* IDX images [n, rows, cols] with pixel (i, y, x) = (i*7 + y*3 + x) & 255. */
static inline uint8_t *fx_idx_images(int n, int rows, int cols, size_t *size) {
  *size = 16 + (size_t)n * rows * cols;
  uint8_t *b = malloc(*size);
  b[0] = b[1] = 0, b[2] = 8, b[3] = 3;
  fx_put32(b + 4, (uint32_t)n), fx_put32(b + 8, (uint32_t)rows), fx_put32(b + 12, (uint32_t)cols);
  for (int i = 0; i < n; i++)
    for (int p = 0; p < rows * cols; p++) b[16 + (size_t)i * rows * cols + p] = (uint8_t)((i * 7 + (p / cols) * 3 + p % cols) & 255);
  return b;
}

/* IDX labels: label i = i % classes. */
static inline uint8_t *fx_idx_labels(int n, int classes, size_t *size) {
  *size = 8 + (size_t)n;
  uint8_t *b = malloc(*size);
  b[0] = b[1] = 0, b[2] = 8, b[3] = 1;
  fx_put32(b + 4, (uint32_t)n);
  for (int i = 0; i < n; i++) b[8 + i] = (uint8_t)(i % classes);
  return b;
}

/* Writes data to path, or its gzip to path.gz when gz. */
static inline void fx_write_maybe_gz(const char *path, const uint8_t *data, size_t n, int gz) {
  if (!gz) { fx_write(path, data, n); return; }
  char p[4096];
  snprintf(p, sizeof p, "%s.gz", path);
  size_t zn;
  uint8_t *z = fx_gzip(data, n, &zn);
  fx_write(p, z, zn);
  free(z);
}

/* A complete IDX dataset directory (train and t10k). */
static inline void fx_idx_dir(const char *dir, int ntrain, int ntest, int rows, int cols, int gz) {
  char p[2048];
  size_t n;
  const char *split[2] = {"train", "t10k"};
  for (int s = 0; s < 2; s++) {
    int count = s ? ntest : ntrain;
    uint8_t *img = fx_idx_images(count, rows, cols, &n);
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, split[s]);
    fx_write_maybe_gz(p, img, n, gz);
    free(img);
    uint8_t *lab = fx_idx_labels(count, 10, &n);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, split[s]);
    fx_write_maybe_gz(p, lab, n, gz);
    free(lab);
  }
}

/* Synthetic picture: R = x gradient, G = y gradient, B = checker. */
static inline uint8_t *fx_picture(int h, int w, int c, int seed) {
  uint8_t *p = malloc((size_t)h * w * c);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int ch = 0; ch < c; ch++) {
        int v = ch == 0 ? x * 255 / (w > 1 ? w - 1 : 1) : ch == 1 ? y * 255 / (h > 1 ? h - 1 : 1) : (((x / 4 + y / 4 + seed) & 1) ? 200 : 40);
        p[((size_t)y * w + x) * c + ch] = (uint8_t)v;
      }
  return p;
}

static inline void fx_jpeg(const char *path, const uint8_t *px, int h, int w, int c, int quality) {
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr err;
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  unsigned char *buf = NULL;
  unsigned long n = 0;
  jpeg_mem_dest(&ci, &buf, &n);
  ci.image_width = (JDIMENSION)w, ci.image_height = (JDIMENSION)h, ci.input_components = c;
  ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, quality, TRUE);
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * c);
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  fx_write(path, buf, n);
  free(buf);
}

/* First n bytes of src copied to dst (a truncated file). */
static inline void fx_truncate_copy(const char *src, const char *dst, long keep) {
  uint8_t *b;
  size_t n;
  if (beit_read_file(src, &b, &n)) { fprintf(stderr, "fixtures: %s\n", beit_last_error()); exit(1); }
  fx_write(dst, b, keep < 0 ? n + keep : (size_t)keep);
  beit_free(b);
}

#endif
