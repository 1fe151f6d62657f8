/* test_bench_gemm.c - bench/bench_gemm's smoke mode runs (so the benchmark cannot rot), every library it
 * was built with checks out against the double-precision reference, and a wrong result fails the run. */
#include <libgen.h>

#include "child.h"
#include "test.h"

static char g_bench[4096], g_out[4200];

static int bench(const char *env) {
  return child_shell("%s '%s' --quick > '%s' 2>&1", env, g_bench, g_out);
}

static int output_has(const char *text) { return file_has(g_out, text); }

int main(void) {
  TEST_BEGIN("test_bench_gemm");
  char bin[4096];
  TEST_PATHF(bin, "%s", child_beit_bin());
  TEST_PATHF(g_bench, "%s/bench/bench_gemm", dirname(bin));
  const char *fix = getenv("BEIT_TEST_FIXTURES");
  TEST_PATHF(g_out, "%s/bench_gemm.out", fix ? fix : "/tmp");

  int rc = bench("");
  CHECK_TRUE(rc == 0, "bench_gemm --quick exits 0 (got %d; output in %s)", rc, g_out);
  CHECK_TRUE(output_has("reference check (double precision"), "it checked every library against the reference");
  CHECK_TRUE(output_has("fc2 fwd NT 3200x192x768") && output_has("best: "), "it timed tiny's shapes");
  CHECK_TRUE(output_has("GEMM milliseconds per training step"), "it summed the step");
#ifdef BEIT_HAVE_DNNL
  CHECK_TRUE(output_has("onednn "), "oneDNN, found at build time, is measured");
#endif

  rc = bench("BENCH_GEMM_BREAK=openblas-omp");
  CHECK_TRUE(rc == 1 && output_has("WRONG: openblas-omp"), "a wrong result fails the run (exit %d)", rc);
  return TEST_END();
}
