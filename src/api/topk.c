/* topk.c - see topk.h. */
#include "api/topk.h"

#include <math.h>

#include "core/core.h"

/* a comes before b: a higher logit, or the same one and a smaller class id */
static int before(const float *x, int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); }

int beit_logits_topk(const float *logits, int K, int k, int *index, float *prob) {
  if (K < 1 || k < 1 || k > K) return beit_errorf("top %d of %d classes", k, K);
  float mx = logits[0], sum = 0;
  for (int j = 0; j < K; j++) {
    if (!isfinite(logits[j])) return beit_errorf("the logits are not all finite (class %d: %g)", j, logits[j]);
    mx = fmaxf(mx, logits[j]);
  }
  for (int j = 0; j < K; j++) sum += expf(logits[j] - mx);
  for (int r = 0; r < k; r++) {  /* the first class in order after the previous pick: k passes, no scratch */
    int best = -1;
    for (int j = 0; j < K; j++)
      if ((r == 0 || before(logits, index[r - 1], j)) && (best < 0 || before(logits, j, best))) best = j;
    index[r] = best;
    prob[r] = expf(logits[best] - mx) / sum;
  }
  return BEIT_OK;
}
