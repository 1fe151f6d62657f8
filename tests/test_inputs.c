/* test_inputs.c - input files nobody should trust (issue 19, items 5 and 6). A FIFO,
 * directory or device where a file is expected is refused at once by every reader
 * (checkpoint, image, tokenizer, convert --in, config.json, IDX, CIFAR, a run's log),
 * each command run under a timeout so that a hang fails instead of blocking. Decompression
 * bombs are refused by --max-image-pixels or decoded in bounded memory (the child's peak
 * RSS from wait4): PNG row by row, JPEG with DCT scaling, IDX inflated to exactly the
 * size its header declares, after checking that size against the file and free memory. */
#include <png.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <zlib.h>

#include "child.h"
#include "model/convert.h"
#include "model/beit.h"
#include "test.h"
#include "test_data_fixtures.h"

static const char *DIR_;
static char g_cls[1200], g_img[1200], g_tiny[1000];

static const char *at(const char *name) {
  static char buf[8][1200];
  static int k = 0;
  char *p = buf[k++ % 8];
  fx_path(p, 1200, DIR_, name);
  return p;
}

typedef struct {
  int rc;          /* exit code, -signal, or -SIGKILL after the timeout */
  double secs;
  double rss_mib;  /* the child's peak resident set */
  char *err;       /* its stderr */
} result;

/* Runs beit with args, killed after timeout_s; stderr captured. */
static result run(char *const args[], const child_opts *o, double timeout_s) {
  char err[1300];
  TEST_PATHF(err, "%s/run.err", DIR_);
  child_opts co = o ? *o : (child_opts){0};
  co.err_path = err;
  result r = {0};
  double t0 = beit_now();
  pid_t pid = child_start(args, &co);
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(pid, &status, WNOHANG, &ru) == 0) {
    if (beit_now() - t0 > timeout_s) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      break;
    }
    child_sleep_ms(5);
  }
  r.rc = child_status(status);
  r.secs = beit_now() - t0;
  r.rss_mib = ru.ru_maxrss / 1024.0;
  r.err = test_keep(slurp(err));
  return r;
}

/* The one "beit ..." line of stderr when there is exactly one, else NULL. */
static const char *error_line(const char *err) {
  const char *found = NULL;
  for (const char *p = err; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
    if (strncmp(p, "beit ", 5)) continue;
    if (found) return NULL;
    found = p;
  }
  return found;
}

static int make_fifo(const char *path) {
  unlink(path);
  return mkfifo(path, 0600);
}

/* ---- fixtures ---------------------------------------------------------------- */
static void make_classifier(void) {
  beit_config c = {.image_size = 16, .channels = 3, .patch_size = 4, .num_classes = 10, .use_mean_pooling = 1};
  beit_config_preset(&c, "micro");
  beit_model m;
  BEIT_CHECK(beit_model_init(&m, &c) == BEIT_OK);
  beit_model_init_weights(&m, 3, 1.0f);
  TEST_PATHF(g_cls, "%s", at("cls.safetensors"));
  CHECK_TRUE(beit_checkpoint_export(&m, NULL, BEIT_SCHEME_BEIT, g_cls) == BEIT_OK, "a micro classifier: %s", g_cls);
  CHECK_TRUE(beit_checkpoint_export(&m, NULL, BEIT_SCHEME_HF, at("hf")) == BEIT_OK, "the same in the Hugging Face layout");
  beit_model_free(&m);
  uint8_t *px = fx_picture(16, 16, 3, 1);
  TEST_PATHF(g_img, "%s", at("photo.png"));
  beit_png_save(g_img, px, 16, 16, 3);
  free(px);
}

/* ---- 5. non-regular files ---------------------------------------------------------- */
static void expect_refused(const char *what, char *const args[], const char *path, const char *kind) {
  result r = run(args, NULL, 10);
  const char *line = error_line(r.err);
  int ok = r.rc == 1 && r.secs < 5 && line && strstr(line, path) && strstr(line, "not a regular file") &&
           strstr(line, kind);
  CHECK_TRUE(ok, "%s: exit %d after %.2f s: %.*s", what, r.rc, r.secs,
             line ? (int)strcspn(line, "\n") : 200, line ? line : r.err);
}

static void test_non_regular(void) {
  printf("a FIFO (directory, device) where a file is expected: exit 1 at once, one line naming it\n");
  char *bin = (char *)child_beit_bin();
  char fifo[1200];
  TEST_PATHF(fifo, "%s", at("in.fifo"));
  CHECK_TRUE(make_fifo(fifo) == 0, "mkfifo %s", fifo);
  char *a1[] = {bin, "predict", "--checkpoint", fifo, g_img, NULL};
  expect_refused("predict --checkpoint FIFO", a1, fifo, "a FIFO");
  char *a2[] = {bin, "predict", "--checkpoint", g_cls, fifo, NULL};
  expect_refused("predict --checkpoint CLS FIFO (the image)", a2, fifo, "a FIFO");
  char data[1300];
  TEST_PATHF(data, "mnist:%s", g_tiny);
  char *a3[] = {bin, "tokenizer", "encode", "--tokenizer", fifo, "--data", data, "--out", (char *)at("t.bin"), NULL};
  expect_refused("tokenizer encode --tokenizer FIFO", a3, fifo, "a FIFO");
  char *a4[] = {bin, "convert", "--in", fifo, "--out", (char *)at("conv.safetensors"), NULL};
  expect_refused("convert --in FIFO", a4, fifo, "a FIFO");
  char *a5[] = {bin, "eval", "--checkpoint", fifo, "--data", data, NULL};
  expect_refused("eval --checkpoint FIFO", a5, fifo, "a FIFO");

  /* files found inside folders: config.json of a hub folder, IDX, CIFAR, a run's log */
  char cfg[1200];
  TEST_PATHF(cfg, "%s", at("hf/config.json"));
  CHECK_TRUE(make_fifo(cfg) == 0, "config.json of the hub folder replaced by a FIFO");
  char hf[1200];
  TEST_PATHF(hf, "%s", at("hf"));
  char *a6[] = {bin, "predict", "--checkpoint", hf, g_img, NULL};
  expect_refused("predict --checkpoint HUB-FOLDER (config.json a FIFO)", a6, cfg, "a FIFO");
  const char *idx = fx_dir("inputs/idx-fifo");
  char ipath[1300], ispec[1300];
  TEST_PATHF(ipath, "%s/train-images-idx3-ubyte", idx);
  TEST_PATHF(ispec, "mnist:%s", idx);
  unlink(ipath);  /* a FIFO of the last run would block the writer */
  fx_idx_dir(idx, 4, 4, 5, 5, 0);
  CHECK_TRUE(make_fifo(ipath) == 0, "IDX images file replaced by a FIFO");
  char *a7[] = {bin, "data", "inspect", "--data", ispec, NULL};
  expect_refused("data inspect --data mnist:DIR (images a FIFO)", a7, ipath, "a FIFO");
  const char *cifar = fx_dir("inputs/cifar-fifo");
  char cpath[1300], cspec[1300];
  TEST_PATHF(cpath, "%s/test_batch.bin", cifar);
  TEST_PATHF(cspec, "cifar10:%s", cifar);
  CHECK_TRUE(make_fifo(cpath) == 0, "CIFAR test batch as a FIFO");
  char *a8[] = {bin, "data", "inspect", "--data", cspec, "--split", "test", NULL};
  expect_refused("data inspect --data cifar10:DIR (test_batch.bin a FIFO)", a8, cpath, "a FIFO");
  const char *run_dir = fx_dir("inputs/run-fifo");
  char log[1300];
  TEST_PATHF(log, "%s/log.jsonl", run_dir);
  CHECK_TRUE(make_fifo(log) == 0, "a run folder whose log.jsonl is a FIFO");
  char *a9[] = {bin, "plot", "--out", (char *)at("plots"), (char *)run_dir, NULL};
  result r = run(a9, NULL, 10);
  CHECK_TRUE(r.rc == 1 && r.secs < 5 && strstr(r.err, "not a regular file"), "plot RUN (log.jsonl a FIFO): exit %d after %.2f s: %.*s",
             r.rc, r.secs, (int)strcspn(r.err, "\n"), r.err);

  /* the other kinds that are not regular files */
  char *a10[] = {bin, "predict", "--checkpoint", g_cls, (char *)DIR_, NULL};
  expect_refused("predict --checkpoint CLS DIR (a directory as the image)", a10, DIR_, "a directory");
  char *a11[] = {bin, "predict", "--checkpoint", "/dev/zero", g_img, NULL};
  expect_refused("predict --checkpoint /dev/zero", a11, "/dev/zero", "a character device");
}

/* ---- 6. decompression bombs: images ------------------------------------------------- */
static void put_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
  uint8_t len[4], crc[4];
  fx_put32(len, n);
  uLong c = crc32(crc32(0, (const Bytef *)type, 4), data, n);
  fx_put32(crc, (uint32_t)c);
  fwrite(len, 1, 4, f), fwrite(type, 1, 4, f), fwrite(data, 1, n, f), fwrite(crc, 1, 4, f);
}

/* A side x side gray PNG of broad bands (a few hundred KB for 256 Mpx), deflated row by
 * row so that the test itself never holds the image. Kept between runs. */
static const char *bomb_png(int side) {
  static char path[1300];
  TEST_PATHF(path, "%s/bomb-%d.png", DIR_, side);
  if (file_exists(path)) return path;
  char tmp[1400];
  TEST_PATHF(tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
  uint8_t ihdr[13] = {0};
  fx_put32(ihdr, (uint32_t)side), fx_put32(ihdr + 4, (uint32_t)side);
  ihdr[8] = 8;  /* 8-bit gray, no interlace */
  put_chunk(f, "IHDR", ihdr, 13);
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit(&zs, 9);
  uint8_t *row = malloc((size_t)side + 1), *out = malloc(1 << 20);
  for (int y = 0; y <= side; y++) {
    for (int x = 0; x < side; x++) row[1 + x] = (uint8_t)(((x / 1024 + y / 1024) & 1) ? 200 : 30);
    row[0] = 0;
    zs.next_in = row, zs.avail_in = y < side ? (uInt)side + 1 : 0;
    do {
      zs.next_out = out, zs.avail_out = 1 << 20;
      deflate(&zs, y < side ? Z_NO_FLUSH : Z_FINISH);
      if ((1 << 20) - zs.avail_out) put_chunk(f, "IDAT", out, (1 << 20) - zs.avail_out);
    } while (zs.avail_out == 0);
  }
  deflateEnd(&zs);
  put_chunk(f, "IEND", (const uint8_t *)"", 0);
  fclose(f);
  free(row), free(out);
  rename(tmp, path);
  return path;
}

/* A w x h RGB JPEG of smooth gradients, encoded scanline by scanline. */
static const char *big_jpeg(int w, int h) {
  static char path[1300];
  TEST_PATHF(path, "%s/big-%dx%d.jpg", DIR_, w, h);
  if (file_exists(path)) return path;
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr err;
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  FILE *f = fopen(path, "wb");
  jpeg_stdio_dest(&ci, f);
  ci.image_width = (JDIMENSION)w, ci.image_height = (JDIMENSION)h, ci.input_components = 3, ci.in_color_space = JCS_RGB;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 75, TRUE);
  jpeg_start_compress(&ci, TRUE);
  uint8_t *row = malloc((size_t)w * 3);
  while (ci.next_scanline < ci.image_height) {
    int y = (int)ci.next_scanline;
    for (int x = 0; x < w; x++) row[3 * x] = (uint8_t)(x * 255 / w), row[3 * x + 1] = (uint8_t)(y * 255 / h), row[3 * x + 2] = 90;
    JSAMPROW r = row;
    jpeg_write_scanlines(&ci, &r, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  fclose(f);
  free(row);
  return path;
}

static void test_image_bombs(void) {
  printf("decompression bombs: the pixel limit, and large images decoded small\n");
  char *bin = (char *)child_beit_bin();
  const char *png = bomb_png(16000);
  struct stat st;
  stat(png, &st);
  char *a1[] = {bin, "predict", "--checkpoint", g_cls, (char *)png, NULL};
  result r = run(a1, NULL, 60);
  const char *line = error_line(r.err);
  CHECK_TRUE(r.rc == 1 && line && strstr(line, png) && strstr(line, "16000x16000") && strstr(line, "--max-image-pixels 64000000"),
             "a %lld KB PNG of 16000x16000: predict refuses it (exit %d, %.2f s, peak %.0f MiB): %.*s", (long long)st.st_size / 1024,
             r.rc, r.secs, r.rss_mib, line ? (int)strcspn(line, "\n") : 200, line ? line : r.err);
  char *a2[] = {bin, "predict", "--max-image-pixels", "268435456", "--checkpoint", g_cls, (char *)png, NULL};
  r = run(a2, NULL, 120);
  CHECK_TRUE(r.rc == 0 && r.rss_mib < 400,
             "with --max-image-pixels 268435456 it is decoded row by row: exit %d, peak RSS %.0f MiB (full size: 256 MiB gray, "
             "768 MiB as RGB; limit 400) in %.1f s%s%.200s", r.rc, r.rss_mib, r.secs, r.rc ? ": " : "", r.rc ? r.err : "");
  char *a3[] = {bin, "predict", "--max-image-pixels", "0", "--checkpoint", g_cls, g_img, NULL};
  r = run(a3, NULL, 10);
  CHECK_TRUE(r.rc == 2 && strstr(r.err, "--max-image-pixels"), "--max-image-pixels 0 is a usage error: %.120s", r.err);
  /* a 48 Mpx JPEG: libjpeg's 1/8 DCT scaling, never 144 MiB of RGB */
  const char *jpg = big_jpeg(8000, 6000);
  char *a4[] = {bin, "predict", "--checkpoint", g_cls, (char *)jpg, NULL};
  r = run(a4, NULL, 60);
  CHECK_TRUE(r.rc == 0 && r.rss_mib < 120, "an 8000x6000 JPEG (144 MiB as RGB): predict exit %d, peak RSS %.0f MiB (limit 120) in %.1f s",
             r.rc, r.rss_mib, r.secs);
}

/* What the scaled decoders return, against the full decode. */
static void test_scaled_decoding(void) {
  printf("scaled decoding: the shorter side stays >= 2 x the target, pixels match the full image\n");
  int h = 61, w = 100;
  uint8_t *px = fx_picture(h, w, 3, 2);
  const char *png = at("scaled.png");
  beit_png_save(png, px, h, w, 3);
  beit_image full = {0}, small = {0};
  int ok = beit_image_load(png, &full) == BEIT_OK && beit_image_load_scaled(png, 10, &small) == BEIT_OK;
  /* f = 61 / 20 = 3: 34 x 21 boxes, the last column and row over what they cover */
  int exact = ok && small.w == 34 && small.h == 21 && small.c == 3;
  for (int y = 0; exact && y < small.h; y++)
    for (int x = 0; exact && x < small.w; x++)
      for (int ch = 0; ch < 3; ch++) {
        unsigned sum = 0, n = 0;
        for (int yy = 3 * y; yy < 3 * y + 3 && yy < h; yy++)
          for (int xx = 3 * x; xx < 3 * x + 3 && xx < w; xx++) sum += full.data[((size_t)yy * w + xx) * 3 + ch], n++;
        exact &= small.data[((size_t)y * small.w + x) * 3 + ch] == (sum + n / 2) / n;
      }
  CHECK_TRUE(exact, "PNG %dx%d for a target of 10: %dx%d, each pixel the rounded mean of its 3x3 box", w, h, small.w, small.h);
  ok = beit_image_load_scaled(png, 40, &small) == BEIT_OK;
  CHECK_TRUE(ok && small.w == w && small.h == h && !memcmp(small.data, full.data, (size_t)h * w * 3),
             "target 40 (61 < 2 x 40): the PNG comes back whole");
  const char *jpg = at("scaled.jpg");
  uint8_t *big = malloc(1200 * 1600 * 3);  /* smooth: what DCT scaling keeps */
  for (int y = 0; y < 1200; y++)
    for (int x = 0; x < 1600; x++) {
      uint8_t *p = big + ((size_t)y * 1600 + x) * 3;
      p[0] = (uint8_t)(x * 255 / 1599), p[1] = (uint8_t)(y * 255 / 1199), p[2] = (uint8_t)((x + y) * 255 / 2798);
    }
  fx_jpeg(jpg, big, 1200, 1600, 3, 95);
  free(big);
  ok = beit_image_load(jpg, &full) == BEIT_OK && beit_image_load_scaled(jpg, 100, &small) == BEIT_OK;
  double diff = 0;
  /* f = 1200 / 200 = 6 -> libjpeg's 1/4; compare with 4x4 means of the full decode */
  for (int y = 0; ok && small.w == 400 && small.h == 300 && y < 300; y++)
    for (int x = 0; x < 400; x++)
      for (int ch = 0; ch < 3; ch++) {
        unsigned sum = 0;
        for (int yy = 4 * y; yy < 4 * y + 4; yy++)
          for (int xx = 4 * x; xx < 4 * x + 4; xx++) sum += full.data[((size_t)yy * 1600 + xx) * 3 + ch];
        diff += fabs(small.data[((size_t)y * 400 + x) * 3 + ch] - sum / 16.0) / (300.0 * 400 * 3);
      }
  CHECK_TRUE(ok && small.w == 400 && small.h == 300 && diff < 1, "JPEG 1600x1200 for a target of 100: %dx%d (DCT 1/4), mean |diff| "
             "to the 4x4 means of the full decode %.2f levels (limit 1)", small.w, small.h, diff);
  beit_image_free(&full), beit_image_free(&small);
  free(px);
}

/* ---- 6. decompression bombs: IDX ------------------------------------------------------ */
/* A gzip'd IDX images file: header (count x rows x cols), then `payload` bytes from
 * fill (zeros if NULL) deflated at `level`; with its labels file (count zeros). */
static void bomb_idx(const char *dir, uint32_t count, uint32_t rows, uint32_t cols, size_t payload, int level,
                     const uint8_t *fill) {
  char p[1300];
  TEST_PATHF(p, "%s/train-images-idx3-ubyte.gz", dir);
  if (file_exists(p)) return;
  char tmp[1400];
  TEST_PATHF(tmp, "%s.tmp", p);
  FILE *f = fopen(tmp, "wb");
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  uint8_t head[16] = {0, 0, 8, 3}, *zero = calloc(1, 1 << 20), *out = malloc(1 << 20);
  fx_put32(head + 4, count), fx_put32(head + 8, rows), fx_put32(head + 12, cols);
  size_t left = payload;
  for (int first = 1, done = 0; !done; first = 0) {
    size_t n = left < (1 << 20) ? left : 1 << 20;
    zs.next_in = first ? head : (Bytef *)(fill ? fill + (payload - left) : zero);
    zs.avail_in = first ? 16 : (uInt)n;
    if (!first) left -= n;
    done = !first && left == 0;
    do {
      zs.next_out = out, zs.avail_out = 1 << 20;
      deflate(&zs, done ? Z_FINISH : Z_NO_FLUSH);
      fwrite(out, 1, (1 << 20) - zs.avail_out, f);
    } while (zs.avail_out == 0);
  }
  deflateEnd(&zs);
  fclose(f);
  rename(tmp, p);
  free(zero), free(out);
  uint32_t n = count < 4096 ? count : 4096;  /* the images are refused first when they claim more */
  uint8_t *lab = calloc(1, n);
  TEST_PATHF(p, "%s/train-labels-idx1-ubyte", dir);
  write_idx(p, lab, n, &n, 1);
  free(lab);
}

static void test_idx_bombs(void) {
  printf("gzip'd IDX: the header's size is checked before inflating, and never exceeded\n");
  char *bin = (char *)child_beit_bin();
  char spec[1300];
  /* a 1.2 MB file of a legitimate 256 MiB: one buffer of 256 MiB, not a copy too */
  const char *d1 = fx_dir("inputs/idx-big");
  bomb_idx(d1, 4096, 256, 256, (size_t)256 << 20, 1, NULL);
  TEST_PATHF(spec, "idx:%s", d1);
  char *a1[] = {bin, "data", "inspect", "--data", spec, "--limit", "1", NULL};
  result r = run(a1, NULL, 60);
  CHECK_TRUE(r.rc == 0 && r.rss_mib < 256 * 1.25 + 64, "4096 images of 256x256 (256 MiB) from a 1.2 MB gzip: exit %d, peak RSS "
             "%.0f MiB (limit 384: the images once) %.200s", r.rc, r.rss_mib, r.rc ? r.err : "");
  /* the header says 10 images of 28x28, the stream goes on for 256 MiB: stop where the header ends */
  const char *d2 = fx_dir("inputs/idx-overlong");
  bomb_idx(d2, 10, 28, 28, (size_t)256 << 20, 1, NULL);
  TEST_PATHF(spec, "idx:%s", d2);
  char *a2[] = {bin, "data", "inspect", "--data", spec, NULL};
  r = run(a2, NULL, 60);
  const char *line = error_line(r.err);
  CHECK_TRUE(r.rc == 1 && r.rss_mib < 128 && line && strstr(line, "data goes on after offset 7856"),
             "10 images of 28x28 followed by 256 MiB more: exit %d, peak RSS %.0f MiB (limit 128): %.*s", r.rc, r.rss_mib,
             line ? (int)strcspn(line, "\n") : 200, line ? line : r.err);
  /* a header claiming 2^31 - 1 images of 28x28 (1.7 TB) in a file of a few hundred bytes */
  const char *d3 = fx_dir("inputs/idx-claims");
  bomb_idx(d3, 0x7fffffff, 28, 28, 4096, 9, NULL);
  TEST_PATHF(spec, "idx:%s", d3);
  char *a3[] = {bin, "data", "inspect", "--data", spec, NULL};
  child_opts safe = {.as_limit = 16LL << 30};
  r = run(a3, &safe, 30);
  line = error_line(r.err);
  CHECK_TRUE(r.rc == 1 && line && strstr(line, "more than a gzip file of") && strstr(line, "can hold"),
             "a header of 2^31-1 images of 28x28 in a tiny gzip: refused before inflating (exit %d): %.*s", r.rc,
             line ? (int)strcspn(line, "\n") : 200, line ? line : r.err);
  /* one image of 16384 x 16384: over the pixel limit, as a PNG of that size would be */
  const char *d4 = fx_dir("inputs/idx-huge-image");
  bomb_idx(d4, 1, 16384, 16384, 4096, 9, NULL);
  TEST_PATHF(spec, "idx:%s", d4);
  char *a4[] = {bin, "data", "inspect", "--data", spec, NULL};
  r = run(a4, &safe, 30);
  line = error_line(r.err);
  CHECK_TRUE(r.rc == 1 && line && strstr(line, "16384x16384") && strstr(line, "--max-image-pixels"),
             "one IDX image of 16384x16384: over the pixel limit (exit %d): %.*s", r.rc, line ? (int)strcspn(line, "\n") : 200,
             line ? line : r.err);
  /* plausible (6 MiB of incompressible data may well hold 4 GiB... it does not, but the size alone
   * cannot tell): the memory check refuses it under RLIMIT_AS = 3 GiB, before allocating */
  if (CHILD_SANITIZED) {
    printf("  skip RLIMIT_AS (AddressSanitizer cannot run under an address-space limit)\n");
    return;
  }
  const char *d5 = fx_dir("inputs/idx-memory");
  size_t nrand = (size_t)6 << 20;
  uint8_t *noise = malloc(nrand);
  beit_rng g;
  beit_rng_seed(&g, 1, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < nrand; i += 8) {
    uint64_t v = beit_rng_u64(&g);
    memcpy(noise + i, &v, 8);
  }
  bomb_idx(d5, 1024, 2048, 2048, nrand, 0, noise);
  free(noise);
  TEST_PATHF(spec, "idx:%s", d5);
  char *a5[] = {bin, "data", "inspect", "--data", spec, NULL};
  child_opts lim = {.as_limit = 3LL << 30};
  r = run(a5, &lim, 30);
  line = error_line(r.err);
  CHECK_TRUE(r.rc == 1 && line && strstr(line, "1024 images of 2048x2048") && strstr(line, "needs 4.0 GiB") && strstr(line, "available"),
             "1024 images of 2048x2048 (4 GiB) in a 6 MiB gzip under RLIMIT_AS = 3 GiB: exit %d: %.*s", r.rc,
             line ? (int)strcspn(line, "\n") : 200, line ? line : r.err);
}

int main(void) {
  TEST_BEGIN("test_inputs");
  DIR_ = fx_dir("inputs");
  TEST_PATHF(g_tiny, "%s/tiny-mnist", DIR_);
  CHECK_TRUE(make_tiny_mnist(g_tiny, 64, 32) == 0, "tiny dataset in %s", g_tiny);
  make_classifier();
  test_non_regular();
  test_scaled_decoding();
  test_image_bombs();
  test_idx_bombs();
  return TEST_END();
}
