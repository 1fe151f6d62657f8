/* test_kernels.c - the kernels that were loops of the model walks (ops/tokens.c,
 * dvae_ops.c, kmeans_ops.c) against PyTorch (tests/ref/kernels_ref.py), called
 * through the CPU backend's table, with the accumulate rule of ops.h. The Gumbel
 * noise, which PyTorch cannot draw, is checked by its moments and its sharding. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "fixture.h"
#include "test.h"

#define TOL 1e-5, 1e-5
#define EXACT 1e-30, 0 /* a tolerance of exactly 0 would print its share as nan */

static const beit_backend *be;

static float *zeros(size_t n) { return test_keep(calloc(n, sizeof(float))); }
#define fx_f32(st, name) ((float *)test_keep(fx_f32(st, name, NULL)))
#define fx_i32(st, name) ((int32_t *)test_keep(fx_i32(st, name, NULL)))

static int same_i32(const int32_t *a, const int32_t *b, size_t n) { return !memcmp(a, b, n * sizeof(int32_t)); }

static void test_tokens(const beit_safetensors *st) {
  int B = 3, N = 10, C = 12, Np = N - 1;
  float *qkv = zeros(3 * C), *dq = zeros(C), *dv = zeros(C);
  be->qkv_bias_forward(qkv, fx_f32(st, "qkv.q"), fx_f32(st, "qkv.v"), C);
  check_close("q/v bias packing [q | 0 | v]", qkv, fx_f32(st, "qkv.out"), 3 * C, TOL);
  for (int rep = 0; rep < 2; rep++) be->qkv_bias_backward(dq, dv, fx_f32(st, "qkv.dout"), C);
  float *dq2 = fx_f32(st, "qkv.dq"), *dv2 = fx_f32(st, "qkv.dv");
  for (int i = 0; i < C; i++) dq2[i] *= 2, dv2[i] *= 2;
  check_close("q bias gradient, accumulated twice", dq, dq2, C, TOL);
  check_close("v bias gradient, accumulated twice", dv, dv2, C, TOL);

  float *x = fx_f32(st, "pos.x"), *dpos = zeros((size_t)N * C);
  be->pos_embed_forward(x, fx_f32(st, "pos.pos"), B, N, C);
  check_close("position embedding x += pos", x, fx_f32(st, "pos.out"), (size_t)B * N * C, TOL);
  be->pos_embed_backward(dpos, fx_f32(st, "pos.dout"), B, N, C);
  check_close("position embedding gradient (batch sum)", dpos, fx_f32(st, "pos.dpos"), (size_t)N * C, TOL);

  size_t nm;
  int32_t *mask32 = fx_i32(st, "rows.mask"), *want = test_keep((fx_i32)(st, "rows.rows", &nm));
  uint8_t mask[3 * 9];
  for (int i = 0; i < B * Np; i++) mask[i] = (uint8_t)mask32[i];
  int32_t rows[27], targets[27], patch_rows[27];
  int n = be->masked_rows(rows, targets, patch_rows, mask, fx_i32(st, "rows.tokens"), B, Np);
  CHECK_TRUE(n == (int)nm && same_i32(rows, want, nm), "masked rows: %d of %d, their token rows", n, B * Np);
  int same = same_i32(targets, fx_i32(st, "rows.targets"), nm);
  same &= same_i32(patch_rows, fx_i32(st, "rows.patch_rows"), nm);
  CHECK_TRUE(same, "masked rows: the visual token and the patch row of each");
  be->token_rows(rows, B, N, 0);
  CHECK_TRUE(rows[0] == 0 && rows[1] == N && rows[2] == 2 * N, "token rows of CLS: 0, %d, %d", rows[1], rows[2]);

  int64_t correct = be->top1_correct(fx_f32(st, "top1.logits"), fx_i32(st, "top1.target"), 17, 9);
  int32_t ref = fx_i32(st, "top1.correct")[0];
  CHECK_TRUE(correct == ref, "top-1 count %lld (reference %d; a tie and a NaN row never count)", (long long)correct,
             ref);
}

static void test_latent(const beit_safetensors *st) {
  int B = 2, V = 13, hw = 12;
  size_t lat = (size_t)B * V * hw;
  float tau = 0.7f, kl_coef = 0.3f;
  float *logits = fx_f32(st, "latent.logits"), *q = zeros(lat), *z = zeros(lat), *dl = zeros(lat);
  float kl = (float)be->gumbel_softmax_forward(q, z, logits, fx_f32(st, "latent.gumbel"), B, V, hw, tau);
  check_close("softmax of the logits q", q, fx_f32(st, "latent.q"), lat, TOL);
  check_close("Gumbel softmax z", z, fx_f32(st, "latent.z"), lat, TOL);
  check_close("KL(q || uniform) summed over positions", &kl, fx_f32(st, "latent.kl"), 1, TOL);
  for (int rep = 0; rep < 2; rep++)
    be->gumbel_softmax_backward(dl, fx_f32(st, "latent.dz"), z, q, logits, B, V, hw, tau, kl_coef);
  float *dl2 = fx_f32(st, "latent.dlogits");
  for (size_t i = 0; i < lat; i++) dl2[i] *= 2;
  check_close("d(z.dz + kl_coef KL)/dlogits, accumulated twice", dl, dl2, lat, 1e-5, 1e-4);
  /* at a low temperature the shares of all but the chosen code underflow: they come out as 0, never as
     denormals (which slowed the decoder's sgemm over z to 60%), and the rest is as before */
  float *cold = zeros(lat), *zc = zeros(lat), *qc = zeros(lat), *g0 = zeros(lat);
  for (size_t i = 0; i < lat; i++) cold[i] = (i / hw) % V == 0 ? 95.0f / 16 : (i % 3) * 0.25f;  /* e^-95, e^-91 .. */
  be->gumbel_softmax_forward(qc, zc, cold, g0, B, V, hw, 1.0f / 16);
  int denormal = 0, zeros_seen = 0;
  for (size_t i = 0; i < lat; i++) denormal += zc[i] != 0 && zc[i] < FLT_MIN, zeros_seen += zc[i] == 0;
  CHECK_TRUE(!denormal && zeros_seen > 0, "tau 1/16, logits 95/16 apart: %d denormal shares in z, %d exact zeros", denormal,
             zeros_seen);
  float ppl = (float)be->code_perplexity(q, B, V, hw);
  check_close("perplexity of the mean code distribution", &ppl, fx_f32(st, "latent.perplexity"), 1, TOL);
  float *qbar = zeros(V), *du = zeros(lat);
  be->code_mean(qbar, q, B, V, hw);
  check_close("mean code distribution qbar", qbar, fx_f32(st, "latent.qbar"), V, TOL);
  be->code_usage_kl_backward(du, q, qbar, B, V, hw, kl_coef);
  check_close("d(kl_coef N sum qbar ln qbar)/dlogits (usage KL)", du, fx_f32(st, "latent.dusage"), lat, 1e-5, 1e-4);
  int32_t codes[24];
  be->argmax_channels(codes, logits, B, V, hw);
  CHECK_TRUE(same_i32(codes, fx_i32(st, "latent.codes"), (size_t)B * hw), "argmax over the channels");
  float *onehot = zeros(lat);
  for (size_t i = 0; i < lat; i++) onehot[i] = 7;  /* overwritten everywhere */
  be->one_hot_codes(onehot, codes, B, V, hw);
  check_close("one-hot grids of the codes", onehot, fx_f32(st, "latent.one_hot"), lat, EXACT);
  uint8_t seen[40];
  int used = be->distinct_codes(seen, fx_i32(st, "codes.codes"), 57, 40);
  CHECK_TRUE(used == fx_i32(st, "codes.distinct")[0], "distinct codes: %d", used);
}

static void test_pixels(const beit_safetensors *st) {
  int B = 2, C = 2;
  size_t P = 25, img = (size_t)B * C * P;
  float *xm = zeros(img), *un = zeros(img), *out = fx_f32(st, "recon.out"), *dout = zeros(2 * img);
  be->map_pixels(xm, fx_f32(st, "recon.img"), img, 0.1f);
  check_close("map_pixels (1 - 2 eps) x + eps", xm, fx_f32(st, "recon.xm"), img, TOL);
  be->unmap_pixels(un, out, B, C, P, 0.1f);
  check_close("unmap_pixels of the mu channels", un, fx_f32(st, "recon.unmapped"), img, TOL);
  const char *names[2][2] = {{"recon.mse", "recon.dmse"}, {"recon.laplace", "recon.dlaplace"}};
  for (int laplace = 0; laplace < 2; laplace++) {
    for (size_t i = 0; i < 2 * img; i++) dout[i] = 9;  /* written, not accumulated */
    float loss = (float)be->recon_loss_forward(dout, fx_f32(st, "recon.xm"), out, B, C, P, laplace);
    check_close(laplace ? "logit-Laplace NLL" : "MSE through the sigmoid", &loss, fx_f32(st, names[laplace][0]), 1,
                TOL);
    check_close(laplace ? "logit-Laplace gradient" : "MSE gradient", dout, fx_f32(st, names[laplace][1]), 2 * img,
                1e-6, 1e-4);
  }
  float y[5] = {1, 2, 3, 4, 5}, xs[5] = {1, -1, 0.5f, 0, 2}, ref[5] = {1.5f, 1.5f, 3.25f, 4, 6};
  be->axpy(y, xs, 0.5f, 5);
  check_close("axpy y += 0.5 x", y, ref, 5, EXACT);
}

/* Gumbel(0, 1): mean the Euler-Mascheroni constant, variance pi^2/6; an image of a
 * shard draws what the same image of the whole batch draws. */
static void test_gumbel(void) {
  int B = 4, S = 3;
  size_t per = 20000;
  float *all = zeros(B * S * per), *mine = zeros(B * per);
  be->gumbel_noise(all, B * S, per, 7, 11, 0, 0);
  double m = 0, v = 0;
  for (size_t i = 0; i < B * S * per; i++) m += all[i];
  m /= (double)(B * S * per);
  for (size_t i = 0; i < B * S * per; i++) v += (all[i] - m) * (all[i] - m);
  v /= (double)(B * S * per);
  CHECK_TRUE(fabs(m - 0.5772157) < 0.01 && fabs(v - M_PI * M_PI / 6) < 0.03, "Gumbel noise: mean %.4f, variance %.4f",
             m, v);
  be->gumbel_noise(mine, B, per, 7, 11, 1, S);
  int same = 1;
  for (int b = 0; b < B; b++) same &= !memcmp(mine + b * per, all + ((size_t)b * S + 1) * per, per * sizeof(float));
  CHECK_TRUE(same, "shard 1 of 3 draws images 1, 4, 7, 10 of the whole batch");
}

static void test_kmeans(const beit_safetensors *st) {
  int n = 40, D = 7, k = 9;
  float *x = fx_f32(st, "km.x"), *c = fx_f32(st, "km.c"), *cnorm = zeros(k), *dist2 = zeros(n), *sq = zeros(n);
  be->row_sum_squares(cnorm, c, k, D);
  be->row_sum_squares(sq, x, n, D);
  check_close("row sums of squares", sq, fx_f32(st, "km.sumsq"), n, TOL);
  int32_t labels[40];
  be->nearest_centroid(labels, dist2, x, n, D, fx_f32(st, "km.dots"), cnorm, c, k);
  CHECK_TRUE(same_i32(labels, fx_i32(st, "km.labels"), n),
             "nearest centroids (the lower of two equal ones: row 3 -> %d)", labels[3]);
  check_close("squared distance to the nearest", dist2, fx_f32(st, "km.dist2"), n, 1e-5, 1e-4);
  float *prev = fx_f32(st, "km.prev_d2"), *lowered = zeros(n);
  double d2[40];
  for (int i = 0; i < n; i++) d2[i] = prev[i];
  be->lower_dist2(d2, x, n, D, c + 4 * D);
  for (int i = 0; i < n; i++) lowered[i] = (float)d2[i];
  check_close("k-means++ distances lowered by a new centroid", lowered, fx_f32(st, "km.lowered"), n, TOL);
  double sum = be->sum_f64(d2, n), want = 0;
  for (int i = 0; i < n; i++) want += d2[i];
  CHECK_TRUE(fabs(sum - want) <= 1e-12 * want, "sum of doubles %.6f (%.6f)", sum, want);
  float *raw = fx_f32(st, "km.raw");
  be->row_standardize(raw, n, D, 0.01f);
  check_close("rows standardised (x - mean) / sqrt(var + eps)", raw, fx_f32(st, "km.standardized"), (size_t)n * D,
              TOL);
  /* centroid means over the members, grouped by a counting sort as kmeans.c does */
  int32_t *member = fx_i32(st, "km.member_of");
  size_t start[10] = {0}, order[40], fill[9];
  for (int i = 0; i < n; i++) start[member[i] + 1]++;
  for (int j = 0; j < k; j++) start[j + 1] += start[j];
  memcpy(fill, start, sizeof fill);
  for (int i = 0; i < n; i++) order[fill[member[i]]++] = (size_t)i;
  be->centroid_means(c, x, order, start, k, D);
  check_close("centroid means (the empty one untouched)", c, fx_f32(st, "km.means"), (size_t)k * D, TOL);
}

static void test_unpatchify(const beit_safetensors *st) {
  int B = 2, Cin = 3, P = 2, S = 6;
  size_t n = (size_t)B * Cin * S * S;
  float *img = zeros(n), *patches = fx_f32(st, "unpatch.patches"), *back = zeros(n);
  be->unpatchify(img, patches, NULL, B, Cin, S, P);
  check_close("unpatchify: the image again", img, fx_f32(st, "unpatch.img"), n, EXACT);
  float *again = zeros(n);
  be->patchify(again, img, B, Cin, S, P);
  check_close("patchify(unpatchify(p)) == p", again, patches, n, EXACT);
  be->unpatchify(back, patches, fx_i32(st, "unpatch.index"), B, Cin, S, P);
  check_close("unpatchify of patches picked by an index", back, fx_f32(st, "unpatch.gathered"), n, EXACT);
}

int main(void) {
  TEST_BEGIN("test_kernels");
  beit_set_threads(2);
  be = beit_backend_cpu();
  beit_safetensors st;
  if (fx_generate(&st, "kernels_ref.py", "kernels_ref.safetensors", NULL) != 0) {
    test_failed_++;
    return TEST_END();
  }
  test_tokens(&st);
  test_latent(&st);
  test_pixels(&st);
  test_gumbel();
  test_kmeans(&st);
  test_unpatchify(&st);
  beit_st_close(&st);
  return TEST_END();
}
