/* dvae.c - the DALL-E dVAE: the layer walk (input conv, residual groups with max
 * pooling or nearest upsampling, ReLU + output conv) built from a config, one
 * activation arena per batch size, the latent layer (Gumbel-softmax, KL to the
 * uniform prior, argmax codes), the reconstruction losses, and checkpoints. */
#include "model/dvae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "io/safetensors.h"

enum { MODE_INFER = 1, MODE_TRAIN = 2 };

/* ---- config ---------------------------------------------------------------- */
void dvae_config_small(dvae_config *c) {
  *c = (dvae_config){.image_size = 28, .channels = 1, .n_hid = 32, .n_init = 64, .n_blk_per_group = 1,
                     .n_groups = 3, .vocab = 512, .recon = DVAE_RECON_LAPLACE};
}

void dvae_config_dalle(dvae_config *c) {
  *c = (dvae_config){.image_size = 112, .channels = 3, .n_hid = 256, .n_init = 128, .n_blk_per_group = 2,
                     .n_groups = 4, .vocab = 8192, .recon = DVAE_RECON_LAPLACE};
}

int dvae_grid_side(const dvae_config *c) { return c->image_size >> (c->n_groups - 1); }

int dvae_config_check(const dvae_config *c) {
  if (c->n_groups < 1 || c->n_groups > 6) return beit_errorf("dvae: n_groups %d is outside 1..6", c->n_groups);
  if (c->n_blk_per_group < 1 || c->n_blk_per_group > 8)
    return beit_errorf("dvae: n_blk_per_group %d is outside 1..8", c->n_blk_per_group);
  int down = 1 << (c->n_groups - 1);
  if (c->image_size < down || c->image_size % down)
    return beit_errorf("dvae: image size %d is not a multiple of the downsampling %d (n_groups %d)",
                       c->image_size, down, c->n_groups);
  if (c->channels < 1 || c->channels > 4) return beit_errorf("dvae: %d channels (1..4 supported)", c->channels);
  if (c->n_hid < 4 || c->n_hid % 4) return beit_errorf("dvae: n_hid %d must be a positive multiple of 4", c->n_hid);
  if (c->n_init < 1) return beit_errorf("dvae: n_init %d must be positive", c->n_init);
  /* far above DALL-E's (n_hid 256, 112 px); also keeps the widths (n_hid << 5) inside an int */
  if (c->n_hid > DVAE_MAX_WIDTH || c->n_init > DVAE_MAX_WIDTH || c->image_size > DVAE_MAX_SIDE)
    return beit_errorf("dvae: n_hid %d, n_init %d or image size %d above the limits %d, %d, %d", c->n_hid, c->n_init,
                       c->image_size, DVAE_MAX_WIDTH, DVAE_MAX_WIDTH, DVAE_MAX_SIDE);
  if (c->vocab < 2 || c->vocab > 65536) return beit_errorf("dvae: vocab %d is outside 2..65536", c->vocab);
  if (c->recon != DVAE_RECON_LAPLACE && c->recon != DVAE_RECON_MSE)
    return beit_errorf("dvae: unknown reconstruction loss %d", c->recon);
  return BEIT_OK;
}

/* ---- building the layer walk ------------------------------------------------ */
static void add_conv(dvae *d, dvae_stage *s, int k, const char *prefix, int cin, int cout, int ks, int side) {
  char name[BEIT_NAME_MAX];
  int64_t ws[4] = {cout, cin, ks, ks}, bs[1] = {cout};
  snprintf(name, sizeof name, "%s.w", prefix);
  s->w[k] = beit_params_add(&d->params, name, 4, ws, 0, 1);
  snprintf(name, sizeof name, "%s.b", prefix);
  s->b[k] = beit_params_add(&d->params, name, 1, bs, 0, 0);
  s->dims[k] = (conv2d_dims){0, cin, side, side, cout, ks, 1, (ks - 1) / 2, 1};
}

static dvae_stage *new_stage(dvae_stage *arr, int *n, int kind, int cin, int cout, int side_in, int side_out) {
  BEIT_CHECK(*n < DVAE_MAX_STAGES);
  dvae_stage *s = &arr[(*n)++];
  *s = (dvae_stage){.kind = kind, .cin = cin, .cout = cout, .side_in = side_in, .side_out = side_out};
  for (int k = 0; k < 5; k++) s->w[k] = s->b[k] = -1;
  return s;
}

/* Encoder block: res path 3x3, 3x3, 3x3, 1x1; decoder block: 1x1, 3x3, 3x3, 3x3. */
static void add_block(dvae *d, dvae_stage *arr, int *n, const char *prefix, int cin, int cout, int side,
                      int is_encoder, float gain) {
  dvae_stage *s = new_stage(arr, n, DVAE_ST_BLOCK, cin, cout, side, side);
  s->hid = cout / 4;
  s->gain = gain;
  char name[BEIT_NAME_MAX];
  if (cin != cout) {
    snprintf(name, sizeof name, "%s.id_path", prefix);
    add_conv(d, s, 0, name, cin, cout, 1, side);
  }
  static const int enc_k[4] = {3, 3, 3, 1}, dec_k[4] = {1, 3, 3, 3};
  for (int k = 1; k <= 4; k++) {
    snprintf(name, sizeof name, "%s.res_path.conv_%d", prefix, k);
    add_conv(d, s, k, name, k == 1 ? cin : s->hid, k == 4 ? cout : s->hid, is_encoder ? enc_k[k - 1] : dec_k[k - 1],
             side);
  }
}

static void build_encoder(dvae *d) {
  const dvae_config *c = &d->cfg;
  float gain = 1.0f / (float)((c->n_groups * c->n_blk_per_group) * (c->n_groups * c->n_blk_per_group));
  int side = c->image_size, width = c->n_hid;
  char name[BEIT_NAME_MAX];
  dvae_stage *s = new_stage(d->enc, &d->n_enc, DVAE_ST_CONV, c->channels, width, side, side);
  add_conv(d, s, 0, "encoder.blocks.input", c->channels, width, 7, side);
  for (int g = 1; g <= c->n_groups; g++) {
    int wout = c->n_hid << (g - 1);
    for (int k = 1; k <= c->n_blk_per_group; k++) {
      snprintf(name, sizeof name, "encoder.blocks.group_%d.block_%d", g, k);
      add_block(d, d->enc, &d->n_enc, name, width, wout, side, 1, gain);
      width = wout;
    }
    if (g < c->n_groups) {
      new_stage(d->enc, &d->n_enc, DVAE_ST_POOL, width, width, side, side / 2);
      side /= 2;
    }
  }
  s = new_stage(d->enc, &d->n_enc, DVAE_ST_RELU_CONV, width, c->vocab, side, side);
  add_conv(d, s, 0, "encoder.blocks.output.conv", width, c->vocab, 1, side);
}

static void build_decoder(dvae *d) {
  const dvae_config *c = &d->cfg;
  float gain = 1.0f / (float)((c->n_groups * c->n_blk_per_group) * (c->n_groups * c->n_blk_per_group));
  int side = dvae_grid_side(c), width = c->n_init;
  char name[BEIT_NAME_MAX];
  dvae_stage *s = new_stage(d->dec, &d->n_dec, DVAE_ST_CONV, c->vocab, width, side, side);
  add_conv(d, s, 0, "decoder.blocks.input", c->vocab, width, 1, side);
  for (int g = 1; g <= c->n_groups; g++) {
    int wout = c->n_hid << (c->n_groups - g);
    for (int k = 1; k <= c->n_blk_per_group; k++) {
      snprintf(name, sizeof name, "decoder.blocks.group_%d.block_%d", g, k);
      add_block(d, d->dec, &d->n_dec, name, width, wout, side, 0, gain);
      width = wout;
    }
    if (g < c->n_groups) {
      new_stage(d->dec, &d->n_dec, DVAE_ST_UPSAMPLE, width, width, side, side * 2);
      side *= 2;
    }
  }
  s = new_stage(d->dec, &d->n_dec, DVAE_ST_RELU_CONV, width, 2 * c->channels, side, side);
  add_conv(d, s, 0, "decoder.blocks.output.conv", width, 2 * c->channels, 1, side);
}

int dvae_create(dvae *d, const dvae_config *c, int with_decoder) {
  memset(d, 0, sizeof *d);
  if (dvae_config_check(c)) return BEIT_ERR;
  d->cfg = *c;
  d->be = beit_backend_default();
  d->has_decoder = with_decoder;
  beit_params_init(&d->params);
  build_encoder(d);
  if (with_decoder) build_decoder(d);
  if (beit_params_alloc(&d->params)) {
    dvae_free(d);
    return beit_error_context("dvae parameters");
  }
  return BEIT_OK;
}

void dvae_free(dvae *d) {
  beit_params_free(&d->params);
  if (d->arena) d->be->free(d->arena);
  memset(d, 0, sizeof *d);
}

void dvae_init_weights(dvae *d, uint64_t seed) {
  beit_params *p = &d->params;
  for (int i = 0; i < p->n; i++) {
    beit_tensor_info *t = &p->t[i];
    float *x = p->data + t->offset;
    if (t->ndim != 4) { memset(x, 0, t->numel * sizeof(float)); continue; }
    beit_rng r;
    beit_rng_seed(&r, seed, BEIT_RNG_INIT, (uint64_t)i, 0);
    double std = 1.0 / sqrt((double)(t->shape[1] * t->shape[2] * t->shape[3]));
    for (size_t j = 0; j < t->numel; j++) x[j] = (float)(std * beit_rng_normal(&r));
  }
}

/* ---- activation arena ------------------------------------------------------ */
typedef struct { uint8_t *base; size_t off; } cursor;

static void *take(cursor *c, size_t bytes) {
  size_t o = (c->off + 63) & ~(size_t)63;
  c->off = o + bytes;
  return c->base ? c->base + o : NULL;
}
static float *takef(cursor *c, size_t n) { return take(c, n * sizeof(float)); }

static size_t plane_in(const dvae_stage *s) { return (size_t)s->cin * s->side_in * s->side_in; }
static size_t plane_out(const dvae_stage *s) { return (size_t)s->cout * s->side_out * s->side_out; }
static size_t plane_hid(const dvae_stage *s) { return (size_t)s->hid * s->side_in * s->side_in; }
static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

typedef struct { size_t in, out, hid, pool, block_out, scratch; } stage_maxima;

static void stage_max(const beit_backend *be, const dvae_stage *st, int n, int B, stage_maxima *m) {
  for (int i = 0; i < n; i++) {
    const dvae_stage *s = &st[i];
    m->out = max2(m->out, plane_out(s));
    m->in = max2(m->in, plane_in(s));
    if (s->kind == DVAE_ST_BLOCK) m->hid = max2(m->hid, plane_hid(s)), m->block_out = max2(m->block_out, plane_out(s));
    if (s->kind == DVAE_ST_POOL) m->pool = max2(m->pool, plane_out(s));
    for (int k = 0; k < 5; k++)
      if (s->w[k] >= 0) {
        conv2d_dims cd = s->dims[k];
        cd.B = B;
        m->scratch = max2(m->scratch, be->conv2d_scratch_floats(&cd));
      }
  }
}

/* Training: every stage keeps its output and saved tensors. */
static void plan_train_acts(dvae_stage *st, dvae_act *act, int n, int B, cursor *c) {
  for (int i = 0; i < n; i++) {
    const dvae_stage *s = &st[i];
    memset(&act[i], 0, sizeof act[i]);
    act[i].out = takef(c, B * plane_out(s));
    if (s->kind == DVAE_ST_BLOCK) {
      act[i].r[0] = takef(c, B * plane_in(s));
      for (int k = 1; k < 4; k++) act[i].r[k] = takef(c, B * plane_hid(s));
    }
    if (s->kind == DVAE_ST_RELU_CONV) act[i].r[0] = takef(c, B * plane_in(s));
    if (s->kind == DVAE_ST_POOL) act[i].argmax = take(c, B * plane_out(s));
  }
}

/* Inference: outputs alternate between two buffers, block internals share temps
 * (r[3] reuses r[1]'s buffer: conv_3 reads r[2], and nothing reads r[1] after conv_2). */
static void plan_infer_acts(dvae *d, dvae_act *act, int n, float *pp[2]) {
  for (int i = 0; i < n; i++)
    act[i] = (dvae_act){.out = pp[i % 2], .r = {d->tmp[0], d->tmp[1], d->tmp[2], d->tmp[1]}, .argmax = d->am_tmp};
}

static size_t plan_arena(dvae *d, int B, int mode, uint8_t *base) {
  const dvae_config *cf = &d->cfg;
  cursor c = {base, 0};
  stage_maxima m = {0};
  stage_max(d->be, d->enc, d->n_enc, B, &m);
  stage_max(d->be, d->dec, d->n_dec, B, &m);
  size_t lat = (size_t)B * cf->vocab * dvae_grid_side(cf) * dvae_grid_side(cf);
  size_t img = (size_t)B * cf->channels * cf->image_size * cf->image_size;
  d->xm = takef(&c, img);
  d->z = takef(&c, lat);
  d->tokens = take(&c, (size_t)B * dvae_grid_side(cf) * dvae_grid_side(cf) * sizeof(int32_t));
  d->seen = take(&c, (size_t)cf->vocab);
  d->scratch = takef(&c, m.scratch);
  d->work = takef(&c, B * m.block_out);
  if (mode == MODE_TRAIN) {
    d->q = takef(&c, lat), d->gumbel = takef(&c, lat), d->dlogits = takef(&c, lat), d->dz = takef(&c, lat);
    d->zsoft = takef(&c, lat);
    d->qbar = takef(&c, (size_t)cf->vocab);
    d->sampled = take(&c, (size_t)B * dvae_grid_side(cf) * dvae_grid_side(cf) * sizeof(int32_t));
    d->dout = takef(&c, 2 * img);
    for (int k = 0; k < 2; k++) d->g[k] = takef(&c, B * max2(m.in, m.out));
    for (int k = 0; k < 2; k++) d->gtmp[k] = takef(&c, B * max2(max2(m.in, m.out), m.hid));
    plan_train_acts(d->enc, d->enc_act, d->n_enc, B, &c);
    plan_train_acts(d->dec, d->dec_act, d->n_dec, B, &c);
  } else {
    float *pp[2] = {takef(&c, B * m.out), takef(&c, B * m.out)};
    d->tmp[0] = takef(&c, B * m.in);
    d->tmp[1] = takef(&c, B * m.hid), d->tmp[2] = takef(&c, B * m.hid);
    d->am_tmp = take(&c, B * m.pool);
    plan_infer_acts(d, d->enc_act, d->n_enc, pp);
    plan_infer_acts(d, d->dec_act, d->n_dec, pp);
  }
  return c.off + 64;
}

/* Makes the arena hold B images in `mode` (training includes inference). Only
 * (re)allocates when the batch grows or the mode goes up, never per step. */
static int reserve(dvae *d, int B, int mode) {
  if (d->arena && B <= d->cap_B && mode <= d->mode) return BEIT_OK;
  if (d->arena) {
    if (B < d->cap_B) B = d->cap_B;
    if (mode < d->mode) mode = d->mode;
  }
  size_t bytes = plan_arena(d, B, mode, NULL);  /* measuring clobbers the pointers ... */
  uint8_t *a = d->be->alloc(bytes, "dVAE activations");
  if (!a) {
    if (d->arena) plan_arena(d, d->cap_B, d->mode, d->arena);  /* ... so restore them */
    return BEIT_ERR;
  }
  d->be->free(d->arena);
  d->arena = a;
  plan_arena(d, B, mode, a);
  d->cap_B = B;
  d->mode = mode;
  return BEIT_OK;
}

/* ---- stage forward / backward ---------------------------------------------- */
static float *wparam(const dvae *d, int i) { return i < 0 ? NULL : d->params.data + d->params.t[i].offset; }
static float *wgrad(const dvae *d, int i) { return i < 0 ? NULL : d->params.grad + d->params.t[i].offset; }

static void conv_fwd(dvae *d, const dvae_stage *s, int k, int B, float *out, const float *inp) {
  conv2d_dims cd = s->dims[k];
  cd.B = B;
  d->be->conv2d_forward(out, d->scratch, inp, wparam(d, s->w[k]), wparam(d, s->b[k]), &cd);
}

static void conv_bwd(dvae *d, const dvae_stage *s, int k, int B, float *dinp, const float *dout,
                     const float *inp) {
  conv2d_dims cd = s->dims[k];
  cd.B = B;
  d->be->conv2d_backward(dinp, wgrad(d, s->w[k]), wgrad(d, s->b[k]), d->scratch, dout, inp, wparam(d, s->w[k]), &cd);
}

static void block_forward(dvae *d, const dvae_stage *s, const dvae_act *a, const float *x, int B) {
  const beit_backend *be = d->be;
  size_t nin = B * plane_in(s), nh = B * plane_hid(s), nout = B * plane_out(s);
  be->relu_forward(a->r[0], x, nin);
  for (int k = 1; k < 4; k++) {
    conv_fwd(d, s, k, B, a->r[k], a->r[k - 1]);
    be->relu_forward(a->r[k], a->r[k], nh);
  }
  conv_fwd(d, s, 4, B, d->work, a->r[3]);
  if (s->w[0] >= 0) conv_fwd(d, s, 0, B, a->out, x);
  else be->copy(a->out, x, nout * sizeof(float));
  be->axpy(a->out, d->work, s->gain, nout);
}

/* dx += d(block)/dx . dy; the res path walks conv_4 .. conv_1 through two temps. */
static void block_backward(dvae *d, const dvae_stage *s, const dvae_act *a, const float *x,
                           const float *dy, float *dx, int B) {
  const beit_backend *be = d->be;
  size_t nin = B * plane_in(s), nh = B * plane_hid(s), nout = B * plane_out(s);
  float *ga = d->gtmp[0], *gb = d->gtmp[1];
  be->copy(ga, dy, nout * sizeof(float));  /* ga = gain * dy */
  be->scale_inplace(ga, nout, s->gain);
  be->zero(gb, nh);
  conv_bwd(d, s, 4, B, gb, ga, a->r[3]);
  for (int k = 3; k >= 1; k--) {
    be->zero(ga, nh);
    be->relu_backward(ga, gb, a->r[k], nh);
    be->zero(gb, k == 1 ? nin : nh);
    conv_bwd(d, s, k, B, gb, ga, a->r[k - 1]);
  }
  be->relu_backward(dx, gb, a->r[0], nin);
  if (s->w[0] >= 0) conv_bwd(d, s, 0, B, dx, dy, x);
  else be->axpy(dx, dy, 1.0f, nout);
}

static void stage_forward(dvae *d, const dvae_stage *s, const dvae_act *a, const float *x, int B) {
  switch (s->kind) {
    case DVAE_ST_CONV: conv_fwd(d, s, 0, B, a->out, x); break;
    case DVAE_ST_BLOCK: block_forward(d, s, a, x, B); break;
    case DVAE_ST_POOL: d->be->maxpool2x2_forward(a->out, a->argmax, x, B, s->cin, s->side_in, s->side_in); break;
    case DVAE_ST_UPSAMPLE: d->be->upsample2x_forward(a->out, x, B, s->cin, s->side_in, s->side_in); break;
    case DVAE_ST_RELU_CONV:
      d->be->relu_forward(a->r[0], x, B * plane_in(s));
      conv_fwd(d, s, 0, B, a->out, a->r[0]);
      break;
  }
}

/* dx (NULL = not needed) += the stage's input gradient. */
static void stage_backward(dvae *d, const dvae_stage *s, const dvae_act *a, const float *x, const float *dy,
                           float *dx, int B) {
  switch (s->kind) {
    case DVAE_ST_CONV: conv_bwd(d, s, 0, B, dx, dy, x); break;
    case DVAE_ST_BLOCK: block_backward(d, s, a, x, dy, dx, B); break;
    case DVAE_ST_POOL: d->be->maxpool2x2_backward(dx, dy, a->argmax, B, s->cin, s->side_in, s->side_in); break;
    case DVAE_ST_UPSAMPLE: d->be->upsample2x_backward(dx, dy, B, s->cin, s->side_in, s->side_in); break;
    case DVAE_ST_RELU_CONV: {
      float *gr = d->gtmp[0];
      d->be->zero(gr, B * plane_in(s));
      conv_bwd(d, s, 0, B, gr, dy, a->r[0]);
      d->be->relu_backward(dx, gr, a->r[0], B * plane_in(s));
      break;
    }
  }
}

static const float *run_forward(dvae *d, dvae_stage *st, dvae_act *act, int n, const float *x, int B) {
  for (int i = 0; i < n; i++) stage_forward(d, &st[i], &act[i], i ? act[i - 1].out : x, B);
  return act[n - 1].out;
}

/* Walks the stages backwards with the inter-stage gradient in two ping-pong buffers. */
static void run_backward(dvae *d, dvae_stage *st, dvae_act *act, int n, const float *x, const float *dy,
                         float *dx_first, int B) {
  const float *gcur = dy;
  for (int i = n - 1; i >= 0; i--) {
    float *dx = i ? (gcur == d->g[0] ? d->g[1] : d->g[0]) : dx_first;
    if (dx && i) d->be->zero(dx, B * plane_in(&st[i]));
    stage_backward(d, &st[i], &act[i], i ? act[i - 1].out : x, gcur, dx, B);
    gcur = dx;
  }
}

/* ---- latent layer (the kernels: ops/dvae_ops.c) ----------------------------- */
static int hw_of(const dvae *d) { return dvae_grid_side(&d->cfg) * dvae_grid_side(&d->cfg); }

/* ---- public: training ------------------------------------------------------- */
/* The relaxed sample softmax((logits + g) / tau): the decoder's input, or beside it when straight-through. */
static float *relaxed(dvae *d, const dvae_train_opts *o) { return o->hard ? d->zsoft : d->z; }

int dvae_forward_train(dvae *d, const float *images, int B, const dvae_train_opts *o, dvae_stats *st) {
  const dvae_config *c = &d->cfg;
  if (!d->has_decoder) return beit_errorf("dvae: training needs the decoder (this model is encoder-only)");
  if (!(o->tau > 0)) return beit_errorf("dvae: Gumbel temperature %g must be positive", o->tau);
  if (reserve(d, B, MODE_TRAIN)) return BEIT_ERR;
  d->B = B;
  const int hw = hw_of(d);
  const size_t img = (size_t)B * c->channels * c->image_size * c->image_size, lat = (size_t)B * c->vocab * hw;
  const beit_backend *be = d->be;
  be->map_pixels(d->xm, images, img, DVAE_EPS);
  const float *logits = run_forward(d, d->enc, d->enc_act, d->n_enc, d->xm, B);
  if (o->gumbel) be->upload(d->gumbel, o->gumbel, lat * sizeof(float));
  else be->gumbel_noise(d->gumbel, B, (size_t)c->vocab * hw, o->seed, o->step, o->shard, o->shards);
  double kl_sum = be->gumbel_softmax_forward(d->q, relaxed(d, o), logits, d->gumbel, B, c->vocab, hw, o->tau);
  if (o->hard) {  /* d->z: what the decoder reads */
    be->argmax_channels(d->sampled, d->zsoft, B, c->vocab, hw);
    be->one_hot_codes(d->z, d->sampled, B, c->vocab, hw);
  }
  be->argmax_channels(d->tokens, logits, B, c->vocab, hw);
  const float *out = run_forward(d, d->dec, d->dec_act, d->n_dec, d->z, B);
  double recon = be->recon_loss_forward(d->dout, d->xm, out, B, c->channels, (size_t)c->image_size * c->image_size,
                                        c->recon == DVAE_RECON_LAPLACE);
  memset(st, 0, sizeof *st);
  st->recon = recon;
  st->kl = kl_sum / ((double)B * hw);
  if (o->kl_usage) be->code_mean(d->qbar, d->q, B, c->vocab, hw);
  st->loss = recon + o->beta * (o->kl_usage ? (double)B * hw * dvae_usage_kl(d) : kl_sum) / (double)img;
  st->perplexity = be->code_perplexity(d->q, B, c->vocab, hw);
  st->codes_used = be->distinct_codes(d->seen, d->tokens, B * hw, c->vocab);
  return isfinite(st->loss) ? BEIT_OK : beit_errorf("dvae: the loss is not finite (%g)", st->loss);
}

int dvae_backward(dvae *d, const dvae_train_opts *o) {
  if (!d || !o) return beit_errorf("dvae_backward: the %s is NULL", d ? "options" : "model");
  if (d->mode != MODE_TRAIN || d->B <= 0)
    return beit_errorf("dvae_backward: no dvae_forward_train to differentiate (an encode or decode since replaces it)");
  const dvae_config *c = &d->cfg;
  const int B = d->B, hw = hw_of(d);
  const size_t lat = (size_t)B * c->vocab * hw;
  d->be->zero(d->dz, lat);
  run_backward(d, d->dec, d->dec_act, d->n_dec, d->z, d->dout, d->dz, B);
  const float *logits = d->enc_act[d->n_enc - 1].out;
  double kl_coef = o->beta / ((double)B * c->channels * c->image_size * c->image_size);
  d->be->zero(d->dlogits, lat);
  d->be->gumbel_softmax_backward(d->dlogits, d->dz, relaxed(d, o), d->q, logits, B, c->vocab, hw, o->tau,
                                 o->kl_usage ? 0.0f : (float)kl_coef);
  if (o->kl_usage) d->be->code_usage_kl_backward(d->dlogits, d->q, d->qbar, B, c->vocab, hw, (float)kl_coef);
  run_backward(d, d->enc, d->enc_act, d->n_enc, d->xm, d->dlogits, NULL, B);
  return BEIT_OK;
}

double dvae_usage_kl(const dvae *d) {
  return log((double)d->cfg.vocab) - log(d->be->code_perplexity(d->qbar, 1, d->cfg.vocab, 1));
}

/* ---- public: training with the caller's latent (vector quantisation) -------- */
const float *dvae_train_encode(dvae *d, const float *images, int B) {
  if (!d->has_decoder) return beit_errorf("dvae: training needs the decoder (this model is encoder-only)"), NULL;
  if (reserve(d, B, MODE_TRAIN)) return NULL;
  d->B = B;
  d->be->map_pixels(d->xm, images, (size_t)B * d->cfg.channels * d->cfg.image_size * d->cfg.image_size, DVAE_EPS);
  return run_forward(d, d->enc, d->enc_act, d->n_enc, d->xm, B);
}

int dvae_train_decode(dvae *d, const float *z, double *recon) {
  if (d->mode != MODE_TRAIN || d->B <= 0) return beit_errorf("dvae_train_decode: no dvae_train_encode before");
  const dvae_config *c = &d->cfg;
  d->be->upload(d->z, z, (size_t)d->B * c->vocab * hw_of(d) * sizeof(float));
  const float *out = run_forward(d, d->dec, d->dec_act, d->n_dec, d->z, d->B);
  *recon = d->be->recon_loss_forward(d->dout, d->xm, out, d->B, c->channels, (size_t)c->image_size * c->image_size,
                                     c->recon == DVAE_RECON_LAPLACE);
  return isfinite(*recon) ? BEIT_OK : beit_errorf("dvae: the reconstruction loss is not finite (%g)", *recon);
}

const float *dvae_train_backward_decoder(dvae *d) {
  d->be->zero(d->dz, (size_t)d->B * d->cfg.vocab * hw_of(d));
  run_backward(d, d->dec, d->dec_act, d->n_dec, d->z, d->dout, d->dz, d->B);
  return d->dz;
}

void dvae_train_backward_encoder(dvae *d, const float *dlatent) {
  d->be->upload(d->dlogits, dlatent, (size_t)d->B * d->cfg.vocab * hw_of(d) * sizeof(float));
  run_backward(d, d->enc, d->enc_act, d->n_enc, d->xm, d->dlogits, NULL, d->B);
}

/* ---- public: inference ------------------------------------------------------ */
#define INFER_CHUNK 64
#define INFER_ARENA_BYTES ((size_t)1 << 30)

/* Images per inference pass: what the arena holds if it exists, else up to 64
 * within 1 GiB of activations (the DALL-E encoder at 112x112 needs ~50 MB each). */
static int chunk_size(dvae *d, int B) {
  if (d->arena) return d->cap_B;
  size_t one = plan_arena(d, 1, MODE_INFER, NULL), two = plan_arena(d, 2, MODE_INFER, NULL);
  size_t per_image = two > one ? two - one : one, fixed = one - (per_image < one ? per_image : one);
  size_t fit = INFER_ARENA_BYTES > fixed ? (INFER_ARENA_BYTES - fixed) / per_image : 1;
  int n = B < INFER_CHUNK ? B : INFER_CHUNK;
  if ((size_t)n > fit) n = (int)fit;
  return n < 1 ? 1 : n;
}

/* Runs the encoder on images[b0 .. b0+nb) and returns the logits (arena). */
static const float *encode_chunk(dvae *d, const float *images, int nb) {
  const dvae_config *c = &d->cfg;
  d->B = 0;  /* the training forward's activations are overwritten: nothing for dvae_backward */
  d->be->map_pixels(d->xm, images, (size_t)nb * c->channels * c->image_size * c->image_size, DVAE_EPS);
  return run_forward(d, d->enc, d->enc_act, d->n_enc, d->xm, nb);
}

int dvae_encoder_logits(dvae *d, const float *images, int B, float *logits) {
  const dvae_config *c = &d->cfg;
  const size_t img = (size_t)c->channels * c->image_size * c->image_size, lat = (size_t)c->vocab * hw_of(d);
  int n = chunk_size(d, B);
  if (reserve(d, n, MODE_INFER)) return BEIT_ERR;
  for (int b0 = 0; b0 < B; b0 += n) {
    int nb = B - b0 < n ? B - b0 : n;
    d->be->download(logits + b0 * lat, encode_chunk(d, images + b0 * img, nb), nb * lat * sizeof(float));
  }
  return BEIT_OK;
}

int dvae_encode(dvae *d, const float *images, int B, int32_t *tokens) {
  const dvae_config *c = &d->cfg;
  const size_t img = (size_t)c->channels * c->image_size * c->image_size;
  const int hw = hw_of(d);
  int n = chunk_size(d, B);
  if (reserve(d, n, MODE_INFER)) return BEIT_ERR;
  for (int b0 = 0; b0 < B; b0 += n) {
    int nb = B - b0 < n ? B - b0 : n;
    d->be->argmax_channels(d->tokens, encode_chunk(d, images + b0 * img, nb), nb, c->vocab, hw);
    d->be->download(tokens + (size_t)b0 * hw, d->tokens, (size_t)nb * hw * sizeof(int32_t));
  }
  return BEIT_OK;
}

int dvae_decode(dvae *d, const int32_t *tokens, int B, float *images) {
  const dvae_config *c = &d->cfg;
  if (!d->has_decoder) return beit_errorf("dvae: decoding needs the decoder (this model is encoder-only)");
  const int V = c->vocab, hw = hw_of(d);
  const size_t P = (size_t)c->image_size * c->image_size;
  for (int i = 0; i < B * hw; i++)
    if (tokens[i] < 0 || tokens[i] >= V)
      return beit_errorf("dvae: token %d at %d is outside the vocabulary 0..%d", tokens[i], i, V - 1);
  int n = chunk_size(d, B);
  if (reserve(d, n, MODE_INFER)) return BEIT_ERR;
  for (int b0 = 0; b0 < B; b0 += n) {
    int nb = B - b0 < n ? B - b0 : n;
    d->B = 0;  /* as in encode_chunk */
    d->be->upload(d->tokens, tokens + (size_t)b0 * hw, (size_t)nb * hw * sizeof(int32_t));
    d->be->one_hot_codes(d->z, d->tokens, nb, V, hw);
    const float *out = run_forward(d, d->dec, d->dec_act, d->n_dec, d->z, nb);
    d->be->unmap_pixels(d->xm, out, nb, c->channels, P, DVAE_EPS);  /* xm: the images on the backend */
    d->be->download(images + (size_t)b0 * c->channels * P, d->xm, (size_t)nb * c->channels * P * sizeof(float));
  }
  return BEIT_OK;
}

int dvae_decode_latent(dvae *d, const float *z, int B, float *images) {
  const dvae_config *c = &d->cfg;
  if (!d->has_decoder) return beit_errorf("dvae: decoding needs the decoder (this model is encoder-only)");
  const size_t P = (size_t)c->image_size * c->image_size, lat = (size_t)c->vocab * hw_of(d);
  int n = chunk_size(d, B);
  if (reserve(d, n, MODE_INFER)) return BEIT_ERR;
  for (int b0 = 0; b0 < B; b0 += n) {
    int nb = B - b0 < n ? B - b0 : n;
    d->B = 0;  /* as in encode_chunk */
    d->be->upload(d->z, z + (size_t)b0 * lat, (size_t)nb * lat * sizeof(float));
    const float *out = run_forward(d, d->dec, d->dec_act, d->n_dec, d->z, nb);
    d->be->unmap_pixels(d->xm, out, nb, c->channels, P, DVAE_EPS);  /* xm: the images on the backend */
    d->be->download(images + (size_t)b0 * c->channels * P, d->xm, (size_t)nb * c->channels * P * sizeof(float));
  }
  return BEIT_OK;
}

/* ---- checkpoints ------------------------------------------------------------ */
#define NMETA 10

int dvae_save(const dvae *d, const char *path, const char *const *extra_kv, int n_extra) {
  const dvae_config *c = &d->cfg;
  char v[NMETA][24];
  int vals[] = {c->image_size, c->channels, c->n_hid, c->n_init, c->n_blk_per_group, c->n_groups, c->vocab,
                d->has_decoder};
  for (int i = 0; i < 8; i++) snprintf(v[i], sizeof v[i], "%d", vals[i]);
  const char *kv[2 * (NMETA + 16)] = {"type", "dvae", "recon", c->recon == DVAE_RECON_MSE ? "mse" : "laplace",
                                      "image_size", v[0], "channels", v[1], "n_hid", v[2], "n_init", v[3],
                                      "n_blk_per_group", v[4], "n_groups", v[5], "vocab", v[6],
                                      "has_decoder", v[7]};
  int n = NMETA;
  if (n_extra > 16) return beit_errorf("dvae_save: %d extra metadata pairs (at most 16)", n_extra);
  for (int i = 0; i < 2 * n_extra; i++) kv[2 * n + i] = extra_kv[i];
  return beit_params_save(&d->params, path, kv, n + n_extra);
}

static int meta_int(const beit_safetensors *st, const char *key, int *out) {
  const char *s = beit_st_meta(st, key);
  if (!s) return beit_errorf("%s: metadata has no '%s' (not a beit.c dVAE checkpoint?)", st->path, key);
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < 0 || v > (1 << 30))
    return beit_errorf("%s: metadata '%s' = '%s' is not a valid integer", st->path, key, s);
  *out = (int)v;
  return BEIT_OK;
}

static int config_from_meta(const beit_safetensors *st, dvae_config *c, int *has_dec) {
  const char *type = beit_st_meta(st, "type"), *recon = beit_st_meta(st, "recon");
  if (!type || strcmp(type, "dvae"))
    return beit_errorf("%s: metadata type is '%s', expected 'dvae'", st->path, type ? type : "(none)");
  if (meta_int(st, "image_size", &c->image_size) || meta_int(st, "channels", &c->channels) ||
      meta_int(st, "n_hid", &c->n_hid) || meta_int(st, "n_init", &c->n_init) ||
      meta_int(st, "n_blk_per_group", &c->n_blk_per_group) || meta_int(st, "n_groups", &c->n_groups) ||
      meta_int(st, "vocab", &c->vocab) || meta_int(st, "has_decoder", has_dec))
    return BEIT_ERR;
  c->recon = recon && !strcmp(recon, "mse") ? DVAE_RECON_MSE : DVAE_RECON_LAPLACE;
  return BEIT_OK;
}

/* Parameters of a (valid) config, counted on a table that is never allocated. */
static double param_count(const dvae_config *c, int with_decoder) {
  dvae *t = calloc(1, sizeof *t);
  if (!t) return 0;
  t->cfg = *c;
  beit_params_init(&t->params);
  build_encoder(t);
  if (with_decoder) build_decoder(t);
  double n = 0;
  for (int i = 0; i < t->params.n; i++) n += (double)t->params.t[i].numel;
  beit_params_free(&t->params);
  free(t);
  return n;
}

double dvae_param_count(const dvae_config *c, int with_decoder) { return param_count(c, with_decoder); }

/* Refuses, before anything is allocated, a config whose tensors cannot all be in
 * the file (2 bytes a value at the least): a small hostile file must not make us
 * allocate gigabytes. */
static int check_fits_file(const beit_safetensors *st, const dvae_config *c, int with_decoder) {
  if (dvae_config_check(c)) return beit_error_context("%s", st->path);
  double n = param_count(c, with_decoder);
  if (n * 2 > (double)st->data_size)
    return beit_errorf("%s: the configuration describes %.0f parameters, but the file holds only %zu bytes of tensors",
                       st->path, n, st->data_size);
  return BEIT_OK;
}

int dvae_load(dvae *d, const char *path) {
  beit_safetensors st;
  memset(d, 0, sizeof *d);
  if (beit_st_open(&st, path)) return BEIT_ERR;
  dvae_config c;
  int has_dec = 0, rc = config_from_meta(&st, &c, &has_dec);
  if (!rc) rc = check_fits_file(&st, &c, has_dec);
  if (!rc) rc = dvae_create(d, &c, has_dec);
  if (!rc && beit_params_load_from(&d->params, &st, 1)) {
    dvae_free(d);
    rc = BEIT_ERR;
  }
  beit_st_close(&st);
  return rc ? beit_error_context("loading dVAE %s", path) : BEIT_OK;
}

/* ---- DALL-E encoder files --------------------------------------------------- */
static int st_dim(const beit_safetensors *st, const char *key, int ndim, int dim, int *out) {
  int i = beit_st_find(st, key);
  if (i < 0) return beit_errorf("%s: missing key '%s' (not a dall_e Encoder state dict?)", st->path, key);
  if (st->e[i].ndim != ndim)
    return beit_errorf("%s: key '%s' has %d dims, expected %d", st->path, key, st->e[i].ndim, ndim);
  *out = (int)st->e[i].shape[dim];
  return BEIT_OK;
}

static int count_keys(const beit_safetensors *st, const char *fmt, int fixed) {
  char key[BEIT_NAME_MAX];
  int n = 0;
  for (;;) {
    if (fixed) snprintf(key, sizeof key, fmt, fixed, n + 1);
    else snprintf(key, sizeof key, fmt, n + 1);
    if (beit_st_find(st, key) < 0) return n;
    n++;
  }
}

/* The architecture as the file's shapes describe it. */
static int dalle_config(const beit_safetensors *st, int image_size, dvae_config *c) {
  dvae_config_dalle(c);
  c->image_size = image_size;
  if (st_dim(st, "blocks.input.w", 4, 0, &c->n_hid) || st_dim(st, "blocks.input.w", 4, 1, &c->channels) ||
      st_dim(st, "blocks.output.conv.w", 4, 0, &c->vocab))
    return BEIT_ERR;
  c->n_groups = count_keys(st, "blocks.group_%d.block_1.res_path.conv_1.w", 0);
  c->n_blk_per_group = count_keys(st, "blocks.group_%d.block_%d.res_path.conv_1.w", 1);
  if (c->n_groups < 1 || c->n_blk_per_group < 1)
    return beit_errorf("%s: missing key 'blocks.group_1.block_1.res_path.conv_1.w'", st->path);
  c->n_init = c->n_hid / 2 > 0 ? c->n_hid / 2 : 1;
  return dvae_config_check(c) ? beit_error_context("%s", st->path) : BEIT_OK;
}

/* Every table tensor must be in the file (name without "encoder.") with its exact
 * shape; every file key must belong to the table. Reads only once all match. */
static int check_dalle_keys(const dvae *d, const beit_safetensors *st) {
  const size_t pre = strlen("encoder.");
  char a[64], b[64];
  for (int i = 0; i < d->params.n; i++) {
    const beit_tensor_info *t = &d->params.t[i];
    int j = beit_st_find(st, t->name + pre);
    beit_shape_str(t, a, sizeof a);
    if (j < 0) return beit_errorf("%s: missing key '%s' (expected shape %s)", st->path, t->name + pre, a);
    beit_tensor_info got = {.ndim = st->e[j].ndim};
    memcpy(got.shape, st->e[j].shape, sizeof got.shape);
    beit_shape_str(&got, b, sizeof b);
    if (strcmp(a, b)) return beit_errorf("%s: key '%s' has shape %s, expected %s", st->path, t->name + pre, b, a);
  }
  char key[BEIT_NAME_MAX + 16];
  for (int j = 0; j < st->n; j++) {
    snprintf(key, sizeof key, "encoder.%s", st->e[j].name);
    if (beit_params_find(&d->params, key) < 0)
      return beit_errorf("%s: unexpected key '%s' for a dall_e Encoder with n_hid %d, %d groups x %d blocks",
                         st->path, st->e[j].name, d->cfg.n_hid, d->cfg.n_groups, d->cfg.n_blk_per_group);
  }
  return BEIT_OK;
}

int dvae_load_dalle_encoder(dvae *d, const char *path, int image_size) {
  beit_safetensors st;
  memset(d, 0, sizeof *d);
  if (beit_st_open(&st, path)) return BEIT_ERR;
  dvae_config c;
  int rc = dalle_config(&st, image_size, &c);
  if (!rc) rc = check_fits_file(&st, &c, 0);
  if (!rc) rc = dvae_create(d, &c, 0);
  if (!rc && check_dalle_keys(d, &st)) rc = BEIT_ERR;
  for (int i = 0; !rc && i < d->params.n; i++) {
    const beit_tensor_info *t = &d->params.t[i];
    rc = beit_st_read_f32(&st, beit_st_find(&st, t->name + strlen("encoder.")), d->params.data + t->offset, t->numel);
  }
  beit_st_close(&st);
  if (rc) dvae_free(d);
  return rc;
}
