/* test_eval.c - numbers a user can trust from eval and predict (issue 19): a
 * tie or a non-finite logit never counts as correct (crafted logits, and a
 * classifier with a zeroed head scoring at most 20% in `beit eval`). */
#include <fcntl.h>
#include <stdarg.h>

#include "child.h"
#include "core/core.h"
#include "data/dataset.h"
#include "fixture.h"
#include "io/convert.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "test.h"
#include "train/evaluate.h"

static char g_tiny[1000], g_data[1100], g_ft[1100], g_best[1200];

static void fx_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/eval-%s", fx_dir(), name); }

/* The beit binary with stdout and stderr into files; the exit code, or -signal. */
static int run_beit(char *const args[], const char *out_path, const char *err_path) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
    execv(child_beit_bin(), args);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  return child_status(status);
}

/* ---- item 1: the rule on crafted logits ---------------------------------------- */
static void test_rank_rule(void) {
  printf("a tie or a non-finite logit never counts as correct (logits_rank, logits_top1)\n");
  float same[4] = {1, 1, 1, 1}, plain[3] = {0.1f, 0.9f, 0.3f}, tie_top[3] = {2, 2, 1};
  float nan_other[3] = {NAN, 5, 1}, nan_label[2] = {1, NAN}, inf_label[2] = {INFINITY, 0};
  float neg_inf[3] = {-INFINITY, 3, -INFINITY};
  CHECK_TRUE(logits_rank(same, 4, 0) == 3 && logits_rank(same, 4, 3) == 3 && logits_top1(same, 4) == -1,
             "all equal: rank %d (every other class ties), no prediction (%d)", logits_rank(same, 4, 0), logits_top1(same, 4));
  CHECK_TRUE(logits_rank(plain, 3, 1) == 0 && logits_rank(plain, 3, 2) == 1 && logits_rank(plain, 3, 0) == 2 &&
             logits_top1(plain, 3) == 1, "ordinary logits: ranks 2, 0, 1, prediction 1");
  CHECK_TRUE(logits_rank(tie_top, 3, 0) == 1 && logits_rank(tie_top, 3, 1) == 1 && logits_top1(tie_top, 3) == -1,
             "a tie at the top: both tied classes rank 1 (top-5, not top-1), no prediction");
  CHECK_TRUE(logits_rank(nan_other, 3, 1) == 3 && logits_top1(nan_other, 3) == -1,
             "a NaN among the logits: the label ranks K (wrong even in top-5), no prediction");
  CHECK_TRUE(logits_rank(nan_label, 2, 1) == 2 && logits_rank(inf_label, 2, 0) == 2 && logits_top1(inf_label, 2) == -1,
             "a NaN or +infinity as the label's logit: rank K, no prediction");
  CHECK_TRUE(logits_rank(neg_inf, 3, 1) == 0 && logits_top1(neg_inf, 3) == 1,
             "-infinity for the other classes: the finite label is top-1");
  /* random rows with ties, NaN and infinities: top1 == y exactly when rank(y) == 0 */
  beit_rng r;
  beit_rng_seed(&r, 19, 0, 0, 0);
  int consistent = 1, rows = 0;
  for (int i = 0; i < 20000; i++, rows++) {
    float x[5];
    for (int k = 0; k < 5; k++) {
      int v = (int)beit_rng_randint(&r, 0, 7);
      x[k] = v == 6 ? NAN : v == 7 ? (beit_rng_uniform(&r) < 0.5 ? INFINITY : -INFINITY) : (float)v;
    }
    int y = (int)beit_rng_randint(&r, 0, 4), top = logits_top1(x, 5);
    consistent &= (top == y) == (logits_rank(x, 5, y) == 0);
  }
  CHECK_TRUE(consistent, "%d random rows (ties, NaN, infinities): prediction == label exactly when rank == 0", rows);
}

/* ---- checkpoints with edited weights or metadata ---------------------------------- */
/* Copies src to dst; head.weight and head.bias set to `head` when set_head; metadata
 * pairs kv[0..2n) replace or add keys. */
static int edit_checkpoint(const char *src, const char *dst, int set_head, float head, const char *const *kv, int n) {
  beit_safetensors st;
  if (beit_st_open(&st, src) != BEIT_OK) return printf("  FAIL %s\n", beit_last_error()), -1;
  beit_st_tensor *t = test_keep(calloc((size_t)st.n, sizeof *t));
  for (int i = 0; i < st.n; i++) {
    size_t numel = beit_st_numel(&st.e[i]);
    float *x = test_keep(malloc(numel * sizeof(float) + 1));
    beit_st_read_f32(&st, i, x, numel);
    if (set_head && !strncmp(st.e[i].name, "head.", 5))
      for (size_t k = 0; k < numel; k++) x[k] = head;
    t[i] = (beit_st_tensor){st.e[i].name, st.e[i].ndim, st.e[i].shape, x};
  }
  const char **meta = test_keep(calloc(2 * ((size_t)st.nmeta + n) + 2, sizeof *meta));
  int m = 0;
  for (int i = 0; i < st.nmeta; i++) {
    int replaced = 0;
    for (int j = 0; j < n; j++) replaced |= !strcmp(st.meta_keys[i], kv[2 * j]);
    if (!replaced) meta[2 * m] = st.meta_keys[i], meta[2 * m + 1] = st.meta_vals[i], m++;
  }
  for (int j = 0; j < n; j++) meta[2 * m] = kv[2 * j], meta[2 * m + 1] = kv[2 * j + 1], m++;
  int rc = beit_st_write(dst, t, st.n, meta, m);
  beit_st_close(&st);
  if (rc != BEIT_OK) printf("  FAIL %s\n", beit_last_error());
  return rc == BEIT_OK ? 0 : -1;
}

/* A 2-epoch fine-tuning of the micro model on the tiny dataset: best.safetensors. */
static int make_finetuned(void) {
  char err[1200], out[1200];
  TEST_PATHF(err, "%s.err", g_ft);
  TEST_PATHF(out, "%s.out", g_ft);
  char *args[] = {(char *)child_beit_bin(), "finetune", "--model", "micro", "--data", g_data, "--epochs", "2", "--batch",
                  "32", "--threads", "2", "--workers", "1", "--quiet", "--mixup", "0", "--cutmix", "0", "--lr", "0.01",
                  "--out", g_ft, NULL};
  int rc = run_beit(args, out, err);
  TEST_PATHF(g_best, "%s/best.safetensors", g_ft);
  return rc == 0 && file_exists(g_best) ? 0 : -1;
}

/* "top-1 12.50%" of eval's first line; -1 when absent. */
static double eval_top1(const char *out) {
  const char *p = strstr(out, "top-1 ");
  return p ? atof(p + 6) : -1;
}

/* ---- item 1 through the command: a zeroed head -------------------------------------- */
static void test_zero_head(void) {
  printf("a classifier with a zeroed head (constant logits) scores no better than chance\n");
  char z[1100], out[1100], err[1100];
  fx_path(z, sizeof z, "zero-head.safetensors");
  fx_path(out, sizeof out, "zero.out");
  fx_path(err, sizeof err, "zero.err");
  if (edit_checkpoint(g_best, z, 1, 0.0f, NULL, 0) != 0) return;
  char *args[] = {(char *)child_beit_bin(), "eval", "--checkpoint", z, "--data", g_data, NULL};
  int rc = run_beit(args, out, err);
  char *o = slurp(out);
  double top1 = eval_top1(o);
  CHECK_TRUE(rc == 0 && top1 >= 0 && top1 <= 20 && strstr(o, "64 images without a prediction"),
             "beit eval of a zeroed head: exit %d, top-1 %.2f%% (<= 20%%, was 100%%), all 64 without a prediction", rc, top1);
  free(o);
  /* the library: beit_evaluate and the training accuracy of beit_forward */
  beit_model m;
  beit_checkpoint_info info;
  beit_dataset ds;
  memset(&ds, 0, sizeof ds);
  if (beit_checkpoint_open(&m, z, &info) != BEIT_OK || beit_model_reserve(&m, 16, 0) != BEIT_OK ||
      beit_dataset_open(&ds, g_data, 0) != BEIT_OK) {
    CHECK_TRUE(0, "open %s: %s", z, beit_last_error());
    return;
  }
  beit_eval_result r;
  int ok = beit_evaluate(&m, &ds, m.cfg.image_size, &r, 0) == BEIT_OK;
  int64_t diagonal = 0;
  for (int k = 0; ok && k < r.num_classes; k++) diagonal += r.confusion[(size_t)k * r.num_classes + k];
  CHECK_TRUE(ok && r.n == 64 && r.top1 == 0 && r.top5 == 0 && r.no_pred == 64 && diagonal == 0,
             "beit_evaluate: top-1 %lld, top-5 %lld of %lld, %lld without a prediction, confusion diagonal %lld",
             (long long)r.top1, (long long)r.top5, (long long)r.n, (long long)r.no_pred, (long long)diagonal);
  free(r.confusion);
  float *x = test_keep(calloc((size_t)16 * m.cfg.channels * m.cfg.image_size * m.cfg.image_size, sizeof(float)));
  int32_t labels[16] = {0};
  beit_input in = {.B = 16, .images = x, .labels = labels};
  beit_stats s;
  beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, &s);
  CHECK_TRUE(s.correct == 0, "beit_forward's training accuracy counts no tie as correct (%lld of 16)", (long long)s.correct);
  beit_dataset_close(&ds);
  beit_checkpoint_info_free(&info);
  beit_model_free(&m);
}

int main(void) {
  TEST_BEGIN("test_eval");
  fx_path(g_tiny, sizeof g_tiny, "tiny-mnist");
  TEST_PATHF(g_data, "mnist:%s", g_tiny);
  fx_path(g_ft, sizeof g_ft, "ft");
  char cmd[1200];
  TEST_PATHF(cmd, "rm -rf '%s'", g_ft);
  CHECK_TRUE(system(cmd) == 0 && make_tiny_mnist(g_tiny, 256, 64) == 0, "tiny dataset in %s", g_tiny);
  test_rank_rule();
  if (make_finetuned() != 0) {
    CHECK_TRUE(0, "a tiny fine-tuning into %s", g_ft);
    return TEST_END();
  }
  test_zero_head();
  return TEST_END();
}
