/* fuzz_cifar.c - CIFAR-10/100 binary batches (src/data/cifar.c). Input: one
 * flag byte (bit 0: CIFAR-100; bit 1: also write a class-names file), then a
 * 4-byte-length-prefixed batch file (fuzz_split), then the names file. */
#include "data/dataset.h"
#include "fuzz_common.h"

static void check_cifar(const beit_dataset *ds) {
  FUZZ_ASSERT(ds->channels == 3 && ds->height == 32 && ds->width == 32);
  for (int k = 0; k < ds->num_classes; k++) FUZZ_ASSERT(ds->class_names[k] && ds->class_names[k][0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int is100 = data[0] & 1, names = data[0] & 2;
  const uint8_t *batch, *text;
  size_t nbatch, ntext;
  fuzz_split(data + 1, size - 1, &batch, &nbatch, &text, &ntext);
  char path[512], spec[600];
  fuzz_unlink("test_batch.bin"), fuzz_unlink("test.bin");
  fuzz_unlink("batches.meta.txt"), fuzz_unlink("fine_label_names.txt");
  fuzz_write(path, is100 ? "test.bin" : "test_batch.bin", batch, nbatch);
  if (names) fuzz_write(path, is100 ? "fine_label_names.txt" : "batches.meta.txt", text, ntext);
  snprintf(spec, sizeof spec, "%s:%s", is100 ? "cifar100" : "cifar10", fuzz_dir());
  fuzz_dataset(spec, check_cifar);
  return 0;
}
