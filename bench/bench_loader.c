/* bench_loader.c - images/s the data loader sustains in pretraining mode
 * (decode + crop/flip/jitter + two views + blockwise mask): Fashion-MNIST
 * 28x28 (patch 4, view B 56) and a folder of 200 JPEGs (256x256 -> 224, view B
 * 112, patch 16) that it writes itself. usage: bench_loader [workers (2)] [seconds (3)] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <jpeglib.h>

#include "core/core.h"
#include "data/loader.h"
#include "io/image.h"

/* Images per CPU-second of the last loader_rate call: robust when other
 * processes share the cores (wall-clock rates then understate). */
static double g_cpu_rate;

/* Consumes batches for at least `seconds` (after one warm-up batch); returns images/s. */
static double loader_rate(const beit_dataset *ds, beit_loader_cfg cfg, double seconds) {
  beit_loader *L;
  if (beit_loader_open(&L, ds, &cfg)) {
    fprintf(stderr, "bench_loader: %s\n", beit_last_error());
    exit(1);
  }
  beit_batch b;
  beit_loader_next(L, &b);
  double t0 = beit_now();
  clock_t c0 = clock();
  long images = 0;
  while (beit_now() - t0 < seconds) {
    int rc = beit_loader_next(L, &b);
    if (rc < 0) {
      fprintf(stderr, "bench_loader: %s\n", beit_last_error());
      exit(1);
    }
    images += rc ? b.n : 0;
  }
  double r = images / (beit_now() - t0);
  g_cpu_rate = images / ((double)(clock() - c0) / CLOCKS_PER_SEC);
  beit_loader_close(L);
  return r;
}

static void write_jpeg(const char *path, int size, int seed) {
  uint8_t *px = malloc((size_t)size * size * 3);
  beit_rng rng;
  beit_rng_seed(&rng, 1, BEIT_RNG_TEST, (uint64_t)seed, 0);
  int fx = 1 + (int)beit_rng_randint(&rng, 0, 7), fy = 1 + (int)beit_rng_randint(&rng, 0, 7);
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++) {
      uint8_t *p = px + ((size_t)y * size + x) * 3;
      p[0] = (uint8_t)(x * fx), p[1] = (uint8_t)(y * fy), p[2] = (uint8_t)((x ^ y) + seed);
    }
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr err;
  ci.err = jpeg_std_error(&err);
  jpeg_create_compress(&ci);
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "bench_loader: cannot write %s\n", path);
    exit(1);
  }
  jpeg_stdio_dest(&ci, f);
  ci.image_width = ci.image_height = (JDIMENSION)size, ci.input_components = 3, ci.in_color_space = JCS_RGB;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 90, TRUE);
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = px + (size_t)ci.next_scanline * size * 3;
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  fclose(f);
  free(px);
}

static const char *make_jpeg_folder(void) {
  static char root[1024];
  const char *base = getenv("BEIT_TEST_FIXTURES");
  snprintf(root, sizeof root, "%s/bench-jpeg", base && *base ? base : "/tmp");
  char dir[1200], path[1300];
  for (int c = 0; c < 4; c++) {
    snprintf(dir, sizeof dir, "%s/train/class%d", root, c);
    beit_mkdir_p(dir);
    for (int i = 0; i < 50; i++) {
      snprintf(path, sizeof path, "%s/img%03d.jpg", dir, i);
      write_jpeg(path, 256, c * 50 + i);
    }
  }
  return root;
}

static double decode_rate(const beit_dataset *ds) {
  beit_image img = {0};
  double t0 = beit_now();
  for (int64_t i = 0; i < ds->n; i++) beit_dataset_get(ds, i, &img, NULL);
  beit_image_free(&img);
  return ds->n / (beit_now() - t0);
}

int main(int argc, char **argv) {
  int workers = argc > 1 ? atoi(argv[1]) : 2;
  double seconds = argc > 2 ? atof(argv[2]) : 3.0;
  beit_dataset ds;
  beit_loader_cfg cfg;
  printf("bench_loader: pretraining mode (crop + flip + jitter + 2 views + blockwise mask), %d workers\n", workers);
  if (beit_dataset_open(&ds, "fashion-mnist", 1) == BEIT_OK) {
    beit_loader_defaults(&cfg, BEIT_LOAD_PRETRAIN);
    cfg.batch_size = 256, cfg.num_workers = workers;
    double r1 = loader_rate(&ds, (cfg.num_workers = 1, cfg), seconds);
    double rn = loader_rate(&ds, (cfg.num_workers = workers, cfg), seconds);
    printf("fashion-mnist 28x28 -> A 28 + B 56, patch 4, batch 256: %8.0f img/s (1 worker %8.0f img/s; %8.0f img per CPU-s)\n",
           rn, r1, g_cpu_rate);
    beit_dataset_close(&ds);
  } else {
    printf("fashion-mnist: skipped (%s)\n", beit_last_error());
  }
  const char *root = make_jpeg_folder();
  char spec[1100];
  snprintf(spec, sizeof spec, "folder:%s", root);
  if (beit_dataset_open(&ds, spec, 1)) {
    fprintf(stderr, "bench_loader: %s\n", beit_last_error());
    return 1;
  }
  double dec = decode_rate(&ds);
  beit_loader_defaults(&cfg, BEIT_LOAD_PRETRAIN);
  cfg.batch_size = 32, cfg.image_size = 224, cfg.patch_size = 16;
  double r1 = loader_rate(&ds, (cfg.num_workers = 1, cfg), seconds);
  double rn = loader_rate(&ds, (cfg.num_workers = workers, cfg), seconds);
  printf("200 JPEGs 256x256 -> A 224 (bicubic) + B 112 (lanczos), patch 16, batch 32: %6.0f img/s (1 worker %6.0f; "
         "%6.0f img per CPU-s; JPEG decode alone %6.0f img/s)\n", rn, r1, g_cpu_rate, dec);
  cfg.aug.interp_b = BEIT_INTERP_BICUBIC;
  cfg.num_workers = workers;
  double rb = loader_rate(&ds, cfg, seconds);
  printf("  same with view B bicubic: %6.0f img/s (%6.0f img per CPU-s)\n", rb, g_cpu_rate);
  beit_dataset_close(&ds);
  return 0;
}
