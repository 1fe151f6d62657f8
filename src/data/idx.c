/* idx.c - IDX files (MNIST / Fashion-MNIST layout), plain or gzip'd: strict
 * header, dimension and file-size validation. The header gives the data's size:
 * it is checked against the file, the pixel limit and the free memory before
 * anything is allocated, and the data is read (or inflated) straight into a
 * buffer of exactly that size, never past what the header declares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/core.h"
#include "data/dataset.h"

/* deflate's largest expansion: a gzip file of n bytes never inflates to more than 1032 n */
#define GZ_MAX_RATIO 1032

static const char *const FASHION_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/* ---- one file, plain or inflated on the way ---------------------------------------- */
typedef struct {
  const char *path;
  FILE *f;
  size_t file_size;
  int gz, zinit, ended;
  z_stream zs;
  size_t consumed;  /* compressed bytes zlib has used */
  size_t pos;       /* uncompressed bytes delivered */
  uint8_t in[1 << 16];
} idx_stream;

static int stream_open(idx_stream *s, const char *path) {
  memset(s, 0, sizeof *s);
  s->path = path;
  if (!(s->f = beit_fopen_read(path))) return BEIT_ERR;
  struct stat st;
  if (fstat(fileno(s->f), &st) != 0) return beit_errorf("%s: cannot stat", path);
  s->file_size = (size_t)st.st_size;
  uint8_t head[2];
  s->gz = fread(head, 1, 2, s->f) == 2 && head[0] == 0x1f && head[1] == 0x8b;
  rewind(s->f);
  if (s->gz && inflateInit2(&s->zs, 15 + 16) != Z_OK) return beit_errorf("%s: cannot initialise zlib", path);
  s->zinit = s->gz;
  return BEIT_OK;
}

static void stream_close(idx_stream *s) {
  if (s->zinit) inflateEnd(&s->zs);
  if (s->f) fclose(s->f);
}

static int refill(idx_stream *s) {
  size_t r = fread(s->in, 1, sizeof s->in, s->f);
  if (ferror(s->f)) return beit_errorf("%s: read error at offset %zu", s->path, s->consumed);
  if (r == 0)
    return beit_errorf("%s: gzip stream truncated at compressed offset %zu (after %zu uncompressed bytes)", s->path,
                       s->consumed, s->pos);
  s->zs.next_in = s->in, s->zs.avail_in = (uInt)r;
  return BEIT_OK;
}

/* Up to n bytes into dst; *got < n only where the data ends. */
static int stream_read(idx_stream *s, uint8_t *dst, size_t n, size_t *got) {
  *got = 0;
  if (!s->gz) {
    *got = fread(dst, 1, n, s->f);
    s->pos += *got;
    return ferror(s->f) ? beit_errorf("%s: read error at offset %zu", s->path, s->pos) : BEIT_OK;
  }
  while (*got < n && !s->ended) {
    if (s->zs.avail_in == 0 && refill(s)) return BEIT_ERR;
    size_t want = n - *got < 0x40000000u ? n - *got : 0x40000000u;
    uInt before = s->zs.avail_in;
    s->zs.next_out = dst + *got, s->zs.avail_out = (uInt)want;
    int ret = inflate(&s->zs, Z_NO_FLUSH);
    *got += want - s->zs.avail_out, s->pos += want - s->zs.avail_out;
    s->consumed += before - s->zs.avail_in;
    if (ret == Z_STREAM_END) s->ended = 1;
    if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT)
      return beit_errorf("%s: corrupt gzip data at compressed offset %zu: %s", s->path, s->consumed,
                         s->zs.msg ? s->zs.msg : "data error");
    if (ret == Z_MEM_ERROR) return beit_errorf("%s: out of memory in zlib", s->path);
  }
  return BEIT_OK;
}

/* After the `expect` bytes the header declares: nothing more (gzip: the stream ends, CRC checked). */
static int stream_finish(idx_stream *s, size_t expect) {
  if (!s->gz) {
    if (s->file_size > expect)
      return beit_errorf("%s: %zu extra bytes after offset %zu (the header says the file is %zu bytes)", s->path,
                         s->file_size - expect, expect, expect);
    return BEIT_OK;
  }
  uint8_t one;
  size_t got;
  if (stream_read(s, &one, 1, &got)) return BEIT_ERR;
  if (got)
    return beit_errorf("%s: data goes on after offset %zu (uncompressed), but the header says the file is %zu bytes",
                       s->path, expect, expect);
  if (s->file_size > s->consumed)
    return beit_errorf("%s: %zu unexpected bytes after the gzip stream at offset %zu", s->path,
                       s->file_size - s->consumed, s->consumed);
  return BEIT_OK;
}

/* ---- IDX --------------------------------------------------------------------- */
static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Magic, type, dimensions, and the data size they give against the file, the
 * pixel limit and the free memory: all before the data is allocated. */
static int idx_check(const idx_stream *s, const uint8_t *b, size_t got, int want_nd, uint32_t *dims, size_t *bytes) {
  const char *path = s->path, *unc = s->gz ? " (uncompressed)" : "";
  if (got < 4) return beit_errorf("%s: truncated: %zu bytes%s, expected a 4-byte IDX magic at offset 0", path, got, unc);
  if (b[0] || b[1] || b[2] != 0x08 || b[3] != want_nd)
    return beit_errorf("%s: bad IDX magic %02x %02x %02x %02x at offset 0, expected 00 00 08 %02x (unsigned bytes, %d dims: %s)",
                       path, b[0], b[1], b[2], b[3], want_nd, want_nd, want_nd == 3 ? "count x rows x cols" : "count");
  size_t header = 4 + 4 * (size_t)want_nd, n = 1;
  if (got < header) return beit_errorf("%s: truncated: %zu bytes%s, expected a %zu-byte header", path, got, unc, header);
  for (int d = 0; d < want_nd; d++) {
    dims[d] = be32(b + 4 + 4 * d);
    if (dims[d] == 0 || (d > 0 && dims[d] > BEIT_IMAGE_MAX_SIDE))
      return beit_errorf("%s: dimension %d is %u at offset %d, expected 1..%d", path, d, dims[d], 4 + 4 * d,
                         d ? BEIT_IMAGE_MAX_SIDE : 0x7fffffff);
    n *= dims[d];
  }
  if (want_nd == 3 && beit_image_check_pixels(path, dims[1], dims[2])) return BEIT_ERR;
  size_t expect = header + n;
  if (!s->gz && s->file_size < expect)
    return beit_errorf("%s: truncated: data ends at offset %zu, expected %zu bytes from the header", path, s->file_size, expect);
  if (s->gz && expect / GZ_MAX_RATIO > s->file_size)
    return beit_errorf("%s: the header says %zu bytes (uncompressed), more than a gzip file of %zu bytes can hold", path,
                       expect, s->file_size);
  char what[1200];
  if (want_nd == 3) snprintf(what, sizeof what, "%s: %u images of %ux%u", path, dims[0], dims[1], dims[2]);
  else snprintf(what, sizeof what, "%s: %u labels", path, dims[0]);
  *bytes = n;
  return beit_memory_check((double)n * (want_nd == 3 ? 1 : 1 + sizeof(int32_t)), what);
}

/* The data of an IDX file with want_nd dimensions, in a buffer of exactly its size (beit_free). */
static int idx_read(const char *path, int want_nd, uint32_t *dims, uint8_t **data) {
  idx_stream s;
  uint8_t head[16];
  size_t got = 0, n = 0, header = 4 + 4 * (size_t)want_nd;
  *data = NULL;
  int rc = stream_open(&s, path);
  if (rc == BEIT_OK) rc = stream_read(&s, head, header, &got);
  if (rc == BEIT_OK) rc = idx_check(&s, head, got, want_nd, dims, &n);
  if (rc == BEIT_OK && !(*data = beit_alloc(n, path))) rc = BEIT_ERR;
  if (rc == BEIT_OK) rc = stream_read(&s, *data, n, &got);
  if (rc == BEIT_OK && got < n)
    rc = beit_errorf("%s: truncated: data ends at offset %zu%s, expected %zu bytes from the header", path, header + got,
                     s.gz ? " (uncompressed)" : "", header + n);
  if (rc == BEIT_OK) rc = stream_finish(&s, header + n);
  stream_close(&s);
  if (rc) beit_free(*data), *data = NULL;
  return rc;
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

static int idx_labels(beit_dataset *ds, const char *path, const uint8_t *lab, int max_classes) {
  int top = -1;
  for (int64_t i = 0; i < ds->n; i++) {
    int v = lab[i];
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

static int idx_fill(beit_dataset *ds, const char *ipath, const uint32_t *idims, const char *lpath, const uint32_t *ldims,
                    const uint8_t *lab, const char *flavour) {
  if (ldims[0] != idims[0])
    return beit_errorf("%s: %u labels, but %s has %u images", lpath, ldims[0], ipath, idims[0]);
  ds->n = idims[0];
  ds->height = (int)idims[1], ds->width = (int)idims[2], ds->channels = 1;
  ds->labels = beit_alloc(sizeof(int32_t) * (size_t)ds->n, "IDX labels");
  if (!ds->labels) return BEIT_ERR;
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
  uint32_t idims[3], ldims[1];
  uint8_t *lab = NULL;
  int rc = idx_read(ipath, 3, idims, &ds->pixels);  /* the dataset owns the images as read */
  if (rc == BEIT_OK) rc = idx_read(lpath, 1, ldims, &lab);
  if (rc == BEIT_OK) rc = idx_fill(ds, ipath, idims, lpath, ldims, lab, flavour);
  beit_free(lab);
  return rc;
}
