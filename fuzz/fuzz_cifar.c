/* fuzz_cifar.c - CIFAR-10/100 binary batches (src/data/cifar.c). Input: one
 * flag byte (bit 0: CIFAR-100; bit 1: also write a class-names file), then a
 * 4-byte-length-prefixed batch file (fuzz_split), then the names file. */
#include "data/dataset.h"
#include "fuzz_common.h"

static void check_dataset(const beit_dataset *ds) {
  FUZZ_ASSERT(ds->n > 0 && ds->channels == 3 && ds->height == 32 && ds->width == 32);
  for (int64_t i = 0; i < ds->n; i++) FUZZ_ASSERT(ds->labels[i] >= 0 && ds->labels[i] < ds->num_classes);
  for (int k = 0; k < ds->num_classes; k++) FUZZ_ASSERT(ds->class_names[k] && ds->class_names[k][0]);
  beit_image img = {0};
  FUZZ_ASSERT(beit_dataset_get(ds, ds->n - 1, &img, NULL) == BEIT_OK);
  beit_image_free(&img);
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
  beit_dataset ds;
  if (beit_dataset_open(&ds, spec, 0) == BEIT_OK) {
    fuzz_accepted(spec);
    check_dataset(&ds);
    beit_dataset_close(&ds);
  } else {
    fuzz_refused();
    FUZZ_ASSERT(ds.pixels == NULL && ds.labels == NULL);
  }
  return 0;
}
