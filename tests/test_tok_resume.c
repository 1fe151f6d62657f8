/* test_tok_resume.c - dVAE tokenizer training survives a kill: a run with
 * --save-every is SIGKILLed once its first checkpoint is on disk, resumed with
 * --resume, and its final tokenizer.safetensors must equal, byte for byte, that
 * of an uninterrupted run with the same flags (30 steps over 8-batch epochs, so
 * the resume crosses epoch boundaries); its log has every logged step once. */
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

int main(void) {
  TEST_BEGIN("test_tok_resume");
  char data[1100], spec[1200], full[1100], killed[1100], ckpt[1200], a[1200], b[1200], err[1200];
  TEST_PATHF(data, "%s/tokres-mnist", fx_dir());
  TEST_PATHF(spec, "mnist:%s", data);
  TEST_PATHF(full, "%s/tokres-full", fx_dir());
  TEST_PATHF(killed, "%s/tokres-killed", fx_dir());
  TEST_PATHF(ckpt, "%s/checkpoint.safetensors", killed);
  TEST_PATHF(err, "%s/tokres.err", fx_dir());
  CHECK_TRUE(make_tiny_mnist(data, 64, 16) == 0, "tiny dataset");
  child_opts o = {.err_path = err};
  char *run_full[] = {"beit", "tokenizer", "train", "--data", spec, "--out", full, "--overwrite", FLAGS, NULL};
  int rc = child_run(run_full, &o);
  CHECK_TRUE(rc == 0, "uninterrupted run (exit %d)", rc);

  char *run_killed[] = {"beit", "tokenizer", "train", "--data", spec, "--out", killed, "--overwrite", FLAGS, NULL};
  pid_t pid = child_start(run_killed, &o);
  int status = 0, waited = 0;
  for (int i = 0; i < 200000 && !file_exists(ckpt); i++) {
    if (waitpid(pid, &status, WNOHANG) == pid) { waited = 1; break; }
    child_sleep_ms(0.2);
  }
  if (!waited) kill(pid, SIGKILL), waitpid(pid, &status, 0);
  rc = child_status(status);
  CHECK_TRUE(rc == -SIGKILL, "the second run was SIGKILLed after its first checkpoint (status %d)", rc);
  char *resume[] = {"beit", "tokenizer", "train", "--data", spec, "--out", killed, "--resume", FLAGS, NULL};
  rc = child_run(resume, &o);
  char *e = slurp(err);
  CHECK_TRUE(rc == 0, "--resume finishes (exit %d): %.300s", rc, e ? e : "");
  free(e);
  TEST_PATHF(a, "%s/tokenizer.safetensors", full);
  TEST_PATHF(b, "%s/tokenizer.safetensors", killed);
  CHECK_TRUE(same_bytes(a, b),
             "killed + resumed run: tokenizer.safetensors equals the uninterrupted run's byte for byte");
  TEST_PATHF(a, "%s/log.jsonl", full);
  TEST_PATHF(b, "%s/log.jsonl", killed);
  CHECK_TRUE(count_lines(a) == 6 && count_lines(b) == 6, "both logs hold the 6 logged steps once (%d, %d lines)",
             count_lines(a), count_lines(b));
  return TEST_END();
}
