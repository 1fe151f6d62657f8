/* test_vq.c - the vector-quantised tokenizer: its kernels (l2 normalisation and
 * backward, cosine lookup, EMA codebook update, dead-code restart, commitment
 * loss) against tests/ref/vq_ref.py (NumPy / torch autograd); the encoder's
 * gradient through the straight-through estimator by finite differences; the
 * codebook initialised by k-means; save / load; `beit tokenizer train --type vq`
 * and `beit tokenizer eval` on its checkpoint. */
#include <stdarg.h>

#include "child.h"
#include "fixture.h"
#include "model/vq.h"
#include "ops/ops.h"
#include "test.h"

static void test_kernels(void) {
  beit_safetensors st;
  if (fx_generate(&st, "vq_ref.py", "vq_ref.safetensors", NULL)) {
    test_failed_++;
    return;
  }
  const int N = 60, D = 8, V = 12;
  float *x = test_keep(fx_f32(&st, "x", NULL)), *dy = test_keep(fx_f32(&st, "dy", NULL));
  float *C = test_keep(fx_f32(&st, "C", NULL)), *count = test_keep(fx_f32(&st, "count", NULL));
  float *sum = test_keep(fx_f32(&st, "sum", NULL));
  int32_t *pick32 = test_keep(fx_i32(&st, "pick", NULL)), *codes_ref = test_keep(fx_i32(&st, "codes", NULL));
  int32_t *restarted_ref = test_keep(fx_i32(&st, "restarted", NULL));
  float y[60 * 8], norm[60], dx[60 * 8], dcommit[60 * 8] = {0};
  int32_t codes[60];
  uint32_t pick[12];
  for (int k = 0; k < V; k++) pick[k] = (uint32_t)pick32[k];

  vq_l2_normalize(y, norm, x, N, D);
  check_close("l2 normalise", y, test_keep(fx_f32(&st, "y", NULL)), N * D, 1e-6, 1e-5);
  check_close("norms", norm, test_keep(fx_f32(&st, "norm", NULL)), N, 1e-6, 1e-5);
  vq_l2_normalize_backward(dx, dy, y, norm, N, D);
  check_close("l2 normalise backward (torch autograd)", dx, test_keep(fx_f32(&st, "dx", NULL)), N * D, 1e-5, 1e-4);
  vq_cosine_lookup(codes, NULL, y, C, N, D, V);
  int same = 0;
  for (int i = 0; i < N; i++) same += codes[i] == codes_ref[i];
  CHECK_TRUE(same == N, "cosine lookup: %d of %d codes as NumPy's argmax", same, N);
  float q[60 * 8];
  for (int i = 0; i < N; i++) memcpy(q + i * D, C + codes_ref[i] * D, D * sizeof(float));
  float commit = (float)vq_commitment(dcommit, y, q, N, D, 0.25f);
  check_close("commitment loss", &commit, test_keep(fx_f32(&st, "commit", NULL)), 1, 1e-7, 1e-5);
  check_close("commitment gradient", dcommit, test_keep(fx_f32(&st, "dcommit", NULL)), N * D, 1e-8, 1e-4);

  vq_ema_update(C, count, sum, y, codes_ref, N, D, V, 0.9f);
  check_close("EMA counts", count, test_keep(fx_f32(&st, "count1", NULL)), V, 1e-6, 1e-5);
  check_close("EMA sums", sum, test_keep(fx_f32(&st, "sum1", NULL)), V * D, 1e-6, 1e-5);
  check_close("EMA codebook (normalised sums)", C, test_keep(fx_f32(&st, "C1", NULL)), V * D, 1e-6, 1e-5);
  int restarted = vq_restart_dead(C, count, sum, y, pick, D, V, 0.5f);
  CHECK_TRUE(restarted == restarted_ref[0], "dead-code restart: %d codes restarted, NumPy %d", restarted,
             restarted_ref[0]);
  check_close("restarted codebook", C, test_keep(fx_f32(&st, "C2", NULL)), V * D, 1e-6, 1e-5);
  check_close("restarted sums", sum, test_keep(fx_f32(&st, "sum2", NULL)), V * D, 1e-6, 1e-5);
  check_close("restarted counts", count, test_keep(fx_f32(&st, "count2", NULL)), V, 1e-6, 1e-5);
  beit_st_close(&st);
}

/* The lookup at sizes past its tiles (rows not a multiple of 64, codes of several 256-wide tiles) against a
   double-precision argmax: the same code wherever the best two differ by more than float rounding; equal
   codebook rows give the first of them; a NaN similarity never wins. */
static void test_lookup_tiles(void) {
  enum { N = 203, D = 24, V = 700 };
  float *x = test_keep(malloc(sizeof(float) * N * D)), *C = test_keep(malloc(sizeof(float) * V * D));
  float *sim = test_keep(malloc(sizeof(float) * N));
  int32_t *codes = test_keep(malloc(sizeof(int32_t) * N));
  uint64_t r = 7;
  for (int i = 0; i < N * D; i++) r = r * 6364136223846793005ull + 1442695040888963407ull, x[i] = (r >> 40) / 8388608.0f - 1;
  for (int i = 0; i < V * D; i++) r = r * 6364136223846793005ull + 1442695040888963407ull, C[i] = (r >> 40) / 8388608.0f - 1;
  memcpy(C + 611 * D, C + 300 * D, D * sizeof(float));  /* code 611 = code 300 */
  memcpy(x + 5 * D, C + 300 * D, D * sizeof(float));    /* row 5 is best matched by both: 300 must win */
  vq_cosine_lookup(codes, sim, x, C, N, D, V);
  int agree = 0, close = 0;
  double worst = 0;
  for (int i = 0; i < N; i++) {
    double b1 = -1e300, b2 = -1e300;
    int arg = 0;
    for (int k = 0; k < V; k++) {
      double s = 0;
      for (int c = 0; c < D; c++) s += (double)x[i * D + c] * C[k * D + c];
      if (s > b1) b2 = b1, b1 = s, arg = k;
      else if (s > b2) b2 = s;
    }
    if (codes[i] == arg) agree++;
    else if (b1 - b2 < 1e-5 * (1 + fabs(b1))) close++;
    worst = fmax(worst, fabs(sim[i] - b1) / (1 + fabs(b1)));
  }
  CHECK_TRUE(agree + close == N && worst < 1e-5, "lookup over %d rows x %d codes: %d as the double argmax, %d more at a "
             "near tie, similarity error %.2g", N, V, agree, close, worst);
  CHECK_TRUE(codes[5] == 300, "equal codes 300 and 611: the first wins (got %d)", codes[5]);
  C[17 * D] = NAN;  /* code 17 has NaN similarity with every row */
  for (int c = 0; c < D; c++) x[c] = C[17 * D + c] = c ? C[17 * D + c] : NAN;
  vq_cosine_lookup(codes, sim, x, C, N, D, V);
  int nan_won = 0;
  for (int i = 0; i < N; i++) nan_won += codes[i] == 17;
  CHECK_TRUE(!nan_won && codes[0] == 0, "a NaN similarity never wins (%d rows chose it); a row of NaN gets code 0 (%d)",
             nan_won, codes[0]);
}

/* A tiny model: 8x8x1 -> 4x4 codes of dimension 4, 8 codes. */
static int tiny(vq_tok *v, float *images, int B) {
  vq_config c = {.net = {.image_size = 8, .channels = 1, .n_hid = 8, .n_init = 8, .n_blk_per_group = 1,
                         .n_groups = 2, .vocab = 4, .recon = DVAE_RECON_MSE},
                 .vocab = 8};
  if (vq_create(v, &c)) return -1;
  vq_init_weights(v, 3);
  uint64_t s = 99;
  for (int i = 0; i < B * 64; i++)
    s = s * 6364136223846793005ull + 1442695040888963407ull, images[i] = (s >> 40) / 16777216.0f;
  return vq_init_codebook(v, images, B, 5);
}

/* L_lin(w) = <g, u(w)> + beta mean (u(w) - q)^2 with g (the decoder's gradient at
 * z = q) and q held fixed: its gradient is what the straight-through estimator
 * gives the encoder, so finite differences of it check vq_backward. */
static double lin_loss(vq_tok *v, const float *images, int B, const float *g, const float *q, float beta) {
  int32_t tok[4 * 16];
  vq_encode(v, images, B, tok);
  size_t n = (size_t)B * 16 * 4;
  double s = 0, c = 0;
  for (size_t i = 0; i < n; i++) s += (double)g[i] * v->unit[i], c += ((double)v->unit[i] - q[i]) * (v->unit[i] - q[i]);
  return s + beta * c / (double)n;
}

static void test_ste_gradient(void) {
  enum { B = 4 };
  static float images[B * 64];
  vq_tok v;
  int trc = tiny(&v, images, B);
  CHECK_TRUE(trc == 0, "tiny VQ model with a k-means codebook: %s", trc ? beit_last_error() : "ok");
  const float *C = beit_params_get(&v.cb, "quantizer.codebook");
  double mn = 1e9, mx = 0;
  for (int k = 0; k < 8; k++) {
    double s = 0;
    for (int c = 0; c < 4; c++) s += (double)C[k * 4 + c] * C[k * 4 + c];
    mn = fmin(mn, s), mx = fmax(mx, s);
  }
  CHECK_TRUE(fabs(mn - 1) < 1e-5 && fabs(mx - 1) < 1e-5, "k-means codebook rows are unit vectors (|c|^2 in %.6f..%.6f)",
             mn, mx);
  vq_train_opts o = {.beta = 0.25f, .decay = 0.99f, .dead = 0.5f, .seed = 1, .step = 0};
  vq_stats st;
  beit_params_zero_grad(&v.net.params);
  int rc = vq_forward_train(&v, images, B, &o, &st);
  size_t n = (size_t)B * 16 * 4;
  float *q = test_keep(malloc(n * sizeof(float))), *g = test_keep(malloc(n * sizeof(float)));
  memcpy(q, v.q, n * sizeof(float));
  /* the decoder's input is the codes: z = q */
  float *zrows = test_keep(malloc(n * sizeof(float)));
  vq_maps_to_rows(zrows, v.zmap, B, 4, 16);
  CHECK_TRUE(!rc && !memcmp(zrows, q, n * sizeof(float)), "forward: the decoder gets the codes (straight through)");
  const float *dz = dvae_train_backward_decoder(&v.net);  /* g = d recon / d z, as rows */
  vq_maps_to_rows(g, dz, B, 4, 16);
  beit_params_zero_grad(&v.net.params);
  rc = vq_forward_train(&v, images, B, &o, &st) || vq_backward(&v, &o);
  CHECK_TRUE(!rc, "backward runs");
  /* three encoder weights: the first conv, a block conv, the last (1x1 to the codes) */
  const char *names[] = {"encoder.blocks.input.w", "encoder.blocks.group_1.block_1.res_path.conv_1.w",
                         "encoder.blocks.output.conv.w"};
  for (int t = 0; t < 3; t++) {
    int i = beit_params_find(&v.net.params, names[t]);
    if (i < 0) { CHECK_TRUE(0, "no tensor %s", names[t]); continue; }
    float *w = v.net.params.data + v.net.params.t[i].offset, *gw = v.net.params.grad + v.net.params.t[i].offset;
    double worst = 0;
    for (int e = 0; e < 6; e++) {
      size_t j = (size_t)e * 7 % v.net.params.t[i].numel;
      float w0 = w[j];
      const float h = 1e-3f;
      w[j] = w0 + h;
      double lp = lin_loss(&v, images, B, g, q, o.beta);
      w[j] = w0 - h;
      double lm = lin_loss(&v, images, B, g, q, o.beta);
      w[j] = w0;
      double fd = (lp - lm) / (2 * h), err = fabs(fd - gw[j]) / (fabs(fd) + 1e-4);
      worst = fmax(worst, err);
    }
    CHECK_TRUE(worst < 0.03, "%s: STE gradient against finite differences, worst relative error %.4f", names[t], worst);
  }
  int r = vq_forward_train(&v, images, B, &o, &st) ? -1 : vq_update_codebook(&v, &o);
  CHECK_TRUE(r >= 0, "codebook update: %d restarted", r);
  char path[1100];
  TEST_PATHF(path, "%s/vq_tiny.safetensors", fx_dir());
  vq_tok back;
  int32_t t1[B * 16], t2[B * 16];
  float r1[B * 64], r2[B * 64];
  rc = vq_save(&v, path, NULL, 0) || vq_load(&back, path);
  CHECK_TRUE(!rc, "save / load: %s", rc ? beit_last_error() : "ok");
  if (!rc) {
    rc = vq_encode(&v, images, B, t1) || vq_encode(&back, images, B, t2) || vq_decode(&v, t1, B, r1) ||
         vq_decode(&back, t2, B, r2);
    CHECK_TRUE(!rc && !memcmp(t1, t2, sizeof t1) && !memcmp(r1, r2, sizeof r1),
               "the loaded tokenizer encodes and decodes as the saved one");
    int32_t badtok[B * 16] = {8};
    CHECK_TRUE(vq_decode(&back, badtok, B, r2) == BEIT_ERR && strstr(beit_last_error(), "outside"),
               "a token outside the vocabulary is refused: %s", beit_last_error());
    vq_free(&back);
  }
  /* a small file claiming a huge network is refused before anything is allocated */
  beit_params one;
  beit_params_init(&one);
  int64_t shp[1] = {4};
  beit_params_add(&one, "quantizer.codebook", 1, shp, 0, 0);
  beit_params_alloc_data(&one);
  const char *kv[] = {"type", "vq", "image_size", "16384", "channels", "3", "n_hid", "4096", "n_init", "4096",
                      "n_blk_per_group", "8", "n_groups", "6", "code_dim", "1024", "vocab", "65536"};
  TEST_PATHF(path, "%s/vq_huge.safetensors", fx_dir());
  rc = beit_params_save(&one, path, kv, 9) || vq_load(&back, path) != BEIT_ERR;
  beit_params_free(&one);
  CHECK_TRUE(!rc && strstr(beit_last_error(), "holds only"), "a 16-byte VQ file claiming n_hid 4096 is refused: %s",
             beit_last_error());
  vq_free(&v);
}

static char g_out[1100], g_err[1100];
static int beit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int beit(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = child_beit_shell(g_out, g_err, fmt, ap);
  va_end(ap);
  return rc;
}

static void test_cli(void) {
  char data[1100], dir[1100];
  TEST_PATHF(data, "%s/vq-mnist", fx_dir());
  TEST_PATHF(dir, "%s/vq-run", fx_dir());
  TEST_PATHF(g_out, "%s/vq.out", fx_dir());
  TEST_PATHF(g_err, "%s/vq.err", fx_dir());
  CHECK_TRUE(make_tiny_mnist(data, 64, 16) == 0, "tiny dataset");
  int rc = beit("tokenizer train --type vq --data 'mnist:%s' --out '%s' --overwrite --vocab 64 --n-hid 8 --steps 4 "
                "--batch 8 --log-every 2 --eval-images 16 --workers 0 --threads 1", data, dir);
  char *out = slurp(g_out), *err = slurp(g_err), path[1200], *log = NULL, *cfg = NULL;
  CHECK_TRUE(rc == 0 && out && strstr(out, "saved"), "beit tokenizer train --type vq (exit %d): %.300s %.300s", rc,
             out ? out : "", err ? err : "");
  TEST_PATHF(path, "%s/log.jsonl", dir);
  log = slurp(path);
  CHECK_TRUE(log && strstr(log, "\"codes_used_share\"") && strstr(log, "\"codes_ever_share\"") &&
                 strstr(log, "\"restarted\""), "log.jsonl has the codes used in the window and ever: %.200s",
             log ? log : "(none)");
  TEST_PATHF(path, "%s/config.json", dir);
  cfg = slurp(path);
  CHECK_TRUE(cfg && strstr(cfg, "\"vq\"") && strstr(cfg, "\"code_dim\""), "config.json says vq");
  free(out), free(err), free(log), free(cfg);
  rc = beit("tokenizer eval --tokenizer '%s/tokenizer.safetensors' --data 'mnist:%s' --threads 1", dir, data);
  out = slurp(g_out), err = slurp(g_err);
  int used = 0, vocab = 0;
  double mae = -1;
  const char *line = out ? strstr(out, "codes used ") : NULL;
  int ok = line && sscanf(line, "codes used %d/%d (%*f%%), perplexity %*f, MAE %lf", &used, &vocab, &mae) == 3;
  CHECK_TRUE(rc == 0 && ok && vocab == 64 && used >= 1 && mae >= 0 && mae < 1,
             "beit tokenizer eval on the VQ checkpoint: %d/%d codes, MAE %.4f (exit %d): %.300s %.200s", used, vocab,
             mae, rc, out ? out : "", err ? err : "");
  free(out), free(err);
  rc = beit("tokenizer train --type vq --data 'mnist:%s' --out '%s' --overwrite --vocab 1024 --batch 4 --steps 1 "
            "--workers 0 --threads 1", data, dir);
  err = slurp(g_err);
  CHECK_TRUE(rc == 1 && err && strstr(err, "--batch 4 gives 196 encoder outputs per step, fewer than --vocab 1024"),
             "a batch with fewer encoder outputs than codes is refused naming both flags (exit %d): %.200s", rc,
             err ? err : "");
  free(err);
}

int main(void) {
  TEST_BEGIN("test_vq");
  test_kernels();
  test_lookup_tiles();
  test_ste_gradient();
  test_cli();
  return TEST_END();
}
