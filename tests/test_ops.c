/* test_ops.c - every CPU kernel against the PyTorch reference (tests/ref/ops_ref.py),
 * by central finite differences, and the accumulate-gradient rule of ops.h. The
 * kernels that exist once per vector ISA (src/ops/simd.h) are checked on every ISA
 * this CPU runs, and each path against the generic one, bit for bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "ops/ops.h"
#include "ops/simd.h" /* attention_fused_set */
#include "test.h"

#define FWD_TOL 1e-5, 1e-5
#define BWD_TOL 1e-5, 1e-4

/* Every buffer here lives until TEST_END (test_keep); fixture reads too. */
static float *zeros(size_t n) { return test_keep(calloc(n, sizeof(float))); }
#define fx_f32(st, name, n) ((float *)test_keep(fx_f32(st, name, n)))
#define fx_i32(st, name, n) ((int32_t *)test_keep(fx_i32(st, name, n)))

static double dot(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ---- comparisons against PyTorch ---- */
static void test_linear(const beit_safetensors *st) {
  int M = 13, C = 24, OC = 10;
  float *x = fx_f32(st, "linear.x", 0), *w = fx_f32(st, "linear.w", 0), *b = fx_f32(st, "linear.b", 0);
  float *dout = fx_f32(st, "linear.dout", 0), *out = zeros(M * OC);
  float *dx = zeros(M * C), *dw = zeros(OC * C), *db = zeros(OC);
  linear_forward(out, x, w, b, M, C, OC);
  check_close("linear forward", out, fx_f32(st, "linear.out", 0), M * OC, FWD_TOL);
  linear_backward(dx, dw, db, dout, x, w, M, C, OC);
  check_close("linear dx", dx, fx_f32(st, "linear.dx", 0), M * C, BWD_TOL);
  check_close("linear dw", dw, fx_f32(st, "linear.dw", 0), OC * C, BWD_TOL);
  check_close("linear db", db, fx_f32(st, "linear.db", 0), OC, BWD_TOL);
  /* the gradient rule: a second backward adds the same amount again */
  float *dw2 = zeros(OC * C);
  for (int i = 0; i < OC * C; i++) dw2[i] = 2 * dw[i];
  linear_backward(NULL, dw, NULL, dout, x, w, M, C, OC);
  check_close("linear backward accumulates (2x dw)", dw, dw2, OC * C, 1e-6, 1e-6);
  /* ... except dinp, which it overwrites: what was there does not count */
  float *dx2 = zeros(M * C);
  for (int i = 0; i < M * C; i++) dx2[i] = 1e3f * (float)(i % 7) - 2e3f;
  linear_backward(dx2, NULL, NULL, dout, x, w, M, C, OC);
  check_close("linear backward overwrites dx", dx2, fx_f32(st, "linear.dx", 0), M * C, BWD_TOL);
}

/* The MLP's first layer as a block's backward pass runs it: gelu_forward_deriv on the kept
 * pre-activation, gelu_backward_deriv (in place and accumulating) into linear_backward, against
 * autograd through F.gelu(F.linear(x, w, b)). */
static void test_linear_gelu(const beit_safetensors *st) {
  int M = 300, C = 24, OC = 520;
  size_t n = (size_t)M * OC;
  float *x = fx_f32(st, "lin_gelu.x", 0), *w = fx_f32(st, "lin_gelu.w", 0), *b = fx_f32(st, "lin_gelu.b", 0);
  float *dout = fx_f32(st, "lin_gelu.dout", 0), *want = fx_f32(st, "lin_gelu.out", 0);
  float *pre = zeros(n), *out = zeros(n), *deriv = zeros(n), *dpre = zeros(n);
  float *dx = zeros(M * C), *dw = zeros(OC * C), *db = zeros(OC);
  linear_forward(pre, x, w, b, M, C, OC);
  check_close("linear forward, 520 outputs", pre, fx_f32(st, "lin_gelu.pre", 0), n, FWD_TOL);
  gelu_forward_deriv(out, deriv, pre, n);
  check_close("gelu_forward_deriv out, 520 a row", out, want, n, FWD_TOL);
  for (size_t i = 0; i < n; i++) dpre[i] = 1.0f;  /* accumulates onto what is there */
  gelu_backward_deriv(dpre, dout, deriv, n);
  for (size_t i = 0; i < n; i++) dpre[i] -= 1.0f;
  gelu_backward_deriv(deriv, dout, deriv, n);  /* in place: overwrites */
  check_close("gelu_backward_deriv accumulates = in place", dpre, deriv, n, 1e-6, 1e-6);
  linear_backward(dx, dw, db, deriv, x, w, M, C, OC);
  check_close("linear+gelu dx", dx, fx_f32(st, "lin_gelu.dx", 0), M * C, BWD_TOL);
  check_close("linear+gelu dw", dw, fx_f32(st, "lin_gelu.dw", 0), OC * C, BWD_TOL);
  check_close("linear+gelu db", db, fx_f32(st, "lin_gelu.db", 0), OC, BWD_TOL);
}

static void test_layernorm(const beit_safetensors *st) {
  int M = 13, C = 24;
  float *x = fx_f32(st, "ln.x", 0), *w = fx_f32(st, "ln.w", 0), *b = fx_f32(st, "ln.b", 0);
  float *out = zeros(M * C), *mean = zeros(M), *rstd = zeros(M);
  float *dx = zeros(M * C), *dw = zeros(C), *db = zeros(C);
  layernorm_forward(out, mean, rstd, x, w, b, M, C, 1e-6f);
  check_close("layernorm forward", out, fx_f32(st, "ln.out", 0), M * C, FWD_TOL);
  layernorm_backward(dx, dw, db, fx_f32(st, "ln.dout", 0), x, w, mean, rstd, M, C);
  check_close("layernorm dx", dx, fx_f32(st, "ln.dx", 0), M * C, BWD_TOL);
  check_close("layernorm dw", dw, fx_f32(st, "ln.dw", 0), C, BWD_TOL);
  check_close("layernorm db", db, fx_f32(st, "ln.db", 0), C, BWD_TOL);
  /* rows of 100 (a partial vector at the end) around a mean of 40 */
  int Cw = 100, Mw = 5;
  x = fx_f32(st, "ln_wide.x", 0), w = fx_f32(st, "ln_wide.w", 0), b = fx_f32(st, "ln_wide.b", 0);
  out = zeros(Mw * Cw), dx = zeros(Mw * Cw), dw = zeros(Cw), db = zeros(Cw);
  layernorm_forward(out, mean, rstd, x, w, b, Mw, Cw, 1e-6f);
  check_close("layernorm forward, C 100, mean 40", out, fx_f32(st, "ln_wide.out", 0), Mw * Cw, FWD_TOL);
  layernorm_backward(dx, dw, db, fx_f32(st, "ln_wide.dout", 0), x, w, mean, rstd, Mw, Cw);
  check_close("layernorm dx, C 100", dx, fx_f32(st, "ln_wide.dx", 0), Mw * Cw, BWD_TOL);
  check_close("layernorm dw, C 100", dw, fx_f32(st, "ln_wide.dw", 0), Cw, BWD_TOL);
  check_close("layernorm db, C 100", db, fx_f32(st, "ln_wide.db", 0), Cw, BWD_TOL);
}

static void test_gelu(const beit_safetensors *st) {
  size_t n = 13 * 24;
  float *x = fx_f32(st, "gelu.x", 0), *out = zeros(n), *dx = zeros(n);
  gelu_forward(out, x, n);
  check_close("gelu forward", out, fx_f32(st, "gelu.out", 0), n, FWD_TOL);
  gelu_backward(dx, fx_f32(st, "gelu.dout", 0), x, n);
  check_close("gelu dx", dx, fx_f32(st, "gelu.dx", 0), n, BWD_TOL);
  n = 1000; /* -12..12, then 0, -0 and 1e-30 */
  x = fx_f32(st, "gelu_wide.x", 0), out = zeros(n), dx = zeros(n);
  gelu_forward(out, x, n);
  check_close("gelu forward, -12..12", out, fx_f32(st, "gelu_wide.out", 0), n, FWD_TOL);
  gelu_backward(dx, fx_f32(st, "gelu_wide.dout", 0), x, n);
  check_close("gelu dx, -12..12", dx, fx_f32(st, "gelu_wide.dx", 0), n, BWD_TOL);
  float *deriv = zeros(n);
  gelu_forward_deriv(out, deriv, x, n);
  check_close("gelu_forward_deriv out, -12..12", out, fx_f32(st, "gelu_wide.out", 0), n, FWD_TOL);
  gelu_backward_deriv(deriv, fx_f32(st, "gelu_wide.dout", 0), deriv, n);
  check_close("gelu_backward_deriv dx, -12..12", deriv, fx_f32(st, "gelu_wide.dx", 0), n, BWD_TOL);
}

static void test_attention(const beit_safetensors *st) {
  int B = 2, N = 17, C = 24, H = 3, R = relpos_table_rows(4, 4);
  float *qkv = fx_f32(st, "attn.qkv", 0), *table = fx_f32(st, "attn.table", 0);
  int32_t *ref_index = fx_i32(st, "attn.index", 0), index[17 * 17];
  relpos_build_index(index, 4, 4);
  int same = !memcmp(index, ref_index, sizeof index);
  CHECK_TRUE(same, "relative position index matches the reference (17x17, R=%d)", R);
  CHECK_TRUE(index[0] == R - 1 && index[1] == R - 3 && index[N] == R - 2,
             "index corners: CLS-CLS %d, CLS-row %d, CLS-col %d", index[0], index[1], index[N]);
  float *bias = zeros(H * N * N), *out = zeros(B * N * C), *att = zeros(B * H * N * N);
  relpos_bias_forward(bias, table, index, N, H);
  attention_forward(out, att, qkv, bias, B, N, C, H);
  check_close("attention probabilities", att, fx_f32(st, "attn.att", 0), B * H * N * N, FWD_TOL);
  check_close("attention forward", out, fx_f32(st, "attn.out", 0), B * N * C, FWD_TOL);
  float *dqkv = zeros(B * N * 3 * C), *dbias = zeros(H * N * N), *datt = zeros(B * H * N * N), *dtable = zeros(R * H);
  attention_backward(dqkv, dbias, datt, fx_f32(st, "attn.dout", 0), qkv, att, B, N, C, H);
  relpos_bias_backward(dtable, dbias, index, N, H);
  check_close("attention dqkv", dqkv, fx_f32(st, "attn.dqkv", 0), B * N * 3 * C, BWD_TOL);
  check_close("relative position table grad", dtable, fx_f32(st, "attn.dtable", 0), R * H, BWD_TOL);
  /* the gradient rule's second exception: dqkv is overwritten, what was there does not count */
  for (int i = 0; i < B * N * 3 * C; i++) dqkv[i] = 1e3f * (float)(i % 7) - 2e3f;
  attention_backward(dqkv, NULL, datt, fx_f32(st, "attn.dout", 0), qkv, att, B, N, C, H);
  check_close("attention backward overwrites dqkv", dqkv, fx_f32(st, "attn.dqkv", 0), B * N * 3 * C, BWD_TOL);
}

static void test_residual(const beit_safetensors *st) {
  int B = 2, N = 17, C = 24;
  float *res = fx_f32(st, "resid.res", 0), *x = fx_f32(st, "resid.x", 0), *gamma = fx_f32(st, "resid.gamma", 0);
  float *keep = fx_f32(st, "resid.keep", 0), *out = zeros(B * N * C);
  residual_forward(out, res, x, gamma, keep, B, N, C);
  check_close("residual+layerscale+droppath forward", out, fx_f32(st, "resid.out", 0), B * N * C, FWD_TOL);
  float *dres = zeros(B * N * C), *dx = zeros(B * N * C), *dg = zeros(C), *dout = fx_f32(st, "resid.dout", 0);
  residual_backward(dres, dx, dg, dout, x, gamma, keep, B, N, C);
  check_close("residual dres", dres, fx_f32(st, "resid.dres", 0), B * N * C, BWD_TOL);
  check_close("residual dx", dx, fx_f32(st, "resid.dx", 0), B * N * C, BWD_TOL);
  check_close("residual dgamma", dg, fx_f32(st, "resid.dgamma", 0), C, BWD_TOL);
}

static void test_pool(const beit_safetensors *st) {
  int B = 2, N = 17, C = 24;
  float *x = fx_f32(st, "pool.x", 0), *out = zeros(B * C), *dx = zeros(B * N * C);
  mean_pool_forward(out, x, B, N, C, 1);
  check_close("mean pool forward", out, fx_f32(st, "pool.out", 0), B * C, FWD_TOL);
  mean_pool_backward(dx, fx_f32(st, "pool.dout", 0), B, N, C, 1);
  check_close("mean pool dx", dx, fx_f32(st, "pool.dx", 0), B * N * C, BWD_TOL);
}

static void test_losses(const beit_safetensors *st) {
  int M = 13, K = 11, C = 24;
  float *logits = fx_f32(st, "xent.logits", 0), *soft = fx_f32(st, "xent.soft", 0);
  int32_t *target = fx_i32(st, "xent.target", 0);
  float *probs = zeros(M * K), *d = zeros(M * K);
  float loss = (float)softmax_xent_forward(probs, logits, target, M, K);
  check_close("cross-entropy loss", &loss, fx_f32(st, "xent.loss", 0), 1, FWD_TOL);
  softmax_xent_backward(d, probs, target, M, K, 1.0f);
  check_close("cross-entropy dlogits", d, fx_f32(st, "xent.dlogits", 0), M * K, BWD_TOL);
  float loss_only = (float)softmax_xent_loss(logits, target, M, K);
  check_close("cross-entropy loss alone (log-sum-exp)", &loss_only, fx_f32(st, "xent.loss", 0), 1, FWD_TOL);
  float *inplace = zeros(M * K);  /* the MIM head's way: probabilities, then gradient, in one buffer */
  memcpy(inplace, logits, M * K * sizeof(float));
  float loss_inplace = (float)softmax_xent_forward(inplace, inplace, target, M, K);
  check_close("cross-entropy loss in place", &loss_inplace, fx_f32(st, "xent.loss", 0), 1, FWD_TOL);
  softmax_xent_backward(inplace, inplace, target, M, K, 1.0f);
  check_close("cross-entropy dlogits in place", inplace, fx_f32(st, "xent.dlogits", 0), M * K, BWD_TOL);
  memset(d, 0, M * K * sizeof(float));
  loss = (float)soft_xent_forward(probs, logits, soft, M, K);
  check_close("soft-target cross-entropy loss", &loss, fx_f32(st, "xent.soft_loss", 0), 1, FWD_TOL);
  soft_xent_backward(d, probs, soft, M, K, 1.0f);
  check_close("soft-target dlogits", d, fx_f32(st, "xent.soft_dlogits", 0), M * K, BWD_TOL);
  float *smooth = zeros(M * K);
  smooth_targets(smooth, target, M, K, 0.1f);
  loss = (float)soft_xent_forward(probs, logits, smooth, M, K);
  check_close("label smoothing 0.1 loss", &loss, fx_f32(st, "xent.smooth_loss", 0), 1, FWD_TOL);
  float *pred = fx_f32(st, "mse.pred", 0), *tgt = fx_f32(st, "mse.target", 0), *dp = zeros(M * C);
  loss = (float)mse_forward(pred, tgt, M * C);
  check_close("mse loss", &loss, fx_f32(st, "mse.loss", 0), 1, FWD_TOL);
  mse_backward(dp, pred, tgt, M * C, 1.0f);
  check_close("mse dpred", dp, fx_f32(st, "mse.dpred", 0), M * C, BWD_TOL);
  /* 1005 classes, logits spread 30: many probabilities below e^-87, flushed to 0 */
  int Mw = 7, Kw = 1005;
  logits = fx_f32(st, "xent_wide.logits", 0), target = fx_i32(st, "xent_wide.target", 0);
  probs = zeros(Mw * Kw), d = zeros(Mw * Kw);
  loss = (float)softmax_xent_forward(probs, logits, target, Mw, Kw);
  check_close("cross-entropy loss, 1005 classes", &loss, fx_f32(st, "xent_wide.loss", 0), 1, FWD_TOL);
  check_close("softmax, 1005 classes", probs, fx_f32(st, "xent_wide.probs", 0), Mw * Kw, FWD_TOL);
  loss_only = (float)softmax_xent_loss(logits, target, Mw, Kw);
  check_close("log-sum-exp loss, 1005 classes", &loss_only, fx_f32(st, "xent_wide.loss", 0), 1, FWD_TOL);
  softmax_xent_backward(d, probs, target, Mw, Kw, 1.0f);
  check_close("cross-entropy dlogits, 1005 classes", d, fx_f32(st, "xent_wide.dlogits", 0), Mw * Kw, BWD_TOL);
}

static void test_adamw(const beit_safetensors *st) {
  size_t n = 13 * 24;
  float *p = fx_f32(st, "adamw.p0", 0), *m = zeros(n), *v = zeros(n);
  const char *g[] = {"adamw.g0", "adamw.g1", "adamw.g2"};
  for (int t = 1; t <= 3; t++) adamw_update(p, fx_f32(st, g[t - 1], 0), m, v, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, t);
  check_close("AdamW 3 steps vs torch.optim.AdamW", p, fx_f32(st, "adamw.p3", 0), n, 1e-6, 1e-5);
}

/* ---- finite differences: loss = sum(out * w) for a fixed random w, in float,
 * central differences on sampled coordinates; tolerance sized for float32. */
typedef double (*scalar_fn)(const float *x, void *ctx);

static void fd_check_n(const char *what, scalar_fn f, float *x, const float *analytic, size_t n, void *ctx,
                       float h, double tol, int samples) {
  beit_rng r;
  beit_rng_seed(&r, 7, BEIT_RNG_TEST, n, 0);
  double worst = 0, worst_num = 0;
  size_t worst_i = 0;
  for (int s = 0; s < samples; s++) {
    size_t i = (size_t)beit_rng_randint(&r, 0, (int64_t)n - 1);
    float keep = x[i];
    x[i] = keep + h;
    double fp = f(x, ctx);
    x[i] = keep - h;
    double fm = f(x, ctx);
    x[i] = keep;
    double num = (fp - fm) / (2 * h), err = fabs(num - analytic[i]) / (fabs(num) + fabs(analytic[i]) + 1e-2);
    if (err > worst) worst = err, worst_i = i, worst_num = num;
  }
  CHECK_TRUE(worst < tol, "finite differences %-28s worst rel err %.2e at %zu (tol %.0e)", what, worst, worst_i, tol);
  if (worst >= tol) printf("       numerical %.6g, analytic %.6g\n", worst_num, analytic[worst_i]);
}

static void fd_check(const char *what, scalar_fn f, float *x, const float *analytic, size_t n, void *ctx,
                     float h, double tol) {
  fd_check_n(what, f, x, analytic, n, ctx, h, tol, 200);
}

typedef struct { int B, N, C, H; const float *w, *bias; float *out, *att; } attn_ctx;

static double attn_loss(const float *qkv, void *p) {
  attn_ctx *c = p;
  attention_forward(c->out, c->att, qkv, c->bias, c->B, c->N, c->C, c->H);
  return dot(c->out, c->w, (size_t)c->B * c->N * c->C);
}

/* the same loss as a function of the bias, qkv fixed (in bias's place) */
static double attn_bias_loss(const float *bias, void *p) {
  attn_ctx *c = p;
  attention_forward(c->out, c->att, c->bias, bias, c->B, c->N, c->C, c->H);
  return dot(c->out, c->w, (size_t)c->B * c->N * c->C);
}

typedef struct { int M, C; const float *w, *g, *b; float *out, *mean, *rstd; } ln_ctx;

static double ln_loss(const float *x, void *p) {
  ln_ctx *c = p;
  layernorm_forward(c->out, c->mean, c->rstd, x, c->g, c->b, c->M, c->C, 1e-6f);
  return dot(c->out, c->w, (size_t)c->M * c->C);
}

typedef struct { int n; const float *w; float *out; } gelu_ctx;

static double gelu_loss(const float *x, void *p) {
  gelu_ctx *c = p;
  gelu_forward(c->out, x, c->n);
  return dot(c->out, c->w, c->n);
}

/* dot(w, gelu(x @ wl^T + bl)) */
typedef struct { int M, C, OC; const float *w, *wl, *bl; float *out, *pre; } lin_gelu_ctx;

static double lin_gelu_loss(const float *x, void *p) {
  lin_gelu_ctx *c = p;
  linear_forward(c->pre, x, c->wl, c->bl, c->M, c->C, c->OC);
  gelu_forward(c->out, c->pre, (size_t)c->M * c->OC);
  return dot(c->out, c->w, (size_t)c->M * c->OC);
}

static void fill(float *x, size_t n, float scale, uint64_t key) {
  beit_rng r;
  beit_rng_seed(&r, 99, BEIT_RNG_TEST, key, 0);
  for (size_t i = 0; i < n; i++) x[i] = scale * (float)beit_rng_normal(&r);
}

static void test_finite_differences(void) {
  int B = 2, N = 10, C = 12, H = 3;
  size_t nq = (size_t)B * N * 3 * C, no = (size_t)B * N * C;
  float *qkv = zeros(nq), *w = zeros(no), *bias = zeros(H * N * N), *dqkv = zeros(nq), *dbias = zeros(H * N * N);
  fill(qkv, nq, 1.0f, 1), fill(w, no, 1.0f, 2), fill(bias, H * N * N, 0.5f, 3);
  attn_ctx ac = {B, N, C, H, w, bias, zeros(no), zeros((size_t)B * H * N * N)};
  attn_loss(qkv, &ac);
  attention_backward(dqkv, dbias, zeros((size_t)B * H * N * N), w, qkv, ac.att, B, N, C, H);
  fd_check("attention dqkv", attn_loss, qkv, dqkv, nq, &ac, 1e-2f, 2e-2);

  int M = 7, Cl = 16;
  float *x = zeros(M * Cl), *g = zeros(Cl), *b = zeros(Cl), *wl = zeros(M * Cl), *dx = zeros(M * Cl);
  fill(x, M * Cl, 2.0f, 4), fill(g, Cl, 1.0f, 5), fill(b, Cl, 1.0f, 6), fill(wl, M * Cl, 1.0f, 7);
  ln_ctx lc = {M, Cl, wl, g, b, zeros(M * Cl), zeros(M), zeros(M)};
  ln_loss(x, &lc);
  layernorm_backward(dx, NULL, NULL, wl, x, g, lc.mean, lc.rstd, M, Cl);
  fd_check("layernorm dx", ln_loss, x, dx, M * Cl, &lc, 1e-2f, 2e-2);

  int n = 200;
  float *xg = zeros(n), *wg = zeros(n), *dg = zeros(n);
  fill(xg, n, 2.0f, 8), fill(wg, n, 1.0f, 9);
  gelu_ctx gc = {n, wg, zeros(n)};
  gelu_backward(dg, wg, xg, n);
  fd_check("gelu dx", gelu_loss, xg, dg, n, &gc, 1e-2f, 2e-2);
  float *deriv = zeros(n);
  gelu_forward_deriv(zeros(n), deriv, xg, n);
  gelu_backward_deriv(deriv, wg, deriv, n);
  fd_check("gelu dx (forward_deriv)", gelu_loss, xg, deriv, n, &gc, 1e-2f, 2e-2);

  int Mf = 9, Cf = 7, OCf = 37;  /* rows end in a partial vector */
  float *xf = zeros(Mf * Cf), *wf = zeros(OCf * Cf), *bf = zeros(OCf), *wo = zeros(Mf * OCf), *dxf = zeros(Mf * Cf);
  fill(xf, Mf * Cf, 1.0f, 10), fill(wf, OCf * Cf, 1.0f, 11), fill(bf, OCf, 1.0f, 12), fill(wo, Mf * OCf, 1.0f, 13);
  lin_gelu_ctx lg = {Mf, Cf, OCf, wo, wf, bf, zeros(Mf * OCf), zeros(Mf * OCf)};
  lin_gelu_loss(xf, &lg);
  float *dpre = zeros(Mf * OCf);
  gelu_forward_deriv(zeros(Mf * OCf), dpre, lg.pre, Mf * OCf);
  gelu_backward_deriv(dpre, wo, dpre, Mf * OCf);
  linear_backward(dxf, NULL, NULL, dpre, xf, wf, Mf, Cf, OCf);
  fd_check("linear+gelu dx", lin_gelu_loss, xf, dxf, Mf * Cf, &lg, 1e-2f, 2e-2);
}

/* ---- attention at the sequence lengths of the presets and around the fused kernels'
 * limit (N <= 257 with D % 16 == 0; N = 258 takes the sgemm path), D 32 and 64, with and
 * without a bias: against PyTorch (float64, tests/ref/ops_ref.py) and by finite differences. */
static const int ATT_N[] = {1, 2, 17, 50, 65, 197, 257, 258};

static void att_shape(int N, int *B, int *H) {
  *B = N <= 65 ? 2 : 1;
  *H = N <= 65 ? 2 : N < 257 ? 2 : 1;
}

static void test_attention_sizes(const beit_safetensors *st) {
  beit_set_threads(1); /* a few (b, h) each: a second thread would mostly wait */
  attention_fused_set(2); /* the fused kernels on every ISA path, not only where they are the default */
  for (size_t t = 0; t < sizeof ATT_N / sizeof ATT_N[0]; t++)
    for (int D = 32; D <= 64; D += 32) {
      int N = ATT_N[t], B, H;
      att_shape(N, &B, &H);
      int C = D * H;
      size_t nq = (size_t)B * N * 3 * C, no = (size_t)B * N * C, na = (size_t)B * H * N * N, nb = (size_t)H * N * N;
      char name[64], what[96];
      snprintf(name, sizeof name, "attn_%d_%d", N, D);
      snprintf(what, sizeof what, "%s.qkv", name);
      float *qkv = fx_f32(st, what, 0);
      snprintf(what, sizeof what, "%s.dout", name);
      float *dout = fx_f32(st, what, 0);
      snprintf(what, sizeof what, "%s.bias", name);
      float *bias = fx_f32(st, what, 0);
      for (int with_bias = 0; with_bias <= 1; with_bias++) {
        char tag[80];
        snprintf(tag, sizeof tag, "%s%s", name, with_bias ? "b" : "");
        float *out = zeros(no), *att = zeros(na), *dqkv = zeros(nq), *dbias = zeros(nb), *datt = zeros(na);
        attention_forward(out, att, qkv, with_bias ? bias : NULL, B, N, C, H);
        attention_backward(dqkv, with_bias ? dbias : NULL, datt, dout, qkv, att, B, N, C, H);
#define REF(field) (snprintf(what, sizeof what, "%s." field, tag), fx_f32(st, what, 0))
        char label[96];
        snprintf(label, sizeof label, "attention N %d D %d%s: probabilities", N, D, with_bias ? " bias" : "");
        check_close(label, att, REF("att"), na, FWD_TOL);
        snprintf(label, sizeof label, "attention N %d D %d%s: out", N, D, with_bias ? " bias" : "");
        check_close(label, out, REF("out"), no, FWD_TOL);
        snprintf(label, sizeof label, "attention N %d D %d%s: dqkv", N, D, with_bias ? " bias" : "");
        check_close(label, dqkv, REF("dqkv"), nq, BWD_TOL);
        if (with_bias) {
          snprintf(label, sizeof label, "attention N %d D %d bias: dbias", N, D);
          check_close(label, dbias, REF("dbias"), nb, BWD_TOL);
        }
#undef REF
        /* finite differences of dot(out, dout): fewer samples at the long sequences */
        int samples = N <= 65 ? 100 : 30;
        float *x = zeros(nq);
        memcpy(x, qkv, nq * sizeof(float));
        attn_ctx ac = {B, N, C, H, dout, with_bias ? bias : NULL, zeros(no), zeros(na)};
        snprintf(label, sizeof label, "attn N %d D %d%s dqkv", N, D, with_bias ? " bias" : "");
        float h = N <= 65 ? 1e-2f : 4e-2f;
        fd_check_n(label, attn_loss, x, dqkv, nq, &ac, h, 2e-2, samples);
        if (with_bias) {
          float *bx = zeros(nb);
          memcpy(bx, bias, nb * sizeof(float));
          attn_ctx bc = {B, N, C, H, dout, qkv, zeros(no), zeros(na)};
          snprintf(label, sizeof label, "attn N %d D %d dbias", N, D);
          fd_check_n(label, attn_bias_loss, bx, dbias, nb, &bc, h, 2e-2, samples);
        }
      }
    }
  /* the fused kernels against the sgemm path on one shape; backward overwrites dqkv and accumulates dbias */
  int B = 2, N = 65, D = 32, H = 2, C = D * H;
  size_t nq = (size_t)B * N * 3 * C, no = (size_t)B * N * C, na = (size_t)B * H * N * N, nb = (size_t)H * N * N;
  float *qkv = fx_f32(st, "attn_65_32.qkv", 0), *dout = fx_f32(st, "attn_65_32.dout", 0);
  float *bias = fx_f32(st, "attn_65_32.bias", 0), *res[2][4];
  char label[96];
  for (int fused = 0; fused <= 1; fused++) {
    float **r = res[fused];
    r[0] = zeros(no), r[1] = zeros(na), r[2] = zeros(nq), r[3] = zeros(nb);
    attention_fused_set(2 * fused);
    attention_forward(r[0], r[1], qkv, bias, B, N, C, H);
    attention_backward(r[2], r[3], zeros(na), dout, qkv, r[1], B, N, C, H);
    float *once = zeros(nq), *btwice = zeros(nb);
    memcpy(once, r[2], nq * sizeof(float));
    for (size_t i = 0; i < nb; i++) btwice[i] = 2 * r[3][i];
    attention_backward(r[2], r[3], zeros(na), dout, qkv, r[1], B, N, C, H);
    snprintf(label, sizeof label, "%s attention backward overwrites dqkv (the same again)", fused ? "fused" : "sgemm");
    check_close(label, r[2], once, nq, 1e-12, 0);
    snprintf(label, sizeof label, "%s attention backward accumulates dbias (2x)", fused ? "fused" : "sgemm");
    check_close(label, r[3], btwice, nb, 1e-6, 1e-6);
    for (size_t i = 0; i < nb; i++) r[3][i] *= 0.5f;
  }
  check_close("attention out: fused == sgemm path", res[1][0], res[0][0], no, 1e-6, 1e-5);
  check_close("attention probabilities: fused == sgemm path", res[1][1], res[0][1], na, 1e-6, 1e-5);
  check_close("attention dqkv: fused == sgemm path", res[1][2], res[0][2], nq, 1e-6, 1e-5);
  check_close("attention dbias: fused == sgemm path", res[1][3], res[0][3], nb, 1e-6, 1e-5);
  attention_fused_set(1);
  beit_set_threads(2);
}

/* The kernels that add up over threads give the same bits in every run with a given
 * thread count: 4 threads on this 2-core machine finish in a varying order. */
static void test_repeatable(void) {
  beit_set_threads(4);
  int M = 3000, C = 192, K = 50, rows = M * C / K;
  float *x = zeros((size_t)M * C), *dy = zeros((size_t)M * C), *w = zeros(C), *b = zeros(C), *y = zeros((size_t)M * C);
  float *mean = zeros(M), *rstd = zeros(M), dw[192], first[192];
  int32_t *target = test_keep(calloc((size_t)rows, sizeof(int32_t)));
  fill(x, (size_t)M * C, 1.0f, 30), fill(dy, (size_t)M * C, 1.0f, 31), fill(w, C, 1.0f, 32);
  layernorm_forward(y, mean, rstd, x, w, b, M, C, 1e-6f);
  double ss = sum_squares(x, (size_t)M * C), loss = softmax_xent_loss(x, target, rows, K);
  int ln_differ = 0, ss_differ = 0, loss_differ = 0;
  for (int r = 0; r < 40; r++) {
    for (int c = 0; c < C; c++) dw[c] = 0.1f * c;  /* a gradient that already holds something */
    layernorm_backward(NULL, dw, NULL, dy, x, w, mean, rstd, M, C);
    if (r == 0) memcpy(first, dw, sizeof dw);
    ln_differ += memcmp(first, dw, sizeof dw) != 0;
    ss_differ += sum_squares(x, (size_t)M * C) != ss;
    loss_differ += softmax_xent_loss(x, target, rows, K) != loss;
  }
  CHECK_TRUE(!ln_differ && !ss_differ && !loss_differ, "40 repeats on 4 threads give the same bits: layernorm dweight "
             "(%d differ), sum of squares (%d), cross-entropy loss (%d)", ln_differ, ss_differ, loss_differ);
  /* the fused attention, forward and backward with the bias gradient, 8 images x 3 heads */
  int Ba = 8, Na = 65, Ha = 3, Ca = 96;
  size_t nq = (size_t)Ba * Na * 3 * Ca, no = (size_t)Ba * Na * Ca, na = (size_t)Ba * Ha * Na * Na, nb = (size_t)Ha * Na * Na;
  float *qkv = zeros(nq), *go = zeros(no), *bias = zeros(nb), *out = zeros(no), *att = zeros(na), *datt = zeros(na);
  float *dq[2] = {zeros(nq), zeros(nq)}, *db[2] = {zeros(nb), zeros(nb)};
  fill(qkv, nq, 1.0f, 33), fill(go, no, 1.0f, 34), fill(bias, nb, 0.5f, 35);
  int att_differ = 0;
  attention_fused_set(2);
  for (int r = 0; r < 10; r++) {
    int k = r > 0;
    memset(dq[k], 0, nq * sizeof(float)), memset(db[k], 0, nb * sizeof(float));
    attention_forward(out, att, qkv, bias, Ba, Na, Ca, Ha);
    attention_backward(dq[k], db[k], datt, go, qkv, att, Ba, Na, Ca, Ha);
    if (k) att_differ += memcmp(dq[0], dq[1], nq * sizeof(float)) || memcmp(db[0], db[1], nb * sizeof(float));
  }
  attention_fused_set(1);
  CHECK_TRUE(!att_differ, "10 repeats on 4 threads give the same bits: fused attention dqkv and dbias (%d differ)",
             att_differ);
  beit_set_threads(2);
}

/* ---- the ISA paths: the outputs of every kernel of simd.h on inputs that reach
 * its corners (partial vectors, exp's cut-off at -87, zeros of both signs). The
 * paths with FMA (AVX2, AVX-512) must agree bit for bit, and with the generic one
 * to rounding; AdamW has no fused operation, so all paths agree on it exactly. */
enum { PN = 16 * 500 + 13, PM = 37, PC = 205, PK = 1005, PR = 6, NPATH = 13 }; /* PN >= PM * PC */
static const char *const PATH_OUT[NPATH] = {"gelu forward", "gelu dx", "layernorm forward", "layernorm mean, rstd",
                                            "layernorm dx", "layernorm dw, db", "softmax rows", "log-sum-exp loss",
                                            "attention probabilities", "gelu forward + deriv",
                                            "fused attn N65 D32 bias", "fused attn N50 D64", "AdamW 2 steps"};

/* The fused attention forward and backward into one array: out, att, dqkv, dbias. */
enum { PA1 = 2 * 65 * 64 + 2 * 2 * 65 * 65 + 2 * 65 * 192 + 2 * 65 * 65, PA2 = 2 * 50 * 128 + 2 * 2 * 50 * 50 + 2 * 50 * 384 + 2 * 50 * 50 };
static void path_attention(float *dst, int B, int N, int D, int H, int with_bias, uint64_t key) {
  int C = D * H;
  size_t nq = (size_t)B * N * 3 * C, no = (size_t)B * N * C, na = (size_t)B * H * N * N;
  float *qkv = zeros(nq), *dout = zeros(no), *bias = zeros((size_t)H * N * N);
  fill(qkv, nq, 1.0f, key), fill(dout, no, 1.0f, key + 1), fill(bias, (size_t)H * N * N, 1.0f, key + 2);
  float *out = dst, *att = out + no, *dqkv = att + na, *dbias = dqkv + nq;
  attention_fused_set(2);
  attention_forward(out, att, qkv, with_bias ? bias : NULL, B, N, C, H);
  attention_backward(dqkv, with_bias ? dbias : NULL, zeros(na), dout, qkv, att, B, N, C, H);
  attention_fused_set(1);
}

static void path_outputs(float *out[NPATH], size_t len[NPATH]) {
  size_t sizes[NPATH] = {PN, PN, PM * PC, 2 * PM, PM * PC, 2 * PC, PR * PK, 1, 2 * 3 * 33 * 33, 2 * PN, PA1, PA2, 3 * PN};
  for (int i = 0; i < NPATH; i++) out[i] = zeros(len[i] = sizes[i]);
  float *x = zeros(PN), *g = zeros(PN), *w = zeros(PC), *b = zeros(PC), *lg = zeros(PR * PK);
  fill(x, PN, 6.0f, 20), fill(g, PN, 1.0f, 21), fill(w, PC, 1.0f, 22), fill(b, PC, 1.0f, 23);
  fill(lg, PR * PK, 30.0f, 24);
  const float special[] = {0.0f, -0.0f, 30.0f, -30.0f, 13.3f, -13.3f, 1e-30f, -1e-30f, 88.0f, -88.0f};
  memcpy(x, special, sizeof special);
  gelu_forward(out[0], x, PN);
  gelu_backward(out[1], g, x, PN);
  layernorm_forward(out[2], out[3], out[3] + PM, x, w, b, PM, PC, 1e-6f);
  layernorm_backward(out[4], out[5], out[5] + PC, g, x, w, out[3], out[3] + PM, PM, PC);
  int32_t target[PR] = {0, 1, 500, 1003, 1004, 7};
  softmax_xent_forward(out[6], lg, target, PR, PK);
  out[7][0] = (float)softmax_xent_loss(lg, target, PR, PK);
  float *qkv = zeros(2 * 33 * 72);  /* B 2, N 33, C 24, H 3: rows of 33 */
  fill(qkv, 2 * 33 * 72, 3.0f, 25);
  attention_forward(zeros(2 * 33 * 24), out[8], qkv, NULL, 2, 33, 24, 3);
  gelu_forward_deriv(out[9], out[9] + PN, x, PN);
  path_attention(out[10], 2, 65, 32, 2, 1, 26);
  path_attention(out[11], 2, 50, 64, 2, 0, 29);
  float *p = out[12], *m = p + PN, *v = m + PN;
  memcpy(p, x, PN * sizeof(float));
  for (int t = 1; t <= 2; t++) adamw_update(p, g, m, v, PN, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, t);
}

static void same_bits(const char *what, const char *isa, const char *ref_isa, const float *got, const float *ref,
                      size_t n) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++)
    if (memcmp(got + i, ref + i, sizeof(float)) && !bad++) first = i;
  CHECK_TRUE(bad == 0, "%-24s %s == %s bit for bit (n=%zu)%s", what, isa, ref_isa, n, bad ? ", differs" : "");
  if (bad) printf("       %zu differ; first at %zu: %.9g vs %.9g\n", bad, first, got[first], ref[first]);
}

/* The kernel tests above on each ISA path, and the paths against each other. */
static void test_isa_paths(const beit_safetensors *st) {
  float *generic[NPATH], *fused[NPATH], *got[NPATH];
  size_t len[NPATH];
  int paths = 0;
  beit_isa first_fused = BEIT_ISA_COUNT;
  for (int i = 0; i < BEIT_ISA_COUNT; i++) {
    beit_isa isa = (beit_isa)i;
    if (!beit_isa_supported(isa)) {
      printf("  skip the %s kernels: this CPU does not run them\n", beit_isa_name(isa));
      continue;
    }
    CHECK_TRUE(beit_isa_set(isa) == BEIT_OK && beit_isa_active() == isa, "the %s kernels selected", beit_isa_name(isa));
    paths++;
    test_layernorm(st);
    test_gelu(st);
    test_linear_gelu(st);
    test_attention(st);
    test_attention_sizes(st);
    test_losses(st);
    test_adamw(st);
    test_finite_differences();
    if (isa == BEIT_ISA_GENERIC) {
      path_outputs(generic, len);
      continue;
    }
    if (first_fused == BEIT_ISA_COUNT) first_fused = isa;
    path_outputs(isa == first_fused ? fused : got, len);
    const char *name = beit_isa_name(isa);
    for (int k = 0; k < NPATH; k++) {
      char what[96];
      snprintf(what, sizeof what, "%s: %s (FMA) vs generic", PATH_OUT[k], name);
      if (k == NPATH - 1) same_bits(PATH_OUT[k], name, "generic", fused[k], generic[k], len[k]);
      else check_close(what, isa == first_fused ? fused[k] : got[k], generic[k], len[k], 1e-6, 1e-5);
      if (isa != first_fused) same_bits(PATH_OUT[k], name, beit_isa_name(first_fused), got[k], fused[k], len[k]);
    }
  }
  CHECK_TRUE(paths >= 1 + beit_isa_supported(BEIT_ISA_AVX2), "%d ISA paths checked", paths);
  CHECK_TRUE(beit_isa_set(BEIT_ISA_COUNT) == BEIT_ERR, "an ISA that does not exist is refused: %s", beit_last_error());
}

/* BEIT_ISA is read at the first kernel call; `beit version` names the choice, and a
 * value it cannot honour gets a warning. */
static void test_isa_env(void) {
  CHECK_TRUE(beit_isa_active() == BEIT_ISA_GENERIC, "BEIT_ISA=generic from the environment picks the generic kernels "
             "(%s)", beit_isa_describe());
  const char *bin = getenv("BEIT_BIN");
  if (!bin) {
    printf("  skip beit version: BEIT_BIN not set (run through tests/run.sh)\n");
    return;
  }
  char cmd[1200], out[2048];
  const char *best = beit_isa_name(beit_isa_supported(BEIT_ISA_AVX512) ? BEIT_ISA_AVX512
                                   : beit_isa_supported(BEIT_ISA_AVX2) ? BEIT_ISA_AVX2 : BEIT_ISA_GENERIC);
  const char *cases[][2] = {{"auto", best}, {"generic", "generic"}, {"bogus", best}};
  for (int i = 0; i < 3; i++) {
    TEST_PATHF(cmd, "BEIT_ISA=%s '%s' version 2>&1", cases[i][0], bin);
    FILE *f = popen(cmd, "r");
    size_t got = f ? fread(out, 1, sizeof out - 1, f) : 0;
    if (f) pclose(f);
    out[got] = 0;
    char want[64];
    snprintf(want, sizeof want, "\nISA: %s (", cases[i][1]);
    int warned = strstr(out, "beit: warning: BEIT_ISA=bogus ignored") != NULL;
    CHECK_TRUE(strstr(out, want) && warned == (i == 2), "BEIT_ISA=%s: beit version says ISA %s%s", cases[i][0],
               cases[i][1], i == 2 ? ", with a warning" : "");
  }
}

int main(void) {
  TEST_BEGIN("test_ops");
  setenv("BEIT_ISA", "generic", 1);  /* before the first kernel call (test_isa_env) */
  beit_set_threads(2);
  beit_safetensors st;
  if (fx_generate(&st, "ops_ref.py", "ops_ref.safetensors", NULL) != 0) {
    test_failed_++;
    return TEST_END();
  }
  test_isa_env();
  test_linear(&st);
  test_residual(&st);
  test_pool(&st);
  test_repeatable();
  test_isa_paths(&st);
  beit_st_close(&st);
  return TEST_END();
}
