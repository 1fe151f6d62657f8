/* test_safetensors.c - the safetensors reader/writer: bit-exact parameter round
 * trips, dtype conversion against numpy (tests/ref/st_fixture.py), C-written
 * files read back by Python, and refusal of malformed, truncated and bit-flipped
 * files with a message naming the file. */
#include <float.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "model/params.h"
#include "test.h"

static const char *g_fx, *g_root;

static void fx(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_fx, name); }

static int write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = n ? fwrite(p, 1, n, f) : 0;
  fclose(f);
  return w == n ? 0 : -1;
}

/* A file: 8-byte length field `hlen`, then `hsize` header bytes, then `data` zero bytes. */
static void write_st(const char *path, uint64_t hlen, const char *header, size_t hsize, size_t data) {
  size_t n = 8 + hsize + data;
  uint8_t *b = calloc(n, 1);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
  memcpy(b + 8, header, hsize);
  if (write_bytes(path, b, n)) printf("  cannot write %s\n", path);
  free(b);
}

/* Bitwise equality, except that any NaN equals any NaN. */
static int same_float(float a, float b) {
  if (a != a && b != b) return 1;
  return memcmp(&a, &b, 4) == 0;
}

static void fill_random(float *x, size_t n, uint64_t seed) {
  beit_rng r;
  beit_rng_seed(&r, seed, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)beit_rng_normal(&r);
}

/* ---- (a) parameter tables ------------------------------------------------------ */
static void make_table(beit_params *p, int head_rows, int with_bias, int n_extra) {
  beit_params_init(p);
  beit_params_add(p, "patch_embed.proj.weight", 4, (int64_t[]){16, 3, 4, 4}, 0, 1);
  beit_params_add(p, "cls_token", 3, (int64_t[]){1, 1, 16}, 0, 0);
  beit_params_add(p, "blocks.0.attn.qkv.weight", 2, (int64_t[]){48, 16}, 1, 1);
  beit_params_add(p, "head.weight", 2, (int64_t[]){head_rows, 16}, 2, 1);
  if (with_bias) beit_params_add(p, "head.bias", 1, (int64_t[]){10}, 2, 0);
  for (int i = 0; i < n_extra; i++) {
    char name[32];
    snprintf(name, sizeof name, "extra.%d", i);
    beit_params_add(p, name, 1, (int64_t[]){3}, 2, 0);
  }
  BEIT_CHECK(beit_params_alloc(p) == BEIT_OK);
}

static int params_equal(const beit_params *a, const beit_params *b) {
  for (int i = 0; i < a->n; i++)
    if (memcmp(a->data + a->t[i].offset, b->data + b->t[i].offset, a->t[i].numel * 4)) return 0;
  return 1;
}

static void test_roundtrip(void) {
  printf("(a) parameter table round trip\n");
  beit_params p, q;
  make_table(&p, 10, 1, 0);
  make_table(&q, 10, 1, 0);
  fill_random(p.data, p.total, 1);
  uint32_t specials[] = {0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00123u, 0x7f800001u, 1u, 0x007fffffu};
  memcpy(p.data + p.t[1].offset, specials, sizeof specials);
  char path[512];
  fx(path, sizeof path, "params.safetensors");
  const char *meta[] = {"epoch", "7", "arch", "beit_tiny \"quoted\"\n"};
  CHECK_TRUE(beit_params_save(&p, path, meta, 2) == BEIT_OK, "save %s", path);
  int rc = beit_params_load(&q, path, 1);
  CHECK_TRUE(rc == BEIT_OK, "load strict: %s", rc ? beit_last_error() : "ok");
  CHECK_TRUE(params_equal(&p, &q), "all %d tensors bit-exact (incl. NaN payloads, -0, inf, subnormals)", p.n);
  beit_safetensors st;
  CHECK_TRUE(beit_st_open(&st, path) == BEIT_OK, "reopen");
  CHECK_TRUE(st.n == p.n && (st.data - st.buf) % 8 == 0, "%d tensors, data section 8-aligned", st.n);
  CHECK_TRUE(beit_st_meta(&st, "epoch") && strcmp(beit_st_meta(&st, "epoch"), "7") == 0 &&
                 strcmp(beit_st_meta(&st, "arch"), meta[3]) == 0 && !beit_st_meta(&st, "nope"),
             "metadata read back (escapes kept), absent key -> NULL");
  int order_ok = 1;
  for (int i = 0; i < st.n; i++) order_ok &= strcmp(st.e[i].name, p.t[i].name) == 0;
  CHECK_TRUE(order_ok && beit_st_find(&st, "head.bias") == 4 && beit_st_find(&st, "nope") == -1,
             "header keeps table order; find works");
  beit_st_close(&st);
  beit_params_free(&p);
  beit_params_free(&q);
}

static void expect_load_err(beit_params *p, const char *path, int strict, const char *what,
                            const char *s1, const char *s2) {
  int rc = beit_params_load(p, path, strict);
  const char *m = beit_last_error();
  printf("       -> %s\n", m);
  CHECK_TRUE(rc == BEIT_ERR && strstr(m, path) && strstr(m, s1) && (!s2 || strstr(m, s2)), "%s refused", what);
}

static void test_load_errors(void) {
  printf("(a) parameter loading: shape, missing, unexpected keys\n");
  char path[512], rpi[512];
  fx(path, sizeof path, "params.safetensors");
  beit_params p;
  make_table(&p, 1000, 1, 0);
  float *before = beit_params_get(&p, "cls_token");
  before[0] = 42;
  expect_load_err(&p, path, 0, "shape mismatch", "'head.weight' has shape [10, 16], the model expects [1000, 16]", NULL);
  CHECK_TRUE(before[0] == 42, "failed load left the table untouched");
  beit_params_free(&p);
  make_table(&p, 10, 1, 7);
  expect_load_err(&p, path, 0, "7 missing keys", "7 of the model's 12 tensors missing: 'extra.0'", "'extra.4' and 2 more");
  beit_params_free(&p);
  make_table(&p, 10, 0, 0);
  expect_load_err(&p, path, 1, "strict, unexpected key", "unexpected", "'head.bias'");
  CHECK_TRUE(beit_params_load(&p, path, 0) == BEIT_OK, "non-strict ignores the unexpected key");
  /* relative_position_index buffers are always ignored */
  beit_params full;
  make_table(&full, 10, 1, 0);
  beit_st_tensor t[6];
  for (int i = 0; i < full.n; i++)
    t[i] = (beit_st_tensor){full.t[i].name, full.t[i].ndim, full.t[i].shape, full.data + full.t[i].offset};
  float idx[4] = {0, 1, 2, 3};
  t[5] = (beit_st_tensor){"blocks.0.attn.relative_position_index", 2, (int64_t[]){2, 2}, idx};
  fx(rpi, sizeof rpi, "params_rpi.safetensors");
  CHECK_TRUE(beit_st_write(rpi, t, 6, NULL, 0) == BEIT_OK, "write with relative_position_index");
  int rc = beit_params_load(&full, rpi, 1);
  CHECK_TRUE(rc == BEIT_OK, "strict load ignores relative_position_index: %s", rc ? beit_last_error() : "ok");
  beit_params_free(&full);
  beit_params_free(&p);
}

/* ---- (b) Python-written fixtures --------------------------------------------------- */
static int run_python(const char *mode) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/ref/st_fixture.py' %s '%s'", g_root, mode, g_fx);
  fflush(stdout);
  int rc = system(cmd);
  return rc == 0 ? 0 : -1;
}

static float *read_all_f32(const beit_safetensors *st, int i, size_t *n) {
  *n = beit_st_numel(&st->e[i]);
  float *x = malloc(*n * 4 + 4);
  if (beit_st_read_f32(st, i, x, *n)) { free(x); return NULL; }
  return x;
}

static void compare_expected(const beit_safetensors *st, const beit_safetensors *ex) {
  for (int j = 0; j < ex->n; j++) {
    int i = beit_st_find(st, ex->e[j].name);
    size_t n = 0, m = 0, bad = 0;
    float *got = i >= 0 ? read_all_f32(st, i, &n) : NULL, *want = read_all_f32(ex, j, &m);
    for (size_t k = 0; got && want && k < n && n == m; k++) bad += !same_float(got[k], want[k]);
    CHECK_TRUE(got && want && n == m && bad == 0, "%-26s %-4s -> f32: %zu values, %zu differ from numpy",
               ex->e[j].name, i >= 0 ? beit_st_dtype_name(st->e[i].dtype) : "?", n, bad);
    free(got);
    free(want);
  }
}

static void compare_ints(const beit_safetensors *st, const char *name, const int64_t *want, size_t n) {
  int64_t got[8] = {0};
  int i = beit_st_find(st, name), ok = i >= 0 && beit_st_read_i64(st, i, got, n) == BEIT_OK;
  for (size_t k = 0; ok && k < n; k++) ok = got[k] == want[k];
  CHECK_TRUE(ok, "%-26s read as int64, %zu values exact", name, n);
}

static void check_meta(const beit_safetensors *st, const char *key, const char *want) {
  const char *v = beit_st_meta(st, key);
  CHECK_TRUE(v && strcmp(v, want) == 0, "metadata '%s' (%zu bytes of UTF-8 and escapes) matches", key, strlen(want));
}

static void test_api_errors(const beit_safetensors *st) {
  float f[8];
  int64_t l[8];
  int i64 = beit_st_find(st, "i64"), f16 = beit_st_find(st, "f16");
  CHECK_TRUE(beit_st_read_f32(st, i64, f, 7) == BEIT_ERR && strstr(beit_last_error(), "not a float"),
             "read_f32 of I64 refused: %s", beit_last_error());
  CHECK_TRUE(beit_st_read_i64(st, f16, l, 32) == BEIT_ERR, "read_i64 of F16 refused: %s", beit_last_error());
  CHECK_TRUE(beit_st_read_f32(st, f16, f, 8) == BEIT_ERR && strstr(beit_last_error(), "32 elements"),
             "wrong element count refused: %s", beit_last_error());
  CHECK_TRUE(beit_st_read_f32(st, st->n, f, 1) == BEIT_ERR, "index out of range refused");
  int s = beit_st_find(st, "scalar"), e = beit_st_find(st, "empty");
  CHECK_TRUE(s >= 0 && st->e[s].ndim == 0 && beit_st_read_f32(st, s, f, 1) == BEIT_OK && f[0] == 3.5f,
             "0-d scalar reads as one value");
  CHECK_TRUE(e >= 0 && beit_st_numel(&st->e[e]) == 0 && beit_st_read_f32(st, e, f, 0) == BEIT_OK,
             "[2, 0] tensor has no elements");
}

static void test_params_from_python(const char *types, const beit_safetensors *ex) {
  beit_params p;
  beit_params_init(&p);
  beit_params_add(&p, "f16", 2, (int64_t[]){4, 8}, 0, 0);
  beit_params_add(&p, "bf16", 3, (int64_t[]){2, 3, 4}, 0, 0);
  BEIT_CHECK(beit_params_alloc(&p) == BEIT_OK);
  int ok = beit_params_load(&p, types, 0) == BEIT_OK;
  for (int t = 0; ok && t < 2; t++) {
    size_t n;
    float *want = read_all_f32(ex, beit_st_find(ex, p.t[t].name), &n);
    for (size_t k = 0; want && k < n; k++) ok &= same_float(p.data[p.t[t].offset + k], want[k]);
    free(want);
  }
  CHECK_TRUE(ok, "params_load converts F16/BF16 checkpoints to the float32 table");
  beit_params_free(&p);
}

static void test_python_fixtures(void) {
  printf("(b) reading files written by tests/ref/stio.py\n");
  CHECK_TRUE(run_python("write") == 0, "python3 st_fixture.py write");
  char types[512], expect[512];
  fx(types, sizeof types, "py_types.safetensors");
  fx(expect, sizeof expect, "py_expect.safetensors");
  beit_safetensors st, ex;
  int ok = beit_st_open(&st, types) == BEIT_OK;
  CHECK_TRUE(ok, "open py_types: %s", ok ? "ok" : beit_last_error());
  if (!ok) return;
  if (beit_st_open(&ex, expect) != BEIT_OK) {
    CHECK_TRUE(0, "open py_expect: %s", beit_last_error());
    beit_st_close(&st);
    return;
  }
  compare_expected(&st, &ex);
  compare_ints(&st, "i64", (int64_t[]){0, 1, -1, INT64_C(1) << 62, INT64_MIN, INT64_MAX, INT64_C(123456789012)}, 7);
  compare_ints(&st, "i32", (int64_t[]){0, -1, INT32_MAX, INT32_MIN, 7, 42}, 6);
  compare_ints(&st, "u8", (int64_t[]){0, 255, 7}, 3);
  check_meta(&st, "format", "pt");
  check_meta(&st, "unicode", "\xc3\xbcn\xc3\xaf \xe2\x9c\x93 \xf0\x9f\x98\x80");
  check_meta(&st, "escapes", "q\"b\\s\n\tend");
  test_api_errors(&st);
  test_params_from_python(types, &ex);
  beit_st_close(&st);
  beit_st_close(&ex);
}

/* ---- (c) C writes, Python reads (keep in sync with st_fixture.py C_TENSORS) ------------ */
static void test_c_to_python(void) {
  printf("(c) files written by C, read back by stio.py\n");
  static float w[8 * 3 * 4 * 4], cls[8], bias[8], scalar[1] = {-2.75f}, spec[12];
  fill_random(w, 384, 2);
  fill_random(cls, 8, 3);
  fill_random(bias, 8, 4);
  uint32_t sb[12] = {0, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7fc00123u,
                     0x7f800001u, 1, 0x7f7fffffu, 0x00800000u, 0x3eaaaaabu, 0x8000ffffu};
  memcpy(spec, sb, sizeof sb);
  beit_st_tensor t[] = {
    {"patch_embed.proj.weight", 4, (int64_t[]){8, 3, 4, 4}, w}, {"cls_token", 3, (int64_t[]){1, 1, 8}, cls},
    {"blocks.0.norm1.bias", 1, (int64_t[]){8}, bias}, {"scalar", 0, NULL, scalar},
    {"empty", 2, (int64_t[]){0, 5}, NULL}, {"specials", 1, (int64_t[]){12}, spec}};
  const char *meta[] = {"epoch", "3", "note", "quote \" backslash \\ newline \n tab \t ctrl \x01 \xc3\xbc \xe2\x9c\x93"};
  char path[512], bin[512];
  fx(path, sizeof path, "c_written.safetensors");
  fx(bin, sizeof bin, "c_written.bin");
  CHECK_TRUE(beit_st_write(path, t, 6, meta, 2) == BEIT_OK, "beit_st_write %s", path);
  FILE *f = fopen(bin, "wb");
  fwrite(w, 4, 384, f); fwrite(cls, 4, 8, f); fwrite(bias, 4, 8, f); fwrite(scalar, 4, 1, f); fwrite(spec, 4, 12, f);
  fclose(f);
  CHECK_TRUE(run_python("check") == 0, "python3 st_fixture.py check exits 0");
  beit_safetensors st;
  float back[12];
  int ok = beit_st_open(&st, path) == BEIT_OK && beit_st_read_f32(&st, 5, back, 12) == BEIT_OK;
  CHECK_TRUE(ok && memcmp(back, spec, sizeof spec) == 0 && strcmp(beit_st_meta(&st, "note"), meta[3]) == 0,
             "C reads its own file back bit-exact");
  if (ok) beit_st_close(&st);
}

static void expect_write_err(const char *what, const beit_st_tensor *t, int n) {
  char path[512];
  struct stat sb;
  fx(path, sizeof path, "never_written.safetensors");
  int rc = beit_st_write(path, t, n, NULL, 0);
  printf("       -> %s\n", beit_last_error());
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), path) && stat(path, &sb) != 0, "writer refuses %s", what);
}

static void test_writer_errors(void) {
  float x[4] = {0};
  char longname[120];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  int64_t s2[] = {2, 2}, neg[] = {-2, 2};
  expect_write_err("duplicate names", (beit_st_tensor[]){{"a", 2, s2, x}, {"b", 0, NULL, x}, {"a", 2, s2, x}}, 3);
  expect_write_err("a too-long name", (beit_st_tensor[]){{longname, 2, s2, x}}, 1);
  expect_write_err("5 dimensions", (beit_st_tensor[]){{"a", 5, (int64_t[]){1, 1, 1, 1, 4}, x}}, 1);
  expect_write_err("a negative dimension", (beit_st_tensor[]){{"a", 2, neg, x}}, 1);
  expect_write_err("the reserved name", (beit_st_tensor[]){{"__metadata__", 2, s2, x}}, 1);
  expect_write_err("NULL data", (beit_st_tensor[]){{"a", 2, s2, NULL}}, 1);
}

/* ---- (d) malformed files ---------------------------------------------------------------- */
typedef struct { const char *file, *header; size_t data; const char *reason; } bad_case;

static const bad_case k_bad[] = {
  {"bad_json", "{\"a\": ", 0, "not valid JSON"},
  {"bad_empty_header", "", 0, "not valid JSON"},
  {"bad_trailing", "{} x", 0, "extra bytes"},
  {"bad_notobject", "[1, 2]", 0, "not a JSON object"},
  {"bad_entry", "{\"a\": 5}", 0, "entry is not an object"},
  {"bad_ctrl_name", "{\"a\\nb\": 5}", 0, "tensor 'a?b': entry is not an object"},
  {"bad_dtype", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unknown dtype 'Q4'"},
  {"bad_dtype_type", "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "'dtype' is not a string"},
  {"bad_no_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "missing field 'dtype'"},
  {"bad_no_shape", "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "missing field 'shape'"},
  {"bad_no_offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "missing field 'data_offsets'"},
  {"bad_dup_field", "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "appears twice"},
  {"bad_shape_type", "{\"a\":{\"dtype\":\"U8\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, "not an array"},
  {"bad_ndim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "5 dimensions"},
  {"bad_negative_dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1,4],\"data_offsets\":[0,4]}}", 4, "not a non-negative integer"},
  {"bad_fraction_dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1, "not a non-negative integer"},
  {"bad_huge_dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", 1, "not a non-negative integer"},
  {"bad_string_dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1, "not a non-negative integer"},
  {"bad_overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflows"},
  {"bad_offsets_type", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":\"0,4\"}}", 4, "not an array of 2"},
  {"bad_offsets_len", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 8, "not an array of 2"},
  {"bad_offsets_neg", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 4, "not non-negative integers"},
  {"bad_offsets_frac", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4.5]}}", 8, "not non-negative integers"},
  {"bad_offsets_huge", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,1e20]}}", 4, "not non-negative integers"},
  {"bad_begin_after_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "begin after end"},
  {"bad_end", "{\"blocks.0.attn.qkv.weight\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[10,20]}}", 16,
   "tensor 'blocks.0.attn.qkv.weight': data_offsets [10, 20] end beyond data section (16 bytes)"},
  {"bad_size", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, "needs 16"},
  {"bad_overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
   "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24, "overlap"},
  {"bad_overlap_inside", "{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},\"e\":{\"dtype\":\"U8\","
   "\"shape\":[0],\"data_offsets\":[4,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}", 16, "overlap"},
  {"bad_duplicate", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
   "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "appears twice"},
  {"bad_empty_name", "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "empty name"},
  {"bad_meta_value", "{\"__metadata__\":{\"epoch\":3}}", 0, "'epoch' is not a string"},
  {"bad_meta_object", "{\"__metadata__\":\"x\"}", 0, "'__metadata__' is not an object"},
  {"bad_meta_twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "appears twice"},
  {"bad_meta_dup_key", "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, "'a' appears twice"},
};

/* Opens `path`, expects a one-line refusal naming the file (and `reason`); prints it. */
static int expect_refused(const char *label, const char *path, const char *reason) {
  beit_safetensors st;
  int rc = beit_st_open(&st, path);
  const char *m = beit_last_error();
  int ok = rc == BEIT_ERR && strstr(m, path) && !strchr(m, '\n') && (!reason || strstr(m, reason));
  if (rc == BEIT_OK) beit_st_close(&st);
  printf("       -> %s\n", rc == BEIT_OK ? "(opened!)" : m);
  CHECK_TRUE(ok, "%s refused%s%s", label, reason ? " with: " : "", reason ? reason : "");
  return ok;
}

static void test_malformed_headers(void) {
  char path[512], name[96];
  for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
    const bad_case *c = &k_bad[i];
    snprintf(name, sizeof name, "%s.safetensors", c->file);
    fx(path, sizeof path, name);
    write_st(path, strlen(c->header), c->header, strlen(c->header), c->data);
    expect_refused(c->file, path, c->reason);
  }
}

/* A 95-byte name is the longest accepted; 96 bytes is refused. */
static void expect_name_limit(void) {
  char path[512], header[256], name[97];
  fx(path, sizeof path, "name_limit.safetensors");
  for (int len = 95; len <= 96; len++) {
    memset(name, 'n', (size_t)len);
    name[len] = 0;
    int h = snprintf(header, sizeof header, "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", name);
    write_st(path, (uint64_t)h, header, (size_t)h, 1);
    beit_safetensors st;
    if (len == 96) { expect_refused("96-byte name", path, "longer than 95 bytes"); continue; }
    int ok = beit_st_open(&st, path) == BEIT_OK;
    CHECK_TRUE(ok && beit_st_find(&st, name) == 0, "95-byte name accepted");
    if (ok) beit_st_close(&st);
  }
}

static void test_malformed_framing(void) {
  char path[512];
  fx(path, sizeof path, "bad_short.safetensors");
  write_bytes(path, "\x02\0\0\0\0", 5);
  expect_refused("5-byte file", path, "too short");
  fx(path, sizeof path, "bad_hlen_past_end.safetensors");
  write_st(path, 1000, "{}", 2, 8);
  expect_refused("header length past the end", path, "runs past the end of the file");
  fx(path, sizeof path, "bad_hlen_limit.safetensors");
  write_st(path, 200u << 20, "{}", 2, 0);
  expect_refused("200 MiB header length", path, "above the 100 MiB limit");
  write_st(path, UINT64_MAX, "{}", 2, 0);
  expect_refused("2^64-1 header length", path, "above the 100 MiB limit");
  fx(path, sizeof path, "bad_nul.safetensors");
  write_st(path, 8, "{}  \0   ", 8, 0);
  expect_refused("NUL inside the header", path, "NUL byte");
  fx(path, sizeof path, "bad_deep.safetensors");
  char deep[6001];
  memset(deep, '[', 6000);
  deep[6000] = 0;
  write_st(path, 6000, deep, 6000, 0);
  expect_refused("6000-deep nesting", path, "not valid JSON");
  expect_name_limit();
  fx(path, sizeof path, "does_not_exist.safetensors");
  remove(path);
  expect_refused("missing file", path, "cannot open");
  expect_refused("a directory", g_fx, NULL);
}

/* ---- (e, f) truncation and bit flips -------------------------------------------------- */
static int write_small_valid(const char *path) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1, 0.5f, 7};
  beit_st_tensor t[] = {{"blocks.0.attn.qkv.weight", 2, (int64_t[]){2, 3}, a}, {"e", 1, (int64_t[]){0}, NULL},
                        {"head.bias", 1, (int64_t[]){3}, b}};
  const char *meta[] = {"format", "pt", "epoch", "1"};
  return beit_st_write(path, t, 3, meta, 2);
}

static void test_truncation(const uint8_t *buf, size_t size) {
  char path[512];
  fx(path, sizeof path, "trunc.safetensors");
  size_t refused = 0, named = 0;
  for (size_t len = 0; len < size; len++) {
    beit_safetensors st;
    write_bytes(path, buf, len);
    if (beit_st_open(&st, path) == BEIT_OK) { beit_st_close(&st); continue; }
    refused++;
    named += strstr(beit_last_error(), path) != NULL;
  }
  CHECK_TRUE(refused == size && named == size, "all %zu truncations (0..%zu bytes) refused, each naming the file",
             size, size - 1);
}

/* After a successful open of a corrupted file, touch every tensor the way a user would. */
static void exercise(const beit_safetensors *st) {
  for (int i = 0; i < st->n; i++) {
    size_t n = beit_st_numel(&st->e[i]);
    void *x = malloc(n * 8 + 8);
    if (beit_st_read_f32(st, i, x, n) != BEIT_OK) beit_st_read_i64(st, i, x, n);
    free(x);
  }
  beit_params p;
  beit_params_init(&p);
  beit_params_add(&p, "blocks.0.attn.qkv.weight", 2, (int64_t[]){2, 3}, 0, 0);
  beit_params_add(&p, "head.bias", 1, (int64_t[]){3}, 0, 0);
  BEIT_CHECK(beit_params_alloc(&p) == BEIT_OK);
  beit_params_load_from(&p, st, 1);
  beit_params_free(&p);
}

static void test_bit_flips(const uint8_t *buf, size_t size) {
  char path[512];
  fx(path, sizeof path, "flipped.safetensors");
  uint8_t *copy = malloc(size);
  size_t hend = 8 + (size_t)buf[0] + ((size_t)buf[1] << 8);
  int loaded = 0, refused = 0, named = 0, trials = 400;
  beit_rng r;
  beit_rng_seed(&r, 99, BEIT_RNG_TEST, 1, 0);
  for (int k = 0; k < trials; k++) {
    memcpy(copy, buf, size);
    int flips = (int)beit_rng_randint(&r, 1, 3);
    for (int f = 0; f < flips; f++) {
      size_t at = beit_rng_uniform(&r) < 0.85 ? (size_t)beit_rng_randint(&r, 0, (int64_t)hend - 1)
                                               : (size_t)beit_rng_randint(&r, 0, (int64_t)size - 1);
      copy[at] ^= (uint8_t)(1u << beit_rng_randint(&r, 0, 7));
    }
    write_bytes(path, copy, size);
    beit_safetensors st;
    if (beit_st_open(&st, path) == BEIT_OK) { loaded++; exercise(&st); beit_st_close(&st); continue; }
    refused++;
    named += strstr(beit_last_error(), path) != NULL;
  }
  free(copy);
  CHECK_TRUE(loaded + refused == trials && named == refused,
             "%d seeded bit-flip trials: %d loaded, %d refused (all naming the file), none crashed", trials,
             loaded, refused);
}

static void test_corruption(void) {
  printf("(e, f) truncation and bit flips\n");
  char path[512];
  fx(path, sizeof path, "small.safetensors");
  uint8_t *buf;
  size_t size;
  if (write_small_valid(path) || beit_read_file(path, &buf, &size)) {
    CHECK_TRUE(0, "write small file: %s", beit_last_error());
    return;
  }
  beit_safetensors st;
  int ok = beit_st_open(&st, path) == BEIT_OK;
  CHECK_TRUE(ok, "the uncorrupted %zu-byte file opens", size);
  if (ok) beit_st_close(&st);
  test_truncation(buf, size);
  test_bit_flips(buf, size);
  beit_free(buf);
}

int main(void) {
  TEST_BEGIN("test_safetensors");
  g_fx = getenv("BEIT_TEST_FIXTURES") ? getenv("BEIT_TEST_FIXTURES") : "build/fixtures";
  g_root = getenv("BEIT_ROOT") ? getenv("BEIT_ROOT") : ".";
  if (beit_mkdir_p(g_fx) != BEIT_OK) printf("  cannot create %s: %s\n", g_fx, beit_last_error());
  test_roundtrip();
  test_load_errors();
  test_python_fixtures();
  test_c_to_python();
  test_writer_errors();
  printf("(d) malformed files\n");
  test_malformed_headers();
  test_malformed_framing();
  test_corruption();
  return TEST_END();
}
