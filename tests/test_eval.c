/* test_eval.c - numbers a user can trust from eval and predict (issue 19, items
 * 1-4): a tie or a non-finite logit never counts as correct (crafted logits, and
 * a classifier with a zeroed head scoring at most 20% in `beit eval`); eval,
 * predict and fine-tuning's evaluation prepare images one way, the checkpoint's
 * (the same predictions from eval and predict; eval of best.safetensors gives the
 * logged best top-1; class names that differ are refused); the eval transform is
 * timm's Resize(floor(size / crop_pct)) + CenterCrop(size) also for images at the
 * model size (against torch), and an absurd crop_pct or a std of 0 is refused;
 * predict exits 1 with one line, never a signal, on non-finite logits. */
#include <fcntl.h>
#include <stdarg.h>

#include "child.h"
#include "core/core.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "fixture.h"
#include "model/convert.h"
#include "io/image.h"
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

/* printf arguments for the first line of s: "%.*s" */
#define LINE(s) (int)strcspn((s), "\n"), (s)

static int count_lines_with(const char *text, const char *prefix) {
  int n = 0;
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    n += !strncmp(p, prefix, strlen(prefix));
  return n;
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
  /* random rows with ties, NaN and infinities: top1 == y exactly when rank(y) == 0; rows of
   * 5, 37 and 1027 logits (the vectorised passes' remainders), values from 2K + 1 levels with
   * a NaN or an infinity one time in 8K, so ties at the top and a unique top both occur */
  beit_rng r;
  beit_rng_seed(&r, 19, 0, 0, 0);
  static const int widths[3] = {5, 37, 1027};
  int consistent = 1, rows = 0, predicted = 0;
  float x[1027];
  for (int i = 0; i < 24000; i++, rows++) {
    int K = widths[i % 3], levels = 2 * K, specials = i % 2 ? 8 * K : 2;
    for (int k = 0; k < K; k++) {
      int v = (int)beit_rng_randint(&r, 0, levels + specials - 1);
      x[k] = v == levels ? NAN : v == levels + 1 ? (beit_rng_uniform(&r) < 0.5 ? INFINITY : -INFINITY) : (float)(v % levels);
    }
    int top = logits_top1(x, K), y = top >= 0 && i % 4 == 0 ? top : (int)beit_rng_randint(&r, 0, K - 1);
    predicted += top >= 0;
    consistent &= (top == y) == (logits_rank(x, K, y) == 0);
  }
  CHECK_TRUE(consistent && predicted > rows / 10 && predicted < rows - rows / 10,
             "%d random rows of 5-1027 logits (ties, NaN, infinities; %d with a prediction): prediction == label "
             "exactly when rank == 0", rows, predicted);
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
  beit_eval_prep prep = beit_checkpoint_eval_prep(&m, &info, 0);
  beit_eval_result r;
  int ok = beit_evaluate(&m, &ds, &prep, &r, 0) == BEIT_OK;
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

/* ---- item 2: one preprocessing path ------------------------------------------------ */
/* ROOT/{train,val}/<names[k]>/NNN.png from the tiny test split; files listed in *files. */
static int make_folder(const char *root, const char *const *names, char ***files, int *nfiles) {
  char p[1200];
  TEST_PATHF(p, "%s/t10k-images-idx3-ubyte", g_tiny);
  char *img = slurp(p);
  TEST_PATHF(p, "%s/t10k-labels-idx1-ubyte", g_tiny);
  char *lab = slurp(p);
  *files = test_keep(calloc(64, sizeof(char *)));
  *nfiles = 0;
  int rc = 0;
  for (int i = 0; i < 64 && rc == 0; i++) {
    int y = (unsigned char)lab[8 + i];
    for (int split = 0; split < 2 && rc == 0; split++) {
      TEST_PATHF(p, "%s/%s/%s", root, split ? "val" : "train", names[y]);
      beit_mkdir_p(p);
      TEST_PATHF(p, "%s/%s/%s/%03d.png", root, split ? "val" : "train", names[y], i);
      rc = beit_png_save(p, (const uint8_t *)img + 16 + (size_t)i * 784, 28, 28, 1);
    }
    (*files)[(*nfiles)++] = test_keep(strdup(p));
  }
  free(img), free(lab);
  return rc;
}

/* The confusion matrix eval printed (rows "%2d %-11.11s" then K counts). */
static int parse_confusion(const char *out, int K, long long *conf) {
  const char *p = strstr(out, "columns: predicted)");
  if (!p) return -1;
  p = strchr(p, '\n') + 1;  /* the header of column numbers */
  for (int i = 0; i < K; i++) {
    if (!(p = strchr(p, '\n'))) return -1;
    p++;
    if (strlen(p) < 14 || atoi(p) != i) return -1;
    const char *q = p + 14;
    for (int j = 0; j < K; j++) conf[i * K + j] = strtoll(q, (char **)&q, 10);
  }
  return 0;
}

static int class_of(const char *const *names, const char *name) {
  for (int k = 0; k < 10; k++)
    if (!strcmp(names[k], name)) return k;
  return -1;
}

/* predict's output (file, then "  PP.PP%  name" lines) as a confusion matrix, with
 * the true class from each file's folder. */
static int predict_confusion(char *out, const char *const *names, long long *conf) {
  memset(conf, 0, 100 * sizeof *conf);
  int n = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == ' ') continue;
    char *slash = strrchr(line, '/'), *next = strtok(NULL, "\n");
    if (!slash || !next || !strchr(next, '%')) return -1;
    *slash = 0;
    int t = class_of(names, strrchr(line, '/') + 1), p = class_of(names, strchr(next, '%') + 3);
    if (t < 0 || p < 0) return -1;
    conf[t * 10 + p]++, n++;
  }
  return n;
}

static void test_eval_is_predict(void) {
  printf("eval and predict prepare the same images the same way: the checkpoint's mean/std and crop_pct\n");
  static const char *names[10] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"};
  char root[1100], ckpt[1100], out[1100], err[1100], spec[1200];
  fx_path(root, sizeof root, "folder");
  char cmd[1200];
  TEST_PATHF(cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) return;
  char **files;
  int nfiles;
  CHECK_TRUE(make_folder(root, names, &files, &nfiles) == 0 && nfiles == 64, "64 PNGs in %s/{train,val}/c0..c9", root);
  /* the folder's own normalisation is 0.5/0.5 and its default crop 1: the checkpoint asks for others */
  fx_path(ckpt, sizeof ckpt, "named.safetensors");
  const char *kv[] = {"class_names", "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9", "normalize", "0.2 0.2 0.2 0.25 0.25 0.25",
                      "crop_pct", "0.875"};
  if (edit_checkpoint(g_best, ckpt, 0, 0, kv, 3) != 0) return;
  TEST_PATHF(spec, "folder:%s", root);
  fx_path(out, sizeof out, "named-eval.out");
  fx_path(err, sizeof err, "named-eval.err");
  char *eargs[] = {(char *)child_beit_bin(), "eval", "--checkpoint", ckpt, "--data", spec, NULL};
  int rc = run_beit(eargs, out, err);
  char *eo = slurp(out), *ee = slurp(err);
  long long ce[100], cp[100];
  int parsed = parse_confusion(eo, 10, ce) == 0;
  CHECK_TRUE(rc == 0 && parsed && strstr(ee, "shorter side to 32") && strstr(ee, "mean 0.2 0.2 0.2, std 0.25"),
             "beit eval says it uses the checkpoint's crop (28 -> 32 -> 28) and mean/std (exit %d): %.*s", rc, LINE(ee));
  char **pargs = test_keep(calloc((size_t)nfiles + 8, sizeof(char *)));
  int k = 0;
  pargs[k++] = (char *)child_beit_bin(), pargs[k++] = "predict", pargs[k++] = "--checkpoint", pargs[k++] = ckpt;
  pargs[k++] = "--top", pargs[k++] = "1";
  for (int i = 0; i < nfiles; i++) pargs[k++] = files[i];
  fx_path(out, sizeof out, "named-predict.out");
  fx_path(err, sizeof err, "named-predict.err");
  int prc = run_beit(pargs, out, err);
  char *po = slurp(out);
  int n = predict_confusion(po, names, cp), same = parsed && n == 64 && !memcmp(ce, cp, sizeof ce);
  long long diag_e = 0, diag_p = 0;
  for (int i = 0; i < 10; i++) diag_e += ce[i * 11], diag_p += cp[i * 11];
  CHECK_TRUE(prc == 0 && same, "the confusion matrix of beit eval = that of beit predict's top classes over the 64 files "
             "(correct: eval %lld, predict %lld; %d predictions read)", diag_e, diag_p, n);
  free(eo), free(ee), free(po);
  /* class names that differ from the folder's are refused; --no-name-check evaluates anyway */
  char rev[1100];
  fx_path(rev, sizeof rev, "reversed.safetensors");
  const char *kv2[] = {"class_names", "c9\nc8\nc7\nc6\nc5\nc4\nc3\nc2\nc1\nc0"};
  if (edit_checkpoint(g_best, rev, 0, 0, kv2, 1) != 0) return;
  char *rargs[] = {(char *)child_beit_bin(), "eval", "--checkpoint", rev, "--data", spec, NULL};
  rc = run_beit(rargs, out, err);
  ee = slurp(err);
  CHECK_TRUE(rc == 1 && count_lines_with(ee, "beit eval:") == 1 && strstr(ee, "class 0 is 'c9' in") && strstr(ee, rev) &&
             strstr(ee, spec), "class names in another order: exit %d, one line naming both: %.*s", rc,
             LINE(strstr(ee, "beit eval:") ? strstr(ee, "beit eval:") : ee));
  free(ee);
  char *nargs[] = {(char *)child_beit_bin(), "eval", "--checkpoint", rev, "--data", spec, "--no-name-check", NULL};
  rc = run_beit(nargs, out, err);
  CHECK_TRUE(rc == 0, "--no-name-check evaluates anyway (exit %d)", rc);
}

/* Fine-tuning's evaluation is the one best.safetensors asks `beit eval` for. */
static void test_finetune_eval_agree(void) {
  printf("fine-tuning evaluates as beit eval of its best.safetensors does\n");
  char p[1200], out[1100], err[1100];
  TEST_PATHF(p, "%s/log.jsonl", g_ft);
  char *log = slurp(p);
  double best = -1;
  for (char *q = log; (q = strstr(q, "\"test_top1\": ")); q++) best = fmax(best, atof(q + 13));
  free(log);
  fx_path(out, sizeof out, "best.out");
  fx_path(err, sizeof err, "best.err");
  char *args[] = {(char *)child_beit_bin(), "eval", "--checkpoint", g_best, "--data", g_data, NULL};
  int rc = run_beit(args, out, err);
  char *o = slurp(out), a[32], b[32];
  snprintf(a, sizeof a, "%.2f", 100 * best), snprintf(b, sizeof b, "%.2f", eval_top1(o));
  beit_safetensors st;
  int opened = beit_st_open(&st, g_best) == BEIT_OK;
  const char *crop = opened ? beit_st_meta(&st, "crop_pct") : NULL;
  CHECK_TRUE(rc == 0 && !strcmp(a, b) && crop && !strcmp(crop, "1"),
             "the best logged test_top1 %s%% = beit eval's %s%%; best.safetensors states its crop_pct (%s)", a, b,
             crop ? crop : "none");
  if (opened) beit_st_close(&st);
  free(o);
}

/* ---- item 3: the eval transform -------------------------------------------------- */
static void test_crop_reference(void) {
  printf("the eval transform against torch: Resize(floor(size / crop_pct)) + CenterCrop(size), also at the model size\n");
  beit_safetensors st;
  if (fx_generate(&st, "evalcrop_ref.py", "evalcrop_ref.safetensors", NULL) != 0) {
    CHECK_TRUE(0, "reference script ran");
    return;
  }
  size_t n;
  int32_t *cases = test_keep(fx_i32(&st, "cases", &n));
  for (int k = 0; k < cases[0]; k++) {
    char name[64];
    snprintf(name, sizeof name, "case%d.image", k);
    int idx = beit_st_find(&st, name);
    const beit_st_entry *e = &st.e[idx];
    uint8_t *pix = test_keep(fx_u8(&st, name, &n));
    snprintf(name, sizeof name, "case%d.settings", k);
    float *set = test_keep(fx_f32(&st, name, &n));
    snprintf(name, sizeof name, "case%d.out", k);
    float *ref = test_keep(fx_f32(&st, name, &n));
    beit_image img = {.h = (int)e->shape[0], .w = (int)e->shape[1], .c = (int)e->shape[2], .data = pix};
    float mean[3] = {set[2], set[2], set[2]}, std[3] = {set[3], set[3], set[3]};
    beit_eval_prep prep = beit_eval_prep_make((int)set[0], set[1], mean, std);
    float *got = test_keep(calloc(n, sizeof(float)));
    int rc = beit_aug_eval(&img, &prep, got);
    char what[120];
    snprintf(what, sizeof what, "%dx%dx%d -> %d at crop_pct %g%s", img.h, img.w, img.c, prep.size, prep.crop_pct,
             rc == BEIT_OK ? "" : " (refused)");
    check_close(what, got, ref, n, 1e-4, 1e-4);
  }
  beit_st_close(&st);
  /* crop_pct 1 on a model-size image stays the identity (bit exact) */
  beit_image img = {0};
  beit_image_reserve(&img, 28, 28, 1);
  for (int i = 0; i < 784; i++) img.data[i] = (uint8_t)(i * 37);
  const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
  beit_eval_prep id = beit_eval_prep_make(28, 1.0f, zero, one);
  float out[784];
  int exact = beit_aug_eval(&img, &id, out) == BEIT_OK;
  for (int i = 0; i < 784; i++) exact &= out[i] == img.data[i] * (1.0f / 255.0f);
  CHECK_TRUE(exact, "28x28 at size 28, crop_pct 1: the pixels exactly");
  beit_image_free(&img);
}

static void test_crop_validation(void) {
  printf("absurd crop_pct and normalisation are refused, naming the checkpoint or the flag\n");
  float bad[] = {1e-9f, 0.0f, -0.5f, 1.5f, NAN, INFINITY, 28.0f / 16385};
  int refused = 0;
  for (int i = 0; i < 7; i++) refused += beit_eval_crop_check(28, bad[i]) == BEIT_ERR;
  CHECK_TRUE(refused == 7 && beit_eval_crop_check(28, 1e-9f) == BEIT_ERR && strstr(beit_last_error(), "crop_pct 1e-09"),
             "crop_pct 1e-9, 0, -0.5, 1.5, NaN, inf, 28/16385 refused at 28 px: %s", beit_last_error());
  CHECK_TRUE(beit_eval_crop_check(28, 0.875f) == BEIT_OK && beit_eval_crop_check(28, 28.0f / 16384) == BEIT_OK &&
             beit_eval_crop_check(224, 1.0f) == BEIT_OK, "0.875, 28/16384 and 1 accepted");
  const float mean[3] = {0.5f, 0.5f, 0.5f}, std0[3] = {0, 0, 0}, stdnan[3] = {0.5f, NAN, 0.5f};
  CHECK_TRUE(beit_eval_norm_check(mean, std0) == BEIT_ERR && beit_eval_norm_check(mean, stdnan) == BEIT_ERR &&
             beit_eval_norm_check(mean, mean) == BEIT_OK, "std 0 or NaN refused, 0.5/0.5 accepted");
  /* through the commands: a checkpoint's crop_pct and normalisation, and --crop-pct */
  struct { const char *key, *val, *cmd, *expect; int code; } cases[] = {
      {"crop_pct", "1e-9", "predict", "crop_pct 1e-09", 1},
      {"crop_pct", "1e-9", "eval", "crop_pct 1e-09", 1},
      {"crop_pct", "abc", "predict", "crop_pct nan", 1},
      {"normalize", "0.5 0.5 0.5 0 0 0", "predict", "std 0 0 0", 1},
      {"normalize", "0.5 0.5 0.5 0 0 0", "eval", "std 0 0 0", 1},
      {NULL, NULL, "predict", "--crop-pct", 2},
  };
  char ckpt[1100], out[1100], err[1100], png[1200];
  fx_path(png, sizeof png, "folder/val/c0/000.png");
  for (int i = 0; i < 6; i++) {
    fx_path(ckpt, sizeof ckpt, "meta.safetensors");
    const char *kv[] = {cases[i].key, cases[i].val};
    if (edit_checkpoint(g_best, ckpt, 0, 0, kv, cases[i].key ? 1 : 0) != 0) return;
    fx_path(out, sizeof out, "meta.out");
    fx_path(err, sizeof err, "meta.err");
    char *pargs[] = {(char *)child_beit_bin(), "predict", "--checkpoint", ckpt, png, cases[i].key ? NULL : "--crop-pct",
                     "0.001", NULL};
    char *eargs[] = {(char *)child_beit_bin(), "eval", "--checkpoint", ckpt, "--data", g_data, NULL};
    int rc = run_beit(strcmp(cases[i].cmd, "eval") ? pargs : eargs, out, err);
    char *e = slurp(err), prefix[32];
    snprintf(prefix, sizeof prefix, "beit %s:", cases[i].cmd);
    const char *line = strstr(e, prefix);
    CHECK_TRUE(rc == cases[i].code && count_lines_with(e, prefix) == 1 && line && strstr(line, cases[i].expect) &&
               (cases[i].key ? strstr(line, ckpt) != NULL : 1),
               "%s with %s %s: exit %d, one line: %.*s", cases[i].cmd, cases[i].key ? cases[i].key : "--crop-pct",
               cases[i].key ? cases[i].val : "0.001", rc, LINE(line ? line : e));
    free(e);
  }
}

/* ---- item 4: predict on non-finite logits ------------------------------------------ */
static void test_predict_nonfinite(void) {
  printf("predict exits 1 with one line, never a signal, when the logits are not finite\n");
  char ckpt[1100], out[1100], err[1100], png[1200], png2[1200];
  fx_path(png, sizeof png, "folder/val/c0/000.png");
  fx_path(png2, sizeof png2, "folder/val/c1/001.png");
  float heads[] = {NAN, 3e38f};
  const char *what[] = {"NaN", "huge finite (3e38)"};
  for (int i = 0; i < 2; i++) {
    fx_path(ckpt, sizeof ckpt, "nonfinite.safetensors");
    if (edit_checkpoint(g_best, ckpt, 1, heads[i], NULL, 0) != 0) return;
    fx_path(out, sizeof out, "nonfinite.out");
    fx_path(err, sizeof err, "nonfinite.err");
    char *args[] = {(char *)child_beit_bin(), "predict", "--checkpoint", ckpt, png, png2, NULL};
    int rc = run_beit(args, out, err);
    char *e = slurp(err);
    const char *line = strstr(e, "beit predict:");
    CHECK_TRUE(rc == 1 && count_lines_with(e, "beit predict:") == 1 && line && strstr(line, ckpt) &&
               strstr(line, "non-finite logits"), "%s head weights: exit %d (was a segfault), one line: %.*s", what[i], rc,
               LINE(line ? line : e));
    free(e);
  }
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
  test_crop_reference();
  if (make_finetuned() != 0) {
    CHECK_TRUE(0, "a tiny fine-tuning into %s", g_ft);
    return TEST_END();
  }
  test_zero_head();
  test_eval_is_predict();
  test_finetune_eval_agree();
  test_crop_validation();
  test_predict_nonfinite();
  return TEST_END();
}
