/* make_seeds.c - writes the seed corpus: a few small valid files of every
 * format a harness reads, into ROOT/<harness>/seed-*. Most are written by
 * beit.c's own writers (so they are what the program really produces); images
 * of every PNG/JPEG colour type come straight from libpng / libjpeg.
 * Usage: make_seeds ROOT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h needs stdio.h first */
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "model/dvae.h"
#include "model/kmeans.h"
#include "tiny_model.h"
#include "train/tokenizer.h"
#include "train/train.h"

static const char *g_root;

static void die(const char *what) {
  fprintf(stderr, "make_seeds: %s: %s\n", what, beit_last_error());
  exit(1);
}

static void path_of(char *out, size_t n, const char *harness, const char *name) {
  snprintf(out, n, "%s/%s", g_root, harness);
  if (beit_mkdir_p(out)) die(out);
  snprintf(out, n, "%s/%s/seed-%s", g_root, harness, name);
}

static void put(const char *harness, const char *name, const void *data, size_t n) {
  char p[1024];
  path_of(p, sizeof p, harness, name);
  if (beit_write_file_atomic(p, data, n)) die(p);
}

/* Several parts joined as fuzz_split expects: u32 length of part a, a, b. */
static void put_split(const char *harness, const char *name, const uint8_t *flag, const void *a, size_t na,
                      const void *b, size_t nb) {
  size_t off = flag ? 1 : 0, n = off + 4 + na + nb;
  uint8_t *buf = malloc(n);
  if (flag) buf[0] = *flag;
  for (int i = 0; i < 4; i++) buf[off + i] = (uint8_t)(na >> (8 * i));
  memcpy(buf + off + 4, a, na);
  if (nb) memcpy(buf + off + 4 + na, b, nb);
  put(harness, name, buf, n);
  free(buf);
}

static uint8_t *gzip_bytes(const uint8_t *in, size_t n, size_t *out_n) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(1);
  size_t cap = deflateBound(&zs, (uLong)n) + 32;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)in, zs.avail_in = (uInt)n;
  zs.next_out = out, zs.avail_out = (uInt)cap;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) exit(1);
  *out_n = zs.total_out;
  deflateEnd(&zs);
  return out;
}

/* A copy of a written safetensors seed whose checksum key is renamed (same length,
 * so offsets stay valid): the fuzzer then mutates past the checksum check. */
static void put_without_checksum(const char *harness, const char *name) {
#ifdef BEIT_ST_CRC_KEY
  char p[1024], q[300];
  path_of(p, sizeof p, harness, name);
  uint8_t *b;
  size_t n;
  if (beit_read_file(p, &b, &n)) die(p);
  const char *key = "\"" BEIT_ST_CRC_KEY "\"";
  size_t k = strlen(key);
  for (size_t i = 8; i + k <= n; i++)
    if (!memcmp(b + i, key, k)) {
      memset(b + i + 1, 'x', k - 2);
      snprintf(q, sizeof q, "%s-nocrc", name);
      put(harness, q, b, n);
      break;
    }
  beit_free(b);
#else
  (void)harness, (void)name;
#endif
}

/* ---- safetensors ----------------------------------------------------------- */
static void seeds_safetensors(void) {
  beit_params p;
  beit_params_init(&p);
  beit_params_add(&p, "patch_embed.proj.weight", 4, (int64_t[]){4, 1, 2, 2}, 0, 1);
  beit_params_add(&p, "cls_token", 3, (int64_t[]){1, 1, 4}, 0, 0);
  beit_params_add(&p, "head.weight", 2, (int64_t[]){3, 4}, 1, 1);
  beit_params_add(&p, "head.bias", 1, (int64_t[]){3}, 1, 0);
  if (beit_params_alloc(&p)) die("table");
  for (size_t i = 0; i < p.total; i++) p.data[i] = (float)i * 0.25f - 3.0f;
  char path[1024];
  path_of(path, sizeof path, "safetensors", "table");
  const char *meta[] = {"format", "pt", "note", "seed"};
  if (beit_params_save(&p, path, meta, 2)) die(path);
  put_without_checksum("safetensors", "table");
  beit_params_free(&p);

  /* every dtype, a scalar, an empty tensor, metadata: hand-built header */
  static const char *const dt[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8",
                                   "U64", "U32", "U16", "U8", "BOOL"};
  static const int sz[] = {4, 2, 2, 8, 8, 4, 2, 1, 8, 4, 2, 1, 1};
  char header[2048];
  size_t k = (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
  size_t off = 0;
  for (int d = 0; d < 13; d++) {
    k += (size_t)snprintf(header + k, sizeof header - k, ",\"t%s\":{\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[%zu,%zu]}",
                          dt[d], dt[d], off, off + 2 * (size_t)sz[d]);
    off += 2 * (size_t)sz[d];
  }
  k += (size_t)snprintf(header + k, sizeof header - k,
                        ",\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[%zu,%zu]}"
                        ",\"empty\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[%zu,%zu]}}",
                        off, off + 4, off + 4, off + 4);
  off += 4;
  while (k % 8) header[k++] = ' ';
  size_t n = 8 + k + off;
  uint8_t *buf = calloc(n, 1);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)k >> (8 * i));
  memcpy(buf + 8, header, k);
  for (size_t i = 0; i < off; i++) buf[8 + k + i] = (uint8_t)(i * 37 + 11);
  put("safetensors", "dtypes", buf, n);
  free(buf);
  uint8_t empty[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  put("safetensors", "empty", empty, sizeof empty);
}

/* ---- config JSON ----------------------------------------------------------- */
static void seeds_config(void) {
  beit_config c;
  fuzz_tiny_config(&c);
  char *j = beit_config_to_json(&c);
  put("config", "tiny", j, strlen(j));
  free(j);
  if (beit_config_preset(&c, "base")) die("preset");
  c.image_size = 224, c.patch_size = 16, c.channels = 3, c.num_classes = 1000, c.vocab_size = 0;
  c.rel_pos = BEIT_RELPOS_PER_BLOCK;
  j = beit_config_to_json(&c);
  put("config", "base", j, strlen(j));
  free(j);
  const char *minimal = "{\"image_size\": 28, \"patch_size\": 4, \"hidden_size\": 32, "
                        "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_channels\": 1}";
  put("config", "minimal", minimal, strlen(minimal));
}

/* ---- IDX ------------------------------------------------------------------- */
static void seeds_idx(void) {
  const int n = 3, h = 4, w = 5;
  uint8_t img[16 + 3 * 4 * 5], lab[8 + 3];
  uint8_t ih[16] = {0, 0, 8, 3, 0, 0, 0, (uint8_t)n, 0, 0, 0, (uint8_t)h, 0, 0, 0, (uint8_t)w};
  uint8_t lh[8] = {0, 0, 8, 1, 0, 0, 0, (uint8_t)n};
  memcpy(img, ih, 16), memcpy(lab, lh, 8);
  for (int i = 0; i < n * h * w; i++) img[16 + i] = (uint8_t)(i * 13);
  for (int i = 0; i < n; i++) lab[8 + i] = (uint8_t)(i * 4 + 1);
  put_split("idx", "plain", NULL, img, sizeof img, lab, sizeof lab);
  size_t gi, gl;
  uint8_t *gimg = gzip_bytes(img, sizeof img, &gi), *glab = gzip_bytes(lab, sizeof lab, &gl);
  put_split("idx", "gzip", NULL, gimg, gi, glab, gl);
  put_split("idx", "gzip-images", NULL, gimg, gi, lab, sizeof lab);
  free(gimg), free(glab);
}

/* ---- CIFAR ----------------------------------------------------------------- */
static void seeds_cifar(void) {
  for (int is100 = 0; is100 < 2; is100++) {
    size_t rec = 3072 + (size_t)(is100 ? 2 : 1), n = 2 * rec;
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 7);
    for (int r = 0; r < 2; r++) {
      b[r * rec] = (uint8_t)(r + 3);
      if (is100) b[r * rec + 1] = (uint8_t)(40 + r);
    }
    char names[1200];
    size_t k = 0;
    for (int c = 0; c < (is100 ? 100 : 10); c++) k += (size_t)snprintf(names + k, sizeof names - k, "class%d\n", c);
    uint8_t flag = (uint8_t)(is100 | 2), plain = (uint8_t)is100;
    put_split("cifar", is100 ? "cifar100-names" : "cifar10-names", &flag, b, n, names, k);
    put_split("cifar", is100 ? "cifar100" : "cifar10", &plain, b, n, NULL, 0);
    free(b);
  }
}

/* ---- images ---------------------------------------------------------------- */
typedef struct { uint8_t *p; size_t n; } membuf;

static void png_mem_write(png_structp png, png_bytep d, size_t n) {
  membuf *m = png_get_io_ptr(png);
  m->p = realloc(m->p, m->n + n);
  memcpy(m->p + m->n, d, n);
  m->n += n;
}
static void png_mem_flush(png_structp png) { (void)png; }

/* A w x h PNG of the given colour type / depth (rows of pseudo-random bytes). */
static void png_seed(const char *name, int w, int h, int type, int depth, int interlace, int trns) {
  membuf m = {0};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) exit(1);
  png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_set_PLTE(png, info, pal, 4);
  }
  if (trns) {
    png_byte alpha[4] = {0, 128, 255, 255};
    png_color_16 gray = {0};
    png_set_tRNS(png, info, alpha, type == PNG_COLOR_TYPE_PALETTE ? 4 : 0, &gray);
  }
  png_write_info(png, info);
  int channels = png_get_channels(png, info);
  size_t row = ((size_t)w * channels * depth + 7) / 8;
  uint8_t *r = malloc(row);
  int passes = interlace ? png_set_interlace_handling(png) : 1;
  for (int pass = 0; pass < passes; pass++)
    for (int y = 0; y < h; y++) {
      for (size_t x = 0; x < row; x++) r[x] = (uint8_t)(x * 31 + (size_t)y * 17);
      if (type == PNG_COLOR_TYPE_PALETTE) /* indices must stay inside the 4-entry palette */
        for (size_t x = 0; x < row; x++) r[x] &= depth == 8 ? 3 : depth == 4 ? 0x33 : depth == 2 ? 0x55 : 0xff;
      png_write_row(png, r);
    }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(r);
  put("image", name, m.p, m.n);
  free(m.p);
}

static void jpeg_seed(const char *name, int w, int h, int comps, J_COLOR_SPACE cs, int progressive) {
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr err;
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  unsigned char *out = NULL;
  unsigned long n = 0;
  jpeg_mem_dest(&ci, &out, &n);
  ci.image_width = (JDIMENSION)w, ci.image_height = (JDIMENSION)h;
  ci.input_components = comps, ci.in_color_space = cs;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 75, TRUE);
  if (progressive) jpeg_simple_progression(&ci);
  jpeg_start_compress(&ci, TRUE);
  uint8_t *row = malloc((size_t)w * comps);
  while (ci.next_scanline < ci.image_height) {
    for (int x = 0; x < w * comps; x++) row[x] = (uint8_t)(x * 9 + (int)ci.next_scanline * 23);
    JSAMPROW r = row;
    jpeg_write_scanlines(&ci, &r, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  free(row);
  put("image", name, out, n);
  free(out);
}

static void seeds_image(void) {
  png_seed("gray8.png", 5, 3, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, 0);
  png_seed("gray1.png", 9, 2, PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, 0);
  png_seed("gray16-trns.png", 3, 3, PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, 1);
  png_seed("rgb8-interlaced.png", 9, 9, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, 0);
  png_seed("rgba16.png", 2, 3, PNG_COLOR_TYPE_RGB_ALPHA, 16, PNG_INTERLACE_NONE, 0);
  png_seed("graya8.png", 4, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, 0);
  png_seed("palette2-trns.png", 7, 3, PNG_COLOR_TYPE_PALETTE, 2, PNG_INTERLACE_NONE, 1);
  jpeg_seed("gray.jpg", 8, 8, 1, JCS_GRAYSCALE, 0);
  jpeg_seed("rgb.jpg", 17, 9, 3, JCS_RGB, 0);
  jpeg_seed("rgb-progressive.jpg", 16, 16, 3, JCS_RGB, 1);
  jpeg_seed("cmyk.jpg", 8, 8, 4, JCS_CMYK, 0);
}

/* ---- token grids and tokenizers ----------------------------------------------- */
static void seeds_tokens(void) {
  int32_t t[2 * 2 * 3];
  for (int i = 0; i < 12; i++) t[i] = (i * 5) % 10;
  char p[1024];
  path_of(p, sizeof p, "tokens", "grid");
  if (beit_tokens_write(p, t, 2, 2, 3, 10)) die(p);
  path_of(p, sizeof p, "tokens", "none");
  if (beit_tokens_write(p, t, 0, 7, 7, 512)) die(p);
}

static void seeds_tokenizer(void) {
  char p[1024];
  kmeans_tok km;
  kmeans_config kc = {.image_size = 4, .channels = 1, .patch = 2, .k = 3, .normalize = KMEANS_NORM_PATCH};
  if (kmeans_create(&km, &kc)) die("kmeans");
  kmeans_init_random_centroids(&km, 1);
  path_of(p, sizeof p, "tokenizer", "kmeans");
  if (kmeans_save(&km, p, NULL, 0)) die(p);
  put_without_checksum("tokenizer", "kmeans");
  kmeans_free(&km);

  dvae d;
  dvae_config dc = {.image_size = 4, .channels = 1, .n_hid = 4, .n_init = 2, .n_blk_per_group = 1,
                    .n_groups = 2, .vocab = 4, .recon = DVAE_RECON_MSE};
  for (int dec = 0; dec < 2; dec++) {
    if (dvae_create(&d, &dc, dec)) die("dvae");
    dvae_init_weights(&d, 1);
    path_of(p, sizeof p, "tokenizer", dec ? "dvae" : "dvae-encoder");
    if (dvae_save(&d, p, NULL, 0)) die(p);
    put_without_checksum("tokenizer", dec ? "dvae" : "dvae-encoder");
    if (!dec) {  /* the same encoder under dall_e's names, no metadata */
      beit_st_tensor *t = calloc((size_t)d.params.n, sizeof *t);
      for (int i = 0; i < d.params.n; i++) {
        const beit_tensor_info *ti = &d.params.t[i];
        t[i] = (beit_st_tensor){ti->name + strlen("encoder."), ti->ndim, ti->shape, d.params.data + ti->offset};
      }
      path_of(p, sizeof p, "tokenizer", "dalle-encoder");
      if (beit_st_write(p, t, d.params.n, NULL, 0)) die(p);
      put_without_checksum("tokenizer", "dalle-encoder");
      free(t);
    }
    dvae_free(&d);
  }
}

/* ---- training checkpoints ------------------------------------------------------ */
static void seeds_checkpoint(void) {
  beit_config c;
  fuzz_tiny_config(&c);
  beit_model m;
  beit_optimizer o;
  beit_optim_cfg oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .layer_decay = 1};
  if (beit_model_init(&m, &c) || beit_optimizer_init(&o, &m.params, &oc)) die("tiny model");
  beit_model_init_weights(&m, 1, 1.0f);
  for (size_t i = 0; i < m.params.total; i++) o.m[i] = 0.01f * (float)(i % 5), o.v[i] = 1e-4f * (float)(i % 3);
  char *json = beit_config_to_json(&c);
  const char *meta[] = {"config", json, "command", "pretrain"};
  beit_train_state s = {.step = 12, .epoch = 1, .step_in_epoch = 2, .best = 0.5};
  char p[1024];
  path_of(p, sizeof p, "checkpoint", "resume");
  if (beit_checkpoint_save(p, &m.params, &o, &s, meta, 2)) die(p);
  put_without_checksum("checkpoint", "resume");
  path_of(p, sizeof p, "checkpoint", "weights");
  if (beit_checkpoint_save(p, &m.params, NULL, &s, meta, 1)) die(p);
  put_without_checksum("checkpoint", "weights");
  free(json);
  beit_optimizer_free(&o);
  beit_model_free(&m);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_seeds CORPUS_ROOT\n");
    return 2;
  }
  g_root = argv[1];
  seeds_safetensors();
  seeds_config();
  seeds_idx();
  seeds_cifar();
  seeds_image();
  seeds_tokens();
  seeds_tokenizer();
  seeds_checkpoint();
  return 0;
}
