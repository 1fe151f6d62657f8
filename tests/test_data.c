/* test_data.c - dataset readers: IDX (plain, gzip, every malformation the
 * reader must refuse with file and offset), CIFAR-10/100 records, image
 * folders (PNG/JPEG, mixed sizes, gray/RGB, a corrupt JPEG skipped or fatal),
 * format detection, and the installed Fashion-MNIST when present. */
#include <unistd.h>

#include "data/dataset.h"
#include "test.h"
#include "test_data_fixtures.h"

static char ROOT[1024];

static const char *sub(const char *name) {
  static char buf[8][2048];
  static int k = 0;
  char *p = buf[k++ % 8];
  snprintf(p, 2048, "%s/%s", ROOT, name);
  beit_mkdir_p(p);
  return p;
}

static void expect_open_fails(const char *spec, const char *what, const char *n1, const char *n2) {
  beit_dataset ds;
  int rc = beit_dataset_open(&ds, spec, 1);
  const char *msg = beit_last_error();
  CHECK_TRUE(rc == BEIT_ERR && (!n1 || strstr(msg, n1)) && (!n2 || strstr(msg, n2)), "%s refused: %s", what,
             rc ? msg : "(accepted!)");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
}

/* ---- IDX ------------------------------------------------------------------------ */
static int idx_pixels_ok(const beit_dataset *ds) {
  beit_image img = {0};
  int ok = 1;
  for (int64_t i = 0; i < ds->n && ok; i += 7) {
    int32_t label;
    ok = beit_dataset_get(ds, i, &img, &label) == BEIT_OK && label == i % 10 && img.c == 1;
    for (int p = 0; ok && p < img.h * img.w; p++) ok = img.data[p] == (uint8_t)((i * 7 + (p / img.w) * 3 + p % img.w) & 255);
  }
  beit_image_free(&img);
  return ok;
}

static void test_idx_valid(void) {
  char spec[2200];
  for (int gz = 0; gz < 2; gz++) {
    const char *d = sub(gz ? "idx_gz" : "idx_plain");
    fx_idx_dir(d, 23, 11, 9, 6, gz);
    beit_dataset ds;
    snprintf(spec, sizeof spec, "idx:%s", d);
    int rc = beit_dataset_open(&ds, spec, 1);
    CHECK_TRUE(rc == BEIT_OK && ds.n == 23 && ds.height == 9 && ds.width == 6 && ds.channels == 1 && ds.num_classes == 10,
               "%s IDX train: n=%lld %dx%d c=%d classes=%d %s", gz ? "gzip'd" : "plain", (long long)ds.n, ds.width,
               ds.height, ds.channels, ds.num_classes, rc ? beit_last_error() : "");
    CHECK_TRUE(rc == BEIT_OK && idx_pixels_ok(&ds) && !strcmp(ds.class_names[3], "3") && ds.mean[0] == 0.5f,
               "%s IDX pixels and labels as written, names 0..9, mean 0.5", gz ? "gzip'd" : "plain");
    if (rc == BEIT_OK) beit_dataset_close(&ds);
    rc = beit_dataset_open(&ds, spec, 0);
    CHECK_TRUE(rc == BEIT_OK && ds.n == 11 && !ds.train, "test split (t10k) has 11");
    if (rc == BEIT_OK) beit_dataset_close(&ds);
  }
  beit_dataset ds;
  char spec2[2200];
  snprintf(spec2, sizeof spec2, "mnist:%s", sub("idx_plain"));
  int rc = beit_dataset_open(&ds, spec2, 1);
  CHECK_TRUE(rc == BEIT_OK && fabsf(ds.mean[0] - 0.1307f) < 1e-6f && !strcmp(ds.name, "mnist"), "mnist: flavour sets mean 0.1307");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
  rc = beit_dataset_open(&ds, sub("idx_gz"), 1);
  CHECK_TRUE(rc == BEIT_OK && ds.kind == BEIT_DS_IDX && ds.n == 23, "bare directory detected as IDX");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
}

/* One malformed copy of the train images (or labels) per directory. */
static const char *idx_variant(const char *name, int labels, void (*edit)(uint8_t **b, size_t *n), int gz) {
  const char *d = sub(name);
  fx_idx_dir(d, 20, 4, 5, 5, 0);
  char p[2048];
  size_t n;
  uint8_t *b = labels ? fx_idx_labels(20, 10, &n) : fx_idx_images(20, 5, 5, &n);
  edit(&b, &n);
  snprintf(p, sizeof p, "%s/train-%s", d, labels ? "labels-idx1-ubyte" : "images-idx3-ubyte");
  if (gz) unlink(p);
  fx_write_maybe_gz(p, b, n, gz);
  free(b);
  static char spec[2100];
  snprintf(spec, sizeof spec, "idx:%s", d);
  return spec;
}

static void e_magic(uint8_t **b, size_t *n) { (void)n, (*b)[2] = 0x09; }
static void e_dims(uint8_t **b, size_t *n) { (void)n, (*b)[3] = 2; }
static void e_trunc(uint8_t **b, size_t *n) { (void)b, *n -= 5; }
static void e_extra(uint8_t **b, size_t *n) { *b = realloc(*b, *n + 3), memset(*b + *n, 0, 3), *n += 3; }
static void e_zero(uint8_t **b, size_t *n) { (void)n, fx_put32(*b + 8, 0); }
static void e_count(uint8_t **b, size_t *n) { fx_put32(*b + 4, 19), *n -= 1; }
static void e_label(uint8_t **b, size_t *n) { (void)n, (*b)[8 + 6] = 12; }
static void e_none(uint8_t **b, size_t *n) { (void)b, (void)n; }

static void test_idx_malformed(void) {
  expect_open_fails(idx_variant("idx_magic", 0, e_magic, 0), "IDX bad magic", "bad IDX magic 00 00 09 03 at offset 0",
                    "train-images-idx3-ubyte");
  expect_open_fails(idx_variant("idx_dims", 0, e_dims, 0), "IDX with 2 dims", "expected 00 00 08 03", "offset 0");
  expect_open_fails(idx_variant("idx_trunc", 0, e_trunc, 0), "truncated IDX", "truncated: data ends at offset 511",
                    "expected 516 bytes");
  expect_open_fails(idx_variant("idx_extra", 0, e_extra, 0), "IDX with 3 extra bytes", "3 extra bytes after offset 516", NULL);
  expect_open_fails(idx_variant("idx_zero", 0, e_zero, 0), "IDX with 0 rows", "dimension 1 is 0 at offset 8", NULL);
  expect_open_fails(idx_variant("idx_count", 1, e_count, 0), "19 labels for 20 images", "19 labels", "20 images");
  expect_open_fails(idx_variant("idx_gztrunc", 0, e_trunc, 1), "gzip'd truncated IDX", "(uncompressed)", "truncated");
  /* mnist flavour: labels must be 0..9 */
  idx_variant("idx_label", 1, e_label, 0);
  char spec[2200];
  snprintf(spec, sizeof spec, "mnist:%s", sub("idx_label"));
  expect_open_fails(spec, "MNIST label 12", "label 12 at offset 14", "expected 0..9");
  /* gzip damage: a flipped byte inside the deflate data, and a cut stream */
  const char *d = sub("idx_gzbad");
  idx_variant("idx_gzbad", 0, e_none, 1);
  char p[2048];
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", d);
  uint8_t *b;
  size_t n;
  beit_read_file(p, &b, &n);
  for (size_t i = 20; i < n - 10; i += 3) b[i] ^= 0xA5;
  fx_write(p, b, n);
  snprintf(spec, sizeof spec, "idx:%s", d);
  expect_open_fails(spec, "corrupt gzip", "corrupt gzip data at compressed offset", ".gz");
  beit_free(b);
  idx_variant("idx_gzbad", 0, e_none, 1);
  fx_truncate_copy(p, p, -40);
  expect_open_fails(spec, "gzip missing its last 40 bytes", "gzip stream truncated at compressed offset", NULL);
  snprintf(spec, sizeof spec, "idx:%s", sub("idx_empty"));
  expect_open_fails(spec, "IDX dir without files", "train-images-idx3-ubyte: not found", NULL);
}

/* ---- CIFAR ---------------------------------------------------------------------- */
static uint8_t *cifar_records(int count, int first, int is100, size_t *n) {
  size_t rec = 3072 + (is100 ? 2 : 1);
  *n = rec * count;
  uint8_t *b = malloc(*n);
  for (int r = 0; r < count; r++) {
    uint8_t *p = b + r * rec;
    int id = first + r;
    if (is100) p[0] = (uint8_t)(id % 20), p[1] = (uint8_t)(id * 7 % 100);
    else p[0] = (uint8_t)(id % 10);
    for (int i = 0; i < 3072; i++) p[rec - 3072 + i] = (uint8_t)((i * 5 + id * 11) & 255);
  }
  return b;
}

static void cifar_file(const char *dir, const char *name, int count, int first, int is100) {
  char p[2048];
  size_t n;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  uint8_t *b = cifar_records(count, first, is100, &n);
  fx_write(p, b, n);
  free(b);
}

/* Pixel (y, x, c) of record id came from plane c at y*32+x. */
static int cifar_pixels_ok(const beit_dataset *ds, int is100) {
  beit_image img = {0};
  int ok = 1;
  for (int64_t i = 0; i < ds->n && ok; i++) {
    int32_t label;
    ok = beit_dataset_get(ds, i, &img, &label) == BEIT_OK && img.c == 3 && img.h == 32 &&
         label == (is100 ? i * 7 % 100 : i % 10);
    for (int c = 0; c < 3 && ok; c++)
      for (int p = 0; p < 1024 && ok; p++) ok = img.data[p * 3 + c] == (uint8_t)(((c * 1024 + p) * 5 + i * 11) & 255);
  }
  beit_image_free(&img);
  return ok;
}

static void test_cifar(void) {
  const char *d = sub("cifar10");
  char name[64], spec[2200];
  for (int b = 0; b < 5; b++) snprintf(name, sizeof name, "data_batch_%d.bin", b + 1), cifar_file(d, name, 3, 3 * b, 0);
  cifar_file(d, "test_batch.bin", 2, 0, 0);
  beit_dataset ds;
  snprintf(spec, sizeof spec, "cifar10:%s", d);
  int rc = beit_dataset_open(&ds, spec, 1);
  CHECK_TRUE(rc == BEIT_OK && ds.n == 15 && ds.num_classes == 10 && !strcmp(ds.class_names[0], "airplane") &&
                 fabsf(ds.mean[0] - 0.4914f) < 1e-6f && fabsf(ds.std[2] - 0.2616f) < 1e-6f,
             "CIFAR-10 train: 5 batches, 15 records, names and mean/std %s", rc ? beit_last_error() : "");
  CHECK_TRUE(rc == BEIT_OK && cifar_pixels_ok(&ds, 0), "CIFAR-10 planar RGB -> HWC, labels as written");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
  rc = beit_dataset_open(&ds, d, 0);
  CHECK_TRUE(rc == BEIT_OK && ds.kind == BEIT_DS_CIFAR10 && ds.n == 2, "bare directory detected as CIFAR-10 (test: 2)");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
  /* truncated last record, bad label */
  const char *t = sub("cifar10_trunc");
  for (int b = 0; b < 5; b++) snprintf(name, sizeof name, "data_batch_%d.bin", b + 1), cifar_file(t, name, 3, 0, 0);
  char p[2048];
  snprintf(p, sizeof p, "%s/data_batch_4.bin", t);
  fx_truncate_copy(p, p, 3073 * 3 - 10);
  snprintf(spec, sizeof spec, "cifar10:%s", t);
  expect_open_fails(spec, "CIFAR batch with a cut record", "data_batch_4.bin", "record 2 truncated, data ends at offset 9209");
  cifar_file(t, "data_batch_4.bin", 3, 0, 0);
  uint8_t *b;
  size_t n;
  beit_read_file(p, &b, &n);
  b[3073] = 11;
  fx_write(p, b, n);
  beit_free(b);
  expect_open_fails(spec, "CIFAR label 11", "label 11 at offset 3073 (record 1)", "expected 0..9");
  /* CIFAR-100 in its cifar-100-binary sub-folder */
  const char *c100 = sub("cifar100/cifar-100-binary");
  cifar_file(c100, "train.bin", 4, 0, 1);
  cifar_file(c100, "test.bin", 1, 0, 1);
  snprintf(spec, sizeof spec, "cifar100:%s", sub("cifar100"));
  rc = beit_dataset_open(&ds, spec, 1);
  CHECK_TRUE(rc == BEIT_OK && ds.n == 4 && ds.num_classes == 100 && !strcmp(ds.class_names[99], "worm") && cifar_pixels_ok(&ds, 1),
             "CIFAR-100: fine labels, 100 names, pixels %s", rc ? beit_last_error() : "");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
}

/* ---- image folders -------------------------------------------------------------- */
static void folder_png(const char *dir, const char *name, int h, int w, int c) {
  char p[2048];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  uint8_t *px = fx_picture(h, w, c, 1);
  beit_png_save(p, px, h, w, c);
  free(px);
}

static void folder_jpg(const char *dir, const char *name, int h, int w, int c) {
  char p[2048];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  uint8_t *px = fx_picture(h, w, c, 1);
  fx_jpeg(p, px, h, w, c, 90);
  free(px);
}

static void make_folder(void) {
  folder_png(sub("folder/train/ant"), "a1.png", 20, 30, 1);
  folder_jpg(sub("folder/train/ant"), "a2.JPG", 40, 25, 3);
  folder_png(sub("folder/train/bee"), "b1.png", 16, 16, 3);
  folder_jpg(sub("folder/train/bee"), "b2.jpeg", 33, 17, 1);
  folder_png(sub("folder/train/cat"), "c1.png", 10, 50, 3);
  folder_jpg(sub("folder/train/cat"), "zz_bad.jpg", 64, 64, 3);
  char p[2048];
  snprintf(p, sizeof p, "%s/zz_bad.jpg", sub("folder/train/cat"));
  fx_truncate_copy(p, p, 400);
  fx_write(strcat(strcpy(p, sub("folder/train/cat")), "/notes.txt"), "not an image", 12);
  fx_write(strcat(strcpy(p, sub("folder/train/cat")), "/.hidden.png"), "x", 1);
  folder_png(sub("folder/val/bee"), "v1.png", 12, 12, 3);
  folder_jpg(sub("folder/val/ant"), "v2.jpg", 9, 11, 1);
}

static void test_folder(void) {
  make_folder();
  char spec[2200];
  snprintf(spec, sizeof spec, "folder:%s", sub("folder"));
  beit_dataset ds;
  int rc = beit_dataset_open(&ds, spec, 1);
  int32_t want[6] = {0, 0, 1, 1, 2, 2};
  CHECK_TRUE(rc == BEIT_OK && ds.n == 6 && ds.num_classes == 3 && !strcmp(ds.class_names[0], "ant") &&
                 !strcmp(ds.class_names[2], "cat") && !memcmp(ds.labels, want, sizeof want) && ds.channels == 3 && ds.height == 0,
             "folder train: 6 images in 3 sorted classes, 3 channels, variable size %s", rc ? beit_last_error() : "");
  if (rc) return;
  beit_image img = {0};
  int sizes[5][2] = {{20, 30}, {40, 25}, {16, 16}, {33, 17}, {10, 50}}, ok = 1;
  for (int i = 0; i < 5; i++) ok &= beit_dataset_get(&ds, i, &img, NULL) == BEIT_OK && img.h == sizes[i][0] && img.w == sizes[i][1] && img.c == 3;
  beit_dataset_get(&ds, 0, &img, NULL);
  ok &= img.data[3 * 37] == img.data[3 * 37 + 1] && img.data[3 * 37 + 1] == img.data[3 * 37 + 2];
  CHECK_TRUE(ok, "PNG/JPEG of 5 sizes decode; gray ones come out as equal RGB channels");
  int32_t label = -1;
  fprintf(stderr, "(a warning about zz_bad.jpg is expected next)\n");
  rc = beit_dataset_get(&ds, 5, &img, &label);
  CHECK_TRUE(rc == BEIT_OK && label == 0 && img.h == 20 && ds.bad[5] == 1,
             "skip policy: the corrupt JPEG is replaced by the next readable sample (wraps to 0), flagged");
  ds.bad_policy = BEIT_BAD_FATAL;
  ds.bad[5] = 0;
  rc = beit_dataset_get(&ds, 5, &img, &label);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "cat/zz_bad.jpg") && strstr(beit_last_error(), "corrupt JPEG"),
             "fatal policy: %s", beit_last_error());
  beit_image_free(&img);
  beit_dataset_close(&ds);
  rc = beit_dataset_open(&ds, spec, 0);
  CHECK_TRUE(rc == BEIT_OK && ds.n == 2 && ds.labels[0] == 0 && ds.labels[1] == 1 && ds.num_classes == 3,
             "folder val: labels follow the train classes");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
  rc = beit_dataset_open(&ds, sub("folder"), 1);
  CHECK_TRUE(rc == BEIT_OK && ds.kind == BEIT_DS_FOLDER && ds.n == 6, "bare directory detected as an image folder");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
  folder_png(sub("gray_folder/x"), "g.png", 8, 8, 1);
  folder_png(sub("gray_folder/y"), "g.png", 9, 9, 1);
  rc = beit_dataset_open(&ds, sub("gray_folder"), 1);
  CHECK_TRUE(rc == BEIT_OK && ds.channels == 1, "an all-gray folder stays 1 channel");
  if (rc == BEIT_OK) beit_dataset_close(&ds);
  folder_png(sub("folder_badval/train/a"), "a.png", 8, 8, 1);
  folder_png(sub("folder_badval/val/zebra"), "z.png", 8, 8, 1);
  snprintf(spec, sizeof spec, "folder:%s", sub("folder_badval"));
  beit_dataset v;
  rc = beit_dataset_open(&v, spec, 0);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "zebra"), "val class missing from train refused: %s", beit_last_error());
  sub("folder_empty/train/a");
  snprintf(spec, sizeof spec, "folder:%s", sub("folder_empty"));
  expect_open_fails(spec, "folder without images", "no images found", NULL);
  expect_open_fails("cifar10:/no/such/dir", "missing CIFAR dir", "/no/such/dir/data_batch_1.bin", "not found");
  expect_open_fails("/no/such/dir", "missing bare path", "/no/such/dir", "no such dataset directory");
}

/* ---- the installed Fashion-MNIST -------------------------------------------------- */
static void test_fashion(void) {
  char p[1024];
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", BEIT_FASHION_MNIST_DIR);
  if (access(p, R_OK) != 0) {
    printf("  skip Fashion-MNIST not installed at %s (scripts/setup.sh installs it)\n", BEIT_FASHION_MNIST_DIR);
    return;
  }
  beit_dataset tr, te;
  int rc = beit_dataset_open(&tr, "fashion-mnist", 1);
  int rc2 = beit_dataset_open(&te, "fashion-mnist", 0);
  CHECK_TRUE(!rc && !rc2 && tr.n == 60000 && te.n == 10000 && tr.height == 28 && tr.channels == 1,
             "Fashion-MNIST: 60000 train + 10000 test, 28x28x1 %s", rc || rc2 ? beit_last_error() : "");
  if (rc || rc2) return;
  int counts[10] = {0}, ok = 1;
  for (int64_t i = 0; i < tr.n; i++) counts[tr.labels[i]]++;
  for (int k = 0; k < 10; k++) ok &= counts[k] == 6000;
  CHECK_TRUE(ok && !strcmp(tr.class_names[0], "T-shirt/top") && !strcmp(tr.class_names[9], "Ankle boot") &&
                 fabsf(tr.mean[0] - 0.2860f) < 1e-6f && fabsf(tr.std[0] - 0.3530f) < 1e-6f,
             "6000 per class, names T-shirt/top..Ankle boot, mean 0.2860 std 0.3530");
  beit_image img = {0};
  int32_t l0, l1;
  beit_dataset_get(&tr, 0, &img, &l0);
  long sum = 0;
  for (int i = 0; i < 784; i++) sum += img.data[i];
  int centre = img.data[14 * 28 + 14];
  beit_dataset_get(&te, 0, &img, &l1);
  CHECK_TRUE(l0 == 9 && l1 == 9 && sum == 76247 && centre == 217 && img.data[14 * 28 + 14] == 110,
             "first train/test samples: labels %d/%d, pixel sum %ld, centre %d", l0, l1, sum, centre);
  beit_image_free(&img);
  beit_dataset_close(&tr);
  beit_dataset_close(&te);
}

int main(void) {
  TEST_BEGIN("test_data");
  snprintf(ROOT, sizeof ROOT, "%s", fx_dir("data"));
  test_idx_valid();
  test_idx_malformed();
  test_cifar();
  test_folder();
  test_fashion();
  return TEST_END();
}
