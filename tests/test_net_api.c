/* test_net_api.c - the public handle API (include/beit.h) against the library's
 * own paths: an image prepared by the API is the one `beit predict` feeds the
 * model (bit for bit); classify gives the logits' top classes and softmax;
 * the features of every block and the attention of every block equal what a
 * training arena (which keeps every block) holds, without gradient memory;
 * batches beyond one arena chunk; misuse returns BEIT_ERR with a message.
 * Also the regression that made the API need beit_encode_blocks: in a
 * forward-only arena beit_hidden(l) of an earlier block returned overwritten
 * data. */
#include <math.h>
#include <string.h>

#include "data/augment.h"
#include "fixture.h"
#include "model/convert.h"
#include "io/image.h"
#include "model/beit.h"
#include "ops/ops.h"
#include "test.h"

#define S 16
#define K 10

static char g_dir[900];

/* A classifier (timm names) or a MIM model (beit.c names) of the mini preset at 16 px. */
static int make_checkpoint(const char *path, int classifier, beit_model *m) {
  beit_config c = {.image_size = S, .channels = 3, .patch_size = 4, .num_classes = classifier ? K : 0,
                   .vocab_size = classifier ? 0 : 64,
                   .rel_pos = classifier ? BEIT_RELPOS_PER_BLOCK : BEIT_RELPOS_SHARED, .use_mean_pooling = 1};
  beit_config_preset(&c, "mini");
  if (beit_model_init(m, &c) != BEIT_OK) return BEIT_ERR;
  beit_model_init_weights(m, 3, 1.0f);
  if (classifier) {
    float *hw = beit_params_get(&m->params, "head.weight");
    for (int i = 0; i < K * c.dim; i++) hw[i] *= 30;  /* distinct logits */
  }
  return beit_checkpoint_export(m, NULL, classifier ? BEIT_SCHEME_TIMM : BEIT_SCHEME_BEIT, path);
}

static void photo(const char *path, uint8_t *px, int h, int w, uint64_t seed) {
  beit_rng r;
  beit_rng_seed(&r, seed, BEIT_RNG_TEST, 0, 0);
  for (int i = 0; i < h * w * 3; i++) px[i] = (uint8_t)beit_rng_randint(&r, 0, 255);
  beit_png_save(path, px, h, w, 3);
}

static int same(const float *a, const float *b, size_t n) { return a && b && !memcmp(a, b, n * sizeof(float)); }

static void check_prepare_and_classify(beit_net *net, const char *ckpt) {
  printf("prepare and classify\n");
  int H = 21, W = 27;
  uint8_t px[21 * 27 * 3];
  char img[1000];
  snprintf(img, sizeof img, "%s/photo.png", g_dir);
  photo(img, px, H, W, 1);
  size_t one = beit_net_image_floats(net);
  CHECK_TRUE(one == 3 * S * S, "beit_net_image_floats = %zu (3 x %d x %d)", one, S, S);
  float *x = test_keep(malloc(3 * one * sizeof(float))), *ref = test_keep(malloc(one * sizeof(float)));
  /* predict's path: beit_checkpoint_open, the checkpoint's eval prep, load, convert, beit_aug_eval */
  beit_model m;
  beit_checkpoint_info info;
  beit_image im = {0};
  int ok = beit_checkpoint_open(&m, ckpt, &info) == BEIT_OK;
  beit_eval_prep prep = beit_checkpoint_eval_prep(&m, &info, 0);
  ok = ok && beit_image_load(img, &im) == BEIT_OK && beit_image_convert(&im, 3) == BEIT_OK &&
       beit_aug_eval(&im, &prep, ref) == BEIT_OK;
  beit_image_free(&im);
  CHECK_TRUE(ok && beit_net_prepare_file(net, img, x) == BEIT_OK && same(x, ref, one),
             "beit_net_prepare_file = beit predict's preprocessing of a %dx%d PNG, bit for bit", W, H);
  CHECK_TRUE(beit_net_prepare_pixels(net, px, H, W, 3, x + one) == BEIT_OK && same(x + one, ref, one),
             "beit_net_prepare_pixels of the same pixels: the same floats");
  uint8_t gray[21 * 27];
  for (int i = 0; i < H * W; i++) gray[i] = px[3 * i];
  CHECK_TRUE(beit_net_prepare_pixels(net, gray, H, W, 1, x + 2 * one) == BEIT_OK, "a gray image is converted to RGB");

  /* classify 3 images against the logits of the same model */
  beit_class_prob top[3 * 4];
  int got = beit_classify(net, x, 3, 4, top);
  CHECK_TRUE(got == 4, "beit_classify(n 3, k 4) returns 4");
  beit_model_reserve(&m, 3, 0);
  beit_input in = {.B = 3, .images = x};
  beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
  const float *logits = beit_logits(&m);
  int order_ok = got == 4, prob_ok = got == 4;
  for (int b = 0; b < 3 && order_ok; b++) {
    const float *l = logits + b * K;
    double mx = l[0], sum = 0;
    for (int k = 1; k < K; k++) mx = fmax(mx, l[k]);
    for (int k = 0; k < K; k++) sum += exp(l[k] - mx);
    for (int r = 0; r < 4; r++) {
      const beit_class_prob *t = &top[b * 4 + r];
      int higher = 0;
      for (int k = 0; k < K; k++) higher += l[k] > l[t->index];
      order_ok &= higher == r && t->name && !strcmp(t->name, beit_net_class_name(net, t->index));
      prob_ok &= fabs(t->prob - exp(l[t->index] - mx) / sum) < 1e-6;
    }
    order_ok &= top[b * 4].index == logits_top1(l, K);
  }
  CHECK_TRUE(order_ok, "entry r has r classes with a higher logit; entry 0 is logits_top1; names as "
             "beit_net_class_name");
  CHECK_TRUE(prob_ok, "probabilities are the softmax of the logits (1e-6)");
  beit_class_prob all[K];
  CHECK_TRUE(beit_classify(net, x, 1, 1000, all) == K, "k above the classes gives every class (%d)", K);
  beit_checkpoint_info_free(&info);
  beit_model_free(&m);
}

/* Features and attention of every block against a training arena, which keeps every block. */
static void check_blocks(beit_net *net, const char *ckpt) {
  printf("features and attention of every block\n");
  int n = 20;  /* more than one chunk of the handle's arena */
  size_t one = beit_net_image_floats(net);
  float *x = test_keep(malloc(n * one * sizeof(float)));
  beit_rng r;
  beit_rng_seed(&r, 4, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < n * one; i++) x[i] = (float)beit_rng_normal(&r);
  beit_model m;
  if (beit_model_open(&m, ckpt) != BEIT_OK || beit_model_reserve(&m, n, BEIT_GRAD_KEEP) != BEIT_OK) {
    CHECK_TRUE(0, "reference model: %s", beit_last_error());
    return;
  }
  beit_encode(&m, x, n);
  int L = beit_net_get(net, BEIT_NET_DEPTH), N = beit_net_get(net, BEIT_NET_TOKENS);
  int C = beit_net_get(net, BEIT_NET_DIM), H = beit_net_get(net, BEIT_NET_HEADS);
  CHECK_TRUE(L == 4 && N == 17 && C == 96 && H == 3, "properties: depth %d, tokens %d, dim %d, heads %d", L, N, C, H);
  float *f = test_keep(malloc((size_t)n * N * (C > H * N ? C : H * N) * sizeof(float)));
  int feat_ok = 1, att_ok = 1;
  for (int l = 0; l <= L; l++) {
    feat_ok &= beit_features(net, x, n, l, f) == BEIT_OK && same(f, beit_hidden(&m, l), (size_t)n * N * C);
    if (l > 0)
      att_ok &= beit_attention_map(net, x, n, l, f) == BEIT_OK &&
                same(f, beit_attention(&m, l - 1), (size_t)n * H * N * N);
  }
  CHECK_TRUE(feat_ok, "beit_features of blocks 0..%d for %d images = the training arena's hidden states, bit for bit",
             L, n);
  CHECK_TRUE(att_ok, "beit_attention_map of blocks 1..%d = the training arena's attention, bit for bit", L);
  beit_model_free(&m);

  /* the regression: a forward-only arena reused the earlier blocks' buffers */
  beit_model fwd, keep;
  int ok = beit_model_open(&fwd, ckpt) == BEIT_OK && beit_model_reserve(&fwd, 2, 0) == BEIT_OK &&
           beit_model_open(&keep, ckpt) == BEIT_OK && beit_model_reserve(&keep, 2, BEIT_GRAD_KEEP) == BEIT_OK;
  beit_encode(&fwd, x, 2), beit_encode(&keep, x, 2);
  int stale = 0;
  for (int l = 0; ok && l < L; l++) {
    const float *h = beit_hidden(&fwd, l);
    stale += h && !same(h, beit_hidden(&keep, l), (size_t)2 * N * C);
  }
  CHECK_TRUE(ok && stale == 0, "forward-only arena after a full encode: beit_hidden of blocks 0..%d is NULL or right "
             "(%d returned overwritten data)", L - 1, stale);
  ok = ok && beit_encode_blocks(&fwd, x, 2, 1) == BEIT_OK;
  CHECK_TRUE(ok && same(beit_hidden(&fwd, 1), beit_hidden(&keep, 1), (size_t)2 * N * C) && !beit_hidden(&fwd, 2),
             "beit_encode_blocks(1): block 1's output is there, block 2's is NULL");
  beit_model_free(&fwd), beit_model_free(&keep);
}

static void check_misuse(beit_net *net, const char *mim) {
  printf("misuse: BEIT_ERR and a message, never an abort\n");
  float x[3 * S * S] = {0}, f[8];
  beit_class_prob top[1];
  beit_net *none = (beit_net *)1;
  char path[1000];
  snprintf(path, sizeof path, "%s/nonesuch.safetensors", g_dir);
  CHECK_TRUE(beit_net_open(&none, path) == BEIT_ERR && none == NULL &&
             strstr(beit_last_error(), "nonesuch.safetensors"), "open a missing file: %s", beit_last_error());
  CHECK_TRUE(beit_net_open(NULL, path) == BEIT_ERR, "NULL handle pointer: %s", beit_last_error());
  CHECK_TRUE(beit_features(net, x, 1, 5, f) == BEIT_ERR && strstr(beit_last_error(), "block 5"),
             "features of block 5 of 4: %s", beit_last_error());
  CHECK_TRUE(beit_attention_map(net, x, 1, 0, f) == BEIT_ERR, "attention of block 0: %s", beit_last_error());
  CHECK_TRUE(beit_classify(net, x, 0, 1, top) == BEIT_ERR && beit_classify(net, NULL, 1, 1, top) == BEIT_ERR &&
             beit_classify(net, x, 1, 0, top) == BEIT_ERR, "classify with n 0, NULL images, k 0: BEIT_ERR");
  CHECK_TRUE(beit_net_get(NULL, BEIT_NET_DIM) == BEIT_ERR && beit_net_get(net, (beit_net_property)99) == BEIT_ERR &&
             !beit_net_class_name(net, K) && !beit_net_class_name(net, -1), "unknown property, class out of range");
  CHECK_TRUE(beit_net_prepare_pixels(net, (const uint8_t *)x, 4, 4, 2, x) == BEIT_ERR &&
             beit_net_prepare_pixels(net, (const uint8_t *)x, 0, 4, 3, x) == BEIT_ERR, "2 channels, height 0: %s",
             beit_last_error());
  beit_net *m = NULL;
  int ok = beit_net_open(&m, mim) == BEIT_OK;
  CHECK_TRUE(ok && beit_net_get(m, BEIT_NET_CLASSES) == 0 && beit_classify(m, x, 1, 1, top) == BEIT_ERR &&
             strstr(beit_last_error(), "not a classifier"), "a pretraining checkpoint: 0 classes, classify refused: %s",
             beit_last_error());
  CHECK_TRUE(ok && beit_features(m, x, 1, 4, test_keep(malloc(17 * 96 * sizeof(float)))) == BEIT_OK,
             "... its features are there");
  beit_net_close(m);
  beit_net_close(NULL);
}

static void check_nonfinite(beit_model *m) {
  char path[1000];
  snprintf(path, sizeof path, "%s/nan_head.safetensors", g_dir);
  beit_params_get(&m->params, "head.bias")[3] = NAN;
  beit_checkpoint_export(m, NULL, BEIT_SCHEME_TIMM, path);
  beit_net *net = NULL;
  float x[3 * S * S] = {0};
  beit_class_prob top[2];
  int ok = beit_net_open(&net, path) == BEIT_OK;
  CHECK_TRUE(ok && beit_classify(net, x, 1, 2, top) == BEIT_ERR && strstr(beit_last_error(), "not all finite") &&
             strstr(beit_last_error(), "nan_head"), "a NaN in the head: BEIT_ERR naming the file: %s",
             beit_last_error());
  beit_net_close(net);
}

int main(void) {
  TEST_BEGIN("test_net_api");
  beit_set_threads(2);
  snprintf(g_dir, sizeof g_dir, "%s/api", fx_dir());
  beit_mkdir_p(g_dir);
  char cls[1000], mim[1000];
  snprintf(cls, sizeof cls, "%s/cls_timm.safetensors", g_dir);
  snprintf(mim, sizeof mim, "%s/mim.safetensors", g_dir);
  beit_model mc, mm;
  int ok = make_checkpoint(cls, 1, &mc) == BEIT_OK && make_checkpoint(mim, 0, &mm) == BEIT_OK;
  beit_model_free(&mm);
  beit_net *net = NULL;
  CHECK_TRUE(ok && beit_net_open(&net, cls) == BEIT_OK, "beit_net_open(timm checkpoint): %s",
             net ? beit_net_describe(net) : beit_last_error());
  CHECK_TRUE(!strcmp(beit_version(), "0.1.0") && BEIT_VERSION_MAJOR == 0, "beit_version %s", beit_version());
  if (net) {
    check_prepare_and_classify(net, cls);
    check_blocks(net, cls);
    check_misuse(net, mim);
  }
  beit_net_close(net);
  check_nonfinite(&mc);
  beit_model_free(&mc);
  return TEST_END();
}
