/* idx.c - IDX files (MNIST / Fashion-MNIST layout), plain or gzip'd: strict
 * header, dimension and file-size validation, loaded whole into memory as
 * uint8 HWC with one channel. Also the gzip-aware file reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/core.h"
#include "data/dataset.h"

#define GZ_MAX_BYTES ((size_t)8 << 30)

static const char *const FASHION_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/* ---- gzip ---------------------------------------------------------------------- */
static int grow(uint8_t **buf, size_t *cap, const char *path) {
  if (*cap >= GZ_MAX_BYTES) return beit_errorf("%s: decompresses to more than %zu bytes", path, GZ_MAX_BYTES);
  size_t ncap = *cap < GZ_MAX_BYTES / 2 ? *cap * 2 : GZ_MAX_BYTES;
  if (ncap >= ((size_t)64 << 20) && beit_memory_check((double)(ncap - *cap), path)) return BEIT_ERR;
  uint8_t *p = realloc(*buf, ncap);
  if (!p) return beit_errorf("%s: out of memory inflating (%zu bytes)", path, ncap);
  *buf = p, *cap = ncap;
  return BEIT_OK;
}

static int inflate_loop(z_stream *zs, const char *path, size_t in_size, uint8_t **buf, size_t *cap, size_t *have) {
  for (;;) {
    if (*have == *cap && grow(buf, cap, path)) return BEIT_ERR;
    size_t room = *cap - *have;
    zs->next_out = *buf + *have;
    zs->avail_out = room > 0x40000000u ? 0x40000000u : (uInt)room;
    uInt before = zs->avail_out;
    int ret = inflate(zs, Z_NO_FLUSH);
    *have += before - zs->avail_out;
    size_t off = in_size - zs->avail_in;
    if (ret == Z_STREAM_END) {
      if (zs->avail_in) return beit_errorf("%s: %u unexpected bytes after the gzip stream at offset %zu", path, zs->avail_in, off);
      return BEIT_OK;
    }
    if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT)
      return beit_errorf("%s: corrupt gzip data at compressed offset %zu: %s", path, off, zs->msg ? zs->msg : "data error");
    if (ret == Z_MEM_ERROR) return beit_errorf("%s: out of memory in zlib", path);
    if (zs->avail_in == 0 && zs->avail_out > 0)
      return beit_errorf("%s: gzip stream truncated at compressed offset %zu (after %zu uncompressed bytes)", path, off, *have);
  }
}

static int gunzip(const char *path, const uint8_t *in, size_t n, uint8_t **out, size_t *out_n) {
  /* The trailer's size is only a hint, and a hostile one asks for 4 GiB from a few
   * bytes: cap it at deflate's largest expansion (1032:1); the buffer grows if needed. */
  size_t hint = n >= 4 ? (size_t)in[n - 4] | (size_t)in[n - 3] << 8 | (size_t)in[n - 2] << 16 | (size_t)in[n - 1] << 24 : 0;
  size_t most = n < GZ_MAX_BYTES / 1032 ? n * 1032 : GZ_MAX_BYTES;
  size_t cap = hint < most ? hint + 1 : most, have = 0;
  if (cap < 4096) cap = 4096;
  uint8_t *buf = malloc(cap);
  if (!buf) return beit_errorf("%s: out of memory inflating (%zu bytes)", path, cap);
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {
    free(buf);
    return beit_errorf("%s: cannot initialise zlib", path);
  }
  zs.next_in = (Bytef *)in;
  zs.avail_in = (uInt)n;
  int rc = n > 0xFFFFFFFFu ? beit_errorf("%s: gzip file over 4 GiB", path)
                           : inflate_loop(&zs, path, n, &buf, &cap, &have);
  inflateEnd(&zs);
  if (rc) {
    free(buf);
    return BEIT_ERR;
  }
  *out = buf, *out_n = have;
  return BEIT_OK;
}

int beit_read_maybe_gz(const char *path, uint8_t **data, size_t *size) {
  uint8_t *raw;
  size_t n;
  if (beit_read_file(path, &raw, &n)) return BEIT_ERR;
  if (n < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
    *data = raw, *size = n;
    return BEIT_OK;
  }
  uint8_t *plain = NULL;
  size_t pn = 0;
  int rc = gunzip(path, raw, n, &plain, &pn);
  beit_free(raw);
  if (rc) return BEIT_ERR;
  /* hand back memory the caller frees with beit_free (= free) */
  *data = plain, *size = pn;
  return BEIT_OK;
}

/* ---- IDX --------------------------------------------------------------------- */
typedef struct {
  uint8_t *buf;
  size_t size;
  int gz;
  uint32_t dims[3];
  const uint8_t *payload;
} idx_file;

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks magic, type, dimension count and that the size is exactly right. */
static int idx_check(const char *path, idx_file *f, int want_nd) {
  const char *unc = f->gz ? " (uncompressed)" : "";
  const uint8_t *b = f->buf;
  if (f->size < 4) return beit_errorf("%s: truncated: %zu bytes%s, expected a 4-byte IDX magic at offset 0", path, f->size, unc);
  if (b[0] || b[1] || b[2] != 0x08 || b[3] != want_nd)
    return beit_errorf("%s: bad IDX magic %02x %02x %02x %02x at offset 0, expected 00 00 08 %02x (unsigned bytes, %d dims: %s)",
                       path, b[0], b[1], b[2], b[3], want_nd, want_nd, want_nd == 3 ? "count x rows x cols" : "count");
  size_t header = 4 + 4 * (size_t)want_nd, expect = 1;
  if (f->size < header) return beit_errorf("%s: truncated: %zu bytes%s, expected a %zu-byte header", path, f->size, unc, header);
  for (int d = 0; d < want_nd; d++) {
    f->dims[d] = be32(b + 4 + 4 * d);
    if (f->dims[d] == 0 || (d > 0 && f->dims[d] > BEIT_IMAGE_MAX_SIDE))
      return beit_errorf("%s: dimension %d is %u at offset %d, expected 1..%d", path, d, f->dims[d], 4 + 4 * d,
                         d ? BEIT_IMAGE_MAX_SIDE : 0x7fffffff);
    expect *= f->dims[d];
  }
  expect += header;
  if (f->size < expect)
    return beit_errorf("%s: truncated: data ends at offset %zu%s, expected %zu bytes from the header", path, f->size, unc, expect);
  if (f->size > expect)
    return beit_errorf("%s: %zu extra bytes after offset %zu%s (the header says the file is %zu bytes)", path, f->size - expect, expect, unc, expect);
  f->payload = b + header;
  return BEIT_OK;
}

static int idx_read(const char *path, idx_file *f, int want_nd) {
  memset(f, 0, sizeof *f);
  uint8_t head[2] = {0, 0};
  FILE *fp = beit_fopen_read(path);
  if (fp) {
    f->gz = fread(head, 1, 2, fp) == 2 && head[0] == 0x1f && head[1] == 0x8b;
    fclose(fp);
  }
  if (beit_read_maybe_gz(path, &f->buf, &f->size)) return BEIT_ERR;
  return idx_check(path, f, want_nd);
}

/* Finds "<split>-<kind>-idx<N>-ubyte[.gz]" or "<split>-<kind>.idx<N>-ubyte[.gz]". */
static int find_idx(const char *dir, const char *split, const char *kind, int nd, char *out, size_t outn) {
  const char *forms[] = {"%s/%s-%s-idx%d-ubyte", "%s/%s-%s-idx%d-ubyte.gz", "%s/%s-%s.idx%d-ubyte", "%s/%s-%s.idx%d-ubyte.gz"};
  for (int k = 0; k < 4; k++) {
    snprintf(out, outn, forms[k], dir, split, kind, nd);
    if (beit_is_file(out)) return BEIT_OK;
  }
  snprintf(out, outn, forms[0], dir, split, kind, nd);
  return beit_errorf("%s: not found (nor .gz, nor %s-%s.idx%d-ubyte)", out, split, kind, nd);
}

static int idx_labels(beit_dataset *ds, const char *path, const idx_file *lab, int max_classes) {
  int top = -1;
  for (int64_t i = 0; i < ds->n; i++) {
    int v = lab->payload[i];
    if (max_classes && v >= max_classes)
      return beit_errorf("%s: label %d at offset %lld, expected 0..%d", path, v, (long long)(8 + i), max_classes - 1);
    ds->labels[i] = v;
    if (v > top) top = v;
  }
  return max_classes ? max_classes : top + 1;
}

static void idx_stats(beit_dataset *ds, const char *flavour) {
  float m = 0.5f, s = 0.5f;
  if (!strcmp(flavour, "fashion-mnist")) m = 0.2860f, s = 0.3530f;
  if (!strcmp(flavour, "mnist")) m = 0.1307f, s = 0.3081f;
  for (int c = 0; c < 3; c++) ds->mean[c] = m, ds->std[c] = s;
}

static int idx_fill(beit_dataset *ds, const char *ipath, const idx_file *img, const char *lpath, const idx_file *lab,
                    const char *flavour) {
  if (lab->dims[0] != img->dims[0])
    return beit_errorf("%s: %u labels, but %s has %u images", lpath, lab->dims[0], ipath, img->dims[0]);
  ds->n = img->dims[0];
  ds->height = (int)img->dims[1], ds->width = (int)img->dims[2], ds->channels = 1;
  size_t npix = (size_t)ds->n * ds->height * ds->width;
  ds->pixels = beit_alloc(npix, "IDX images");
  ds->labels = beit_alloc(sizeof(int32_t) * (size_t)ds->n, "IDX labels");
  if (!ds->pixels || !ds->labels) return BEIT_ERR;
  memcpy(ds->pixels, img->payload, npix);
  int named = strcmp(flavour, "idx") != 0;
  int classes = idx_labels(ds, lpath, lab, named ? 10 : 0);
  if (classes < 0) return BEIT_ERR;
  idx_stats(ds, flavour);
  return beit_ds_set_names(ds, !strcmp(flavour, "fashion-mnist") ? FASHION_NAMES : NULL, classes);
}

int beit_idx_open(beit_dataset *ds, const char *dir, int train, const char *flavour) {
  char ipath[2048], lpath[2048];
  const char *split = train ? "train" : "t10k";
  ds->kind = BEIT_DS_IDX;
  snprintf(ds->name, sizeof ds->name, "%s", flavour);
  snprintf(ds->root, sizeof ds->root, "%s", dir);
  if (!beit_is_dir(dir)) return beit_errorf("%s: not a directory (expected IDX files in it)", dir);
  if (find_idx(dir, split, "images", 3, ipath, sizeof ipath) || find_idx(dir, split, "labels", 1, lpath, sizeof lpath))
    return BEIT_ERR;
  idx_file img, lab;
  int rc = idx_read(ipath, &img, 3);
  if (rc == BEIT_OK) rc = idx_read(lpath, &lab, 1);
  else memset(&lab, 0, sizeof lab);
  if (rc == BEIT_OK) rc = idx_fill(ds, ipath, &img, lpath, &lab, flavour);
  free(img.buf);
  free(lab.buf);
  return rc;
}
