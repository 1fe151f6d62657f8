/* safetensors.c - owns the safetensors format (see safetensors.h): header
 * validation (every check happens in beit_st_open), dtype conversion, the F32
 * writer, and parameter-table save/load, the only code that knows the layout. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/core.h"

#define JSON_INT_MAX 9007199254740992.0 /* 2^53: larger integers are not exact in JSON doubles */

static const struct { const char *name; size_t size; } k_dtypes[BEIT_ST_NDTYPES] = {
  [BEIT_ST_F32] = {"F32", 4},  [BEIT_ST_F16] = {"F16", 2},  [BEIT_ST_BF16] = {"BF16", 2},
  [BEIT_ST_F64] = {"F64", 8},  [BEIT_ST_I64] = {"I64", 8},  [BEIT_ST_I32] = {"I32", 4},
  [BEIT_ST_I16] = {"I16", 2},  [BEIT_ST_I8] = {"I8", 1},    [BEIT_ST_U64] = {"U64", 8},
  [BEIT_ST_U32] = {"U32", 4},  [BEIT_ST_U16] = {"U16", 2},  [BEIT_ST_U8] = {"U8", 1},
  [BEIT_ST_BOOL] = {"BOOL", 1},
};

const char *beit_st_dtype_name(int dtype) {
  return dtype >= 0 && dtype < BEIT_ST_NDTYPES ? k_dtypes[dtype].name : "?";
}

static int dtype_from_name(const char *s) {
  for (int d = 0; d < BEIT_ST_NDTYPES; d++)
    if (strcmp(s, k_dtypes[d].name) == 0) return d;
  return -1;
}

size_t beit_st_numel(const beit_st_entry *e) {
  size_t n = 1;
  for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
  return n;
}

/* ---- messages ------------------------------------------------------------ */

/* Text from the file made safe for a one-line message: control bytes become '?',
 * and anything past 100 bytes is cut with "...(N bytes)". */
const char *beit_st_printable(const char *s, char *buf, size_t n) {
  size_t len = strlen(s), k = 0, keep = len <= 100 ? len : 60;
  for (; k < keep && k + 1 < n; k++) buf[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
  buf[k] = 0;
  if (keep < len) snprintf(buf + k, n - k, "...(%zu bytes)", len);
  return buf;
}

/* "path: tensor 'name': <message>", or "path: <message>" when name is NULL. */
static int st_err(const char *path, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int st_err(const char *path, const char *name, const char *fmt, ...) {
  char msg[512], nb[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (name) return beit_errorf("%s: tensor '%s': %s", path, beit_st_printable(name, nb, sizeof nb), msg);
  return beit_errorf("%s: %s", path, msg);
}

void beit_st_shape_text(const int64_t *shape, int ndim, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

/* ---- little-endian loads and stores --------------------------------------- */
static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t ld32(const uint8_t *p) { return (uint32_t)ld16(p) | (uint32_t)ld16(p + 2) << 16; }
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }
static void st32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static void st64(uint8_t *p, uint64_t v) { st32(p, (uint32_t)v); st32(p + 4, (uint32_t)(v >> 32)); }

static float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE half -> float, exact: subnormals are renormalised, inf/nan keep their payload. */
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | mant << 13);
  if (exp != 0) return bits_to_float(sign | (exp + 112) << 23 | mant << 13);
  if (mant == 0) return bits_to_float(sign);
  uint32_t e = 113;                         /* 2^-14 as a float exponent, before shifting */
  while (!(mant & 0x400)) { mant <<= 1; e--; }
  return bits_to_float(sign | e << 23 | (mant & 0x3ff) << 13);
}

/* bfloat16 is the top half of a float32. */
static float bf16_to_float(uint16_t b) { return bits_to_float((uint32_t)b << 16); }

static double f64_from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

/* ---- header validation ----------------------------------------------------- */

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= JSON_INT_MAX) || d != floor(d)) return 0;
  *out = (uint64_t)d;
  return 1;
}

/* Short text for a JSON value in messages: the number, or its kind. */
static const char *json_text(const cJSON *v, char *buf, size_t n) {
  if (cJSON_IsNumber(v)) snprintf(buf, n, "%.17g", v->valuedouble);
  else if (cJSON_IsString(v)) snprintf(buf, n, "a string");
  else if (cJSON_IsArray(v)) snprintf(buf, n, "an array");
  else if (cJSON_IsObject(v)) snprintf(buf, n, "an object");
  else if (cJSON_IsBool(v)) snprintf(buf, n, "a boolean");
  else snprintf(buf, n, "null");
  return buf;
}

/* The field `key` of an entry object; fails when missing or given twice. */
static int entry_field(const char *path, const char *name, const cJSON *obj, const char *key,
                       const cJSON **out) {
  *out = NULL;
  for (const cJSON *c = obj->child; c; c = c->next) {
    if (!c->string || strcmp(c->string, key) != 0) continue;
    if (*out) return st_err(path, name, "field '%s' appears twice", key);
    *out = c;
  }
  if (!*out) return st_err(path, name, "missing field '%s'", key);
  return BEIT_OK;
}

static int parse_dtype(const char *path, beit_st_entry *e, const cJSON *obj) {
  const cJSON *v;
  if (entry_field(path, e->name, obj, "dtype", &v)) return BEIT_ERR;
  if (!cJSON_IsString(v)) return st_err(path, e->name, "'dtype' is not a string");
  e->dtype = dtype_from_name(v->valuestring);
  char nb[128];
  if (e->dtype < 0) return st_err(path, e->name, "unknown dtype '%.32s'", beit_st_printable(v->valuestring, nb, sizeof nb));
  return BEIT_OK;
}

/* Shape: up to BEIT_MAX_DIMS non-negative integers; sets *nbytes, overflow-checked. */
static int parse_shape(const char *path, beit_st_entry *e, const cJSON *obj, size_t *nbytes) {
  const cJSON *v;
  char t[64];
  if (entry_field(path, e->name, obj, "shape", &v)) return BEIT_ERR;
  if (!cJSON_IsArray(v)) return st_err(path, e->name, "'shape' is %s, not an array", json_text(v, t, sizeof t));
  int nd = cJSON_GetArraySize(v);
  if (nd > BEIT_MAX_DIMS)
    return st_err(path, e->name, "shape has %d dimensions, at most %d are supported", nd, BEIT_MAX_DIMS);
  e->ndim = nd;
  size_t bytes = k_dtypes[e->dtype].size;
  int d = 0, overflow = 0;
  for (const cJSON *c = v->child; c; c = c->next, d++) {
    uint64_t dim;
    if (!json_uint(c, &dim))
      return st_err(path, e->name, "shape[%d] is %s, not a non-negative integer", d, json_text(c, t, sizeof t));
    e->shape[d] = (int64_t)dim;
    if (dim != 0 && bytes > SIZE_MAX / dim) overflow = 1;
    else bytes *= (size_t)dim;
  }
  if (overflow) {
    beit_st_shape_text(e->shape, nd, t, sizeof t);
    return st_err(path, e->name, "shape %s of %s overflows the byte count", t, k_dtypes[e->dtype].name);
  }
  *nbytes = bytes;
  return BEIT_OK;
}

static int parse_offsets(const char *path, beit_st_entry *e, const cJSON *obj, size_t nbytes,
                         size_t data_size) {
  const cJSON *v;
  char a[64], b[64];
  if (entry_field(path, e->name, obj, "data_offsets", &v)) return BEIT_ERR;
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
    return st_err(path, e->name, "'data_offsets' is not an array of 2 integers");
  uint64_t lo, hi;
  const cJSON *c0 = v->child, *c1 = v->child->next;
  if (!json_uint(c0, &lo) || !json_uint(c1, &hi))
    return st_err(path, e->name, "data_offsets [%s, %s] are not non-negative integers",
                  json_text(c0, a, sizeof a), json_text(c1, b, sizeof b));
  unsigned long long l = lo, h = hi;
  if (lo > hi) return st_err(path, e->name, "data_offsets [%llu, %llu] begin after end", l, h);
  if (hi > data_size)
    return st_err(path, e->name, "data_offsets [%llu, %llu] end beyond data section (%zu bytes)", l, h, data_size);
  if (hi - lo != nbytes) {
    beit_st_shape_text(e->shape, e->ndim, a, sizeof a);
    return st_err(path, e->name, "data_offsets [%llu, %llu] span %llu bytes, but %s %s needs %zu",
                  l, h, h - l, k_dtypes[e->dtype].name, a, nbytes);
  }
  e->begin = (size_t)lo;
  e->end = (size_t)hi;
  return BEIT_OK;
}

static int parse_entry(beit_safetensors *st, const cJSON *item) {
  beit_st_entry *e = &st->e[st->n];
  const char *key = item->string;
  size_t len = strlen(key), nbytes = 0;
  char nb[128];
  if (len == 0) return st_err(st->path, NULL, "a tensor has an empty name");
  if (len >= BEIT_NAME_MAX)
    return st_err(st->path, NULL, "tensor name '%s' is longer than %d bytes",
                  beit_st_printable(key, nb, sizeof nb), BEIT_NAME_MAX - 1);
  memcpy(e->name, key, len + 1);
  if (!cJSON_IsObject(item)) return st_err(st->path, e->name, "entry is not an object");
  if (parse_dtype(st->path, e, item) || parse_shape(st->path, e, item, &nbytes) ||
      parse_offsets(st->path, e, item, nbytes, st->data_size))
    return BEIT_ERR;
  st->n++;
  return BEIT_OK;
}

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static int parse_metadata(beit_safetensors *st, const cJSON *meta) {
  if (st->meta_keys) return st_err(st->path, NULL, "'__metadata__' appears twice");
  if (!cJSON_IsObject(meta)) return st_err(st->path, NULL, "'__metadata__' is not an object");
  int n = cJSON_GetArraySize(meta);
  st->meta_keys = calloc((size_t)n + 1, sizeof(char *));
  st->meta_vals = calloc((size_t)n + 1, sizeof(char *));
  if (!st->meta_keys || !st->meta_vals) return st_err(st->path, NULL, "out of memory for metadata");
  char nb[128];
  for (const cJSON *c = meta->child; c; c = c->next) {
    if (!cJSON_IsString(c))
      return st_err(st->path, NULL, "__metadata__ value of '%s' is not a string", beit_st_printable(c->string, nb, sizeof nb));
    st->meta_keys[st->nmeta] = dup_string(c->string);
    st->meta_vals[st->nmeta] = dup_string(c->valuestring);
    if (!st->meta_keys[st->nmeta] || !st->meta_vals[st->nmeta])
      return st_err(st->path, NULL, "out of memory for metadata");
    st->nmeta++;
  }
  return BEIT_OK;
}

static int parse_root(beit_safetensors *st, const cJSON *root) {
  if (!cJSON_IsObject(root)) return st_err(st->path, NULL, "header is not a JSON object");
  int count = cJSON_GetArraySize(root);
  st->e = calloc((size_t)count + 1, sizeof *st->e);
  if (!st->e) return st_err(st->path, NULL, "out of memory for %d header entries", count);
  for (const cJSON *c = root->child; c; c = c->next) {
    int rc = strcmp(c->string, "__metadata__") == 0 ? parse_metadata(st, c) : parse_entry(st, c);
    if (rc) return BEIT_ERR;
  }
  return BEIT_OK;
}

/* ---- whole-header checks: duplicate names, overlapping byte ranges ---------- */
typedef struct { const char *s; int i; } named;
typedef struct { size_t begin, end; int i; } span;

static int cmp_named(const void *a, const void *b) {
  const named *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return (x->end > y->end) - (x->end < y->end);
}

/* Sorts names; returns the index (into the sorted array) of the first duplicate or -1. */
static int sort_find_dup(named *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_named);
  for (int i = 1; i < n; i++)
    if (strcmp(v[i - 1].s, v[i].s) == 0) return i;
  return -1;
}

static int check_names(beit_safetensors *st) {
  named *v = malloc(((size_t)st->n + 1) * sizeof *v);
  st->by_name = malloc(((size_t)st->n + 1) * sizeof *st->by_name);
  if (!v || !st->by_name) { free(v); return st_err(st->path, NULL, "out of memory"); }
  for (int i = 0; i < st->n; i++) v[i] = (named){st->e[i].name, i};
  int dup = sort_find_dup(v, st->n);
  for (int i = 0; i < st->n; i++) st->by_name[i] = v[i].i;
  int rc = dup < 0 ? BEIT_OK : st_err(st->path, v[dup].s, "name appears twice in the header");
  free(v);
  return rc;
}

static int check_meta_keys(beit_safetensors *st) {
  named *v = malloc(((size_t)st->nmeta + 1) * sizeof *v);
  if (!v) return st_err(st->path, NULL, "out of memory");
  for (int i = 0; i < st->nmeta; i++) v[i] = (named){st->meta_keys[i], i};
  int dup = sort_find_dup(v, st->nmeta);
  char nb[128];
  int rc = dup < 0 ? BEIT_OK
                   : st_err(st->path, NULL, "__metadata__ key '%s' appears twice", beit_st_printable(v[dup].s, nb, sizeof nb));
  free(v);
  return rc;
}

static int check_overlaps(beit_safetensors *st) {
  span *v = malloc(((size_t)st->n + 1) * sizeof *v);
  if (!v) return st_err(st->path, NULL, "out of memory");
  for (int i = 0; i < st->n; i++) v[i] = (span){st->e[i].begin, st->e[i].end, i};
  qsort(v, (size_t)st->n, sizeof *v, cmp_span);
  int rc = BEIT_OK, last = -1;   /* last: the non-empty range reaching furthest so far */
  for (int k = 0; k < st->n && rc == BEIT_OK; k++) {
    if (v[k].begin == v[k].end) continue;
    if (last >= 0 && v[k].begin < v[last].end) {
      const beit_st_entry *a = &st->e[v[last].i], *b = &st->e[v[k].i];
      char na[128], nb[128];
      rc = st_err(st->path, NULL, "tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap",
                  beit_st_printable(a->name, na, sizeof na), a->begin, a->end, beit_st_printable(b->name, nb, sizeof nb),
                  b->begin, b->end);
    }
    if (last < 0 || v[k].end > v[last].end) last = k;
  }
  free(v);
  return rc;
}

/* ---- content checksum (BEIT_ST_CRC_KEY, see safetensors.h) ------------------ */
typedef struct {
  const char *name, *dtype;
  int ndim;
  const int64_t *shape;
  const uint8_t *data;
  size_t nbytes;
} crc_item;

static int cmp_item(const void *a, const void *b) {
  return strcmp(((const crc_item *)a)->name, ((const crc_item *)b)->name);
}

static uint32_t crc_bytes(uint32_t crc, const void *p, size_t n) {
  const Bytef *b = p;
  for (; n > 0;) {  /* zlib's length is 32-bit */
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    crc = (uint32_t)crc32(crc, b, k);
    b += k, n -= k;
  }
  return crc;
}

static uint32_t crc_text(uint32_t crc, const char *s) { return crc_bytes(crc, s, strlen(s) + 1); }

/* zlib crc32 of: each metadata pair but the checksum's own, in key order, as
 * key NUL value NUL; then each tensor in name order as name NUL dtype NUL
 * dims-joined-by-commas NUL raw-bytes. Sorts `items` and `meta` (pairs) in place.
 * Independent of header layout, so a faithful rewrite of the file keeps it valid. */
static uint32_t content_crc(crc_item *items, int n, named *meta, int nmeta, const char *const *vals) {
  qsort(items, (size_t)n, sizeof *items, cmp_item);
  qsort(meta, (size_t)nmeta, sizeof *meta, cmp_named);
  uint32_t crc = (uint32_t)crc32(0, Z_NULL, 0);
  for (int i = 0; i < nmeta; i++) {
    if (!strcmp(meta[i].s, BEIT_ST_CRC_KEY)) continue;
    crc = crc_text(crc, meta[i].s);
    crc = crc_text(crc, vals[meta[i].i]);
  }
  for (int i = 0; i < n; i++) {
    char shape[BEIT_MAX_DIMS * 24 + 1] = "";
    size_t k = 0;
    for (int d = 0; d < items[i].ndim && d < BEIT_MAX_DIMS; d++)
      k += (size_t)snprintf(shape + k, sizeof shape - k, d ? ",%lld" : "%lld", (long long)items[i].shape[d]);
    crc = crc_text(crc, items[i].name);
    crc = crc_text(crc, items[i].dtype);
    crc = crc_text(crc, shape);
    crc = crc_bytes(crc, items[i].data, items[i].nbytes);
  }
  return crc;
}

static int parse_crc_value(const char *v, uint32_t *out) {
  if (strlen(v) != 8) return BEIT_ERR;
  uint32_t x = 0;
  for (int i = 0; i < 8; i++) {
    int c = v[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return BEIT_ERR;
    x = x << 4 | (uint32_t)d;
  }
  *out = x;
  return BEIT_OK;
}

/* Files without the key (other tools, older beit.c) pass unchecked. */
static int check_checksum(beit_safetensors *st) {
  const char *v = beit_st_meta(st, BEIT_ST_CRC_KEY);
  uint32_t want;
  if (!v) return BEIT_OK;
  if (parse_crc_value(v, &want) != BEIT_OK)
    return st_err(st->path, NULL, "metadata '%s' is not 8 lowercase hex digits", BEIT_ST_CRC_KEY);
  crc_item *items = malloc(((size_t)st->n + 1) * sizeof *items);
  named *meta = malloc(((size_t)st->nmeta + 1) * sizeof *meta);
  if (!items || !meta) { free(items), free(meta); return st_err(st->path, NULL, "out of memory"); }
  for (int i = 0; i < st->n; i++) {
    const beit_st_entry *e = &st->e[i];
    items[i] = (crc_item){e->name, k_dtypes[e->dtype].name, e->ndim, e->shape, st->data + e->begin, e->end - e->begin};
  }
  for (int i = 0; i < st->nmeta; i++) meta[i] = (named){st->meta_keys[i], i};
  uint32_t got = content_crc(items, st->n, meta, st->nmeta, (const char *const *)st->meta_vals);
  free(items), free(meta);
  if (got == want) return BEIT_OK;
  return st_err(st->path, NULL, "checksum mismatch: the file is corrupted (%s %08x stored, the content gives %08x)",
                BEIT_ST_CRC_KEY, want, got);
}

/* ---- open / close ----------------------------------------------------------- */

/* The 8-byte length prefix; sets the data section. */
static int check_framing(beit_safetensors *st, size_t *hlen) {
  if (st->size < 8)
    return st_err(st->path, NULL, "file is %zu bytes, too short for the 8-byte header length", st->size);
  uint64_t n = ld64(st->buf);
  if (n > BEIT_ST_HEADER_MAX)
    return st_err(st->path, NULL, "header length %llu is above the %u MiB limit", (unsigned long long)n,
                  BEIT_ST_HEADER_MAX >> 20);
  if (n > st->size - 8)
    return st_err(st->path, NULL, "header length %llu runs past the end of the file (%zu bytes)",
                  (unsigned long long)n, st->size);
  *hlen = (size_t)n;
  st->data = st->buf + 8 + n;
  st->data_size = st->size - 8 - (size_t)n;
  return BEIT_OK;
}

/* Parses the header bytes as one JSON object followed only by whitespace. */
static cJSON *parse_json(beit_safetensors *st, size_t hlen) {
  const uint8_t *h = st->buf + 8;
  const uint8_t *nul = memchr(h, 0, hlen);
  if (nul) { st_err(st->path, NULL, "header contains a NUL byte at offset %zu", (size_t)(nul - h)); return NULL; }
  char *text = malloc(hlen + 1);
  if (!text) { st_err(st->path, NULL, "out of memory for a %zu-byte header", hlen); return NULL; }
  memcpy(text, h, hlen);
  text[hlen] = 0;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
  size_t pos = end ? (size_t)(end - text) : 0;
  while (root && pos < hlen && strchr(" \t\r\n", text[pos])) pos++;   /* padding */
  if (!root) st_err(st->path, NULL, "header is not valid JSON (error near byte %zu of %zu)", pos, hlen);
  else if (pos != hlen) {
    st_err(st->path, NULL, "header has extra bytes after the JSON value (at byte %zu of %zu)", pos, hlen);
    cJSON_Delete(root);
    root = NULL;
  }
  free(text);
  return root;
}

/* Every check, on st->buf / st->size; frees everything on failure. */
static int validate(beit_safetensors *st) {
  size_t hlen = 0;
  cJSON *root = NULL;
  int rc = check_framing(st, &hlen);
  if (rc == BEIT_OK) rc = (root = parse_json(st, hlen)) ? BEIT_OK : BEIT_ERR;
  if (rc == BEIT_OK) rc = parse_root(st, root);
  if (rc == BEIT_OK) rc = check_names(st);
  if (rc == BEIT_OK) rc = check_meta_keys(st);
  if (rc == BEIT_OK) rc = check_overlaps(st);
  if (rc == BEIT_OK) rc = check_checksum(st);
  cJSON_Delete(root);
  if (rc) beit_st_close(st);
  return rc;
}

int beit_st_open(beit_safetensors *st, const char *path) {
  memset(st, 0, sizeof *st);
  snprintf(st->path, sizeof st->path, "%s", path);
  if (beit_read_file(path, &st->buf, &st->size)) return BEIT_ERR;
  return validate(st);
}

int beit_st_open_memory(beit_safetensors *st, const void *buf, size_t size, const char *name) {
  memset(st, 0, sizeof *st);
  snprintf(st->path, sizeof st->path, "%s", name);
  if (!(st->buf = beit_alloc(size + 1, name))) return BEIT_ERR;
  if (size) memcpy(st->buf, buf, size);
  st->size = size;
  return validate(st);
}

void beit_st_close(beit_safetensors *st) {
  for (int i = 0; i < st->nmeta; i++) { free(st->meta_keys[i]); free(st->meta_vals[i]); }
  /* a metadata entry half-copied when memory ran out */
  if (st->meta_keys) free(st->meta_keys[st->nmeta]);
  if (st->meta_vals) free(st->meta_vals[st->nmeta]);
  free(st->meta_keys);
  free(st->meta_vals);
  free(st->e);
  free(st->by_name);
  beit_free(st->buf);
  memset(st, 0, sizeof *st);
}

int beit_st_find(const beit_safetensors *st, const char *name) {
  int lo = 0, hi = st->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(st->e[st->by_name[mid]].name, name);
    if (c == 0) return st->by_name[mid];
    if (c < 0) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

const char *beit_st_meta(const beit_safetensors *st, const char *key) {
  for (int i = 0; i < st->nmeta; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
  return NULL;
}

/* ---- typed reads --------------------------------------------------------------- */
static int check_read(const beit_safetensors *st, int idx, size_t numel) {
  if (idx < 0 || idx >= st->n)
    return st_err(st->path, NULL, "tensor index %d out of range (%d tensors)", idx, st->n);
  size_t have = beit_st_numel(&st->e[idx]);
  if (have != numel)
    return st_err(st->path, st->e[idx].name, "has %zu elements, the caller expects %zu", have, numel);
  return BEIT_OK;
}

int beit_st_read_f32(const beit_safetensors *st, int idx, float *out, size_t numel) {
  if (check_read(st, idx, numel)) return BEIT_ERR;
  const beit_st_entry *e = &st->e[idx];
  const uint8_t *p = st->data + e->begin;
  switch (e->dtype) {
    case BEIT_ST_F32: for (size_t i = 0; i < numel; i++) out[i] = bits_to_float(ld32(p + 4 * i)); break;
    case BEIT_ST_F16: for (size_t i = 0; i < numel; i++) out[i] = half_to_float(ld16(p + 2 * i)); break;
    case BEIT_ST_BF16: for (size_t i = 0; i < numel; i++) out[i] = bf16_to_float(ld16(p + 2 * i)); break;
    case BEIT_ST_F64: for (size_t i = 0; i < numel; i++) out[i] = (float)f64_from_bits(ld64(p + 8 * i)); break;
    default:
      return st_err(st->path, e->name, "dtype %s is not a float type", k_dtypes[e->dtype].name);
  }
  return BEIT_OK;
}

int beit_st_read_i64(const beit_safetensors *st, int idx, int64_t *out, size_t numel) {
  if (check_read(st, idx, numel)) return BEIT_ERR;
  const beit_st_entry *e = &st->e[idx];
  const uint8_t *p = st->data + e->begin;
  for (size_t i = 0; i < numel; i++) {
    switch (e->dtype) {
      case BEIT_ST_I64: { uint64_t u = ld64(p + 8 * i); memcpy(&out[i], &u, 8); break; }
      case BEIT_ST_I32: out[i] = (int32_t)ld32(p + 4 * i); break;
      case BEIT_ST_I16: out[i] = (int16_t)ld16(p + 2 * i); break;
      case BEIT_ST_I8: out[i] = (int8_t)p[i]; break;
      case BEIT_ST_U32: out[i] = ld32(p + 4 * i); break;
      case BEIT_ST_U16: out[i] = ld16(p + 2 * i); break;
      case BEIT_ST_U8: out[i] = p[i]; break;
      default:
        return st_err(st->path, e->name, "dtype %s is not an integer type that fits int64",
                      k_dtypes[e->dtype].name);
    }
  }
  return BEIT_OK;
}

/* ---- writer --------------------------------------------------------------------- */
typedef struct { char *p; size_t len, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal; bytes >= 0x80 pass through (UTF-8). */
static void sb_json_string(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') { char esc[2] = {'\\', (char)*c}; sb_put(b, esc, 2); }
    else if (*c < 0x20) sb_printf(b, "\\u%04x", *c);
    else sb_put(b, (const char *)c, 1);
  }
  sb_put(b, "\"", 1);
}

/* Checks one tensor description; sets its byte size. */
static int check_out_tensor(const char *path, const beit_st_tensor *t, int is_i64, size_t *nbytes) {
  if (!t->name || !t->name[0]) return st_err(path, NULL, "cannot write a tensor without a name");
  if (strlen(t->name) >= BEIT_NAME_MAX || strcmp(t->name, "__metadata__") == 0)
    return st_err(path, t->name, "name is reserved or longer than %d bytes", BEIT_NAME_MAX - 1);
  if (t->ndim < 0 || t->ndim > BEIT_MAX_DIMS || (t->ndim > 0 && !t->shape))
    return st_err(path, t->name, "cannot write %d dimensions", t->ndim);
  size_t bytes = is_i64 ? 8 : 4;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] < 0 || (double)t->shape[d] > JSON_INT_MAX)
      return st_err(path, t->name, "shape[%d] = %lld is invalid", d, (long long)t->shape[d]);
    if (beit_mul_size(bytes, (size_t)t->shape[d], &bytes)) return st_err(path, t->name, "size overflows");
  }
  if (bytes > 0 && !t->data && !is_i64) return st_err(path, t->name, "data is NULL");
  *nbytes = bytes;
  return BEIT_OK;
}

static int check_out_names(const char *path, const beit_st_tensor *t, int n,
                           const char *const *kv, int n_meta) {
  int count = n > n_meta ? n : n_meta, dup;
  named *v = malloc(((size_t)count + 1) * sizeof *v);
  if (!v) return st_err(path, NULL, "out of memory");
  for (int i = 0; i < n; i++) v[i] = (named){t[i].name, i};
  if ((dup = sort_find_dup(v, n)) >= 0) {
    st_err(path, v[dup].s, "cannot write: name given twice");
    free(v);
    return BEIT_ERR;
  }
  for (int i = 0; i < n_meta; i++) {
    if (!kv[2 * i] || !kv[2 * i + 1]) { free(v); return st_err(path, NULL, "metadata pair %d has a NULL", i); }
    v[i] = (named){kv[2 * i], i};
  }
  if ((dup = sort_find_dup(v, n_meta)) >= 0) {
    st_err(path, NULL, "cannot write: metadata key '%.60s' given twice", v[dup].s);
    free(v);
    return BEIT_ERR;
  }
  free(v);
  return BEIT_OK;
}

/* The JSON header (metadata first, then tensors in order), space-padded to 8 bytes. */
static int build_header(sbuf *b, const beit_st_tensor *t, const int64_t *const *i64, const size_t *nbytes,
                        int n, const char *const *kv, int n_meta) {
  sb_str(b, "{");
  if (n_meta > 0) {
    sb_str(b, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) sb_str(b, ",");
      sb_json_string(b, kv[2 * i]);
      sb_str(b, ":");
      sb_json_string(b, kv[2 * i + 1]);
    }
    sb_str(b, n > 0 ? "}," : "}");
  }
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    if (i) sb_str(b, ",");
    sb_json_string(b, t[i].name);
    sb_str(b, i64 && i64[i] ? ":{\"dtype\":\"I64\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < t[i].ndim; d++) sb_printf(b, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
    sb_printf(b, "],\"data_offsets\":[%zu,%zu]}", off, off + nbytes[i]);
    off += nbytes[i];
  }
  sb_str(b, "}");
  while (!b->oom && b->len % 8) sb_str(b, " ");
  return b->oom ? BEIT_ERR : BEIT_OK;
}

static void put_f32(uint8_t *dst, const float *src, size_t n) {
  if (n == 0) return;   /* src may be NULL for an empty tensor */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(dst, src, n * 4);
#else
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    st32(dst + 4 * i, u);
  }
#endif
}

#define CRC_PLACEHOLDER "00000000"

/* Computes the content checksum of the laid-out file and writes it over the
 * placeholder value in the header. kv holds n_meta pairs, the checksum's last. */
static int stamp_checksum(const char *path, uint8_t *buf, const sbuf *h, const beit_st_tensor *t,
                          const int64_t *const *i64, const size_t *nbytes, int n, const char *const *kv, int n_meta) {
  const char *needle = "\"" BEIT_ST_CRC_KEY "\":\"" CRC_PLACEHOLDER "\"";
  const char *at = strstr(h->p, needle);
  crc_item *items = malloc(((size_t)n + 1) * sizeof *items);
  named *meta = malloc(((size_t)n_meta + 1) * sizeof *meta);
  const char **vals = malloc(((size_t)n_meta + 1) * sizeof *vals);
  int rc = at && items && meta && vals ? BEIT_OK : st_err(path, NULL, "out of memory for the checksum");
  if (rc == BEIT_OK) {
    size_t off = 8 + h->len;
    for (int i = 0; i < n; i++) {
      items[i] = (crc_item){t[i].name, i64 && i64[i] ? "I64" : "F32", t[i].ndim, t[i].shape, buf + off, nbytes[i]};
      off += nbytes[i];
    }
    for (int i = 0; i < n_meta; i++) meta[i] = (named){kv[2 * i], i}, vals[i] = kv[2 * i + 1];
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", content_crc(items, n, meta, n_meta, vals));
    memcpy(buf + 8 + (size_t)(at - h->p) + strlen(needle) - 9, hex, 8);
  }
  free(items), free(meta), free(vals);
  return rc;
}

/* Lays out length prefix, header and data in one buffer, stamps the checksum
 * and writes it atomically. */
static int write_file(const char *path, const sbuf *h, const beit_st_tensor *t, const int64_t *const *i64,
                      const size_t *nbytes, int n, const char *const *kv, int n_meta) {
  size_t total = 8 + h->len;
  for (int i = 0; i < n; i++) {
    if (total + nbytes[i] < total) return st_err(path, NULL, "file size overflows");
    total += nbytes[i];
  }
  uint8_t *buf = beit_alloc(total, path);
  if (!buf) return BEIT_ERR;
  st64(buf, h->len);
  memcpy(buf + 8, h->p, h->len);
  size_t off = 8 + h->len;
  for (int i = 0; i < n; i++) {
    if (i64 && i64[i])
      for (size_t k = 0; k < nbytes[i] / 8; k++) st64(buf + off + 8 * k, (uint64_t)i64[i][k]);
    else
      put_f32(buf + off, t[i].data, nbytes[i] / 4);
    off += nbytes[i];
  }
  int rc = stamp_checksum(path, buf, h, t, i64, nbytes, n, kv, n_meta);
  if (rc == BEIT_OK) rc = beit_write_file_atomic(path, buf, total);
  beit_free(buf);
  return rc;
}

int beit_st_write_i64(const char *path, const beit_st_tensor *t, const int64_t *const *i64, int n,
                      const char *const *meta_kv, int n_meta) {
  if (n < 0 || n_meta < 0 || (n > 0 && !t) || (n_meta > 0 && !meta_kv))
    return st_err(path, NULL, "cannot write: bad tensor or metadata count");
  size_t *nbytes = malloc(((size_t)n + 1) * sizeof *nbytes);
  const char **kv = malloc(2 * ((size_t)n_meta + 1) * sizeof *kv);  /* the caller's pairs + the checksum */
  if (!nbytes || !kv) { free(nbytes), free(kv); return st_err(path, NULL, "out of memory"); }
  int m = 0;
  for (int i = 0; i < n_meta; i++)  /* a stale checksum copied from another file is replaced */
    if (!meta_kv[2 * i] || strcmp(meta_kv[2 * i], BEIT_ST_CRC_KEY)) kv[2 * m] = meta_kv[2 * i], kv[2 * m + 1] = meta_kv[2 * i + 1], m++;
  n_meta = m;
  kv[2 * n_meta] = BEIT_ST_CRC_KEY, kv[2 * n_meta + 1] = CRC_PLACEHOLDER;
  sbuf h = {0};
  int rc = BEIT_OK;
  for (int i = 0; i < n && rc == BEIT_OK; i++) rc = check_out_tensor(path, &t[i], i64 && i64[i], &nbytes[i]);
  if (rc == BEIT_OK) rc = check_out_names(path, t, n, kv, n_meta + 1);
  if (rc == BEIT_OK && build_header(&h, t, i64, nbytes, n, kv, n_meta + 1))
    rc = st_err(path, NULL, "out of memory building the header");
  if (rc == BEIT_OK && h.len > BEIT_ST_HEADER_MAX)
    rc = st_err(path, NULL, "header would be %zu bytes, above the reader's limit", h.len);
  if (rc == BEIT_OK) rc = write_file(path, &h, t, i64, nbytes, n, kv, n_meta + 1);
  free(h.p);
  free(nbytes);
  free(kv);
  return rc;
}

int beit_st_write(const char *path, const beit_st_tensor *t, int n, const char *const *meta_kv,
                  int n_meta) {
  return beit_st_write_i64(path, t, NULL, n, meta_kv, n_meta);
}
