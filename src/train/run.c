/* run.c - the run folder (its lock, config.json, log.jsonl, the files a run
 * writes) and the stop request of Ctrl-C / SIGTERM. A log line is written and
 * flushed at once, so a crash loses nothing already logged; on resume the lines
 * past the checkpoint are dropped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/core.h"
#include "train/train.h"

void beit_run_path(const beit_run *r, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", r->dir, name);
}

/* The "step" field of a log line, or -1. */
static int64_t line_step(const char *line) {
  const char *s = strstr(line, "\"step\":");
  return s ? strtoll(s + 7, NULL, 10) : -1;
}

static int trim_log(const char *path, int64_t keep_until) {
  uint8_t *data;
  size_t size;
  if (beit_read_file(path, &data, &size) != BEIT_OK) return BEIT_OK;  /* no log yet */
  char *out = beit_alloc(size + 1, "log");
  if (!out) { beit_free(data); return BEIT_ERR; }
  size_t n = 0;
  for (char *line = (char *)data, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    size_t len = next ? (size_t)(++next - line) : strlen(line);
    if (!next || line_step(line) > keep_until) continue;  /* partial last line or past the checkpoint */
    memcpy(out + n, line, len);
    n += len;
  }
  int rc = beit_write_file_atomic(path, out, n);
  beit_free(out);
  beit_free(data);
  return rc;
}

/* ---- claiming the folder -------------------------------------------------- */
/* The files a run writes (docs/reliability.md): their presence means the folder
 * holds a run, and --overwrite removes them and nothing else. */
static int is_run_file(const char *name) {
  static const char *const fixed[] = {"config.json", "log.jsonl", "model.safetensors", "best.safetensors",
                                      "tokenizer.safetensors", "probe.json", "checkpoint.safetensors",
                                      "summary.json", "val_indices.txt", "labels_indices.txt", "time.json"};
  static const char *const suffixes[] = {".tmp", ".bad", ".link"};
  char base[256];
  snprintf(base, sizeof base, "%s", name);
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {  /* an interrupted write, a set-aside file */
    size_t n = strlen(base), k = strlen(suffixes[i]);
    if (n > k && !strcmp(base + n - k, suffixes[i])) base[n - k] = 0;
  }
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
    if (!strcmp(base, fixed[i])) return 1;
  const char *d = base + strlen("checkpoint-");
  if (strncmp(base, "checkpoint-", strlen("checkpoint-")) || !(*d >= '0' && *d <= '9')) return 0;
  while (*d >= '0' && *d <= '9') d++;
  return !strcmp(d, ".safetensors");
}

/* Finds the run files of dir (the first by name into `first`) and, when
 * `remove` is set, deletes them. Returns how many there were, or -1. */
static int run_files(const char *dir, int remove, char *first, size_t n) {
  DIR *d = opendir(dir);
  if (!d) return beit_errorf("%s: cannot read the folder: %s", dir, strerror(errno));
  int count = 0, rc = 0;
  first[0] = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (!is_run_file(e->d_name)) continue;
    count++;
    if (!first[0] || strcmp(e->d_name, first) < 0) snprintf(first, n, "%s", e->d_name);
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (remove && unlink(path) != 0 && errno != ENOENT) {
      rc = beit_errorf("--overwrite: cannot remove %s: %s", path, strerror(errno));
      break;
    }
  }
  closedir(d);
  return rc ? -1 : count;
}

/* DIR/.lock, held with flock for the lifetime of the run. The kernel releases
 * it when the process ends however it ends, so a file left by a killed run
 * blocks nothing; the pid in it only names the holder in the message. */
static int take_lock(beit_run *r) {
  char path[1100];
  beit_run_path(r, ".lock", path, sizeof path);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return beit_errorf("%s: cannot create: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t got = pread(fd, pid, sizeof pid - 1, 0);
    pid[got > 0 ? got : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    close(fd);
    if (e == EWOULDBLOCK)
      return beit_errorf("%s: another run is using this folder (pid %s holds %s); wait for it to end or choose "
                         "another --out", r->dir, pid[0] ? pid : "unknown", path);
    if (e != ENOLCK && e != EOPNOTSUPP && e != ENOSYS && e != EINVAL)
      return beit_errorf("%s: cannot lock: %s", path, strerror(e));
    fprintf(stderr, "beit: warning: %s: this file system cannot lock (%s); a second run into %s at the same time "
            "would not be stopped\n", path, strerror(e), r->dir);  /* e.g. NFS mounted with nolock */
    return BEIT_OK;
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
    int e = errno;
    close(fd);
    return beit_errorf("%s: cannot write: %s", path, strerror(e));
  }
  r->lock_fd = fd, r->locked = 1;
  return BEIT_OK;
}

int beit_run_claim(beit_run *r, const char *dir, int resume, int overwrite, int can_resume) {
  memset(r, 0, sizeof *r);
  if (snprintf(r->dir, sizeof r->dir, "%s", dir) >= (int)sizeof r->dir) return beit_errorf("%s: path too long", dir);
  if (resume && overwrite) return beit_errorf("--resume and --overwrite exclude each other");
  if (beit_mkdir_p(dir) != BEIT_OK || take_lock(r) != BEIT_OK) return BEIT_ERR;
  if (resume) return BEIT_OK;
  char first[256];
  int found = run_files(dir, 0, first, sizeof first);
  if (found < 0) return BEIT_ERR;
  if (found && !overwrite)
    return beit_errorf("%s holds a run (%s/%s): %sstart over with --overwrite (deletes the run's files) or choose "
                       "another --out", dir, dir, first, can_resume ? "continue it with --resume, " : "");
  if (found) {
    if (run_files(dir, 1, first, sizeof first) < 0) return BEIT_ERR;
    fprintf(stderr, "--overwrite: removed the %d files of the previous run in %s\n", found, dir);
  }
  return BEIT_OK;
}

int beit_run_open(beit_run *r, const char *config_json, int64_t resume_step) {
  char path[1100];
  if (config_json) {
    beit_run_path(r, "config.json", path, sizeof path);
    if (beit_write_file_atomic(path, config_json, strlen(config_json)) != BEIT_OK) return BEIT_ERR;
  }
  beit_run_path(r, "log.jsonl", path, sizeof path);
  if (resume_step >= 0 && trim_log(path, resume_step) != BEIT_OK) return BEIT_ERR;
  r->log = fopen(path, resume_step >= 0 ? "a" : "w");
  if (!r->log) return beit_errorf("%s: cannot open: %s", path, strerror(errno));
  return BEIT_OK;
}

int beit_run_log(beit_run *r, const char *fmt, ...) {
  if (!r->log) return BEIT_OK;
  va_list ap;
  va_start(ap, fmt);
  int bad = vfprintf(r->log, fmt, ap) < 0;
  va_end(ap);
  bad |= fputc('\n', r->log) == EOF;
  bad |= fflush(r->log) != 0;
  if (!bad) return BEIT_OK;
  int e = errno;
  clearerr(r->log);
  return beit_errorf("%s/log.jsonl: write failed: %s", r->dir, strerror(e));
}

void beit_run_close(beit_run *r) {
  if (r->log) fclose(r->log);
  r->log = NULL;
  if (r->locked) close(r->lock_fd);  /* releases the lock; the file stays (see take_lock) */
  r->locked = 0;
}

static volatile sig_atomic_t g_stop = 0;  /* the signal that asked to stop, 0 = none */

static void on_signal(int sig) {
  if (g_stop) {  /* second Ctrl-C: the user insists */
    signal(sig, SIG_DFL);
    raise(sig);
  }
  g_stop = sig;
}

void beit_install_stop_handler(void) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
}

int beit_stop_requested(void) { return g_stop != 0; }

int beit_stop_exit_code(void) { return 128 + (g_stop ? (int)g_stop : SIGTERM); }
