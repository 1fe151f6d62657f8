/* run.c - the run folder (config.json, log.jsonl) and the stop request of
 * Ctrl-C. A log line is written and flushed at once, so a crash loses nothing
 * already logged; on resume the lines past the checkpoint are dropped. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

int beit_run_open(beit_run *r, const char *dir, const char *config_json, int64_t resume_step) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "%s", dir);
  if (beit_mkdir_p(dir) != BEIT_OK) return BEIT_ERR;
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
}

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  if (g_stop) {  /* second Ctrl-C: the user insists */
    signal(sig, SIG_DFL);
    raise(sig);
  }
  g_stop = 1;
}

void beit_install_stop_handler(void) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
}

int beit_stop_requested(void) { return g_stop != 0; }
