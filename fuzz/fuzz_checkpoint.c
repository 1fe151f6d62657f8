/* fuzz_checkpoint.c - the checkpoint read path: beit_model_open (the "config"
 * metadata decides the architecture, src/model/config.c) and
 * beit_checkpoint_load (src/train/checkpoint.c: weights, AdamW moments and the
 * resume state from metadata) into a fixed tiny model. */
#include "fuzz_common.h"
#include "model/beit.h"
#include "tiny_model.h"
#include "train/train.h"

static beit_model g_model;
static beit_optimizer g_opt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  beit_set_threads(1);
  beit_config c;
  fuzz_tiny_config(&c);
  beit_optim_cfg oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .layer_decay = 1};
  if (beit_model_init(&g_model, &c) || beit_optimizer_init(&g_opt, &g_model.params, &oc)) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[512];
  fuzz_write(path, "checkpoint.safetensors", data, size);
  beit_model m;
  if (beit_model_open(&m, path) == BEIT_OK) {
    fuzz_accepted("model");
    FUZZ_ASSERT(beit_config_validate(&m.cfg) == BEIT_OK);
    beit_model_free(&m);
  }
  beit_train_state s;
  if (beit_checkpoint_load(path, &g_model.params, &g_opt, &s, 1) == BEIT_OK) {
    fuzz_accepted("checkpoint");
    FUZZ_ASSERT(s.step >= 0 && s.epoch >= 0 && s.step_in_epoch >= 0 && g_opt.step == s.step);
  } else {
    fuzz_refused();
  }
  beit_checkpoint_load(path, &g_model.params, NULL, NULL, 0);
  return 0;
}
