/* split.c - the held-out validation split and the labeled subset of a training
 * set (see dataset.h), and a dataset made of chosen samples of another. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/dataset.h"

void beit_split_free(beit_split *s) {
  beit_free(s->val), beit_free(s->train);
  memset(s, 0, sizeof *s);
}

/* Every class must hold its validation quota. */
static int check_quota(const beit_dataset *ds, const int64_t *count, int64_t val_n) {
  int K = ds->num_classes;
  for (int c = 0; c < K; c++) {
    int64_t quota = val_n / K + (c < val_n % K);
    if (count[c] <= quota)
      return beit_errorf("--val-split %lld needs %lld images of class '%s' (and one left to train on), --data %s has "
                         "%lld", (long long)val_n, (long long)quota, ds->class_names[c], ds->root, (long long)count[c]);
  }
  return BEIT_OK;
}

static int check_labeled(const beit_dataset *ds, const int64_t *count, int64_t val_n, int64_t per_class) {
  for (int c = 0; c < ds->num_classes; c++) {
    int64_t left = count[c] - (val_n / ds->num_classes + (c < val_n % ds->num_classes));
    if (left < per_class)
      return beit_errorf("--labels-per-class %lld: class '%s' of --data %s has only %lld images left after "
                         "--val-split %lld", (long long)per_class, ds->class_names[c], ds->root, (long long)left,
                         (long long)val_n);
  }
  return BEIT_OK;
}

int beit_split_make(const beit_dataset *ds, int64_t val_n, int64_t per_class, uint64_t seed, beit_split *s) {
  memset(s, 0, sizeof *s);
  int64_t n = ds->n, K = ds->num_classes;
  if (val_n < 0 || val_n >= n)
    return beit_errorf("--val-split %lld is not below the %lld training images of --data %s", (long long)val_n,
                       (long long)n, ds->root);
  int64_t *count = beit_calloc((size_t)K * 2 * sizeof(int64_t), "split counts"), *left = count + K;
  int64_t *perm = beit_alloc((size_t)n * sizeof(int64_t), "split order");
  uint8_t *part = beit_calloc((size_t)n, "split parts");  /* 1 = validation, 2 = training */
  s->val = beit_alloc((size_t)(val_n ? val_n : 1) * sizeof(int64_t), "validation indices");
  s->train = beit_alloc((size_t)n * sizeof(int64_t), "training indices");
  int rc = count && perm && part && s->val && s->train ? BEIT_OK : BEIT_ERR;
  for (int64_t i = 0; rc == BEIT_OK && i < n; i++) count[ds->labels[i]]++;
  if (rc == BEIT_OK && val_n) rc = check_quota(ds, count, val_n);
  if (rc == BEIT_OK && per_class) rc = check_labeled(ds, count, val_n, per_class);
  if (rc == BEIT_OK) {
    beit_rng r;
    beit_rng_seed(&r, seed, BEIT_RNG_SPLIT, 0, 0);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t k = beit_rng_randint(&r, 0, i), t = perm[i];
      perm[i] = perm[k], perm[k] = t;
    }
    for (int c = 0; c < K; c++) left[c] = val_n / K + (c < val_n % K), count[c] = 0;
    for (int64_t i = 0; i < n; i++) {
      int64_t j = perm[i], c = ds->labels[j];
      if (left[c] > 0) part[j] = 1, left[c]--;
      else if (!per_class || count[c] < per_class) part[j] = 2, count[c]++;
    }
    for (int64_t j = 0; j < n; j++) {
      if (part[j] == 1) s->val[s->n_val++] = j;
      if (part[j] == 2) s->train[s->n_train++] = j;
    }
  }
  beit_free(count), beit_free(perm), beit_free(part);
  if (rc != BEIT_OK) beit_split_free(s);
  return rc;
}

int beit_dataset_take(beit_dataset *dst, const beit_dataset *src, const int64_t *idx, int64_t n) {
  *dst = *src;
  dst->n = n;
  dst->class_names = NULL, dst->labels = NULL, dst->pixels = NULL, dst->paths = NULL, dst->bad = NULL;
  int rc = beit_ds_set_names(dst, (const char *const *)src->class_names, src->num_classes);
  size_t sz = (size_t)src->height * src->width * src->channels;
  if (rc == BEIT_OK && !(dst->labels = beit_alloc((size_t)(n ? n : 1) * sizeof(int32_t), "labels"))) rc = BEIT_ERR;
  if (rc == BEIT_OK && src->pixels && !(dst->pixels = beit_alloc((n ? n : 1) * sz, "pixels"))) rc = BEIT_ERR;
  if (rc == BEIT_OK && src->paths) {
    dst->paths = calloc((size_t)(n ? n : 1), sizeof(char *));
    dst->bad = calloc((size_t)(n ? n : 1), 1);
    if (!dst->paths || !dst->bad) rc = beit_errorf("out of memory for %lld file names", (long long)n);
  }
  for (int64_t i = 0; rc == BEIT_OK && i < n; i++) {
    dst->labels[i] = src->labels[idx[i]];
    if (dst->pixels) memcpy(dst->pixels + (size_t)i * sz, src->pixels + (size_t)idx[i] * sz, sz);
    if (dst->paths && !(dst->paths[i] = beit_strdup(src->paths[idx[i]]))) rc = BEIT_ERR;
    if (dst->bad) dst->bad[i] = src->bad[idx[i]];
  }
  if (rc != BEIT_OK) {
    if (dst->paths) dst->n = n;  /* close frees the names copied so far (the rest are NULL) */
    beit_dataset_close(dst);
  }
  return rc;
}
