/* params_io.c - a parameter table to and from a safetensors file: every tensor
 * as F32 under its table name, and loading that checks names and shapes first so
 * nothing is written into the table unless the whole file matches. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "model/params.h"

int beit_params_save(const beit_params *p, const char *path, const char *const *meta_kv, int n_meta) {
  if (!p || !p->data) return beit_errorf("%s: no parameters to save (the table is not allocated)", path);
  beit_st_tensor *t = malloc(((size_t)p->n + 1) * sizeof *t);
  if (!t) return beit_errorf("%s: out of memory", path);
  for (int i = 0; i < p->n; i++)
    t[i] = (beit_st_tensor){p->t[i].name, p->t[i].ndim, p->t[i].shape, p->data + p->t[i].offset};
  int rc = beit_st_write(path, t, p->n, meta_kv, n_meta);
  free(t);
  return rc;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "'a', 'b', ... and N more" for up to 5 names. */
static void name_list(char *buf, size_t n, const char *const *names, int count) {
  size_t k = 0;
  char nb[128];
  buf[0] = 0;
  for (int i = 0; i < count && i < 5 && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s'%s'", i ? ", " : "", beit_st_printable(names[i], nb, sizeof nb));
  if (count > 5 && k < n) snprintf(buf + k, n - k, " and %d more", count - 5);
}

/* Fills idx[i] with the file's tensor for table entry i; fails listing missing names. */
static int match_missing(const beit_params *p, const beit_safetensors *st, int *idx) {
  const char *missing[5];
  int nmiss = 0;
  for (int i = 0; i < p->n; i++) {
    idx[i] = beit_st_find(st, p->t[i].name);
    if (idx[i] >= 0) continue;
    if (nmiss < 5) missing[nmiss] = p->t[i].name;
    nmiss++;
  }
  if (nmiss == 0) return BEIT_OK;
  char list[800];
  name_list(list, sizeof list, missing, nmiss);
  return beit_errorf("%s: %d of the model's %d tensors missing: %s", st->path, nmiss, p->n, list);
}

static int match_shapes(const beit_params *p, const beit_safetensors *st, const int *idx) {
  for (int i = 0; i < p->n; i++) {
    const beit_tensor_info *t = &p->t[i];
    const beit_st_entry *e = &st->e[idx[i]];
    int same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    if (!same) {
      char have[96], want[96];
      beit_st_shape_text(e->shape, e->ndim, have, sizeof have);
      beit_st_shape_text(t->shape, t->ndim, want, sizeof want);
      return beit_errorf("%s: '%s' has shape %s, the model expects %s", st->path, t->name, have, want);
    }
    if (e->dtype != BEIT_ST_F32 && e->dtype != BEIT_ST_F16 && e->dtype != BEIT_ST_BF16 && e->dtype != BEIT_ST_F64)
      return beit_errorf("%s: '%s' has dtype %s, the model needs a float tensor", st->path, t->name,
                         beit_st_dtype_name(e->dtype));
  }
  return BEIT_OK;
}

static int match_unexpected(const beit_params *p, const beit_safetensors *st, const int *idx) {
  char *used = calloc((size_t)st->n + 1, 1);
  if (!used) return beit_errorf("%s: out of memory", st->path);
  for (int i = 0; i < p->n; i++) used[idx[i]] = 1;
  const char *extra[5];
  int nextra = 0;
  for (int j = 0; j < st->n; j++) {
    if (used[j] || ends_with(st->e[j].name, "relative_position_index")) continue;
    if (nextra < 5) extra[nextra] = st->e[j].name;
    nextra++;
  }
  free(used);
  if (nextra == 0) return BEIT_OK;
  char list[800];
  name_list(list, sizeof list, extra, nextra);
  return beit_errorf("%s: %d unexpected tensor%s the model does not have: %s", st->path, nextra,
                nextra == 1 ? "" : "s", list);
}

int beit_params_load_from(beit_params *p, const beit_safetensors *st, int strict) {
  if (!p || !p->data) return beit_errorf("%s: cannot load into a parameter table that is not allocated", st->path);
  int *idx = malloc(((size_t)p->n + 1) * sizeof *idx);
  if (!idx) return beit_errorf("%s: out of memory", st->path);
  int rc = match_missing(p, st, idx);
  if (rc == BEIT_OK) rc = match_shapes(p, st, idx);
  if (rc == BEIT_OK && strict) rc = match_unexpected(p, st, idx);
  for (int i = 0; i < p->n && rc == BEIT_OK; i++)
    rc = beit_st_read_f32(st, idx[i], p->data + p->t[i].offset, p->t[i].numel);
  free(idx);
  return rc;
}

int beit_params_load(beit_params *p, const char *path, int strict) {
  beit_safetensors st;
  if (beit_st_open(&st, path)) return BEIT_ERR;
  int rc = beit_params_load_from(p, &st, strict);
  beit_st_close(&st);
  return rc;
}
