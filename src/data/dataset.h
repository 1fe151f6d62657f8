/* dataset.h - one interface over the image datasets beit reads: IDX (MNIST,
 * Fashion-MNIST), CIFAR-10/100 binary batches (both fully in memory as uint8)
 * and image folders (decoded lazily per sample). beit_dataset_get is safe to
 * call from several threads at once. */
#ifndef BEIT_DATASET_H
#define BEIT_DATASET_H

#include <stdint.h>

#include "io/image.h"

typedef enum { BEIT_DS_IDX = 1, BEIT_DS_CIFAR10, BEIT_DS_CIFAR100, BEIT_DS_FOLDER } beit_ds_kind;
/* What get() does with an image folder's unreadable file: warn once (naming
 * the path) and return the next readable sample instead, or fail. */
typedef enum { BEIT_BAD_SKIP = 0, BEIT_BAD_FATAL = 1 } beit_bad_policy;

#define BEIT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
  beit_ds_kind kind;
  char name[32];     /* fashion-mnist, mnist, idx, cifar10, cifar100, folder */
  char root[1024];   /* the directory it was read from */
  int train;         /* 1 = train split, 0 = test/val */
  int64_t n;
  int channels;      /* 1 or 3; folders convert every image to this */
  int height, width; /* 0 = variable (folders) */
  int num_classes;
  char **class_names; /* [num_classes] */
  float mean[3], std[3]; /* normalisation for this dataset (per channel) */
  int32_t *labels;   /* [n] */
  uint8_t *pixels;   /* in-memory kinds: [n, height, width, channels] */
  char **paths;      /* folders: [n] */
  beit_bad_policy bad_policy; /* folders; default BEIT_BAD_SKIP */
  uint8_t *bad;      /* folders: [n], set once a file was found unreadable */
} beit_dataset;

/* spec: fashion-mnist | fashion-mnist:DIR | mnist:DIR | idx:DIR | cifar10:DIR |
 * cifar100:DIR | folder:ROOT | a bare directory (format detected from its files).
 * train selects the train split (else test / val). Errors name the file. */
int beit_dataset_open(beit_dataset *ds, const char *spec, int train);
void beit_dataset_close(beit_dataset *ds);
/* Sample i as uint8 HWC with ds->channels channels (`out` zeroed or reused);
 * its label in *label when label != NULL. */
int beit_dataset_get(const beit_dataset *ds, int64_t i, beit_image *out, int32_t *label);
/* The same for the eval transform, which resizes the shorter side to min_side: a
 * large folder image may come back shrunk (beit_image_load_scaled). */
int beit_dataset_get_scaled(const beit_dataset *ds, int64_t i, int min_side, beit_image *out, int32_t *label);
/* Human-readable split name: "train" or "test"/"val". */
const char *beit_dataset_split_name(const beit_dataset *ds);

/* ---- the protocol's held-out split (docs/training.md, "Protocol: validation split") ----
 * A pure function of (the labels of ds, val_n, per_class, seed), so every command
 * given the same flags holds out the same images: one seeded permutation of all
 * indices is walked; an image goes to the validation part while its class's
 * quota is open (val_n / K each, the remainder one more for the first classes),
 * else to the training part while its class has fewer than per_class there
 * (per_class 0: no limit). Both lists in dataset order. Errors name --val-split
 * and --labels-per-class. */
typedef struct {
  int64_t *val, n_val;
  int64_t *train, n_train;
} beit_split;
int beit_split_make(const beit_dataset *ds, int64_t val_n, int64_t per_class, uint64_t seed, beit_split *s);
void beit_split_free(beit_split *s);
/* dst = samples idx[0..n) of src in that order, a copy (src is left as it is). */
int beit_dataset_take(beit_dataset *dst, const beit_dataset *src, const int64_t *idx, int64_t n);

/* Format readers (called by beit_dataset_open). flavour: "fashion-mnist",
 * "mnist" or "idx" (names, class count and mean/std follow from it). */
int beit_idx_open(beit_dataset *ds, const char *dir, int train, const char *flavour);
int beit_cifar_open(beit_dataset *ds, const char *dir, int train, int is100);
int beit_folder_open(beit_dataset *ds, const char *root, int train);

/* Internal helpers shared by the readers. */
int beit_ds_set_names(beit_dataset *ds, const char *const *names, int count);
char *beit_strdup(const char *s);

#endif
