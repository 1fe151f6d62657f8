/* params.h - a set of named float32 tensors in one contiguous buffer, described
 * by a table (name, shape, offset, layer id, weight-decay flag). The BEiT model
 * and the dVAE each own one; AdamW, gradient clipping, zeroing, checkpointing
 * and MPI reduction are loops over the table, and the names are the safetensors
 * keys (timm names for BEiT). Gradients and AdamW moments mirror the buffer. */
#ifndef BEIT_PARAMS_H
#define BEIT_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"


typedef struct {
  char name[BEIT_NAME_MAX];
  int ndim;
  int64_t shape[BEIT_MAX_DIMS];
  size_t offset;   /* in floats, into data/grad/m/v */
  size_t numel;
  int layer_id;    /* for layer-wise lr decay: 0 = embeddings, k+1 = block k, L+1 = head */
  int decay;       /* 1: AdamW weight decay applies */
} beit_tensor_info;

typedef struct {
  int n, cap;
  int failed;      /* a beit_params_add ran out of memory: the allocations below refuse */
  beit_tensor_info *t;
  size_t total;    /* floats */
  float *data;     /* parameters */
  float *grad;     /* gradients (same layout), NULL until allocated */
} beit_params;

void beit_params_init(beit_params *p);
/* Appends a tensor to the table (before beit_params_alloc). Returns its index,
 * or -1 when the table cannot grow: the table then remembers it, and
 * beit_params_alloc* return BEIT_ERR with the message, so callers that build a
 * whole table check once, at the allocation. */
int beit_params_add(beit_params *p, const char *name, int ndim, const int64_t *shape,
                    int layer_id, int decay);
/* Allocates data and grad (zeroed); or each alone (grad: once, when missing), so a
 * model that only runs forward never holds gradient memory. */
int beit_params_alloc_data(beit_params *p);
int beit_params_alloc_grad(beit_params *p);
int beit_params_alloc(beit_params *p);
void beit_params_free(beit_params *p);
/* Index of a tensor by name, or -1. */
int beit_params_find(const beit_params *p, const char *name);
/* Pointer to a tensor's data by name; BEIT_CHECK-fails if missing (internal use). */
float *beit_params_get(const beit_params *p, const char *name);
float *beit_params_grad(const beit_params *p, const char *name);
void beit_params_zero_grad(beit_params *p);
/* Index (in table order) of the first tensor of `buf` (p->data, p->grad or an
 * AdamW moment, same layout) holding a NaN or an infinity; -1 when all are finite. */
int beit_params_first_nonfinite(const beit_params *p, const float *buf);
/* Shape as text, e.g. "[768, 3, 16, 16]". */
void beit_shape_str(const beit_tensor_info *t, char *buf, size_t n);

/* ---- files (model/params_io.c): safetensors in, safetensors out ----------- */
/* Every tensor of the table as F32, keys = table names, in table order. */
int beit_params_save(const beit_params *p, const char *path, const char *const *meta_kv,
                     int n_meta);
/* Fills p->data (allocated) from the file: every table entry must be present with
 * exactly its shape (any float dtype). strict=1 also refuses keys the table does
 * not have; keys ending in "relative_position_index" are always ignored.
 * Nothing is written into p unless the whole file matches. */
int beit_params_load(beit_params *p, const char *path, int strict);
int beit_params_load_from(beit_params *p, const beit_safetensors *st, int strict);

#endif
