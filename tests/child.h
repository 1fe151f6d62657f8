/* child.h - runs the real `beit` binary ($BEIT_BIN) from a test: extra
 * environment, resource limits (file size, address space), stderr captured to
 * a file, and a SIGKILL on demand. Used by the kill-and-resume and the
 * reliability tests. */
#ifndef BEIT_TEST_CHILD_H
#define BEIT_TEST_CHILD_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline const char *child_beit_bin(void) {
  const char *b = getenv("BEIT_BIN");
  return b ? b : "build/beit";
}

typedef struct {
  const char *env[8];      /* "NAME=value" added to the child's environment */
  long long fsize_limit;   /* RLIMIT_FSIZE in bytes, 0 = unchanged */
  long long as_limit;      /* RLIMIT_AS in bytes, 0 = unchanged */
  const char *err_path;    /* the child's stderr goes here; NULL = /dev/null */
} child_opts;

/* Runs `beit ARGS` (ARGS from fmt and ap) through the shell, stdout into the file
 * out and stderr into the file err; the exit status, -1 when it did not exit. */
static inline int child_beit_shell(const char *out, const char *err, const char *fmt, va_list ap) {
  char args[3000], cmd[8000];
  vsnprintf(args, sizeof args, fmt, ap);
  snprintf(cmd, sizeof cmd, "'%s' %s > '%s' 2> '%s'", child_beit_bin(), args, out, err);
  fflush(stdout);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Runs the shell command made from fmt; its exit status, -1 when it did not exit. */
static inline int child_shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int child_shell(const char *fmt, ...) {
  char cmd[6000];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  fflush(stdout);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* AddressSanitizer reserves terabytes of address space for its shadow memory,
 * so a sanitized child cannot run under RLIMIT_AS: the limit is left unset there
 * (the checks that are about RLIMIT_AS itself are skipped). */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_SANITIZED 1
#endif
#endif
#ifndef CHILD_SANITIZED
#define CHILD_SANITIZED 0
#endif

static inline pid_t child_start(char *const args[], const child_opts *o) {
  fflush(stdout);  /* or the child would print our buffered output again */
  pid_t pid = fork();
  if (pid != 0) return pid;
  for (int i = 0; o && i < 8 && o->env[i]; i++) putenv((char *)o->env[i]);
  if (o && o->fsize_limit > 0) {
    struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
    setrlimit(RLIMIT_FSIZE, &rl);
  }
  if (o && o->as_limit > 0 && !CHILD_SANITIZED) {
    struct rlimit rl = {(rlim_t)o->as_limit, (rlim_t)o->as_limit};
    setrlimit(RLIMIT_AS, &rl);
  }
  if (!freopen(o && o->err_path ? o->err_path : "/dev/null", "w", stderr)) _exit(126);
  if (!freopen("/dev/null", "w", stdout)) _exit(126);
  execv(child_beit_bin(), args);
  _exit(127);
}

/* Exit code, or -signal when killed by one. */
static inline int child_status(int status) { return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status); }

static inline int child_run(char *const args[], const child_opts *o) {
  int status;
  waitpid(child_start(args, o), &status, 0);
  return child_status(status);
}

static inline void child_sleep_ms(double ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000 * (long)(ms / 1000)) * 1e6)};
  nanosleep(&ts, NULL);
}

static inline int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* The whole of a small text file (stderr captures, logs); "" when missing. Caller frees. */
static inline char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *s = NULL;
  long n = 0;
  if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (s = malloc((size_t)n + 1)) && fread(s, 1, (size_t)n, f) == (size_t)n) {
    s[n] = 0;
  } else {
    free(s);
    s = calloc(1, 1);
  }
  if (f) fclose(f);
  return s;
}

/* 1 when the text file at path (an output capture) contains text. */
static inline int file_has(const char *path, const char *text) {
  char *s = slurp(path);
  int found = strstr(s, text) != NULL;
  free(s);
  return found;
}

static inline int write_idx(const char *path, const unsigned char *data, size_t n, const unsigned *dims, int nd) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  unsigned char head[16] = {0, 0, 8, (unsigned char)nd};
  for (int d = 0; d < nd; d++)
    for (int k = 0; k < 4; k++) head[4 + 4 * d + k] = (unsigned char)(dims[d] >> (24 - 8 * k));
  int ok = fwrite(head, 1, 4 + 4 * (size_t)nd, f) == 4 + 4 * (size_t)nd && fwrite(data, 1, n, f) == n;
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* A small MNIST-layout dataset in dir (train: n_train, test: n_test 28x28
 * images, 10 classes, a bright class-dependent square over noise), so the
 * process tests start and evaluate in a fraction of a second. Spec "mnist:DIR". */
static inline int make_tiny_mnist(const char *dir, unsigned n_train, unsigned n_test) {
  char path[1200];
  snprintf(path, sizeof path, "mkdir -p '%s'", dir);
  if (system(path) != 0) return -1;
  const char *split[2] = {"train", "t10k"};
  unsigned counts[2] = {n_train, n_test}, seed = 12345;
  for (int s = 0; s < 2; s++) {
    unsigned n = counts[s], dims[3] = {n, 28, 28};
    unsigned char *img = malloc((size_t)n * 784), *lab = malloc(n);
    for (unsigned i = 0; i < n; i++) {
      lab[i] = (unsigned char)(i % 10);
      for (int p = 0; p < 784; p++) {
        seed = seed * 1103515245u + 12345u;
        int y = p / 28, x = p % 28, cy = 4 + 2 * lab[i], in = y >= cy && y < cy + 6 && x >= 8 && x < 20;
        img[(size_t)i * 784 + p] = (unsigned char)((in ? 160 : 0) + (seed >> 16) % 90);
      }
    }
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, split[s]);
    int rc = write_idx(path, img, (size_t)n * 784, dims, 3);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split[s]);
    rc |= write_idx(path, lab, n, dims, 1);
    free(img), free(lab);
    if (rc) return -1;
  }
  return 0;
}

#endif
