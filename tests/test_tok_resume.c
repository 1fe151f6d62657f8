/* test_tok_resume.c - tokenizer training survives a kill: a run with
 * --save-every is SIGKILLed once its first checkpoint is on disk, resumed with
 * --resume, and its final tokenizer.safetensors must equal, byte for byte, that
 * of an uninterrupted run with the same flags (30 steps over 8-batch epochs, so
 * the resume crosses epoch boundaries); its log has every logged step once. For
 * the dVAE, the VQ tokenizer (codebook and its EMA state in the checkpoint) and
 * both with --ema (the weights' average in the checkpoint, saved as the tokenizer). */
#include <signal.h>

#include "child.h"
#include "fixture.h"
#include "test.h"

#define FLAGS "--n-hid", "8", "--steps", "30", "--batch", "8", "--log-every", "5", "--save-every", "5", "--workers", \
              "0", "--threads", "1", "--eval-images", "16", "--kl-warmup", "10", "--warmup", "5"

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
  char *common[] = {"beit", "tokenizer", "train", "--data", (char *)spec, "--out", full, "--overwrite", FLAGS};
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
  return TEST_END();
}
