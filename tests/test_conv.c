/* test_conv.c - conv2d, 2x2 max pooling, x2 upsampling and ReLU against PyTorch
 * (tests/ref/conv_ref.py via stio) and by central finite differences of
 * L = sum(out * R) on a few hundred sampled coordinates; also the gradient rule. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "test.h"

typedef struct { int B, IC, H, W, OC, K, s, p, g, bias; } conv_case;

static const conv_case CASES[] = {
    {2, 3, 9, 7, 5, 3, 1, 1, 1, 1},   /* odd sizes, same padding */
    {2, 4, 11, 11, 6, 3, 2, 1, 1, 1}, /* stride 2 */
    {3, 4, 8, 6, 6, 3, 1, 0, 2, 0},   /* groups 2, no padding, no bias */
    {2, 1, 10, 10, 4, 7, 1, 3, 1, 1}, /* DALL-E input conv 7x7 */
    {2, 8, 5, 5, 16, 1, 1, 0, 1, 1},  /* 1x1: per-image GEMMs on the planes */
    {2, 80, 5, 5, 64, 1, 1, 0, 1, 1}, /* 1x1 with a large weight: the batched im2col path */
    {2, 6, 7, 7, 5, 1, 2, 0, 1, 1},   /* 1x1 stride 2 */
    {1, 6, 13, 9, 4, 5, 3, 2, 2, 1},  /* k5, stride 3, groups 2, odd */
    {3, 64, 40, 40, 16, 3, 1, 1, 1, 1}, /* large: the batch splits into chunks */
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static conv2d_dims dims_of(const conv_case *c) {
  conv2d_dims d = {c->B, c->IC, c->H, c->W, c->OC, c->K, c->s, c->p, c->g};
  return d;
}

static float *randn(size_t n, beit_rng *r, float scale) {
  float *x = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) x[i] = scale * (float)beit_rng_normal(r);
  return x;
}

/* Reads tensor `name` (numel floats) from the fixture file; NULL + FAIL if absent. */
static float *fx(const beit_safetensors *st, const char *name, size_t numel) {
  int i = beit_st_find(st, name);
  float *x = malloc(numel * sizeof(float) + 1);
  if (i < 0 || beit_st_numel(&st->e[i]) != numel || beit_st_read_f32(st, i, x, numel) != BEIT_OK) {
    CHECK_TRUE(0, "fixture tensor %s with %zu values", name, numel);
    free(x);
    return NULL;
  }
  return x;
}

/* Tolerance relative to the tensor's scale: a gradient summed over thousands of
 * terms can cancel to a small value whose float32 error reflects the terms. */
static int close_scaled(const char *what, const float *got, const float *ref, size_t n) {
  double mx = 0;
  for (size_t i = 0; i < n; i++) mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
  return check_close(what, got, ref, n, 1e-6 + 1e-5 * mx, 1e-4);
}

static int make_fixtures(const char *path) {
  const char *root = getenv("BEIT_ROOT") ? getenv("BEIT_ROOT") : ".";
  char cmd[4096];
  int n = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/conv_ref.py %s 7", root, path);
  for (int i = 0; i < NCASES; i++) {
    const conv_case *c = &CASES[i];
    n += snprintf(cmd + n, sizeof cmd - n, " %d,%d,%d,%d,%d,%d,%d,%d,%d,%d", c->B, c->IC, c->H, c->W,
                  c->OC, c->K, c->s, c->p, c->g, c->bias);
  }
  return system(cmd);
}

/* ---- PyTorch comparisons ---- */
static void torch_conv_case(const beit_safetensors *st, int ci) {
  const conv_case *c = &CASES[ci];
  conv2d_dims d = dims_of(c);
  size_t nx = (size_t)c->B * c->IC * c->H * c->W, nw = (size_t)c->OC * (c->IC / c->g) * c->K * c->K;
  size_t no = (size_t)c->B * c->OC * conv2d_out_h(&d) * conv2d_out_w(&d);
  char name[64], what[96];
#define FX(var, key, n)                               \
  snprintf(name, sizeof name, "c%d." key, ci);       \
  float *var = fx(st, name, n);
  FX(x, "x", nx) FX(w, "w", nw) FX(dout, "dout", no) FX(out_ref, "out", no) FX(dx_ref, "dx", nx)
  FX(dw_ref, "dw", nw)
  float *b = NULL, *db_ref = NULL;
  if (c->bias) { FX(b_, "b", c->OC) FX(db_, "db", c->OC) b = b_; db_ref = db_; }
#undef FX
  if (x && w && dout && out_ref && dx_ref && dw_ref && (!c->bias || (b && db_ref))) {
    float *scratch = malloc(conv2d_scratch_floats(&d) * sizeof(float));
    float *out = malloc(no * sizeof(float)), *dx = calloc(nx, sizeof(float));
    float *dw = calloc(nw, sizeof(float)), *db = calloc(c->OC, sizeof(float));
    conv2d_forward(out, scratch, x, w, b, &d);
    conv2d_backward(dx, dw, c->bias ? db : NULL, scratch, dout, x, w, &d);
    snprintf(what, sizeof what, "conv c%d k%d s%d p%d g%d: out", ci, c->K, c->s, c->p, c->g);
    close_scaled(what, out, out_ref, no);
    snprintf(what, sizeof what, "conv c%d: dx", ci);
    close_scaled(what, dx, dx_ref, nx);
    snprintf(what, sizeof what, "conv c%d: dw", ci);
    close_scaled(what, dw, dw_ref, nw);
    if (c->bias) {
      snprintf(what, sizeof what, "conv c%d: db", ci);
      close_scaled(what, db, db_ref, c->OC);
    }
    free(scratch), free(out), free(dx), free(dw), free(db);
  }
  free(x), free(w), free(dout), free(out_ref), free(dx_ref), free(dw_ref), free(b), free(db_ref);
}

static void torch_pool_up_relu(const beit_safetensors *st) {
  const int B = 2, C = 3;
  size_t npx = B * C * 7 * 9, npo = B * C * 3 * 4, nux = B * C * 4 * 5, nuo = 4 * nux, nr = 3 * 5 * 7;
  float *px = fx(st, "pool.x", npx), *pd = fx(st, "pool.dout", npo), *po = fx(st, "pool.out", npo);
  float *pdx = fx(st, "pool.dx", npx);
  float *ux = fx(st, "up.x", nux), *ud = fx(st, "up.dout", nuo), *uo = fx(st, "up.out", nuo);
  float *udx = fx(st, "up.dx", nux);
  float *rx = fx(st, "relu.x", nr), *rd = fx(st, "relu.dout", nr), *ro = fx(st, "relu.out", nr);
  float *rdx = fx(st, "relu.dx", nr);
  float *out = malloc(nuo * sizeof(float)), *dx = calloc(npx, sizeof(float));
  uint8_t *am = malloc(npo);
  if (px && pd && po && pdx) {
    maxpool2x2_forward(out, am, px, B, C, 7, 9);
    check_close("maxpool 7x9: out", out, po, npo, 0, 0);
    maxpool2x2_backward(dx, pd, am, B, C, 7, 9);
    check_close("maxpool 7x9: dx", dx, pdx, npx, 0, 0);
  }
  if (ux && ud && uo && udx) {
    memset(dx, 0, npx * sizeof(float));
    upsample2x_forward(out, ux, B, C, 4, 5);
    check_close("upsample x2: out", out, uo, nuo, 0, 0);
    upsample2x_backward(dx, ud, B, C, 4, 5);
    check_close("upsample x2: dx", dx, udx, nux, 1e-6, 1e-6);
  }
  if (rx && rd && ro && rdx) {
    memset(dx, 0, npx * sizeof(float));
    relu_forward(out, rx, nr);
    check_close("relu: out", out, ro, nr, 0, 0);
    relu_backward(dx, rd, out, nr);
    check_close("relu: dx", dx, rdx, nr, 0, 0);
  }
  free(px), free(pd), free(po), free(pdx), free(ux), free(ud), free(uo), free(udx);
  free(rx), free(rd), free(ro), free(rdx), free(out), free(dx), free(am);
}

/* ---- finite differences ---- */
static double dot(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* L(x, w, b) = sum(conv(x, w, b) * R) */
static double conv_loss(const conv2d_dims *d, const float *x, const float *w, const float *b,
                        const float *R, float *out, float *scratch) {
  conv2d_forward(out, scratch, x, w, b, d);
  return dot(out, R, (size_t)d->B * d->OC * conv2d_out_h(d) * conv2d_out_w(d));
}

/* Compares grad[i] with the central difference of L along `param` at `n` sampled
 * coordinates (all of them when n >= size). Returns the check_close result. */
static int fd_check(const char *what, float *param, const float *grad, size_t size, int nsample,
                    float h, double (*loss)(void *), void *ctx, beit_rng *r, double tol) {
  int n = nsample < (int)size ? nsample : (int)size;
  float *num = malloc(n * sizeof(float)), *ana = malloc(n * sizeof(float));
  for (int k = 0; k < n; k++) {
    size_t i = n == (int)size ? (size_t)k : (size_t)beit_rng_randint(r, 0, (int64_t)size - 1);
    float keep = param[i];
    param[i] = keep + h;
    double lp = loss(ctx);
    param[i] = keep - h;
    double lm = loss(ctx);
    param[i] = keep;
    num[k] = (float)((lp - lm) / (2.0 * h));
    ana[k] = grad[i];
  }
  int ok = check_close(what, ana, num, n, tol, tol);
  free(num), free(ana);
  return ok;
}

typedef struct {
  conv2d_dims d;
  float *x, *w, *b, *R, *out, *scratch;
} conv_ctx;
static double conv_ctx_loss(void *p) {
  conv_ctx *c = p;
  return conv_loss(&c->d, c->x, c->w, c->b, c->R, c->out, c->scratch);
}

static void fd_conv_case(int ci, beit_rng *r) {
  const conv_case *cc = &CASES[ci];
  conv_ctx c = {.d = dims_of(cc)};
  size_t nx = (size_t)cc->B * cc->IC * cc->H * cc->W, nw = (size_t)cc->OC * (cc->IC / cc->g) * cc->K * cc->K;
  size_t no = (size_t)cc->B * cc->OC * conv2d_out_h(&c.d) * conv2d_out_w(&c.d);
  c.x = randn(nx, r, 1), c.w = randn(nw, r, 0.3f), c.b = randn(cc->OC, r, 0.5f), c.R = randn(no, r, 1);
  c.out = malloc(no * sizeof(float));
  c.scratch = malloc(conv2d_scratch_floats(&c.d) * sizeof(float));
  float *dx = calloc(nx, sizeof(float)), *dw = calloc(nw, sizeof(float)), *db = calloc(cc->OC, sizeof(float));
  conv2d_backward(dx, dw, db, c.scratch, c.R, c.x, c.w, &c.d);
  char what[96];
  snprintf(what, sizeof what, "finite diff c%d: dx", ci);
  fd_check(what, c.x, dx, nx, 150, 1e-2f, conv_ctx_loss, &c, r, 2e-3);
  snprintf(what, sizeof what, "finite diff c%d: dw", ci);
  fd_check(what, c.w, dw, nw, 150, 1e-2f, conv_ctx_loss, &c, r, 2e-3);
  snprintf(what, sizeof what, "finite diff c%d: db", ci);
  fd_check(what, c.b, db, cc->OC, 64, 1e-2f, conv_ctx_loss, &c, r, 2e-3);
  /* gradient rule: a second backward doubles every gradient */
  float *dx2 = malloc(nx * sizeof(float)), *dw2 = malloc(nw * sizeof(float));
  memcpy(dx2, dx, nx * sizeof(float)), memcpy(dw2, dw, nw * sizeof(float));
  conv2d_backward(dx, dw, NULL, c.scratch, c.R, c.x, c.w, &c.d);
  for (size_t i = 0; i < nx; i++) dx2[i] *= 2;
  for (size_t i = 0; i < nw; i++) dw2[i] *= 2;
  snprintf(what, sizeof what, "accumulate c%d: 2x dx", ci);
  check_close(what, dx, dx2, nx, 1e-6, 1e-6);
  snprintf(what, sizeof what, "accumulate c%d: 2x dw", ci);
  check_close(what, dw, dw2, nw, 1e-6, 1e-6);
  free(c.x), free(c.w), free(c.b), free(c.R), free(c.out), free(c.scratch);
  free(dx), free(dw), free(db), free(dx2), free(dw2);
}

/* pool -> upsample -> relu chain: L = sum(relu(up(pool(x))) * R) with inputs kept
 * away from ties and from 0 so that h never crosses a kink. */
typedef struct {
  int B, C, H, W;
  float *x, *R, *p, *u;
  uint8_t *am;
} chain_ctx;
static double chain_loss(void *q) {
  chain_ctx *c = q;
  int OH = c->H / 2, OW = c->W / 2;
  size_t nu = (size_t)c->B * c->C * 4 * OH * OW;
  maxpool2x2_forward(c->p, c->am, c->x, c->B, c->C, c->H, c->W);
  upsample2x_forward(c->u, c->p, c->B, c->C, OH, OW);
  relu_forward(c->u, c->u, nu);
  return dot(c->u, c->R, nu);
}

static void fd_chain(beit_rng *r) {
  chain_ctx c = {.B = 2, .C = 3, .H = 9, .W = 7};
  size_t nx = (size_t)c.B * c.C * c.H * c.W, np = (size_t)c.B * c.C * (c.H / 2) * (c.W / 2), nu = 4 * np;
  c.x = malloc(nx * sizeof(float));
  for (size_t i = 0; i < nx; i++) {  /* distinct values 0.01 apart, none near 0 */
    int64_t j = beit_rng_randint(r, 0, (int64_t)i);
    c.x[i] = c.x[j], c.x[j] = ((float)i - (float)nx / 2 + 0.5f) * 0.01f;
  }
  c.R = randn(nu, r, 1), c.p = malloc(np * sizeof(float)), c.u = malloc(nu * sizeof(float));
  c.am = malloc(np);
  chain_loss(&c);
  float *du = calloc(nu, sizeof(float)), *dp = calloc(np, sizeof(float)), *dx = calloc(nx, sizeof(float));
  relu_backward(du, c.R, c.u, nu);
  upsample2x_backward(dp, du, c.B, c.C, c.H / 2, c.W / 2);
  maxpool2x2_backward(dx, dp, c.am, c.B, c.C, c.H, c.W);
  fd_check("finite diff pool->upsample->relu: dx", c.x, dx, nx, 400, 1e-3f, chain_loss, &c, r, 2e-3);
  free(c.x), free(c.R), free(c.p), free(c.u), free(c.am), free(du), free(dp), free(dx);
}

int main(void) {
  TEST_BEGIN("test_conv");
  beit_set_threads(2);
  const char *dir = getenv("BEIT_TEST_FIXTURES") ? getenv("BEIT_TEST_FIXTURES") : "/tmp";
  char path[1024];
  snprintf(path, sizeof path, "%s/conv_ref.safetensors", dir);
  beit_safetensors st;
  int made = make_fixtures(path) == 0;
  CHECK_TRUE(made, "tests/ref/conv_ref.py wrote %s", path);
  if (made && beit_st_open(&st, path) == BEIT_OK) {
    for (int i = 0; i < NCASES; i++) torch_conv_case(&st, i);
    torch_pool_up_relu(&st);
    beit_st_close(&st);
  } else if (made) {
    CHECK_TRUE(0, "open %s: %s", path, beit_last_error());
  }
  beit_rng r;
  beit_rng_seed(&r, 1, BEIT_RNG_TEST, 0, 0);
  for (int i = 0; i < NCASES; i++)  /* finite differences on the small cases only */
    if (CASES[i].B * CASES[i].IC * CASES[i].H * CASES[i].W < 10000) fd_conv_case(i, &r);
  fd_chain(&r);
  return TEST_END();
}
