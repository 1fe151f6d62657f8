/* test_errors.c - the error rule where it had holes (docs/reliability.md): an
 * allocation that fails inside the library returns BEIT_ERR with a message
 * naming what was being allocated, never an abort, a crash or an exit
 * (BEIT_TEST_ALLOC_FAIL makes the named allocation fail); the recipes return a
 * status and print no error, so only the program (src/cli) prints the one line
 * and chooses the exit code. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "fixture.h"
#include "model/beit.h"
#include "model/params.h"
#include "train/recipes.h"
#include "test.h"

static char g_data[1100];

/* Runs fn with stderr going to a file; returns what it printed there (caller frees). */
static char *stderr_during(int (*fn)(const void *), const void *arg, int *rc) {
  char path[1200];
  snprintf(path, sizeof path, "%s/errors/stderr.txt", fx_dir());
  fflush(stderr);
  int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2), close(fd);
  *rc = fn(arg);
  fflush(stderr);
  dup2(saved, 2), close(saved);
  return slurp(path);
}

static int run_finetune(const void *o) { return beit_finetune(o); }
static int run_linprobe(const void *o) { return beit_linprobe(o); }

static void check_params(void) {
  printf("the parameter table\n");
  setenv("BEIT_TEST_ALLOC_FAIL", "parameter table", 1);
  beit_params p;
  beit_params_init(&p);
  int i = beit_params_add(&p, "a.weight", 2, (int64_t[]){2, 3}, 0, 1);
  CHECK_TRUE(i == -1 && strstr(beit_last_error(), "parameter table"), "beit_params_add when the table cannot grow: -1 "
             "(before: an abort), '%s'", beit_last_error());
  CHECK_TRUE(beit_params_alloc(&p) == BEIT_ERR && strstr(beit_last_error(), "parameter table"),
             "beit_params_alloc after it: BEIT_ERR, '%s'", beit_last_error());
  beit_params_free(&p);
  beit_config c = {.image_size = 16, .channels = 3, .patch_size = 4, .num_classes = 10, .use_mean_pooling = 1};
  beit_config_preset(&c, "micro");
  beit_model m;
  CHECK_TRUE(beit_model_init(&m, &c) == BEIT_ERR && strstr(beit_last_error(), "parameter table"),
             "beit_model_init: BEIT_ERR, '%s'", beit_last_error());
  CHECK_TRUE(beit_config_param_count(&c) < 0, "beit_config_param_count: -1");
  unsetenv("BEIT_TEST_ALLOC_FAIL");
  CHECK_TRUE(beit_model_init(&m, &c) == BEIT_OK, "without the failure the same model builds");
  beit_model_free(&m);
}

static void check_recipes(void) {
  printf("recipes return a status and print no error\n");
  beit_recipe_opts o;
  beit_recipe_defaults_finetune(&o);
  char out[1200];
  snprintf(out, sizeof out, "%s/errors/ft", fx_dir());
  o.data = "mnist:/nonexistent-beit-data", o.out = out, o.model = "micro", o.quiet = 1, o.epochs = 1, o.batch = 32;
  int rc;
  char *err = stderr_during(run_finetune, &o, &rc);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "nonexistent-beit-data") && !strstr(err, "nonexistent"),
             "beit_finetune on a missing dataset: BEIT_ERR (before: the exit code 1), message '%.120s', "
             "nothing printed (printed: '%.100s')", beit_last_error(), err);
  free(err);
  beit_linprobe_opts lo = {.data = g_data, .model = "micro", .patch_size = 4, .epochs = 1, .lr = 4e-3f, .quiet = 1};
  setenv("BEIT_TEST_ALLOC_FAIL", "probe labels", 1);
  err = stderr_during(run_linprobe, &lo, &rc);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "out of memory") &&
             strstr(beit_last_error(), "probe labels") && !strstr(err, "probe labels"),
             "beit_linprobe when its labels cannot be allocated: BEIT_ERR, '%s', nothing printed", beit_last_error());
  free(err);
  unsetenv("BEIT_TEST_ALLOC_FAIL");
}

/* The program prints the library's message once and exits 1. */
static void check_cli(void) {
  printf("the program prints the error and exits 1\n");
  char out[1200], errp[1200];
  snprintf(out, sizeof out, "%s/errors/ft-cli", fx_dir());
  snprintf(errp, sizeof errp, "%s/errors/ft-cli.err", fx_dir());
  char *ft[] = {(char *)child_beit_bin(), "finetune", "--model", "micro", "--data", g_data, "--batch", "64",
                "--epochs", "1", "--threads", "2", "--workers", "1", "--quiet", "--overwrite", "--out", out, NULL};
  child_opts co = {.env = {"BEIT_TEST_ALLOC_FAIL=class names of the checkpoint"}, .err_path = errp};
  int rc = child_run(ft, &co);
  char *err = slurp(errp);
  CHECK_TRUE(rc == 1 && strstr(err, "beit finetune: out of memory") && strstr(err, "class names"),
             "finetune when the checkpoint's metadata cannot be allocated: exit %d, '%.200s'", rc, err);
  free(err);
  char *lp[] = {(char *)child_beit_bin(), "linprobe", "--data", g_data, "--model", "micro", "--epochs", "1",
                "--threads", "2", "--quiet", NULL};
  co = (child_opts){.env = {"BEIT_TEST_ALLOC_FAIL=probe order"}, .err_path = errp};
  rc = child_run(lp, &co);
  err = slurp(errp);
  const char *first = strstr(err, "probe order");
  CHECK_TRUE(rc == 1 && strstr(err, "beit linprobe: out of memory") && first && !strstr(first + 1, "probe order"),
             "linprobe: exit %d, the message once: '%.200s'", rc, err);
  free(err);
  rc = child_run(lp, &(child_opts){.err_path = errp});
  CHECK_TRUE(rc == 0, "linprobe without the failure: exit %d", rc);
}

int main(void) {
  TEST_BEGIN("test_errors");
  beit_set_threads(2);
  char dir[1100];
  snprintf(dir, sizeof dir, "%s/errors", fx_dir());
  beit_mkdir_p(dir);
  snprintf(g_data, sizeof g_data, "%s/errors/mnist", fx_dir());
  CHECK_TRUE(make_tiny_mnist(g_data, 256, 32) == 0, "tiny dataset in %s", g_data);
  memmove(g_data + 6, g_data, strlen(g_data) + 1), memcpy(g_data, "mnist:", 6);
  check_params();
  check_recipes();
  check_cli();
  return TEST_END();
}
