/* test_gemm.c - gemm()'s sgemm libraries (src/ops/linear.c, BEIT_GEMM): each one built in against a
 * double-precision reference on every transpose case, in one call and in the row split over threads;
 * the same bits on a repeat; BEIT_GEMM from the environment, named by `beit version`. */
#include <omp.h>

#include "child.h"
#include "core/core.h"
#include "ops/ops.h"
#include "test.h"

static float *randn(size_t n, uint64_t key) {
  float *a = test_keep(malloc(n * sizeof(float)));
  beit_rng r;
  beit_rng_seed(&r, 11, BEIT_RNG_TEST, key, 0);
  for (size_t i = 0; i < n; i++) a[i] = (float)beit_rng_normal(&r);
  return a;
}

/* C = 1.5 op(A) op(B) + 0.5 C in double, row-major, leading dimensions with padding. */
static void reference(double *R, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                      int ldb, const float *C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
             (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
      R[(size_t)i * ldc + j] = 1.5 * s + 0.5 * C[(size_t)i * ldc + j];
    }
}

static void check_library(beit_gemm_lib lib) {
  static const int sizes[][3] = {{7, 5, 3}, {300, 96, 200}, {65, 288, 96}};
  const char *name = beit_gemm_name(lib);
  CHECK_TRUE(beit_gemm_set(lib) == BEIT_OK && beit_gemm_active() == lib, "gemm %s selected", name);
  for (int s = 0; s < 3; s++)
    for (int c = 0; c < 4; c++) {
      int ta = c & 1, tb = c >> 1, M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
      int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
      size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
      float *A = randn(na, 1), *B = randn(nb, 2), *C0 = randn(nc, 3), *C = test_keep(malloc(nc * sizeof(float)));
      float *C2 = test_keep(malloc(nc * sizeof(float))), *Rf = test_keep(malloc(nc * sizeof(float)));
      double *R = test_keep(malloc(nc * sizeof(double)));
      for (size_t i = 0; i < nc; i++) R[i] = C0[i]; /* the padding columns stay */
      reference(R, ta, tb, M, N, K, A, lda, B, ldb, C0, ldc);
      for (size_t i = 0; i < nc; i++) Rf[i] = (float)R[i];
      for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        memcpy(C, C0, nc * sizeof(float));
        gemm(ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 0.5f, C, ldc);
        char what[128];
        snprintf(what, sizeof what, "gemm %s %c%c %dx%dx%d, %d threads vs double", name, ta ? 'T' : 'N',
                 tb ? 'T' : 'N', M, N, K, threads);
        check_close(what, C, Rf, nc, 1e-4, 1e-4);
        memcpy(C2, C0, nc * sizeof(float));
        gemm(ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 0.5f, C2, ldc);
        CHECK_TRUE(!memcmp(C, C2, nc * sizeof(float)), "%s: the same bits on a repeat", what);
      }
    }
  omp_set_num_threads(beit_get_threads());
}

/* BEIT_GEMM is read at the first gemm; `beit version` names the choice; a value it cannot honour warns. */
static void test_env(void) {
  const char *dir = getenv("BEIT_TEST_FIXTURES");
  char out[4096], err[4096];
  TEST_PATHF(out, "%s/gemm_version.out", dir ? dir : "/tmp");
  TEST_PATHF(err, "%s/gemm_version.err", dir ? dir : "/tmp");
  const char *def = beit_gemm_built(BEIT_GEMM_DNNL) ? "gemm dnnl (oneDNN " : "gemm openblas (OpenBLAS; the default";
  int rc = child_shell("env -u BEIT_GEMM '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(out, def), "beit version names the default: \"%s\"", def);
  rc = child_shell("BEIT_GEMM=openblas '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(out, "gemm openblas (OpenBLAS; BEIT_GEMM=openblas from the environment)"),
             "BEIT_GEMM=openblas picks OpenBLAS");
  rc = child_shell("BEIT_GEMM=blis '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(err, "beit: warning: BEIT_GEMM=blis ignored") && file_has(out, "ignored"),
             "BEIT_GEMM=blis (not built in) warns and is ignored");
  if (beit_gemm_built(BEIT_GEMM_DNNL)) {
    rc = child_shell("BEIT_GEMM=dnnl '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
    CHECK_TRUE(rc == 0 && file_has(out, "gemm dnnl (oneDNN") && file_has(out, "BEIT_GEMM=dnnl from"),
               "BEIT_GEMM=dnnl picks oneDNN");
  } else {
    CHECK_TRUE(beit_gemm_set(BEIT_GEMM_DNNL) == BEIT_ERR, "oneDNN, not built in, is refused: %s",
               beit_last_error());
  }
  CHECK_TRUE(beit_gemm_set(BEIT_GEMM_COUNT) == BEIT_ERR, "a library that does not exist is refused: %s",
             beit_last_error());
  /* the OpenMP wait policy: the user's wins; else beit's pick, passive when other work is ready to run */
  rc = child_shell("OMP_WAIT_POLICY=active '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(out, "OpenMP waits: OMP_WAIT_POLICY=active from the environment"),
             "OMP_WAIT_POLICY=active: beit keeps it and says so");
  rc = child_shell("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT '%s' version > '%s' 2> '%s'", child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && (file_has(out, "OpenMP waits: spin 10000") || file_has(out, "OpenMP waits: passive (")) &&
                 file_has(out, "set by beit"), "no policy set: beit picks one and names it");
  rc = child_shell("p=; for i in 1 2 3 4; do (while :; do :; done) & p=\"$p $!\"; done; sleep 0.2; env -u "
                   "OMP_WAIT_POLICY -u GOMP_SPINCOUNT '%s' version > '%s' 2> '%s'; s=$?; kill $p; exit $s",
                   child_beit_bin(), out, err);
  CHECK_TRUE(rc == 0 && file_has(out, "OpenMP waits: passive ("), "four busy loops beside it: passive waiting");
}

int main(void) {
  TEST_BEGIN("test_gemm");
  beit_set_threads(2);
  for (int i = 0; i < BEIT_GEMM_COUNT; i++)
    if (beit_gemm_built((beit_gemm_lib)i)) check_library((beit_gemm_lib)i);
    else printf("  skip gemm %s: not built in\n", beit_gemm_name((beit_gemm_lib)i));
  test_env();
  return TEST_END();
}
