/* fuzz_tokenizer.c - visual tokenizer checkpoints (beit_tokenizer_load in
 * src/train/tokenizer_train.c, dvae_load / dvae_load_dalle_encoder in
 * src/model/dvae.c, kmeans_load in src/model/kmeans.c): safetensors files whose
 * metadata describes a dVAE or k-means tokenizer, or a converted dall_e encoder.
 * A tokenizer that loads must encode a small image batch. */
#include "fuzz_common.h"
#include "train/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  beit_set_threads(1);
  return 0;
}

static void check_encode(beit_tokenizer *t) {
  FUZZ_ASSERT(t->grid > 0 && t->vocab >= 2 && t->channels >= 1);
  size_t pixels = (size_t)t->channels * t->image_size * t->image_size;
  if (pixels > 1024) return;  /* keep executions fast: only small tokenizers run */
  float *images = calloc(pixels, sizeof(float));
  int32_t *tokens = calloc((size_t)t->grid * t->grid, sizeof(int32_t));
  FUZZ_ASSERT(images && tokens);
  for (size_t i = 0; i < pixels; i++) images[i] = (float)(i % 7) / 6.0f;
  if (beit_tokenizer_encode(t, images, 1, tokens) == BEIT_OK)
    for (int i = 0; i < t->grid * t->grid; i++) FUZZ_ASSERT(tokens[i] >= 0 && tokens[i] < t->vocab);
  free(images);
  free(tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[512];
  fuzz_write(path, "tokenizer.safetensors", data, size);
  beit_tokenizer t;
  if (beit_tokenizer_load(&t, path) == BEIT_OK) {
    fuzz_accepted(t.type == BEIT_TOK_DVAE ? "dvae" : "kmeans");
    check_encode(&t);
    beit_tokenizer_free(&t);
  } else {
    fuzz_refused();
  }
  return 0;
}
