/* test_backend.c - the backend table (src/backend/backend.h): every compiled
 * backend has every entry; the table lists every kernel of ops/ops.h; each kernel
 * of every backend gives what the CPU backend gives on the same inputs (uploaded
 * to the backend, the outputs downloaded); and the model walks call kernels only
 * through a table (no direct kernel call, OpenMP loop or BLAS call left in them). */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "test.h"

/* ---- the table is complete ---------------------------------------------------- */
#define NAME(ret, name, args) #name,
static const char *const kernel_names[] = {BEIT_BACKEND_KERNELS(NAME)};
#undef NAME
#define NKERNELS ((int)(sizeof kernel_names / sizeof *kernel_names))

static void test_complete(const beit_backend *be) {
  int missing = 0;
#define ENTRY(ret, fn, args) \
  if (!be->fn) printf("  %s: no %s\n", be->name ? be->name : "?", #fn), missing++;
  BEIT_BACKEND_MEMORY(ENTRY)
  BEIT_BACKEND_KERNELS(ENTRY)
#undef ENTRY
  CHECK_TRUE(be->name && missing == 0, "backend %s: every entry set (%d kernels + memory)", be->name, NKERNELS);
}

static char *read_source(const char *rel) {
  char path[1024];
  const char *root = getenv("BEIT_ROOT");
  TEST_PATHF(path, "%s/%s", root ? root : ".", rel);
  uint8_t *data = NULL;
  size_t n;
  if (beit_read_file(path, &data, &n) != BEIT_OK) {
    printf("  cannot read %s: %s\n", path, beit_last_error());
    return NULL;
  }
  return (char *)data;  /* NUL-terminated */
}

/* Blanks comments and preprocessor lines (keeps offsets). */
static void blank_comments(char *s) {
  for (char *p = s; *p; p++) {
    if (p[0] == '/' && p[1] == '*') {
      char *e = strstr(p + 2, "*/");
      char *end = e ? e + 2 : p + strlen(p);
      memset(p, ' ', (size_t)(end - p));
      p = end - 1;
    } else if (p[0] == '/' && p[1] == '/') {
      while (*p && *p != '\n') *p++ = ' ';
      if (!*p) break;
    }
  }
}

static int in_list(const char *name, const char *const *list, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(name, list[i])) return 1;
  return 0;
}

/* The functions ops.h declares: the identifier before the first '(' of every
 * top-level declaration. */
static int ops_functions(char *s, char names[][64], int cap) {
  blank_comments(s);
  int n = 0, depth = 0;
  char *stmt = s;
  for (char *p = s; *p; p++) {
    if (*p == '#') {  /* preprocessor line */
      while (*p && *p != '\n') *p++ = ' ';
      if (!*p) break;
    }
    if (*p == '{') depth++;
    if (*p == '}') depth--;
    if (*p != ';' || depth) continue;
    while (stmt < p && isspace((unsigned char)*stmt)) stmt++;
    char *paren = memchr(stmt, '(', (size_t)(p - stmt));
    if (paren && strncmp(stmt, "typedef", 7)) {
      char *e = paren;
      while (e > stmt && isspace((unsigned char)e[-1])) e--;
      char *b = e;
      while (b > stmt && (isalnum((unsigned char)b[-1]) || b[-1] == '_')) b--;
      if (e > b && n < cap && e - b < 64) memcpy(names[n], b, (size_t)(e - b)), names[n][e - b] = 0, n++;
    }
    stmt = p + 1;
  }
  return n;
}

static void test_matches_ops_h(void) {
  static const char *const shape_only[] = {"relpos_table_rows", "conv2d_out_h", "conv2d_out_w"};
  static char names[256][64];
  char *s = read_source("src/ops/ops.h");
  if (!s) { CHECK_TRUE(0, "src/ops/ops.h readable"); return; }
  int n = ops_functions(s, names, 256), absent = 0, extra = 0;
  beit_free(s);
  for (int i = 0; i < n; i++)
    if (!in_list(names[i], shape_only, 3) && !in_list(names[i], kernel_names, NKERNELS))
      printf("  ops.h declares %s, the backend table has no entry for it\n", names[i]), absent++;
  for (int k = 0; k < NKERNELS; k++) {
    int found = 0;
    for (int i = 0; i < n; i++) found |= !strcmp(names[i], kernel_names[k]);
    if (!found) printf("  the table has %s, ops.h does not declare it\n", kernel_names[k]), extra++;
  }
  CHECK_TRUE(n > 0 && !absent && !extra, "the table and ops.h list the same %d kernels (%d functions, 3 shape-only)",
             NKERNELS, n);
}

/* The walks: a kernel is called as be->name(...), never as name(...). */
static void check_walk(const char *rel) {
  char *s = read_source(rel);
  if (!s) { CHECK_TRUE(0, "%s readable", rel); return; }
  int direct = 0, omp = strstr(s, "#pragma omp") != NULL, blas = strstr(s, "cblas_") != NULL;
  blank_comments(s);
  for (int k = 0; k < NKERNELS; k++) {
    size_t len = strlen(kernel_names[k]);
    for (char *p = strstr(s, kernel_names[k]); p; p = strstr(p + len, kernel_names[k])) {
      char before = p > s ? p[-1] : ' ';
      const char *q = p + len;
      while (*q == ' ') q++;
      if (*q != '(' || isalnum((unsigned char)before) || before == '_' || before == '>' || before == '.') continue;
      printf("  %s calls %s directly\n", rel, kernel_names[k]);
      direct++;
    }
  }
  CHECK_TRUE(!direct && !omp && !blas, "%s: kernels only through the backend table (%d direct calls%s%s)", rel, direct,
             omp ? ", an OpenMP loop" : "", blas ? ", a BLAS call" : "");
  beit_free(s);
}

/* every file of src/model, and the optimizer with its gradient clipping */
static void test_walks_use_the_table(void) {
  char dir[1024], rel[1200];
  const char *root = getenv("BEIT_ROOT");
  TEST_PATHF(dir, "%s/src/model", root ? root : ".");
  DIR *d = opendir(dir);
  int files = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (n < 3 || strcmp(e->d_name + n - 2, ".c")) continue;
    TEST_PATHF(rel, "src/model/%s", e->d_name);
    check_walk(rel);
    files++;
  }
  if (d) closedir(d);
  CHECK_TRUE(files >= 3, "%d model files checked in %s", files, dir);
  check_walk("src/train/optim.c");
}

/* ---- every kernel against the CPU ----------------------------------------------
 * A case runs one kernel on a backend: inputs are drawn from a fixed sequence and
 * uploaded, outputs (which start from drawn values too, for the kernels that
 * accumulate) are downloaded after the call. Running the same case on two
 * backends draws the same inputs, so their outputs must agree. */
enum { F32, I32, U8, F64 };
typedef struct {
  const beit_backend *be;
  uint64_t state;
  int nout, nret, nbuf;
  struct { void *dev; size_t bytes; int kind; } out[8];
  void *buf[24];
  double ret[2];
} run_ctx;

typedef struct { void *host[8]; size_t bytes[8]; int kind[8], nout, nret; double ret[2]; } run_result;

static double draw(run_ctx *r) {  /* uniform [0, 1) */
  r->state = r->state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(r->state >> 11) * 0x1.0p-53;
}

static void *dev(run_ctx *r, const void *host, size_t bytes) {
  void *d = r->be->alloc(bytes ? bytes : 1, "test buffer");
  BEIT_CHECK(d && r->nbuf < 24);
  r->buf[r->nbuf++] = d;
  if (host && bytes) r->be->upload(d, host, bytes);
  return d;
}

/* floats in [lo, hi) */
static float *f32(run_ctx *r, size_t n, double lo, double hi) {
  float *h = malloc(n * sizeof(float) + 1);
  for (size_t i = 0; i < n; i++) h[i] = (float)(lo + (hi - lo) * draw(r));
  float *d = dev(r, h, n * sizeof(float));
  free(h);
  return d;
}
static float *in(run_ctx *r, size_t n) { return f32(r, n, -2, 2); }
static float *pos(run_ctx *r, size_t n) { return f32(r, n, 0.05, 1); }

static int32_t *ints(run_ctx *r, size_t n, int lo, int hi) {
  int32_t *h = malloc(n * sizeof(int32_t) + 1);
  for (size_t i = 0; i < n; i++) h[i] = lo + (int32_t)(draw(r) * (hi - lo + 1));
  int32_t *d = dev(r, h, n * sizeof(int32_t));
  free(h);
  return d;
}

static uint8_t *bytes(run_ctx *r, size_t n, int hi) {
  uint8_t *h = malloc(n + 1);
  for (size_t i = 0; i < n; i++) h[i] = (uint8_t)(draw(r) * (hi + 1));
  uint8_t *d = dev(r, h, n);
  free(h);
  return d;
}

static void *output(run_ctx *r, void *d, size_t bytes, int kind) {
  BEIT_CHECK(r->nout < 8);
  r->out[r->nout].dev = d, r->out[r->nout].bytes = bytes, r->out[r->nout].kind = kind;
  r->nout++;
  return d;
}
static float *out(run_ctx *r, size_t n) { return output(r, in(r, n), n * sizeof(float), F32); }
static float *out_pos(run_ctx *r, size_t n) { return output(r, pos(r, n), n * sizeof(float), F32); }
static int32_t *out_i32(run_ctx *r, size_t n) { return output(r, ints(r, n, 0, 9), n * sizeof(int32_t), I32); }
static double *out_f64(run_ctx *r, size_t n) {
  double *h = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) h[i] = 10 * draw(r);
  double *d = output(r, dev(r, h, n * sizeof(double)), n * sizeof(double), F64);
  free(h);
  return d;
}
static void ret(run_ctx *r, double v) { r->ret[r->nret++] = v; }

enum { M = 7, C = 8, OC = 5, K = 6, B = 2, N = 5, H = 2, Np = N - 1, V = 5, HW = 6 };
static const conv2d_dims conv = {2, 3, 6, 5, 4, 3, 2, 1, 1};

#define CASE(name) static void case_##name(run_ctx *r, const beit_backend *be)
CASE(gemm) { be->gemm(0, 1, M, OC, C, 1.5f, in(r, M * C), C, in(r, OC * C), C, 0.5f, out(r, M * OC), OC); }
CASE(column_sums_add) { be->column_sums_add(out(r, C), in(r, M * C), M, C); }
CASE(linear_forward) { be->linear_forward(out(r, M * OC), in(r, M * C), in(r, OC * C), in(r, OC), M, C, OC); }
CASE(linear_backward) {
  be->linear_backward(out(r, M * C), out(r, OC * C), out(r, OC), in(r, M * OC), in(r, M * C), in(r, OC * C), M, C, OC);
}
CASE(layernorm_forward) {
  be->layernorm_forward(out(r, M * C), out(r, M), out(r, M), in(r, M * C), in(r, C), in(r, C), M, C, 1e-5f);
}
CASE(layernorm_backward) {
  be->layernorm_backward(out(r, M * C), out(r, C), out(r, C), in(r, M * C), in(r, M * C), in(r, C), in(r, M),
                         pos(r, M), M, C);
}
CASE(gelu_forward) { be->gelu_forward(out(r, M * C), in(r, M * C), M * C); }
CASE(gelu_backward) { be->gelu_backward(out(r, M * C), in(r, M * C), in(r, M * C), M * C); }
CASE(gelu_forward_deriv) { be->gelu_forward_deriv(out(r, M * C), out(r, M * C), in(r, M * C), M * C); }
CASE(gelu_backward_deriv) { be->gelu_backward_deriv(out(r, M * C), in(r, M * C), in(r, M * C), M * C); }
CASE(relpos_build_index) { be->relpos_build_index(out_i32(r, 10 * 10), 3, 3); }
CASE(relpos_bias_forward) { be->relpos_bias_forward(out(r, H * N * N), in(r, 19 * H), ints(r, N * N, 0, 18), N, H); }
CASE(relpos_bias_backward) { be->relpos_bias_backward(out(r, 19 * H), in(r, H * N * N), ints(r, N * N, 0, 18), N, H); }
CASE(attention_forward) {
  be->attention_forward(out(r, B * N * C), out(r, B * H * N * N), in(r, B * N * 3 * C), in(r, H * N * N), B, N, C, H);
}
CASE(attention_backward) {
  be->attention_backward(out(r, B * N * 3 * C), out(r, H * N * N), out(r, B * H * N * N), in(r, B * N * C),
                         in(r, B * N * 3 * C), pos(r, B * H * N * N), B, N, C, H);
}
CASE(residual_forward) {
  be->residual_forward(out(r, B * N * C), in(r, B * N * C), in(r, B * N * C), in(r, C), pos(r, B), B, N, C);
}
CASE(residual_backward) {
  be->residual_backward(out(r, B * N * C), out(r, B * N * C), out(r, C), in(r, B * N * C), in(r, B * N * C), in(r, C),
                        pos(r, B), B, N, C);
}
CASE(patchify) { be->patchify(out(r, B * 9 * 3 * 4), in(r, B * 3 * 36), B, 3, 6, 2); }
CASE(embed_forward) {
  be->embed_forward(out(r, B * N * C), in(r, B * Np * C), bytes(r, B * Np, 1), in(r, C), in(r, C), B, N, C);
}
CASE(embed_backward) {
  be->embed_backward(out(r, B * Np * C), out(r, C), out(r, C), in(r, B * N * C), bytes(r, B * Np, 1), B, N, C);
}
CASE(mean_pool_forward) { be->mean_pool_forward(out(r, B * C), in(r, B * N * C), B, N, C, 1); }
CASE(mean_pool_backward) { be->mean_pool_backward(out(r, B * N * C), in(r, B * C), B, N, C, 1); }
CASE(gather_rows) { be->gather_rows(out(r, 4 * C), in(r, M * C), ints(r, 4, 0, M - 1), 4, C); }
CASE(scatter_add_rows) {
  int32_t rows[4] = {5, 0, 3, 6};  /* distinct, as the kernel requires */
  be->scatter_add_rows(out(r, M * C), in(r, 4 * C), dev(r, rows, sizeof rows), 4, C);
}
CASE(softmax_xent_forward) {
  ret(r, be->softmax_xent_forward(out(r, M * K), in(r, M * K), ints(r, M, 0, K - 1), M, K));
}
CASE(softmax_xent_loss) { ret(r, be->softmax_xent_loss(in(r, M * K), ints(r, M, 0, K - 1), M, K)); }
CASE(softmax_xent_backward) {
  be->softmax_xent_backward(out(r, M * K), pos(r, M * K), ints(r, M, 0, K - 1), M, K, 0.7f);
}
CASE(soft_xent_forward) { ret(r, be->soft_xent_forward(out(r, M * K), in(r, M * K), pos(r, M * K), M, K)); }
CASE(soft_xent_backward) { be->soft_xent_backward(out(r, M * K), pos(r, M * K), pos(r, M * K), M, K, 0.7f); }
CASE(smooth_targets) { be->smooth_targets(out(r, M * K), ints(r, M, 0, K - 1), M, K, 0.1f); }
CASE(logits_rank) { ret(r, be->logits_rank(in(r, K), K, 2)); }
CASE(logits_top1) { ret(r, be->logits_top1(in(r, K), K)); }
CASE(mse_forward) { ret(r, be->mse_forward(in(r, M * C), in(r, M * C), M * C)); }
CASE(mse_backward) { be->mse_backward(out(r, M * C), in(r, M * C), in(r, M * C), M * C, 0.5f); }
CASE(adamw_update) {
  be->adamw_update(out(r, M * C), in(r, M * C), out(r, M * C), out_pos(r, M * C), M * C, 1e-3f, 0.9f, 0.999f, 1e-8f,
                   0.05f, 3);
}
CASE(sum_squares) { ret(r, be->sum_squares(in(r, M * C), M * C)); }
CASE(scale_inplace) { be->scale_inplace(out(r, M * C), M * C, 0.3f); }
CASE(conv2d_scratch_floats) { ret(r, (double)be->conv2d_scratch_floats(&conv)); }
static size_t conv_out(void) { return (size_t)conv.B * conv.OC * conv2d_out_h(&conv) * conv2d_out_w(&conv); }
static size_t conv_in(void) { return (size_t)conv.B * conv.IC * conv.H * conv.W; }
static size_t conv_w(void) { return (size_t)conv.OC * conv.IC * conv.K * conv.K; }
CASE(conv2d_forward) {
  float *scratch = dev(r, NULL, be->conv2d_scratch_floats(&conv) * sizeof(float));
  be->conv2d_forward(out(r, conv_out()), scratch, in(r, conv_in()), in(r, conv_w()), in(r, conv.OC), &conv);
}
CASE(conv2d_backward) {
  float *scratch = dev(r, NULL, be->conv2d_scratch_floats(&conv) * sizeof(float));
  be->conv2d_backward(out(r, conv_in()), out(r, conv_w()), out(r, conv.OC), scratch, in(r, conv_out()),
                      in(r, conv_in()), in(r, conv_w()), &conv);
}
CASE(maxpool2x2_forward) {
  uint8_t *argmax = output(r, bytes(r, B * 3 * 4, 3), B * 3 * 4, U8);
  be->maxpool2x2_forward(out(r, B * 3 * 2 * 2), argmax, in(r, B * 3 * 5 * 4), B, 3, 5, 4);
}
CASE(maxpool2x2_backward) {
  be->maxpool2x2_backward(out(r, B * 3 * 5 * 4), in(r, B * 3 * 4), bytes(r, B * 3 * 4, 3), B, 3, 5, 4);
}
CASE(upsample2x_forward) { be->upsample2x_forward(out(r, B * 3 * 6 * 4), in(r, B * 3 * 3 * 2), B, 3, 3, 2); }
CASE(upsample2x_backward) { be->upsample2x_backward(out(r, B * 3 * 3 * 2), in(r, B * 3 * 6 * 4), B, 3, 3, 2); }
CASE(relu_forward) { be->relu_forward(out(r, M * C), in(r, M * C), M * C); }
CASE(relu_backward) { be->relu_backward(out(r, M * C), in(r, M * C), in(r, M * C), M * C); }
CASE(qkv_bias_forward) { be->qkv_bias_forward(out(r, 3 * C), in(r, C), in(r, C), C); }
CASE(qkv_bias_backward) { be->qkv_bias_backward(out(r, C), out(r, C), in(r, 3 * C), C); }
CASE(pos_embed_forward) { be->pos_embed_forward(out(r, B * N * C), in(r, N * C), B, N, C); }
CASE(pos_embed_backward) { be->pos_embed_backward(out(r, N * C), in(r, B * N * C), B, N, C); }
CASE(masked_rows) {
  ret(r, be->masked_rows(out_i32(r, B * Np), out_i32(r, B * Np), out_i32(r, B * Np), bytes(r, B * Np, 1),
                         ints(r, B * Np, 0, 99), B, Np));
}
CASE(token_rows) { be->token_rows(out_i32(r, B), B, N, 1); }
CASE(top1_correct) { ret(r, (double)be->top1_correct(in(r, M * K), ints(r, M, 0, K - 1), M, K)); }
CASE(axpy) { be->axpy(out(r, M * C), in(r, M * C), 0.4f, M * C); }
CASE(map_pixels) { be->map_pixels(out(r, M * C), pos(r, M * C), M * C, 0.1f); }
CASE(unmap_pixels) { be->unmap_pixels(out(r, B * 3 * HW), in(r, B * 6 * HW), B, 3, HW, 0.1f); }
CASE(argmax_channels) { be->argmax_channels(out_i32(r, B * HW), in(r, B * V * HW), B, V, HW); }
CASE(one_hot_codes) { be->one_hot_codes(out(r, B * V * HW), ints(r, B * HW, 0, V - 1), B, V, HW); }
CASE(gumbel_noise) { be->gumbel_noise(out(r, B * 17), B, 17, 5, 9, 1, 2); }
CASE(gumbel_softmax_forward) {
  ret(r, be->gumbel_softmax_forward(out(r, B * V * HW), out(r, B * V * HW), in(r, B * V * HW), in(r, B * V * HW), B, V,
                                    HW, 0.8f));
}
CASE(gumbel_softmax_backward) {
  be->gumbel_softmax_backward(out(r, B * V * HW), in(r, B * V * HW), pos(r, B * V * HW), pos(r, B * V * HW),
                              in(r, B * V * HW), B, V, HW, 0.8f, 0.2f);
}
CASE(code_perplexity) { ret(r, be->code_perplexity(pos(r, B * V * HW), B, V, HW)); }
CASE(code_mean) { be->code_mean(out(r, V), pos(r, B * V * HW), B, V, HW); }
CASE(code_usage_kl_backward) {
  be->code_usage_kl_backward(out(r, B * V * HW), pos(r, B * V * HW), pos(r, V), B, V, HW, 0.3f);
}
CASE(distinct_codes) { ret(r, be->distinct_codes(dev(r, NULL, V), ints(r, 11, 0, V - 1), 11, V)); }
CASE(recon_loss_forward) {
  ret(r, be->recon_loss_forward(out(r, B * 6 * HW), f32(r, B * 3 * HW, 0.1, 0.9), in(r, B * 6 * HW), B, 3, HW, 1));
}
CASE(row_sum_squares) { be->row_sum_squares(out(r, M), in(r, M * C), M, C); }
CASE(row_standardize) { be->row_standardize(out(r, M * C), M, C, 0.01f); }
CASE(nearest_centroid) {
  be->nearest_centroid(out_i32(r, M), out(r, M), in(r, M * C), M, C, in(r, M * K), pos(r, K), in(r, K * C), K);
}
CASE(lower_dist2) { be->lower_dist2(out_f64(r, M), in(r, M * C), M, C, in(r, C)); }
CASE(sum_f64) { ret(r, be->sum_f64(out_f64(r, M), M)); }
CASE(centroid_means) {
  size_t order[M] = {3, 0, 6, 1, 5, 2, 4}, start[K + 1] = {0, 2, 2, 5, 6, 7, 7};  /* clusters 1 and 5 empty */
  be->centroid_means(out(r, K * C), in(r, M * C), dev(r, order, sizeof order), dev(r, start, sizeof start), K, C);
}
CASE(unpatchify) { be->unpatchify(out(r, B * 3 * 36), in(r, B * 9 * 12), ints(r, B * 9, 0, B * 9 - 1), B, 3, 6, 2); }
CASE(vq_maps_to_rows) { be->vq_maps_to_rows(out(r, B * C * HW), in(r, B * C * HW), B, C, HW); }
CASE(vq_rows_to_maps) { be->vq_rows_to_maps(out(r, B * C * HW), in(r, B * C * HW), B, C, HW); }
CASE(vq_l2_normalize) { be->vq_l2_normalize(out(r, M * C), out(r, M), in(r, M * C), M, C); }
CASE(vq_l2_normalize_backward) {
  be->vq_l2_normalize_backward(out(r, M * C), in(r, M * C), in(r, M * C), pos(r, M), M, C);
}
CASE(vq_cosine_lookup) { be->vq_cosine_lookup(out_i32(r, M), out(r, M), in(r, M * C), in(r, K * C), M, C, K); }
CASE(vq_ema_update) {
  be->vq_ema_update(out(r, K * C), out_pos(r, K), out(r, K * C), in(r, M * C), ints(r, M, 0, K - 1), M, C, K, 0.9f);
}
CASE(vq_restart_dead) {
  uint32_t pick[K] = {3, 0, 6, 1, 5, 2};
  ret(r, be->vq_restart_dead(out(r, K * C), out_pos(r, K), out(r, K * C), in(r, M * C), dev(r, pick, sizeof pick), C, K,
                             0.5f));
}
CASE(vq_commitment) { ret(r, be->vq_commitment(out(r, M * C), in(r, M * C), in(r, M * C), M, C, 0.25f)); }
#undef CASE

typedef struct { const char *name; void (*run)(run_ctx *, const beit_backend *); } kernel_case;
#define CASE_ENTRY(ret, name, args) {#name, case_##name},
static const kernel_case cases[] = {BEIT_BACKEND_KERNELS(CASE_ENTRY)};
#undef CASE_ENTRY

static run_result run_case(const kernel_case *kc, const beit_backend *be) {
  run_ctx r = {.be = be, .state = 0x5eed};
  kc->run(&r, be);
  run_result res = {.nout = r.nout, .nret = r.nret};
  for (int i = 0; i < r.nout; i++) {
    res.host[i] = malloc(r.out[i].bytes + 1);
    be->download(res.host[i], r.out[i].dev, r.out[i].bytes);
    res.bytes[i] = r.out[i].bytes, res.kind[i] = r.out[i].kind;
  }
  memcpy(res.ret, r.ret, sizeof r.ret);
  for (int i = 0; i < r.nbuf; i++) be->free(r.buf[i]);
  return res;
}

/* |a - b| <= 1e-5 + 1e-4 |b| for floats; integers and bytes exactly */
static int agree(const run_result *a, const run_result *b, double *worst) {
  int ok = a->nout == b->nout && a->nret == b->nret;
  for (int i = 0; ok && i < a->nout; i++) {
    size_t n = a->bytes[i] / (a->kind[i] == F32 ? 4 : a->kind[i] == F64 ? 8 : 1);
    if (a->kind[i] == I32 || a->kind[i] == U8) {
      ok &= !memcmp(a->host[i], b->host[i], a->bytes[i]);
      continue;
    }
    for (size_t k = 0; k < n; k++) {
      double x = a->kind[i] == F32 ? ((float *)a->host[i])[k] : ((double *)a->host[i])[k];
      double y = a->kind[i] == F32 ? ((float *)b->host[i])[k] : ((double *)b->host[i])[k];
      double err = fabs(x - y) / (1e-5 + 1e-4 * fabs(y));
      if (!(err <= 1) && !(isnan(x) && isnan(y))) ok = 0;
      if (err > *worst) *worst = err;
    }
  }
  for (int i = 0; ok && i < a->nret; i++) ok &= fabs(a->ret[i] - b->ret[i]) <= 1e-5 + 1e-4 * fabs(b->ret[i]);
  return ok;
}

static void free_result(run_result *r) {
  for (int i = 0; i < r->nout; i++) free(r->host[i]);
}

static void test_against_cpu(const beit_backend *be) {
  const beit_backend *cpu = beit_backend_cpu();
  int bad = 0, empty = 0;
  double worst = 0;
  const char *worst_at = "-";
  for (int k = 0; k < NKERNELS; k++) {
    run_result want = run_case(&cases[k], cpu), got = run_case(&cases[k], be);
    double w = 0;
    if (!agree(&got, &want, &w)) printf("  %s: %s differs from the CPU\n", be->name, cases[k].name), bad++;
    if (w > worst) worst = w, worst_at = cases[k].name;
    if (!want.nout && !want.nret) printf("  %s: its case compares nothing\n", cases[k].name), empty++;
    free_result(&want), free_result(&got);
  }
  CHECK_TRUE(!bad && !empty, "backend %s: all %d kernels agree with the CPU's (worst: %s, %.3g of the tolerance)",
             be->name, NKERNELS, worst_at, worst);
}

/* A kernel whose outputs the CPU computes twice the same way: the comparison must
 * be able to fail, so a deliberately wrong table must be caught. */
static void wrong_gelu(float *o, const float *x, size_t n) {
  beit_backend_cpu()->gelu_forward(o, x, n);
  o[n / 2] += 1e-3f;
}

static void test_comparison_can_fail(void) {
  beit_backend wrong = *beit_backend_cpu();
  wrong.name = "wrong-gelu";
  wrong.gelu_forward = wrong_gelu;
  double worst = 0;
  for (int k = 0; k < NKERNELS; k++)
    if (!strcmp(cases[k].name, "gelu_forward")) {
      run_result want = run_case(&cases[k], beit_backend_cpu()), got = run_case(&cases[k], &wrong);
      CHECK_TRUE(!agree(&got, &want, &worst), "a backend whose gelu_forward is off by 1e-3 is caught");
      free_result(&want), free_result(&got);
    }
}

int main(void) {
  TEST_BEGIN("test_backend");
  beit_set_threads(2);
  for (int i = 0; beit_backend_at(i); i++) {
    test_complete(beit_backend_at(i));
    test_against_cpu(beit_backend_at(i));
  }
  CHECK_TRUE(beit_backend_at(0) == beit_backend_cpu() && beit_backend_default() != NULL,
             "the CPU is the first compiled backend; the default is %s", beit_backend_default()->name);
  test_comparison_can_fail();
  test_matches_ops_h();
  test_walks_use_the_table();
  return TEST_END();
}
