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

/* Buffers a test uses until the program ends: test_keep(p) returns p, and
 * TEST_END frees them all (so the sanitized run reports no leaks). */
static void **test_kept_;
static size_t test_nkept_, test_capkept_;
static inline void *test_keep(void *p) {
  if (test_nkept_ == test_capkept_) {
    test_capkept_ = test_capkept_ ? 2 * test_capkept_ : 64;
    test_kept_ = realloc(test_kept_, test_capkept_ * sizeof *test_kept_);
    if (!test_kept_) abort();
  }
  test_kept_[test_nkept_++] = p;
  return p;
}
static inline void test_free_kept_(void) {
  for (size_t i = 0; i < test_nkept_; i++) free(test_kept_[i]);
  free(test_kept_);
  test_kept_ = NULL, test_nkept_ = test_capkept_ = 0;
}

/* snprintf into a char array that ends the test program if the text does not
 * fit (a cut path would make a test check the wrong file). */
#define TEST_PATHF(buf, ...)                                                        \
  do {                                                                              \
    if (snprintf(buf, sizeof buf, __VA_ARGS__) >= (int)sizeof buf) {                \
      fprintf(stderr, "%s: path too long: %s\n", test_name_, buf);                  \
      exit(2);                                                                      \
    }                                                                               \
  } while (0)
#define TEST_BEGIN(name) (test_name_ = (name))
#define TEST_END()                                                                 \
  (test_free_kept_(),                                                              \
   printf("%s: %d passed, %d failed\n", test_name_, test_passed_, test_failed_),  \
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
