/* fuzz_image.c - PNG and JPEG decoding through our wrapper (src/io/image.c):
 * beit_image_decode from memory, beit_image_probe and beit_image_load from a
 * file, the scaled decoding of the eval path (beit_image_decode_scaled: JPEG DCT
 * scaling, PNG rows into box averages) and channel conversion of whatever decodes.
 * Probe and decode must agree on the size of an image both accept; a scaled
 * decode is never larger than the full one and has its channels. */
#include "fuzz_common.h"
#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  beit_image img = {0};
  int ok = beit_image_decode(data, size, "fuzz.img", &img) == BEIT_OK;
  if (ok) {
    fuzz_accepted("image");
    FUZZ_ASSERT(img.h > 0 && img.w > 0 && (img.c == 1 || img.c == 3));
    FUZZ_ASSERT((size_t)img.h * img.w * img.c <= img.cap);
  } else {
    fuzz_refused();
  }
  char path[512];
  fuzz_write(path, "img", data, size);
  int h, w, c;
  if (beit_image_probe(path, &h, &w, &c) == BEIT_OK && ok) FUZZ_ASSERT(h == img.h && w == img.w);
  beit_image small = {0};
  if (beit_image_decode_scaled(data, size, "fuzz.img", 1 + (size ? data[size - 1] % 8 : 0), &small) == BEIT_OK && ok)
    FUZZ_ASSERT(small.h >= 1 && small.h <= img.h && small.w >= 1 && small.w <= img.w && small.c == img.c);
  beit_image_free(&small);
  if (ok) {
    int c0 = img.c;
    FUZZ_ASSERT(beit_image_convert(&img, c0 == 1 ? 3 : 1) == BEIT_OK);
    FUZZ_ASSERT(beit_image_convert(&img, c0) == BEIT_OK && img.c == c0);
  }
  beit_image again = {0};
  FUZZ_ASSERT((beit_image_load(path, &again) == BEIT_OK) == ok);
  beit_image_free(&again);
  beit_image_free(&img);
  return 0;
}
