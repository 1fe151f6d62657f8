/* fuzz_idx.c - IDX datasets (src/data/idx.c), plain or gzip'd. The input is
 * split into an images file and a labels file (4-byte length prefix, see
 * fuzz_split); the first byte of the labels part picks the flavour. Either file
 * may be gzip (detected by its magic, as the reader does). */
#include "data/dataset.h"
#include "fuzz_common.h"

static void check_idx(const beit_dataset *ds) {
  FUZZ_ASSERT(ds->channels == 1 && ds->height > 0 && ds->width > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *img, *lab;
  size_t nimg, nlab;
  fuzz_split(data, size, &img, &nimg, &lab, &nlab);
  static const char *const flavours[] = {"idx", "fashion-mnist", "mnist"};
  const char *flavour = flavours[nlab ? lab[nlab - 1] % 3 : 0];
  char path[512];
  fuzz_write(path, "t10k-images-idx3-ubyte", img, nimg);
  fuzz_write(path, "t10k-labels-idx1-ubyte", lab, nlab);
  char spec[600];
  snprintf(spec, sizeof spec, "%s:%s", flavour, fuzz_dir());
  fuzz_dataset(spec, check_idx);
  return 0;
}
