/* loader.c - the batch pipeline: sample order (shuffle + rank slice), a ring
 * of batch slots filled by worker threads in chunks of samples, and the
 * consumer side (next / seek). Every sample's output depends only on (seed,
 * epoch, dataset index), so thread count and timing never change the bytes. */
#include "data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define CHUNK 4 /* samples a worker claims at once */
#define KEEP_IMAGE_BYTES ((size_t)16 << 20) /* a decoding buffer larger than this is not kept between chunks */

typedef struct {
  beit_batch b;
  int64_t pos;        /* global batch position epoch*steps + step; -1 = unassigned */
  int claimed, done;  /* samples handed to workers / finished */
  int failed;
  char err[512];
} slot;

struct beit_loader {
  const beit_dataset *ds;
  beit_loader_cfg cfg;
  beit_mask_cfg mask;
  int C, shuffle;
  int64_t per_rank, steps;
  int64_t *perm, perm_epoch;
  slot *slots;
  int nslots, held;            /* slot the consumer holds, -1 none */
  int64_t next_pos, want_pos, cur_epoch;
  pthread_mutex_t mu;
  pthread_cond_t work_cv, ready_cv, idle_cv;
  int busy, paused, stop;
  pthread_t *threads;
  int nthreads;
  beit_image inline_img; /* decoding buffer when there are no workers */
  double wait_s;         /* seconds the consumer spent waiting for (or, without workers, making) batches */
};

/* ---- configuration ------------------------------------------------------------ */
void beit_loader_defaults(beit_loader_cfg *cfg, beit_load_mode mode) {
  memset(cfg, 0, sizeof *cfg);
  cfg->mode = mode;
  cfg->batch_size = 64;
  beit_aug_defaults(&cfg->aug);
  cfg->world_size = 1;
  cfg->num_workers = 2;
  cfg->prefetch = 2;
  cfg->drop_last = mode != BEIT_LOAD_EVAL;
  cfg->shuffle = -1;
}

int beit_resolve_sizes(int image_size, int patch_size, const beit_dataset *ds, int *S, int *P) {
  int from_data = image_size <= 0;
  if (from_data && !ds) return beit_errorf("beit_resolve_sizes: no --image-size and no dataset to take it from");
  if (from_data) image_size = ds->height > 0 && ds->height == ds->width ? ds->height : 224;
  if (patch_size <= 0) patch_size = image_size <= 64 ? 4 : 16;
  if (image_size % patch_size)
    return beit_errorf("%s %d%s is not a multiple of --patch-size %d", from_data ? "the image size" : "--image-size",
                       image_size, from_data ? " (the dataset's; --image-size 0)" : "", patch_size);
  *S = image_size, *P = patch_size;
  return BEIT_OK;
}

static int resolve_sizes(beit_loader_cfg *c, const beit_dataset *ds) {
  if (beit_resolve_sizes(c->image_size, c->patch_size, ds, &c->image_size, &c->patch_size)) return BEIT_ERR;
  if (c->mode != BEIT_LOAD_PRETRAIN) c->second_size = -1;
  else if (c->second_size == 0) c->second_size = c->image_size / c->patch_size * 8;
  if (c->std[0] == 0) memcpy(c->mean, ds->mean, sizeof c->mean), memcpy(c->std, ds->std, sizeof c->std);
  if (c->crop_pct <= 0) c->crop_pct = beit_default_crop_pct(c->image_size);
  if (c->aug.crop_pad < 0) c->aug.crop_pad = c->image_size <= 32 ? 4 : 0;  /* unilm's datasets.py, input_size <= 32 */
  return BEIT_OK;
}

static int check_cfg(const beit_loader_cfg *c, const beit_dataset *ds) {
  if (c->batch_size <= 0) return beit_errorf("batch size %d: expected > 0", c->batch_size);
  if (c->world_size <= 0 || c->rank < 0 || c->rank >= c->world_size)
    return beit_errorf("rank %d of world size %d: expected 0 <= rank < world size", c->rank, c->world_size);
  if (c->num_workers < 0 || c->num_workers > 256) return beit_errorf("workers %d: expected 0..256", c->num_workers);
  if (c->image_size > 4096 || c->second_size > 4096) return beit_errorf("image size %d / %d: expected <= 4096", c->image_size, c->second_size);
  if (ds->n <= 0) return beit_errorf("%s: dataset is empty", ds->root);
  return BEIT_OK;
}

/* Samples per epoch on this rank: shuffled modes use equal slices of
 * floor(n / world) (the n mod world left over change every epoch); unshuffled
 * ones give every sample to exactly one rank (slices differ by at most one). */
static int64_t rank_count(const beit_loader *L) {
  int64_t n = L->ds->n, w = L->cfg.world_size, r = L->cfg.rank;
  return L->shuffle ? n / w : (n - r + w - 1) / w;
}

/* ---- sample order ------------------------------------------------------------- */
static int ensure_perm(beit_loader *L, int64_t epoch) {
  if (!L->shuffle || L->perm_epoch == epoch) return BEIT_OK;
  int64_t n = L->ds->n;
  beit_rng rng;
  beit_rng_seed(&rng, L->cfg.seed, BEIT_RNG_SHUFFLE, (uint64_t)epoch, 0);
  for (int64_t i = 0; i < n; i++) L->perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = beit_rng_randint(&rng, 0, i), t = L->perm[i];
    L->perm[i] = L->perm[j], L->perm[j] = t;
  }
  L->perm_epoch = epoch;
  return BEIT_OK;
}

/* Dataset index of this rank's k-th sample of `epoch` (strided slice). */
static int64_t sample_at(const beit_loader *L, int64_t k) {
  int64_t j = L->cfg.rank + k * L->cfg.world_size;
  return L->shuffle ? L->perm[j] : j;
}

/* Gives slot s the batch at position pos (called by the consumer only). */
static void assign(beit_loader *L, slot *s, int64_t pos) {
  int64_t epoch = pos / L->steps, step = pos % L->steps, first = step * L->cfg.batch_size;
  ensure_perm(L, epoch);
  int64_t n = L->per_rank - first;
  s->b.n = (int)(n < L->cfg.batch_size ? n : L->cfg.batch_size);
  s->b.epoch = epoch, s->b.step = step;
  for (int k = 0; k < s->b.n; k++) s->b.indices[k] = sample_at(L, first + k);
  for (int k = s->b.n; k < L->cfg.batch_size; k++) s->b.indices[k] = -1, s->b.labels[k] = -1;
  s->pos = pos;
  s->claimed = s->done = s->failed = 0;
  s->err[0] = 0;
}

/* ---- one sample ----------------------------------------------------------------- */
static int process_sample(const beit_loader *L, beit_batch *b, int k, beit_image *img) {
  const beit_loader_cfg *c = &L->cfg;
  int64_t idx = b->indices[k];
  beit_eval_prep prep = beit_eval_prep_make(c->image_size, c->crop_pct, c->mean, c->std);
  /* only the eval transform knows the resolution it needs; training crops need the full image */
  int side = c->mode == BEIT_LOAD_EVAL ? beit_eval_resize_side(prep.size, prep.crop_pct) : 0;
  if (beit_dataset_get_scaled(L->ds, idx, side, img, &b->labels[k])) return BEIT_ERR;
  size_t va = (size_t)L->C * c->image_size * c->image_size;
  float *a = b->images + k * va;
  if (c->mode == BEIT_LOAD_EVAL) return beit_aug_eval(img, &prep, a);
  beit_rng rng;
  beit_rng_seed(&rng, c->seed, BEIT_RNG_AUGMENT, (uint64_t)b->epoch, (uint64_t)idx);
  if (c->mode == BEIT_LOAD_TRAIN) return beit_aug_train(&c->aug, img, &rng, c->image_size, c->mean, c->std, a, NULL);
  float *v2 = b->images2 ? b->images2 + (size_t)k * L->C * c->second_size * c->second_size : NULL;
  if (beit_aug_pretrain(&c->aug, img, &rng, c->image_size, c->second_size, c->mean, c->std, a, v2, NULL)) return BEIT_ERR;
  beit_mask_sample(&L->mask, c->seed, b->epoch, idx, b->masks + (size_t)k * b->num_patches);
  return BEIT_OK;
}

static void run_samples(beit_loader *L, slot *s, int k0, int k1, beit_image *img, char *err, size_t errn) {
  for (int k = k0; k < k1 && !err[0]; k++)
    if (process_sample(L, &s->b, k, img))
      snprintf(err, errn, "%s (batch %lld of epoch %lld, sample %lld)", beit_last_error(), (long long)s->b.step,
               (long long)s->b.epoch, (long long)s->b.indices[k]);
  if (img->cap > KEEP_IMAGE_BYTES) beit_image_free(img);  /* one huge image does not stay with every worker */
}

/* ---- workers -------------------------------------------------------------------- */
/* The earliest-positioned slot with unclaimed samples, or NULL. */
static slot *next_work(beit_loader *L) {
  slot *best = NULL;
  for (int i = 0; i < L->nslots; i++) {
    slot *s = &L->slots[i];
    if (s->pos >= 0 && !s->failed && s->claimed < s->b.n && (!best || s->pos < best->pos)) best = s;
  }
  return best;
}

static void *worker_main(void *arg) {
  beit_loader *L = arg;
  beit_image img = {0};
  char err[512];
  pthread_mutex_lock(&L->mu);
  while (!L->stop) {
    slot *s = L->paused ? NULL : next_work(L);
    if (!s) {
      pthread_cond_wait(&L->work_cv, &L->mu);
      continue;
    }
    int k0 = s->claimed, k1 = k0 + CHUNK < s->b.n ? k0 + CHUNK : s->b.n;
    s->claimed = k1;
    L->busy++;
    pthread_mutex_unlock(&L->mu);
    err[0] = 0;
    run_samples(L, s, k0, k1, &img, err, sizeof err);
    pthread_mutex_lock(&L->mu);
    L->busy--;
    s->done += k1 - k0;
    if (err[0] && !s->failed) s->failed = 1, snprintf(s->err, sizeof s->err, "%s", err);
    if (s->done == s->b.n || s->failed) pthread_cond_broadcast(&L->ready_cv);
    if (L->busy == 0) pthread_cond_broadcast(&L->idle_cv);
  }
  pthread_mutex_unlock(&L->mu);
  beit_image_free(&img);
  return NULL;
}

/* ---- open / close ----------------------------------------------------------------- */
static int alloc_slot(beit_loader *L, slot *s) {
  const beit_loader_cfg *c = &L->cfg;
  beit_batch *b = &s->b;
  size_t B = (size_t)c->batch_size;
  b->batch_size = c->batch_size, b->channels = L->C, b->size = c->image_size;
  b->second_size = c->second_size > 0 ? c->second_size : 0;
  b->grid = c->mode == BEIT_LOAD_PRETRAIN ? c->image_size / c->patch_size : 0;
  b->num_patches = b->grid * b->grid;
  b->images = beit_calloc(B * L->C * c->image_size * c->image_size * sizeof(float), "batch images");
  b->labels = beit_calloc(B * sizeof(int32_t), "batch labels");
  b->indices = beit_calloc(B * sizeof(int64_t), "batch indices");
  if (!b->images || !b->labels || !b->indices) return BEIT_ERR;
  if (c->mode != BEIT_LOAD_PRETRAIN) return BEIT_OK;
  if (b->second_size && !(b->images2 = beit_calloc(B * L->C * b->second_size * b->second_size * sizeof(float), "batch view B")))
    return BEIT_ERR;
  return (b->masks = beit_calloc(B * b->num_patches, "batch masks")) ? BEIT_OK : BEIT_ERR;
}

static void free_slot(slot *s) {
  beit_free(s->b.images), beit_free(s->b.images2), beit_free(s->b.masks);
  beit_free(s->b.labels), beit_free(s->b.indices);
}

static int setup(beit_loader *L, const beit_dataset *ds, const beit_loader_cfg *cfg) {
  L->ds = ds, L->cfg = *cfg, L->C = ds->channels, L->held = -1, L->perm_epoch = -1;
  if (resolve_sizes(&L->cfg, ds) || check_cfg(&L->cfg, ds)) return BEIT_ERR;
  L->shuffle = L->cfg.shuffle < 0 ? L->cfg.mode != BEIT_LOAD_EVAL : L->cfg.shuffle;
  L->per_rank = rank_count(L);
  L->steps = L->cfg.drop_last ? L->per_rank / L->cfg.batch_size : (L->per_rank + L->cfg.batch_size - 1) / L->cfg.batch_size;
  if (L->steps == 0)
    return beit_errorf("%s: %lld samples on this rank make no batch of %d (drop_last)", ds->root, (long long)L->per_rank,
                       L->cfg.batch_size);
  if (L->cfg.mode == BEIT_LOAD_PRETRAIN) {
    int g = L->cfg.image_size / L->cfg.patch_size;
    if (beit_mask_cfg_init(&L->mask, g, g, L->cfg.num_mask, L->cfg.min_block, L->cfg.max_block)) return BEIT_ERR;
    L->mask.random = L->cfg.random_mask;
  }
  if (L->shuffle && !(L->perm = beit_alloc(sizeof(int64_t) * (size_t)ds->n, "shuffle order"))) return BEIT_ERR;
  L->nthreads = L->cfg.num_workers;
  L->nslots = L->nthreads ? (L->cfg.prefetch > 0 ? L->cfg.prefetch : 1) + 1 : 1;
  double view2 = L->cfg.second_size > 0 ? (double)L->cfg.second_size * L->cfg.second_size : 0;
  char what[96];
  snprintf(what, sizeof what, "the data loader (%d batches of %d images in flight)", L->nslots, L->cfg.batch_size);
  double per_image = L->C * ((double)L->cfg.image_size * L->cfg.image_size + view2) * sizeof(float);
  if (beit_memory_check(L->nslots * (double)L->cfg.batch_size * per_image, what)) return BEIT_ERR;
  if (!(L->slots = calloc((size_t)L->nslots, sizeof(slot)))) return beit_errorf("out of memory for loader slots");
  for (int i = 0; i < L->nslots; i++) {
    L->slots[i].pos = -1;
    if (alloc_slot(L, &L->slots[i])) return BEIT_ERR;
  }
  return BEIT_OK;
}

static int start_threads(beit_loader *L) {
  if (!L->nthreads) return BEIT_OK;
  if (!(L->threads = calloc((size_t)L->nthreads, sizeof(pthread_t)))) return beit_errorf("out of memory for threads");
  for (int i = 0; i < L->nthreads; i++)
    if (pthread_create(&L->threads[i], NULL, worker_main, L)) {
      L->nthreads = i;
      return beit_errorf("cannot start loader thread %d", i);
    }
  return BEIT_OK;
}

int beit_loader_open(beit_loader **out, const beit_dataset *ds, const beit_loader_cfg *cfg) {
  *out = NULL;
  beit_loader *L = calloc(1, sizeof *L);
  if (!L) return beit_errorf("out of memory for the loader");
  pthread_mutex_init(&L->mu, NULL);
  pthread_cond_init(&L->work_cv, NULL), pthread_cond_init(&L->ready_cv, NULL), pthread_cond_init(&L->idle_cv, NULL);
  L->paused = 1; /* workers wait until the first seek fills the ring */
  int rc = setup(L, ds, cfg);
  if (rc == BEIT_OK) rc = start_threads(L);
  if (rc == BEIT_OK) rc = beit_loader_seek(L, 0, 0);
  if (rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", beit_last_error());
    beit_loader_close(L);
    return beit_errorf("%s", msg);
  }
  *out = L;
  return BEIT_OK;
}

void beit_loader_close(beit_loader *L) {
  if (!L) return;
  pthread_mutex_lock(&L->mu);
  L->stop = 1;
  pthread_cond_broadcast(&L->work_cv);
  pthread_mutex_unlock(&L->mu);
  for (int i = 0; L->threads && i < L->nthreads; i++) pthread_join(L->threads[i], NULL);  /* none if setup failed */
  for (int i = 0; L->slots && i < L->nslots; i++) free_slot(&L->slots[i]);
  pthread_mutex_destroy(&L->mu);
  pthread_cond_destroy(&L->work_cv), pthread_cond_destroy(&L->ready_cv), pthread_cond_destroy(&L->idle_cv);
  beit_image_free(&L->inline_img);
  free(L->threads), free(L->slots), beit_free(L->perm), free(L);
}

/* ---- consumer ----------------------------------------------------------------- */
int beit_loader_seek(beit_loader *L, int64_t epoch, int64_t step) {
  if (epoch < 0 || step < 0 || step > L->steps)
    return beit_errorf("seek to epoch %lld step %lld: expected epoch >= 0 and 0 <= step <= %lld", (long long)epoch,
                       (long long)step, (long long)L->steps);
  pthread_mutex_lock(&L->mu);
  L->paused = 1;
  while (L->busy > 0) pthread_cond_wait(&L->idle_cv, &L->mu);
  L->want_pos = L->next_pos = epoch * L->steps + step;
  L->cur_epoch = epoch, L->held = -1;
  for (int i = 0; i < L->nslots; i++) assign(L, &L->slots[i], L->next_pos++);
  L->paused = 0;
  pthread_cond_broadcast(&L->work_cv);
  pthread_mutex_unlock(&L->mu);
  return BEIT_OK;
}

static void release_held(beit_loader *L) {
  if (L->held < 0) return;
  pthread_mutex_lock(&L->mu);
  assign(L, &L->slots[L->held], L->next_pos++);
  L->held = -1;
  pthread_cond_broadcast(&L->work_cv);
  pthread_mutex_unlock(&L->mu);
}

static slot *find_pos(beit_loader *L, int64_t pos) {
  for (int i = 0; i < L->nslots; i++)
    if (L->slots[i].pos == pos) return &L->slots[i];
  return NULL;
}

/* Waits for (or, without workers, computes) the slot's samples. */
static int complete(beit_loader *L, slot *s) {
  double t0 = beit_now();
  if (!L->nthreads) {
    run_samples(L, s, 0, s->b.n, &L->inline_img, s->err, sizeof s->err);
    L->wait_s += beit_now() - t0;
    return BEIT_OK;
  }
  pthread_mutex_lock(&L->mu);
  int waited = 0;
  for (; !s->failed && s->done < s->b.n; waited = 1) pthread_cond_wait(&L->ready_cv, &L->mu);
  pthread_mutex_unlock(&L->mu);
  if (waited) L->wait_s += beit_now() - t0;
  return BEIT_OK;
}

int beit_loader_next(beit_loader *L, beit_batch *batch) {
  release_held(L);
  if (L->want_pos / L->steps > L->cur_epoch) {
    L->cur_epoch++;
    return 0;
  }
  slot *s = find_pos(L, L->want_pos);
  BEIT_CHECK(s != NULL);
  complete(L, s);
  if (s->failed || s->err[0]) return beit_errorf("%s", s->err);
  L->held = (int)(s - L->slots);
  L->want_pos++;
  *batch = s->b;
  return 1;
}

int64_t beit_loader_steps_per_epoch(const beit_loader *L) { return L->steps; }
double beit_loader_wait_seconds(const beit_loader *L) { return L->wait_s; }
int64_t beit_loader_samples_per_epoch(const beit_loader *L) { return L->per_rank; }
const beit_loader_cfg *beit_loader_config(const beit_loader *L) { return &L->cfg; }
const beit_mask_cfg *beit_loader_mask_config(const beit_loader *L) { return &L->mask; }

int beit_eval_images(const beit_dataset *ds, int64_t first, int count, const beit_eval_prep *prep, float *out,
                     int32_t *labels) {
  beit_image img = {0};
  size_t per = (size_t)ds->channels * prep->size * prep->size;
  int rc = BEIT_OK;
  if (first < 0 || count < 0 || first + count > ds->n)
    rc = beit_errorf("%s: eval samples [%lld, %lld) outside the %lld of the dataset", ds->root, (long long)first,
                     (long long)(first + count), (long long)ds->n);
  for (int k = 0; rc == BEIT_OK && k < count; k++) {
    int32_t label;
    rc = beit_dataset_get_scaled(ds, first + k, beit_eval_resize_side(prep->size, prep->crop_pct), &img, &label);
    if (rc == BEIT_OK) rc = beit_aug_eval(&img, prep, out + k * per);
    if (labels && rc == BEIT_OK) labels[k] = label;
  }
  beit_image_free(&img);
  return rc;
}
