/* vq.c - the vector-quantised tokenizer (vq.h): the dVAE network with a latent of
 * width D, cosine lookup in a unit codebook, straight-through estimator,
 * commitment loss, EMA codebook with dead-code restart. Kernels: src/ops/vq.c. */
#include "model/vq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "io/safetensors.h"
#include "model/kmeans.h"

int vq_grid_side(const vq_config *c) { return dvae_grid_side(&c->net); }

int vq_config_check(const vq_config *c) {
  if (dvae_config_check(&c->net)) return BEIT_ERR;
  if (c->vocab < 2 || c->vocab > 65536) return beit_errorf("vq: vocab %d is outside 2..65536", c->vocab);
  if (c->net.vocab < 2 || c->net.vocab > 1024)
    return beit_errorf("vq: code dimension %d is outside 2..1024", c->net.vocab);
  return BEIT_OK;
}

static int hw_of(const vq_tok *v) { return vq_grid_side(&v->cfg) * vq_grid_side(&v->cfg); }

int vq_create(vq_tok *v, const vq_config *c) {
  memset(v, 0, sizeof *v);
  if (vq_config_check(c)) return BEIT_ERR;
  v->cfg = *c;
  if (dvae_create(&v->net, &c->net, 1)) return BEIT_ERR;
  beit_params_init(&v->cb);
  int64_t vd[2] = {c->vocab, c->net.vocab}, vv[1] = {c->vocab};
  beit_params_add(&v->cb, "quantizer.codebook", 2, vd, 0, 0);
  beit_params_add(&v->cb, "quantizer.ema_count", 1, vv, 0, 0);
  beit_params_add(&v->cb, "quantizer.ema_sum", 2, vd, 0, 0);
  if (beit_params_alloc_data(&v->cb)) {
    vq_free(v);
    return beit_error_context("vq codebook");
  }
  return BEIT_OK;
}

static void free_bufs(vq_tok *v) {
  beit_free(v->unit), beit_free(v->norm), beit_free(v->q), beit_free(v->zmap), beit_free(v->drows);
  beit_free(v->dmap), beit_free(v->codes), beit_free(v->pick);
  v->unit = v->norm = v->q = v->zmap = v->drows = v->dmap = NULL, v->codes = NULL, v->pick = NULL, v->cap = 0;
}

void vq_free(vq_tok *v) {
  dvae_free(&v->net);
  beit_params_free(&v->cb);
  free_bufs(v);
  memset(v, 0, sizeof *v);
}

static float *codebook(const vq_tok *v) { return beit_params_get(&v->cb, "quantizer.codebook"); }
static float *ema_count(const vq_tok *v) { return beit_params_get(&v->cb, "quantizer.ema_count"); }
static float *ema_sum(const vq_tok *v) { return beit_params_get(&v->cb, "quantizer.ema_sum"); }

/* Buffers for B images (grown, never shrunk). */
static int reserve_rows(vq_tok *v, int B) {
  const size_t n = (size_t)B * hw_of(v), D = (size_t)v->cfg.net.vocab;
  if (n <= v->cap) return BEIT_OK;
  free_bufs(v);
  v->unit = beit_alloc(n * D * sizeof(float), "vq rows");
  v->norm = beit_alloc(n * sizeof(float), "vq norms");
  v->q = beit_alloc(n * D * sizeof(float), "vq codes");
  v->zmap = beit_alloc(n * D * sizeof(float), "vq latent");
  v->drows = beit_alloc(n * D * sizeof(float), "vq gradient");
  v->dmap = beit_alloc(n * D * sizeof(float), "vq gradient");
  v->codes = beit_alloc(n * sizeof(int32_t), "vq codes");
  v->pick = beit_alloc((size_t)v->cfg.vocab * sizeof(uint32_t), "vq restart picks");
  if (!v->unit || !v->norm || !v->q || !v->zmap || !v->drows || !v->dmap || !v->codes || !v->pick) {
    free_bufs(v);
    return BEIT_ERR;
  }
  v->cap = n;
  return BEIT_OK;
}

void vq_init_weights(vq_tok *v, uint64_t seed) {
  const beit_backend *be = v->net.be;
  dvae_init_weights(&v->net, seed);
  const int V = v->cfg.vocab, D = v->cfg.net.vocab;
  float *C = codebook(v), *cnt = ema_count(v), *sum = ema_sum(v);
  beit_rng r;
  beit_rng_seed(&r, seed, BEIT_RNG_VQ, 0, 1);
  for (size_t i = 0; i < (size_t)V * D; i++) C[i] = (float)beit_rng_normal(&r);
  be->vq_l2_normalize(C, NULL, C, (size_t)V, D);
  memcpy(sum, C, (size_t)V * D * sizeof(float));
  for (int k = 0; k < V; k++) cnt[k] = 1.0f;
}

/* Unit encoder outputs of B images into v->unit (rows), norms into v->norm. */
static int encode_rows(vq_tok *v, const float *images, int B, int train) {
  const beit_backend *be = v->net.be;
  const int D = v->cfg.net.vocab, hw = hw_of(v);
  if (reserve_rows(v, B)) return BEIT_ERR;
  const float *feat = v->dmap;
  if (train) {
    if (!(feat = dvae_train_encode(&v->net, images, B))) return BEIT_ERR;
  } else if (dvae_encoder_logits(&v->net, images, B, v->dmap)) {
    return BEIT_ERR;
  }
  be->vq_maps_to_rows(v->unit, feat, B, D, hw);
  be->vq_l2_normalize(v->unit, v->norm, v->unit, (size_t)B * hw, D);
  return BEIT_OK;
}

/* k-means over D-dimensional rows through the patch k-means: a "patch" of
 * channels x p x p values with channels * p^2 = D (channels 1..4). */
static int kmeans_shape(int D, kmeans_config *kc) {
  for (int p = 8; p >= 1; p /= 2)
    if (D % (p * p) == 0 && D / (p * p) <= 4) {
      *kc = (kmeans_config){.image_size = p, .channels = D / (p * p), .patch = p, .normalize = KMEANS_NORM_NONE};
      return 1;
    }
  return 0;
}

int vq_init_codebook(vq_tok *v, const float *images, int B, uint64_t seed) {
  const beit_backend *be = v->net.be;
  const int V = v->cfg.vocab, D = v->cfg.net.vocab;
  if (encode_rows(v, images, B, 0)) return BEIT_ERR;
  size_t n = (size_t)B * hw_of(v);
  if (n < (size_t)V)
    return beit_errorf("vq: %zu encoder outputs cannot initialise %d codes (a larger batch or a smaller vocab)", n, V);
  float *C = codebook(v), *cnt = ema_count(v), *sum = ema_sum(v);
  kmeans_config kc;
  if (kmeans_shape(D, &kc)) {
    kc.k = V;
    kmeans_tok km;
    kmeans_fit_opts o = {.iters = 10, .seed = seed, .max_patches = 0};
    kmeans_fit_stats st;
    if (kmeans_create(&km, &kc)) return BEIT_ERR;
    int rc = kmeans_fit(&km, v->unit, n, &o, &st);
    if (!rc) memcpy(C, kmeans_centroids(&km), (size_t)V * D * sizeof(float));
    kmeans_free(&km);
    if (rc) return BEIT_ERR;
  } else {  /* a code dimension the patch k-means cannot shape: V distinct outputs, evenly spaced */
    for (int k = 0; k < V; k++) memcpy(C + (size_t)k * D, v->unit + (size_t)k * (n / V) * D, (size_t)D * sizeof(float));
  }
  be->vq_l2_normalize(C, NULL, C, (size_t)V, D);
  memcpy(sum, C, (size_t)V * D * sizeof(float));
  for (int k = 0; k < V; k++) cnt[k] = 1.0f;  /* as a restarted code: unused for ~70 steps (decay 0.99) it restarts */
  return BEIT_OK;
}

int vq_forward_train(vq_tok *v, const float *images, int B, const vq_train_opts *o, vq_stats *st) {
  const beit_backend *be = v->net.be;
  const int D = v->cfg.net.vocab, V = v->cfg.vocab, hw = hw_of(v);
  const size_t n = (size_t)B * hw;
  memset(st, 0, sizeof *st);
  v->B = 0;
  if (encode_rows(v, images, B, 1)) return BEIT_ERR;
  be->vq_cosine_lookup(v->codes, NULL, v->unit, codebook(v), n, D, V);
  be->gather_rows(v->q, codebook(v), v->codes, (int)n, D);
  be->vq_rows_to_maps(v->zmap, v->q, B, D, hw);  /* straight through: the decoder sees the codes */
  if (dvae_train_decode(&v->net, v->zmap, &st->recon)) return BEIT_ERR;
  be->zero(v->drows, n * D);
  st->commit = be->vq_commitment(v->drows, v->unit, v->q, n, D, o->beta);  /* gradient kept for backward */
  st->loss = st->recon + st->commit;
  uint8_t *seen = beit_alloc((size_t)V, "vq code set");
  if (!seen) return BEIT_ERR;
  st->codes_used = be->distinct_codes(seen, v->codes, (int)n, V);
  beit_free(seen);
  v->B = B;
  return BEIT_OK;
}

int vq_backward(vq_tok *v, const vq_train_opts *o) {
  const beit_backend *be = v->net.be;
  (void)o;
  if (v->B <= 0) return beit_errorf("vq_backward: no vq_forward_train to differentiate");
  const int D = v->cfg.net.vocab, hw = hw_of(v);
  const size_t n = (size_t)v->B * hw;
  const float *dz = dvae_train_backward_decoder(&v->net);
  be->vq_maps_to_rows(v->dmap, dz, v->B, D, hw);  /* d loss / d q, passed straight to the unit rows */
  be->axpy(v->drows, v->dmap, 1.0f, n * D);
  be->vq_l2_normalize_backward(v->drows, v->drows, v->unit, v->norm, n, D);
  be->vq_rows_to_maps(v->dmap, v->drows, v->B, D, hw);
  dvae_train_backward_encoder(&v->net, v->dmap);
  return BEIT_OK;
}

int vq_update_codebook(vq_tok *v, const vq_train_opts *o) {
  const beit_backend *be = v->net.be;
  if (v->B <= 0) return beit_errorf("vq_update_codebook: no vq_forward_train before"), -1;
  const int D = v->cfg.net.vocab, V = v->cfg.vocab;
  const size_t n = (size_t)v->B * hw_of(v);
  be->vq_ema_update(codebook(v), ema_count(v), ema_sum(v), v->unit, v->codes, n, D, V, o->decay);
  beit_rng r;
  beit_rng_seed(&r, o->seed, BEIT_RNG_VQ, (uint64_t)o->step, 0);
  for (int k = 0; k < V; k++) v->pick[k] = (uint32_t)(beit_rng_u64(&r) % n);
  return be->vq_restart_dead(codebook(v), ema_count(v), ema_sum(v), v->unit, v->pick, D, V, o->dead);
}

int vq_encode(vq_tok *v, const float *images, int B, int32_t *tokens) {
  const beit_backend *be = v->net.be;
  v->B = 0;
  if (encode_rows(v, images, B, 0)) return BEIT_ERR;
  be->vq_cosine_lookup(tokens, NULL, v->unit, codebook(v), (size_t)B * hw_of(v), v->cfg.net.vocab, v->cfg.vocab);
  return BEIT_OK;
}

int vq_decode(vq_tok *v, const int32_t *tokens, int B, float *images) {
  const beit_backend *be = v->net.be;
  const int D = v->cfg.net.vocab, hw = hw_of(v);
  v->B = 0;
  if (reserve_rows(v, B)) return BEIT_ERR;
  for (size_t i = 0; i < (size_t)B * hw; i++)
    if (tokens[i] < 0 || tokens[i] >= v->cfg.vocab)
      return beit_errorf("vq: token %d at %zu is outside the vocabulary 0..%d", tokens[i], i, v->cfg.vocab - 1);
  be->upload(v->codes, tokens, (size_t)B * hw * sizeof(int32_t));
  be->gather_rows(v->q, codebook(v), v->codes, B * hw, D);
  be->vq_rows_to_maps(v->zmap, v->q, B, D, hw);
  return dvae_decode_latent(&v->net, v->zmap, B, images);
}

/* ---- checkpoints ------------------------------------------------------------ */
int vq_save(const vq_tok *v, const char *path, const char *const *extra_kv, int n_extra) {
  const dvae_config *c = &v->cfg.net;
  char s[9][24];
  int vals[] = {c->image_size, c->channels, c->n_hid, c->n_init, c->n_blk_per_group, c->n_groups, c->vocab,
                v->cfg.vocab};
  for (int i = 0; i < 8; i++) snprintf(s[i], sizeof s[i], "%d", vals[i]);
  const char *kv[2 * (10 + 16)] = {"type", "vq", "recon", c->recon == DVAE_RECON_MSE ? "mse" : "laplace",
                                   "image_size", s[0], "channels", s[1], "n_hid", s[2], "n_init", s[3],
                                   "n_blk_per_group", s[4], "n_groups", s[5], "code_dim", s[6], "vocab", s[7]};
  if (n_extra > 16) return beit_errorf("vq_save: %d extra metadata pairs (at most 16)", n_extra);
  for (int i = 0; i < 2 * n_extra; i++) kv[20 + i] = extra_kv[i];
  beit_params all;  /* one file: the network's table and the quantizer's */
  beit_params_init(&all);
  const beit_params *tabs[2] = {&v->net.params, &v->cb};
  for (int t = 0; t < 2; t++)
    for (int i = 0; i < tabs[t]->n; i++) {
      const beit_tensor_info *ti = &tabs[t]->t[i];
      beit_params_add(&all, ti->name, ti->ndim, ti->shape, 0, 0);
    }
  int rc = beit_params_alloc_data(&all);
  if (!rc) {
    memcpy(all.data, v->net.params.data, v->net.params.total * sizeof(float));
    memcpy(all.data + v->net.params.total, v->cb.data, v->cb.total * sizeof(float));
    rc = beit_params_save(&all, path, kv, 10 + n_extra);
  }
  beit_params_free(&all);
  return rc;
}

static int meta_int(const beit_safetensors *st, const char *key, int *out) {
  const char *s = beit_st_meta(st, key);
  char *end;
  long val = s ? strtol(s, &end, 10) : 0;
  if (!s || end == s || *end || val < 0 || val > (1 << 30))
    return beit_errorf("%s: metadata '%s' is %s (not a beit.c VQ tokenizer?)", st->path, key,
                       s ? "not a valid integer" : "missing");
  *out = (int)val;
  return BEIT_OK;
}

int vq_load(vq_tok *v, const char *path) {
  beit_safetensors st;
  memset(v, 0, sizeof *v);
  if (beit_st_open(&st, path)) return BEIT_ERR;
  vq_config c;
  memset(&c, 0, sizeof c);
  const char *type = beit_st_meta(&st, "type"), *recon = beit_st_meta(&st, "recon");
  int rc = !type || strcmp(type, "vq") ? beit_errorf("%s: metadata type is '%s', expected 'vq'", path,
                                                     type ? type : "(none)") : BEIT_OK;
  if (!rc)
    rc = meta_int(&st, "image_size", &c.net.image_size) || meta_int(&st, "channels", &c.net.channels) ||
         meta_int(&st, "n_hid", &c.net.n_hid) || meta_int(&st, "n_init", &c.net.n_init) ||
         meta_int(&st, "n_blk_per_group", &c.net.n_blk_per_group) || meta_int(&st, "n_groups", &c.net.n_groups) ||
         meta_int(&st, "code_dim", &c.net.vocab) || meta_int(&st, "vocab", &c.vocab);
  c.net.recon = recon && !strcmp(recon, "mse") ? DVAE_RECON_MSE : DVAE_RECON_LAPLACE;
  /* each tensor needs 2 bytes a value at least: a small file cannot make us allocate gigabytes */
  if (!rc && vq_config_check(&c)) rc = beit_error_context("%s", path);
  double values = rc ? 0 : dvae_param_count(&c.net, 1) + (double)c.vocab * (2 * c.net.vocab + 1);
  if (!rc && values * 2 > (double)st.data_size)
    rc = beit_errorf("%s: the configuration describes %.0f values, but the file holds only %zu bytes of tensors", path,
                     values, st.data_size);
  if (!rc) rc = vq_create(v, &c);
  if (!rc && (beit_params_load_from(&v->net.params, &st, 0) || beit_params_load_from(&v->cb, &st, 0)))
    rc = BEIT_ERR;
  if (!rc && st.n != v->net.params.n + v->cb.n)
    rc = beit_errorf("%s: %d tensors, but a VQ tokenizer of this configuration has %d", path, st.n,
                     v->net.params.n + v->cb.n);
  if (rc && v->cb.t) vq_free(v);
  beit_st_close(&st);
  return rc ? beit_error_context("loading VQ tokenizer %s", path) : BEIT_OK;
}
