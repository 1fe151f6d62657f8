/* test_tok_eval.c - `beit tokenizer eval` on a tokenizer whose usage is known by
 * construction: a k-means tokenizer (28 px, patch 4, k 8, no normalisation) whose
 * centroids are flat patches of value c_k = 0.1 + 0.1 k, and images made of flat
 * 4x4 patches of value c_code + delta, where the code of each patch follows a
 * fixed pattern that hits only codes 0..4. The expected codes used, perplexity,
 * MAE and PSNR are computed here from the construction, not by the library. The
 * same tokenizer then evaluates a 56 px dataset (resized to its 28 px). */
#include <stdarg.h>

#include "child.h"
#include "core/core.h"
#include "fixture.h"
#include "test.h"
#include "train/tokenizer.h"

#define K 8
#define USED 5
#define N_TEST 6

static char g_out[1100], g_err[1100];

static int beit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int beit(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = child_beit_shell(g_out, g_err, fmt, ap);
  va_end(ap);
  return rc;
}

static int code_of(int img, int py, int px) { return (img + 2 * py + 3 * px) % USED; }
static int byte_of(int code) { return (int)lrint(255 * (0.1 + 0.1 * code)); }
/* a deviation of a few grey levels per pixel, small against the 25.5 levels between centroids */
static int delta_of(int img, int y, int x) { return (img * 7 + y * 3 + x * 5) % 9 - 4; }

/* MNIST-layout folder: N_TEST images of side S made of flat patches of side S/7. */
static int make_data(const char *dir, int S, double *mae, double *psnr, double *ppl, int64_t hist[K]) {
  char path[1200];
  snprintf(path, sizeof path, "mkdir -p '%s'", dir);
  if (system(path) != 0) return -1;
  unsigned char *img = calloc((size_t)N_TEST * S * S, 1), lab[N_TEST] = {0};
  double abs_sum = 0, sq_sum = 0;
  memset(hist, 0, K * sizeof(int64_t));
  for (int i = 0; i < N_TEST; i++)
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        int code = code_of(i, y / (S / 7), x / (S / 7)), v = byte_of(code) + (S == 28 ? delta_of(i, y, x) : 0);
        img[((size_t)i * S + y) * S + x] = (unsigned char)v;
        double d = v / 255.0 - (0.1f + 0.1f * code);  /* the float centroid the decoder returns */
        abs_sum += fabs(d), sq_sum += d * d;
        if (y % (S / 7) == 0 && x % (S / 7) == 0) hist[code]++;
      }
  double n = (double)N_TEST * S * S, h = 0, tokens = N_TEST * 49;
  *mae = abs_sum / n, *psnr = 10 * log10(n / sq_sum);
  for (int k = 0; k < K; k++)
    if (hist[k]) h -= hist[k] / tokens * log(hist[k] / tokens);
  *ppl = exp(h);
  unsigned dims[3] = {N_TEST, (unsigned)S, (unsigned)S};
  int rc = 0;
  const char *split[2] = {"train", "t10k"};
  for (int s = 0; s < 2; s++) {
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, split[s]);
    rc |= write_idx(path, img, (size_t)N_TEST * S * S, dims, 3);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split[s]);
    rc |= write_idx(path, lab, N_TEST, dims, 1);
  }
  free(img);
  return rc;
}

static int make_tokenizer(const char *path) {
  kmeans_config c = {.image_size = 28, .channels = 1, .patch = 4, .k = K, .normalize = KMEANS_NORM_NONE};
  kmeans_tok km;
  if (kmeans_create(&km, &c)) return -1;
  float *C = kmeans_centroids(&km);
  for (int k = 0; k < K; k++)
    for (int e = 0; e < 16; e++) C[k * 16 + e] = 0.1f + 0.1f * k;
  int rc = kmeans_save(&km, path, NULL, 0);
  kmeans_free(&km);
  return rc;
}

/* The figures of the CLI's last line. */
static int parse_last_line(const char *out, int *used, int *vocab, double *share, double *ppl, double *mae,
                           double *psnr) {
  const char *last = strstr(out, "codes used ");
  for (const char *p = last; p && (p = strstr(p + 1, "codes used "));) last = p;
  return last && sscanf(last, "codes used %d/%d (%lf%%), perplexity %lf, MAE %lf, PSNR %lf dB", used, vocab, share,
                        ppl, mae, psnr) == 6 ? 0 : -1;
}

static void test_known_usage(const char *tok, const char *data) {
  double mae, psnr, ppl;
  int64_t hist[K];
  CHECK_TRUE(make_data(data, 28, &mae, &psnr, &ppl, hist) == 0, "28 px test data written");
  beit_tokenizer t;
  beit_dataset ds;
  memset(&ds, 0, sizeof ds);
  char spec[1200];
  TEST_PATHF(spec, "mnist:%s", data);
  beit_tok_eval r;
  int rc = beit_tokenizer_load(&t, tok) || beit_dataset_open(&ds, spec, 0) || beit_tokenizer_eval(&t, &ds, 0, 4, &r);
  CHECK_TRUE(!rc, "library eval runs (batch 4 over %d images: a partial last batch): %s", N_TEST,
             rc ? beit_last_error() : "ok");
  if (!rc) {
    CHECK_TRUE(r.images == N_TEST && r.tokens == N_TEST * 49, "%lld images, %lld tokens", (long long)r.images,
               (long long)r.tokens);
    CHECK_TRUE(r.used == USED, "codes used %d, by construction %d", r.used, USED);
    CHECK_TRUE(fabs(r.perplexity - ppl) < 1e-9, "perplexity %.9f, by construction %.9f", r.perplexity, ppl);
    CHECK_TRUE(fabs(r.mae - mae) < 1e-6, "MAE %.8f, by construction %.8f", r.mae, mae);
    CHECK_TRUE(fabs(r.psnr - psnr) < 1e-4, "PSNR %.6f dB, by construction %.6f", r.psnr, psnr);
    CHECK_TRUE(r.seconds_per_image >= 0 && isfinite(r.seconds_per_image), "time per image %.3g s", r.seconds_per_image);
  }
  beit_dataset_close(&ds);
  beit_tokenizer_free(&t);

  rc = beit("tokenizer eval --tokenizer '%s' --data '%s' --threads 1", tok, spec);
  char *out = slurp(g_out), *err = slurp(g_err);
  int used = 0, vocab = 0;
  double share = 0, p = 0, m = 0, s = 0;
  int prc = out ? parse_last_line(out, &used, &vocab, &share, &p, &m, &s) : -1;
  CHECK_TRUE(rc == 0 && prc == 0, "beit tokenizer eval exits 0 and ends with the figures line (exit %d): %.400s%.200s",
             rc, out ? out : "", err ? err : "");
  CHECK_TRUE(used == USED && vocab == K && fabs(share - 100.0 * USED / K) < 0.06 && fabs(p - ppl) < 0.06 &&
                 fabs(m - mae) < 6e-5 && fabs(s - psnr) < 0.006,
             "CLI line: %d/%d (%.1f%%), perplexity %.1f, MAE %.4f, PSNR %.2f dB; by construction %d/%d, %.1f, %.4f, "
             "%.2f", used, vocab, share, p, m, s, USED, K, ppl, mae, psnr);
  CHECK_TRUE(out && strstr(out, "time per image"), "the time per image is printed");
  free(out), free(err);
}

/* Larger images are resized to the tokenizer's 28 px: every token still counts. */
static void test_resized(const char *tok, const char *data) {
  double mae, psnr, ppl;
  int64_t hist[K];
  CHECK_TRUE(make_data(data, 56, &mae, &psnr, &ppl, hist) == 0, "56 px test data written");
  int rc = beit("tokenizer eval --tokenizer '%s' --data 'mnist:%s' --threads 1", tok, data);
  char *out = slurp(g_out), *err = slurp(g_err);
  int used = 0, vocab = 0;
  double share, p, m, s;
  int prc = out ? parse_last_line(out, &used, &vocab, &share, &p, &m, &s) : -1;
  CHECK_TRUE(rc == 0 && prc == 0 && strstr(out, "294 tokens") && strstr(out, "resized to 28 px") && used == USED &&
                 m < 0.02,
             "56 px images evaluated at 28 px: 6 x 49 tokens, %d codes used, MAE %.4f (exit %d): %.300s%.200s", used,
             m, rc, out ? out : "", err ? err : "");
  free(out), free(err);
}

static void test_errors(const char *tok, const char *data) {
  int rc = beit("tokenizer eval --tokenizer '%s' --data 'mnist:%s' --image-size 32", tok, data);
  char *err = slurp(g_err);
  CHECK_TRUE(rc == 2 && err && strstr(err, "--image-size 32") && strstr(err, "28 px"),
             "--image-size other than the tokenizer's: exit 2 naming the flag (exit %d): %.200s", rc, err ? err : "");
  free(err);
  rc = beit("tokenizer eval --data 'mnist:%s'", data);
  err = slurp(g_err);
  CHECK_TRUE(rc == 2 && err && strstr(err, "--tokenizer"), "no --tokenizer: exit 2 (exit %d): %.200s", rc,
             err ? err : "");
  free(err);
  rc = beit("tokenizer eval --tokenizer '%s/none.safetensors' --data 'mnist:%s'", fx_dir(), data);
  err = slurp(g_err);
  CHECK_TRUE(rc == 1 && err && strstr(err, "beit tokenizer eval: ") && strstr(err, "none.safetensors"),
             "a missing checkpoint: exit 1 naming it (exit %d): %.200s", rc, err ? err : "");
  free(err);
}

int main(void) {
  TEST_BEGIN("test_tok_eval");
  char tok[1100], d28[1100], d56[1100], cmd[1200];
  TEST_PATHF(tok, "%s/tokeval-km.safetensors", fx_dir());
  TEST_PATHF(d28, "%s/tokeval-28", fx_dir());
  TEST_PATHF(d56, "%s/tokeval-56", fx_dir());
  TEST_PATHF(g_out, "%s/tokeval.out", fx_dir());
  TEST_PATHF(g_err, "%s/tokeval.err", fx_dir());
  TEST_PATHF(cmd, "mkdir -p '%s'", fx_dir());
  CHECK_TRUE(system(cmd) == 0 && make_tokenizer(tok) == 0, "k-means tokenizer with set centroids saved");
  test_known_usage(tok, d28);
  test_resized(tok, d56);
  test_errors(tok, d28);
  return TEST_END();
}
