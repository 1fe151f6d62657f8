/* nonfinite.c - the test hook that makes a training step non-finite on
 * purpose, so the tests can check that a NaN is caught the step it appears,
 * named, and never written to disk (docs/reliability.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

/* Poisons the first value of each named tensor's gradient. */
static void poison_grads(beit_params *p, const char *names) {
  char list[1024];
  snprintf(list, sizeof list, "%s", names);
  for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
    int i = beit_params_find(p, name);
    if (i >= 0 && p->grad && p->t[i].numel > 0) p->grad[p->t[i].offset] = NAN;
  }
}

void beit_test_inject_nan(int64_t step, double *loss, beit_params *p) {
  const char *spec = getenv("BEIT_TEST_NAN");
  if (!spec) return;
  char *end;
  long long first = strtoll(spec, &end, 10), count = 1;
  if (*end != ':') return;
  const char *what = end + 1, *colon = strrchr(what, ':');
  char target[1024];
  size_t len = colon ? (size_t)(colon - what) : strlen(what);
  if (colon) count = strtoll(colon + 1, NULL, 10);
  if (step < first || step >= first + count || len >= sizeof target) return;
  memcpy(target, what, len);
  target[len] = 0;
  if (!strcmp(target, "loss")) *loss = NAN;
  else poison_grads(p, target);
}
