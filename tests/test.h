/* test.h - the tiny harness every tests/test_*.c uses. Each check prints what it
 * compared (max abs/rel error against the tolerance) so a failure explains itself;
 * the program ends with "<name>: N passed, N failed" and exits non-zero on failure.
 * tests/run.sh adds the counts of all programs into the final line. */
#ifndef BEIT_TEST_H
#define BEIT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_ = 0, test_failed_ = 0;
static const char *test_name_ = "test";

#define TEST_BEGIN(name) (test_name_ = (name))
#define TEST_END()                                                                 \
  (printf("%s: %d passed, %d failed\n", test_name_, test_passed_, test_failed_),  \
   test_failed_ ? 1 : 0)

/* A boolean check with a message. */
#define CHECK_TRUE(cond, ...)                                                      \
  do {                                                                             \
    if (cond) { test_passed_++; printf("  ok   "); }                               \
    else { test_failed_++; printf("  FAIL %s:%d ", __FILE__, __LINE__); }          \
    printf(__VA_ARGS__); printf("\n");                                             \
  } while (0)

/* Compare two float arrays: |a-b| <= atol + rtol*|ref| everywhere. Prints the
 * worst element, its error as a share of the tolerance, and the first bad pairs. */
static inline int check_close(const char *what, const float *got, const float *ref, size_t n,
                              double atol, double rtol) {
  double max_abs = 0, max_rel = 0, worst_ratio = 0;
  size_t worst = 0, nbad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)ref[i]);
    double tol = atol + rtol * fabs((double)ref[i]);
    double ratio = d / tol;
    if (!(d <= tol)) nbad++;  /* also catches NaN */
    if (d > max_abs || d != d) max_abs = d;
    double rel = d / (fabs((double)ref[i]) + 1e-30);
    if (rel > max_rel && fabs(ref[i]) > atol) max_rel = rel;
    if (ratio > worst_ratio || ratio != ratio) { worst_ratio = ratio; worst = i; }
  }
  int ok = nbad == 0;
  if (ok) test_passed_++; else test_failed_++;
  printf("  %s %-44s n=%-8zu max_abs=%.3g max_rel=%.3g worst=%.0f%% of tol (atol %.0e rtol %.0e)\n",
         ok ? "ok  " : "FAIL", what, n, max_abs, max_rel, 100 * worst_ratio, atol, rtol);
  if (!ok) {
    printf("       %zu bad; worst at %zu: got %.9g ref %.9g\n", nbad, worst, got[worst], ref[worst]);
    for (size_t i = 0, shown = 0; i < n && shown < 3; i++) {
      double d = fabs((double)got[i] - (double)ref[i]);
      if (!(d <= atol + rtol * fabs((double)ref[i]))) {
        printf("       [%zu] got %.9g ref %.9g\n", i, got[i], ref[i]);
        shown++;
      }
    }
  }
  return ok;
}

#endif
