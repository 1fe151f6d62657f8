/* tiny_model.h - the architecture of the checkpoint seeds (make_seeds.c) and of
 * the model fuzz_checkpoint.c loads them into: small enough that one execution
 * stays fast. */
#ifndef BEIT_FUZZ_TINY_MODEL_H
#define BEIT_FUZZ_TINY_MODEL_H

#include <string.h>

#include "model/beit.h"

static inline void fuzz_tiny_config(beit_config *c) {
  memset(c, 0, sizeof *c);
  c->image_size = 8, c->channels = 1, c->patch_size = 4;
  c->dim = 8, c->depth = 1, c->heads = 2, c->mlp_ratio = 2.0f;
  c->vocab_size = 4, c->layer_scale_init = 0.1f, c->rel_pos = BEIT_RELPOS_SHARED;
  c->use_mean_pooling = 1, c->drop_path = 0, c->ln_eps = 1e-6f;
}

#endif
