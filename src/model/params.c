/* params.c - the parameter table (see params.h). */
#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

void beit_params_init(beit_params *p) { memset(p, 0, sizeof *p); }

int beit_params_add(beit_params *p, const char *name, int ndim, const int64_t *shape,
                    int layer_id, int decay) {
  BEIT_CHECK(p->data == NULL && ndim >= 1 && ndim <= BEIT_MAX_DIMS);
  BEIT_CHECK(strlen(name) < BEIT_NAME_MAX && beit_params_find(p, name) < 0);
  if (p->failed) return -1;
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 64;
    beit_tensor_info *t = beit_realloc(p->t, (size_t)cap * sizeof *t, "the parameter table");
    if (!t) {
      p->failed = 1;
      beit_error_context("adding tensor '%s'", name);
      return -1;
    }
    p->t = t, p->cap = cap;
  }
  beit_tensor_info *t = &p->t[p->n];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->numel = 1;
  for (int d = 0; d < ndim; d++) {
    BEIT_CHECK(shape[d] > 0);
    t->shape[d] = shape[d];
    t->numel *= (size_t)shape[d];
  }
  t->offset = p->total;
  t->layer_id = layer_id;
  t->decay = decay;
  /* keep every tensor 16-float (64-byte) aligned inside the buffer */
  p->total += (t->numel + 15) & ~(size_t)15;
  return p->n++;
}

/* The message of the failed beit_params_add is long gone: say it again. */
static int table_failed(void) { return beit_errorf("out of memory building the parameter table"); }

int beit_params_alloc_data(beit_params *p) {
  if (p->failed) return table_failed();
  p->data = beit_calloc(p->total * sizeof(float), "parameters");
  return p->data ? BEIT_OK : BEIT_ERR;
}

int beit_params_alloc_grad(beit_params *p) {
  if (p->failed) return table_failed();
  if (!p->grad) p->grad = beit_calloc(p->total * sizeof(float), "gradients");
  return p->grad ? BEIT_OK : BEIT_ERR;
}

int beit_params_alloc(beit_params *p) {
  if (beit_params_alloc_data(p) != BEIT_OK) return BEIT_ERR;
  if (beit_params_alloc_grad(p) != BEIT_OK) {
    beit_free(p->data);
    p->data = NULL;
    return BEIT_ERR;
  }
  return BEIT_OK;
}

void beit_params_free(beit_params *p) {
  beit_free(p->data);
  beit_free(p->grad);
  beit_free(p->t);
  memset(p, 0, sizeof *p);
}

int beit_params_find(const beit_params *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->t[i].name, name) == 0) return i;
  return -1;
}

float *beit_params_get(const beit_params *p, const char *name) {
  int i = beit_params_find(p, name);
  if (i < 0) fprintf(stderr, "beit: no parameter named %s\n", name);
  BEIT_CHECK(i >= 0 && p->data);
  return p->data + p->t[i].offset;
}

float *beit_params_grad(const beit_params *p, const char *name) {
  int i = beit_params_find(p, name);
  BEIT_CHECK(i >= 0 && p->grad);
  return p->grad + p->t[i].offset;
}

void beit_params_zero_grad(beit_params *p) {
  if (p->grad) memset(p->grad, 0, p->total * sizeof(float));
}

/* Exponent all ones = NaN or infinity; a branch-free OR over the bits vectorises. */
static int any_nonfinite(const float *x, size_t n) {
  uint32_t hit = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], 4);
    hit |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
  }
  return hit != 0;
}

int beit_params_first_nonfinite(const beit_params *p, const float *buf) {
  for (int i = 0; i < p->n; i++)
    if (any_nonfinite(buf + p->t[i].offset, p->t[i].numel)) return i;
  return -1;
}

void beit_shape_str(const beit_tensor_info *t, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
}
