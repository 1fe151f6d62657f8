/* net.c - the handle API of include/beit.h over the library's own paths: the
 * checkpoint opener of model/convert.c, the eval preprocessing that `beit predict`
 * uses (beit_checkpoint_eval_prep + beit_aug_eval), a forward-only arena, and
 * beit_logits_topk for the classes. Batches go through the arena in chunks of at
 * most CHUNK images, so memory stays that of CHUNK images whatever n is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/topk.h"
#include "core/core.h"
#include "data/augment.h"
#include "model/convert.h"
#include "io/image.h"
#include "model/beit.h"

#define CHUNK 16

struct beit_net {
  beit_model m;
  beit_checkpoint_info info;
  beit_eval_prep prep;
  char path[1024];
  char describe[512];
};

#define STR_(x) #x
#define STR(x) STR_(x)
const char *beit_version(void) {
  return STR(BEIT_VERSION_MAJOR) "." STR(BEIT_VERSION_MINOR) "." STR(BEIT_VERSION_PATCH);
}

int beit_net_open(beit_net **out, const char *path) {
  if (!out || !path) return beit_errorf("beit_net_open: %s is NULL", out ? "the path" : "the handle pointer");
  *out = NULL;
  beit_net *net = calloc(1, sizeof *net);
  if (!net) return beit_errorf("out of memory for a network handle");
  if (beit_checkpoint_open(&net->m, path, &net->info) != BEIT_OK) {
    free(net);
    return BEIT_ERR;
  }
  net->prep = beit_checkpoint_eval_prep(&net->m, &net->info, 0);
  if (beit_model_reserve(&net->m, 1, 0) != BEIT_OK) {
    beit_net_close(net);
    return BEIT_ERR;
  }
  snprintf(net->path, sizeof net->path, "%s", path);
  const beit_eval_prep *p = &net->prep;
  snprintf(net->describe, sizeof net->describe,
           "%s names, %dx%d input: shorter side to %d (bicubic), centre crop; mean %g %g %g, std %g %g %g (%s)",
           beit_scheme_name(net->info.scheme), p->size, p->size, beit_eval_resize_side(p->size, p->crop_pct),
           p->mean[0], p->mean[1], p->mean[2], p->std[0], p->std[1], p->std[2], net->info.norm_from);
  *out = net;
  return BEIT_OK;
}

void beit_net_close(beit_net *net) {
  if (!net) return;
  beit_checkpoint_info_free(&net->info);
  beit_model_free(&net->m);
  free(net);
}

int beit_net_get(const beit_net *net, beit_net_property what) {
  if (!net) return beit_errorf("beit_net_get: the handle is NULL");
  const beit_config *c = &net->m.cfg;
  switch (what) {
    case BEIT_NET_IMAGE_SIZE: return c->image_size;
    case BEIT_NET_CHANNELS: return c->channels;
    case BEIT_NET_PATCH_SIZE: return c->patch_size;
    case BEIT_NET_DIM: return c->dim;
    case BEIT_NET_DEPTH: return c->depth;
    case BEIT_NET_HEADS: return c->heads;
    case BEIT_NET_TOKENS: return net->m.tokens;
    case BEIT_NET_CLASSES: return c->num_classes > 0 ? c->num_classes : 0;
  }
  return beit_errorf("beit_net_get: unknown property %d", (int)what);
}

const char *beit_net_class_name(const beit_net *net, int k) {
  if (!net || k < 0 || k >= net->info.num_names) return NULL;
  return net->info.class_names[k];
}

const char *beit_net_describe(const beit_net *net) { return net ? net->describe : "(no network)"; }

size_t beit_net_image_floats(const beit_net *net) {
  if (!net) return 0;
  return (size_t)net->m.cfg.channels * net->m.cfg.image_size * net->m.cfg.image_size;
}

/* img in the network's channels, then the eval transform; frees img. */
static int prepare(const beit_net *net, beit_image *img, float *out) {
  int rc = beit_image_convert(img, net->m.cfg.channels) != BEIT_OK || beit_aug_eval(img, &net->prep, out) != BEIT_OK;
  beit_image_free(img);
  return rc ? BEIT_ERR : BEIT_OK;
}

int beit_net_prepare_file(const beit_net *net, const char *path, float *out) {
  if (!net || !path || !out) return beit_errorf("beit_net_prepare_file: a NULL argument");
  beit_image img = {0};
  if (beit_image_load(path, &img) != BEIT_OK) {
    beit_image_free(&img);
    return BEIT_ERR;
  }
  return prepare(net, &img, out);
}

int beit_net_prepare_pixels(const beit_net *net, const uint8_t *pixels, int height, int width, int channels,
                            float *out) {
  if (!net || !pixels || !out) return beit_errorf("beit_net_prepare_pixels: a NULL argument");
  if (channels != 1 && channels != 3) return beit_errorf("beit_net_prepare_pixels: %d channels (1 or 3)", channels);
  if (height < 1 || width < 1 || height > BEIT_IMAGE_MAX_SIDE || width > BEIT_IMAGE_MAX_SIDE ||
      (long long)height * width > BEIT_IMAGE_MAX_PIXELS)
    return beit_errorf("beit_net_prepare_pixels: a %dx%d image (at most %d per side, %lld pixels)", width, height,
                       BEIT_IMAGE_MAX_SIDE, BEIT_IMAGE_MAX_PIXELS);
  beit_image img = {0};
  if (beit_image_reserve(&img, height, width, channels) != BEIT_OK) return BEIT_ERR;
  memcpy(img.data, pixels, (size_t)height * width * channels);
  return prepare(net, &img, out);
}

/* Room in the arena for min(n, CHUNK) images. */
static int arena_for(beit_net *net, int n) {
  int want = n < CHUNK ? n : CHUNK;
  return want <= net->m.max_batch ? BEIT_OK : beit_model_reserve(&net->m, want, 0);
}

static int check_batch(const beit_net *net, const float *images, int n, const void *out, const char *fn) {
  if (!net || !images || !out) return beit_errorf("%s: a NULL argument", fn);
  if (n < 1) return beit_errorf("%s: %d images", fn, n);
  return BEIT_OK;
}

int beit_classify(beit_net *net, const float *images, int n, int k, beit_class_prob *top) {
  if (check_batch(net, images, n, top, "beit_classify") != BEIT_OK) return BEIT_ERR;
  int K = net->m.cfg.num_classes;
  if (K <= 0) return beit_errorf("%s: not a classifier (no head; beit_features reads its features)", net->path);
  if (k < 1) return beit_errorf("beit_classify: k = %d (at least 1)", k);
  if (k > K) k = K;
  if (arena_for(net, n) != BEIT_OK) return BEIT_ERR;
  int *idx = malloc((size_t)k * sizeof *idx);
  float *prob = malloc((size_t)k * sizeof *prob);
  int rc = idx && prob ? BEIT_OK : beit_errorf("out of memory for the top %d classes", k);
  size_t one = beit_net_image_floats(net);
  for (int first = 0; first < n && rc == BEIT_OK; first += net->m.max_batch) {
    int B = n - first < net->m.max_batch ? n - first : net->m.max_batch;
    beit_input in = {.B = B, .images = images + (size_t)first * one};
    beit_forward(&net->m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
    const float *logits = beit_logits(&net->m);
    for (int b = 0; b < B && rc == BEIT_OK; b++) {
      if ((rc = beit_logits_topk(logits + (size_t)b * K, K, k, idx, prob)) != BEIT_OK) {
        beit_error_context("%s: image %d", net->path, first + b);
        break;
      }
      for (int r = 0; r < k; r++)
        top[(size_t)(first + b) * k + r] = (beit_class_prob){idx[r], prob[r], net->info.class_names[idx[r]]};
    }
  }
  free(idx), free(prob);
  return rc == BEIT_OK ? k : BEIT_ERR;
}

/* Runs blocks 1..block of each chunk and copies `floats` per image of what
 * `view` (beit_hidden or the attention of block - 1) then holds. */
static int run_blocks(beit_net *net, const float *images, int n, int block, float *out, int attention) {
  int L = net->m.cfg.depth, lo = attention ? 1 : 0;
  if (block < lo || block > L)
    return beit_errorf("%s: block %d: the network has blocks %d to %d",
                       attention ? "beit_attention_map" : "beit_features", block, lo, L);
  if (arena_for(net, n) != BEIT_OK) return BEIT_ERR;
  size_t one = beit_net_image_floats(net), N = (size_t)net->m.tokens;
  size_t floats = attention ? (size_t)net->m.cfg.heads * N * N : N * net->m.cfg.dim;
  for (int first = 0; first < n; first += net->m.max_batch) {
    int B = n - first < net->m.max_batch ? n - first : net->m.max_batch;
    if (beit_encode_blocks(&net->m, images + (size_t)first * one, B, block) != BEIT_OK) return BEIT_ERR;
    const float *v = attention ? beit_attention(&net->m, block - 1) : beit_hidden(&net->m, block);
    BEIT_CHECK(v != NULL);  /* beit_encode_blocks just wrote it */
    memcpy(out + (size_t)first * floats, v, (size_t)B * floats * sizeof(float));
  }
  return BEIT_OK;
}

int beit_features(beit_net *net, const float *images, int n, int block, float *out) {
  if (check_batch(net, images, n, out, "beit_features") != BEIT_OK) return BEIT_ERR;
  return run_blocks(net, images, n, block, out, 0);
}

int beit_attention_map(beit_net *net, const float *images, int n, int block, float *out) {
  if (check_batch(net, images, n, out, "beit_attention_map") != BEIT_OK) return BEIT_ERR;
  return run_blocks(net, images, n, block, out, 1);
}
