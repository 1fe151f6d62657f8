/* test_tok_resume.c - tokenizer training survives a kill: a run with
 * --save-every is SIGKILLed once its first checkpoint is on disk, resumed with
 * --resume, and its final tokenizer.safetensors must equal, byte for byte, that
 * of an uninterrupted run with the same flags (30 steps over 8-batch epochs, so
 * the resume crosses epoch boundaries); its log has every logged step once. For
 * the dVAE, the VQ tokenizer (codebook and its EMA state in the checkpoint) and
 * both with --ema (the weights' average in the checkpoint, saved as the tokenizer).
 * A SIGTERM / SIGINT (--save-every 0) saves the checkpoint of the step reached and
 * exits 143 / 130, and the default --save-every (auto) checkpoints at step 100. */
#include <signal.h>

#include "io/safetensors.h"

#include "child.h"
#include "fixture.h"
#include "test.h"

#define FLAGS "--n-hid", "8", "--steps", "30", "--batch", "8", "--log-every", "5", "--save-every", "5", "--workers", \
              "0", "--threads", "1", "--eval-images", "16", "--kl-warmup", "10", "--warmup", "5"
#define COMMON(spec, out) "beit", "tokenizer", "train", "--data", (char *)(spec), "--out", (out), "--overwrite", FLAGS

static int count_lines(const char *path) {
  char *s = slurp(path);
  int n = 0;
  for (const char *p = s; p && (p = strstr(p, "{\"step\": ")); p++) n++;
  free(s);
  return n;
}

static int same_bytes(const char *a, const char *b) {
  char *x = slurp(a), *y = slurp(b);
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  long na = -1, nb = -2;
  if (fa) fseek(fa, 0, SEEK_END), na = ftell(fa), fclose(fa);
  if (fb) fseek(fb, 0, SEEK_END), nb = ftell(fb), fclose(fb);
  int same = x && y && na == nb && !memcmp(x, y, (size_t)na);
  free(x), free(y);
  return same;
}

/* One kill-and-resume case: `extra` (NULL-terminated, at most 8) goes after the common flags. */
static void kill_and_resume(const char *tag, const char *spec, char *const *extra) {
  char full[1100], killed[1100], ckpt[1200], a[1200], b[1200], err[1200];
  TEST_PATHF(full, "%s/tokres-%s-full", fx_dir(), tag);
  TEST_PATHF(killed, "%s/tokres-%s-killed", fx_dir(), tag);
  TEST_PATHF(ckpt, "%s/checkpoint.safetensors", killed);
  TEST_PATHF(err, "%s/tokres-%s.err", fx_dir(), tag);
  child_opts o = {.err_path = err};
  char *common[] = {COMMON(spec, full)};
  const int nc = (int)(sizeof common / sizeof common[0]);
  char *argv[64];
  int n = 0;
  for (int i = 0; i < nc; i++) argv[n++] = common[i];
  for (int i = 0; extra[i]; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  int rc = child_run(argv, &o);
  CHECK_TRUE(rc == 0, "%s: uninterrupted run (exit %d)", tag, rc);

  argv[6] = killed;
  char rm[1300];  /* a checkpoint left by an earlier test run must not look like this run's first one */
  snprintf(rm, sizeof rm, "rm -rf '%s'", killed);
  CHECK_TRUE(system(rm) == 0, "%s: no earlier run folder", tag);
  pid_t pid = child_start(argv, &o);
  int status = 0, waited = 0;
  for (int i = 0; i < 200000 && !file_exists(ckpt); i++) {
    if (waitpid(pid, &status, WNOHANG) == pid) { waited = 1; break; }
    child_sleep_ms(0.2);
  }
  if (!waited) kill(pid, SIGKILL), waitpid(pid, &status, 0);
  rc = child_status(status);
  CHECK_TRUE(rc == -SIGKILL, "%s: the second run was SIGKILLed after its first checkpoint (status %d)", tag, rc);
  argv[7] = "--resume";
  rc = child_run(argv, &o);
  char *e = slurp(err);
  CHECK_TRUE(rc == 0, "%s: --resume finishes (exit %d): %.300s", tag, rc, e ? e : "");
  free(e);
  TEST_PATHF(a, "%s/tokenizer.safetensors", full);
  TEST_PATHF(b, "%s/tokenizer.safetensors", killed);
  CHECK_TRUE(same_bytes(a, b),
             "%s: killed + resumed run: tokenizer.safetensors equals the uninterrupted run's byte for byte", tag);
  TEST_PATHF(a, "%s/log.jsonl", full);
  TEST_PATHF(b, "%s/log.jsonl", killed);
  CHECK_TRUE(count_lines(a) == 6 && count_lines(b) == 6, "%s: both logs hold the 6 logged steps once (%d, %d lines)",
             tag, count_lines(a), count_lines(b));
}

/* train.step of dir/checkpoint.safetensors, or -1 */
static long long checkpoint_step(const char *dir) {
  char path[1200];
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  return fx_checkpoint_step(path);
}

/* A signal (SIGTERM or SIGINT) once 3 steps are logged, with --save-every 0: the run exits 128 + sig with one line
 * naming the step, its checkpoint holds that step, and --resume ends with the bytes of kill_and_resume's
 * uninterrupted run (tag must be one of its tags). */
static void signal_and_resume(const char *tag, int sig, const char *spec, char *const *extra) {
  char full[1100], out[1100], log[1200], a[1200], b[1200], err[1200];
  TEST_PATHF(full, "%s/tokres-%s-full", fx_dir(), tag);
  TEST_PATHF(out, "%s/tokres-%s-sig%d", fx_dir(), tag, sig);
  TEST_PATHF(log, "%s/log.jsonl", out);
  TEST_PATHF(err, "%s/tokres-%s-sig.err", fx_dir(), tag);
  child_opts o = {.err_path = err};
  char *argv[64] = {COMMON(spec, out), "--save-every", "0", "--log-every", "1"};  /* the later flag wins */
  int n = 0;
  while (argv[n]) n++;
  for (int i = 0; extra[i]; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  child_shell("rm -rf '%s'", out);
  pid_t pid = child_start(argv, &o);
  int status = 0, waited = 0;
  for (int i = 0; i < 200000 && count_lines(log) < 3; i++) {
    if (waitpid(pid, &status, WNOHANG) == pid) { waited = 1; break; }
    child_sleep_ms(0.2);
  }
  if (!waited) kill(pid, sig), waitpid(pid, &status, 0);
  int rc = child_status(status);
  char *e = slurp(err), want[1300];
  const char *line = strstr(e, "tokenizer: stopped by ");
  long long at = -1;
  snprintf(want, sizeof want, "; checkpoint saved in %s (continue with --resume)\n", out);
  int named = line && sscanf(line + strlen("tokenizer: stopped by SIGTERM at step"), "%lld", &at) == 1 &&
              !strncmp(line + strlen("tokenizer: stopped by "), sig == SIGINT ? "SIGINT" : "SIGTERM", 6) &&
              strstr(line, want);
  CHECK_TRUE(rc == 128 + sig && named && at >= 3 && at < 30 && checkpoint_step(out) == at,
             "%s: %s at step 3 or later: exit %d (want %d), '%.*s', checkpoint of step %lld", tag,
             sig == SIGINT ? "SIGINT" : "SIGTERM", rc, 128 + sig, line ? (int)strcspn(line, "\n") : 6,
             line ? line : "(none)", checkpoint_step(out));
  free(e);
  argv[7] = "--resume";
  rc = child_run(argv, &o);
  TEST_PATHF(a, "%s/tokenizer.safetensors", full);
  TEST_PATHF(b, "%s/tokenizer.safetensors", out);
  CHECK_TRUE(rc == 0 && same_bytes(a, b),
             "%s: stopped + resumed: tokenizer.safetensors equals the uninterrupted run's byte for byte (exit %d)", tag,
             rc);
}

/* Without --save-every a run checkpoints every 100 steps: SIGKILLed after its first one (130 steps), the checkpoint
 * is of step 100 and --resume finishes the run. */
static void default_interval(const char *tag, const char *spec, char *const *extra) {
  char out[1100], err[1200];
  TEST_PATHF(out, "%s/tokres-%s-default", fx_dir(), tag);
  TEST_PATHF(err, "%s/tokres-%s-default.err", fx_dir(), tag);
  child_opts o = {.err_path = err};
  char *argv[64] = {"beit", "tokenizer", "train", "--data", (char *)spec, "--out", out, "--overwrite", "--steps", "130",
                    "--n-hid", "4", "--blocks", "1", "--batch", "8", "--workers", "0", "--threads", "1",
                    "--eval-images", "16"};
  int n = 0;
  while (argv[n]) n++;
  for (int i = 0; extra[i]; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  child_shell("rm -rf '%s'", out);
  char ckpt[1200];
  TEST_PATHF(ckpt, "%s/checkpoint.safetensors", out);
  pid_t pid = child_start(argv, &o);
  int status = 0, waited = 0;
  for (int i = 0; i < 400000 && !file_exists(ckpt); i++) {
    if (waitpid(pid, &status, WNOHANG) == pid) { waited = 1; break; }
    child_sleep_ms(0.2);
  }
  if (!waited) kill(pid, SIGKILL), waitpid(pid, &status, 0);
  int rc = child_status(status);
  CHECK_TRUE(rc == -SIGKILL && checkpoint_step(out) == 100,
             "%s: no --save-every: SIGKILLed after its first checkpoint (status %d), which is of step %lld (want 100)",
             tag, rc, checkpoint_step(out));
  argv[7] = "--resume";
  rc = child_run(argv, &o);
  CHECK_TRUE(rc == 0, "%s: --resume from the default checkpoint finishes (exit %d)", tag, rc);
}

/* k-means has no checkpoint: the default --save-every is no error there, an explicit one is a usage error. */
static void kmeans_save_every(const char *spec) {
  char out[1100], err[1200];
  TEST_PATHF(out, "%s/tokres-kmeans", fx_dir());
  TEST_PATHF(err, "%s/tokres-kmeans.err", fx_dir());
  child_opts o = {.err_path = err};
  char *argv[] = {"beit", "tokenizer", "train", "--data", (char *)spec, "--out", out, "--overwrite", "--type", "kmeans",
                  "--vocab", "16", "--iters", "2", "--threads", "1", "--eval-images", "16", NULL, NULL, NULL};
  int rc = child_run(argv, &o);
  argv[18] = "--save-every", argv[19] = "100";
  int rc2 = child_run(argv, &o);
  char *e = slurp(err);
  CHECK_TRUE(rc == 0 && rc2 == 2 && strstr(e, "--save-every"),
             "k-means: no --save-every runs (exit %d); --save-every 100 is a usage error (exit %d: %.200s)", rc, rc2, e);
  free(e);
}

/* --ema changes what is saved: the run with it differs from the run without. */
static void ema_is_saved(void) {
  char a[1200], b[1200];
  TEST_PATHF(a, "%s/tokres-dvae-full/tokenizer.safetensors", fx_dir());
  TEST_PATHF(b, "%s/tokres-dvae-ema-full/tokenizer.safetensors", fx_dir());
  CHECK_TRUE(file_exists(a) && file_exists(b) && !same_bytes(a, b),
             "--ema 0.9: the saved weights are not the last ones");
}

int main(void) {
  TEST_BEGIN("test_tok_resume");
  char data[1100], spec[1200];
  TEST_PATHF(data, "%s/tokres-mnist", fx_dir());
  TEST_PATHF(spec, "mnist:%s", data);
  CHECK_TRUE(make_tiny_mnist(data, 64, 16) == 0, "tiny dataset");
  char *none[] = {NULL}, *ema[] = {"--ema", "0.9", NULL};
  char *vq[] = {"--type", "vq", "--vocab", "64", NULL};
  char *vq_ema[] = {"--type", "vq", "--vocab", "64", "--ema", "0.9", NULL};
  kill_and_resume("dvae", spec, none);
  kill_and_resume("dvae-ema", spec, ema);
  kill_and_resume("vq", spec, vq);
  kill_and_resume("vq-ema", spec, vq_ema);
  ema_is_saved();
  signal_and_resume("dvae", SIGTERM, spec, none);
  signal_and_resume("vq", SIGTERM, spec, vq);
  signal_and_resume("vq-ema", SIGINT, spec, vq_ema);
  default_interval("dvae", spec, none);
  default_interval("vq", spec, vq);
  kmeans_save_every(spec);
  return TEST_END();
}
