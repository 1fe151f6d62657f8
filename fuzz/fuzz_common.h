/* fuzz_common.h - what the libFuzzer harnesses share: a private scratch
 * directory (on tmpfs when there is one) for parsers that only take a path,
 * writing the input there, and a check that aborts (a finding) when a parser
 * breaks a promise of its interface. */
#ifndef BEIT_FUZZ_COMMON_H
#define BEIT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* A property the parser promises; failing it is a finding like a crash. */
#define FUZZ_ASSERT(cond)                                                          \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "fuzz: property failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      abort();                                                                     \
    }                                                                              \
  } while (0)

/* A refusal: it must come with a message; BEIT_FUZZ_VERBOSE=1 prints it (to see
 * why a seed is refused). */
static inline void fuzz_refused(void) {
  FUZZ_ASSERT(beit_last_error()[0]);
  if (getenv("BEIT_FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", beit_last_error());
}

static inline void fuzz_accepted(const char *what) {
  if (getenv("BEIT_FUZZ_VERBOSE")) fprintf(stderr, "accepted: %s\n", what);
}

/* Scratch directory of this process, created on first use, removed at exit. */
static char g_fuzz_dir[256];

static inline void fuzz_remove_dir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_fuzz_dir);
  if (g_fuzz_dir[0] && system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", g_fuzz_dir);
}

static inline const char *fuzz_dir(void) {
  if (g_fuzz_dir[0]) return g_fuzz_dir;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(g_fuzz_dir, sizeof g_fuzz_dir, "%s/beit-fuzz-%d-XXXXXX", base, (int)getpid());
  if (!mkdtemp(g_fuzz_dir)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(fuzz_remove_dir);
  return g_fuzz_dir;
}

/* Writes the bytes to <scratch>/<name>; returns that path, kept in `out`. */
static inline const char *fuzz_write(char out[512], const char *name, const uint8_t *data, size_t size) {
  snprintf(out, 512, "%s/%s", fuzz_dir(), name);
  FILE *f = fopen(out, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror(out);
    abort();
  }
  return out;
}

static inline void fuzz_unlink(const char *name) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
  unlink(p);
}

/* Splits data at a 4-byte little-endian length prefix: part a = the next `len`
 * bytes (clamped), part b = the rest. */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na, const uint8_t **b,
                       size_t *nb) {
  size_t len = size >= 4 ? (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24 : 0;
  size_t body = size >= 4 ? size - 4 : 0;
  if (len > body) len = body;
  *a = data + (size - body), *na = len;
  *b = *a + len, *nb = body - len;
}

/* Opens a dataset spec (dataset harnesses include data/dataset.h first). Accepted:
 * every label lies below the class count, the last sample can be fetched, and
 * `check` holds (the format's own properties). Refused: a message, nothing left
 * allocated. */
#ifdef BEIT_DATASET_H
static inline void fuzz_dataset(const char *spec, void (*check)(const beit_dataset *)) {
  beit_dataset ds;
  if (beit_dataset_open(&ds, spec, 0) != BEIT_OK) {
    fuzz_refused();
    FUZZ_ASSERT(ds.pixels == NULL && ds.labels == NULL);
    return;
  }
  fuzz_accepted(spec);
  FUZZ_ASSERT(ds.n > 0 && ds.num_classes > 0);
  for (int64_t i = 0; i < ds.n; i++) FUZZ_ASSERT(ds.labels[i] >= 0 && ds.labels[i] < ds.num_classes);
  check(&ds);
  beit_image img = {0};
  int32_t label;
  FUZZ_ASSERT(beit_dataset_get(&ds, ds.n - 1, &img, &label) == BEIT_OK);
  beit_image_free(&img);
  beit_dataset_close(&ds);
}
#endif

#endif
