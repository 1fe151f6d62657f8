/* test_ema.c - --model-ema (issue 18): the EMA update against its formula over
 * AdamW steps, and a fine-tuning run whose evaluation, best.safetensors and
 * model.safetensors are the EMA weights, kept in the checkpoint as optim.ema.*
 * (resume with it bit for bit: tests/test_resume.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "fixture.h"
#include "model/beit.h"
#include "test.h"
#include "train/train.h"

/* timm's ModelEma: ema = decay * ema + (1 - decay) * weights after every update, starting from the weights. */
static void test_update_formula(void) {
  printf("the EMA after 5 AdamW steps against ema = d * ema + (1 - d) * w, in double\n");
  beit_config c = {.image_size = 16, .channels = 1, .patch_size = 4, .num_classes = 3};
  beit_config_preset(&c, "micro");
  beit_model m;
  if (beit_model_init(&m, &c) != BEIT_OK || beit_model_reserve(&m, 1, BEIT_GRAD_KEEP) != BEIT_OK) {
    CHECK_TRUE(0, "a micro model: %s", beit_last_error());
    return;
  }
  beit_model_init_weights(&m, 7, 0.001f);
  beit_optimizer opt;
  beit_optim_cfg oc = {.lr = 1e-2f, .total_steps = 5, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .layer_decay = 1};
  size_t n = m.params.total;
  double *ref = test_keep(malloc(n * sizeof(double)));
  float *reff = test_keep(malloc(n * sizeof(float)));
  int rc = beit_optimizer_init(&opt, &m.params, &oc) | beit_optimizer_ema_init(&opt, 0.75f);
  CHECK_TRUE(rc == BEIT_OK && !memcmp(opt.ema, m.params.data, n * sizeof(float)), "the EMA starts as the weights");
  for (size_t i = 0; i < n; i++) ref[i] = m.params.data[i];
  beit_rng r;
  beit_rng_seed(&r, 1, BEIT_RNG_TEST, 0, 0);
  double d = 0.75;
  for (int step = 0; step < 5; step++) {
    for (size_t i = 0; i < n; i++) m.params.grad[i] = (float)beit_rng_normal(&r);
    beit_optimizer_step(&opt);
    for (size_t i = 0; i < n; i++) ref[i] = d * ref[i] + (1 - d) * m.params.data[i];
  }
  for (size_t i = 0; i < n; i++) reff[i] = (float)ref[i];
  check_close("EMA after 5 steps", opt.ema, reff, n, 1e-6, 1e-5);
  int moved = 0;
  for (size_t i = 0; i < n; i++) moved += opt.ema[i] != m.params.data[i];
  CHECK_TRUE(moved > (int)(n / 2), "and differs from the weights (%d of %zu values)", moved, n);
  beit_optimizer_free(&opt);
  beit_model_free(&m);
}

/* Reads tensor `name` of an open file into a fresh buffer (NULL if absent). */
static float *tensor(const beit_safetensors *st, const char *name, size_t *numel) {
  int i = beit_st_find(st, name);
  if (i < 0) return NULL;
  *numel = beit_st_numel(&st->e[i]);
  float *x = test_keep(malloc(*numel * sizeof(float) + 1));
  return beit_st_read_f32(st, i, x, *numel) == BEIT_OK ? x : NULL;
}

/* beit eval's test loss of a weights file, as printed ("?" when it fails). */
static void eval_loss(const char *ckpt, const char *data, char *loss, size_t n) {
  char eo[1100], ee[1100];
  TEST_PATHF(eo, "%s/ema-eval.out", fx_dir());
  TEST_PATHF(ee, "%s/ema-eval.err", fx_dir());
  char *args[] = {(char *)child_beit_bin(), "eval", "--checkpoint", (char *)ckpt, "--data", (char *)data, NULL};
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(eo, "w", stdout) || !freopen(ee, "w", stderr)) _exit(126);
    execv(child_beit_bin(), args);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  char *o = slurp(eo);
  const char *l = o && child_status(status) == 0 ? strstr(o, "loss ") : NULL;
  snprintf(loss, n, "%s", "?");
  if (l) snprintf(loss, n, "%.4f", atof(l + 5));
  free(o);
}

static void test_finetune_run(void) {
  printf("beit finetune --model-ema: evaluated, and written as best/model.safetensors; the checkpoint keeps both\n");
  char data_dir[1000], data[1100], out[1100], log[1200], p[1200], q[1200];
  TEST_PATHF(data_dir, "%s/ema-mnist", fx_dir());
  TEST_PATHF(data, "mnist:%s", data_dir);
  TEST_PATHF(out, "%s/ema-run", fx_dir());
  CHECK_TRUE(make_tiny_mnist(data_dir, 128, 64) == 0, "tiny dataset");
  char *args[] = {(char *)child_beit_bin(), "finetune", "--model", "micro", "--data", data, "--batch", "32",
                  "--epochs", "2", "--threads", "2", "--workers", "1", "--quiet", "--model-ema", "--model-ema-decay",
                  "0.5", "--lr", "1e-2", "--overwrite", "--out", out, NULL};
  CHECK_TRUE(child_run(args, NULL) == 0, "fine-tuning with --model-ema exits 0");
  TEST_PATHF(p, "%s/config.json", out);
  char *conf = slurp(p);
  CHECK_TRUE(conf && strstr(conf, "\"crop_pad\":\t4") && strstr(conf, "\"randaug\":\t\"rand-m9-mstd0.5-inc1\"") &&
             strstr(conf, "\"reprob\":\t0.25"), "config.json: the defaults at 28 px, RandAugment, reprob 0.25 and "
             "--crop-pad -1 resolved to 4 (unilm's RandomCrop(S, padding 4) up to 32 px)");
  free(conf);
  beit_safetensors ck, model, best;
  TEST_PATHF(p, "%s/checkpoint.safetensors", out);
  TEST_PATHF(q, "%s/model.safetensors", out);
  TEST_PATHF(log, "%s/best.safetensors", out);
  if (beit_st_open(&ck, p) != BEIT_OK || beit_st_open(&model, q) != BEIT_OK || beit_st_open(&best, log) != BEIT_OK) {
    CHECK_TRUE(0, "the run's files open: %s", beit_last_error());
    return;
  }
  int same_ema = 1, differs = 0, checked = 0;
  for (int i = 0; i < model.n; i++) {
    char name[300];
    size_t nw = 0, ne = 0, nm = 0;
    snprintf(name, sizeof name, "optim.ema.%s", model.e[i].name);
    float *w = tensor(&ck, model.e[i].name, &nw), *e = tensor(&ck, name, &ne), *mw = tensor(&model, model.e[i].name, &nm);
    if (!w || !e || !mw || nw != nm || ne != nm) {
      same_ema = 0;
      continue;
    }
    checked++;
    same_ema &= !memcmp(e, mw, nm * sizeof(float));
    differs |= memcmp(w, mw, nm * sizeof(float)) != 0;
  }
  CHECK_TRUE(checked > 0 && same_ema, "model.safetensors holds the checkpoint's optim.ema.* (%d tensors)", checked);
  CHECK_TRUE(differs, "which differ from the trained weights the checkpoint also holds");
  beit_st_close(&ck), beit_st_close(&model), beit_st_close(&best);
  /* the evaluation is the EMA's: the last logged test loss is beit eval's of model.safetensors (the EMA at the
     end), not of checkpoint.safetensors (the trained weights) */
  TEST_PATHF(p, "%s/log.jsonl", out);
  char *text = slurp(p), logged[32] = "?", best_logged[32] = "?";
  double top = -1;
  for (char *s = text; s && (s = strstr(s, "\"test_top1\": ")); s++) {
    double acc = atof(s + 13);
    const char *l = strstr(s, "\"test_loss\": ");
    if (!l) break;
    snprintf(logged, sizeof logged, "%.4f", atof(l + 13));
    if (acc > top) top = acc, snprintf(best_logged, sizeof best_logged, "%s", logged);  /* the first best is kept */
  }
  free(text);
  char ema_loss[32], trained_loss[32];
  TEST_PATHF(p, "%s/model.safetensors", out);
  TEST_PATHF(q, "%s/checkpoint.safetensors", out);
  eval_loss(p, data, ema_loss, sizeof ema_loss), eval_loss(q, data, trained_loss, sizeof trained_loss);
  CHECK_TRUE(!strcmp(logged, ema_loss) && strcmp(logged, trained_loss),
             "last logged test loss %s = beit eval's of the EMA weights %s, not of the trained ones %s", logged,
             ema_loss, trained_loss);
  char best_loss[32];
  eval_loss(log, data, best_loss, sizeof best_loss);
  CHECK_TRUE(!strcmp(best_logged, best_loss), "best.safetensors is the EMA of the best epoch: test loss %s (logged %s)",
             best_loss, best_logged);
}

/* The recipe's flags change what a step computes: --resume refuses another value of each. */
static void test_resume_rules(void) {
  printf("--resume of the --model-ema run with another value of each recipe flag: refused, naming it\n");
  char data[1100], out[1100], err[1100];
  TEST_PATHF(data, "mnist:%s/ema-mnist", fx_dir());
  TEST_PATHF(out, "%s/ema-run", fx_dir());
  TEST_PATHF(err, "%s/ema-resume.err", fx_dir());
  struct { const char *flag, *value, *says; } changed[] = {
      {"--randaug", "none", "--randaug none differs from the run's rand-m9-mstd0.5-inc1"},
      {"--reprob", "0", "--reprob 0 differs from the run's 0.25"},
      {"--crop-pad", "0", "--crop-pad 0 differs from the run's -1"},
      {"--model-ema-decay", "0.9", "--model-ema-decay 0.9 differs from the run's 0.5"},
      {NULL, NULL, "--model-ema is off, but on in the run"},
  };
  for (size_t i = 0; i < sizeof changed / sizeof *changed; i++) {
    int no_ema = !changed[i].flag;
    char *args[40] = {(char *)child_beit_bin(), "finetune", "--model", "micro", "--data", data, "--batch", "32",
                      "--epochs", "2", "--threads", "2", "--workers", "1", "--quiet", "--lr", "1e-2", "--resume",
                      "--out", out, "--model-ema-decay", "0.5"};
    int n = 22;
    if (!no_ema) args[n++] = "--model-ema";
    if (!no_ema) args[n++] = (char *)changed[i].flag, args[n++] = (char *)changed[i].value;
    args[n] = NULL;
    child_opts co = {.err_path = err};
    int rc = child_run(args, &co);
    char *e = slurp(err), *nl = e ? strchr(e, '\n') : NULL;
    if (nl) *nl = 0;
    CHECK_TRUE(rc == 1 && e && strstr(e, changed[i].says), "--resume %s %s: refused (exit %d): %.160s",
               no_ema ? "without --model-ema" : changed[i].flag, no_ema ? "" : changed[i].value, rc, e ? e : "");
    free(e);
  }
}

int main(void) {
  TEST_BEGIN("test_ema");
  test_update_formula();
  test_finetune_run();
  test_resume_rules();
  return TEST_END();
}
