/* test_reproduce.c - scripts/reproduce and scripts/results_md.py (issue 18): the
 * write-up from records whose figures are known by construction
 * (tests/ref/results_md_check.py), and a small matrix on a tiny MNIST-layout set:
 * a recipe grid at seed 0, the next seed run with the grid point chosen on
 * validation, one record per finished run, results.json made from the records,
 * and a second invocation that finds everything done and runs nothing; a VQ
 * tokenizer stopped by SIGTERM (as at the budget) is resumed by the next invocation; the tokenizer and
 * the pretrained encoder are kept beside the records and used from there on another machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "fixture.h"
#include "test.h"
#include <cjson/cJSON.h>

static char g_root[1100], g_dir[1100];

static cJSON *read_json(const char *fmt, const char *a) {
  char path[2400];
  snprintf(path, sizeof path, fmt, g_dir, a);
  char *s = slurp(path);
  cJSON *j = s ? cJSON_Parse(s) : NULL;
  free(s);
  return j;
}

static double num(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_write_up(void) {
  printf("results_md.py on records known by construction\n");
  int rc = child_shell("/usr/bin/python3 '%s/tests/ref/results_md_check.py' '%s' '%s/check'", g_root, g_root, g_dir);
  CHECK_TRUE(rc == 0, "tests/ref/results_md_check.py (exit %d)", rc);
}

/* the sizes of a matrix that runs in seconds: a grid of two recipes at seed 0, then seed 1 */
#define ENV "SUBSET=0 VAL=100 LPC=10 PT_EPOCHS=3 FT_EPOCHS=1 MODEL=micro BATCH=50 RECIPES='official light' " \
            "SCRATCH_LRS=1e-2 LRS=4e-3 SEEDS='0 1' EDGE_STEPS=0"

static int reproduce(const char *extra, const char *log) {
  return child_shell("cd '%s' && " ENV " BEIT='%s' bash scripts/reproduce --data 'mnist:%s/mnist' --out '%s/runs' "
               "--results '%s/records' --docs '%s/docs' --only 'ft-scratch' %s > '%s/%s' 2>&1",
               g_root, child_beit_bin(), g_dir, g_dir, g_dir, g_dir, extra, g_dir, log);
}

static void test_matrix(void) {
  printf("a scratch grid at seed 0, seed 1 at the point chosen on validation, results.json from the records\n");
  child_shell("mkdir -p '%s/docs'", g_dir);
  int rc = reproduce("--budget 10", "first.log");
  CHECK_TRUE(rc == 0, "scripts/reproduce exit %d (%s/first.log)", rc, g_dir);
  cJSON *a = read_json("%s/records/mnist/%s.json", "ft-scratch-s0-official-1e-2");
  cJSON *b = read_json("%s/records/mnist/%s.json", "ft-scratch-s0-light-1e-2");
  cJSON *s1 = read_json("%s/records/mnist/%s.json", "ft-scratch-s1");
  CHECK_TRUE(a && b && s1, "one record per finished run (grid of two, seed 1)");
  if (!a || !b || !s1) goto out;
  const cJSON *sa = cJSON_GetObjectItem(a, "summary"), *sb = cJSON_GetObjectItem(b, "summary");
  const cJSON *ss = cJSON_GetObjectItem(s1, "summary");
  double va = num(sa, "val_top1"), vb = num(sb, "val_top1");
  /* of equals, the first id in alphabetical order: light */
  const char *want = va > vb ? "--lr 1e-2 --layer-decay" : "--randaug none";
  const cJSON *cmd = cJSON_GetObjectItem(s1, "command");
  int light = cJSON_IsString(cmd) && strstr(cmd->valuestring, "--randaug none") != NULL;
  CHECK_TRUE(cJSON_IsString(cmd) && (va > vb ? !light : light), "seed 1 runs the grid point with the best validation "
             "top-1 (official %.3f, light %.3f; want '%s' in: %s)", va, vb, want, cJSON_IsString(cmd) ? cmd->valuestring : "?");
  CHECK_TRUE(!strcmp(cJSON_GetObjectItem(ss, "selected_on")->valuestring, "val"), "selected on validation");
  const cJSON *builds = cJSON_GetObjectItem(s1, "builds");
  CHECK_TRUE(cJSON_GetArraySize(builds) == 1 && cJSON_IsString(cJSON_GetArrayItem(builds, 0)) &&
                 strlen(cJSON_GetArrayItem(builds, 0)->valuestring) >= 7,
             "the record names the commit the binary was built from (%s)",
             cJSON_GetArraySize(builds) ? cJSON_GetArrayItem(builds, 0)->valuestring : "none");
  cJSON *doc = read_json("%s/docs/%s", "results.json");
  const cJSON *scratch = doc ? cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "mnist"), "scratch") : NULL;
  const cJSON *top1 = scratch ? cJSON_GetObjectItem(scratch, "test_top1") : NULL;
  double chosen = 100 * num(va > vb ? sa : sb, "test_top1"), seed1 = 100 * num(ss, "test_top1");
  CHECK_TRUE(cJSON_GetArraySize(top1) == 2 && fabs(cJSON_GetArrayItem(top1, 0)->valuedouble - chosen) < 1e-6 &&
                 fabs(cJSON_GetArrayItem(top1, 1)->valuedouble - seed1) < 1e-6,
             "results.json mnist.scratch.test_top1 = [chosen grid point %.2f, seed 1 %.2f] in percent", chosen, seed1);
  cJSON_Delete(doc);
  struct stat before, after;
  char rec[2400];
  snprintf(rec, sizeof rec, "%s/records/mnist/ft-scratch-s1.json", g_dir);
  stat(rec, &before);
  rc = reproduce("--budget 10", "second.log");
  stat(rec, &after);
  char *second = NULL, path[2400];
  snprintf(path, sizeof path, "%s/second.log", g_dir);
  second = slurp(path);
  CHECK_TRUE(rc == 0 && second && !strstr(second, "beit finetune") && before.st_mtime == after.st_mtime &&
                 before.st_size == after.st_size,
             "a second invocation finds every run done and runs nothing (exit %d)", rc);
  free(second);
  rc = reproduce("--list", "list.log");
  snprintf(path, sizeof path, "%s/list.log", g_dir);
  char *list = slurp(path);
  CHECK_TRUE(rc == 0 && list && strstr(list, "done     ft-scratch-s1"), "--list shows the finished runs");
  free(list);
  /* the grid's one lr is both of its ends: with EDGE_STEPS=1 the best recipe gets 2e-2 beside it */
  rc = child_shell("cd '%s' && " ENV " EDGE_STEPS=1 BEIT='%s' bash scripts/reproduce --data 'mnist:%s/mnist' --out "
                   "'%s/runs' --results '%s/records' --docs '%s/docs' --only 'ft-scratch' --list > '%s/edge.log' 2>&1",
                   g_root, child_beit_bin(), g_dir, g_dir, g_dir, g_dir, g_dir);
  snprintf(path, sizeof path, "%s/edge.log", g_dir);
  list = slurp(path);
  char want_edge[80];
  snprintf(want_edge, sizeof want_edge, "pending  ft-scratch-s0-%s-2e-2:", va > vb ? "official" : "light");
  CHECK_TRUE(rc == 0 && list && strstr(list, want_edge) && !strstr(list, va > vb ? "s0-light-2e-2" : "s0-official-2e-2"),
             "a best point at the end of its lrs: the grid grows past it, for that recipe only ('%s')", want_edge);
  free(list);
out:
  cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(s1);
}

/* The tokenizer run gets SIGTERM (what `timeout` sends at the budget) once it has opened its folder: it saves a
 * checkpoint, so the next invocation continues it with --resume and finishes it. $BEIT is a wrapper that notes the
 * pid of the latest beit it runs. */
static void test_tokenizer_stop(void) {
  printf("a tokenizer stopped at the budget is resumed by the next invocation\n");
  char wrap[1200], pidf[1200], log[1200], cmd[12000], first[1200];
  snprintf(wrap, sizeof wrap, "%s/beit-wrap.sh", g_dir);
  snprintf(pidf, sizeof pidf, "%s/beit.pid", g_dir);
  snprintf(log, sizeof log, "%s/runs/mnist/tok-vq/log.jsonl", g_dir);
  snprintf(first, sizeof first, "%s/tok-first.log", g_dir);
  child_shell("printf '#!/bin/sh\\necho $$ > \"%s\"\\nexec \"%s\" \"$@\"\\n' > '%s' && chmod +x '%s'", pidf,
              child_beit_bin(), wrap, wrap);
  snprintf(cmd, sizeof cmd, "cd '%s' && " ENV " TOK_STEPS=3 BEIT='%s' bash scripts/reproduce --data 'mnist:%s/mnist' "
           "--out '%s/runs' --results '%s/records' --docs '%s/docs' --only '^tok-vq$' --budget 10 > '%s' 2>&1",
           g_root, wrap, g_dir, g_dir, g_dir, g_dir, first);
  fflush(stdout);
  pid_t script = fork();
  if (script == 0) execl("/bin/sh", "sh", "-c", cmd, (char *)NULL), _exit(127);
  int status = 0, ended = 0;
  for (int i = 0; i < 300000 && !file_exists(log); i++) {
    if (waitpid(script, &status, WNOHANG) == script) { ended = 1; break; }
    child_sleep_ms(0.2);
  }
  char *p = slurp(pidf);
  int pid = atoi(p);
  free(p);
  if (!ended && pid > 0) kill((pid_t)pid, SIGTERM);
  if (!ended) waitpid(script, &status, 0);
  char *a = slurp(first), ckpt[1200];
  snprintf(ckpt, sizeof ckpt, "%s/runs/mnist/tok-vq/checkpoint.safetensors", g_dir);
  CHECK_TRUE(!ended && WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(a, "tok-vq: stopped at the budget") &&
                 file_exists(ckpt), "SIGTERM: the script ends (exit %d), the run is stopped with its checkpoint "
             "(%s): %.300s", WIFEXITED(status) ? WEXITSTATUS(status) : -1, file_exists(ckpt) ? "saved" : "none", a);
  free(a);
  snprintf(cmd, sizeof cmd, "%s/tok-second.log", g_dir);
  int rc = child_shell("cd '%s' && " ENV " TOK_STEPS=3 BEIT='%s' bash scripts/reproduce --data 'mnist:%s/mnist' "
                       "--out '%s/runs' --results '%s/records' --docs '%s/docs' --only '^tok-vq$' --budget 10 > '%s' "
                       "2>&1", g_root, child_beit_bin(), g_dir, g_dir, g_dir, g_dir, cmd);
  char *b = slurp(cmd), rec[1200];
  snprintf(rec, sizeof rec, "%s/records/mnist/tok-vq.json", g_dir);
  CHECK_TRUE(rc == 0 && strstr(b, "tok-vq (partial)") && strstr(b, "resuming from") &&
                 strstr(b, "tok-vq: done") && file_exists(rec),
             "the next invocation resumes it (--resume: 'resuming from') and finishes it with its record (exit %d): %.400s", rc, b);
  free(b);
}

/* One invocation on the artefact test's own folders (A), running only the tokenizer, the pretraining and
 * one fine-tuning that needs both. */
static int reproduce_art(const char *log) {
  return child_shell("cd '%s' && " ENV " TOK_STEPS=3 BEIT='%s' bash scripts/reproduce --data 'mnist:%s/mnist' "
                     "--out '%s/art/runs' --results '%s/art/records' --docs '%s/art/docs' --budget 10 "
                     "--only '^(tok-vq|pt-beit-s0|ft-beit-s0-light-4e-3)$' > '%s/art/%s' 2>&1",
                     g_root, child_beit_bin(), g_dir, g_dir, g_dir, g_dir, g_dir, log);
}

/* The tokenizer and the pretrained encoder are kept beside the records, so a fine-tuning in a later session
 * (another machine: no runs folder) does not run them again; one lost with its kept copy is run again, its
 * earlier record moved to superseded/. */
static void test_artefacts(void) {
  printf("tokenizer and encoder kept beside the records; a lost one is run again only when needed\n");
  child_shell("rm -rf '%s/art' && mkdir -p '%s/art/docs'", g_dir, g_dir);
  char log[1400], rec[1400], w[1400];
  int rc = reproduce_art("1.log");
  rc |= child_shell("cmp '%s/art/records/mnist/weights/tok-vq.safetensors' '%s/art/runs/mnist/tok-vq/tokenizer.safetensors' "
                    "&& cmp '%s/art/records/mnist/weights/pt-beit-s0.safetensors' "
                    "'%s/art/runs/mnist/pt-beit-s0/model.safetensors'", g_dir, g_dir, g_dir, g_dir);
  snprintf(rec, sizeof rec, "%s/art/records/mnist/ft-beit-s0-light-4e-3.json", g_dir);
  CHECK_TRUE(rc == 0 && file_exists(rec), "first invocation: three runs, the tokenizer and the encoder kept "
             "(identical to the runs' files; exit %d)", rc);
  /* a new machine: no runs folder; the fine-tuning's record removed so that it needs the encoder again */
  child_shell("rm -rf '%s/art/runs' && rm -f '%s'", g_dir, rec);
  rc = reproduce_art("2.log");
  snprintf(log, sizeof log, "%s/art/2.log", g_dir);
  CHECK_TRUE(rc == 0 && file_exists(rec) && file_has(log, "beit finetune") && !file_has(log, "beit pretrain") &&
                 !file_has(log, "beit tokenizer train"),
             "no runs folder: the fine-tuning runs from the kept encoder, nothing is run again (exit %d)", rc);
  /* the encoder lost with its kept copy: pretraining is run again (not the tokenizer), its old record kept aside */
  snprintf(w, sizeof w, "%s/art/records/mnist/weights/pt-beit-s0.safetensors", g_dir);
  child_shell("rm -rf '%s/art/runs' && rm -f '%s' '%s'", g_dir, rec, w);
  rc = reproduce_art("3.log");
  snprintf(log, sizeof log, "%s/art/3.log", g_dir);
  int aside = child_shell("ls '%s/art/records/mnist/superseded/'pt-beit-s0.*.json > /dev/null 2>&1", g_dir) == 0;
  CHECK_TRUE(rc == 0 && file_has(log, "pt-beit-s0 (lost artefact") && !file_has(log, "beit tokenizer train") &&
                 file_exists(w) && file_exists(rec) && aside,
             "encoder and its copy lost: pretraining run again (%s), kept again (%s), the fine-tuning after it, the "
             "earlier record in superseded/ (%s; exit %d)", file_has(log, "pt-beit-s0 (lost") ? "yes" : "no",
             file_exists(w) ? "yes" : "no", aside ? "yes" : "no", rc);
  /* everything done: a lost runs folder costs nothing when no run needs it */
  child_shell("rm -rf '%s/art/runs' '%s/art/records/mnist/weights'", g_dir, g_dir);
  rc = reproduce_art("4.log");
  snprintf(log, sizeof log, "%s/art/4.log", g_dir);
  CHECK_TRUE(rc == 0 && !file_has(log, "beit "), "all done, artefacts lost: nothing runs (exit %d)", rc);
}

static void test_bad_args(void) {
  printf("bad arguments: one line naming the argument, exit 2\n");
  int rc = child_shell("cd '%s' && bash scripts/reproduce --data fashion-mnist --budget soon > '%s/bad.log' 2>&1", g_root, g_dir);
  char path[2400];
  snprintf(path, sizeof path, "%s/bad.log", g_dir);
  char *s = slurp(path);
  CHECK_TRUE(rc == 2 && s && strstr(s, "--budget 'soon'"), "--budget soon: exit %d, %s", rc, s ? s : "");
  free(s);
  rc = child_shell("cd '%s' && bash scripts/reproduce > '%s/bad.log' 2>&1", g_root, g_dir);
  s = slurp(path);
  CHECK_TRUE(rc == 2 && s && strstr(s, "--data is required"), "no --data: exit %d, %s", rc, s ? s : "");
  free(s);
}

int main(void) {
  TEST_BEGIN("test_reproduce");
  const char *root = getenv("BEIT_ROOT");
  snprintf(g_root, sizeof g_root, "%s", root ? root : ".");
  snprintf(g_dir, sizeof g_dir, "%s/reproduce", fx_dir());
  child_shell("rm -rf '%s' && mkdir -p '%s'", g_dir, g_dir);
  char data[1000];
  snprintf(data, sizeof data, "%.900s/mnist", g_dir);
  CHECK_TRUE(make_tiny_mnist(data, 600, 100) == 0, "tiny dataset in %s", data);
  test_write_up();
  test_matrix();
  test_tokenizer_stop();
  test_artefacts();
  test_bad_args();
  return TEST_END();
}
