/* test_mpi.c - data-parallel training under MPI. A tiny pretraining and a tiny
 * fine-tuning (mixup + cutmix + drop path) on 2 ranks must end with the
 * parameters of one process with the same global batch and seed, within float
 * rounding; a 2-rank pretraining killed with SIGKILL (the whole job, then one
 * rank) and resumed must end bit for bit where the uninterrupted 2-rank run did.
 * Runs the real `beit` ($BEIT_BIN) under `mpirun`; skipped, saying so, when beit
 * was built without MPI or mpirun is not installed. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "test.h"
#include "test_data_fixtures.h"

/* Parameter tolerance: max abs difference after 16 AdamW steps at lr <= 1.5e-3.
 * The runs add the same per-sample gradients in another order (each rank sums
 * its half, then the halves are added; 1 and 2 threads split kernels differently),
 * which changes gradients by float rounding, 1e-7 to 1e-6 relative. AdamW's update
 * lr * m / (sqrt(v) + eps) carries that relative error into each step, so the
 * weights should differ by about 16 * 1.5e-3 * 1e-6 ~ 2e-8 (measured: up to
 * 1.2e-7, pretraining and fine-tuning alike). 1e-5 leaves that room many times
 * over and is still far below what a wrong data parallelism gave when tried:
 * 3.8e-4 for gradients averaged with 1/ranks instead of each rank's share of
 * the masked tokens, 1.3e-2 for drop path drawn per rank, 1.6e-2 for mixup
 * partners taken from the rank's own batch. (Before src/model/kmeans.c settled
 * near-ties exactly, the tokenizer could give another token for a patch at
 * another batch size or thread count; that moved the weights by 1e-3.) */
#define PARAM_TOL 1e-5
#define LOSS_RTOL 1e-5

static char g_bin[1024], g_tok[1024], g_data[1024];

/* ---- processes ------------------------------------------------------------- */
/* Starts argv in a session of its own (so the job can be killed as a whole),
 * output to log. */
static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static pid_t spawn(char *const argv[], const char *log) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    if (!strcmp(argv[0], "mpirun")) {  /* Open MPI leaks at exit: LeakSanitizer (make test-asan) would fail the ranks */
      const char *asan = getenv("ASAN_OPTIONS");
      char opts[1024];
      snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
      setenv("ASAN_OPTIONS", opts, 1);
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  /* session_signal finds the job by its session: wait until the child has one, or a
   * loaded machine lets the caller look before setsid() and see no job at all */
  for (int i = 0; i < 10000 && pid > 0 && getsid(pid) != pid; i++) sleep_ms(1);
  return pid;
}

static int wait_exit(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) != pid) return -1000;
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

/* Reads "pid (comm) state ppid pgrp session" of /proc/<pid>/stat. */
static int proc_stat(const char *pid, int *ppid, int *session, char *comm, size_t ncomm) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
  if (!open_paren || !close_paren) return 0;
  snprintf(comm, ncomm, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
  char state;
  int pgrp;
  return sscanf(close_paren + 2, "%c %d %d %d", &state, ppid, &pgrp, session) == 4 && state != 'Z';
}

/* Processes of session sid; with sig, sends it to each. Returns how many. */
static int session_signal(pid_t sid, int sig) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int count = 0, ppid, session;
  char comm[64];
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (!proc_stat(e->d_name, &ppid, &session, comm, sizeof comm) || session != sid) continue;
    count++;
    if (sig) kill((pid_t)atoi(e->d_name), sig);
  }
  closedir(d);
  return count;
}

/* A rank: a child of mpirun (named "exe" after beit_runtime_init re-executes), or 0. */
static pid_t a_rank_of(pid_t mpirun) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  pid_t found = 0;
  int ppid, session;
  char comm[64];
  for (struct dirent *e; !found && (e = readdir(d));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (proc_stat(e->d_name, &ppid, &session, comm, sizeof comm) && ppid == mpirun)
      found = (pid_t)atoi(e->d_name);
  }
  closedir(d);
  return found;
}


/* Waits (up to 20 s) until nothing of the job is left; kills stragglers. */
static int job_gone(pid_t sid) {
  for (int i = 0; i < 2000; i++) {
    if (session_signal(sid, 0) == 0) return 1;
    sleep_ms(10);
  }
  session_signal(sid, SIGKILL);
  return 0;
}

/* ---- runs ------------------------------------------------------------------- */
/* argv of `[mpirun --oversubscribe -np ranks] beit <command> <its flags>`: a
 * micro BEiT, or (command "tokenizer") a small dVAE. */
static int build_args(char **a, int ranks, const char *command, const char *out, const char *threads) {
  int n = 0;
  if (ranks > 1) a[n++] = "mpirun", a[n++] = "--oversubscribe", a[n++] = "-np", a[n++] = ranks == 2 ? "2" : "3";
  a[n++] = g_bin, a[n++] = (char *)command;
  char *bert[] = {"--model", "micro", "--subset", "256", "--batch", "32", "--save-every", "3", "--quiet", NULL};
  char *dvae[] = {"train", "--data", g_data, "--steps", "6", "--batch", "16", "--n-hid", "8", "--vocab", "64",
                  "--eval-images", "20", NULL};
  char *common[] = {"--workers", "1", "--log-every", "1", "--threads", (char *)threads, "--out", (char *)out, NULL};
  for (char **f = strcmp(command, "tokenizer") ? bert : dvae; *f; f++) a[n++] = *f;
  for (char **f = common; *f; f++) a[n++] = *f;
  return n;
}

static void run_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", fx_dir("mpi"), name); }

/* One complete run; returns its exit code. */
static int run(int ranks, const char *command, const char *name, char *const extra[]) {
  char out[900], log[1000], cmd[2400];
  run_path(out, sizeof out, name);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
  if (system(cmd) != 0) printf("  (could not clean %s)\n", out);
  snprintf(log, sizeof log, "%s.out", out);
  char *a[64];
  int n = build_args(a, ranks, command, out, ranks > 1 ? "1" : "2");
  for (int i = 0; extra && extra[i]; i++) a[n++] = extra[i];
  a[n] = NULL;
  pid_t pid = spawn(a, log);
  int rc = wait_exit(pid);
  job_gone(pid);
  if (rc != 0) {
    snprintf(cmd, sizeof cmd, "tail -n 5 '%s'", log);
    printf("  %s %s on %d rank(s) exited %d; its output ends:\n", command, name, ranks, rc);
    fflush(stdout);
    if (system(cmd) != 0) printf("  (no output)\n");
  }
  return rc;
}

/* All float tensors of a file, concatenated in file order. */
static float *read_all(const char *path, size_t *n) {
  beit_safetensors st;
  *n = 0;
  if (beit_st_open(&st, path) != BEIT_OK) return printf("  %s\n", beit_last_error()), NULL;
  size_t total = 0;
  for (int i = 0; i < st.n; i++) total += beit_st_numel(&st.e[i]);
  float *x = malloc(total * sizeof(float) + 1);
  for (int i = 0; i < st.n && x; i++) {
    size_t k = beit_st_numel(&st.e[i]);
    if (beit_st_read_f32(&st, i, x + *n, k) != BEIT_OK) { free(x), x = NULL; break; }
    *n += k;
  }
  beit_st_close(&st);
  return x;
}

static void compare_weights(const char *what, const char *a_name, const char *b_name, const char *file) {
  char a[1000], b[1000], pa[1100], pb[1100];
  run_path(a, sizeof a, a_name), run_path(b, sizeof b, b_name);
  snprintf(pa, sizeof pa, "%s/%s", a, file), snprintf(pb, sizeof pb, "%s/%s", b, file);
  size_t na, nb;
  float *x = read_all(pa, &na), *y = read_all(pb, &nb);
  if (x && y && na == nb && na > 0) check_close(what, x, y, na, PARAM_TOL, 0);
  else CHECK_TRUE(0, "%s: could not read both %s and %s", what, pa, pb);
  free(x), free(y);
}

/* The "loss" of each training line (up to cap), or of the line with `key`. */
static int log_values(const char *name, const char *key, double *v, int cap) {
  char path[1100], line[4096];
  run_path(path, sizeof path, name);
  strcat(path, "/log.jsonl");
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = 0;
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\": ", key);
  while (n < cap && fgets(line, sizeof line, f)) {
    const char *s = strstr(line, pattern);
    if (s) v[n++] = atof(s + strlen(pattern));
  }
  fclose(f);
  return n;
}

static void compare_logs(const char *what, const char *a, const char *b, const char *key, double rtol) {
  double x[256], y[256];
  int nx = log_values(a, key, x, 256), ny = log_values(b, key, y, 256);
  double worst = 0;
  for (int i = 0; i < nx && i < ny; i++) {
    double rel = fabs(x[i] - y[i]) / (fabs(y[i]) + 1e-12);
    worst = rel > worst ? rel : worst;
  }
  CHECK_TRUE(nx > 0 && nx == ny && worst <= rtol, "%s: %d logged \"%s\" values, worst relative difference %.2g (tol %.0e)",
             what, nx, key, worst, rtol);
}

/* ---- the checks --------------------------------------------------------------- */
static char *pretrain_extra[] = {"--epochs", "2", "--tokenizer", g_tok, "--data", g_data, NULL};

static void pretrain_equivalence(void) {
  int rc1 = run(1, "pretrain", "pretrain-1", pretrain_extra);
  int rc2 = run(2, "pretrain", "pretrain-2", pretrain_extra);
  CHECK_TRUE(rc1 == 0 && rc2 == 0, "pretrain: 1 process and 2 ranks exit 0 (got %d, %d)", rc1, rc2);
  compare_weights("pretrain: 2 ranks vs 1 process, weights", "pretrain-2", "pretrain-1", "model.safetensors");
  compare_logs("pretrain: 2 ranks vs 1 process", "pretrain-2", "pretrain-1", "loss", LOSS_RTOL);
  compare_logs("pretrain: 2 ranks vs 1 process", "pretrain-2", "pretrain-1", "accuracy", LOSS_RTOL);
}

static void finetune_equivalence(void) {
  char *extra[] = {"--epochs", "1", "--data", g_data, NULL};
  int rc1 = run(1, "finetune", "finetune-1", extra);
  int rc2 = run(2, "finetune", "finetune-2", extra);
  CHECK_TRUE(rc1 == 0 && rc2 == 0, "finetune: 1 process and 2 ranks exit 0 (got %d, %d)", rc1, rc2);
  compare_weights("finetune: 2 ranks vs 1 process (mixup, cutmix)", "finetune-2", "finetune-1", "model.safetensors");
  compare_logs("finetune: 2 ranks vs 1 process", "finetune-2", "finetune-1", "test_top1", 0);
}

static void tokenizer_equivalence(void) {
  int rc1 = run(1, "tokenizer", "dvae-1", NULL);
  int rc2 = run(2, "tokenizer", "dvae-2", NULL);
  CHECK_TRUE(rc1 == 0 && rc2 == 0, "tokenizer train (dVAE): 1 process and 2 ranks exit 0 (got %d, %d)", rc1, rc2);
  compare_weights("tokenizer train (dVAE): 2 ranks vs 1 process", "dvae-2", "dvae-1", "tokenizer.safetensors");
  compare_logs("tokenizer train (dVAE): 2 ranks vs 1 process", "dvae-2", "dvae-1", "loss", LOSS_RTOL);
}

static int lines_ok(const char *name, int *lines) {
  double steps[256];
  int n = log_values(name, "step", steps, 256), ok = n > 0;
  for (int i = 1; i < n; i++) ok &= steps[i] == steps[i - 1] + 1;  /* --log-every 1: every step once */
  *lines = n;
  return ok;
}

static int checkpoint_loads(const char *dir) {
  char path[1100];
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  if (access(path, F_OK) != 0) return 1;  /* killed before the first one: nothing to load */
  beit_safetensors st;
  int ok = beit_st_open(&st, path) == BEIT_OK;
  if (ok) beit_st_close(&st);
  return ok;
}

static int run_job_to_end(char *const argv[], const char *log) {
  pid_t job = spawn(argv, log);
  int rc = wait_exit(job);
  job_gone(job);
  return rc;
}

static int same_bytes(const char *a, const char *b) {
  beit_safetensors x, y;
  if (beit_st_open(&x, a) != BEIT_OK) return printf("  %s\n", beit_last_error()), 0;
  if (beit_st_open(&y, b) != BEIT_OK) return beit_st_close(&x), printf("  %s\n", beit_last_error()), 0;
  int same = x.n == y.n && x.data_size == y.data_size && !memcmp(x.data, y.data, x.data_size);
  beit_st_close(&x), beit_st_close(&y);
  return same;
}

static void compare_bits(void) {
  char a[1000], b[1000];
  run_path(a, sizeof a, "pretrain-killed/model.safetensors");
  run_path(b, sizeof b, "pretrain-2/model.safetensors");
  CHECK_TRUE(same_bytes(a, b), "kill: after the kills and resumes the weights equal the uninterrupted 2-rank run's "
             "bit for bit");
  int l1, l2, ok1 = lines_ok("pretrain-killed", &l1), ok2 = lines_ok("pretrain-2", &l2);
  CHECK_TRUE(ok1 && ok2 && l1 == l2, "kill: the log has every step once (%d lines, uninterrupted %d)", l1, l2);
}

/* The process of session sid whose environment names it MPI rank `rank`, or 0. */
static pid_t rank_pid(pid_t sid, int rank) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  pid_t found = 0;
  int ppid, session;
  char comm[64], want[64], path[300], env[16384];
  snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
  for (struct dirent *e; !found && (e = readdir(d));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (!proc_stat(e->d_name, &ppid, &session, comm, sizeof comm) || session != sid) continue;
    snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(env, 1, sizeof env - 1, f) : 0;
    if (f) fclose(f);
    env[n] = 0;
    for (size_t i = 0; i < n && !found; i += strlen(env + i) + 1)
      if (!strcmp(env + i, want)) found = (pid_t)atoi(e->d_name);
  }
  closedir(d);
  return found;
}

/* SIGTERM to rank 1 alone while the 2-rank dVAE trains: the ranks agree on the stop (in the step's reduction), so
 * rank 0 saves the checkpoint of the step they stop at, prints the line, and --resume finishes the run. */
static void tokenizer_stop(void) {
  char dir[900], log[1000], cmd[2000];
  run_path(dir, sizeof dir, "dvae-term");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("  (could not clean %s)\n", dir);
  snprintf(log, sizeof log, "%s.out", dir);
  char *a[64];
  int n = build_args(a, 2, "tokenizer", dir, "1");
  a[n++] = "--steps", a[n++] = "40", a[n++] = "--save-every", a[n++] = "0", a[n] = NULL;  /* the later flag wins */
  pid_t job = spawn(a, log);
  double steps[64];
  for (int i = 0; i < 60000 && log_values("dvae-term", "step", steps, 64) < 2 && session_signal(job, 0) > 0; i++)
    sleep_ms(10);
  pid_t victim = rank_pid(job, 1);
  if (victim) kill(victim, SIGTERM);
  int status = 0, ended = 0;  /* ranks that disagree hang in a collective: give up after 2 minutes */
  for (int i = 0; i < 12000 && !(ended = waitpid(job, &status, WNOHANG) == job); i++) sleep_ms(10);
  if (!ended) session_signal(job, SIGKILL), waitpid(job, &status, 0);
  int rc = !ended ? -1 : WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status), gone = job_gone(job);
  char path[1100], *out = NULL;
  long long at = -1, saved = -1;
  FILE *f = fopen(log, "rb");
  if (f && (out = calloc(1, 1 << 20))) out[fread(out, 1, (1 << 20) - 1, f)] = 0;
  if (f) fclose(f);
  const char *line = out ? strstr(out, "tokenizer: stopped by SIGTERM at step ") : NULL;
  if (line) at = atoll(line + strlen("tokenizer: stopped by SIGTERM at step "));
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  beit_safetensors st;
  if (beit_st_open(&st, path) == BEIT_OK) {
    const char *v = beit_st_meta(&st, "train.step");
    saved = v ? atoll(v) : -1;
    beit_st_close(&st);
  }
  CHECK_TRUE(victim && gone && rc == 143 && line && at > 0 && at < 40 && saved == at,
             "tokenizer stop: SIGTERM to rank 1 (pid %d) alone: the job ends (exit %d, want 143; -1: it hung), rank 0 "
             "says it stopped at step %lld and its checkpoint holds step %lld", (int)victim, rc, at, saved);
  free(out);
  a[n++] = "--resume", a[n] = NULL;
  rc = run_job_to_end(a, log);
  CHECK_TRUE(rc == 0, "tokenizer stop: 2 ranks resume it to the end (exit %d)", rc);
}

/* Kills the 2-rank pretraining twice, resumes, and compares with pretrain-2. */
static void kill_and_resume(void) {
  char dir[900], log[1000], ckpt[1100], cmd[4096];
  run_path(dir, sizeof dir, "pretrain-killed");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("  (could not clean %s)\n", dir);
  snprintf(log, sizeof log, "%s.out", dir);
  snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
  beit_rng r;
  beit_rng_seed(&r, (uint64_t)time(NULL), BEIT_RNG_TEST, 0, 0);
  char *a[64];
  int n = build_args(a, 2, "pretrain", dir, "1");
  for (int i = 0; pretrain_extra[i]; i++) a[n++] = pretrain_extra[i];
  a[n] = NULL;

  /* 1: the whole job dies (every process at once) some time after its first checkpoint */
  /* waits up to 10 minutes: a loaded machine (or valgrind) can take long to the first save */
  pid_t job = spawn(a, log);
  for (int i = 0; i < 60000 && access(ckpt, F_OK) != 0 && session_signal(job, 0) > 0; i++) sleep_ms(10);
  int saved = access(ckpt, F_OK) == 0;
  int ms = (int)beit_rng_randint(&r, 0, 100);
  sleep_ms(ms);
  session_signal(job, SIGKILL);
  int rc = wait_exit(job);
  CHECK_TRUE(saved && job_gone(job) && checkpoint_loads(dir), "kill: whole job SIGKILLed %d ms after its first "
             "checkpoint (exit %d; %s); the checkpoint loads", ms, rc,
             saved ? "it had saved one" : "it never saved one: see the .out file");

  /* the checkpoint of 2 ranks continues in one process with the same global batch */
  char sw[900];
  run_path(sw, sizeof sw, "pretrain-switch");
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", sw, dir, sw);
  if (system(cmd) == 0) {
    char *one[64];
    int k = build_args(one, 1, "pretrain", sw, "2");
    for (int i = 0; pretrain_extra[i]; i++) one[k++] = pretrain_extra[i];
    one[k++] = "--resume", one[k] = NULL;
    snprintf(cmd, sizeof cmd, "%s.out", sw);
    rc = run_job_to_end(one, cmd);
    CHECK_TRUE(rc == 0, "switch: one process resumes the 2-rank checkpoint (exit %d)", rc);
    compare_weights("switch: 2 ranks, killed, resumed in 1 process", "pretrain-switch", "pretrain-1", "model.safetensors");
  }

  /* 2: one rank dies (a lost machine) after the resumed run saved a checkpoint
   * of its own; mpirun must end the other */
  a[n++] = "--resume", a[n] = NULL;
  struct stat before, now;
  int had = stat(ckpt, &before) == 0;
  job = spawn(a, log);
  for (int i = 0; i < 60000 && session_signal(job, 0) > 0; i++) {
    if (stat(ckpt, &now) == 0 && (!had || now.st_ino != before.st_ino)) break;  /* renamed into place: new */
    sleep_ms(10);
  }
  ms = (int)beit_rng_randint(&r, 0, 60);
  sleep_ms(ms);
  pid_t victim = a_rank_of(job);
  if (victim) kill(victim, SIGKILL);
  rc = wait_exit(job);
  CHECK_TRUE(job_gone(job) && checkpoint_loads(dir), "kill: one rank SIGKILLed %d ms after the resumed run's first "
             "checkpoint (%s; mpirun exit %d); the job ended and the checkpoint loads", ms,
             victim ? "killed" : "it had already finished", rc);

  /* 3: resume to the end */
  rc = run_job_to_end(a, log);
  CHECK_TRUE(rc == 0, "kill: the second resume runs to the end (exit %d)", rc);
  compare_bits();
}

/* Why the test cannot run here, or NULL. */
static const char *skip_reason(void) {
#ifndef BEIT_HAVE_MPI
  return "beit was built without MPI (install libopenmpi-dev: scripts/setup.sh, then rebuild)";
#else
  if (system("command -v mpirun >/dev/null 2>&1") != 0) return "mpirun is not installed (openmpi-bin: scripts/setup.sh)";
  return NULL;
#endif
}

/* A small IDX dataset (256 training and 200 test images: quick to open in every
 * rank, and a cheap fine-tuning evaluation) and a k-means tokenizer of it. */
static int make_fixtures(void) {
  const char *b = getenv("BEIT_BIN");
  snprintf(g_bin, sizeof g_bin, "%s", b ? b : "build/beit");
  if (g_bin[0] != '/') {  /* mpirun looks programs up in PATH */
    char cwd[512];
    snprintf(g_bin, sizeof g_bin, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", b ? b : "build/beit");
  }
  const char *idx = fx_dir("mpi/idx");
  fx_idx_dir(idx, 256, 200, 28, 28, 0);
  snprintf(g_data, sizeof g_data, "idx:%s", idx);
  char tokdir[900], cmd[4096];
  run_path(tokdir, sizeof tokdir, "tok");
  snprintf(g_tok, sizeof g_tok, "%s/tokenizer.safetensors", tokdir);
  snprintf(cmd, sizeof cmd, "'%s' tokenizer train --type kmeans --data '%s' --vocab 64 --iters 5 --eval-images 100 "
           "--threads 1 --overwrite --out '%s' >/dev/null 2>&1", g_bin, g_data, tokdir);
  if (system(cmd) != 0) return printf("  FAIL could not train the fixture tokenizer: %s\n", cmd), 0;
  return 1;
}

int main(void) {
  TEST_BEGIN("test_mpi");
  const char *why = skip_reason();
  if (why) {
    printf("  SKIP the MPI tests: %s\n", why);
    return TEST_END();
  }
  /* mpirun refuses root unless told; harmless for other users */
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1), setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  /* in containers without ptrace rights Open MPI's single-copy transfers fail
   * (open-mpi/ompi#4948); the test's messages are small, so copy through shared memory */
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
  if (!make_fixtures()) {
    test_failed_++;
    return TEST_END();
  }
  pretrain_equivalence();
  finetune_equivalence();
  tokenizer_equivalence();
  tokenizer_stop();
  kill_and_resume();
  return TEST_END();
}
