/* conv2d_dnnl.c - conv2d through oneDNN's convolution primitives (BEIT_CONV=dnnl, the default when
 * built with oneDNN; docs/performance.md "Convolutions (the tokenizer)"). With the dVAE's 8-128
 * channels im2col's copies cost more than its GEMMs; oneDNN convolves directly with JIT kernels.
 *
 * Memory is our plain NCHW / OIHW (GOIHW with groups), so there are no reorders; the bias is
 * fused. Creating a primitive costs far more than running a small one, so primitives are cached
 * per shape and thread count (oneDNN sizes its work split by the threads at creation): a bounded
 * table under a mutex, least recently used out first (never one in use), freed at exit. The
 * scratchpad is ours (user mode): the caller's scratch when it is large enough, so concurrent
 * calls share nothing but the immutable primitive. A shape oneDNN refuses stays refused (cached)
 * and the caller falls back to im2col. */
#include "ops/conv2d_dnnl.h"

#ifdef BEIT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { CACHE_MAX = 64, KEY_N = 11 };

typedef struct {
  int key[KEY_N];     /* conv2d_dims (9), threads, bias; key[0] == 0: empty slot */
  dnnl_primitive_t prim; /* NULL: oneDNN refused the shape */
  dnnl_memory_desc_t md[5]; /* src, weights, bias (ndims 0: none), dst, scratchpad */
  size_t scratch_bytes;
  uint64_t used;      /* tick of the last use */
  int refs;           /* calls running it now */
} entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static entry g_cache[CACHE_MAX];
static uint64_t g_tick;

static void cache_free(void) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < CACHE_MAX; i++) {
    if (g_cache[i].prim) dnnl_primitive_destroy(g_cache[i].prim);
    memset(&g_cache[i], 0, sizeof g_cache[i]);
  }
  if (g_engine) dnnl_engine_destroy(g_engine);
  g_engine = NULL;
  pthread_mutex_unlock(&g_mu);
}

static void engine_init(void) {
  if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
  atexit(cache_free);
}

static void init_md(dnnl_memory_desc_t *md, int n, const dnnl_dims_t dims, dnnl_format_tag_t tag) {
  dnnl_memory_desc_init_by_tag(md, n, dims, dnnl_f32, tag);
}

/* The four tensors' descriptors of d (no bias: md[2] zeroed, the "absent" descriptor). */
static void tensor_mds(entry *e, const conv2d_dims *d, int bias) {
  const dnnl_dim_t G = d->groups;
  /* full dnnl_dims_t arrays: the API's parameters are arrays of DNNL_MAX_NDIMS */
  const dnnl_dims_t src = {d->B, d->IC, d->H, d->W}, dst = {d->B, d->OC, conv2d_out_h(d), conv2d_out_w(d)};
  const dnnl_dims_t w = {G, d->OC / G, d->IC / G, d->K, d->K}, w1 = {d->OC, d->IC, d->K, d->K}, b = {d->OC};
  init_md(&e->md[0], 4, src, dnnl_nchw);
  if (G == 1) init_md(&e->md[1], 4, w1, dnnl_oihw);
  else init_md(&e->md[1], 5, w, dnnl_goihw);
  memset(&e->md[2], 0, sizeof e->md[2]);
  if (bias) init_md(&e->md[2], 1, b, dnnl_x);
  init_md(&e->md[3], 4, dst, dnnl_nchw);
}

/* Creates e's forward primitive; leaves e->prim NULL when oneDNN refuses. */
static void create(entry *e, const conv2d_dims *d, int bias) {
  tensor_mds(e, d, bias);
  const dnnl_dims_t strides = {d->stride, d->stride}, pad = {d->pad, d->pad};
  dnnl_convolution_desc_t cd;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t pd = NULL;
  e->prim = NULL;
  if (!g_engine || dnnl_primitive_attr_create(&attr) != dnnl_success) return;
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  dnnl_status_t st = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                                        &e->md[0], &e->md[1], bias ? &e->md[2] : NULL, &e->md[3],
                                                        strides, pad, pad);
  if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &cd, attr, g_engine, NULL);
  if (st == dnnl_success) {
    e->md[4] = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch_bytes = dnnl_memory_desc_get_size(&e->md[4]);
    if (dnnl_primitive_create(&e->prim, pd) != dnnl_success) e->prim = NULL;
  }
  if (pd) dnnl_primitive_desc_destroy(pd);
  dnnl_primitive_attr_destroy(attr);
}

static void make_key(int *key, const conv2d_dims *d, int bias) {
  const int k[KEY_N] = {d->B, d->IC, d->H, d->W, d->OC, d->K, d->stride, d->pad, d->groups,
                        omp_in_parallel() ? 1 : omp_get_max_threads(), bias};
  memcpy(key, k, sizeof k);
}

/* The entry for (d, bias) with a reference held, created if need be; NULL when the table is full
 * of entries in use (then *tmp is a fresh one the caller destroys). */
static entry *acquire(const conv2d_dims *d, int bias, entry *tmp) {
  pthread_once(&g_once, engine_init);
  int key[KEY_N];
  make_key(key, d, bias);
  pthread_mutex_lock(&g_mu);
  entry *e = NULL, *victim = NULL;
  for (int i = 0; i < CACHE_MAX && !e; i++) {
    entry *c = &g_cache[i];
    if (!memcmp(c->key, key, sizeof key)) e = c;
    else if (!c->refs && (!victim || c->used < victim->used)) victim = c; /* empty slots have used 0 */
  }
  if (!e && victim) {
    if (victim->prim) dnnl_primitive_destroy(victim->prim);
    memset(victim, 0, sizeof *victim);
    memcpy(victim->key, key, sizeof key);
    create(victim, d, bias); /* under the lock: creation is rare, and two threads never build one shape twice */
    e = victim;
  }
  if (e) e->refs++, e->used = ++g_tick;
  pthread_mutex_unlock(&g_mu);
  if (!e) {
    memset(tmp, 0, sizeof *tmp);
    memcpy(tmp->key, key, sizeof key);
    create(tmp, d, bias);
  }
  return e;
}

static void release(entry *e, entry *tmp) {
  if (!e) {
    if (tmp->prim) dnnl_primitive_destroy(tmp->prim);
    return;
  }
  pthread_mutex_lock(&g_mu);
  e->refs--;
  pthread_mutex_unlock(&g_mu);
}

/* Runs e's primitive on ptr[0..3] (src, weights, bias or NULL, dst) with the scratchpad in the
 * caller's scratch when it fits. 1 on success. */
static int execute(const entry *e, void *const ptr[4], float *scratch, size_t scratch_floats) {
  static const int names[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD};
  void *own = NULL, *sp = NULL;
  if (e->scratch_bytes) {
    int fits = e->scratch_bytes <= scratch_floats * sizeof(float) && !((uintptr_t)scratch % 64);
    sp = fits ? (void *)scratch : (own = aligned_alloc(64, (e->scratch_bytes + 63) / 64 * 64));
    if (!sp) return 0;
  }
  dnnl_exec_arg_t args[5];
  dnnl_memory_t mem[5] = {0};
  dnnl_stream_t stream = NULL;
  int n = 0, ok = dnnl_stream_create(&stream, g_engine, dnnl_stream_default_flags) == dnnl_success;
  for (int i = 0; i < 5 && ok; i++) {
    void *p = i < 4 ? ptr[i] : sp;
    if (!p) continue;
    ok = dnnl_memory_create(&mem[i], &e->md[i], g_engine, p) == dnnl_success;
    args[n++] = (dnnl_exec_arg_t){names[i], mem[i]};
  }
  if (ok) ok = dnnl_primitive_execute(e->prim, stream, n, args) == dnnl_success &&
               dnnl_stream_wait(stream) == dnnl_success;
  for (int i = 0; i < 5; i++) if (mem[i]) dnnl_memory_destroy(mem[i]);
  if (stream) dnnl_stream_destroy(stream);
  free(own);
  return ok;
}

int conv2d_dnnl_forward(float *out, float *scratch, size_t scratch_floats, const float *inp, const float *weight,
                        const float *bias, const conv2d_dims *d) {
  if (d->B < 1) return 0;
  entry tmp, *e = acquire(d, bias != NULL, &tmp);
  const entry *use = e ? e : &tmp;
  void *const ptr[4] = {(void *)inp, (void *)weight, (void *)bias, out};
  int ok = use->prim && execute(use, ptr, scratch, scratch_floats);
  release(e, &tmp);
  return ok;
}
int conv2d_dnnl_cached(void) {
  int n = 0;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < CACHE_MAX; i++) n += g_cache[i].key[0] != 0;
  pthread_mutex_unlock(&g_mu);
  return n;
}
#else
int conv2d_dnnl_cached(void) { return 0; }
int conv2d_dnnl_forward(float *out, float *scratch, size_t scratch_floats, const float *inp, const float *weight,
                        const float *bias, const conv2d_dims *d) {
  (void)out, (void)scratch, (void)scratch_floats, (void)inp, (void)weight, (void)bias, (void)d;
  return 0; /* not built in */
}
#endif
