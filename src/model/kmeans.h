/* kmeans.h - a k-means visual tokenizer: each image patch (the BEiT patch size)
 * is optionally normalised and mapped to its nearest of k centroids. Trained in
 * seconds (k-means++ init from the keyed RNG, Lloyd iterations, OpenMP + sgemm);
 * same encode interface as the dVAE; centroids saved as safetensors. */
#ifndef BEIT_KMEANS_H
#define BEIT_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "model/params.h"

enum { KMEANS_NORM_NONE = 0, KMEANS_NORM_PATCH = 1 };
#define KMEANS_MAX_SIDE 16384   /* image size at most */
#define KMEANS_PATCH_EPS 0.01f  /* variance floor of the per-patch normalisation ([0,1] pixels) */

typedef struct {
  int image_size;  /* S */
  int channels;
  int patch;       /* P: tokens form an (S/P) x (S/P) grid */
  int k;           /* vocabulary size */
  int normalize;   /* KMEANS_NORM_NONE: raw [0,1] pixels; KMEANS_NORM_PATCH: (p - mean)/sqrt(var + eps) */
} kmeans_config;

typedef struct {
  int iters;          /* Lloyd iterations at most (stops early when no label changes) */
  uint64_t seed;      /* k-means++ and subsampling: keyed by (seed, BEIT_RNG_KMEANS, ...) */
  size_t max_patches; /* subsample to this many patches (0 = all) */
} kmeans_fit_opts;

typedef struct {
  int iters_run;
  double inertia;     /* mean squared distance to the nearest centroid after the last update */
  int empty_reseeded; /* clusters that went empty and were moved to far points */
} kmeans_fit_stats;

struct beit_backend;

typedef struct {
  kmeans_config cfg;
  /* runs every kernel (kmeans_create: the default); a backend with host memory, as
   * the Lloyd loop reads labels and distances between kernels */
  const struct beit_backend *be;
  int dim;            /* channels * patch^2 */
  beit_params params; /* one tensor "centroids" [k, dim] */
  float *cnorm;       /* |c_k|^2 */
  float *work;        /* encode buffers (patches, dot products), grown on demand */
  size_t work_cap;
} kmeans_tok;

int kmeans_config_check(const kmeans_config *c);
int kmeans_grid_side(const kmeans_config *c);
int kmeans_create(kmeans_tok *km, const kmeans_config *c);
void kmeans_free(kmeans_tok *km);
float *kmeans_centroids(const kmeans_tok *km);
/* Centroids = k random normal vectors (benchmarks and tests only). */
void kmeans_init_random_centroids(kmeans_tok *km, uint64_t seed);

/* Patch vectors of images [B,C,S,S]: out [B * grid^2, dim], normalised per cfg. */
void kmeans_patches(const kmeans_tok *km, const float *images, int B, float *out);
/* Clusters n vectors x [n, dim] (already normalised) into the k centroids. */
int kmeans_fit(kmeans_tok *km, const float *x, size_t n, const kmeans_fit_opts *o, kmeans_fit_stats *st);
/* Extracts the patches of B images, subsamples, fits. */
int kmeans_train(kmeans_tok *km, const float *images, int B, const kmeans_fit_opts *o, kmeans_fit_stats *st);
/* labels[i] = nearest centroid of x[i] (squared Euclidean); dist2 (may be NULL). */
int kmeans_assign(kmeans_tok *km, const float *x, size_t n, int32_t *labels, float *dist2);
/* tokens [B, grid^2] for images [B,C,S,S] in [0,1]: the dVAE's encode interface. */
int kmeans_encode(kmeans_tok *km, const float *images, int B, int32_t *tokens);
/* Images made of the centroid patches (only without normalisation). */
int kmeans_decode(const kmeans_tok *km, const int32_t *tokens, int B, float *images);

int kmeans_save(const kmeans_tok *km, const char *path, const char *const *extra_kv, int n_extra);
int kmeans_load(kmeans_tok *km, const char *path);

#endif
