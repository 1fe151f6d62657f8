/* test_runfolder.c - a run folder is never lost or mixed, and a long run says
 * how it goes (docs/reliability.md 11-16): a fresh run into a folder holding a
 * run is refused by every command that writes one, and --overwrite removes only
 * a run's files; --resume refuses a changed flag (the flag table's rule), allows
 * the safe ones and a longer --epochs only with --extend-epochs; the folder's
 * lock refuses a second run at once, naming the holder, while a stale lock file
 * counts for nothing; SIGTERM and SIGINT save a checkpoint and exit 143 / 130;
 * stderr that is not a terminal gets plain progress lines; --max-steps stops a
 * complete run on the full schedule and --resume continues it bit for bit;
 * --eval-every and --eval-subset choose the evaluations of fine-tuning. */
#include <stdarg.h>
#include <sys/file.h>

#include "child.h"
#include "core/core.h"
#include "fixture.h"
#include "io/safetensors.h"
#include "test.h"

static char g_data[1000];  /* "mnist:<fixtures>/tiny-mnist" */

/* An argument vector: the binary, the command's arguments, NULL. */
typedef struct {
  char *v[64];
  int n;
} args_t;

static void add(args_t *a, ...) {
  va_list ap;
  va_start(ap, a);
  for (char *s; (s = va_arg(ap, char *)) && a->n < 62;) a->v[a->n++] = s;
  va_end(ap);
  a->v[a->n] = NULL;
}

/* A tiny pretraining or fine-tuning into dir: micro model, 8 steps per epoch. */
static args_t recipe(const char *command, const char *dir, const char *epochs) {
  args_t a = {.n = 0};
  add(&a, (char *)child_beit_bin(), (char *)command, "--model", "micro", "--data", g_data, "--batch", "32", "--epochs",
      (char *)epochs, "--threads", "2", "--workers", "1", "--log-every", "1", "--save-every", "3", "--keep", "3",
      "--out", (char *)dir, NULL);
  if (!strcmp(command, "pretrain")) add(&a, "--tokenizer", "pixel", NULL);
  return a;
}

static args_t tokenizer(const char *type, const char *dir, const char *steps) {
  args_t a = {.n = 0};
  add(&a, (char *)child_beit_bin(), "tokenizer", "train", "--type", (char *)type, "--data", g_data, "--out", (char *)dir,
      "--batch", "16", "--vocab", "16", "--n-hid", "8", "--eval-images", "16", "--log-every", "1", "--workers", "1",
      "--threads", "2", "--steps", (char *)steps, "--images", "64", "--iters", "2", NULL);
  return a;
}

/* Runs it with stderr into `err` (and an optional "NAME=value"); returns the exit code. */
static int run(args_t *a, const char *env, const char *err) {
  child_opts co = {.env = {env}, .err_path = err};
  return child_run(a->v, &co);
}

static void path_in(char *out, size_t n, const char *dir, const char *name) {
  if (snprintf(out, n, "%s/%s", dir, name) >= (int)n) exit(2);
}

static void fresh_dir(char *out, size_t n, const char *name) {
  if (snprintf(out, n, "%s/runfolder-%s", fx_dir(), name) >= (int)n) exit(2);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.err'", out, out);
  if (system(cmd) != 0) printf("  (could not clean %s)\n", out);
}

static int same_bytes(const char *a, const char *b) {
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

static void copy(const char *from, const char *to) {
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
  if (system(cmd) != 0) printf("  (could not copy %s)\n", from);
}

static long long checkpoint_step_of(const char *dir, const char *name) {
  char p[1100];
  path_in(p, sizeof p, dir, name);
  return fx_checkpoint_step(p);
}

static long long checkpoint_step(const char *dir) { return checkpoint_step_of(dir, "checkpoint.safetensors"); }

/* The "step" of every training line of log.jsonl (those with an "lr"), comma-separated. */
static char *logged_steps(const char *dir) {
  char p[1100];
  path_in(p, sizeof p, dir, "log.jsonl");
  char *s = slurp(p), *out = test_keep(calloc(strlen(s) + 1, 1));
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
    if (strstr(line, "\"lr\"")) sprintf(out + strlen(out), "%s%d", out[0] ? "," : "", atoi(line + 9));
  free(s);
  return out;
}

/* log.jsonl without the timing field, which differs between runs. */
static char *log_without_timing(const char *dir) {
  char p[1100];
  path_in(p, sizeof p, dir, "log.jsonl");
  char *s = test_keep(slurp(p)), *w = s;
  const char *field = ", \"images_per_s\": ";
  for (char *q = s; *q;) {
    if (!strncmp(q, field, strlen(field)) && strchr(q, '}')) q = strchr(q, '}');
    else *w++ = *q++;
  }
  *w = 0;
  return s;
}

static int count(const char *text, const char *what) {
  int n = 0;
  for (const char *q = text; (q = strstr(q, what)); q += strlen(what)) n++;
  return n;
}

/* The last line of a stderr capture that starts with `prefix` (or its first line), for the messages. */
static const char *line_of(const char *err, const char *prefix) {
  static char line[4][400];
  static int next;
  const char *found = err;
  for (const char *q = err; (q = strstr(q, prefix)); q++) found = q;
  char *out = line[next++ % 4];
  snprintf(out, sizeof line[0], "%.*s", (int)strcspn(found, "\n"), found);
  return out;
}

/* ---- 11. a fresh run into a used folder -------------------------------------- */
static void test_fresh_into_used(void) {
  printf("a fresh run into a folder that holds a run\n");
  char dir[1000], err[1100], p[1100], saved[1100], log[1100], saved_log[1100];
  fresh_dir(dir, sizeof dir, "used");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = recipe("pretrain", dir, "1");
  int rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0, "a first pretraining into %s (exit %d)", dir, rc);
  path_in(p, sizeof p, dir, "checkpoint.safetensors");
  path_in(log, sizeof log, dir, "log.jsonl");
  snprintf(saved, sizeof saved, "%s.ckpt", dir);
  snprintf(saved_log, sizeof saved_log, "%s.log", dir);
  copy(p, saved), copy(log, saved_log);
  a = recipe("pretrain", dir, "1");
  add(&a, "--seed", "7", NULL);
  rc = run(&a, NULL, err);
  char *e = slurp(err);
  const char *line = line_of(e, "beit pretrain:");
  CHECK_TRUE(rc == 1 && strstr(line, dir) && strstr(line, "holds a run") && strstr(line, "--resume") &&
             strstr(line, "--overwrite"), "a second fresh pretraining is refused (exit %d): %.220s", rc, line);
  free(e);
  CHECK_TRUE(same_bytes(p, saved) && same_bytes(log, saved_log),
             "the old checkpoint.safetensors and log.jsonl are byte-identical afterwards");
  /* every other command that writes a run folder */
  struct { const char *what; args_t a; const char *prefix; int resumable; } others[] = {
      {"finetune", recipe("finetune", dir, "1"), "beit finetune:", 1},
      {"tokenizer train --type dvae", tokenizer("dvae", dir, "2"), "beit tokenizer train:", 1},  /* dVAE: --resume */
      {"tokenizer train --type kmeans", tokenizer("kmeans", dir, "2"), "beit tokenizer train:", 0},
      {"linprobe", {.n = 0}, "beit linprobe:", 0},
  };
  add(&others[3].a, (char *)child_beit_bin(), "linprobe", "--model", "micro", "--patch-size", "4", "--data", g_data,
      "--epochs", "1", "--threads", "2", "--quiet", "--out", dir, NULL);
  for (int i = 0; i < 4; i++) {
    rc = run(&others[i].a, NULL, err);
    e = slurp(err);
    line = line_of(e, others[i].prefix);
    CHECK_TRUE(rc == 1 && strstr(line, dir) && strstr(line, "--overwrite") &&
               !strstr(line, "--resume") == !others[i].resumable,
               "%s into it is refused (exit %d): %.200s", others[i].what, rc, line);
    free(e);
  }
  CHECK_TRUE(same_bytes(p, saved) && same_bytes(log, saved_log), "the old run's files are still byte-identical");
  /* --overwrite: the run's files go, nothing else */
  char notes[1100], old[1100];
  path_in(notes, sizeof notes, dir, "notes.txt");
  path_in(old, sizeof old, dir, "checkpoint-7.safetensors");
  copy(saved, notes), copy(saved, old);
  a = recipe("pretrain", dir, "1");
  add(&a, "--seed", "7", "--overwrite", NULL);
  rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0 && file_exists(notes) && !file_exists(old) && !same_bytes(p, saved) && checkpoint_step(dir) == 8 &&
             !strcmp(logged_steps(dir), "1,2,3,4,5,6,7,8"),
             "--overwrite (exit %d): the old checkpoints are gone (also checkpoint-7), notes.txt is kept, the new "
             "log has steps %s", rc, logged_steps(dir));
  /* the commands without --resume start over with --overwrite as well */
  for (int i = 1; i < 4; i++) {
    add(&others[i].a, "--overwrite", NULL);
    rc = run(&others[i].a, NULL, err);
    CHECK_TRUE(rc == 0 && file_exists(notes) && !file_exists(p), "%s --overwrite replaces the run (exit %d)",
               others[i].what, rc);
  }
}

/* ---- 12. --resume with other flags ----------------------------------------- */
static void test_resume_flags(void) {
  printf("--resume compares the flags with the run's\n");
  char dir[1000], err[1100], conf[1100], saved[1100], p[1100], saved_ckpt[1100];
  fresh_dir(dir, sizeof dir, "flags");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = recipe("pretrain", dir, "1");
  add(&a, "--max-steps", "5", "--quiet", NULL);
  int rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0 && checkpoint_step(dir) == 5, "a run of 5 steps (--max-steps 5; exit %d)", rc);
  path_in(conf, sizeof conf, dir, "config.json");
  path_in(p, sizeof p, dir, "checkpoint.safetensors");
  snprintf(saved, sizeof saved, "%s.config", dir);
  snprintf(saved_ckpt, sizeof saved_ckpt, "%s.ckpt", dir);
  copy(conf, saved), copy(p, saved_ckpt);
  struct { const char *flag, *value, *says; } changed[] = {
      {"--batch", "16", "--batch 16 differs from the run's 32"},
      {"--lr", "0.002", "--lr 0.002 differs from the run's 0.0015"},
      {"--seed", "3", "--seed 3 differs from the run's 0"},
      {"--subset", "128", "--subset 128 differs from the run's 0"},
      {"--random-mask", NULL, "--random-mask is on, but off in the run"},
      {"--epochs", "2", "to train longer add --extend-epochs"},
  };
  for (size_t i = 0; i < sizeof changed / sizeof *changed; i++) {
    int epochs = !strcmp(changed[i].flag, "--epochs");
    a = recipe("pretrain", dir, epochs ? changed[i].value : "1");
    add(&a, "--resume", NULL);
    if (!epochs) add(&a, (char *)changed[i].flag, (char *)changed[i].value, NULL);
    rc = run(&a, NULL, err);
    char *e = slurp(err);
    const char *line = line_of(e, "beit pretrain:");
    CHECK_TRUE(rc == 1 && strstr(line, changed[i].says) && strstr(line, conf), "--resume %s %s: refused (exit %d): %.200s",
               changed[i].flag, changed[i].value ? changed[i].value : "", rc, line);
    free(e);
  }
  CHECK_TRUE(same_bytes(conf, saved) && same_bytes(p, saved_ckpt), "config.json and the checkpoint are unchanged");
  a = recipe("finetune", dir, "1");
  add(&a, "--resume", NULL);
  rc = run(&a, NULL, err);
  char *e = slurp(err);
  CHECK_TRUE(rc == 1 && strstr(e, "holds a pretrain run"), "finetune --resume of a pretraining: refused (exit %d): %.160s",
             rc, line_of(e, "beit finetune:"));
  free(e);
  a = recipe("pretrain", dir, "1");
  add(&a, "--resume", "--overwrite", NULL);
  CHECK_TRUE(run(&a, NULL, err) == 2, "--resume with --overwrite is a usage error (exit 2)");
  /* the safe flags, and a longer schedule with --extend-epochs; --log-every 4 logs at its multiples */
  a = recipe("pretrain", dir, "2");
  add(&a, "--resume", "--extend-epochs", "--threads", "1", "--workers", "2", "--keep", "2", "--log-every", "4",
      "--save-every", "5", "--quiet", "--max-steps", "0", NULL);
  rc = run(&a, NULL, err);
  e = slurp(err);
  CHECK_TRUE(rc == 0 && checkpoint_step(dir) == 16 && strstr(e, "--extend-epochs: the schedule spans"),
             "--resume --epochs 2 --extend-epochs with other --threads, --workers, --keep, --log-every, --save-every, "
             "--quiet, --max-steps: runs to step %lld (exit %d)", checkpoint_step(dir), rc);
  free(e);
  CHECK_TRUE(!strcmp(logged_steps(dir), "1,2,3,4,5,8,12,16"),
             "the resumed run logs at the multiples of --log-every 4: steps %s", logged_steps(dir));
  int help = system("\"$BEIT_BIN\" pretrain --help | grep -q 'may grow with --extend-epochs'") == 0 &&
             system("\"$BEIT_BIN\" finetune --help | grep -q 'except: --out, --max-steps, --threads, --workers'") == 0;
  CHECK_TRUE(help, "--help says which flags may change on --resume");
}

/* ---- 13. the lock; 14. SIGTERM and SIGINT --------------------------------------- */
static int lock_holder(const char *dir) {
  char p[1100];
  path_in(p, sizeof p, dir, ".lock");
  char *s = slurp(p);
  int pid = atoi(s);
  free(s);
  return pid;
}

/* Waits until the run `pid` logged `step` steps (1), or ended (0: *status holds its end). */
static int wait_for_step(pid_t pid, const char *dir, int step, int *status) {
  char p[1100];
  path_in(p, sizeof p, dir, "log.jsonl");
  for (;;) {
    char *s = slurp(p);
    int n = count(s, "\"lr\"");
    free(s);
    if (n >= step) return 1;
    if (waitpid(pid, status, WNOHANG) == pid) return 0;
    child_sleep_ms(1);
  }
}


static void test_lock_and_signals(void) {
  printf("the folder's lock; SIGTERM and SIGINT\n");
  char dir[1000], err[1100], lock[1100], ref[1000];
  fresh_dir(dir, sizeof dir, "lock");
  snprintf(err, sizeof err, "%s.err", dir);
  /* this process holds the lock */
  beit_mkdir_p(dir);
  path_in(lock, sizeof lock, dir, ".lock");
  int fd = open(lock, O_RDWR | O_CREAT, 0644);
  char me[32];
  int len = snprintf(me, sizeof me, "%d\n", (int)getpid());
  int held = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && write(fd, me, (size_t)len) == len;
  args_t a = recipe("pretrain", dir, "1");
  double t0 = beit_now();
  int rc = run(&a, NULL, err);
  char *e = slurp(err);
  me[len - 1] = 0;
  char want[64];
  snprintf(want, sizeof want, "pid %s holds", me);
  CHECK_TRUE(held && rc == 1 && strstr(e, want) && strstr(e, "another run is using this folder") && beit_now() - t0 < 5,
             "a run into a folder whose lock is held exits 1 in %.2f s: %.200s", beit_now() - t0,
             line_of(e, "beit pretrain:"));
  free(e);
  close(fd);
  rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0 && file_exists(lock), "the holder gone, its lock file left behind blocks nothing (exit %d)", rc);
  /* two real runs: the second is refused naming the first, even with --overwrite, and the first is untouched */
  fresh_dir(dir, sizeof dir, "sigterm");
  fresh_dir(ref, sizeof ref, "sigterm-ref");
  snprintf(err, sizeof err, "%s.err", dir);
  char err2[1100];
  snprintf(err2, sizeof err2, "%s.second.err", dir);
  a = recipe("pretrain", ref, "20");
  add(&a, "--quiet", NULL);
  rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0, "an uninterrupted run of 160 steps (exit %d)", rc);
  a = recipe("pretrain", dir, "20");
  add(&a, "--quiet", NULL);
  child_opts co = {.err_path = err};
  pid_t first = child_start(a.v, &co);
  int status, started = wait_for_step(first, dir, 2, &status);
  args_t b = recipe("pretrain", dir, "20");
  add(&b, "--overwrite", "--seed", "9", NULL);
  rc = run(&b, NULL, err2);
  e = slurp(err2);
  snprintf(want, sizeof want, "pid %d holds", (int)first);
  CHECK_TRUE(started && rc == 1 && strstr(e, want), "a second run into the folder of a running one exits 1 naming its pid %d: %.200s",
             (int)first, line_of(e, "beit pretrain:"));
  free(e);
  if (started) {
    kill(first, SIGTERM);
    waitpid(first, &status, 0);
  }
  rc = child_status(status);
  e = slurp(err);
  long long at = checkpoint_step(dir);
  CHECK_TRUE(rc == 143 && strstr(e, "stopped by SIGTERM") && at > 1 && at < 160,
             "SIGTERM: exit %d, a checkpoint at step %lld: %.120s", rc, at, line_of(e, "pretrain: stopped"));
  free(e);
  CHECK_TRUE(lock_holder(dir) == (int)first, "the lock file names the first run (pid %d), not the refused one", lock_holder(dir));
  add(&a, "--resume", NULL);
  rc = run(&a, NULL, err);
  char x[1100], y[1100];
  path_in(x, sizeof x, dir, "model.safetensors");
  path_in(y, sizeof y, ref, "model.safetensors");
  CHECK_TRUE(rc == 0 && same_bytes(x, y) && !strcmp(log_without_timing(dir), log_without_timing(ref)),
             "--resume after SIGTERM ends with the uninterrupted run's weights and log (exit %d)", rc);
  fresh_dir(dir, sizeof dir, "sigint");
  snprintf(err, sizeof err, "%s.err", dir);
  a = recipe("pretrain", dir, "20");
  add(&a, "--quiet", NULL);
  first = child_start(a.v, &co);
  started = wait_for_step(first, dir, 2, &status);
  if (started) {
    kill(first, SIGINT);
    waitpid(first, &status, 0);
  }
  rc = child_status(status);
  e = slurp(err);
  CHECK_TRUE(started && rc == 130 && strstr(e, "stopped by SIGINT") && checkpoint_step(dir) > 1,
             "SIGINT: exit %d, a checkpoint at step %lld", rc, checkpoint_step(dir));
  free(e);
}

/* ---- 15. progress without a terminal ------------------------------------------- */
static void test_progress(void) {
  printf("progress lines when stderr is a file\n");
  char dir[1000], err[1100];
  fresh_dir(dir, sizeof dir, "progress");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = recipe("finetune", dir, "1");
  int rc = run(&a, NULL, err);
  char *e = slurp(err);
  int lines = count(e, "img/s, ");
  CHECK_TRUE(rc == 0 && lines >= 2 && strstr(e, "finetune: step 8/8, epoch 1/1, loss") && strstr(e, "ETA"),
             "a one-epoch fine-tuning, stderr to a file, default interval: %d progress lines (exit %d): %.160s", lines,
             rc, line_of(e, "finetune: step"));
  free(e);
  fresh_dir(dir, sizeof dir, "progress-probe");
  args_t lp = {.n = 0};
  add(&lp, (char *)child_beit_bin(), "linprobe", "--model", "micro", "--patch-size", "4", "--data", g_data, "--epochs",
      "1", "--threads", "2", "--out", dir, NULL);
  rc = run(&lp, NULL, err);
  e = slurp(err);
  CHECK_TRUE(rc == 0 && count(e, "img/s, ") >= 2 && strstr(e, "features (train): 256/256 images"),
             "linprobe's feature extraction prints them too (exit %d): %s", rc, line_of(e, "features (train): "));
  free(e);
  fresh_dir(dir, sizeof dir, "progress-every");
  snprintf(err, sizeof err, "%s.err", dir);
  a = recipe("pretrain", dir, "1");
  rc = run(&a, "BEIT_PROGRESS_SECONDS=0", err);
  e = slurp(err);
  lines = count(e, "img/s, ");
  CHECK_TRUE(rc == 0 && lines >= 8, "BEIT_PROGRESS_SECONDS=0: a line per step, %d lines for 8 steps (exit %d)", lines, rc);
  free(e);
  fresh_dir(dir, sizeof dir, "progress-quiet");
  a = recipe("pretrain", dir, "1");
  add(&a, "--quiet", NULL);
  rc = run(&a, "BEIT_PROGRESS_SECONDS=0", err);
  e = slurp(err);
  CHECK_TRUE(rc == 0 && !strstr(e, "img/s"), "--quiet: none (exit %d)", rc);
  free(e);
}

/* Without --save-every every command checkpoints at each epoch's end (--help: "0 = per epoch / at the end"):
   a pretraining killed in its tenth epoch loses one epoch, not nine. */
static void test_epoch_checkpoints(void) {
  printf("a checkpoint at every epoch's end\n");
  const char *kinds[] = {"pretrain", "finetune"};
  for (int i = 0; i < 2; i++) {
    char dir[1000], err[1100];
    fresh_dir(dir, sizeof dir, kinds[i]);
    snprintf(err, sizeof err, "%s.err", dir);
    args_t a = {.n = 0};
    add(&a, (char *)child_beit_bin(), (char *)kinds[i], "--model", "micro", "--data", g_data, "--batch", "32", "--epochs",
        "3", "--threads", "2", "--keep", "3", "--quiet", "--out", dir, NULL);
    if (i == 0) add(&a, "--tokenizer", "pixel", NULL);
    int rc = run(&a, NULL, err);
    long long s0 = checkpoint_step(dir), s1 = checkpoint_step_of(dir, "checkpoint-1.safetensors"),
              s2 = checkpoint_step_of(dir, "checkpoint-2.safetensors");
    CHECK_TRUE(rc == 0 && s0 == 24 && s1 == 16 && s2 == 8, "%s, 3 epochs of 8 steps, --keep 3: checkpoints at steps "
               "%lld, %lld, %lld (exit %d)", kinds[i], s0, s1, s2, rc);
  }
}

/* data_wait_s of every training line of DIR's log.jsonl: how many lines, how many of them > 0, the smallest. */
static int wait_fields(const char *dir, int *positive, double *smallest) {
  char p[1100];
  path_in(p, sizeof p, dir, "log.jsonl");
  char *s = slurp(p);
  int n = 0;
  *positive = 0, *smallest = 1e30;
  for (const char *q = s; q && (q = strstr(q, "\"lr\": ")); q++) {
    const char *w = strstr(q, "\"data_wait_s\": "), *end = strchr(q, '}');
    if (!w || w > end) { n = -1; break; }
    double v = atof(w + 15);
    n++, *positive += v > 0, *smallest = v < *smallest ? v : *smallest;
  }
  free(s);
  return n;
}

/* The training lines say how long the loader held training up: without workers the training thread makes every
   batch itself, so every window waited; never a negative wait. */
static void test_data_wait(void) {
  printf("data_wait_s in the training lines\n");
  char dir[1000], err[1100];
  fresh_dir(dir, sizeof dir, "wait0");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = recipe("finetune", dir, "1");
  add(&a, "--quiet", "--workers", "0", NULL);
  int rc = run(&a, NULL, err), positive;
  double smallest;
  int n = wait_fields(dir, &positive, &smallest);
  CHECK_TRUE(rc == 0 && n == 8 && positive == 8, "--workers 0: %d training lines, %d with a wait > 0 (exit %d)", n,
             positive, rc);
  fresh_dir(dir, sizeof dir, "wait2");
  a = recipe("pretrain", dir, "1");
  add(&a, "--quiet", "--workers", "2", NULL);
  rc = run(&a, NULL, err);
  n = wait_fields(dir, &positive, &smallest);
  CHECK_TRUE(rc == 0 && n == 8 && smallest >= 0, "--workers 2: %d training lines, the smallest wait %g (exit %d)", n,
             smallest, rc);
}

/* ---- 16. --max-steps, --eval-every, --eval-subset ------------------------------ */
static void test_max_steps_pretrain(void) {
  printf("--max-steps: pretraining\n");
  char ref[1000], dir[1000], err[1100], x[1100], y[1100];
  fresh_dir(ref, sizeof ref, "max-ref");
  fresh_dir(dir, sizeof dir, "max");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = recipe("pretrain", ref, "2");
  add(&a, "--quiet", NULL);
  int rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0, "an uninterrupted run of 16 steps (exit %d)", rc);
  a = recipe("pretrain", dir, "2");
  add(&a, "--quiet", "--max-steps", "5", NULL);
  rc = run(&a, NULL, err);
  char *ref_log = log_without_timing(ref), *log = log_without_timing(dir);
  path_in(x, sizeof x, dir, "model.safetensors");
  CHECK_TRUE(rc == 0 && checkpoint_step(dir) == 5 && file_exists(x) && !strcmp(logged_steps(dir), "1,2,3,4,5") &&
             !strncmp(ref_log, log, strlen(log)),
             "--max-steps 5 (exit %d): checkpoint at step %lld, model.safetensors, log steps %s, the same lines (lr of the "
             "16-step schedule) as the uninterrupted run's first 5", rc, checkpoint_step(dir), logged_steps(dir));
  a = recipe("pretrain", dir, "2");
  add(&a, "--quiet", "--resume", "--max-steps", "11", NULL);
  rc = run(&a, NULL, err);
  CHECK_TRUE(rc == 0 && checkpoint_step(dir) == 11, "--resume --max-steps 11: step %lld (exit %d)", checkpoint_step(dir), rc);
  a = recipe("pretrain", dir, "2");
  add(&a, "--quiet", "--resume", NULL);
  rc = run(&a, NULL, err);
  const char *files[] = {"model.safetensors", "checkpoint.safetensors"};
  int same = rc == 0;
  for (int i = 0; i < 2; i++) {
    path_in(x, sizeof x, dir, files[i]);
    path_in(y, sizeof y, ref, files[i]);
    same &= same_bytes(x, y);
  }
  CHECK_TRUE(same && !strcmp(log_without_timing(dir), ref_log),
             "--resume to the end: model, checkpoint (AdamW moments) and log equal the uninterrupted run's (exit %d)", rc);
}

static void test_max_steps_finetune(void) {
  printf("--max-steps, --eval-every, --eval-subset: fine-tuning\n");
  char ref[1000], dir[1000], err[1100], x[1100], y[1100];
  fresh_dir(ref, sizeof ref, "ft-max-ref");
  fresh_dir(dir, sizeof dir, "ft-max");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = recipe("finetune", ref, "3");
  add(&a, "--quiet", "--eval-every", "2", "--eval-subset", "32", NULL);
  int rc = run(&a, NULL, err);
  char *e = slurp(err);
  char p[1100];
  path_in(p, sizeof p, ref, "log.jsonl");
  char *log = slurp(p);
  CHECK_TRUE(rc == 0 && count(log, "test_top1") == 3 && strstr(log, "{\"step\": 16, \"epoch\": 1, \"test_top1\"") &&
             strstr(log, "{\"step\": 24, \"epoch\": 2, \"test_top1\"") && strstr(log, "{\"step\": 24, \"final\": true") &&
             count(e, "(32 images)") == 2,
             "--epochs 3 --eval-every 2 --eval-subset 32: evaluations after epochs 2 and 3, on 32 images, and the final "
             "line (exit %d)", rc);
  free(e), free(log);
  a = recipe("finetune", dir, "3");
  add(&a, "--quiet", "--eval-every", "2", "--eval-subset", "32", "--max-steps", "5", NULL);
  rc = run(&a, NULL, err);
  path_in(p, sizeof p, dir, "log.jsonl");
  log = slurp(p);
  path_in(x, sizeof x, dir, "best.safetensors");
  CHECK_TRUE(rc == 0 && checkpoint_step(dir) == 5 && file_exists(x) && strstr(log, "{\"step\": 5, \"epoch\": 0, \"test_top1\""),
             "--max-steps 5: a complete run, evaluated at step 5, with best.safetensors (exit %d)", rc);
  free(log);
  a = recipe("finetune", dir, "3");
  add(&a, "--quiet", "--eval-every", "2", "--eval-subset", "32", "--resume", NULL);
  rc = run(&a, NULL, err);
  const char *files[] = {"model.safetensors", "checkpoint.safetensors", "best.safetensors"};
  int same = rc == 0;
  for (int i = 0; i < 3; i++) {
    path_in(x, sizeof x, dir, files[i]);
    path_in(y, sizeof y, ref, files[i]);
    same &= same_bytes(x, y);
  }
  CHECK_TRUE(same && !strcmp(logged_steps(dir), logged_steps(ref)),
             "--resume to the end: model, checkpoint and best.safetensors equal the uninterrupted run's, training log "
             "lines 1..24 (exit %d)", rc);
}

static void test_max_steps_tokenizer(void) {
  printf("--max-steps: the dVAE tokenizer\n");
  char ref[1000], dir[1000], err[1100], p[1100];
  fresh_dir(ref, sizeof ref, "tok-ref");
  fresh_dir(dir, sizeof dir, "tok-max");
  snprintf(err, sizeof err, "%s.err", dir);
  args_t a = tokenizer("dvae", ref, "12");
  int rc = run(&a, NULL, err);
  a = tokenizer("dvae", dir, "12");
  add(&a, "--max-steps", "4", NULL);
  rc |= run(&a, "BEIT_PROGRESS_SECONDS=0", err);
  char *e = slurp(err), *log = log_without_timing(dir), *ref_log = log_without_timing(ref);
  path_in(p, sizeof p, dir, "tokenizer.safetensors");
  beit_safetensors st;
  const char *steps = NULL;
  if (beit_st_open(&st, p) == BEIT_OK) steps = beit_st_meta(&st, "steps");
  CHECK_TRUE(rc == 0 && count(log, "\n") == 4 && !strncmp(log, ref_log, strlen(log)) && steps && !strcmp(steps, "4") &&
             strstr(e, "tokenizer: step 4/12"),
             "--steps 12 --max-steps 4: 4 log lines equal to the 12-step run's (its lr, temperature and KL weight), "
             "tokenizer.safetensors of 4 steps (exit %d)", rc);
  if (steps) beit_st_close(&st);
  free(e);
  a = tokenizer("kmeans", dir, "12");
  add(&a, "--max-steps", "4", "--overwrite", NULL);
  CHECK_TRUE(run(&a, NULL, err) == 2, "--max-steps with --type kmeans is a usage error");
}

int main(void) {
  TEST_BEGIN("test_runfolder");
  unsetenv("BEIT_PROGRESS");  /* the runs' stderr is a file: plain lines, at the default interval */
  unsetenv("BEIT_PROGRESS_SECONDS");
  char tiny[1000];
  snprintf(tiny, sizeof tiny, "%s/tiny-mnist", fx_dir());
  TEST_PATHF(g_data, "mnist:%s", tiny);
  CHECK_TRUE(make_tiny_mnist(tiny, 256, 64) == 0, "tiny dataset in %s", tiny);
  test_fresh_into_used();
  test_resume_flags();
  test_lock_and_signals();
  test_progress();
  test_data_wait();
  test_epoch_checkpoints();
  test_max_steps_pretrain();
  test_max_steps_finetune();
  test_max_steps_tokenizer();
  return TEST_END();
}
