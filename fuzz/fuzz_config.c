/* fuzz_config.c - the model config JSON parser (src/model/config.c). Whatever
 * beit_config_from_json accepts must validate, and must survive a round trip
 * through beit_config_to_json with the same architecture. */
#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "model/beit.h"

static void check_round_trip(const beit_config *c) {
  FUZZ_ASSERT(beit_config_validate(c) == BEIT_OK);
  char *json = beit_config_to_json(c);
  FUZZ_ASSERT(json != NULL);
  beit_config d;
  int rc = beit_config_from_json(&d, json, "round trip");
  if (rc != BEIT_OK) fprintf(stderr, "round trip refused: %s\n%s\n", beit_last_error(), json);
  FUZZ_ASSERT(rc == BEIT_OK);
  FUZZ_ASSERT(d.image_size == c->image_size && d.channels == c->channels && d.patch_size == c->patch_size);
  FUZZ_ASSERT(d.dim == c->dim && d.depth == c->depth && d.heads == c->heads);
  FUZZ_ASSERT(d.vocab_size == c->vocab_size && d.num_classes == c->num_classes);
  FUZZ_ASSERT(d.pixel_head == c->pixel_head && d.rel_pos == c->rel_pos);
  FUZZ_ASSERT(d.use_mean_pooling == c->use_mean_pooling);
  cJSON_free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *json = malloc(size + 1);
  FUZZ_ASSERT(json != NULL);
  if (size) memcpy(json, data, size);
  json[size] = 0;
  beit_config c;
  if (beit_config_from_json(&c, json, "fuzz.json") == BEIT_OK) {
    fuzz_accepted("config");
    check_round_trip(&c);
  } else {
    fuzz_refused();
  }
  free(json);
  return 0;
}
