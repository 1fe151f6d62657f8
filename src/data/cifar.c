/* cifar.c - CIFAR-10 / CIFAR-100 binary batches: fixed-size records (label
 * byte(s) + 3x32x32 planar RGB), validated for whole records and label range,
 * loaded into memory as uint8 HWC. CIFAR-100 uses the fine label. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/dataset.h"

#define CIFAR_PIXELS 3072

static const char *const CIFAR10_NAMES[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog", "frog", "horse", "ship", "truck"};
static const char *const CIFAR100_NAMES[100] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"};

typedef struct {
  char paths[5][2048];
  int nfiles;
  size_t sizes[5];
} cifar_files;

/* DIR or DIR/cifar-10-batches-bin (cifar-100-binary). */
static void cifar_dir(const char *dir, int is100, char *out, size_t n) {
  snprintf(out, n, "%s/%s", dir, is100 ? "cifar-100-binary" : "cifar-10-batches-bin");
  if (!beit_is_dir(out)) snprintf(out, n, "%s", dir);
}

static int cifar_list(const char *dir, int train, int is100, cifar_files *f) {
  memset(f, 0, sizeof *f);
  if (is100) {
    snprintf(f->paths[0], sizeof f->paths[0], "%s/%s", dir, train ? "train.bin" : "test.bin");
    f->nfiles = 1;
  } else if (train) {
    for (int k = 0; k < 5; k++) snprintf(f->paths[k], sizeof f->paths[k], "%s/data_batch_%d.bin", dir, k + 1);
    f->nfiles = 5;
  } else {
    snprintf(f->paths[0], sizeof f->paths[0], "%s/test_batch.bin", dir);
    f->nfiles = 1;
  }
  for (int k = 0; k < f->nfiles; k++)
    if (!beit_is_file(f->paths[k])) return beit_errorf("%s: not found (expected CIFAR-%s binary batches)", f->paths[k], is100 ? "100" : "10");
  return BEIT_OK;
}

/* Decodes the records of one file into ds at sample offset `first`. */
static int cifar_records(beit_dataset *ds, const char *path, const uint8_t *buf, int64_t count, int64_t first,
                         int is100) {
  size_t rec = CIFAR_PIXELS + (is100 ? 2 : 1);
  int classes = is100 ? 100 : 10;
  for (int64_t r = 0; r < count; r++) {
    const uint8_t *p = buf + (size_t)r * rec;
    int label = p[is100 ? 1 : 0];
    if (is100 && p[0] >= 20)
      return beit_errorf("%s: coarse label %d at offset %zu (record %lld), expected 0..19", path, p[0],
                         (size_t)r * rec, (long long)r);
    if (label >= classes)
      return beit_errorf("%s: label %d at offset %zu (record %lld), expected 0..%d", path, label,
                         (size_t)r * rec + (size_t)is100, (long long)r, classes - 1);
    ds->labels[first + r] = label;
    const uint8_t *px = p + rec - CIFAR_PIXELS;
    uint8_t *dst = ds->pixels + (size_t)(first + r) * CIFAR_PIXELS;
    for (int i = 0; i < 1024; i++)
      for (int c = 0; c < 3; c++) dst[3 * i + c] = px[c * 1024 + i];
  }
  return BEIT_OK;
}

static int cifar_sizes(cifar_files *f, int is100, int64_t *total) {
  size_t rec = CIFAR_PIXELS + (is100 ? 2 : 1);
  *total = 0;
  for (int k = 0; k < f->nfiles; k++) {
    FILE *fp = beit_fopen_read(f->paths[k]);
    if (!fp) return BEIT_ERR;
    if (fseek(fp, 0, SEEK_END) != 0) {
      fclose(fp);
      return beit_errorf("%s: cannot read", f->paths[k]);
    }
    f->sizes[k] = (size_t)ftell(fp);
    fclose(fp);
    size_t n = f->sizes[k];
    if (n == 0 || n % rec)
      return beit_errorf("%s: %zu bytes is not a whole number of %zu-byte records: record %zu truncated, "
                         "data ends at offset %zu, expected %zu", f->paths[k], n, rec, n / rec, n, (n / rec + 1) * rec);
    *total += (int64_t)(n / rec);
  }
  return BEIT_OK;
}

/* Optional batches.meta.txt / fine_label_names.txt: one class name per line. */
static int cifar_names(beit_dataset *ds, const char *dir, int is100) {
  int count = is100 ? 100 : 10;
  const char *const *names = is100 ? CIFAR100_NAMES : CIFAR10_NAMES;
  char path[2048], line[256], *read[100] = {0};
  snprintf(path, sizeof path, "%s/%s", dir, is100 ? "fine_label_names.txt" : "batches.meta.txt");
  FILE *f = NULL;
  if (beit_is_file(path) && !(f = beit_fopen_read(path))) return BEIT_ERR;  /* absent: the standard names */
  int got = 0;
  while (f && got < count && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (line[0]) read[got++] = beit_strdup(line);
  }
  if (f) fclose(f);
  int rc = beit_ds_set_names(ds, got == count ? (const char *const *)read : names, count);
  for (int k = 0; k < got; k++) free(read[k]);
  return rc;
}

static void cifar_stats(beit_dataset *ds, int is100) {
  static const float m10[3] = {0.4914f, 0.4822f, 0.4465f}, s10[3] = {0.2470f, 0.2435f, 0.2616f};
  static const float m100[3] = {0.5071f, 0.4865f, 0.4409f}, s100[3] = {0.2673f, 0.2564f, 0.2762f};
  memcpy(ds->mean, is100 ? m100 : m10, sizeof ds->mean);
  memcpy(ds->std, is100 ? s100 : s10, sizeof ds->std);
}

int beit_cifar_open(beit_dataset *ds, const char *root, int train, int is100) {
  char dir[1024];
  cifar_dir(root, is100, dir, sizeof dir);
  ds->kind = is100 ? BEIT_DS_CIFAR100 : BEIT_DS_CIFAR10;
  snprintf(ds->name, sizeof ds->name, "%s", is100 ? "cifar100" : "cifar10");
  snprintf(ds->root, sizeof ds->root, "%s", dir);
  cifar_files f;
  int64_t total;
  if (cifar_list(dir, train, is100, &f) || cifar_sizes(&f, is100, &total)) return BEIT_ERR;
  ds->n = total, ds->height = ds->width = 32, ds->channels = 3;
  ds->pixels = beit_alloc((size_t)total * CIFAR_PIXELS, "CIFAR images");
  ds->labels = beit_alloc(sizeof(int32_t) * (size_t)total, "CIFAR labels");
  if (!ds->pixels || !ds->labels) return BEIT_ERR;
  int64_t first = 0;
  size_t rec = CIFAR_PIXELS + (is100 ? 2 : 1);
  for (int k = 0; k < f.nfiles; k++) {
    uint8_t *buf;
    size_t n;
    if (beit_read_file(f.paths[k], &buf, &n)) return BEIT_ERR;
    int rc = n != f.sizes[k] ? beit_errorf("%s: changed size while reading", f.paths[k])
                             : cifar_records(ds, f.paths[k], buf, (int64_t)(n / rec), first, is100);
    beit_free(buf);
    if (rc) return BEIT_ERR;
    first += (int64_t)(n / rec);
  }
  cifar_stats(ds, is100);
  return cifar_names(ds, dir, is100);
}
