/* imagefolder.c - ROOT/{train,val}/<class>/ images (jpg, jpeg, png): classes sorted
 * by name (taken from the train folder so both splits share label ids), files
 * sorted within a class; only paths are kept, images are decoded per sample. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "data/dataset.h"

typedef struct {
  char **items;
  int n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    char **p = realloc(l->items, sizeof(char *) * (size_t)cap);
    if (!p) return beit_errorf("out of memory listing files");
    l->items = p, l->cap = cap;
  }
  if (!(l->items[l->n] = beit_strdup(s))) return BEIT_ERR;
  l->n++;
  return BEIT_OK;
}

static void strlist_free(strlist *l) {
  for (int i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Sorted entries of `dir`: sub-directories (want_dirs) or image files. */
static int list_dir(const char *dir, int want_dirs, strlist *out) {
  DIR *d = opendir(dir);
  if (!d) return beit_errorf("%s: cannot open directory", dir);
  struct dirent *e;
  int rc = BEIT_OK;
  char path[4096];
  while (rc == BEIT_OK && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    int ok = want_dirs ? beit_is_dir(path) : (is_image_name(e->d_name) && beit_is_file(path));
    if (ok) rc = strlist_push(out, e->d_name);
  }
  closedir(d);
  if (out->n > 1) qsort(out->items, (size_t)out->n, sizeof(char *), cmp_str);
  return rc;
}

/* ROOT/train + ROOT/val (or ROOT/test); a ROOT without train/ is itself the class root. */
static void split_dirs(const char *root, int train, char *class_root, char *split_dir, size_t n) {
  snprintf(class_root, n, "%s/train", root);
  if (!beit_is_dir(class_root)) {
    snprintf(class_root, n, "%s", root);
    snprintf(split_dir, n, "%s", root);
    return;
  }
  if (train) {
    snprintf(split_dir, n, "%s", class_root);
    return;
  }
  snprintf(split_dir, n, "%s/val", root);
  if (!beit_is_dir(split_dir)) snprintf(split_dir, n, "%s/test", root);
}

static int class_index(const strlist *classes, const char *name) {
  for (int k = 0; k < classes->n; k++)
    if (!strcmp(classes->items[k], name)) return k;
  return -1;
}

static int collect(const char *split_dir, const strlist *classes, strlist *paths, int32_t **labels) {
  strlist subs = {0};
  int rc = list_dir(split_dir, 1, &subs);
  for (int s = 0; rc == BEIT_OK && s < subs.n; s++) {
    int label = class_index(classes, subs.items[s]);
    if (label < 0) {
      rc = beit_errorf("%s/%s: class folder has no counterpart among the train classes", split_dir, subs.items[s]);
      break;
    }
    char dir[4096], path[8192];
    snprintf(dir, sizeof dir, "%s/%s", split_dir, subs.items[s]);
    strlist files = {0};
    rc = list_dir(dir, 0, &files);
    int32_t *grown = rc ? NULL : realloc(*labels, sizeof(int32_t) * (size_t)(paths->n + files.n + 1));
    if (!rc && !grown) rc = beit_errorf("out of memory listing %s", dir);
    if (grown) *labels = grown;
    for (int f = 0; rc == BEIT_OK && f < files.n; f++) {
      snprintf(path, sizeof path, "%s/%s", dir, files.items[f]);
      (*labels)[paths->n] = label;
      rc = strlist_push(paths, path);
    }
    strlist_free(&files);
  }
  strlist_free(&subs);
  return rc;
}

/* 3 channels if the first image of any class is colour (gray folders stay 1). */
static int probe_channels(const beit_dataset *ds) {
  int channels = 1, last = -1;
  for (int64_t i = 0; i < ds->n; i++) {
    if (ds->labels[i] == last) continue;
    last = ds->labels[i];
    int h, w, c;
    if (beit_image_probe(ds->paths[i], &h, &w, &c) == BEIT_OK && c == 3) channels = 3;
  }
  return channels;
}

static int take_lists(beit_dataset *ds, strlist *classes, strlist *paths, int32_t *labels) {
  ds->n = paths->n;
  ds->paths = paths->items;
  ds->num_classes = classes->n;
  ds->class_names = classes->items;
  ds->labels = beit_alloc(sizeof(int32_t) * (size_t)(ds->n ? ds->n : 1), "folder labels");
  ds->bad = calloc((size_t)(ds->n ? ds->n : 1), 1);
  if (!ds->labels || !ds->bad) return beit_errorf("out of memory for %lld folder samples", (long long)ds->n);
  if (ds->n) memcpy(ds->labels, labels, sizeof(int32_t) * (size_t)ds->n);
  return BEIT_OK;
}

int beit_folder_open(beit_dataset *ds, const char *root, int train) {
  char class_root[1000], split_dir[1000];
  ds->kind = BEIT_DS_FOLDER;
  snprintf(ds->name, sizeof ds->name, "folder");
  if (!beit_is_dir(root)) return beit_errorf("%s: not a directory (expected ROOT/train/<class>/*.jpg)", root);
  split_dirs(root, train, class_root, split_dir, sizeof class_root);
  snprintf(ds->root, sizeof ds->root, "%s", split_dir);
  if (!beit_is_dir(split_dir)) return beit_errorf("%s: no such directory (expected %s/val or %s/test)", split_dir, root, root);
  strlist classes = {0}, paths = {0};
  int32_t *labels = NULL;
  int rc = list_dir(class_root, 1, &classes);
  if (rc == BEIT_OK && classes.n == 0) rc = beit_errorf("%s: no class sub-folders found", class_root);
  if (rc == BEIT_OK) rc = collect(split_dir, &classes, &paths, &labels);
  if (rc == BEIT_OK) rc = take_lists(ds, &classes, &paths, labels);
  else strlist_free(&classes), strlist_free(&paths);
  free(labels);
  if (rc) return BEIT_ERR;
  if (ds->n == 0) return beit_errorf("%s: no images found (expected <class>/*.jpg|jpeg|png)", split_dir);
  ds->channels = probe_channels(ds);
  for (int c = 0; c < 3; c++) ds->mean[c] = 0.5f, ds->std[c] = 0.5f;
  return BEIT_OK;
}
