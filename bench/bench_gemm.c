/* bench_gemm.c - sgemm libraries on the model's own GEMM shapes (issue 16, the GEMM-library item).
 *
 * Libraries: OpenBLAS (its OpenMP and its pthread build), BLIS (OpenMP build), all three through
 * dlopen(RTLD_LOCAL | RTLD_DEEPBIND) of their .so because they export the same cblas symbols;
 * oneDNN (dnnl_sgemm, row-major; and its matmul primitive, "onednn-mm") and libxsmm (JIT kernels over tiles of the matrices, our code:
 * its libxsmm_sgemm hands anything but small matrices to the BLAS it is linked with) when the build
 * found them. Modes: "own N" = the library's own threading with N threads; "split N" = gemm()'s
 * scheme of src/ops/linear.c (each of N OpenMP threads one block of rows, the library single-
 * threaded). The attention products (per image and head, N x N x D) run "own 1" and "heads N" (N
 * threads share a batch of independent per-head calls, as attention.c does).
 *
 * Shapes: every linear layer of a block (qkv, proj, fc1, fc2) and the MIM head, each as its three
 * products: forward Y[M,OC] = X[M,C] W[OC,C]^T, dX[M,C] += dY W, dW[OC,C] += dY^T X (beta 1), for
 * the workloads of bench/run.sh. alpha is 1 everywhere (libxsmm's JIT kernels take no other).
 * Every library and mode is first checked against a double-precision reference on small instances
 * of every transpose case, then on each real shape against OpenBLAS's result; a wrong result fails
 * the run (exit 1). Timing: the libraries take turns inside every round (so a shared machine's load
 * hits all alike), the best round counts. BENCH_GEMM_BREAK=LIBRARY spoils that library's results (the
 * test that the check fails the run).
 * usage: bench_gemm [--quick] [--threads N (2)] [--rounds R (5)] [--only SUBSTRING] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BEIT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef BEIT_HAVE_XSMM
#include <libxsmm.h>
#endif

typedef void (*gemm_fn)(void *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc);

typedef struct {
  const char *name, *path; /* path: the .so to dlopen, NULL = linked in */
  gemm_fn gemm;
  void (*set_threads)(void *ctx, int n); /* NULL: no threading of its own */
  void *ctx;
  int ok;
} library;

/* ---- the cblas libraries, through dlopen ---- */
typedef struct {
  void (*sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
  void (*threads)(int);
} cblas_lib;

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static void cblas_gemm(void *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc) {
  cblas_lib *l = ctx;
  l->sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
static void cblas_threads(void *ctx, int n) { ((cblas_lib *)ctx)->threads(n); }

/* AddressSanitizer refuses RTLD_DEEPBIND (google/sanitizers#611): under it only the OpenBLAS beit links
   is opened (the same library, so it needs no isolation); the others are skipped. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static int cblas_open(library *lib, const char *threads_sym) {
  if (UNDER_ASAN && strcmp(lib->name, "openblas-omp")) {
    printf("%s: skipped under AddressSanitizer (it needs dlopen with RTLD_DEEPBIND)\n", lib->name);
    return -1;
  }
  void *h = dlopen(lib->path, RTLD_NOW | RTLD_LOCAL | (UNDER_ASAN ? 0 : RTLD_DEEPBIND));
  if (!h) return 0;
  cblas_lib *l = calloc(1, sizeof *l);
  *(void **)&l->sgemm = dlsym(h, "cblas_sgemm");
  *(void **)&l->threads = dlsym(h, threads_sym);
  if (!l->sgemm || !l->threads) {
    fprintf(stderr, "bench_gemm: %s lacks cblas_sgemm or %s\n", lib->path, threads_sym);
    exit(1);
  }
  lib->ctx = l;
  lib->gemm = cblas_gemm;
  lib->set_threads = cblas_threads;
  return 1;
}

/* ---- oneDNN ---- */
#ifdef BEIT_HAVE_DNNL
static void onednn_gemm(void *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
  (void)ctx;
  if (dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc) != dnnl_success) {
    fprintf(stderr, "bench_gemm: dnnl_sgemm failed on %d x %d x %d\n", M, N, K);
    exit(1);
  }
}
/* oneDNN runs on the OpenMP runtime: its threads are omp_get_max_threads() outside a parallel region. */
static void omp_threads(void *ctx, int n) {
  (void)ctx;
  omp_set_num_threads(n);
}

/* The matmul primitive (what PyTorch runs): one primitive per call signature and OpenMP thread (so
 * threads never share one, nor its scratchpad), created on first use; beta 1 is a sum post-op. */
typedef struct {
  int key[10];
  dnnl_primitive_t prim;
  dnnl_memory_t mem[3];
  dnnl_stream_t stream;
} mm_entry;
enum { MM_MAX = 512 };
static mm_entry g_mm[MM_MAX];
static int g_nmm;
static dnnl_engine_t g_engine;

#define DNNL_OK(call)                                                                 \
  do {                                                                                \
    if ((call) != dnnl_success) {                                                     \
      fprintf(stderr, "bench_gemm: %s failed (%s:%d)\n", #call, __FILE__, __LINE__); \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

static void mm_desc(dnnl_memory_desc_t *md, int rows, int cols, int ld, int trans) { /* op(X)[rows, cols] */
  dnnl_dims_t dims = {rows, cols}, strides = {trans ? 1 : ld, trans ? ld : 1};
  DNNL_OK(dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides));
}

static mm_entry *mm_create(const int key[10]) {
  int ta = key[1], tb = key[2], M = key[3], N = key[4], K = key[5];
  mm_entry *e = &g_mm[g_nmm];
  memcpy(e->key, key, sizeof e->key);
  if (!g_engine) DNNL_OK(dnnl_engine_create(&g_engine, dnnl_cpu, 0));
  dnnl_memory_desc_t md[3];
  mm_desc(&md[0], M, K, key[6], ta);
  mm_desc(&md[1], K, N, key[7], tb);
  mm_desc(&md[2], M, N, key[8], 0);
  dnnl_matmul_desc_t desc;
  DNNL_OK(dnnl_matmul_desc_init(&desc, &md[0], &md[1], NULL, &md[2]));
  dnnl_primitive_attr_t attr;
  DNNL_OK(dnnl_primitive_attr_create(&attr));
  if (key[9]) {
    dnnl_post_ops_t po;
    DNNL_OK(dnnl_post_ops_create(&po));
    DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
    DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_post_ops_destroy(po);
  }
  dnnl_primitive_desc_t pd;
  DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL));
  DNNL_OK(dnnl_primitive_create(&e->prim, pd));
  for (int i = 0; i < 3; i++) DNNL_OK(dnnl_memory_create(&e->mem[i], &md[i], g_engine, DNNL_MEMORY_NONE));
  DNNL_OK(dnnl_stream_create(&e->stream, g_engine, dnnl_stream_default_flags));
  dnnl_primitive_desc_destroy(pd);
  dnnl_primitive_attr_destroy(attr);
  g_nmm++;
  return e;
}

static void onednn_matmul(void *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
  (void)ctx;
  if (beta != 0.0f && beta != 1.0f) {
    fprintf(stderr, "bench_gemm: the matmul primitive runs beta 0 or 1 only\n");
    exit(1);
  }
  int key[10] = {omp_get_thread_num(), ta, tb, M, N, K, lda, ldb, ldc, beta != 0.0f};
  mm_entry *e = NULL;
#pragma omp critical(bench_gemm_mm)
  {
    for (int i = 0; i < g_nmm && !e; i++)
      if (!memcmp(g_mm[i].key, key, sizeof key)) e = &g_mm[i];
    if (!e && g_nmm == MM_MAX) {
      fprintf(stderr, "bench_gemm: more than %d matmul primitives\n", MM_MAX);
      exit(1);
    }
    if (!e) e = mm_create(key);
  }
  DNNL_OK(dnnl_memory_set_data_handle(e->mem[0], (void *)A));
  DNNL_OK(dnnl_memory_set_data_handle(e->mem[1], (void *)B));
  DNNL_OK(dnnl_memory_set_data_handle(e->mem[2], C));
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->mem[0]}, {DNNL_ARG_WEIGHTS, e->mem[1]}, {DNNL_ARG_DST, e->mem[2]}};
  DNNL_OK(dnnl_primitive_execute(e->prim, e->stream, 3, args));
  DNNL_OK(dnnl_stream_wait(e->stream));
}

/* Between shapes: the primitives of the last one go (the full run creates a few hundred). */
static void onednn_matmul_free(void) {
  for (int i = 0; i < g_nmm; i++) {
    dnnl_primitive_destroy(g_mm[i].prim);
    for (int k = 0; k < 3; k++) dnnl_memory_destroy(g_mm[i].mem[k]);
    dnnl_stream_destroy(g_mm[i].stream);
  }
  g_nmm = 0;
}
#endif

/* ---- libxsmm: JIT kernels over tiles ----
 * Row-major C[M,N] = A[M,K] B[K,N] is column-major C'[N,M] = B'[N,K] A'[K,M] on the same memory,
 * so a column-major kernel (m, n, k) = (columns of C, rows of C, reduction) needs no copy. A
 * transposed operand is copied transposed first (for the forward pass that is the weight, OC x C;
 * for the weight gradient the whole dY block). */
#ifdef BEIT_HAVE_XSMM
enum { XT_M = 256, XT_N = 64, XT_K = 256 }; /* tile: columns of C, rows of C, reduction */

static float *transposed(const float *X, int rows, int cols, int ld) { /* X[rows, cols] -> [cols, rows] */
  float *T = malloc((size_t)rows * cols * sizeof(float));
  for (int r0 = 0; r0 < rows; r0 += 32)
    for (int c = 0; c < cols; c++)
      for (int r = r0; r < rows && r < r0 + 32; r++) T[(size_t)c * rows + r] = X[(size_t)r * ld + c];
  return T;
}

static libxsmm_smmfunction xsmm_kernel(int m, int n, int k, int lda, int ldb, int ldc, float beta) {
  float alpha = 1.0f;
  int flags = LIBXSMM_GEMM_FLAG_NONE, prefetch = LIBXSMM_PREFETCH_NONE;
  libxsmm_blasint m_ = m, n_ = n, k_ = k, lda_ = lda, ldb_ = ldb, ldc_ = ldc;
  libxsmm_smmfunction f = libxsmm_smmdispatch(m_, n_, k_, &lda_, &ldb_, &ldc_, &alpha, &beta, &flags, &prefetch);
  if (!f) {
    fprintf(stderr, "bench_gemm: libxsmm has no kernel for m %d n %d k %d\n", m, n, k);
    exit(1);
  }
  return f;
}

static void xsmm_gemm(void *ctx, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
  (void)ctx;
  float *At = ta ? transposed(A, K, M, lda) : NULL, *Bt = tb ? transposed(B, N, K, ldb) : NULL;
  if (At) A = At, lda = K;
  if (Bt) B = Bt, ldb = N;
  for (int r = 0; r < M; r += XT_N) {
    int nr = M - r < XT_N ? M - r : XT_N;
    for (int k = 0; k < K; k += XT_K) {
      int nk = K - k < XT_K ? K - k : XT_K;
      float b = k ? 1.0f : beta;
      for (int c = 0; c < N; c += XT_M) {
        int nc = N - c < XT_M ? N - c : XT_M;
        xsmm_kernel(nc, nr, nk, ldb, lda, ldc, b)(B + (size_t)k * ldb + c, A + (size_t)r * lda + k,
                                                  C + (size_t)r * ldc + c);
      }
    }
  }
  free(At);
  free(Bt);
}
#endif

static library LIBS[] = {
    {"openblas-omp", "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0", 0, 0, 0, 0},
    {"openblas-pth", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", 0, 0, 0, 0},
    {"blis-omp", "/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", 0, 0, 0, 0},
#ifdef BEIT_HAVE_DNNL
    {"onednn", NULL, onednn_gemm, omp_threads, 0, 0},
    {"onednn-mm", NULL, onednn_matmul, omp_threads, 0, 0},
#endif
#ifdef BEIT_HAVE_XSMM
    {"libxsmm", NULL, xsmm_gemm, NULL, 0, 0},
#endif
};
enum { NLIB = sizeof LIBS / sizeof LIBS[0] };

static void open_libraries(void) {
  for (int i = 0; i < NLIB; i++) {
    library *l = &LIBS[i];
    if (!l->path) l->ok = 1;
    else l->ok = cblas_open(l, strstr(l->name, "blis") ? "bli_thread_set_num_threads" : "openblas_set_num_threads");
    if (!l->ok) printf("%s: %s not found, skipped\n", l->name, l->path);
    l->ok = l->ok > 0;
  }
#ifdef BEIT_HAVE_XSMM
  libxsmm_init();
#endif
  if (!LIBS[0].ok) {
    fprintf(stderr, "bench_gemm: the reference library %s is missing\n", LIBS[0].path);
    exit(1);
  }
}

/* ---- modes ---- */
enum { OWN, SPLIT, HEADS };
static const char *MODE_NAME[] = {"own", "split", "heads"};

typedef struct {
  int ta, tb, M, N, K, lda, ldb, ldc, batch; /* batch: independent problems (attention heads) */
  float beta;
  float *A, *B, *C; /* batch consecutive problems of sizes sa, sb, sc */
  size_t sa, sb, sc;
} problem;

static void set_threads(library *l, int n) {
  if (l->set_threads) l->set_threads(l->ctx, n);
}

/* gemm()'s row split: rows m0..m1 of op(A) for each thread (a column offset when A is transposed). */
static void run_split(library *l, const problem *p, const float *A, const float *B, float *C, int T) {
#pragma omp parallel num_threads(T)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int m0 = (int)((long long)p->M * t / nt), m1 = (int)((long long)p->M * (t + 1) / nt);
    const float *a = p->ta ? A + m0 : A + (size_t)m0 * p->lda;
    if (m1 > m0) l->gemm(l->ctx, p->ta, p->tb, m1 - m0, p->N, p->K, a, p->lda, B, p->ldb, p->beta,
                         C + (size_t)m0 * p->ldc, p->ldc);
  }
}

static void run(library *l, const problem *p, int mode, int T) {
  if (mode == OWN) {
    set_threads(l, T);
    for (int i = 0; i < p->batch; i++)
      l->gemm(l->ctx, p->ta, p->tb, p->M, p->N, p->K, p->A + i * p->sa, p->lda, p->B + i * p->sb, p->ldb, p->beta,
              p->C + i * p->sc, p->ldc);
    return;
  }
  set_threads(l, 1);
  if (mode == SPLIT) {
    run_split(l, p, p->A, p->B, p->C, T);
    return;
  }
#pragma omp parallel for num_threads(T) schedule(static)
  for (int i = 0; i < p->batch; i++)
    l->gemm(l->ctx, p->ta, p->tb, p->M, p->N, p->K, p->A + i * p->sa, p->lda, p->B + i * p->sb, p->ldb, p->beta,
            p->C + i * p->sc, p->ldc);
}

/* ---- data and checks ---- */
static unsigned long long rng_state = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0) * 2 - 1);
}
static float *frand_array(size_t n) {
  float *a = malloc(n * sizeof(float));
  if (!a) {
    fprintf(stderr, "bench_gemm: out of memory (%zu floats)\n", n);
    exit(1);
  }
  for (size_t i = 0; i < n; i++) a[i] = frand();
  return a;
}

static void problem_alloc(problem *p) {
  int ar = p->ta ? p->K : p->M, br = p->tb ? p->N : p->K;
  p->sa = (size_t)ar * p->lda, p->sb = (size_t)br * p->ldb, p->sc = (size_t)p->M * p->ldc;
  p->A = frand_array(p->sa * p->batch), p->B = frand_array(p->sb * p->batch), p->C = frand_array(p->sc * p->batch);
}
static void problem_free(problem *p) { free(p->A), free(p->B), free(p->C); }

/* max |C - R| / max |R| over the first problem of the batch (the valid columns only) */
static double rel_diff(const problem *p, const float *C, const double *R) {
  double e = 0, r = 0;
  for (int i = 0; i < p->M; i++)
    for (int j = 0; j < p->N; j++) {
      double d = fabs(C[(size_t)i * p->ldc + j] - R[(size_t)i * p->ldc + j]), v = fabs(R[(size_t)i * p->ldc + j]);
      if (d > e) e = d;
      if (v > r) r = v;
    }
  return r > 0 ? e / r : e;
}

static double *reference(const problem *p, const float *C0) { /* double precision, first problem */
  double *R = malloc(p->sc * sizeof(double));
  for (int i = 0; i < p->M; i++)
    for (int j = 0; j < p->N; j++) {
      double s = 0;
      for (int k = 0; k < p->K; k++) {
        double a = p->ta ? p->A[(size_t)k * p->lda + i] : p->A[(size_t)i * p->lda + k];
        double b = p->tb ? p->B[(size_t)j * p->ldb + k] : p->B[(size_t)k * p->ldb + j];
        s += a * b;
      }
      R[(size_t)i * p->ldc + j] = s + p->beta * C0[(size_t)i * p->ldc + j];
    }
  return R;
}

static void to_double(double *d, const float *f, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = f[i];
}

static const char *g_break; /* BENCH_GEMM_BREAK=LIBRARY: that library's results are made wrong */

/* Runs every library and mode once from C0 and compares with R; returns the worst relative error. */
static double check(problem *p, const float *C0, const double *R, double tol, int T, const char *what) {
  double worst = 0;
  for (int i = 0; i < NLIB; i++) {
    if (!LIBS[i].ok) continue;
    for (int mode = OWN; mode <= HEADS; mode++) {
      if ((mode == SPLIT && p->batch > 1) || (mode == HEADS && p->batch == 1)) continue;
      for (int t = 1; t <= (mode == OWN ? T : 1); t++) {
        if (mode == OWN && t > 1 && !LIBS[i].set_threads) continue;
        memcpy(p->C, C0, p->sc * p->batch * sizeof(float));
        run(&LIBS[i], p, mode, mode == OWN ? t : T);
        if (g_break && !strcmp(g_break, LIBS[i].name)) p->C[0] += 1.0f; /* tests: the check must catch it */
        double e = rel_diff(p, p->C, R);
        if (e > worst) worst = e;
        if (!(e <= tol)) {
          printf("WRONG: %s %s %d on %s: relative error %.3g (tolerance %.3g)\n", LIBS[i].name, MODE_NAME[mode],
                 mode == OWN ? t : T, what, e, tol);
          exit(1);
        }
      }
    }
  }
  return worst;
}

/* Small instances of every transpose case, odd sizes and leading dimensions, beta 0 and 1. */
static void check_small(int T) {
  static const int sizes[][3] = {{37, 45, 71}, {130, 290, 300}, {1, 7, 5}};
  double worst = 0;
  for (int s = 0; s < 3; s++)
    for (int c = 0; c < 8; c++) {
      problem p = {c & 1, (c >> 1) & 1, sizes[s][0], sizes[s][1], sizes[s][2], 0, 0, 0, 1, (c >> 2) ? 1.0f : 0.0f};
      p.lda = (p.ta ? p.M : p.K) + 3, p.ldb = (p.tb ? p.K : p.N) + 5, p.ldc = p.N + 2;
      problem_alloc(&p);
      float *C0 = malloc(p.sc * sizeof(float));
      memcpy(C0, p.C, p.sc * sizeof(float));
      double *R = reference(&p, C0);
      char what[80];
      snprintf(what, sizeof what, "%s%s %dx%dx%d beta %g", p.ta ? "T" : "N", p.tb ? "T" : "N", p.M, p.N, p.K,
               p.beta);
      double e = check(&p, C0, R, 1e-5, T, what);
      if (e > worst) worst = e;
      free(R), free(C0);
      problem_free(&p);
#ifdef BEIT_HAVE_DNNL
      onednn_matmul_free();
#endif
    }
  printf("reference check (double precision, 24 small instances, every library and mode): max relative error "
         "%.2g\n",
         worst);
}

/* ---- shapes ---- */
typedef struct {
  const char *name;
  int width, depth, heads, batch, tokens, masked, vocab;
} workload;

static const workload WORKLOADS[] = {
    {"mini 32px p4 b256", 96, 4, 3, 256, 65, 26, 512},
    {"mini 28px p7 b256 (demo)", 96, 4, 3, 256, 17, 6, 512},
    {"tiny 28px p4 b64", 192, 12, 3, 64, 50, 20, 8192},
    {"small 32px p4 b64", 384, 12, 6, 64, 65, 26, 8192},
    {"BEiT-B 224 p16 b8", 768, 12, 12, 8, 197, 78, 8192},
};
enum { NWORK = sizeof WORKLOADS / sizeof WORKLOADS[0] };

typedef struct {
  char name[96];
  int work; /* index into WORKLOADS */
  double calls; /* per training step */
  problem p;
} shape;

/* The three products of a linear layer inp[M,C] -> out[M,OC] (src/ops/linear.c). */
static int add_linear(shape *s, int n, int w, const char *layer, int M, int C, int OC, double calls) {
  const char *prod[3] = {"fwd", "dX", "dW"};
  problem ps[3] = {{0, 1, M, OC, C, C, C, OC, 1, 0.0f},
                   {0, 0, M, C, OC, OC, C, C, 1, 1.0f},
                   {1, 0, OC, C, M, OC, C, C, 1, 1.0f}};
  for (int i = 0; i < 3; i++) {
    s[n].work = w, s[n].calls = calls, s[n].p = ps[i];
    snprintf(s[n].name, sizeof s[n].name, "%s %s %s %dx%dx%d", layer, prod[i], ps[i].ta ? "TN" : ps[i].tb ? "NT" : "NN",
             ps[i].M, ps[i].N, ps[i].K);
    n++;
  }
  return n;
}

/* The six per-head products of attention.c (q, k, v slices of the packed qkv rows, ld 3C). */
static int add_attention(shape *s, int n, int w, int N, int D, int C, double calls, int batch) {
  static const char *prod[6] = {"QK^T", "PV", "dP", "dV", "dQ", "dK"};
  problem ps[6] = {{0, 1, N, N, D, 3 * C, 3 * C, N, batch, 0.0f}, {0, 0, N, D, N, N, 3 * C, C, batch, 0.0f},
                   {0, 1, N, N, D, C, 3 * C, N, batch, 0.0f},     {1, 0, N, D, N, N, C, 3 * C, batch, 1.0f},
                   {0, 0, N, D, N, N, 3 * C, 3 * C, batch, 1.0f}, {1, 0, N, D, N, N, 3 * C, 3 * C, batch, 1.0f}};
  for (int i = 0; i < 6; i++) {
    s[n].work = w, s[n].calls = calls, s[n].p = ps[i];
    snprintf(s[n].name, sizeof s[n].name, "attn %s %s %dx%dx%d x%d", prod[i],
             ps[i].ta ? "TN" : ps[i].tb ? "NT" : "NN", N, ps[i].N, ps[i].K, batch);
    n++;
  }
  return n;
}

static int make_shapes(shape *s, int quick) {
  int n = 0;
  for (int w = 0; w < NWORK; w++) {
    const workload *W = &WORKLOADS[w];
    if (quick && w != 2) continue;
    int M = W->batch * W->tokens, C = W->width, d = W->depth;
    if (!quick) {
      n = add_linear(s, n, w, "qkv", M, C, 3 * C, d);
      n = add_linear(s, n, w, "proj", M, C, C, d);
      n = add_linear(s, n, w, "fc1", M, C, 4 * C, d);
    }
    n = add_linear(s, n, w, "fc2", M, 4 * C, C, d);
    if (!quick) n = add_linear(s, n, w, "head", W->batch * W->masked, C, W->vocab, 1);
    /* a batch of 16 heads per measurement; calls per step counted in batches */
    n = add_attention(s, n, w, W->tokens, C / W->heads, C, (double)W->batch * W->heads * d / 16, 16);
  }
  return n;
}

/* ---- timing ---- */
typedef struct {
  int lib, mode, threads;
} variant;

static int variants(variant *v, int batch, int T) {
  int n = 0;
  for (int i = 0; i < NLIB; i++) {
    if (!LIBS[i].ok) continue;
    v[n++] = (variant){i, OWN, 1};
    if (LIBS[i].set_threads && T > 1) v[n++] = (variant){i, OWN, T};
    if (T > 1) v[n++] = (variant){i, batch > 1 ? HEADS : SPLIT, T};
  }
  return n;
}

static double time_reps(library *l, const problem *p, int mode, int T, int reps) {
  double t0 = omp_get_wtime();
  for (int r = 0; r < reps; r++) run(l, p, mode, T);
  return (omp_get_wtime() - t0) / reps;
}

int main(int argc, char **argv) {
  int quick = 0, T = 2, rounds = 5;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      fprintf(stderr, "usage: bench_gemm [--quick] [--threads N (2)] [--rounds R (5)] [--only SUBSTRING]\n");
      return 2;
    }
  }
  if (T < 1 || T > 1024 || rounds < 1) {
    fprintf(stderr, "bench_gemm: --threads must be 1..1024 and --rounds at least 1\n");
    return 2;
  }
  if (quick) rounds = 1;
  double min_s = quick ? 0.0 : 0.05; /* each variant's share of a round at least this long */
  g_break = getenv("BENCH_GEMM_BREAK");
  open_libraries();
  printf("threads %d, rounds %d; libraries:", T, rounds);
  for (int i = 0; i < NLIB; i++)
    if (LIBS[i].ok) printf(" %s", LIBS[i].name);
  printf("\n");
  check_small(T);

  shape *S = calloc(256, sizeof *S);
  int ns = make_shapes(S, quick);
  variant V[3 * NLIB];
  double step[NWORK][3 * NLIB] = {{0}};
  int nv_work[NWORK] = {0};
  variant vw[NWORK][3 * NLIB];
  printf("\n%-30s %-38s %-13s %8s\n", "workload", "shape (M x N x K)", "library", "mode");
  for (int s = 0; s < ns; s++) {
    problem *p = &S[s].p;
    const workload *W = &WORKLOADS[S[s].work];
    if (only && !strstr(S[s].name, only) && !strstr(W->name, only)) continue;
    problem_alloc(p);
    int nv = variants(V, p->batch, T);
    /* every variant against OpenBLAS's own result from the same inputs */
    float *C0 = malloc(p->sc * p->batch * sizeof(float));
    memcpy(C0, p->C, p->sc * p->batch * sizeof(float));
    run(&LIBS[0], p, OWN, 1);
    double *R = malloc(p->sc * sizeof(double));
    to_double(R, p->C, p->sc);
    check(p, C0, R, 1e-4, T, S[s].name);
    free(R), free(C0);
    double flops = 2.0 * p->M * p->N * p->K * p->batch, best[3 * NLIB];
    int reps[3 * NLIB];
    for (int v = 0; v < nv; v++) {
      double t = time_reps(&LIBS[V[v].lib], p, V[v].mode, V[v].threads, 1); /* warm-up, JIT, first-touch */
      reps[v] = t >= min_s ? 1 : (int)(min_s / (t > 1e-7 ? t : 1e-7)) + 1;
      best[v] = 1e30;
    }
    for (int r = 0; r < rounds; r++)
      for (int v = 0; v < nv; v++) {
        double t = time_reps(&LIBS[V[v].lib], p, V[v].mode, V[v].threads, reps[v]);
        if (t < best[v]) best[v] = t;
      }
    int bv = 0;
    for (int v = 0; v < nv; v++) {
      if (best[v] < best[bv]) bv = v;
      printf("%-30s %-38s %-13s %5s %2d %8.1f GFLOP/s\n", W->name, S[s].name, LIBS[V[v].lib].name,
             MODE_NAME[V[v].mode], V[v].threads, flops / best[v] * 1e-9);
      step[S[s].work][v] += S[s].calls * best[v];
      vw[S[s].work][v] = V[v];
    }
    nv_work[S[s].work] = nv;
    /* against what the model ran before: OpenBLAS in gemm()'s split (own 1 with one thread) */
    printf("%-30s %-38s best: %s %s %d, %.1f GFLOP/s (%.2fx OpenBLAS-omp %s %d)\n\n", W->name, S[s].name,
           LIBS[V[bv].lib].name, MODE_NAME[V[bv].mode], V[bv].threads, flops / best[bv] * 1e-9,
           best[T > 1 ? 2 : 0] / best[bv], MODE_NAME[V[T > 1 ? 2 : 0].mode], V[T > 1 ? 2 : 0].threads);
    problem_free(p);
#ifdef BEIT_HAVE_DNNL
    onednn_matmul_free();
#endif
  }
  printf("GEMM milliseconds per training step (sum over the shapes above x calls per step; attention in its heads "
         "mode under 'split'):\n");
  for (int w = 0; w < NWORK; w++) {
    if (!nv_work[w]) continue;
    int bv = 0;
    for (int v = 0; v < nv_work[w]; v++) {
      if (step[w][v] < step[w][bv]) bv = v;
      printf("  %-28s %-13s %5s %2d %10.1f ms\n", WORKLOADS[w].name, LIBS[vw[w][v].lib].name,
             vw[w][v].mode == OWN ? "own" : "split", vw[w][v].threads, step[w][v] * 1e3);
    }
    printf("  %-28s best: %s %s %d\n", WORKLOADS[w].name, LIBS[vw[w][bv].lib].name,
           vw[w][bv].mode == OWN ? "own" : "split", vw[w][bv].threads);
  }
  free(S);
  return 0;
}
