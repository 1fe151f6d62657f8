/* core.c - errors, memory, the keyed RNG, timing, threads, progress bar and
 * file helpers (see core.h). */
#include "core/core.h"
#include "core/dist.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ---- */
static _Thread_local char g_err[1024];

int beit_errorf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  return BEIT_ERR;
}

int beit_error_context(const char *fmt, ...) {
  char prefix[512], old[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, g_err, sizeof old);
  /* prefix, then as much of the old message as fits */
  size_t k = strlen(prefix);
  if (k > sizeof g_err - 3) k = sizeof g_err - 3;
  memcpy(g_err, prefix, k);
  memcpy(g_err + k, ": ", 2);
  size_t rest = strnlen(old, sizeof old - 1);
  if (rest > sizeof g_err - k - 3) rest = sizeof g_err - k - 3;
  memcpy(g_err + k + 2, old, rest);
  g_err[k + 2 + rest] = 0;
  return BEIT_ERR;
}

const char *beit_last_error(void) { return g_err[0] ? g_err : "unknown error"; }

void beit_check_failed(const char *expr, const char *file, int line) {
  fprintf(stderr, "beit: internal check failed: %s (%s:%d)\n", expr, file, line);
  abort();
}

/* ---- memory ---- */
#define BEIT_ALLOC_CHECKED ((size_t)64 << 20)

static int out_of_memory(size_t bytes, const char *what) {
  if (bytes < ((size_t)1 << 20)) return beit_errorf("out of memory allocating %zu bytes for %s", bytes, what);
  return beit_errorf("out of memory allocating %.1f MiB for %s", bytes / 1048576.0, what);
}

/* BEIT_TEST_ALLOC_FAIL (core.h): this allocation fails on purpose. */
static int injected_failure(const char *what) {
  const char *v = getenv("BEIT_TEST_ALLOC_FAIL");
  return v && *v && what && strstr(what, v);
}

void *beit_alloc(size_t bytes, const char *what) {
  void *p = NULL;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (bytes >= BEIT_ALLOC_CHECKED && beit_memory_check((double)bytes, what) != BEIT_OK) return NULL;
  if (rounded < bytes || injected_failure(what) || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
    out_of_memory(bytes, what);
    return NULL;
  }
  return p;
}

void *beit_calloc(size_t bytes, const char *what) {
  void *p = beit_alloc(bytes, what);
  if (p) memset(p, 0, bytes);
  return p;
}

void *beit_realloc(void *p, size_t bytes, const char *what) {
  void *q = injected_failure(what) ? NULL : realloc(p, bytes ? bytes : 1);
  if (!q) out_of_memory(bytes, what);
  return q;
}

void beit_free(void *p) { free(p); }

int beit_mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return beit_errorf("size overflow (%zu x %zu)", a, b);
  *out = a * b;
  return BEIT_OK;
}

/* ---- memory budget ---- */
/* First number after `key` in a "key value" text file (/proc/meminfo, memory.stat). */
static int read_keyed(const char *path, const char *key, double *out) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  size_t k = strlen(key);
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    if (!strncmp(line, key, k) && (line[k] == ':' || line[k] == ' ')) found = sscanf(line + k + 1, "%lf", out) == 1;
  fclose(f);
  return found;
}

/* A file holding one number ("max" counts as unknown). */
static int read_number(const char *path, double *out) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int ok = fscanf(f, "%lf", out) == 1;
  fclose(f);
  return ok;
}

/* cgroup v2 limit minus usage (reclaimable page cache counted as free), or -1. */
static double cgroup_available(void) {
  char rel[512] = "", dir[700], path[800];
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (f) {
    char line[600];
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "0::", 3)) sscanf(line + 3, "%511s", rel);
    fclose(f);
  }
  const char *dirs[2] = {dir, "/sys/fs/cgroup"};
  snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", strcmp(rel, "/") ? rel : "");
  for (int i = 0; i < 2; i++) {
    double max, cur, inactive = 0;
    snprintf(path, sizeof path, "%s/memory.max", dirs[i]);
    if (!read_number(path, &max)) continue;
    snprintf(path, sizeof path, "%s/memory.current", dirs[i]);
    if (!read_number(path, &cur)) continue;
    snprintf(path, sizeof path, "%s/memory.stat", dirs[i]);
    read_keyed(path, "inactive_file", &inactive);
    double left = max - cur + inactive;
    return left > 0 ? left : 0;
  }
  return -1;
}

/* RLIMIT_AS minus the address space in use, or -1 when unlimited. */
static double rlimit_available(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return -1;
  double used_kib = 0;
  read_keyed("/proc/self/status", "VmSize", &used_kib);
  double left = (double)rl.rlim_cur - used_kib * 1024;
  return left > 0 ? left : 0;
}

static double memory_available(const char **source) {
  double best = -1, kib, x;
  *source = "unknown";
  if (read_keyed("/proc/meminfo", "MemAvailable", &kib)) best = kib * 1024, *source = "MemAvailable";
  if ((x = cgroup_available()) >= 0 && (best < 0 || x < best)) best = x, *source = "cgroup memory limit";
  if ((x = rlimit_available()) >= 0 && (best < 0 || x < best)) best = x, *source = "RLIMIT_AS";
  return best;
}

size_t beit_memory_available(void) {
  const char *source;
  double x = memory_available(&source);
  return x < 0 || x >= (double)SIZE_MAX ? SIZE_MAX : (size_t)x;
}

static void format_bytes(double b, char *out, size_t n) {
  if (b >= 1099511627776.0) snprintf(out, n, "%.1f TiB", b / 1099511627776.0);
  else if (b >= 1024.0 * 1048576) snprintf(out, n, "%.1f GiB", b / (1024.0 * 1048576));
  else snprintf(out, n, "%.0f MiB", b / 1048576);
}

int beit_memory_check(double need, const char *what) {
  const char *off = getenv("BEIT_MEMORY_CHECK");
  if (off && !strcmp(off, "off")) return BEIT_OK;
  const char *source;
  double avail = memory_available(&source);
  if (avail < 0 || need <= avail) return BEIT_OK;
  char a[32], b[32];
  format_bytes(need, a, sizeof a);
  format_bytes(avail, b, sizeof b);
  return beit_errorf("%s needs %s, %s available (%s; BEIT_MEMORY_CHECK=off skips this check)", what, a, b, source);
}

/* ---- rng: splitmix64 derives the key, xoshiro256** generates ---- */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void beit_rng_seed(beit_rng *r, uint64_t seed, uint64_t purpose, uint64_t i, uint64_t j) {
  uint64_t x = seed;
  uint64_t k = splitmix64(&x);
  x = k ^ (purpose * 0xD1B54A32D192ED03ull);
  k = splitmix64(&x);
  x = k ^ (i * 0x8CB92BA72F3D8DD7ull);
  k = splitmix64(&x);
  x = k ^ (j * 0xA24BAED4963EE407ull);
  for (int n = 0; n < 4; n++) r->s[n] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t beit_rng_u64(beit_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t; s[3] = rotl(s[3], 45);
  return result;
}

double beit_rng_uniform(beit_rng *r) { return (beit_rng_u64(r) >> 11) * 0x1.0p-53; }

double beit_rng_uniform_range(beit_rng *r, double lo, double hi) {
  return lo + (hi - lo) * beit_rng_uniform(r);
}

int64_t beit_rng_randint(beit_rng *r, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  uint64_t span = (uint64_t)(hi - lo) + 1, limit = UINT64_MAX - UINT64_MAX % span, x;
  do x = beit_rng_u64(r); while (x >= limit);  /* rejection: no modulo bias */
  return lo + (int64_t)(x % span);
}

double beit_rng_normal(beit_rng *r) {
  double u1 = beit_rng_uniform(r), u2 = beit_rng_uniform(r);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

float beit_rng_trunc_normal(beit_rng *r, float std, float lo, float hi) {
  for (;;) {
    double x = std * beit_rng_normal(r);
    if (x >= lo && x <= hi) return (float)x;
  }
}

/* ---- time, threads, memory usage ---- */
double beit_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int g_threads = 0;

void beit_set_threads(int n) {
  if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN) / beit_dist_local_size(); /* ranks share the cores */
  if (n <= 0) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int beit_get_threads(void) { return g_threads ? g_threads : omp_get_max_threads(); }

double beit_peak_rss_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kib = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) { kib = atof(line + 6); break; }
  fclose(f);
  return kib / 1024.0;
}

/* ---- progress bar ---- */
static void format_duration(double s, char *buf, size_t n) {
  if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
  int t = (int)(s + 0.5);
  if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void progress_draw(beit_progress *p, int final) {
  double el = beit_now() - p->t_start;
  double rate = el > 0 ? (p->done - p->done0) / el : 0;
  double frac = p->total > 0 ? (double)p->done / p->total : 0;
  if (frac > 1) frac = 1;
  char bar[32], eta[32], ela[32];
  int w = 24, fill = (int)(frac * w);
  for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
  bar[w] = 0;
  format_duration(rate > 0 ? (p->total - p->done) / rate : -1, eta, sizeof eta);
  format_duration(el, ela, sizeof ela);
  if (p->in_place) {
    fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld  %.1f img/s  %s<%s  %s%s", p->label, bar, 100 * frac,
            (long long)p->done, (long long)p->total, rate, ela, eta, p->extra, final ? "\n" : "");
    p->open = !final;
  } else {
    fprintf(stderr, "%s: %s%s%lld/%lld images (%.0f%%), %.1f img/s, %s elapsed, ETA %s\n", p->label, p->extra,
            p->extra[0] ? " | " : "", (long long)p->done, (long long)p->total, 100 * frac, rate, ela, eta);
    p->line_done = p->done;
  }
  fflush(stderr);
}

void beit_progress_start(beit_progress *p, const char *label, int64_t total) {
  memset(p, 0, sizeof *p);
  p->label = label;
  p->total = total;
  p->t_start = p->t_last_draw = beit_now();
  p->enabled = 1;
  p->in_place = isatty(2) || getenv("BEIT_PROGRESS") != NULL;
  const char *every = getenv("BEIT_PROGRESS_SECONDS");
  p->every = every ? atof(every) : 30;
  if (!(p->every >= 0)) p->every = 30;
  p->line_done = -1;
}

void beit_progress_update(beit_progress *p, int64_t n, const char *extra) {
  p->done += n;
  if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
  if (!p->enabled) return;
  double now = beit_now();
  int due = p->in_place ? now - p->t_last_draw >= 0.2 : p->line_done < 0 || now - p->t_last_draw >= p->every;
  if (!due) return;
  p->t_last_draw = now;
  progress_draw(p, 0);
}

void beit_progress_line(beit_progress *p) {
  if (!p->enabled || p->in_place || p->line_done == p->done) return;
  p->t_last_draw = beit_now();
  progress_draw(p, 0);
}

void beit_progress_finish(beit_progress *p) {
  if (!p->enabled || (!p->in_place && p->line_done == p->done)) return;
  progress_draw(p, 1);
}

const char *beit_progress_eol(beit_progress *p) {
  if (!p->open) return "";
  p->open = 0;
  return "\n";
}

/* ---- files ---- */
static const char *file_kind(mode_t m) {
  return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

int beit_open_read(const char *path) {
  /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    beit_errorf("%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  int bad = fstat(fd, &st) != 0 ? beit_errorf("%s: cannot stat: %s", path, strerror(errno))
            : !S_ISREG(st.st_mode) ? beit_errorf("%s: not a regular file (%s)", path, file_kind(st.st_mode)) : BEIT_OK;
  if (bad) {
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    beit_errorf("%s: fcntl: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

FILE *beit_fopen_read(const char *path) {
  int fd = beit_open_read(path);
  FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
  if (fd >= 0 && !f) {
    beit_errorf("%s: cannot open: %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

int beit_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int beit_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int beit_read_file(const char *path, uint8_t **data, size_t *size) {
  *data = NULL;
  *size = 0;
  FILE *f = beit_fopen_read(path);
  if (!f) return BEIT_ERR;
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    fclose(f);
    return beit_errorf("%s: cannot stat: %s", path, strerror(errno));
  }
  size_t n = (size_t)st.st_size;
  uint8_t *buf = beit_alloc(n + 1, path);
  if (!buf) { fclose(f); return BEIT_ERR; }
  if (n && fread(buf, 1, n, f) != n) {
    fclose(f);
    beit_free(buf);
    return beit_errorf("%s: read failed after %zu bytes", path, n);
  }
  fclose(f);
  buf[n] = 0;
  *data = buf;
  *size = n;
  return BEIT_OK;
}

static int fsync_dir_of(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  int fd = open(dirname(tmp), O_RDONLY);
  if (fd < 0) return BEIT_OK;  /* best effort: some filesystems refuse */
  fsync(fd);
  close(fd);
  return BEIT_OK;
}

void beit_test_write_delay(void) {
  const char *v = getenv("BEIT_TEST_WRITE_DELAY_MS");
  long ms = v ? strtol(v, NULL, 10) : 0;
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* 0, or the errno of the failed write. */
static int write_all(int fd, const uint8_t *p, size_t left) {
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EIO;
    p += w;
    left -= (size_t)w;
  }
  return 0;
}

int beit_write_file_atomic(const char *path, const void *data, size_t size) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return beit_errorf("%s: path too long", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return beit_errorf("%s: cannot create %s: %s (previous file kept)", path, tmp, strerror(errno));
  const uint8_t *p = data;
  int e = write_all(fd, p, size / 2);
  if (!e) beit_test_write_delay();
  if (!e) e = write_all(fd, p + size / 2, size - size / 2);
  if (e) {
    close(fd);
    unlink(tmp);
    return beit_errorf("%s: write failed: %s (previous file kept)", path, strerror(e));
  }
  e = fsync(fd) != 0 ? errno : 0;  /* ENOSPC / EIO of delayed allocation shows here */
  if (close(fd) != 0 && !e) e = errno;
  if (e) {
    unlink(tmp);
    return beit_errorf("%s: sync failed: %s (previous file kept)", path, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    e = errno;
    unlink(tmp);
    return beit_errorf("%s: rename failed: %s (previous file kept)", path, strerror(e));
  }
  return fsync_dir_of(path);
}

int beit_mkdir_p(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return beit_errorf("%s: path too long", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return beit_errorf("%s: cannot create directory: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return beit_errorf("%s: cannot create directory: %s", buf, strerror(errno));
  return BEIT_OK;
}
