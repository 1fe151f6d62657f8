/* config.c - BEiT model presets, validation, and the config.json twin with
 * Hugging Face BeitConfig field names (plus a few beit.c-only fields). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "model/beit.h"

typedef struct { const char *name; int dim, depth, heads; float layer_scale; } preset;

/* tiny/small/base/large follow DeiT/BEiT sizes; the small ones are for
 * Fashion-MNIST on a laptop CPU (the demo) and for tests. */
static const preset PRESETS[] = {
    {"micro", 32, 2, 2, 0.1f},   {"mini", 96, 4, 3, 0.1f},    {"demo", 128, 6, 4, 0.1f},
    {"tiny", 192, 12, 3, 0.1f},  {"small", 384, 12, 6, 0.1f}, {"base", 768, 12, 12, 0.1f},
    {"large", 1024, 24, 16, 1e-5f},
};

int beit_config_preset(beit_config *c, const char *name) {
  for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
    if (!strcmp(PRESETS[i].name, name)) {
      c->dim = PRESETS[i].dim;
      c->depth = PRESETS[i].depth;
      c->heads = PRESETS[i].heads;
      c->layer_scale_init = PRESETS[i].layer_scale;
      c->mlp_ratio = 4.0f;
      c->ln_eps = 1e-6f;
      c->drop_path = 0.1f;
      return BEIT_OK;
    }
  return beit_errorf("unknown model '%s' (known: micro, mini, demo, tiny, small, base, large)", name);
}

int beit_config_validate(const beit_config *c) {
  if (c->image_size <= 0 || c->patch_size <= 0 || c->image_size % c->patch_size)
    return beit_errorf("image size %d is not a positive multiple of patch size %d", c->image_size, c->patch_size);
  if (c->image_size / c->patch_size > 64) return beit_errorf("patch grid %d x %d is larger than 64 x 64",
                                                             c->image_size / c->patch_size, c->image_size / c->patch_size);
  if (c->channels != 1 && c->channels != 3) return beit_errorf("channels must be 1 or 3, got %d", c->channels);
  if (c->dim <= 0 || c->heads <= 0 || c->dim % c->heads)
    return beit_errorf("hidden size %d is not a positive multiple of %d heads", c->dim, c->heads);
  if (c->depth <= 0 || c->depth > 64) return beit_errorf("depth %d out of range [1, 64]", c->depth);
  if (!(c->mlp_ratio > 0) || c->dim * c->mlp_ratio < 1) return beit_errorf("mlp ratio %g must be positive", c->mlp_ratio);
  if (c->vocab_size < 0 || c->num_classes < 0) return beit_errorf("vocab size and classes must be >= 0");
  if (!(c->drop_path >= 0 && c->drop_path < 1)) return beit_errorf("drop path %g must be in [0, 1)", c->drop_path);
  if (!(c->ln_eps > 0)) return beit_errorf("layer norm eps must be positive");
  if (c->rel_pos != BEIT_RELPOS_PER_BLOCK && c->rel_pos != BEIT_RELPOS_SHARED && c->rel_pos != BEIT_RELPOS_NONE)
    return beit_errorf("unknown relative position bias mode %d", (int)c->rel_pos);
  /* far beyond any published ViT: refused here, before they become absurd allocations */
  if (c->image_size > BEIT_MAX_IMAGE_SIZE) return beit_errorf("image size %d above the limit of %d", c->image_size, BEIT_MAX_IMAGE_SIZE);
  if (c->dim > BEIT_MAX_DIM) return beit_errorf("hidden size %d above the limit of %d", c->dim, BEIT_MAX_DIM);
  if (c->dim * (double)c->mlp_ratio > 4.0 * BEIT_MAX_DIM)
    return beit_errorf("mlp hidden size %.0f above the limit of %d", c->dim * (double)c->mlp_ratio, 4 * BEIT_MAX_DIM);
  if (c->vocab_size > BEIT_MAX_CLASSES || c->num_classes > BEIT_MAX_CLASSES)
    return beit_errorf("vocab size %d / classes %d above the limit of %d", c->vocab_size, c->num_classes, BEIT_MAX_CLASSES);
  return BEIT_OK;
}

char *beit_config_to_json(const beit_config *c) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "model_type", "beit");
  cJSON_AddNumberToObject(j, "image_size", c->image_size);
  cJSON_AddNumberToObject(j, "num_channels", c->channels);
  cJSON_AddNumberToObject(j, "patch_size", c->patch_size);
  cJSON_AddNumberToObject(j, "hidden_size", c->dim);
  cJSON_AddNumberToObject(j, "num_hidden_layers", c->depth);
  cJSON_AddNumberToObject(j, "num_attention_heads", c->heads);
  cJSON_AddNumberToObject(j, "intermediate_size", (int)lroundf(c->dim * c->mlp_ratio));
  cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
  cJSON_AddNumberToObject(j, "num_labels", c->num_classes);
  cJSON_AddBoolToObject(j, "beit_pixel_head", c->pixel_head);
  cJSON_AddNumberToObject(j, "layer_scale_init_value", c->layer_scale_init);
  cJSON_AddBoolToObject(j, "use_shared_relative_position_bias", c->rel_pos == BEIT_RELPOS_SHARED);
  cJSON_AddBoolToObject(j, "use_relative_position_bias", c->rel_pos == BEIT_RELPOS_PER_BLOCK);
  cJSON_AddBoolToObject(j, "use_absolute_position_embeddings", c->abs_pos_emb);
  cJSON_AddBoolToObject(j, "use_mask_token", c->vocab_size > 0 || c->pixel_head);
  cJSON_AddBoolToObject(j, "use_mean_pooling", c->use_mean_pooling);
  cJSON_AddNumberToObject(j, "drop_path_rate", c->drop_path);
  cJSON_AddNumberToObject(j, "layer_norm_eps", c->ln_eps);
  cJSON_AddStringToObject(j, "hidden_act", "gelu");
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  return s;
}

static int get_num(const cJSON *j, const char *key, double *out, int required, const char *source) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (!v) return required ? beit_errorf("%s: missing field '%s'", source, key) : BEIT_OK;
  if (cJSON_IsBool(v)) { *out = cJSON_IsTrue(v); return BEIT_OK; }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return beit_errorf("%s: field '%s' must be a number", source, key);
  *out = v->valuedouble;
  return BEIT_OK;
}

int beit_config_from_json(beit_config *c, const char *json, const char *source) {
  cJSON *j = cJSON_Parse(json);
  if (!j || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return beit_errorf("%s: not a JSON object", source);
  }
  memset(c, 0, sizeof *c);
  double image = 0, ch = 3, patch = 0, dim = 0, depth = 0, heads = 0, inter = 0, vocab = 0, classes = 0;
  double pix = 0, ls = 0, shared = 0, meanpool = 1, dp = 0, eps = 1e-6, relpos = 1, abspos = 0;
  int rc = get_num(j, "image_size", &image, 1, source) | get_num(j, "num_channels", &ch, 0, source) |
           get_num(j, "patch_size", &patch, 1, source) | get_num(j, "hidden_size", &dim, 1, source) |
           get_num(j, "num_hidden_layers", &depth, 1, source) | get_num(j, "num_attention_heads", &heads, 1, source) |
           get_num(j, "intermediate_size", &inter, 0, source) | get_num(j, "vocab_size", &vocab, 0, source) |
           get_num(j, "num_labels", &classes, 0, source) | get_num(j, "beit_pixel_head", &pix, 0, source) |
           get_num(j, "layer_scale_init_value", &ls, 0, source) |
           get_num(j, "use_shared_relative_position_bias", &shared, 0, source) |
           get_num(j, "use_mean_pooling", &meanpool, 0, source) | get_num(j, "drop_path_rate", &dp, 0, source) |
           get_num(j, "layer_norm_eps", &eps, 0, source) |
           get_num(j, "use_relative_position_bias", &relpos, 0, source) |
           get_num(j, "use_absolute_position_embeddings", &abspos, 0, source);
  cJSON_Delete(j);
  if (rc) return BEIT_ERR;
  double ints[] = {image, ch, patch, dim, depth, heads, inter, vocab, classes};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if (ints[i] < 0 || ints[i] > 1e7 || ints[i] != floor(ints[i]))
      return beit_errorf("%s: a size field holds %g, not a whole number in range", source, ints[i]);
  c->image_size = (int)image, c->channels = (int)ch, c->patch_size = (int)patch;
  c->dim = (int)dim, c->depth = (int)depth, c->heads = (int)heads;
  c->mlp_ratio = dim > 0 ? (inter > 0 ? (float)(inter / dim) : 4.0f) : 4.0f;
  c->vocab_size = (int)vocab, c->num_classes = (int)classes, c->pixel_head = pix != 0;
  c->layer_scale_init = (float)ls, c->use_mean_pooling = meanpool != 0;
  c->drop_path = (float)dp, c->ln_eps = (float)eps;
  /* Hugging Face's two booleans: a shared table wins, as in BeitModel */
  c->rel_pos = shared != 0 ? BEIT_RELPOS_SHARED : relpos != 0 ? BEIT_RELPOS_PER_BLOCK : BEIT_RELPOS_NONE;
  c->abs_pos_emb = abspos != 0;
  if (beit_config_validate(c) != BEIT_OK) return beit_error_context("%s", source);
  return BEIT_OK;
}
