/* test_demo.c - `beit demo` end to end on a tiny Fashion-MNIST stand-in
 * (BEIT_FASHION_MNIST_DIR): the test split is evaluated every --eval-every
 * epochs and after the last, and the demo reports the last epoch's weights
 * (finetune/model.safetensors), never the epoch that scored best on the test split. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "fixture.h"
#include "test.h"

/* the test_top1 of each epoch's evaluation line of a log.jsonl (not the closing "final" summary
 * line, which repeats the selected epoch's numbers); returns how many */
static int test_evals(char *log, double *top1, int max) {
  int n = 0;
  for (char *line = strtok(log, "\n"); line && n < max; line = strtok(NULL, "\n")) {
    const char *t = strstr(line, "\"test_top1\": ");
    if (t && !strstr(line, "\"final\": true")) top1[n++] = atof(t + 13);
  }
  return n;
}

int main(void) {
  TEST_BEGIN("test_demo");
  char data[1000], out[1100], env[1100], path[1200], err[1100];
  snprintf(data, sizeof data, "%s/demo-fmnist", fx_dir());
  TEST_PATHF(out, "%s/demo-run", fx_dir());
  TEST_PATHF(err, "%s/demo.err", fx_dir());
  TEST_PATHF(env, "BEIT_FASHION_MNIST_DIR=%s", data);
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", out, data);
  CHECK_TRUE(system(cmd) == 0 && make_tiny_mnist(data, 160, 40) == 0, "a tiny Fashion-MNIST stand-in in %s", data);
  child_opts co = {.env = {env}, .err_path = err};
  char *args[] = {(char *)child_beit_bin(), "demo", "--out", out, "--batch", "32", "--pretrain-subset",
                  "64", "--finetune-subset", "64", "--pretrain-epochs", "1", "--finetune-epochs", "3", "--eval-every",
                  "2", "--threads", "1", NULL};
  int rc = child_run(args, &co);
  char *e = slurp(err);
  CHECK_TRUE(rc == 0, "beit demo on it (exit %d): %.300s", rc, e);
  free(e);
  TEST_PATHF(path, "%s/finetune/log.jsonl", out);
  char *log = slurp(path);
  double top1[8];
  int n = test_evals(log, top1, 8);
  CHECK_TRUE(n == 2, "3 fine-tuning epochs with --eval-every 2: the test split evaluated after epochs 2 and 3 (%d "
             "evaluations)", n);
  free(log);
  TEST_PATHF(path, "%s/summary.json", out);
  char *sum = slurp(path);
  const char *t = strstr(sum, "\"test_top1\": ");
  double reported = t ? atof(t + 13) : -1;
  CHECK_TRUE(n >= 1 && t && reported > top1[n - 1] - 1e-4 && reported < top1[n - 1] + 1e-4 &&
             strstr(sum, "\"weights\": \"finetune/model.safetensors\""),
             "the demo reports the last epoch's weights: %.4f, the last evaluation %.4f: %.200s", reported,
             n >= 1 ? top1[n - 1] : -1, sum);
  free(sum);
  return TEST_END();
}
