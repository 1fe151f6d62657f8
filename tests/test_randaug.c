/* test_randaug.c - the fine-tuning recipe's augmentations (issue 18): each
 * RandAugment op against PIL (tests/ref/randaug_ref.py) at magnitude 9 on small
 * 1- and 3-channel images, the policy-string parser, random erasing's statistics,
 * RandomCrop with padding, and that the train view draws them deterministically. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/augment.h"
#include "data/randaug.h"
#include "fixture.h"
#include "test.h"

/* ---- each op against PIL ------------------------------------------------------ */
/* Every op must match PIL value for value (Pillow 9.4, Debian 12): the same LUTs,
 * the same float blend truncated, the same SMOOTH filter, the same bicubic
 * (a = -1) affine sampling at pixel centres with clamped taps and truncation. */
static void test_ops_vs_pil(void) {
  printf("RandAugment ops against PIL (magnitude 9, both signs, inc 1 and 0; 24x24x3, 13x17x1, 19x32x3)\n");
  beit_safetensors st;
  if (fx_generate(&st, "randaug_ref.py", "randaug_ref.safetensors", NULL) != 0) {
    CHECK_TRUE(0, "reference script ran (needs python3-pil)");
    return;
  }
  size_t n;
  int32_t *cases = test_keep(fx_i32(&st, "cases", &n));
  float *mag = test_keep(fx_f32(&st, "magnitude", &n));
  int32_t *fill32 = test_keep(fx_i32(&st, "fill", &n));
  uint8_t fill[3] = {(uint8_t)fill32[0], (uint8_t)fill32[1], (uint8_t)fill32[2]};
  int worst[BEIT_RA_NUM_OPS] = {0};
  long long differ[BEIT_RA_NUM_OPS] = {0}, total[BEIT_RA_NUM_OPS] = {0};
  int failed_calls = 0;
  for (int k = 0; k < cases[0]; k++) {
    char name[64];
    snprintf(name, sizeof name, "case%d.image", k);
    const beit_st_entry *e = &st.e[beit_st_find(&st, name)];
    uint8_t *pix = test_keep(fx_u8(&st, name, &n));
    snprintf(name, sizeof name, "case%d.args", k);
    int32_t *args = test_keep(fx_i32(&st, name, NULL));
    snprintf(name, sizeof name, "case%d.out", k);
    uint8_t *ref = test_keep(fx_u8(&st, name, NULL));
    beit_image img = {.h = (int)e->shape[0], .w = (int)e->shape[1], .c = (int)e->shape[2], .data = pix};
    int op = args[0];
    failed_calls += beit_randaug_op(&img, op, mag[0], args[1], args[2], fill) != BEIT_OK;
    for (size_t i = 0; i < n; i++) {
      int d = abs((int)pix[i] - (int)ref[i]);
      if (d > worst[op]) worst[op] = d;
      differ[op] += d != 0;
    }
    total[op] += (long long)n;
  }
  CHECK_TRUE(failed_calls == 0, "every op ran");
  for (int op = 0; op < BEIT_RA_NUM_OPS; op++) {
    double share = total[op] ? (double)differ[op] / total[op] : 1;
    CHECK_TRUE(total[op] > 0 && worst[op] == 0, "%-13s max |beit - PIL| %d grey level(s), %.3f%% of %lld values differ",
               beit_randaug_op_names[op], worst[op], 100 * share, total[op]);
  }
  beit_st_close(&st);
}

/* ---- the policy string ------------------------------------------------------------ */
static void test_parse(void) {
  printf("the RandAugment string: timm's syntax, bad strings refused naming the section\n");
  beit_randaug_cfg c;
  int rc = beit_randaug_parse("rand-m9-mstd0.5-inc1", &c);
  CHECK_TRUE(rc == BEIT_OK && c.n == 2 && c.m == 9 && c.mstd == 0.5f && c.inc == 1 && c.mmax == 10 && c.p == 0.5f,
             "rand-m9-mstd0.5-inc1: n %d m %g mstd %g inc %d mmax %g p %g", c.n, c.m, c.mstd, c.inc, c.mmax, c.p);
  rc = beit_randaug_parse("rand-n3-m5", &c);
  CHECK_TRUE(rc == BEIT_OK && c.n == 3 && c.m == 5 && c.mstd == 0 && c.inc == 0, "rand-n3-m5: n %d m %g", c.n, c.m);
  rc = beit_randaug_parse("rand-m7-mstd101", &c);
  CHECK_TRUE(rc == BEIT_OK && isinf(c.mstd), "mstd above 100: uniform magnitudes (timm), mstd %g", c.mstd);
  rc = beit_randaug_parse("rand", &c);
  CHECK_TRUE(rc == BEIT_OK && c.n == 2 && c.m == 10, "rand alone: timm's defaults n 2 m 10");
  rc = beit_randaug_parse("none", &c);
  CHECK_TRUE(rc == BEIT_OK && c.n == 0, "none: off");
  const char *bad[] = {"rand-m9-x1", "augmix-m5", "rand-m", "rand-n0", "rand-inc2", "rand-m9-mstd-1", "rand-w0",
                       "random-m9", "rand-m9--n2x", "rand-p1.5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rc = beit_randaug_parse(bad[i], &c);
    CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), bad[i]), "'%s' refused: %s", bad[i], beit_last_error());
  }
}

/* ---- random erasing --------------------------------------------------------------- */
static void test_erasing(void) {
  printf("random erasing (timm, mode pixel): probability, area 0.02..1/3, aspect log-uniform 0.3..3.3, N(0,1) pixels\n");
  enum { S = 32, C = 3, TRIALS = 4000 };
  float *x = test_keep(malloc(sizeof(float) * C * S * S));
  int hits = 0;
  double log_ar_sum = 0, area_min = 1, area_max = 0, sum = 0, sq = 0;
  long long px = 0;
  int inside_ok = 1, outside_ok = 1;
  for (int t = 0; t < TRIALS; t++) {
    for (int i = 0; i < C * S * S; i++) x[i] = 7.0f;  /* a value no N(0,1) draw takes */
    beit_rng rng;
    beit_rng_seed(&rng, 5, BEIT_RNG_AUGMENT, 0, (uint64_t)t);
    beit_box b;
    if (!beit_random_erase(x, C, S, S, 0.25f, &rng, &b)) continue;
    hits++;
    double area = (double)b.h * b.w / (S * S);
    area_min = fmin(area_min, area), area_max = fmax(area_max, area);
    log_ar_sum += log((double)b.h / b.w);
    for (int c = 0; c < C; c++)
      for (int y = 0; y < S; y++)
        for (int xx = 0; xx < S; xx++) {
          float v = x[(c * S + y) * S + xx];
          int in = y >= b.top && y < b.top + b.h && xx >= b.left && xx < b.left + b.w;
          if (in) sum += v, sq += (double)v * v, px++, inside_ok &= v != 7.0f;
          else outside_ok &= v == 7.0f;
        }
  }
  double p = (double)hits / TRIALS, mean = sum / px, var = sq / px - mean * mean;
  CHECK_TRUE(fabs(p - 0.25) < 0.03, "erased in %.3f of %d images (0.25)", p, TRIALS);
  CHECK_TRUE(area_min >= 0.015 && area_max <= 0.36, "erased area share in [%.3f, %.3f] (0.02..1/3, rounding)", area_min,
             area_max);
  CHECK_TRUE(fabs(log_ar_sum / hits) < 0.08, "mean log aspect %.3f (log-uniform, symmetric: 0)", log_ar_sum / hits);
  CHECK_TRUE(inside_ok && outside_ok, "the box and only the box is rewritten");
  CHECK_TRUE(fabs(mean) < 0.02 && fabs(var - 1) < 0.03, "erased pixels: mean %.4f, variance %.4f over %lld (N(0,1))",
             mean, var, px);
}

/* ---- RandomCrop(S, padding N) + flip ---------------------------------------------- */
static void test_crop_pad(void) {
  printf("RandomCrop(S, padding N): the output is the zero-padded image cut at the drawn offset\n");
  enum { S = 12, C = 3, N = 4 };
  beit_image img = {0};
  beit_image_reserve(&img, S, S, C);
  for (int i = 0; i < S * S * C; i++) img.data[i] = (uint8_t)(i * 37 % 251 + 1);
  beit_aug_cfg cfg;
  beit_aug_defaults(&cfg);
  cfg.brightness = cfg.contrast = cfg.saturation = 0;
  cfg.crop_pad = N;
  float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
  float *out = test_keep(malloc(sizeof(float) * C * S * S));
  int ok = 1, flips = 0, offsets_seen[2 * N + 1] = {0};
  for (int t = 0; t < 200; t++) {
    beit_rng rng;
    beit_rng_seed(&rng, 3, BEIT_RNG_AUGMENT, 0, (uint64_t)t);
    beit_aug_params p;
    if (beit_aug_train(&cfg, &img, &rng, S, mean, std, out, &p) != BEIT_OK) ok = 0;
    flips += p.flip;
    offsets_seen[p.box.top]++, offsets_seen[p.box.left]++;
    for (int c = 0; c < C; c++)
      for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
          int sx = p.box.left - N + (p.flip ? S - 1 - x : x), sy = p.box.top - N + y;
          float want = sx < 0 || sy < 0 || sx >= S || sy >= S ? 0 : img.data[(sy * S + sx) * C + c] * (1.0f / 255.0f);
          ok &= out[(c * S + y) * S + x] == want;
        }
  }
  int all = 1;
  for (int k = 0; k <= 2 * N; k++) all &= offsets_seen[k] > 0;
  CHECK_TRUE(ok, "200 draws equal the padded crop at (top, left) in [0, %d], mirrored when flipped", 2 * N);
  CHECK_TRUE(all && flips > 60 && flips < 140, "every offset 0..%d drawn, %d flips of 200", 2 * N, flips);
  beit_image_free(&img);
}

/* ---- the train view with RandAugment and erasing: deterministic, and on ----------- */
static void test_train_view(void) {
  printf("the train view with RandAugment + erasing: same seed same bytes; each changes the image\n");
  enum { S = 16 };
  beit_image img = {0};
  beit_image_reserve(&img, 20, 20, 3);
  for (int i = 0; i < 20 * 20 * 3; i++) img.data[i] = (uint8_t)(i * 53 % 241);
  beit_aug_cfg cfg;
  beit_aug_defaults(&cfg);
  float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.5f, 0.5f, 0.5f};
  float *a = test_keep(malloc(sizeof(float) * 3 * S * S)), *b = test_keep(malloc(sizeof(float) * 3 * S * S));
  float *plain = test_keep(malloc(sizeof(float) * 3 * S * S));
  beit_rng r1, r2, r3;
  beit_rng_seed(&r3, 9, BEIT_RNG_AUGMENT, 1, 2);
  int rc = beit_aug_train(&cfg, &img, &r3, S, mean, std, plain, NULL);
  beit_randaug_parse("rand-m9-mstd0.5-inc1-p1", &cfg.randaug);
  cfg.reprob = 1;
  beit_rng_seed(&r1, 9, BEIT_RNG_AUGMENT, 1, 2), beit_rng_seed(&r2, 9, BEIT_RNG_AUGMENT, 1, 2);
  beit_aug_params p;
  rc |= beit_aug_train(&cfg, &img, &r1, S, mean, std, a, &p);
  rc |= beit_aug_train(&cfg, &img, &r2, S, mean, std, b, NULL);
  CHECK_TRUE(rc == BEIT_OK && !memcmp(a, b, sizeof(float) * 3 * S * S), "two draws from one seed are bit-identical");
  CHECK_TRUE(p.ops[0] >= 0 && p.ops[1] >= 0 && p.erased, "p1: both ops applied (%s, %s), erased %dx%d",
             p.ops[0] >= 0 ? beit_randaug_op_names[p.ops[0]] : "-", p.ops[1] >= 0 ? beit_randaug_op_names[p.ops[1]] : "-",
             p.erase.w, p.erase.h);
  CHECK_TRUE(memcmp(a, plain, sizeof(float) * 3 * S * S) != 0, "the view differs from the one without them");
  beit_aug_defaults(&cfg);  /* all three off (the demo's recipe): the view pretraining's view A always was */
  beit_rng_seed(&r1, 9, BEIT_RNG_AUGMENT, 1, 2), beit_rng_seed(&r2, 9, BEIT_RNG_AUGMENT, 1, 2);
  rc = beit_aug_train(&cfg, &img, &r1, S, mean, std, a, NULL);
  rc |= beit_aug_pretrain(&cfg, &img, &r2, S, 0, mean, std, b, NULL, NULL);
  CHECK_TRUE(rc == BEIT_OK && !memcmp(a, b, sizeof(float) * 3 * S * S) && !memcmp(a, plain, sizeof(float) * 3 * S * S),
             "with RandAugment, erasing and the padded crop off the train view is the plain crop + flip + jitter");
  beit_image gray = {0};
  beit_image_reserve(&gray, 9, 11, 1);
  for (int i = 0; i < 99; i++) gray.data[i] = (uint8_t)(i * 7);
  int ok = 1;
  for (int op = 0; op < BEIT_RA_NUM_OPS; op++) ok &= beit_randaug_op(&gray, op, 9, op & 1, 1, (uint8_t[3]){128}) == BEIT_OK;
  CHECK_TRUE(ok, "every op runs on a 9x11 one-channel image");
  beit_image_free(&img), beit_image_free(&gray);
}

int main(void) {
  TEST_BEGIN("test_randaug");
  test_ops_vs_pil();
  test_parse();
  test_erasing();
  test_crop_pad();
  test_train_view();
  return TEST_END();
}
