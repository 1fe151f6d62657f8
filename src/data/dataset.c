/* dataset.c - the dataset front door: parses a spec (kind:DIR or a bare path
 * whose format is detected), dispatches to the readers in idx.c, cifar.c and
 * imagefolder.c, and serves samples (copy from memory or decode a file). */
#include "data/dataset.h"

#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

char *beit_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (!p) {
    beit_errorf("out of memory copying a string of %zu bytes", n);
    return NULL;
  }
  return memcpy(p, s, n);
}

int beit_ds_set_names(beit_dataset *ds, const char *const *names, int count) {
  ds->class_names = calloc((size_t)count, sizeof(char *));
  if (!ds->class_names) return beit_errorf("out of memory for %d class names", count);
  ds->num_classes = count;
  for (int k = 0; k < count; k++) {
    char num[16];
    snprintf(num, sizeof num, "%d", k);
    if (!(ds->class_names[k] = beit_strdup(names ? names[k] : num))) return BEIT_ERR;
  }
  return BEIT_OK;
}

void beit_dataset_close(beit_dataset *ds) {
  for (int k = 0; ds->class_names && k < ds->num_classes; k++) free(ds->class_names[k]);
  for (int64_t i = 0; ds->paths && i < ds->n; i++) free(ds->paths[i]);
  free(ds->class_names);
  free(ds->paths);
  free(ds->bad);
  beit_free(ds->labels);
  beit_free(ds->pixels);
  memset(ds, 0, sizeof *ds);
}

const char *beit_dataset_split_name(const beit_dataset *ds) {
  if (ds->train) return "train";
  return ds->kind == BEIT_DS_FOLDER ? "val" : "test";
}

/* ---- spec parsing ------------------------------------------------------------ */
static int contains_ci(const char *s, const char *word) {
  size_t n = strlen(word);
  for (; *s; s++)
    if (strncasecmp(s, word, n) == 0) return 1;
  return 0;
}

static int has_file(const char *dir, const char *name) {
  char p[2048];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return beit_is_file(p) || beit_is_dir(p);
}

static int has_idx(const char *dir) {
  const char *names[] = {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte",
                         "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz", "t10k-images.idx3-ubyte"};
  for (int k = 0; k < 6; k++)
    if (has_file(dir, names[k])) return 1;
  return 0;
}

/* A bare directory: decide the format from the files in it. */
static int open_detected(beit_dataset *ds, const char *dir, int train) {
  if (beit_is_file(dir))
    return beit_errorf("%s: is a file; expected a dataset directory (or fashion-mnist, mnist:DIR, idx:DIR, "
                       "cifar10:DIR, cifar100:DIR, folder:ROOT)", dir);
  if (!beit_is_dir(dir))
    return beit_errorf("%s: no such dataset directory (expected fashion-mnist, mnist:DIR, idx:DIR, "
                       "cifar10:DIR, cifar100:DIR, folder:ROOT or a directory)", dir);
  if (has_idx(dir))
    return beit_idx_open(ds, dir, train,
                         contains_ci(dir, "fashion") ? "fashion-mnist" : contains_ci(dir, "mnist") ? "mnist" : "idx");
  if (has_file(dir, "data_batch_1.bin") || has_file(dir, "test_batch.bin") || has_file(dir, "cifar-10-batches-bin"))
    return beit_cifar_open(ds, dir, train, 0);
  if (has_file(dir, "train.bin") || has_file(dir, "test.bin") || has_file(dir, "cifar-100-binary"))
    return beit_cifar_open(ds, dir, train, 1);
  return beit_folder_open(ds, dir, train);
}

int beit_dataset_open(beit_dataset *ds, const char *spec, int train) {
  memset(ds, 0, sizeof *ds);
  ds->train = train;
  const char *colon = strchr(spec, ':');
  size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
  const char *arg = colon ? colon + 1 : "";
  int rc;
  if (!strcmp(spec, "fashion-mnist")) {
    const char *env = getenv("BEIT_FASHION_MNIST_DIR");
    rc = beit_idx_open(ds, env && *env ? env : BEIT_FASHION_MNIST_DIR, train, "fashion-mnist");
  } else if (colon && klen == 13 && !strncmp(spec, "fashion-mnist", klen)) {
    rc = beit_idx_open(ds, arg, train, "fashion-mnist");
  } else if (colon && klen == 5 && !strncmp(spec, "mnist", klen)) {
    rc = beit_idx_open(ds, arg, train, "mnist");
  } else if (colon && klen == 3 && !strncmp(spec, "idx", klen)) {
    rc = beit_idx_open(ds, arg, train, "idx");
  } else if (colon && klen == 7 && !strncmp(spec, "cifar10", klen)) {
    rc = beit_cifar_open(ds, arg, train, 0);
  } else if (colon && klen == 8 && !strncmp(spec, "cifar100", klen)) {
    rc = beit_cifar_open(ds, arg, train, 1);
  } else if (colon && klen == 6 && !strncmp(spec, "folder", klen)) {
    rc = beit_folder_open(ds, arg, train);
  } else {
    rc = open_detected(ds, spec, train);
  }
  if (rc) {
    beit_dataset_close(ds);
    return BEIT_ERR;
  }
  ds->train = train;
  return BEIT_OK;
}

/* ---- samples ----------------------------------------------------------------- */
static int get_memory(const beit_dataset *ds, int64_t i, beit_image *out, int32_t *label) {
  if (beit_image_reserve(out, ds->height, ds->width, ds->channels)) return BEIT_ERR;
  size_t sz = (size_t)ds->height * ds->width * ds->channels;
  memcpy(out->data, ds->pixels + (size_t)i * sz, sz);
  if (label) *label = ds->labels[i];
  return BEIT_OK;
}

static int load_file(const beit_dataset *ds, int64_t j, int min_side, beit_image *out) {
  if (beit_image_load_scaled(ds->paths[j], min_side, out)) return BEIT_ERR;
  return beit_image_convert(out, ds->channels);
}

/* Folder sample: on an unreadable file either fail or (skip policy) warn once
 * and serve the next readable sample, so the result is still deterministic. */
static int get_folder(const beit_dataset *ds, int64_t i, int min_side, beit_image *out, int32_t *label) {
  for (int64_t k = 0; k < ds->n; k++) {
    int64_t j = (i + k) % ds->n;
    if (__atomic_load_n(&ds->bad[j], __ATOMIC_RELAXED) && ds->bad_policy == BEIT_BAD_SKIP) continue;
    if (load_file(ds, j, min_side, out) == BEIT_OK) {
      if (label) *label = ds->labels[j];
      return BEIT_OK;
    }
    if (ds->bad_policy == BEIT_BAD_FATAL) return BEIT_ERR;
    if (!__atomic_exchange_n(&ds->bad[j], 1, __ATOMIC_RELAXED))
      fprintf(stderr, "beit: warning: skipping unreadable image: %s\n", beit_last_error());
  }
  return beit_errorf("%s: none of the %lld images could be read", ds->root, (long long)ds->n);
}

int beit_dataset_get_scaled(const beit_dataset *ds, int64_t i, int min_side, beit_image *out, int32_t *label) {
  if (i < 0 || i >= ds->n)
    return beit_errorf("%s: sample %lld out of range (dataset has %lld)", ds->root, (long long)i, (long long)ds->n);
  if (ds->pixels) return get_memory(ds, i, out, label);
  return get_folder(ds, i, min_side, out, label);
}

int beit_dataset_get(const beit_dataset *ds, int64_t i, beit_image *out, int32_t *label) {
  return beit_dataset_get_scaled(ds, i, 0, out, label);
}
