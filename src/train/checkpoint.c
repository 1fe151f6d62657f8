/* checkpoint.c - training checkpoints: model tensors, AdamW moments and the
 * resume position in one atomically written safetensors file (see train.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "train/train.h"

#define MAX_META 32

int beit_checkpoint_save(const char *path, const beit_params *p, const beit_optimizer *opt,
                         const beit_train_state *s, const char *const *meta_kv, int n_meta) {
  int per = opt ? 3 : 1, n = p->n * per;
  beit_st_tensor *t = calloc((size_t)n, sizeof *t);
  char (*names)[BEIT_NAME_MAX + 16] = calloc((size_t)n, sizeof *names);
  if (!t || !names || n_meta > MAX_META - 5) {
    free(t), free(names);
    return beit_errorf("%s: cannot build checkpoint (out of memory or too much metadata)", path);
  }
  for (int i = 0; i < p->n; i++) {
    const beit_tensor_info *ti = &p->t[i];
    const float *src[3] = {p->data, opt ? opt->m : NULL, opt ? opt->v : NULL};
    const char *prefix[3] = {"", "optim.m.", "optim.v."};
    for (int k = 0; k < per; k++) {
      beit_st_tensor *e = &t[k * p->n + i];
      snprintf(names[k * p->n + i], sizeof names[0], "%s%s", prefix[k], ti->name);
      e->name = names[k * p->n + i];
      e->ndim = ti->ndim;
      e->shape = ti->shape;
      e->data = src[k] + ti->offset;
    }
  }
  char vals[4][32];
  snprintf(vals[0], sizeof vals[0], "%" PRId64, s->step);
  snprintf(vals[1], sizeof vals[1], "%" PRId64, s->epoch);
  snprintf(vals[2], sizeof vals[2], "%" PRId64, s->step_in_epoch);
  snprintf(vals[3], sizeof vals[3], "%.17g", s->best);
  const char *kv[2 * MAX_META];
  int m = 0;
  const char *state_keys[4] = {"train.step", "train.epoch", "train.step_in_epoch", "train.best"};
  for (int k = 0; k < 4; k++) kv[2 * m] = state_keys[k], kv[2 * m + 1] = vals[k], m++;
  kv[2 * m] = "format", kv[2 * m + 1] = "beit.c checkpoint 1", m++;
  for (int k = 0; k < n_meta; k++) kv[2 * m] = meta_kv[2 * k], kv[2 * m + 1] = meta_kv[2 * k + 1], m++;
  int rc = beit_st_write(path, t, n, kv, m);
  free(t);
  free(names);
  return rc;
}

static int read_i64_meta(const beit_safetensors *st, const char *key, int64_t *out) {
  const char *v = beit_st_meta(st, key);
  if (!v) return BEIT_OK;
  char *end;
  long long x = strtoll(v, &end, 10);
  if (*end || x < 0) return beit_errorf("%s: metadata '%s' is not a step count: '%s'", st->path, key, v);
  *out = x;
  return BEIT_OK;
}

static int load_moments(const beit_safetensors *st, beit_optimizer *opt) {
  const beit_params *p = opt->p;
  char name[BEIT_NAME_MAX + 16];
  for (int i = 0; i < p->n; i++) {
    float *dst[2] = {opt->m, opt->v};
    const char *prefix[2] = {"optim.m.", "optim.v."};
    for (int k = 0; k < 2; k++) {
      snprintf(name, sizeof name, "%s%s", prefix[k], p->t[i].name);
      int j = beit_st_find(st, name);
      if (j < 0) return beit_errorf("%s: no optimizer state '%s' (a weights-only file cannot resume training)", st->path, name);
      if (beit_st_read_f32(st, j, dst[k] + p->t[i].offset, p->t[i].numel) != BEIT_OK) return BEIT_ERR;
    }
  }
  return BEIT_OK;
}

int beit_checkpoint_load(const char *path, beit_params *p, beit_optimizer *opt, beit_train_state *s,
                         int strict) {
  beit_safetensors st;
  if (beit_st_open(&st, path) != BEIT_OK) return BEIT_ERR;
  int rc = beit_params_load_from(p, &st, 0);
  if (rc == BEIT_OK && strict) {  /* unknown tensors other than optimizer state */
    for (int i = 0; i < st.n && rc == BEIT_OK; i++)
      if (strncmp(st.e[i].name, "optim.", 6) && beit_params_find(p, st.e[i].name) < 0 &&
          !strstr(st.e[i].name, "relative_position_index"))
        rc = beit_errorf("%s: tensor '%s' does not belong to this model", path, st.e[i].name);
  }
  if (rc == BEIT_OK && s) {
    memset(s, 0, sizeof *s);
    const char *best = beit_st_meta(&st, "train.best");
    if (best) s->best = strtod(best, NULL);
    rc = read_i64_meta(&st, "train.step", &s->step) | read_i64_meta(&st, "train.epoch", &s->epoch) |
         read_i64_meta(&st, "train.step_in_epoch", &s->step_in_epoch);
  }
  if (rc == BEIT_OK && opt) {
    rc = load_moments(&st, opt);
    if (rc == BEIT_OK && s) opt->step = s->step;
  }
  beit_st_close(&st);
  return rc;
}
