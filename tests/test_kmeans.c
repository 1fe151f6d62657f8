/* test_kmeans.c - the k-means tokenizer: recovers well-separated synthetic clusters,
 * encode = brute-force nearest centroid, images built from prototype patches get
 * one token per prototype, patch normalisation, save/load and bad files; also the
 * tokenizer handle (train/tokenizer.h) and the token file format. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "model/kmeans.h"
#include "train/tokenizer.h"
#include "test.h"

enum { D = 16, TRUE_K = 8, PER = 300 };

/* TRUE_K centres ~ N(0, 3^2) in 16-d, PER points each with noise 0.1. */
static float *clustered(float *centres, int32_t *truth, beit_rng *r) {
  float *x = malloc((size_t)TRUE_K * PER * D * sizeof(float));
  for (int c = 0; c < TRUE_K * D; c++) centres[c] = 3.0f * (float)beit_rng_normal(r);
  for (int i = 0; i < TRUE_K * PER; i++) {
    int c = (i * 7) % TRUE_K;  /* interleaved, so order says nothing */
    truth[i] = c;
    for (int e = 0; e < D; e++) x[i * D + e] = centres[c * D + e] + 0.1f * (float)beit_rng_normal(r);
  }
  return x;
}

static void recovers_clusters(void) {
  beit_rng r;
  beit_rng_seed(&r, 3, BEIT_RNG_TEST, 0, 0);
  float centres[TRUE_K * D];
  int32_t truth[TRUE_K * PER], labels[TRUE_K * PER];
  float *x = clustered(centres, truth, &r);
  kmeans_config c = {.image_size = 4, .channels = 1, .patch = 4, .k = TRUE_K, .normalize = KMEANS_NORM_NONE};
  kmeans_tok km;
  kmeans_create(&km, &c);
  kmeans_fit_opts o = {.iters = 20, .seed = 1};
  kmeans_fit_stats st;
  double t0 = beit_now();
  int ok = kmeans_fit(&km, x, TRUE_K * PER, &o, &st) == BEIT_OK;
  CHECK_TRUE(ok, "fit 2400 points, k 8: %d iterations, inertia %.4f (noise floor %.3f), %.3f s", st.iters_run,
             st.inertia, 0.01 * D, beit_now() - t0);
  kmeans_assign(&km, x, TRUE_K * PER, labels, NULL);
  /* purity: every true cluster maps to one label and no two share it */
  int map[TRUE_K], pure = 1, used = 0;
  for (int c2 = 0; c2 < TRUE_K; c2++) map[c2] = -1;
  for (int i = 0; i < TRUE_K * PER; i++) {
    if (map[truth[i]] < 0) map[truth[i]] = labels[i];
    pure &= map[truth[i]] == labels[i];
  }
  for (int a = 0; a < TRUE_K; a++)
    for (int b = a + 1; b < TRUE_K; b++) used += map[a] == map[b];
  CHECK_TRUE(pure && !used, "each true cluster is exactly one k-means cluster");
  double err = 0;
  const float *C = kmeans_centroids(&km);
  for (int c2 = 0; pure && !used && c2 < TRUE_K; c2++)
    for (int e = 0; e < D; e++) {
      double dlt = fabs(C[map[c2] * D + e] - centres[c2 * D + e]);
      err = dlt > err ? dlt : err;
    }
  CHECK_TRUE(pure && !used && err < 0.03, "centroids within %.4f of the true centres (< 0.03)", err);
  /* same seed, same result */
  kmeans_tok km2;
  kmeans_create(&km2, &c);
  kmeans_fit(&km2, x, TRUE_K * PER, &o, &st);
  CHECK_TRUE(!memcmp(kmeans_centroids(&km), kmeans_centroids(&km2), sizeof(float) * TRUE_K * D),
             "fitting twice with the same seed gives identical centroids");
  kmeans_free(&km2);
  kmeans_free(&km);
  free(x);
}

/* Brute-force nearest centroid in double. */
static int nearest(const float *C, int k, const float *v, int dim, double *best_d) {
  int best = 0;
  *best_d = INFINITY;
  for (int j = 0; j < k; j++) {
    double s = 0;
    for (int e = 0; e < dim; e++) s += ((double)v[e] - C[j * dim + e]) * ((double)v[e] - C[j * dim + e]);
    if (s < *best_d) *best_d = s, best = j;
  }
  return best;
}

static void encode_is_nearest(int normalize) {
  kmeans_config c = {.image_size = 12, .channels = 3, .patch = 4, .k = 40, .normalize = normalize};
  kmeans_tok km;
  kmeans_create(&km, &c);
  kmeans_init_random_centroids(&km, 9);
  float *C = kmeans_centroids(&km);
  for (int i = 0; i < 40 * 48; i++) C[i] = 0.5f + 0.2f * C[i];  /* pixel-like */
  enum { B = 5 };
  float *img = malloc(B * 3 * 144 * sizeof(float)), *patches = malloc(B * 9 * 48 * sizeof(float));
  beit_rng r;
  beit_rng_seed(&r, 4, BEIT_RNG_TEST, 0, 0);
  for (int i = 0; i < B * 3 * 144; i++) img[i] = (float)beit_rng_uniform(&r);
  int32_t tok[B * 9];
  kmeans_encode(&km, img, B, tok);
  kmeans_patches(&km, img, B, patches);
  int agree = 0;
  double worst = 0;
  for (int i = 0; i < B * 9; i++) {
    double dbest, dgot = 0;
    int j = nearest(kmeans_centroids(&km), 40, patches + i * 48, 48, &dbest);
    for (int e = 0; e < 48; e++) {
      double t = patches[i * 48 + e] - kmeans_centroids(&km)[tok[i] * 48 + e];
      dgot += t * t;
    }
    agree += j == tok[i];
    worst = fmax(worst, (dgot - dbest) / dbest);
  }
  CHECK_TRUE(agree == B * 9 || worst < 1e-5,
             "encode (%s) = brute-force nearest centroid for %d/%d patches (worst excess distance %.1e)",
             normalize ? "patch-normalised" : "raw", agree, B * 9, worst);
  free(img), free(patches);
  kmeans_free(&km);
}

/* Images tiled from 5 prototype patches: k-means on them gives one token per prototype. */
static void prototype_images(void) {
  enum { B = 40, S = 16, P = 4, G = 4, NP = 5 };
  beit_rng r;
  beit_rng_seed(&r, 5, BEIT_RNG_TEST, 0, 0);
  float proto[NP][P * P];
  for (int p = 0; p < NP; p++)
    for (int e = 0; e < P * P; e++) proto[p][e] = (float)beit_rng_uniform(&r);
  float *img = malloc(B * S * S * sizeof(float));
  int which[B * G * G];
  for (int i = 0; i < B * G * G; i++) {
    int b = i / (G * G), gy = i % (G * G) / G, gx = i % G, p = (int)beit_rng_randint(&r, 0, NP - 1);
    which[i] = p;
    for (int y = 0; y < P; y++)
      for (int x = 0; x < P; x++)
        img[(b * S + gy * P + y) * S + gx * P + x] = proto[p][y * P + x] + 0.01f * (float)beit_rng_normal(&r);
  }
  kmeans_config c = {.image_size = S, .channels = 1, .patch = P, .k = NP, .normalize = KMEANS_NORM_NONE};
  kmeans_tok km;
  kmeans_create(&km, &c);
  kmeans_fit_opts o = {.iters = 20, .seed = 2, .max_patches = 400};
  kmeans_fit_stats st;
  kmeans_train(&km, img, B, &o, &st);
  int32_t tok[B * G * G], map[NP] = {-1, -1, -1, -1, -1};
  kmeans_encode(&km, img, B, tok);
  int consistent = 1;
  for (int i = 0; i < B * G * G; i++) {
    if (map[which[i]] < 0) map[which[i]] = tok[i];
    consistent &= map[which[i]] == tok[i];
  }
  int distinct = 1;
  for (int a = 0; a < NP; a++)
    for (int b2 = a + 1; b2 < NP; b2++) distinct &= map[a] != map[b2];
  CHECK_TRUE(consistent && distinct, "train on 40 tiled images (400 sampled patches): one token per prototype");
  float *rec = malloc(B * S * S * sizeof(float));
  kmeans_decode(&km, tok, B, rec);
  double mae = 0;
  for (int i = 0; i < B * S * S; i++) mae += fabs(rec[i] - img[i]);
  mae /= B * S * S;
  CHECK_TRUE(mae < 0.02, "decode pastes the centroids back: MAE %.4f", mae);
  /* save / load */
  char path[1024];
  const char *dir = getenv("BEIT_TEST_FIXTURES") ? getenv("BEIT_TEST_FIXTURES") : "/tmp";
  snprintf(path, sizeof path, "%s/kmeans_tok.safetensors", dir);
  kmeans_tok back;
  int ok = kmeans_save(&km, path, NULL, 0) == BEIT_OK && kmeans_load(&back, path) == BEIT_OK;
  CHECK_TRUE(ok, "save + load %s", ok ? "" : beit_last_error());
  if (ok) {
    int32_t tok2[B * G * G];
    kmeans_encode(&back, img, B, tok2);
    CHECK_TRUE(!memcmp(&back.cfg, &km.cfg, sizeof c) && !memcmp(tok, tok2, sizeof tok),
               "loaded tokenizer has the same config and tokens");
    kmeans_free(&back);
  }
  free(img), free(rec);
  kmeans_free(&km);
}

static void normalisation_and_errors(void) {
  kmeans_config c = {.image_size = 8, .channels = 1, .patch = 4, .k = 4, .normalize = KMEANS_NORM_PATCH};
  kmeans_tok km;
  kmeans_create(&km, &c);
  float img[64], p[4 * 16];
  for (int i = 0; i < 64; i++) img[i] = (i / 8 < 4 && i % 8 < 4) ? 0.7f : (float)((i * 37) % 11) / 10.0f;
  kmeans_patches(&km, img, 1, p);
  double m = 0, v = 0, flat = 0;
  for (int e = 0; e < 16; e++) flat = fmax(flat, fabs(p[e]));
  for (int e = 16; e < 32; e++) m += p[e];
  for (int e = 16; e < 32; e++) v += (p[e] - m / 16) * (p[e] - m / 16);
  CHECK_TRUE(flat == 0 && fabs(m / 16) < 1e-6 && v / 16 < 1 && v / 16 > 0.5,
             "patch normalisation: a flat patch -> 0, others mean 0 and variance %.3f (< 1 from eps)", v / 16);
  kmeans_fit_opts o = {.iters = 3};
  kmeans_fit_stats st;
  CHECK_TRUE(kmeans_fit(&km, p, 3, &o, &st) != BEIT_OK, "fewer points than k is refused: %s", beit_last_error());
  int32_t t[4] = {0, 1, 2, 3};
  CHECK_TRUE(kmeans_decode(&km, t, 1, img) != BEIT_OK, "decode refuses normalised centroids: %s", beit_last_error());
  kmeans_free(&km);
  kmeans_config bad = {.image_size = 10, .channels = 1, .patch = 4, .k = 4};
  CHECK_TRUE(kmeans_create(&km, &bad) != BEIT_OK, "image size not a multiple of the patch: %s", beit_last_error());
  CHECK_TRUE(kmeans_load(&km, "/nonexistent/tok.safetensors") != BEIT_OK, "missing file: %s", beit_last_error());
}

static const char *fixture(const char *name, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s", getenv("BEIT_TEST_FIXTURES") ? getenv("BEIT_TEST_FIXTURES") : "/tmp", name);
  return buf;
}

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}

static void token_files(void) {
  char path[1024], bad[1024];
  fixture("tokens.bin", path, sizeof path);
  int32_t tok[3 * 12];
  for (int i = 0; i < 36; i++) tok[i] = (i * 977) % 1000;
  beit_token_file tf;
  int ok = beit_tokens_write(path, tok, 3, 3, 4, 1000) == BEIT_OK && beit_tokens_read(path, &tf) == BEIT_OK;
  CHECK_TRUE(ok && tf.n == 3 && tf.grid_h == 3 && tf.grid_w == 4 && tf.vocab == 1000 && !memcmp(tf.tokens, tok, sizeof tok),
             "token file round-trip (3 grids of 3x4, vocab 1000)");
  if (ok) beit_tokens_free(&tf);
  uint8_t *buf;
  size_t size;
  beit_read_file(path, &buf, &size);
  CHECK_TRUE(size == BEIT_TOKENS_HEADER + 2 * 36, "file size = 32-byte header + 2 bytes per token (%zu)", size);
  fixture("tokens_bad.bin", bad, sizeof bad);
  const struct { const char *what, *needle; size_t at, len; uint8_t val; } cases[] = {
      {"truncated file", "bytes, but the header says", 0, 0, 0},
      {"bad magic", "bad magic", 0, 1, 'X'},
      {"version 2", "version 2", 8, 1, 2},
      {"token >= vocab", "outside the vocabulary", BEIT_TOKENS_HEADER + 2 * 5 + 1, 1, 0x7f},
      {"zero grid", "bad header", 12, 1, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    uint8_t *copy = malloc(size);
    memcpy(copy, buf, size);
    if (cases[c].len) copy[cases[c].at] = cases[c].val;
    write_bytes(bad, copy, cases[c].len ? size : size - 3);
    int rc = beit_tokens_read(bad, &tf);
    CHECK_TRUE(rc != BEIT_OK && strstr(beit_last_error(), cases[c].needle), "%s refused: %s", cases[c].what,
               beit_last_error());
    free(copy);
  }
  free(buf);
  CHECK_TRUE(beit_tokens_write(path, tok, 3, 3, 4, 500) != BEIT_OK, "writing a token >= vocab is refused: %s",
             beit_last_error());
}

/* The handle dispatches on the checkpoint's type and encodes like the model. */
static void tokenizer_handle(void) {
  char path[1024];
  kmeans_config c = {.image_size = 8, .channels = 1, .patch = 4, .k = 6, .normalize = KMEANS_NORM_NONE};
  kmeans_tok km;
  kmeans_create(&km, &c);
  kmeans_init_random_centroids(&km, 3);
  fixture("kmeans_handle.safetensors", path, sizeof path);
  kmeans_save(&km, path, NULL, 0);
  beit_tokenizer t;
  int ok = beit_tokenizer_load(&t, path) == BEIT_OK;
  CHECK_TRUE(ok && t.type == BEIT_TOK_KMEANS && t.grid == 2 && t.vocab == 6 && t.image_size == 8,
             "beit_tokenizer_load reads a k-means checkpoint (grid 2x2, vocab 6)");
  float img[2 * 64];
  for (int i = 0; i < 128; i++) img[i] = (float)((i * 13) % 17) / 16;
  int32_t a[8], b[8];
  if (ok) {
    beit_tokenizer_encode(&t, img, 2, a);
    kmeans_encode(&km, img, 2, b);
    CHECK_TRUE(!memcmp(a, b, sizeof a), "the handle encodes like kmeans_encode");
    beit_tokenizer_free(&t);
  }
  kmeans_free(&km);
  fixture("tokens.bin", path, sizeof path);
  CHECK_TRUE(beit_tokenizer_load(&t, path) != BEIT_OK, "a non-safetensors file is refused: %s", beit_last_error());
}

int main(void) {
  TEST_BEGIN("test_kmeans");
  beit_set_threads(2);
  recovers_clusters();
  encode_is_nearest(KMEANS_NORM_NONE);
  encode_is_nearest(KMEANS_NORM_PATCH);
  prototype_images();
  normalisation_and_errors();
  token_files();
  tokenizer_handle();
  return TEST_END();
}
