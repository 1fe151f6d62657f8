/* test_image.c - PNG/JPEG decoding (bit depths, palette, alpha, gray, CMYK),
 * refusal of corrupt, truncated and oversized files with the path in the
 * message, PNG save/load round trips and the canvas helpers. */
#include <png.h>
#include <zlib.h>

#include "io/image.h"
#include "test.h"
#include "test_data_fixtures.h"

static const char *DIR_;

static const char *fx(const char *name) {
  static char buf[4][2048];
  static int k = 0;
  char *p = buf[k++ % 4];
  fx_path(p, 2048, DIR_, name);
  return p;
}

/* Writes a PNG through libpng with any colour type / depth (rows given raw). */
static void write_png_raw(const char *path, int w, int h, int depth, int type, int interlace, const uint8_t *rows,
                          size_t stride, const png_color *pal, int npal, const uint8_t *trns, int ntrns) {
  FILE *f = fopen(path, "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (pal) png_set_PLTE(png, info, pal, npal);
  if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
  png_write_info(png, info);
  int passes = png_set_interlace_handling(png);
  for (int p = 0; p < passes; p++)
    for (int y = 0; y < h; y++) png_write_row(png, rows + (size_t)y * stride);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(f);
}

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n) { return memcmp(a, b, n) == 0; }

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    if (d > m) m = d;
  }
  return m;
}

static void test_png_round_trip(void) {
  int sizes[3][2] = {{1, 1}, {7, 13}, {64, 48}};
  for (int s = 0; s < 3; s++)
    for (int c = 1; c <= 3; c += 2) {
      int h = sizes[s][0], w = sizes[s][1];
      uint8_t *px = fx_picture(h, w, c, s);
      beit_image img = {0};
      int ok = beit_png_save(fx("rt.png"), px, h, w, c) == BEIT_OK && beit_image_load(fx("rt.png"), &img) == BEIT_OK;
      CHECK_TRUE(ok && img.h == h && img.w == w && img.c == c && same_bytes(img.data, px, (size_t)h * w * c),
                 "PNG round trip %dx%d c=%d is bit exact", w, h, c);
      beit_image_free(&img);
      free(px);
    }
}

static void test_png_variants(void) {
  beit_image img = {0};
  /* 16-bit RGBA: v16 = v8 * 257 scales back to v8 exactly; alpha dropped */
  uint8_t rows16[2 * 3 * 8];
  uint8_t expect[2 * 3 * 3];
  for (int p = 0; p < 6; p++)
    for (int ch = 0; ch < 4; ch++) {
      int v8 = ch == 3 ? 17 : (p * 40 + ch * 13) & 255, v16 = v8 * 257;
      rows16[p * 8 + ch * 2] = (uint8_t)(v16 >> 8), rows16[p * 8 + ch * 2 + 1] = (uint8_t)v16;
      if (ch < 3) expect[p * 3 + ch] = (uint8_t)v8;
    }
  write_png_raw(fx("rgba16.png"), 3, 2, 16, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE, rows16, 24, NULL, 0, NULL, 0);
  int ok = beit_image_load(fx("rgba16.png"), &img) == BEIT_OK;
  CHECK_TRUE(ok && img.c == 3 && same_bytes(img.data, expect, 18), "16-bit RGBA PNG -> 8-bit RGB, alpha dropped");

  /* palette with transparency -> RGB */
  png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
  uint8_t trns[3] = {0, 128, 255}, idx[4] = {0, 1, 2, 1};
  write_png_raw(fx("pal.png"), 4, 1, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, 4, pal, 3, trns, 3);
  ok = beit_image_load(fx("pal.png"), &img) == BEIT_OK;
  uint8_t pe[12] = {255, 0, 0, 0, 255, 0, 10, 20, 30, 0, 255, 0};
  CHECK_TRUE(ok && img.c == 3 && img.w == 4 && same_bytes(img.data, pe, 12), "palette PNG with tRNS -> RGB");

  /* 1-bit gray, interlaced */
  uint8_t bits[2] = {0xA0, 0x50}; /* rows: 1010.... and 0101.... (width 4) */
  write_png_raw(fx("gray1.png"), 4, 2, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, bits, 1, NULL, 0, NULL, 0);
  ok = beit_image_load(fx("gray1.png"), &img) == BEIT_OK;
  uint8_t ge[8] = {255, 0, 255, 0, 0, 255, 0, 255};
  CHECK_TRUE(ok && img.c == 1 && same_bytes(img.data, ge, 8), "1-bit interlaced gray PNG -> 8-bit gray");

  /* gray + alpha -> gray */
  uint8_t ga[4] = {7, 99, 200, 0};
  write_png_raw(fx("ga.png"), 2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, 4, NULL, 0, NULL, 0);
  ok = beit_image_load(fx("ga.png"), &img) == BEIT_OK;
  CHECK_TRUE(ok && img.c == 1 && img.data[0] == 7 && img.data[1] == 200, "gray+alpha PNG -> gray");
  beit_image_free(&img);
}

static void test_jpeg(void) {
  beit_image img = {0};
  int h = 37, w = 53;
  uint8_t *rgb = fx_picture(h, w, 3, 0);
  for (size_t i = 0; i < (size_t)h * w; i++) rgb[3 * i + 2] = 90; /* smooth content */
  fx_jpeg(fx("rgb.jpg"), rgb, h, w, 3, 95);
  int ok = beit_image_load(fx("rgb.jpg"), &img) == BEIT_OK;
  int d = ok ? max_diff(img.data, rgb, (size_t)h * w * 3) : 999;
  CHECK_TRUE(ok && img.h == h && img.w == w && img.c == 3 && d <= 16, "RGB JPEG q95 decodes (max |diff| %d <= 16)", d);
  uint8_t *gray = fx_picture(h, w, 1, 0);
  fx_jpeg(fx("gray.jpg"), gray, h, w, 1, 95);
  ok = beit_image_load(fx("gray.jpg"), &img) == BEIT_OK;
  d = ok ? max_diff(img.data, gray, (size_t)h * w) : 999;
  CHECK_TRUE(ok && img.c == 1 && d <= 8, "gray JPEG stays 1 channel (max |diff| %d <= 8)", d);
  int ph, pw, pc;
  CHECK_TRUE(beit_image_probe(fx("rgb.jpg"), &ph, &pw, &pc) == BEIT_OK && ph == h && pw == w && pc == 3,
             "probe JPEG header: %dx%d c=%d", pw, ph, pc);
  CHECK_TRUE(beit_image_probe(fx("ga.png"), &ph, &pw, &pc) == BEIT_OK && ph == 1 && pw == 2 && pc == 1,
             "probe PNG header: %dx%d c=%d", pw, ph, pc);
  free(rgb), free(gray);
  beit_image_free(&img);
}

/* Adobe CMYK JPEGs store inverted ink: (C,M,Y,K) = (255,128,0,255) reads as RGB (255,128,0). */
static void test_jpeg_cmyk(void) {
  int h = 16, w = 16;
  uint8_t *px = malloc((size_t)h * w * 4);
  for (int i = 0; i < h * w; i++) px[4 * i] = 255, px[4 * i + 1] = 128, px[4 * i + 2] = 0, px[4 * i + 3] = 255;
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr err;
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  unsigned char *buf = NULL;
  unsigned long n = 0;
  jpeg_mem_dest(&ci, &buf, &n);
  ci.image_width = w, ci.image_height = h, ci.input_components = 4, ci.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 98, TRUE);
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = px + (size_t)ci.next_scanline * w * 4;
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  beit_image img = {0};
  int ok = beit_image_decode(buf, n, "cmyk.jpg", &img) == BEIT_OK;
  CHECK_TRUE(ok && img.c == 3 && abs(img.data[0] - 255) <= 3 && abs(img.data[1] - 128) <= 3 && img.data[2] <= 3,
             "CMYK JPEG -> RGB (%d,%d,%d), expected ~(255,128,0)", ok ? img.data[0] : -1, ok ? img.data[1] : -1,
             ok ? img.data[2] : -1);
  beit_image_free(&img);
  free(buf), free(px);
}

static void expect_refused(const char *path, const char *what, const char *needle) {
  beit_image img = {0};
  int rc = beit_image_load(path, &img);
  const char *msg = beit_last_error();
  CHECK_TRUE(rc == BEIT_ERR && strstr(msg, path) && (!needle || strstr(msg, needle)), "%s refused: %s", what,
             rc ? msg : "(accepted!)");
  beit_image_free(&img);
}

/* A PNG that is only a signature, an IHDR of w x h and an empty IDAT. */
static void write_png_header_only(const char *path, uint32_t w, uint32_t h) {
  uint8_t b[8 + 25 + 12];
  memcpy(b, "\x89PNG\r\n\x1a\n", 8);
  fx_put32(b + 8, 13);
  memcpy(b + 12, "IHDR", 4);
  fx_put32(b + 16, w), fx_put32(b + 20, h);
  b[24] = 8, b[25] = 2, b[26] = b[27] = b[28] = 0;
  fx_put32(b + 29, (uint32_t)crc32(0, b + 12, 17));
  fx_put32(b + 33, 0);
  memcpy(b + 37, "IDAT", 4);
  fx_put32(b + 41, (uint32_t)crc32(0, b + 37, 4));
  fx_write(path, b, sizeof b);
}

static void test_refusals(void) {
  fx_truncate_copy(fx("rgb.jpg"), fx("trunc.jpg"), 300);
  expect_refused(fx("trunc.jpg"), "truncated JPEG", "corrupt JPEG");
  fx_truncate_copy(fx("rt.png"), fx("trunc.png"), 60);
  expect_refused(fx("trunc.png"), "truncated PNG", "truncated");
  /* flip one byte inside the IDAT payload: CRC mismatch */
  uint8_t *b;
  size_t n;
  beit_read_file(fx("rt.png"), &b, &n);
  b[n / 2] ^= 0x55;
  fx_write(fx("crc.png"), b, n);
  beit_free(b);
  expect_refused(fx("crc.png"), "PNG with a damaged byte", "corrupt PNG");
  fx_write(fx("junk.png"), "hello world, not an image", 25);
  expect_refused(fx("junk.png"), "text file named .png", "not a PNG or JPEG");
  fx_write(fx("empty.jpg"), "", 0);
  expect_refused(fx("empty.jpg"), "empty file", "not a PNG or JPEG");
  expect_refused(fx("missing.png"), "missing file", "cannot open");
  write_png_header_only(fx("huge.png"), 20000, 20000);
  expect_refused(fx("huge.png"), "20000x20000 PNG", "expected 1..16384");
  /* a real 8x8 JPEG whose SOF0 claims 20000 x 20000 */
  uint8_t *px = fx_picture(8, 8, 3, 0);
  fx_jpeg(fx("small.jpg"), px, 8, 8, 3, 90);
  free(px);
  beit_read_file(fx("small.jpg"), &b, &n);
  for (size_t i = 2; i + 9 < n; i++)
    if (b[i] == 0xFF && b[i + 1] == 0xC0) {
      b[i + 5] = 0x4E, b[i + 6] = 0x20, b[i + 7] = 0x4E, b[i + 8] = 0x20;
      break;
    }
  fx_write(fx("huge.jpg"), b, n);
  beit_free(b);
  expect_refused(fx("huge.jpg"), "JPEG claiming 20000x20000", "expected 1..16384");
  uint8_t one = 0;
  int rc = beit_png_save("/nonexistent-dir/x.png", &one, 1, 1, 1);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "/nonexistent-dir/x.png"), "save into a missing folder: %s",
             beit_last_error());
}

static void test_convert(void) {
  beit_image img = {0};
  beit_image_reserve(&img, 1, 2, 3);
  uint8_t px[6] = {255, 0, 0, 10, 10, 10};
  memcpy(img.data, px, 6);
  beit_image_convert(&img, 1);
  CHECK_TRUE(img.c == 1 && img.data[0] == 76 && img.data[1] == 10, "RGB -> gray uses 0.299/0.587/0.114 (%d, %d)",
             img.data[0], img.data[1]);
  beit_image_convert(&img, 3);
  CHECK_TRUE(img.c == 3 && img.data[0] == 76 && img.data[2] == 76 && img.data[3] == 10 && img.data[5] == 10,
             "gray -> RGB replicates");
  beit_image_free(&img);
}

static void test_canvas(void) {
  beit_canvas cv;
  const uint8_t white[3] = {255, 255, 255}, red[3] = {255, 0, 0};
  beit_canvas_init(&cv, 10, 8, white);
  beit_canvas_fill(&cv, 8, 6, 5, 5, red); /* clipped at the corner */
  CHECK_TRUE(cv.rgb[(7 * 10 + 9) * 3 + 1] == 0 && cv.rgb[(5 * 10 + 9) * 3 + 1] == 255, "fill clips to the canvas");
  beit_canvas_tint(&cv, 0, 0, 1, 1, (const uint8_t[3]){0, 0, 0}, 0.5f);
  CHECK_TRUE(cv.rgb[0] == 128, "tint 50%% towards black: 255 -> %d", cv.rgb[0]);
  uint8_t src[4] = {0, 50, 100, 150}; /* 2x2 gray */
  beit_canvas_blit_u8(&cv, 2, 2, 4, 4, src, 2, 2, 1);
  int ok = 1;
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++) ok &= cv.rgb[((2 + y) * 10 + 2 + x) * 3 + 2] == src[(y / 2) * 2 + x / 2];
  CHECK_TRUE(ok, "blit_u8 2x2 -> 4x4 is nearest-neighbour");
  float f[2 * 1 * 3] = {0, 1, 0.5f, 0.5f, -1, 2}; /* CHW, 1x2 RGB */
  beit_canvas_blit_f32(&cv, 0, 7, 2, 1, f, 1, 2, 3, 0.0f, 1.0f);
  const uint8_t *p = cv.rgb + (7 * 10) * 3;
  CHECK_TRUE(p[0] == 0 && p[1] == 128 && p[2] == 0 && p[3] == 255 && p[4] == 128 && p[5] == 255,
             "blit_f32 maps [0,1] to 0..255 and clamps");
  beit_canvas_blit_u8(&cv, -3, -3, 4, 4, src, 2, 2, 1); /* mostly outside: must not crash */
  beit_grid g = {2, 3, 10, 8, 2, 4};
  int w, h, x, y;
  beit_grid_size(&g, &w, &h);
  beit_grid_cell(&g, 4, &x, &y);
  CHECK_TRUE(w == 8 + 30 + 4 && h == 8 + 16 + 2 && x == 4 + 12 && y == 4 + 10, "grid: %dx%d, cell 4 at (%d,%d)", w, h,
             x, y);
  beit_image img = {0};
  ok = beit_canvas_save_png(&cv, fx("canvas.png")) == BEIT_OK && beit_image_load(fx("canvas.png"), &img) == BEIT_OK;
  CHECK_TRUE(ok && img.c == 3 && same_bytes(img.data, cv.rgb, 10 * 8 * 3), "canvas saves as an identical PNG");
  beit_image_free(&img);
  beit_canvas_free(&cv);
}

int main(void) {
  TEST_BEGIN("test_image");
  DIR_ = fx_dir("image");
  test_png_round_trip();
  test_png_variants();
  test_jpeg();
  test_jpeg_cmyk();
  test_refusals();
  test_convert();
  test_canvas();
  return TEST_END();
}
