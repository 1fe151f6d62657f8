/* test_resume.c - training never loses work. A tiny pretraining and a tiny
 * fine-tuning are killed with SIGKILL again and again, each time at a chosen
 * kind of moment: mid-step, inside a checkpoint write, inside the rotation of
 * the kept checkpoints, inside a weights-file write, inside the log trimming of
 * a resume. BEIT_TEST_WRITE_DELAY_MS holds those moments open long enough to
 * be hit. After every kill every checkpoint on disk must load (checksum,
 * weights, AdamW moments, position); after the last resume the weights, the
 * final checkpoint and best.safetensors must equal those of an uninterrupted
 * run bit for bit, and log.jsonl must hold the same lines (every step once).
 * BEIT_KILLTEST_KILLS sets the kills per recipe (scripts/killtest.sh). */
#include <inttypes.h>

#include "child.h"
#include "core/core.h"
#include "fixture.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "test.h"
#include "train/train.h"

#define KEEP "3"
#define WRITE_DELAY "BEIT_TEST_WRITE_DELAY_MS=25"

typedef enum { AT_STEP, IN_CKPT_WRITE, IN_ROTATION, IN_WEIGHTS_WRITE, IN_LOG_TRIM, NMOMENTS } moment;
static const char *MOMENT_NAMES[NMOMENTS] = {"mid-step", "inside a checkpoint write", "inside the checkpoint rotation",
                                             "inside a weights-file write", "inside the log trim of a resume"};

typedef struct {
  int planned[NMOMENTS], hit[NMOMENTS];
  int kills, mid_write;           /* kills after which a checkpoint .tmp was left: proof of a kill mid-write */
  int verified, loads;            /* kills followed by a full check; checkpoint files loaded */
} kill_stats;

static void path_in(char *out, size_t n, const char *dir, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static int same_file(const char *a, const char *b) {
  struct stat x, y;
  return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

/* The highest "step" of a training line in log.jsonl, or -1. */
static long long last_logged_step(const char *dir) {
  char p[1100];
  path_in(p, sizeof p, dir, "log.jsonl");
  char *s = slurp(p);
  long long last = -1;
  for (char *q = s; (q = strstr(q, "\"step\": ")); q += 8) last = atoll(q + 8);
  free(s);
  return last;
}

static int reached(const char *dir, moment m, long long step) {
  char a[1100], b[1100], c[1100];
  switch (m) {
    case AT_STEP: return last_logged_step(dir) >= step;
    case IN_CKPT_WRITE: path_in(a, sizeof a, dir, "checkpoint.safetensors.tmp"); return file_exists(a);
    case IN_ROTATION:
      path_in(a, sizeof a, dir, "checkpoint.safetensors");
      path_in(b, sizeof b, dir, "checkpoint-1.safetensors");
      path_in(c, sizeof c, dir, "checkpoint-2.safetensors");
      return (!file_exists(b) && file_exists(c)) || same_file(a, b);  /* after the shift / after the link */
    case IN_WEIGHTS_WRITE:
      path_in(a, sizeof a, dir, "model.safetensors.tmp");
      path_in(b, sizeof b, dir, "best.safetensors.tmp");
      return file_exists(a) || file_exists(b);
    case IN_LOG_TRIM: path_in(a, sizeof a, dir, "log.jsonl.tmp"); return file_exists(a);
    default: return 0;
  }
}

/* Runs beit and SIGKILLs it when the moment comes (0-15 ms later for a step).
 * Returns the exit code, or -SIGKILL. */
static int run_until(char *const args[], const char *dir, moment m, long long step, beit_rng *r) {
  child_opts co = {.env = {WRITE_DELAY}};
  pid_t pid = child_start(args, &co);
  for (int armed = 0;;) {  /* armed: the moment was not there yet, so it comes from this run */
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return child_status(status);
    int now = reached(dir, m, step);
    armed |= !now;
    if (now && armed) {
      if (m == AT_STEP) child_sleep_ms((double)beit_rng_randint(r, 0, 15));
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return child_status(status);
    }
    child_sleep_ms(1);
  }
}

/* Loads one checkpoint the way --resume does: model from its config, weights,
 * AdamW moments and position, checksum verified. Returns its step or -1. */
static long long load_checkpoint(const char *path) {
  beit_model m;
  if (beit_model_open(&m, path) != BEIT_OK) return printf("       %s\n", beit_last_error()), -1;
  beit_optimizer opt;
  beit_optim_cfg oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .layer_decay = 1};
  beit_train_state st;
  long long step = -1;
  if (beit_optimizer_init(&opt, &m.params, &oc) == BEIT_OK) {
    if (beit_checkpoint_load(path, &m.params, &opt, &st, 1) == BEIT_OK) step = st.step;
    else printf("       %s\n", beit_last_error());
    beit_optimizer_free(&opt);
  }
  beit_model_free(&m);
  return step;
}

/* After a kill: every kept checkpoint loads, newer names hold newer steps, and
 * once a checkpoint existed, checkpoint.safetensors exists. */
static int verify_after_kill(const char *dir, int had_checkpoint, kill_stats *ks) {
  char p[1100];
  long long newer = -1;
  int ok = 1, any = 0;
  for (int k = 0; k < 10; k++) {
    beit_checkpoint_name(dir, k, p, sizeof p);
    if (!file_exists(p)) {
      if (k == 0 && had_checkpoint) ok = 0, printf("       %s is missing\n", p);
      continue;
    }
    long long step = load_checkpoint(p);
    any = 1;
    if (step < 0) ok = 0;
    else ks->loads++;
    if (step >= 0 && newer >= 0 && step > newer) ok = 0, printf("       %s (step %lld) is newer than a lower name\n", p, step);
    if (step >= 0) newer = step;
  }
  ks->verified++;
  return ok && (any || !had_checkpoint);
}

static int any_checkpoint(const char *dir) {
  char p[1100];
  for (int k = 0; k < 10; k++) {
    beit_checkpoint_name(dir, k, p, sizeof p);
    if (file_exists(p)) return 1;
  }
  return 0;
}

static int files_equal(const char *a, const char *b) {
  beit_safetensors x, y;
  if (beit_st_open(&x, a) != BEIT_OK) return printf("       %s\n", beit_last_error()), 0;
  if (beit_st_open(&y, b) != BEIT_OK) return beit_st_close(&x), printf("       %s\n", beit_last_error()), 0;
  int same = x.n == y.n && x.data_size == y.data_size && !memcmp(x.data, y.data, x.data_size);
  beit_st_close(&x);
  beit_st_close(&y);
  return same;
}

/* log.jsonl without the timing field, which differs between runs. */
static char *log_without_timing(const char *dir) {
  char p[1100];
  path_in(p, sizeof p, dir, "log.jsonl");
  char *s = slurp(p), *w = s;
  const char *field = ", \"images_per_s\": ";
  for (char *q = s; *q;) {
    if (!strncmp(q, field, strlen(field)) && strchr(q, '}')) q = strchr(q, '}');
    else *w++ = *q++;
  }
  *w = 0;
  return s;
}

/* Training lines: steps 1..total, each once and in order. */
static int steps_complete(const char *log, int total) {
  int next = 1;
  for (const char *q = log; (q = strstr(q, "{\"step\": ")); q++) {
    const char *end = strchr(q, '}');
    int training = end && strstr(q, "\"lr\"") && strstr(q, "\"lr\"") < end;
    if (training && atoi(q + 9) != next++) return 0;
  }
  return next == total + 1;
}

static void kill_and_resume(const char *command, int kills, int epochs, beit_rng *r) {
  int total_steps = 8 * epochs;  /* 256 images, batch 32 */
  char ep[16];
  snprintf(ep, sizeof ep, "%d", epochs);
  char ref[900], run[900], a[1100], b[1100], cmd[2048];
  snprintf(ref, sizeof ref, "%s/resume-%s-ref", fx_dir(), command);
  snprintf(run, sizeof run, "%s/resume-%s-killed", fx_dir(), command);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", ref, run);
  if (system(cmd) != 0) printf("  (could not clean %s)\n", ref);
  int finetune = !strcmp(command, "finetune");
  char data[1000];
  snprintf(data, sizeof data, "mnist:%s/tiny-mnist", fx_dir());
  char *args[40] = {(char *)child_beit_bin(), (char *)command, "--model", "micro", "--data", data, "--batch", "32",
                    "--epochs", ep, "--threads", "2", "--workers", "2", "--log-every", "1", "--keep", KEEP, "--quiet",
                    "--save-every", finetune ? "2" : "3", "--out", ref, NULL};
  int n = 23;
  if (!finetune) args[n++] = "--tokenizer", args[n++] = "pixel";
  /* fine-tuning with its default RandAugment, erasing and padded crop, and an EMA of the weights that
     checkpoints must carry (decay 0.9: it differs from the weights within a few steps) */
  if (finetune) args[n++] = "--model-ema", args[n++] = "--model-ema-decay", args[n++] = "0.9";
  args[n] = NULL;
  int rc = child_run(args, NULL);
  CHECK_TRUE(rc == 0, "%s: uninterrupted run exits 0 (got %d)", command, rc);
  args[22] = run;
  kill_stats ks = {0};
  int finished = 0, had_ckpt = 0, all_loaded = 1;
  for (int attempt = 0; attempt < kills + 3 && !finished; attempt++) {
    args[n] = any_checkpoint(run) ? "--resume" : "--overwrite";  /* killed before its first checkpoint: start over */
    args[n + 1] = NULL;
    int killing = ks.kills < kills;
    moment m = killing ? (moment)(ks.kills % NMOMENTS) : NMOMENTS;
    long long target = m == AT_STEP ? last_logged_step(run) + beit_rng_randint(r, 1, 5) : 0;
    if (target >= total_steps) target = total_steps - 1;
    if (m == IN_LOG_TRIM && strcmp(args[n], "--resume"))  /* nothing to resume yet */
      m = AT_STEP, target = beit_rng_randint(r, 1, 5);
    if (killing) ks.planned[m]++;
    rc = run_until(args, run, m, target, r);
    if (rc == -SIGKILL) {
      ks.kills++;
      ks.hit[m]++;
      path_in(a, sizeof a, run, "checkpoint.safetensors.tmp");
      ks.mid_write += file_exists(a);
      int ok = verify_after_kill(run, had_ckpt, &ks);
      all_loaded &= ok;
      if (!ok) printf("       after kill %d (%s)\n", ks.kills, MOMENT_NAMES[m]);
      had_ckpt |= any_checkpoint(run);
      path_in(a, sizeof a, run, "checkpoint.safetensors.tmp");
      remove(a);  /* so the next kill proves itself */
    } else {
      finished = rc == 0;
      if (!finished) printf("       resumed run exited with %d\n", rc);
    }
  }
  CHECK_TRUE(all_loaded && ks.verified == ks.kills, "%s: after each of %d SIGKILLs every kept checkpoint loaded (%d loads, checksum, weights, AdamW state, position)",
             command, ks.kills, ks.loads);
  printf("       kills: ");
  for (int m = 0; m < NMOMENTS; m++) printf("%s%d %s", m ? ", " : "", ks.hit[m], MOMENT_NAMES[m]);
  printf("; %d left a half-written checkpoint .tmp behind\n", ks.mid_write);
  CHECK_TRUE(ks.kills == kills && (kills < 2 || ks.mid_write >= 1), "%s: %d of %d planned kills happened, %d of them inside a checkpoint write",
             command, ks.kills, kills, ks.mid_write);
  CHECK_TRUE(finished, "%s: the last resume ran to the end", command);
  const char *same[] = {"model.safetensors", "checkpoint.safetensors", "best.safetensors"};
  for (int i = 0; i < (finetune ? 3 : 2); i++) {
    path_in(a, sizeof a, ref, same[i]);
    path_in(b, sizeof b, run, same[i]);
    CHECK_TRUE(finished && files_equal(a, b), "%s: %s equals the uninterrupted run's bit for bit", command, same[i]);
  }
  char *l1 = log_without_timing(ref), *l2 = log_without_timing(run);
  CHECK_TRUE(steps_complete(l2, total_steps) && !strcmp(l1, l2),
             "%s: log.jsonl has steps 1..%d once each and equals the uninterrupted run's line for line (%zu bytes)",
             command, total_steps, strlen(l2));
  free(l1), free(l2);
}

int main(void) {
  TEST_BEGIN("test_resume");
  const char *k = getenv("BEIT_KILLTEST_KILLS");
  int kills = k ? atoi(k) : 5;
  beit_rng r;
  uint64_t seed = getenv("BEIT_KILLTEST_SEED") ? strtoull(getenv("BEIT_KILLTEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
  printf("  (seed %" PRIu64 ", %d kills per recipe; BEIT_KILLTEST_SEED / BEIT_KILLTEST_KILLS change them)\n", seed, kills);
  beit_rng_seed(&r, seed, BEIT_RNG_TEST, 0, 0);
  char dir[1000];
  snprintf(dir, sizeof dir, "%s/tiny-mnist", fx_dir());
  CHECK_TRUE(make_tiny_mnist(dir, 256, 64) == 0, "tiny dataset in %s (256 training, 64 test images)", dir);
  int epochs = kills <= 5 ? 3 : 3 + kills / 4;  /* room for every kill before the end */
  kill_and_resume("pretrain", kills, epochs, &r);
  kill_and_resume("finetune", kills, epochs, &r);
  return TEST_END();
}
