/* pretrain.c - BEiT masked image modeling: blockwise (or random) masks over the
 * patch grid, the masked patches replaced by the mask token, and the encoder
 * trained to predict the visual tokens of the tokenizer view at the masked
 * positions (or, for the ablation, their normalised pixels). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train/tokenizer.h"
#include "train/trainer.h"

void beit_recipe_defaults_pretrain(beit_recipe_opts *o) {
  memset(o, 0, sizeof *o);
  o->data = "fashion-mnist";
  o->out = "runs/pretrain";
  o->model = "tiny";
  o->patch_size = 0;        /* 4 for small images, 16 from 64 px up */
  o->epochs = 10;
  o->batch = 64;
  o->threads = 0;
  o->workers = 2;
  o->lr = 1.5e-3f;          /* paper: 1.5e-3 at batch 2048 */
  o->min_lr = 1e-5f;
  o->warmup_epochs = 1;     /* paper: 10 of 800 */
  o->weight_decay = 0.05f;
  o->beta2 = 0.999f;
  o->clip_grad = 3.0f;
  o->drop_path = 0.1f;
  o->layer_scale = 0.1f;
  o->crop_scale_min = 0.08f;
  o->color_jitter = 0.4f;   /* paper Tab. 12 */
  o->seed = 0;
  o->log_every = 10;
  o->keep = 2;
  o->tokenizer = NULL;
  o->mask_ratio = 0.4f;
  o->weight_init = "beit";
}

/* Builds the MIM (or pixel) model config from the preset and the options. */
static int make_config(beit_config *cfg, const beit_recipe_opts *o, const beit_loader_cfg *lc, int vocab) {
  memset(cfg, 0, sizeof *cfg);
  if (beit_config_preset(cfg, o->model) != BEIT_OK) return BEIT_ERR;
  cfg->image_size = lc->image_size;
  cfg->channels = 0;
  cfg->patch_size = lc->patch_size;
  cfg->vocab_size = vocab;
  cfg->pixel_head = vocab == 0;
  cfg->rel_pos = BEIT_RELPOS_SHARED;
  cfg->use_mean_pooling = 1;
  cfg->drop_path = o->drop_path;
  cfg->layer_scale_init = o->layer_scale;
  return BEIT_OK;
}

/* The tokenizer's token grid must be the model's patch grid (S / P), and its
 * images have the dataset's channels (0: not known yet). */
static int check_tokenizer(const beit_recipe_opts *o, const beit_tokenizer *tg, int S, int P, int channels) {
  if (tg->grid != S / P)
    return beit_errorf("--tokenizer %s gives a %dx%d token grid, but %s %d with --patch-size %d makes a %dx%d patch "
                       "grid (they must match)", o->tokenizer, tg->grid, tg->grid,
                       o->image_size > 0 ? "--image-size" : "the dataset's image size", S, P, S / P, S / P);
  if (channels && tg->channels != channels)
    return beit_errorf("--tokenizer %s reads %d-channel images, --data %s has %d", o->tokenizer, tg->channels, o->data,
                       channels);
  return BEIT_OK;
}

int beit_pretrain(const beit_recipe_opts *o) {
  beit_set_threads(o->threads);
  /* no tokenizer ("pixel"): the ablation that regresses the masked pixels */
  int pixel = !o->tokenizer || !strcmp(o->tokenizer, "pixel");
  beit_tokenizer tg;
  beit_trainer t;
  memset(&t, 0, sizeof t);
  memset(&tg, 0, sizeof tg);
  int32_t *tokens = NULL;
  int rc = BEIT_ERR;
  int S = 0, P = 0;  /* known before the data when --image-size is given */
  if (beit_recipe_check(o, "pretrain") != BEIT_OK) goto done;
  if (o->image_size > 0 && beit_resolve_sizes(o->image_size, o->patch_size, NULL, &S, &P) != BEIT_OK) goto done;
  if (!pixel && beit_tokenizer_load(&tg, o->tokenizer) != BEIT_OK) goto done;
  if (!pixel && S && check_tokenizer(o, &tg, S, P, 0) != BEIT_OK) goto done;
  int grid_hint = S ? S / P : 0;
  int num_mask = grid_hint ? (int)lroundf(o->mask_ratio * grid_hint * grid_hint) : 0;
  if (trainer_open_data(&t, o, "pretrain", BEIT_LOAD_PRETRAIN, pixel ? -1 : tg.image_size,
                        num_mask, o->random_mask) != BEIT_OK)
    goto done;
  const beit_loader_cfg *lc = beit_loader_config(t.loader);
  int grid = lc->image_size / lc->patch_size;
  if (!num_mask && o->mask_ratio > 0) {  /* sizes were the dataset's: reopen with the ratio on the real grid */
    beit_loader_cfg c2 = *lc;  /* copy before closing: lc points into the loader */
    beit_loader_close(t.loader);
    c2.num_mask = (int)lroundf(o->mask_ratio * grid * grid);
    if (beit_loader_open(&t.loader, &t.ds, &c2) != BEIT_OK) goto done;
    lc = beit_loader_config(t.loader);
  }
  if (!pixel && check_tokenizer(o, &tg, lc->image_size, lc->patch_size, t.ds.channels) != BEIT_OK) goto done;
  beit_config cfg;
  if (make_config(&cfg, o, lc, pixel ? 0 : tg.vocab) != BEIT_OK) goto done;
  cfg.channels = t.ds.channels;
  if (trainer_open_model(&t, &cfg, 1.0f) != BEIT_OK) goto done;
  tokens = beit_alloc((size_t)o->batch * grid * grid * sizeof(int32_t), "visual tokens");
  if (!tokens) goto done;
  beit_batch b;
  while (t.st.step < t.end_step && !trainer_stopping(&t)) {
    int got = beit_loader_next(t.loader, &b);
    if (got < 0) goto done;
    if (got == 0) continue;  /* epoch boundary */
    if (!pixel && beit_tokenizer_encode(&tg, b.images2, b.n, tokens) != BEIT_OK) goto done;
    beit_input in = {.B = b.n, .images = b.images, .mask = b.masks, .tokens = tokens, .shard = t.rank, .shards = t.world};
    beit_stats s;
    beit_params_zero_grad(&t.model.params);
    if (beit_forward(&t.model, pixel ? BEIT_TASK_PIXEL : BEIT_TASK_MIM, &in, 1, (uint64_t)o->seed, t.st.step, &s) !=
        BEIT_OK)
      goto done;
    if (isfinite(s.loss) && beit_backward(&t.model, &in) != BEIT_OK) goto done;
    if (trainer_after_step(&t, &b, s.loss, &s) != BEIT_OK) goto done;
  }
  rc = trainer_finish(&t);
  if (rc == BEIT_OK && t.rank == 0) {
    beit_summary sum = trainer_summary(&t);
    if (beit_run_write_summary(o->out, &sum) != BEIT_OK) rc = BEIT_ERR;
  }
done:
  beit_free(tokens);
  trainer_close(&t);
  if (!pixel) beit_tokenizer_free(&tg);
  return rc;
}
