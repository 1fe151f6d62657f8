/* fuzz_tokens.c - the token-grid file written by `beit tokenizer encode`
 * (beit_tokens_read in src/train/tokenizer_train.c): magic, version, grid and
 * vocabulary sizes, count against the file size, every token id. What it
 * accepts must write back to the identical bytes. */
#include "fuzz_common.h"
#include "train/tokenizer.h"

static void check_rewrite(const beit_token_file *tf, const uint8_t *data, size_t size) {
  for (int64_t i = 0; i < tf->n * tf->grid_h * tf->grid_w; i++)
    FUZZ_ASSERT(tf->tokens[i] >= 0 && tf->tokens[i] < tf->vocab);
  char path[512];
  snprintf(path, sizeof path, "%s/rewritten", fuzz_dir());
  FUZZ_ASSERT(beit_tokens_write(path, tf->tokens, tf->n, tf->grid_h, tf->grid_w, tf->vocab) == BEIT_OK);
  uint8_t *back;
  size_t n;
  FUZZ_ASSERT(beit_read_file(path, &back, &n) == BEIT_OK);
  FUZZ_ASSERT(n == size && memcmp(back, data, n) == 0);
  beit_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[512];
  fuzz_write(path, "tokens.bin", data, size);
  beit_token_file tf;
  if (beit_tokens_read(path, &tf) == BEIT_OK) {
    fuzz_accepted("tokens");
    check_rewrite(&tf, data, size);
    beit_tokens_free(&tf);
  } else {
    fuzz_refused();
    FUZZ_ASSERT(tf.tokens == NULL);
  }
  return 0;
}
