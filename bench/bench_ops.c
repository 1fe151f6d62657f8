/* bench_ops.c - the element-wise kernels of a BEiT step on every vector ISA path
 * this CPU runs (src/ops/simd.h), in ns per element and GB/s of the arrays they
 * read and write, on the shapes of the tiny pretraining step (batch 64, 50 tokens,
 * width 192, MLP 768, 20 masked patches per image, vocabulary 8192).
 * Best of the repeats (in CPU time with one thread), so the other load of a shared machine
 * inflates it least.
 * Then attention, the fused kernels (on every ISA, though only AVX-512 uses them by default) and
 * the sgemm path, on the shapes of tiny, mini (32 px) and BEiT-B.
 * usage: bench_ops [threads (1)] [seconds per kernel and ISA (0.3)] [kernel name prefix] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "ops/ops.h"
#include "ops/simd.h" /* attention_fused_set */

enum { M = 64 * 50, C = 192, F = 768, ROWS = 64 * 20, VOCAB = 8192 };
#define NPARAM ((size_t)5600000) /* about the tiny model's parameters */

typedef struct {
  float *x, *y, *dy, *dx, *w, *b, *mean, *rstd, *dw, *db, *logits, *p, *g, *m, *v;
  int32_t *target;
} bufs;

static float *array(size_t n, float scale, uint64_t key) {
  float *a = beit_alloc(n * sizeof(float), "bench array");
  if (!a) {
    fprintf(stderr, "bench_ops: %s\n", beit_last_error());
    exit(1);
  }
  beit_rng r;
  beit_rng_seed(&r, 5, BEIT_RNG_TEST, key, 0);
  for (size_t i = 0; i < n; i++) a[i] = scale * (float)beit_rng_normal(&r);
  return a;
}

/* One kernel: what it runs, how many elements, how many bytes it moves per element. */
typedef struct {
  const char *name, *shape;
  double elems, bytes_per_elem;
  void (*run)(bufs *b);
} kernel;

static void k_gelu_fwd(bufs *b) { gelu_forward(b->y, b->x, (size_t)M * F); }
static void k_gelu_bwd(bufs *b) { gelu_backward(b->dx, b->dy, b->x, (size_t)M * F); }
static void k_ln_fwd(bufs *b) { layernorm_forward(b->y, b->mean, b->rstd, b->x, b->w, b->b, M, C, 1e-6f); }
static void k_ln_bwd(bufs *b) {
  layernorm_backward(b->dx, b->dw, b->db, b->dy, b->x, b->w, b->mean, b->rstd, M, C);
}
static void k_xent_loss(bufs *b) { softmax_xent_loss(b->logits, b->target, ROWS, VOCAB); }
static void k_xent_probs(bufs *b) { softmax_xent_forward(b->p, b->logits, b->target, ROWS, VOCAB); }
static void k_adamw(bufs *b) { adamw_update(b->p, b->g, b->m, b->v, NPARAM, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, 10); }

/* The backward pass's GELU as main ran it (recompute, zero, gelu_backward) and fused
 * (gelu_forward_deriv, gelu_backward_deriv in place); fc1 in y, its GELU in p, the gradient in dy. */
static void k_gelu_back_unfused(bufs *b) {
  gelu_forward(b->p, b->y, (size_t)M * F);
  memset(b->dx, 0, (size_t)M * F * sizeof(float));
  gelu_backward(b->dx, b->dy, b->y, (size_t)M * F);
}
static void k_gelu_back_fused(bufs *b) {
  gelu_forward_deriv(b->p, b->dx, b->y, (size_t)M * F);
  gelu_backward_deriv(b->dx, b->dy, b->dx, (size_t)M * F);
}

/* Attention (attention.c) on the presets' shapes, the fused kernels and the sgemm path they
 * replace: forward, and backward with the bias gradient (after one forward for the probabilities).
 * Per element of the scores (B x H x N x N); bytes: the probabilities written (forward), read and
 * the logit gradient written (backward). */
typedef struct { int B, N, C, H; float *qkv, *bias, *out, *att, *dout, *dqkv, *datt, *dbias; } att_case;
static att_case ATT[3] = {{64, 50, 192, 3}, {64, 65, 96, 3}, {8, 197, 768, 12}}; /* tiny 28 px, mini 32 px, BEiT-B */

static void att_prepare(att_case *a) {
  size_t nq = (size_t)a->B * a->N * 3 * a->C, no = (size_t)a->B * a->N * a->C;
  size_t na = (size_t)a->B * a->H * a->N * a->N, nb = (size_t)a->H * a->N * a->N;
  if (a->qkv) return;
  a->qkv = array(nq, 1, 40), a->bias = array(nb, 0.5f, 41), a->out = array(no, 0, 42), a->att = array(na, 0, 43);
  a->dout = array(no, 1, 44), a->dqkv = array(nq, 0, 45), a->datt = array(na, 0, 46), a->dbias = array(nb, 0, 47);
  attention_forward(a->out, a->att, a->qkv, a->bias, a->B, a->N, a->C, a->H);
}
static void att_fwd(att_case *a, int fused) {
  att_prepare(a);
  attention_fused_set(2 * fused);
  attention_forward(a->out, a->att, a->qkv, a->bias, a->B, a->N, a->C, a->H);
  attention_fused_set(1);
}
static void att_bwd(att_case *a, int fused) {
  att_prepare(a);
  attention_fused_set(2 * fused);
  attention_backward(a->dqkv, a->dbias, a->datt, a->dout, a->qkv, a->att, a->B, a->N, a->C, a->H);
  attention_fused_set(1);
}
#define ATT_RUNS(i)                                                    \
  static void k_att_fwd_fused_##i(bufs *b) { (void)b, att_fwd(&ATT[i], 1); } \
  static void k_att_fwd_sgemm_##i(bufs *b) { (void)b, att_fwd(&ATT[i], 0); } \
  static void k_att_bwd_fused_##i(bufs *b) { (void)b, att_bwd(&ATT[i], 1); } \
  static void k_att_bwd_sgemm_##i(bufs *b) { (void)b, att_bwd(&ATT[i], 0); }
ATT_RUNS(0)
ATT_RUNS(1)
ATT_RUNS(2)
#define ATT_ROWS(i, shape, elems)                                           \
  {"attention fwd, sgemm", shape, elems, 4, k_att_fwd_sgemm_##i},           \
  {"attention fwd, fused", shape, elems, 4, k_att_fwd_fused_##i},           \
  {"attention bwd, sgemm", shape, elems, 8, k_att_bwd_sgemm_##i},           \
  {"attention bwd, fused", shape, elems, 8, k_att_bwd_fused_##i}

static const kernel KERNELS[] = {
    {"gelu bwd+recompute, main", "3200 x 768", (double)M * F, 24, k_gelu_back_unfused},
    {"gelu bwd+recompute, fused", "3200 x 768", (double)M * F, 20, k_gelu_back_fused},
    {"gelu forward", "3200 x 768", (double)M * F, 8, k_gelu_fwd},
    {"gelu backward", "3200 x 768", (double)M * F, 16, k_gelu_bwd},
    {"layernorm forward", "3200 x 192", (double)M * C, 8, k_ln_fwd},
    {"layernorm backward", "3200 x 192", (double)M * C, 16, k_ln_bwd},
    {"cross-entropy loss", "1280 x 8192", (double)ROWS * VOCAB, 4, k_xent_loss},
    {"softmax + loss", "1280 x 8192", (double)ROWS * VOCAB, 8, k_xent_probs},
    {"AdamW", "5.6 M", (double)NPARAM, 28, k_adamw},
    ATT_ROWS(0, "64x3 N50 D64", 64.0 * 3 * 50 * 50),
    ATT_ROWS(1, "64x3 N65 D32", 64.0 * 3 * 65 * 65),
    ATT_ROWS(2, "8x12 N197 D64", 8.0 * 12 * 197 * 197),
};
enum { NK = sizeof KERNELS / sizeof KERNELS[0] };

/* The process's CPU seconds: with one thread, time the other load of a shared machine
 * takes from us does not count. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Best seconds per call over `seconds` of repeats (at least 3): CPU seconds with one
 * thread, wall seconds with more. */
static double best_time(const kernel *k, bufs *b, double seconds, int threads) {
  k->run(b);  /* warm up: page faults, caches */
  double best = 1e30, t_end = beit_now() + seconds;
  for (int r = 0; r < 3 || beit_now() < t_end; r++) {
    double t0 = threads == 1 ? cpu_now() : beit_now();
    k->run(b);
    double dt = (threads == 1 ? cpu_now() : beit_now()) - t0;
    if (dt < best) best = dt;
  }
  return best;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  double seconds = argc > 2 ? atof(argv[2]) : 0.3;
  beit_set_threads(threads);
  size_t big = (size_t)M * F > NPARAM ? (size_t)M * F : NPARAM;
  bufs b = {array(big, 2, 1), array(big, 1, 2), array(big, 1, 3), array(big, 0, 4), array(C, 1, 5),
            array(C, 1, 6), array(M, 0, 7), array(M, 0, 8), array(C, 0, 9), array(C, 0, 10),
            array((size_t)ROWS * VOCAB, 3, 12), array(big, 0.1f, 13),
            array(NPARAM, 1, 14), array(NPARAM, 0, 15), array(NPARAM, 0, 16), calloc(ROWS, sizeof(int32_t))};
  for (size_t i = 0; i < NPARAM; i++) b.v[i] = b.g[i] * b.g[i];
  printf("bench_ops: %d thread%s, best of %.1f s per kernel; ns per element (GB/s of the arrays read and written)\n",
         threads, threads == 1 ? "" : "s", seconds);
  printf("%-26s %-15s", "kernel", "shape");
  for (int i = 0; i < BEIT_ISA_COUNT; i++)
    if (beit_isa_supported((beit_isa)i)) printf(" %18s", beit_isa_name((beit_isa)i));
  printf("\n");
  const char *only = argc > 3 ? argv[3] : "";
  for (int k = 0; k < NK; k++) {
    if (strncmp(KERNELS[k].name, only, strlen(only))) continue;
    printf("%-26s %-15s", KERNELS[k].name, KERNELS[k].shape);
    for (int i = 0; i < BEIT_ISA_COUNT; i++) {
      if (beit_isa_set((beit_isa)i) != BEIT_OK) continue;
      double t = best_time(&KERNELS[k], &b, seconds, threads), ns = 1e9 * t / KERNELS[k].elems;
      printf(" %8.3f (%5.1f GB/s)", ns, KERNELS[k].bytes_per_elem / ns);
      fflush(stdout);
    }
    printf("\n");
  }
  return 0;
}
