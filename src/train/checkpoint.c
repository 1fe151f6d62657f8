/* checkpoint.c - training checkpoints: model tensors, AdamW moments and the
 * resume position in one atomically written safetensors file (see train.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "train/train.h"

#define MAX_META 32
/* The train state in the metadata: the integers, then the reals (beit_train_state). */
static const char *const state_keys[] = {"train.step", "train.epoch", "train.step_in_epoch", "train.best_epochs",
                                         "train.epoch_steps", "train.epoch_correct", "train.epoch_count", "train.best",
                                         "train.best_top5", "train.epoch_loss"};

/* A checkpoint never holds a NaN or an infinity: refused before anything is written. */
static int check_finite(const char *path, const beit_params *p, const beit_optimizer *opt) {
  const float *bufs[4] = {p->data, opt ? opt->m : NULL, opt ? opt->v : NULL, opt ? opt->ema : NULL};
  const char *what[4] = {"parameter", "AdamW first moment of", "AdamW second moment of", "the EMA of"};
  for (int k = 0; k < 4; k++) {
    int bad = bufs[k] ? beit_params_first_nonfinite(p, bufs[k]) : -1;
    if (bad >= 0)
      return beit_errorf("%s: %s '%s' holds a NaN or infinity; not writing the checkpoint (the previous one is kept)",
                         path, what[k], p->t[bad].name);
  }
  return BEIT_OK;
}

static int extra_count(const beit_ckpt_extra *x) {
  int n = 0;
  for (int k = 0; x && k < x->n; k++) n += x->t[k]->n;
  return n;
}

static int check_finite_extra(const char *path, const beit_ckpt_extra *x) {
  for (int k = 0; x && k < x->n; k++) {
    int bad = beit_params_first_nonfinite(x->t[k], x->t[k]->data);
    if (bad >= 0)
      return beit_errorf("%s: '%s' holds a NaN or infinity; not writing the checkpoint (the previous one is kept)",
                         path, x->t[k]->t[bad].name);
  }
  return BEIT_OK;
}

int beit_checkpoint_save(const char *path, const beit_params *p, const beit_optimizer *opt,
                         const beit_train_state *s, const char *const *meta_kv, int n_meta) {
  return beit_checkpoint_save_x(path, p, opt, NULL, s, meta_kv, n_meta);
}

int beit_checkpoint_save_x(const char *path, const beit_params *p, const beit_optimizer *opt,
                           const beit_ckpt_extra *x, const beit_train_state *s, const char *const *meta_kv,
                           int n_meta) {
  if (check_finite(path, p, opt) != BEIT_OK || check_finite_extra(path, x) != BEIT_OK) return BEIT_ERR;
  int per = opt ? (opt->ema ? 4 : 3) : 1, n = p->n * per + extra_count(x);
  beit_st_tensor *t = calloc((size_t)n, sizeof *t);
  char (*names)[BEIT_NAME_MAX + 16] = calloc((size_t)n, sizeof *names);
  if (!t || !names || n_meta > MAX_META - 11) {
    free(t), free(names);
    return beit_errorf("%s: cannot build checkpoint (out of memory or too much metadata)", path);
  }
  for (int i = 0; i < p->n; i++) {
    const beit_tensor_info *ti = &p->t[i];
    const float *src[4] = {p->data, opt ? opt->m : NULL, opt ? opt->v : NULL, opt ? opt->ema : NULL};
    const char *prefix[4] = {"", "optim.m.", "optim.v.", "optim.ema."};
    for (int k = 0; k < per; k++) {
      beit_st_tensor *e = &t[k * p->n + i];
      snprintf(names[k * p->n + i], sizeof names[0], "%s%s", prefix[k], ti->name);
      e->name = names[k * p->n + i];
      e->ndim = ti->ndim;
      e->shape = ti->shape;
      e->data = src[k] + ti->offset;
    }
  }
  for (int k = 0, i = p->n * per; x && k < x->n; k++)
    for (int j = 0; j < x->t[k]->n; j++, i++) {
      const beit_tensor_info *ti = &x->t[k]->t[j];
      t[i] = (beit_st_tensor){.name = ti->name, .ndim = ti->ndim, .shape = ti->shape,
                              .data = x->t[k]->data + ti->offset};
    }
  enum { NSTATE = 10 };
  char vals[NSTATE][32];
  const int64_t ints[] = {s->step, s->epoch, s->step_in_epoch, s->best_epochs, s->epoch_steps, s->epoch_correct,
                          s->epoch_count};
  const double reals[] = {s->best, s->best_top5, s->epoch_loss};
  for (int k = 0; k < 7; k++) snprintf(vals[k], sizeof vals[k], "%" PRId64, ints[k]);
  for (int k = 0; k < 3; k++) snprintf(vals[7 + k], sizeof vals[0], "%.17g", reals[k]);
  const char *kv[2 * MAX_META];
  int m = 0;
  for (int k = 0; k < NSTATE; k++) kv[2 * m] = state_keys[k], kv[2 * m + 1] = vals[k], m++;
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
    float *dst[3] = {opt->m, opt->v, opt->ema};
    const char *prefix[3] = {"optim.m.", "optim.v.", "optim.ema."};
    for (int k = 0; k < (opt->ema ? 3 : 2); k++) {
      snprintf(name, sizeof name, "%s%s", prefix[k], p->t[i].name);
      int j = beit_st_find(st, name);
      if (j < 0 && k == 2) return beit_errorf("%s: no EMA weights '%s' (the run was trained without --model-ema)", st->path, name);
      if (j < 0) return beit_errorf("%s: no optimizer state '%s' (a weights-only file cannot resume training)", st->path, name);
      if (beit_st_read_f32(st, j, dst[k] + p->t[i].offset, p->t[i].numel) != BEIT_OK) return BEIT_ERR;
    }
  }
  return BEIT_OK;
}

static int in_extra(const beit_ckpt_extra *x, const char *name) {
  for (int k = 0; x && k < x->n; k++)
    if (beit_params_find(x->t[k], name) >= 0) return 1;
  return 0;
}

int beit_checkpoint_load(const char *path, beit_params *p, beit_optimizer *opt, beit_train_state *s,
                         int strict) {
  return beit_checkpoint_load_x(path, p, opt, NULL, s, strict);
}

int beit_checkpoint_load_x(const char *path, beit_params *p, beit_optimizer *opt, const beit_ckpt_extra *x,
                           beit_train_state *s, int strict) {
  beit_safetensors st;
  if (beit_st_open(&st, path) != BEIT_OK) return BEIT_ERR;
  int rc = beit_params_load_from(p, &st, 0);
  for (int k = 0; x && k < x->n && rc == BEIT_OK; k++) rc = beit_params_load_from(x->t[k], &st, 0);
  if (rc == BEIT_OK && strict) {  /* unknown tensors other than optimizer state */
    for (int i = 0; i < st.n && rc == BEIT_OK; i++)
      if (strncmp(st.e[i].name, "optim.", 6) && beit_params_find(p, st.e[i].name) < 0 && !in_extra(x, st.e[i].name) &&
          !strstr(st.e[i].name, "relative_position_index"))
        rc = beit_errorf("%s: tensor '%s' does not belong to this model", path, st.e[i].name);
  }
  if (rc == BEIT_OK && s) {
    memset(s, 0, sizeof *s);
    int64_t *ints[] = {&s->step, &s->epoch, &s->step_in_epoch, &s->best_epochs, &s->epoch_steps, &s->epoch_correct,
                       &s->epoch_count};
    double *reals[] = {&s->best, &s->best_top5, &s->epoch_loss};
    for (int k = 0; k < 7; k++) rc |= read_i64_meta(&st, state_keys[k], ints[k]);
    for (int k = 0; k < 3; k++) {
      const char *v = beit_st_meta(&st, state_keys[7 + k]);
      if (v) *reals[k] = strtod(v, NULL);
    }
  }
  if (rc == BEIT_OK && opt) {
    rc = load_moments(&st, opt);
    if (rc == BEIT_OK && s) opt->step = s->step;
  }
  beit_st_close(&st);
  return rc;
}

/* ---- the last N checkpoints ------------------------------------------------ */
void beit_checkpoint_name(const char *dir, int k, char *out, size_t n) {
  if (k == 0) snprintf(out, n, "%s/checkpoint.safetensors", dir);
  else snprintf(out, n, "%s/checkpoint-%d.safetensors", dir, k);
}

static void fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY);
  if (fd >= 0) fsync(fd), close(fd);
}

/* Shifts checkpoint-k to checkpoint-(k+1) (the oldest kept is replaced) and
 * makes the current checkpoint also checkpoint-1, by a hard link (a rename
 * where links are not supported). Every step is one atomic rename, so at any
 * moment each name holds a whole checkpoint and lower numbers are never older. */
static int rotate(const char *dir, int keep) {
  char a[1100], b[1100], cur[1100], tmp[1120];
  beit_checkpoint_name(dir, 0, cur, sizeof cur);
  if (keep < 2 || access(cur, F_OK) != 0) return BEIT_OK;
  for (int k = keep - 2; k >= 1; k--) {
    beit_checkpoint_name(dir, k, a, sizeof a);
    beit_checkpoint_name(dir, k + 1, b, sizeof b);
    if (access(a, F_OK) == 0 && rename(a, b) != 0)
      return beit_errorf("%s: cannot rename to %s: %s (checkpoints kept as they are)", a, b, strerror(errno));
    beit_test_write_delay();
  }
  beit_checkpoint_name(dir, 1, b, sizeof b);
  snprintf(tmp, sizeof tmp, "%s.link", b);
  unlink(tmp);
  int linked = link(cur, tmp) == 0 && rename(tmp, b) == 0;
  if (!linked && (unlink(tmp), rename(cur, b) != 0))
    return beit_errorf("%s: cannot keep it as %s: %s (checkpoints kept as they are)", cur, b, strerror(errno));
  beit_test_write_delay();
  fsync_dir(dir);
  return BEIT_OK;
}

/* Removes checkpoint-keep and beyond (left by a run with a larger --keep);
 * only after the new checkpoint is safe, as one of them may be the only good one. */
static int prune(const char *dir, int keep) {
  char a[1100];
  for (int k = keep > 1 ? keep : 1; k < BEIT_CHECKPOINT_SCAN; k++) {
    beit_checkpoint_name(dir, k, a, sizeof a);
    if (access(a, F_OK) == 0 && unlink(a) != 0) return beit_errorf("%s: cannot remove: %s", a, strerror(errno));
  }
  return BEIT_OK;
}

int beit_checkpoint_save_kept(const char *dir, int keep, const beit_params *p, const beit_optimizer *opt,
                              const beit_train_state *s, const char *const *meta_kv, int n_meta) {
  return beit_checkpoint_save_kept_x(dir, keep, p, opt, NULL, s, meta_kv, n_meta);
}

int beit_checkpoint_save_kept_x(const char *dir, int keep, const beit_params *p, const beit_optimizer *opt,
                                const beit_ckpt_extra *x, const beit_train_state *s, const char *const *meta_kv,
                                int n_meta) {
  char path[1100];
  beit_checkpoint_name(dir, 0, path, sizeof path);
  if (check_finite(path, p, opt) != BEIT_OK || check_finite_extra(path, x) != BEIT_OK || rotate(dir, keep) != BEIT_OK ||
      beit_checkpoint_save_x(path, p, opt, x, s, meta_kv, n_meta) != BEIT_OK)
    return BEIT_ERR;
  return prune(dir, keep);
}

/* Moves checkpoints that failed to load out of the rotation (to NAME.bad), so
 * the next save does not keep a broken file in place of a good one. */
static void set_aside(const char *dir, const char *skipped, int upto) {
  char path[1100], bad[1120];
  for (int k = 0; k < upto; k++) {
    if (!skipped[k]) continue;
    beit_checkpoint_name(dir, k, path, sizeof path);
    snprintf(bad, sizeof bad, "%s.bad", path);
    if (rename(path, bad) == 0) fprintf(stderr, "resume: moved %s aside as %s\n", path, bad);
  }
}

int beit_checkpoint_resume(const char *dir, beit_params *p, beit_optimizer *opt, beit_train_state *s, char *used,
                           size_t n) {
  return beit_checkpoint_resume_x(dir, p, opt, NULL, s, used, n);
}

int beit_checkpoint_resume_x(const char *dir, beit_params *p, beit_optimizer *opt, const beit_ckpt_extra *x,
                             beit_train_state *s, char *used, size_t n) {
  char path[1100], first_err[1024] = "", skipped[BEIT_CHECKPOINT_SCAN] = {0};
  int tried = 0;
  for (int k = 0; k < BEIT_CHECKPOINT_SCAN; k++) {
    beit_checkpoint_name(dir, k, path, sizeof path);
    if (access(path, F_OK) != 0) continue;
    tried++;
    if (beit_checkpoint_load_x(path, p, opt, x, s, 1) == BEIT_OK) {
      set_aside(dir, skipped, k);
      snprintf(used, n, "%s", path);
      return BEIT_OK;
    }
    fprintf(stderr, "resume: skipping %s\n", beit_last_error());
    if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", beit_last_error());
    skipped[k] = 1;
  }
  beit_checkpoint_name(dir, 0, path, sizeof path);
  if (!tried) return beit_errorf("%s: not found (no checkpoint to resume from)", path);
  return beit_errorf("none of the %d checkpoints in %s loads; the newest: %s", tried, dir, first_err);
}
