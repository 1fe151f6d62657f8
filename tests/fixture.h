/* fixture.h - reference fixtures for tests: runs a tests/ref script with
 * Debian's python3-torch into $BEIT_TEST_FIXTURES and reads its tensors. */
#ifndef BEIT_TEST_FIXTURE_H
#define BEIT_TEST_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"
#include "io/safetensors.h"

static inline const char *fx_dir(void) {
  const char *d = getenv("BEIT_TEST_FIXTURES");
  return d ? d : "build/fixtures";
}

static inline const char *fx_root(void) {
  const char *r = getenv("BEIT_ROOT");
  return r ? r : ".";
}

/* Runs `python3 tests/ref/<script> <dir>/<out> <args>` and opens the result.
 * Returns 0 on success; prints why on failure. */
static inline int fx_generate(beit_safetensors *st, const char *script, const char *out, const char *args) {
  char path[1024], cmd[4096];
  beit_mkdir_p(fx_dir());
  snprintf(path, sizeof path, "%s/%s", fx_dir(), out);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/%s %s %s", fx_root(), script, path, args ? args : "");
  if (system(cmd) != 0) {
    printf("  FAIL reference script failed: %s\n", cmd);
    return -1;
  }
  if (beit_st_open(st, path) != BEIT_OK) {
    printf("  FAIL %s\n", beit_last_error());
    return -1;
  }
  return 0;
}

/* A tensor as freshly allocated float32 (aborts the test program if absent:
 * a missing fixture tensor is a broken test, not a result). */
static inline float *fx_f32(const beit_safetensors *st, const char *name, size_t *numel) {
  int i = beit_st_find(st, name);
  if (i < 0) { printf("  FAIL fixture has no tensor '%s'\n", name); exit(1); }
  size_t n = beit_st_numel(&st->e[i]);
  float *x = malloc(n * sizeof(float) + 1);
  if (beit_st_read_f32(st, i, x, n) != BEIT_OK) { printf("  FAIL %s\n", beit_last_error()); exit(1); }
  if (numel) *numel = n;
  return x;
}

static inline int32_t *fx_i32(const beit_safetensors *st, const char *name, size_t *numel) {
  int i = beit_st_find(st, name);
  if (i < 0) { printf("  FAIL fixture has no tensor '%s'\n", name); exit(1); }
  size_t n = beit_st_numel(&st->e[i]);
  int64_t *t = malloc(n * sizeof(int64_t) + 1);
  if (beit_st_read_i64(st, i, t, n) != BEIT_OK) { printf("  FAIL %s\n", beit_last_error()); exit(1); }
  int32_t *x = malloc(n * sizeof(int32_t) + 1);
  for (size_t k = 0; k < n; k++) x[k] = (int32_t)t[k];
  free(t);
  if (numel) *numel = n;
  return x;
}

static inline uint8_t *fx_u8(const beit_safetensors *st, const char *name, size_t *numel) {
  size_t n;
  int32_t *t = fx_i32(st, name, &n);
  uint8_t *x = malloc(n + 1);
  for (size_t k = 0; k < n; k++) x[k] = (uint8_t)t[k];
  free(t);
  if (numel) *numel = n;
  return x;
}

/* train.step of the checkpoint file at path, -1 when it cannot be read or has none. */
static inline long long fx_checkpoint_step(const char *path) {
  beit_safetensors st;
  if (beit_st_open(&st, path) != BEIT_OK) return -1;
  const char *v = beit_st_meta(&st, "train.step");
  long long step = v ? atoll(v) : -1;
  beit_st_close(&st);
  return step;
}

#endif
