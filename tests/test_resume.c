/* test_resume.c - training never loses work: a tiny pretraining and a tiny
 * fine-tuning are killed with SIGKILL at a random moment (mid-step or mid-write),
 * resumed with --resume, and must end with parameters bit-identical to an
 * uninterrupted run, a checkpoint that always loads, and a log without
 * duplicated or missing steps. Runs the real `beit` binary ($BEIT_BIN). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "fixture.h"
#include "io/safetensors.h"
#include "test.h"

static const char *beit_bin(void) {
  const char *b = getenv("BEIT_BIN");
  return b ? b : "build/beit";
}

/* Runs beit with args; kills it with SIGKILL after kill_ms (0 = never). Returns
 * the exit status, or -SIGKILL if it was killed. */
static int run_beit(char *const args[], int kill_ms) {
  fflush(stdout);  /* or the child would print our buffered output again */
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    freopen("/dev/null", "w", stdout);
    execv(beit_bin(), args);
    _exit(127);
  }
  if (kill_ms > 0) {
    struct timespec ts = {kill_ms / 1000, (kill_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

static int files_equal(const char *a, const char *b) {
  beit_safetensors x, y;
  if (beit_st_open(&x, a) != BEIT_OK) return printf("  %s\n", beit_last_error()), 0;
  if (beit_st_open(&y, b) != BEIT_OK) return beit_st_close(&x), printf("  %s\n", beit_last_error()), 0;
  int same = x.n == y.n && x.data_size == y.data_size && !memcmp(x.data, y.data, x.data_size);
  beit_st_close(&x);
  beit_st_close(&y);
  return same;
}

/* log steps must be strictly increasing, each training line once */
static int log_ok(const char *path, int *lines) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[4096];
  long long last = -1;
  int ok = 1;
  *lines = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strstr(line, "\"loss\"")) continue;  /* training lines (eval lines repeat the step) */
    const char *s = strstr(line, "\"step\":");
    long long step = s ? atoll(s + 7) : -1;
    if (step <= last) ok = 0;
    last = step;
    (*lines)++;
  }
  fclose(f);
  return ok;
}

static void kill_and_resume(const char *command, const char *extra) {
  char ref[900], run[900], a[1100], b[1100], logp[1100];
  snprintf(ref, sizeof ref, "%s/resume-%s-ref", fx_dir(), command);
  snprintf(run, sizeof run, "%s/resume-%s-killed", fx_dir(), command);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", ref, run);
  if (system(cmd) != 0) printf("  (could not clean %s)\n", ref);
  char *base[] = {(char *)beit_bin(), (char *)command, "--model", "micro", "--subset", "256", "--batch", "32",
                  "--epochs", "3", "--threads", "2", "--workers", "2", "--save-every", "3", "--log-every", "1",
                  "--quiet", "--out", NULL, NULL, NULL, NULL};
  const int out_at = 20;  /* the slot after --out */
  int n = out_at;
  base[n++] = ref;
  if (extra) base[n++] = (char *)extra, base[n++] = "pixel";
  base[n] = NULL;
  int rc = run_beit(base, 0);
  CHECK_TRUE(rc == 0, "%s: uninterrupted run exits 0 (got %d)", command, rc);
  base[out_at] = run;
  beit_rng r;
  beit_rng_seed(&r, (uint64_t)time(NULL), BEIT_RNG_TEST, 0, 0);
  int kills = 0, finished = 0;
  for (int attempt = 0; attempt < 8 && !finished; attempt++) {
    snprintf(a, sizeof a, "%s/checkpoint.safetensors", run);
    int have_ckpt = access(a, F_OK) == 0;
    char *args[32];
    int k = 0;
    for (; base[k]; k++) args[k] = base[k];
    if (have_ckpt) args[k++] = "--resume";
    args[k] = NULL;
    int ms = attempt < 4 ? (int)beit_rng_randint(&r, 200, 1500) : 0;  /* the last attempts run to the end */
    rc = run_beit(args, ms);
    if (rc == -SIGKILL) {
      kills++;
      if (access(a, F_OK) == 0) {  /* whatever moment it died, the checkpoint on disk loads */
        beit_safetensors st;
        int loads = beit_st_open(&st, a) == BEIT_OK;
        if (loads) beit_st_close(&st);
        CHECK_TRUE(loads, "%s: checkpoint loads after a SIGKILL at %d ms", command, ms);
      }
    } else {
      finished = rc == 0;
      CHECK_TRUE(rc == 0, "%s: resumed run exits 0 (got %d)", command, rc);
    }
  }
  snprintf(a, sizeof a, "%s/model.safetensors", ref);
  snprintf(b, sizeof b, "%s/model.safetensors", run);
  CHECK_TRUE(finished && files_equal(a, b), "%s: after %d SIGKILLs and resumes the weights equal the uninterrupted run's bit for bit",
             command, kills);
  int l1 = 0, l2 = 0;
  snprintf(logp, sizeof logp, "%s/log.jsonl", ref);
  int ok1 = log_ok(logp, &l1);
  snprintf(logp, sizeof logp, "%s/log.jsonl", run);
  int ok2 = log_ok(logp, &l2);
  CHECK_TRUE(ok1 && ok2 && l1 == l2, "%s: log has every step once (%d lines, uninterrupted %d)", command, l2, l1);
}

int main(void) {
  TEST_BEGIN("test_resume");
  kill_and_resume("pretrain", "--tokenizer");
  kill_and_resume("finetune", NULL);
  return TEST_END();
}
