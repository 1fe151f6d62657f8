/* recipe_check.c - the options of pretraining and fine-tuning checked against
 * each other before any data is read or memory taken, with messages naming the
 * flags the user typed: a run that cannot work is refused in milliseconds, not
 * after loading a dataset or training for a while. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "core/dist.h"
#include "data/loader.h"
#include "model/beit.h"
#include "train/recipes.h"

#define MAX_GRID 64  /* beit_config_validate's limit on the patch grid side */

int beit_check_sizes(int image_size, int patch_size, const beit_dataset *ds, int *S, int *P) {
  if (beit_resolve_sizes(image_size, patch_size, ds, S, P) != BEIT_OK) return BEIT_ERR;
  if (*S / *P <= MAX_GRID) return BEIT_OK;
  return beit_errorf("%s %d with --patch-size %d makes a %dx%d patch grid; at most %dx%d (pass a larger "
                     "--patch-size or a smaller --image-size)",
                     image_size > 0 ? "--image-size" : "the dataset's image size", *S, *P, *S / *P, *S / *P, MAX_GRID,
                     MAX_GRID);
}

/* The least memory the model can need: the encoder without its head (the exact
 * check, with the head and the dataset's channels, follows before the model is built). */
static int check_memory_floor(const beit_recipe_opts *o, const char *kind, int S, int P, int channels) {
  beit_config c = {0};
  if (beit_config_preset(&c, o->model) != BEIT_OK) return beit_error_context("--model");
  c.image_size = S, c.patch_size = P, c.channels = channels;
  c.rel_pos = !strcmp(kind, "pretrain") ? BEIT_RELPOS_SHARED : BEIT_RELPOS_PER_BLOCK, c.use_mean_pooling = 1;
  c.drop_path = o->drop_path, c.layer_scale_init = o->layer_scale;
  int world = beit_dist_world(), local = beit_dist_local_size();
  double need = beit_model_memory_bytes(&c, o->batch / world, o->recompute ? BEIT_GRAD_RECOMPUTE : BEIT_GRAD_KEEP, 1);
  if (need < 0) return BEIT_ERR;
  char what[200];
  snprintf(what, sizeof what, "%s of --model %s at --batch %d (%dx%d px, weights, gradients, AdamW moments, "
           "activations%s)", kind, o->model, o->batch, S, S, local > 1 ? "; for every rank on this machine" : "");
  return beit_memory_check(need * local, what);
}

int beit_recipe_check(const beit_recipe_opts *o, const char *kind) {
  beit_config c = {0};
  if (beit_config_preset(&c, o->model) != BEIT_OK) return beit_error_context("--model");
  if (beit_model_init_named(NULL, o->weight_init, 0, 0) != BEIT_OK) return BEIT_ERR;
  beit_randaug_cfg ra;
  if (beit_randaug_parse(o->randaug, &ra) != BEIT_OK) return beit_error_context("--randaug");
  if (o->subset > 0 && o->subset < o->batch)
    return beit_errorf("--subset %lld is smaller than --batch %d: not one full batch per epoch", o->subset, o->batch);
  if (o->image_size <= 0) return BEIT_OK;  /* the dataset's side: beit_recipe_check_data */
  int S, P;
  if (beit_check_sizes(o->image_size, o->patch_size, NULL, &S, &P) != BEIT_OK) return BEIT_ERR;
  return check_memory_floor(o, kind, S, P, 1);
}

int beit_recipe_check_data(const beit_recipe_opts *o, const char *kind, const beit_dataset *ds) {
  int S, P;
  if (beit_check_sizes(o->image_size, o->patch_size, ds, &S, &P) != BEIT_OK) return BEIT_ERR;
  return check_memory_floor(o, kind, S, P, ds->channels);
}
