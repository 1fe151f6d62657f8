/* beit.h - the public C API of libbeit: open a BEiT checkpoint of any kind
 * (beit.c, timm, unilm, Hugging Face), prepare images the way the checkpoint
 * asks, classify them, read the features of any block and attention maps.
 * Self-contained (standard headers only); build with
 *   cc prog.c $(pkg-config --cflags --libs beit)
 * Every exported symbol starts with beit_. Guide and examples: docs/c-api.md,
 * examples/classify.c.
 *
 * Errors: every call that can fail returns BEIT_ERR (-1), or a count >= 0, and
 * leaves a one-line message naming the file or argument and the problem in
 * beit_last_error() (per thread). The library never exits, aborts or prints
 * on bad input or misuse. A handle is used by one thread at a time; distinct
 * handles may run in parallel threads. */
#ifndef BEIT_H
#define BEIT_H

#include <stddef.h>
#include <stdint.h>

#ifndef BEIT_API
#if defined(__GNUC__)
#define BEIT_API __attribute__((visibility("default")))
#else
#define BEIT_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define BEIT_VERSION_MAJOR 0
#define BEIT_VERSION_MINOR 1
#define BEIT_VERSION_PATCH 0

enum { BEIT_OK = 0, BEIT_ERR = -1 };

/* The message of the last failed call on this thread. */
BEIT_API const char *beit_last_error(void);
/* "0.1.0": the library's version (compare BEIT_VERSION_* of the header). */
BEIT_API const char *beit_version(void);
/* Threads for the kernels and BLAS together (0 = all cores); process-wide. */
BEIT_API void beit_set_threads(int n);
BEIT_API int beit_get_threads(void);

/* ---- a network opened from a checkpoint ------------------------------------
 * path: a safetensors file (beit.c, timm or unilm names) or a folder with
 * model.safetensors (+ config.json, preprocessor_config.json: the Hugging Face
 * and timm hub layouts). The architecture is read or inferred from the file,
 * with its class names and its eval preprocessing (input size, crop_pct,
 * mean/std). Only inference memory is held: no gradients, no optimizer state. */
typedef struct beit_net beit_net;
BEIT_API int beit_net_open(beit_net **net, const char *path);
BEIT_API void beit_net_close(beit_net *net);  /* NULL is fine */

typedef enum {
  BEIT_NET_IMAGE_SIZE,  /* input side S (images are C x S x S) */
  BEIT_NET_CHANNELS,    /* input channels C (1 or 3) */
  BEIT_NET_PATCH_SIZE,
  BEIT_NET_DIM,         /* width of a token */
  BEIT_NET_DEPTH,       /* transformer blocks */
  BEIT_NET_HEADS,
  BEIT_NET_TOKENS,      /* 1 + patches: token 0 is CLS, then the patches row by row */
  BEIT_NET_CLASSES      /* classifier outputs; 0 for a checkpoint without a classifier head */
} beit_net_property;
/* The value, or BEIT_ERR for an unknown property or a NULL net. */
BEIT_API int beit_net_get(const beit_net *net, beit_net_property what);
/* Name of class k (the checkpoint's own, else ImageNet-1k's for 1000 classes,
 * else "class k"); NULL when k is out of range. Valid until beit_net_close. */
BEIT_API const char *beit_net_class_name(const beit_net *net, int k);
/* One line on the checkpoint and its preprocessing, e.g. "timm names, 224x224
 * input: shorter side to 256 (bicubic), centre crop; mean 0.5 0.5 0.5, std 0.5
 * 0.5 0.5 (BEiT's default 0.5/0.5)". Valid until beit_net_close. */
BEIT_API const char *beit_net_describe(const beit_net *net);

/* ---- images ----------------------------------------------------------------
 * An image prepared for the network is C x S x S floats (beit_net_image_floats),
 * channel-major. Preparation is the checkpoint's eval transform, the same as
 * `beit predict`: the shorter side to floor(S / crop_pct) (bicubic), the centre
 * S x S crop, (x / 255 - mean) / std per channel; gray and RGB are converted to
 * the network's channels. */
BEIT_API size_t beit_net_image_floats(const beit_net *net);
/* A PNG or JPEG file. */
BEIT_API int beit_net_prepare_file(const beit_net *net, const char *path, float *out);
/* Decoded pixels: height x width x channels bytes, row-major (channels 1 or 3). */
BEIT_API int beit_net_prepare_pixels(const beit_net *net, const uint8_t *pixels, int height, int width, int channels,
                                     float *out);

/* ---- classification --------------------------------------------------------- */
typedef struct {
  int index;         /* class id */
  float prob;        /* softmax probability, in [0, 1] */
  const char *name;  /* beit_net_class_name(net, index) */
} beit_class_prob;
/* The k most likely classes of each of n prepared images (images: n images of
 * beit_net_image_floats floats), by logit, a tie in class order: top gets
 * n * min(k, classes) entries, image-major. Returns min(k, classes), or BEIT_ERR
 * for a checkpoint without a classifier head, or when an image's logits are not
 * all finite (a NaN or infinity in the weights, or weights so large that the
 * logits overflow). When the first two entries have equal probability the image
 * has no top-1 class: `beit eval` counts it as wrong. */
BEIT_API int beit_classify(beit_net *net, const float *images, int n, int k, beit_class_prob *top);

/* ---- features and attention -------------------------------------------------- */
/* Hidden states after block `block` (1..depth; 0 = the token embeddings that
 * enter block 1, with position embedding) of n prepared images: out gets
 * n x tokens x dim floats. Runs blocks 1..block only. */
BEIT_API int beit_features(beit_net *net, const float *images, int n, int block, float *out);
/* Attention probabilities of block `block` (1..depth): out gets n x heads x
 * tokens x tokens floats, [image][head][query][key], each row summing to 1;
 * row 0 is the CLS token's attention. Runs blocks 1..block only. */
BEIT_API int beit_attention_map(beit_net *net, const float *images, int n, int block, float *out);

#ifdef __cplusplus
}
#endif

#endif
