/* test_conv_dnnl.c - conv2d's oneDNN path (src/ops/conv2d_dnnl.c, BEIT_CONV) against the im2col path
 * on the dVAE's real shapes (7x7 input convs, the blocks' 3x3 and 1x1, the output and decoder-input
 * 1x1) and odd ones (stride 2 and 3, groups, no bias), batches 1, 3 and 17, 1 and 2 threads; the
 * same bits through conv2d_forward, on a repeat, after the bounded primitive cache evicted the shape,
 * from two threads at once; the whole encoder with each method; BEIT_CONV named by `beit version`. */
#include <omp.h>
#include <pthread.h>

#include "child.h"
#include "core/core.h"
#include "model/dvae.h"
#include "ops/conv2d_dnnl.h"
#include "ops/ops.h"
#include "test.h"

typedef struct { int IC, H, W, OC, K, s, p, g, bias; const char *what; } shape;

static const shape SHAPES[] = {
    {3, 32, 32, 32, 7, 1, 3, 1, 1, "VQ input conv (CIFAR)"},
    {1, 28, 28, 32, 7, 1, 3, 1, 1, "small dVAE input conv"},
    {32, 32, 32, 8, 3, 1, 1, 1, 1, "block conv_1 3x3"},
    {8, 16, 16, 8, 3, 1, 1, 1, 1, "block conv_2 3x3"},
    {8, 32, 32, 32, 1, 1, 0, 1, 1, "block conv_4 1x1"},
    {32, 16, 16, 64, 1, 1, 0, 1, 1, "id_path 1x1"},
    {128, 8, 8, 32, 1, 1, 0, 1, 1, "output conv 1x1"},
    {512, 7, 7, 64, 1, 1, 0, 1, 1, "decoder input 1x1"},
    {5, 9, 13, 7, 3, 1, 1, 1, 0, "odd sizes, no bias"},
    {6, 11, 7, 4, 5, 2, 2, 2, 1, "k5 stride 2 groups 2"},
    {4, 13, 9, 6, 3, 3, 0, 2, 0, "stride 3, no padding, groups 2"},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static float *randn(size_t n, uint64_t key) {
  float *x = test_keep(malloc((n ? n : 1) * sizeof(float)));
  beit_rng r;
  beit_rng_seed(&r, 5, BEIT_RNG_TEST, key, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)beit_rng_normal(&r);
  return x;
}

typedef struct {
  conv2d_dims d;
  float *x, *w, *b, *scratch;
  size_t nout, nscratch;
} problem;

static problem make(const shape *s, int B, uint64_t key) {
  problem p = {.d = {B, s->IC, s->H, s->W, s->OC, s->K, s->s, s->p, s->g}};
  p.x = randn((size_t)B * s->IC * s->H * s->W, key);
  p.w = randn((size_t)s->OC * (s->IC / s->g) * s->K * s->K, key + 1);
  p.b = s->bias ? randn((size_t)s->OC, key + 2) : NULL;
  p.nout = (size_t)B * s->OC * conv2d_out_h(&p.d) * conv2d_out_w(&p.d);
  p.nscratch = conv2d_scratch_floats(&p.d);
  p.scratch = test_keep(beit_alloc(p.nscratch * sizeof(float) + 64, "scratch"));
  return p;
}

static float *out_buf(const problem *p) { return test_keep(malloc(p->nout * sizeof(float))); }

static float *run_im2col(const problem *p) {
  float *y = out_buf(p);
  beit_conv_set(BEIT_CONV_IM2COL);
  conv2d_forward(y, p->scratch, p->x, p->w, p->b, &p->d);
  return y;
}

/* oneDNN straight (1 when it ran); scratch_floats 0 makes it allocate its scratchpad itself. */
static int run_dnnl(const problem *p, float *y, size_t scratch_floats) {
  return conv2d_dnnl_forward(y, p->scratch, scratch_floats, p->x, p->w, p->b, &p->d);
}

static int same_bits(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

static void check_shape(const shape *s, int B, int threads, uint64_t key) {
  omp_set_num_threads(threads);
  problem p = make(s, B, key);
  float *ref = run_im2col(&p), *y = out_buf(&p), *y2 = out_buf(&p), *y3 = out_buf(&p);
  char what[160];
  snprintf(what, sizeof what, "%s B %d, %d threads: dnnl vs im2col", s->what, B, threads);
  int ran = run_dnnl(&p, y, p.nscratch);
  CHECK_TRUE(ran, "%s: oneDNN ran the shape", what);
  if (!ran) return;
  double mx = 0; /* tolerance relative to the output's scale: different kernels sum in different orders */
  for (size_t i = 0; i < p.nout; i++) mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
  check_close(what, y, ref, p.nout, 1e-6 + 4e-6 * mx, 1e-4);
  beit_conv_set(BEIT_CONV_DNNL);
  conv2d_forward(y2, p.scratch, p.x, p.w, p.b, &p.d);
  run_dnnl(&p, y3, 0); /* the scratchpad allocated, not the caller's */
  CHECK_TRUE(same_bits(y, y2, p.nout) && same_bits(y, y3, p.nout),
             "%s: the same bits through conv2d_forward and with its own scratchpad", what);
}

/* ---- two threads at once on cached primitives ---- */
typedef struct { const problem *p; const float *want; int ok; } worker;

static void *work(void *arg) {
  worker *w = arg;
  omp_set_num_threads(1);
  float *y = malloc(w->p->nout * sizeof(float));
  float *scratch = beit_alloc(w->p->nscratch * sizeof(float) + 64, "scratch");  /* each call its own */
  w->ok = y && scratch;
  for (int i = 0; i < 20 && w->ok; i++)
    w->ok = conv2d_dnnl_forward(y, scratch, w->p->nscratch, w->p->x, w->p->w, w->p->b, &w->p->d) &&
            same_bits(y, w->want, w->p->nout);
  free(y);
  beit_free(scratch);
  return NULL;
}

static void check_concurrent(void) {
  omp_set_num_threads(1);
  problem p[2] = {make(&SHAPES[2], 3, 900), make(&SHAPES[0], 2, 910)};
  float *want[2] = {out_buf(&p[0]), out_buf(&p[1])};
  for (int k = 0; k < 2; k++) run_dnnl(&p[k], want[k], p[k].nscratch);
  worker w[4] = {{&p[0], want[0], 0}, {&p[0], want[0], 0}, {&p[1], want[1], 0}, {&p[1], want[1], 0}};
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, &w[i]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK_TRUE(w[0].ok && w[1].ok && w[2].ok && w[3].ok,
             "4 threads x 20 calls on 2 shared primitives: the same bits as one thread alone");
}

/* ---- the whole encoder (the VQ tokenizer's, CIFAR) with each method ---- */
static void check_encoder(void) {
  omp_set_num_threads(2);
  dvae_config c = {.image_size = 32, .channels = 3, .n_hid = 32, .n_init = 64, .n_blk_per_group = 1,
                   .n_groups = 3, .vocab = 32, .recon = DVAE_RECON_LAPLACE};
  dvae d;
  CHECK_TRUE(dvae_create(&d, &c, 0) == BEIT_OK, "VQ-shaped encoder created");
  dvae_init_weights(&d, 3);
  const int B = 5;
  size_t nz = (size_t)B * c.vocab * dvae_grid_side(&c) * dvae_grid_side(&c);
  float *x = randn((size_t)B * 3 * 32 * 32, 77), *z[2] = {test_keep(malloc(nz * sizeof(float))),
                                                          test_keep(malloc(nz * sizeof(float)))};
  for (int m = 0; m < 2; m++) {
    beit_conv_set(m ? BEIT_CONV_DNNL : BEIT_CONV_IM2COL);
    CHECK_TRUE(dvae_encoder_logits(&d, x, B, z[m]) == BEIT_OK, "encoder logits with %s", beit_conv_name(m));
  }
  check_close("VQ encoder logits 32x32x3, dnnl vs im2col", z[1], z[0], nz, 1e-4, 1e-3);
  dvae_free(&d);
}

/* BEIT_CONV is read at the first convolution; `beit version` names it; a value it cannot honour warns. */
static void check_env(void) {
  const char *dir = getenv("BEIT_TEST_FIXTURES");
  char out[4096], err[4096];
  TEST_PATHF(out, "%s/conv_version.out", dir ? dir : "/tmp");
  TEST_PATHF(err, "%s/conv_version.err", dir ? dir : "/tmp");
  int rc = child_shell("env -u BEIT_CONV '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(out, "conv dnnl (oneDNN ") && file_has(out, "BEIT_CONV=im2col|dnnl picks"),
             "beit version names the default, oneDNN");
  rc = child_shell("BEIT_CONV=im2col '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(out, "conv im2col (OpenBLAS sgemm; BEIT_CONV=im2col from the environment)"),
             "BEIT_CONV=im2col picks im2col");
  rc = child_shell("BEIT_CONV=winograd '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(err, "beit: warning: BEIT_CONV=winograd ignored: not one of im2col, dnnl") &&
                 file_has(out, "conv dnnl"),
             "BEIT_CONV=winograd warns and is ignored");
  CHECK_TRUE(beit_conv_set(BEIT_CONV_COUNT) == BEIT_ERR, "a method that does not exist is refused: %s",
             beit_last_error());
}

int main(void) {
  TEST_BEGIN("test_conv_dnnl");
  if (!beit_conv_built(BEIT_CONV_DNNL)) {
    CHECK_TRUE(beit_conv_set(BEIT_CONV_DNNL) == BEIT_ERR, "oneDNN, not built in, is refused: %s", beit_last_error());
    CHECK_TRUE(beit_conv_active() == BEIT_CONV_IM2COL, "im2col is the only method");
    return TEST_END();
  }
  static const int batches[] = {1, 3, 17};
  uint64_t key = 0;
  for (int t = 1; t <= 2; t++)
    for (int i = 0; i < NSHAPES; i++)
      for (int b = 0; b < 3; b++) check_shape(&SHAPES[i], batches[b], t, key += 10);
  /* 66 shapes x thread counts went through a table of 64: the first ones were evicted */
  CHECK_TRUE(conv2d_dnnl_cached() == 64, "the primitive cache is bounded: %d shapes held", conv2d_dnnl_cached());
  check_shape(&SHAPES[0], 1, 1, 10); /* evicted, created again: the same comparison */
  check_concurrent();
  check_encoder();
  check_env();
  return TEST_END();
}
