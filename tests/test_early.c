/* test_early.c - a run that cannot work is refused before any data is read or
 * memory taken, with a message naming the flags the user typed: each case runs
 * the real `beit`, must exit 1 (or 2 for usage) within a couple of seconds and a
 * small peak RSS, and its one stderr line must name the flag. Cases whose data
 * spec points nowhere prove the order: a check made after loading the data would
 * report the missing dataset instead. */
#include <sys/resource.h>
#include <sys/time.h>

#include "child.h"
#include "fixture.h"
#include "test.h"

#define MAX_SECONDS 3.0   /* a refusal takes milliseconds; this leaves room for a busy machine */
#define MAX_RSS_MIB 150.0 /* the process itself is ~10 MiB; the late refusals took GBs */

static char g_data[1100], g_tok[1100], g_pre[1100], g_err[1100], g_out[1100], g_png[1100];
static char NOWHERE[] = "mnist:/nonexistent/beit-test-data";

typedef struct {
  int status;
  double seconds, rss_mib;
  char *err;
} outcome;

/* Runs beit with args under an address-space limit (0 = none); wall time and peak RSS from wait4.
 * Fashion-MNIST (the demo's data) points nowhere, so that a late check shows as a missing dataset. */
static outcome run(char *const args[], long long as_limit) {
  child_opts co = {.err_path = g_err, .as_limit = as_limit, .env = {"BEIT_FASHION_MNIST_DIR=/nonexistent/fmnist"}};
  struct timeval t0, t1;
  gettimeofday(&t0, NULL);
  pid_t pid = child_start(args, &co);
  int status;
  struct rusage ru;
  wait4(pid, &status, 0, &ru);
  gettimeofday(&t1, NULL);
  outcome o = {child_status(status), (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_usec - t0.tv_usec) / 1e6,
               ru.ru_maxrss / 1024.0, slurp(g_err)};
  return o;
}

/* One case: the exit status, the flag(s) named in the message, time and memory. */
static void expect(const char *what, char *const args[], int status, const char *needle, const char *needle2,
                   long long as_limit) {
  char rm[1200];
  snprintf(rm, sizeof rm, "rm -rf '%s'", g_out);
  if (system(rm) != 0) printf("  (could not remove %s)\n", g_out);
  outcome o = run(args, as_limit);
  size_t len = strlen(o.err);
  while (len && o.err[len - 1] == '\n') o.err[--len] = 0;
  int one_line = !strchr(o.err, '\n');
  int named = strstr(o.err, needle) && (!needle2 || strstr(o.err, needle2)), untouched = !file_exists(g_out);
  CHECK_TRUE(o.status == status && named && one_line && untouched && o.seconds < MAX_SECONDS && o.rss_mib < MAX_RSS_MIB,
             "%s: exit %d (want %d), %.2f s, peak RSS %.0f MiB, --out %s, names '%s'%s%s: \"%s\"", what, o.status,
             status, o.seconds, o.rss_mib, untouched ? "not created" : "CREATED", needle, needle2 ? " and " : "",
             needle2 ? needle2 : "", o.err);
  free(o.err);
}

#define ARGS(...) ((char *const[]){(char *)child_beit_bin(), __VA_ARGS__, NULL})
#define OUT "--out", g_out  /* a run folder that must stay uncreated */

static void test_pretrain(void) {
  /* the repro: a k-means run at --image-size 4096 trained 14.6 s and took 3.2 GB before the grid check */
  expect("pretrain --image-size 4096 with a 7x7 k-means tokenizer",
         ARGS("pretrain", OUT, "--tokenizer", g_tok, "--image-size", "4096", "--model", "micro", "--data", g_data,
              "--quiet"),
         1, "--image-size 4096", NULL, 4LL << 30);
  expect("pretrain: the tokenizer's grid against --image-size / --patch-size, before the data",
         ARGS("pretrain", OUT, "--tokenizer", g_tok, "--image-size", "56", "--patch-size", "4", "--model", "micro",
              "--data", NOWHERE, "--quiet"),
         1, "--tokenizer", "--image-size 56", 0);
  expect("pretrain --model nonesuch, before the data",
         ARGS("pretrain", OUT, "--tokenizer", "pixel", "--model", "nonesuch", "--data", NOWHERE, "--quiet"), 1,
         "--model", "nonesuch", 0);
  expect("pretrain --image-size 3 --patch-size 4",
         ARGS("pretrain", OUT, "--tokenizer", "pixel", "--image-size", "3", "--patch-size", "4", "--data", NOWHERE), 1,
         "--image-size 3 is not a multiple of --patch-size 4", NULL, 0);
  expect("pretrain: memory for --model large at --batch 4096, before the data",
         ARGS("pretrain", OUT, "--tokenizer", "pixel", "--model", "large", "--batch", "4096", "--image-size", "224",
              "--data", NOWHERE),
         1, "needs", "--batch 4096", 0);
  expect("pretrain --subset 10 --batch 32, before the data",
         ARGS("pretrain", OUT, "--tokenizer", "pixel", "--subset", "10", "--batch", "32", "--data", NOWHERE), 1,
         "--subset 10", "--batch 32", 0);
}

static void test_finetune(void) {
  expect("finetune --init of another --model, before the data",
         ARGS("finetune", OUT, "--init", g_pre, "--model", "tiny", "--data", NOWHERE, "--quiet"), 1, "--init",
         "--model tiny", 0);
  expect("finetune --init with another --patch-size, before the data",
         ARGS("finetune", OUT, "--init", g_pre, "--model", "micro", "--patch-size", "7", "--data", NOWHERE,
              "--quiet"),
         1, "--patch-size", NULL, 0);
  expect("finetune --image-size 30 (default --patch-size 4)",
         ARGS("finetune", OUT, "--image-size", "30", "--data", NOWHERE), 1, "--image-size 30", "--patch-size 4", 0);
  expect("linprobe --layer 9 of a 2-block --model, before the data",
         ARGS("linprobe", OUT, "--model", "micro", "--layer", "9", "--data", NOWHERE), 1, "--layer 9", NULL, 0);
}

static void test_tokenizer_bench_demo_eval(void) {
  expect("tokenizer train --type kmeans --patch 5 at 28 px, before the data",
         ARGS("tokenizer", "train", OUT, "--type", "kmeans", "--image-size", "28", "--patch", "5", "--data",
              NOWHERE),
         1, "--patch 5", "--image-size 28", 0);
  expect("tokenizer train (dVAE) --image-size 30 with --groups 3, before the data",
         ARGS("tokenizer", "train", OUT, "--image-size", "30", "--groups", "3", "--data", NOWHERE), 1,
         "--image-size 30", "--groups 3", 0);
  expect("tokenizer train --n-hid 30, before the data",
         ARGS("tokenizer", "train", OUT, "--image-size", "28", "--n-hid", "30", "--data", NOWHERE), 1, "--n-hid 30",
         NULL, 0);
  expect("bench --image-size 30", ARGS("bench", "--image-size", "30", "--steps", "1"), 1, "--image-size 30", NULL, 0);
  /* weights and gradients of 'large' (2.4 GB) fit in 4 GB: the old code allocated the weights, then refused */
  if (!CHILD_SANITIZED)
    expect("bench --model large under a 4 GB address space: refused before any allocation",
           ARGS("bench", "--model", "large", "--steps", "1"), 1, "needs", "--model large", 4LL << 30);
  expect("demo --tokenizer foo", ARGS("demo", "--tokenizer", "foo", "--out", g_out), 2, "--tokenizer",
         "foo", 0);
  expect("demo --tokenizer dvae --patch-size 7: 7x7 tokens against a 4x4 grid, before minutes of training",
         ARGS("demo", "--tokenizer", "dvae", "--patch-size", "7", "--out", g_out), 2, "--patch-size 7",
         NULL, 0);
  expect("demo --pretrain-subset 10", ARGS("demo", "--pretrain-subset", "10", "--out", g_out), 2,
         "--pretrain-subset 10", NULL, 0);
  expect("eval --confusion-png into a missing folder, before the evaluation",
         ARGS("eval", "--checkpoint", g_pre, "--confusion-png", g_png, "--data", NOWHERE), 1,
         "--confusion-png", NULL, 0);
}

static int make_inputs(void) {
  char tiny[1000], tokdir[1100], predir[1100];
  snprintf(tiny, sizeof tiny, "%s/early-mnist", fx_dir());
  TEST_PATHF(g_data, "mnist:%s", tiny);
  TEST_PATHF(g_err, "%s/early.err", fx_dir());
  TEST_PATHF(g_out, "%s/early-out-never", fx_dir());
  TEST_PATHF(g_png, "%s/early-missing-folder/c.png", fx_dir());
  TEST_PATHF(tokdir, "%s/early-tok", fx_dir());
  TEST_PATHF(predir, "%s/early-pre", fx_dir());
  TEST_PATHF(g_tok, "%s/tokenizer.safetensors", tokdir);
  TEST_PATHF(g_pre, "%s/model.safetensors", predir);
  char cmd[4000];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", tokdir, predir, g_out);
  if (make_tiny_mnist(tiny, 64, 16) != 0 || system(cmd) != 0) return -1;
  child_opts co = {0};
  int a = child_run(ARGS("tokenizer", "train", "--type", "kmeans", "--data", g_data, "--vocab", "16", "--out", tokdir,
                         "--threads", "1"), &co);
  int b = child_run(ARGS("pretrain", "--tokenizer", "pixel", "--model", "micro", "--data", g_data, "--batch", "32",
                         "--epochs", "1", "--threads", "1", "--workers", "0", "--quiet", "--out", predir), &co);
  return a == 0 && b == 0 ? 0 : -1;
}

int main(void) {
  TEST_BEGIN("test_early");
  CHECK_TRUE(make_inputs() == 0, "inputs: a tiny dataset, a 7x7 k-means tokenizer, a micro pretraining checkpoint");
  test_pretrain();
  test_finetune();
  test_tokenizer_bench_demo_eval();
  return TEST_END();
}
