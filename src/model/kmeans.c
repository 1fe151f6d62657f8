/* kmeans.c - the k-means patch tokenizer: patch extraction and normalisation,
 * k-means++ seeding, Lloyd iterations (distances as |c|^2 - 2 x.c through sgemm;
 * the kernels: ops/kmeans_ops.c), encode/decode and checkpoints. */
#include "model/kmeans.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "io/safetensors.h"

#define ASSIGN_ROWS 1024  /* rows per distance GEMM: bounds the [rows, k] scratch */

int kmeans_grid_side(const kmeans_config *c) { return c->patch > 0 ? c->image_size / c->patch : 0; }

int kmeans_config_check(const kmeans_config *c) {
  if (c->channels < 1 || c->channels > 4) return beit_errorf("kmeans: %d channels (1..4 supported)", c->channels);
  if (c->patch < 1 || c->image_size < c->patch || c->image_size % c->patch)
    return beit_errorf("kmeans: image size %d is not a multiple of the patch size %d", c->image_size, c->patch);
  if (c->image_size > KMEANS_MAX_SIDE)  /* also keeps channels * patch^2 inside an int */
    return beit_errorf("kmeans: image size %d above the limit of %d", c->image_size, KMEANS_MAX_SIDE);
  if (c->k < 2 || c->k > 65536) return beit_errorf("kmeans: k %d is outside 2..65536", c->k);
  if (c->normalize != KMEANS_NORM_NONE && c->normalize != KMEANS_NORM_PATCH)
    return beit_errorf("kmeans: unknown normalisation %d", c->normalize);
  return BEIT_OK;
}

int kmeans_create(kmeans_tok *km, const kmeans_config *c) {
  memset(km, 0, sizeof *km);
  if (kmeans_config_check(c)) return BEIT_ERR;
  km->cfg = *c;
  km->be = beit_backend_default();
  km->dim = c->channels * c->patch * c->patch;
  beit_params_init(&km->params);
  int64_t shape[2] = {c->k, km->dim};
  beit_params_add(&km->params, "centroids", 2, shape, 0, 0);
  km->cnorm = beit_calloc((size_t)c->k * sizeof(float), "k-means centroid norms");
  if (!km->cnorm || beit_params_alloc(&km->params)) {
    kmeans_free(km);
    return BEIT_ERR;
  }
  return BEIT_OK;
}

void kmeans_free(kmeans_tok *km) {
  beit_params_free(&km->params);
  beit_free(km->cnorm);
  beit_free(km->work);
  memset(km, 0, sizeof *km);
}

float *kmeans_centroids(const kmeans_tok *km) { return km->params.data; }

void kmeans_init_random_centroids(kmeans_tok *km, uint64_t seed) {
  beit_rng r;
  beit_rng_seed(&r, seed, BEIT_RNG_KMEANS, 0, 0);
  float *C = kmeans_centroids(km);
  for (size_t i = 0; i < (size_t)km->cfg.k * km->dim; i++) C[i] = (float)beit_rng_normal(&r);
}

/* ---- patches ----------------------------------------------------------------- */
void kmeans_patches(const kmeans_tok *km, const float *images, int B, float *out) {
  const kmeans_config *c = &km->cfg;
  const int g = kmeans_grid_side(c), D = km->dim;
  km->be->patchify(out, images, B, c->channels, c->image_size, c->patch);
  if (c->normalize == KMEANS_NORM_PATCH) km->be->row_standardize(out, (size_t)B * g * g, D, KMEANS_PATCH_EPS);
}

/* ---- assignment -------------------------------------------------------------- */
static int ensure_work(kmeans_tok *km, size_t floats) {
  if (floats <= km->work_cap) return BEIT_OK;
  float *w = beit_alloc(floats * sizeof(float), "k-means work buffer");
  if (!w) return BEIT_ERR;
  beit_free(km->work);
  km->work = w;
  km->work_cap = floats;
  return BEIT_OK;
}

/* Uses dots scratch of ASSIGN_ROWS * k floats (the caller's). The norms are
 * recomputed here (k*dim work) so that edited centroids are never stale. */
static void assign_with(kmeans_tok *km, float *dots, const float *x, size_t n, int32_t *labels, float *dist2) {
  const int k = km->cfg.k, D = km->dim;
  const beit_backend *be = km->be;
  const float *C = kmeans_centroids(km);
  be->row_sum_squares(km->cnorm, C, k, D);
  for (size_t r0 = 0; r0 < n; r0 += ASSIGN_ROWS) {
    size_t m = n - r0 < ASSIGN_ROWS ? n - r0 : ASSIGN_ROWS;
    be->gemm(0, 1, (int)m, k, D, 1.0f, x + r0 * D, D, C, D, 0.0f, dots, k);
    be->nearest_centroid(labels + r0, dist2 ? dist2 + r0 : NULL, x + r0 * D, m, D, dots, km->cnorm, C, k);
  }
}

int kmeans_assign(kmeans_tok *km, const float *x, size_t n, int32_t *labels, float *dist2) {
  float *dots = beit_alloc((size_t)ASSIGN_ROWS * km->cfg.k * sizeof(float), "k-means distances");
  if (!dots) return BEIT_ERR;
  assign_with(km, dots, x, n, labels, dist2);
  beit_free(dots);
  return BEIT_OK;
}

/* ---- k-means++ seeding ---------------------------------------------------------- */
/* Index drawn with probability d2[i] / sum(d2) (uniform when all are 0). */
static size_t sample_d2(const beit_backend *be, const double *d2, size_t n, beit_rng *r) {
  double total = be->sum_f64(d2, n);
  if (!(total > 0)) return (size_t)beit_rng_randint(r, 0, (int64_t)n - 1);
  double u = beit_rng_uniform(r) * total, acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc += d2[i];
    if (acc > u && d2[i] > 0) return i;
  }
  for (size_t i = n; i-- > 0;)
    if (d2[i] > 0) return i;
  return 0;
}

static int kmeanspp(kmeans_tok *km, const float *x, size_t n, uint64_t seed) {
  const int k = km->cfg.k, D = km->dim;
  float *C = kmeans_centroids(km);
  double *d2 = beit_alloc(n * sizeof(double), "k-means++ distances");
  if (!d2) return BEIT_ERR;
  for (size_t i = 0; i < n; i++) d2[i] = INFINITY;
  beit_rng r;
  beit_rng_seed(&r, seed, BEIT_RNG_KMEANS, 1, 0);
  size_t pick = (size_t)beit_rng_randint(&r, 0, (int64_t)n - 1);
  for (int j = 0; j < k; j++) {
    memcpy(C + (size_t)j * D, x + pick * D, D * sizeof(float));
    if (j + 1 == k) break;
    km->be->lower_dist2(d2, x, n, D, C + (size_t)j * D);
    pick = sample_d2(km->be, d2, n, &r);
  }
  beit_free(d2);
  return BEIT_OK;
}

/* ---- Lloyd update ------------------------------------------------------------- */
/* Centroid j = mean of its members (counting sort by label, then one thread per
 * centroid); an empty cluster moves to the point farthest from its centroid. */
static int update_centroids(kmeans_tok *km, const float *x, size_t n, const int32_t *labels, float *dist2,
                            int *reseeded) {
  const int k = km->cfg.k, D = km->dim;
  size_t *start = beit_calloc((size_t)(k + 1) * sizeof(size_t), "k-means counts");
  size_t *order = beit_alloc(n * sizeof(size_t), "k-means order");
  if (!start || !order) { beit_free(start), beit_free(order); return BEIT_ERR; }
  for (size_t i = 0; i < n; i++) start[labels[i] + 1]++;
  for (int j = 0; j < k; j++) start[j + 1] += start[j];
  size_t *fill = beit_alloc((size_t)k * sizeof(size_t), "k-means fill");
  if (!fill) { beit_free(start), beit_free(order); return BEIT_ERR; }
  memcpy(fill, start, (size_t)k * sizeof(size_t));
  for (size_t i = 0; i < n; i++) order[fill[labels[i]]++] = i;
  beit_free(fill);
  float *C = kmeans_centroids(km);
  km->be->centroid_means(C, x, order, start, k, D);
  for (int j = 0; j < k; j++) {
    if (start[j + 1] > start[j]) continue;
    size_t far = 0;
    for (size_t i = 1; i < n; i++)
      if (dist2[i] > dist2[far]) far = i;
    memcpy(C + (size_t)j * D, x + far * D, D * sizeof(float));
    dist2[far] = -1;
    (*reseeded)++;
  }
  beit_free(start), beit_free(order);
  return BEIT_OK;
}

int kmeans_fit(kmeans_tok *km, const float *x, size_t n, const kmeans_fit_opts *o, kmeans_fit_stats *st) {
  const int k = km->cfg.k;
  memset(st, 0, sizeof *st);
  if (n < (size_t)k) return beit_errorf("kmeans: %zu patches are fewer than k = %d", n, k);
  int32_t *labels = beit_alloc(n * sizeof(int32_t), "k-means labels");
  int32_t *prev = beit_alloc(n * sizeof(int32_t), "k-means labels");
  float *dist2 = beit_alloc(n * sizeof(float), "k-means distances");
  float *dots = beit_alloc((size_t)ASSIGN_ROWS * k * sizeof(float), "k-means distances");
  int rc = labels && prev && dist2 && dots ? kmeanspp(km, x, n, o->seed) : BEIT_ERR;
  for (int it = 0; !rc && it < o->iters; it++) {
    assign_with(km, dots, x, n, labels, dist2);
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) changed += !it || labels[i] != prev[i];
    if (!changed) break;
    memcpy(prev, labels, n * sizeof(int32_t));
    rc = update_centroids(km, x, n, labels, dist2, &st->empty_reseeded);
    st->iters_run = it + 1;
  }
  if (!rc) {
    assign_with(km, dots, x, n, labels, dist2);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += dist2[i];
    st->inertia = s / (double)n;
  }
  beit_free(labels), beit_free(prev), beit_free(dist2), beit_free(dots);
  return rc;
}

/* Gathers up to max_patches patches (uniformly, keyed RNG) from B images. */
int kmeans_train(kmeans_tok *km, const float *images, int B, const kmeans_fit_opts *o, kmeans_fit_stats *st) {
  const int g = kmeans_grid_side(&km->cfg), D = km->dim;
  size_t total = (size_t)B * g * g, n = o->max_patches && o->max_patches < total ? o->max_patches : total;
  float *all = beit_alloc(total * D * sizeof(float), "k-means patches");
  float *x = n < total ? beit_alloc(n * D * sizeof(float), "k-means sample") : all;
  if (!all || !x) { beit_free(all); return BEIT_ERR; }
  kmeans_patches(km, images, B, all);
  if (n < total) {
    beit_rng r;
    beit_rng_seed(&r, o->seed, BEIT_RNG_KMEANS, 2, 0);
    for (size_t i = 0; i < n; i++)
      memcpy(x + i * D, all + (size_t)beit_rng_randint(&r, 0, (int64_t)total - 1) * D, D * sizeof(float));
  }
  int rc = kmeans_fit(km, x, n, o, st);
  if (x != all) beit_free(x);
  beit_free(all);
  return rc;
}

/* ---- encode / decode ----------------------------------------------------------- */
int kmeans_encode(kmeans_tok *km, const float *images, int B, int32_t *tokens) {
  const int g = kmeans_grid_side(&km->cfg);
  size_t n = (size_t)B * g * g, dots = (size_t)ASSIGN_ROWS * km->cfg.k;
  if (ensure_work(km, n * km->dim + dots)) return BEIT_ERR;
  float *x = km->work + dots;
  kmeans_patches(km, images, B, x);
  assign_with(km, km->work, x, n, tokens, NULL);
  return BEIT_OK;
}

int kmeans_decode(const kmeans_tok *km, const int32_t *tokens, int B, float *images) {
  const kmeans_config *c = &km->cfg;
  if (c->normalize != KMEANS_NORM_NONE)
    return beit_errorf("kmeans: patch-normalised centroids cannot be turned back into pixels");
  const int g = kmeans_grid_side(c);
  for (size_t i = 0; i < (size_t)B * g * g; i++)
    if (tokens[i] < 0 || tokens[i] >= c->k)
      return beit_errorf("kmeans: token %d at %zu is outside 0..%d", tokens[i], i, c->k - 1);
  km->be->unpatchify(images, kmeans_centroids(km), tokens, B, c->channels, c->image_size, c->patch);
  return BEIT_OK;
}

/* ---- checkpoints ------------------------------------------------------------- */
int kmeans_save(const kmeans_tok *km, const char *path, const char *const *extra_kv, int n_extra) {
  const kmeans_config *c = &km->cfg;
  char v[4][24];
  int vals[4] = {c->image_size, c->channels, c->patch, c->k};
  for (int i = 0; i < 4; i++) snprintf(v[i], sizeof v[i], "%d", vals[i]);
  const char *kv[2 * (6 + 16)] = {"type", "kmeans", "image_size", v[0], "channels", v[1], "patch", v[2], "k", v[3],
                                  "normalize", c->normalize == KMEANS_NORM_PATCH ? "patch" : "none"};
  if (n_extra > 16) return beit_errorf("kmeans_save: %d extra metadata pairs (at most 16)", n_extra);
  for (int i = 0; i < 2 * n_extra; i++) kv[12 + i] = extra_kv[i];
  return beit_params_save(&km->params, path, kv, 6 + n_extra);
}

static int meta_int(const beit_safetensors *st, const char *key, int *out) {
  const char *s = beit_st_meta(st, key);
  char *end;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || end == s || *end || v < 0 || v > (1 << 30))
    return beit_errorf("%s: metadata '%s' is %s (not a beit.c k-means tokenizer?)", st->path, key,
                       s ? "not a valid integer" : "missing");
  *out = (int)v;
  return BEIT_OK;
}

int kmeans_load(kmeans_tok *km, const char *path) {
  beit_safetensors st;
  memset(km, 0, sizeof *km);
  if (beit_st_open(&st, path)) return BEIT_ERR;
  kmeans_config c = {0};
  const char *type = beit_st_meta(&st, "type"), *norm = beit_st_meta(&st, "normalize");
  int rc = BEIT_OK;
  if (!type || strcmp(type, "kmeans"))
    rc = beit_errorf("%s: metadata type is '%s', expected 'kmeans'", path, type ? type : "(none)");
  if (!rc) rc = meta_int(&st, "image_size", &c.image_size) || meta_int(&st, "channels", &c.channels) ||
                meta_int(&st, "patch", &c.patch) || meta_int(&st, "k", &c.k);
  c.normalize = norm && !strcmp(norm, "patch") ? KMEANS_NORM_PATCH : KMEANS_NORM_NONE;
  if (!rc) rc = kmeans_config_check(&c);
  /* before allocating: the centroids (2 bytes a value at the least) must fit in the file */
  double values = (double)c.k * c.channels * c.patch * c.patch;
  if (!rc && values * 2 > (double)st.data_size)
    rc = beit_errorf("%s: %d centroids of %d x %d x %d values cannot be in the file's %zu bytes of tensors", path, c.k,
                     c.channels, c.patch, c.patch, st.data_size);
  if (!rc) rc = kmeans_create(km, &c);
  if (!rc && beit_params_load_from(&km->params, &st, 1)) {
    kmeans_free(km);
    rc = BEIT_ERR;
  }
  beit_st_close(&st);
  return rc ? beit_error_context("loading k-means tokenizer %s", path) : BEIT_OK;
}
