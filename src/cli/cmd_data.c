/* cmd_data.c - `beit data inspect` (size, classes, image shape, pixel
 * statistics) and `beit data preview` (a PNG grid of pretraining samples as the
 * model sees them: augmented view A with the blockwise mask tinted over it, and
 * view B, the tokenizer's input, at the size pretraining gives it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/image.h"
#include "train/tokenizer.h"

static int parse_split(const char *split, int *train) {
  if (!strcmp(split, "train")) return *train = 1, 0;
  if (!strcmp(split, "test") || !strcmp(split, "val")) return *train = 0, 0;
  fprintf(stderr, "beit data: --split expects train, test or val, got '%s'\n", split);
  return 2;
}

static int open_dataset(beit_dataset *ds, const char *spec, const char *split, int fatal) {
  int train, rc = parse_split(split, &train);
  if (rc) return rc;
  if (beit_dataset_open(ds, spec, train)) {
    fprintf(stderr, "beit data: %s\n", beit_last_error());
    return 1;
  }
  ds->bad_policy = fatal ? BEIT_BAD_FATAL : BEIT_BAD_SKIP;
  return 0;
}

/* ---- inspect ------------------------------------------------------------------ */
typedef struct {
  double sum[3], sumsq[3];
  int64_t pixels, images, unreadable;
  int min_h, max_h, min_w, max_w;
} pixel_stats;

static void stats_add(pixel_stats *st, const beit_image *img) {
  size_t n = (size_t)img->h * img->w;
  for (int c = 0; c < img->c; c++) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
      double v = img->data[i * img->c + c] / 255.0;
      s += v, s2 += v * v;
    }
    st->sum[c] += s, st->sumsq[c] += s2;
  }
  st->pixels += (int64_t)n, st->images++;
  if (st->images == 1 || img->h < st->min_h) st->min_h = img->h;
  if (st->images == 1 || img->w < st->min_w) st->min_w = img->w;
  if (img->h > st->max_h) st->max_h = img->h;
  if (img->w > st->max_w) st->max_w = img->w;
}

/* Reads every sample (files directly, so unreadable ones are counted, not replaced). */
static int gather_stats(const beit_dataset *ds, int64_t limit, pixel_stats *st) {
  beit_image img = {0};
  beit_progress bar;
  int64_t n = limit > 0 && limit < ds->n ? limit : ds->n;
  memset(st, 0, sizeof *st);
  beit_progress_start(&bar, "inspect", n);
  for (int64_t i = 0; i < n; i++) {
    int rc = ds->paths ? beit_image_load(ds->paths[i], &img) : beit_dataset_get(ds, i, &img, NULL);
    if (rc == BEIT_OK && ds->paths) rc = beit_image_convert(&img, ds->channels);
    if (rc == BEIT_OK) stats_add(st, &img);
    else if (ds->bad_policy == BEIT_BAD_FATAL) return beit_image_free(&img), BEIT_ERR;
    else fprintf(stderr, "beit: warning: unreadable image: %s\n", beit_last_error()), st->unreadable++;
    beit_progress_update(&bar, 1, NULL);
  }
  beit_progress_finish(&bar);
  beit_image_free(&img);
  return BEIT_OK;
}

static void print_classes(const beit_dataset *ds) {
  int64_t *count = calloc((size_t)ds->num_classes, sizeof(int64_t));
  if (!count) return;
  for (int64_t i = 0; i < ds->n; i++)
    if (ds->labels[i] >= 0 && ds->labels[i] < ds->num_classes) count[ds->labels[i]]++;
  printf("classes    %d\n", ds->num_classes);
  for (int k = 0; k < ds->num_classes; k++) printf("  %4d  %-24s %lld\n", k, ds->class_names[k], (long long)count[k]);
  free(count);
}

static void print_stats(const beit_dataset *ds, const pixel_stats *st) {
  if (ds->height) printf("image      %dx%d, %d channel%s\n", ds->width, ds->height, ds->channels, ds->channels > 1 ? "s" : "");
  else printf("image      variable size (%d..%d x %d..%d), %d channel%s\n", st->min_w, st->max_w, st->min_h, st->max_h,
              ds->channels, ds->channels > 1 ? "s" : "");
  printf("pixels     over %lld images:", (long long)st->images);
  for (int c = 0; c < ds->channels && st->pixels; c++) {
    double m = st->sum[c] / st->pixels, v = st->sumsq[c] / st->pixels - m * m;
    printf(" %smean %.4f std %.4f", ds->channels > 1 ? (const char *[]){"R ", "G ", "B "}[c] : "", m, sqrt(v > 0 ? v : 0));
  }
  printf("\nnormalise  mean (%.4f, %.4f, %.4f) std (%.4f, %.4f, %.4f) (used by the loader)\n", ds->mean[0], ds->mean[1],
         ds->mean[2], ds->std[0], ds->std[1], ds->std[2]);
  if (st->unreadable) printf("unreadable %lld image(s) (skipped)\n", (long long)st->unreadable);
}

static int data_inspect(int argc, char **argv) {
  const char *spec = "fashion-mnist", *split = "train";
  long long limit = 0;
  int fatal = 0;
  beit_arg args[] = {
      {"data", ARG_STR, &spec, "dataset: fashion-mnist, mnist:DIR, idx:DIR, cifar10:DIR, cifar100:DIR, folder:ROOT or a directory", 0, 0},
      {"split", ARG_STR, &split, "train or test (val)", 0, 0},
      {"limit", ARG_I64, &limit, "pixel statistics over the first N images (0 = all)", 0, 1e12},
      {"fatal", ARG_FLAG, &fatal, "stop at the first unreadable image instead of skipping it", 0, 0},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit data inspect [options]", "Describe a dataset: size, classes, image shape, pixel statistics.",
                           args, (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  beit_dataset ds;
  if ((rc = open_dataset(&ds, spec, split, fatal))) return rc;
  printf("dataset    %s (%s), split %s\nsamples    %lld\n", ds.name, ds.root, beit_dataset_split_name(&ds), (long long)ds.n);
  print_classes(&ds);
  pixel_stats st;
  rc = gather_stats(&ds, limit, &st);
  if (rc == BEIT_OK) print_stats(&ds, &st);
  else fprintf(stderr, "beit data inspect: %s\n", beit_last_error());
  beit_dataset_close(&ds);
  return rc ? 1 : 0;
}

/* ---- preview ------------------------------------------------------------------ */
typedef struct {
  int tile, scale, gap;
} preview_layout;

/* De-normalises view A (CHW) into [0,1]. */
static void denormalise(const float *src, float *dst, int c, int hw, const float *mean, const float *std) {
  for (int ch = 0; ch < c; ch++)
    for (int i = 0; i < hw; i++) dst[ch * hw + i] = src[ch * hw + i] * std[ch] + mean[ch];
}

/* The image, view A with its mask, and view B (the tokenizer's input, already
 * in [0, 1]; scaled to the tile) when the batch has one. */
static void draw_sample(beit_canvas *cv, int x, int y, const preview_layout *lay, const beit_batch *b, int k,
                        const beit_image *orig, const beit_loader_cfg *cfg, float *tmp) {
  static const uint8_t tint[3] = {230, 40, 40};
  int S = b->size, hw = S * S, p = cfg->patch_size * lay->scale;
  beit_canvas_blit_u8(cv, x, y, lay->tile, lay->tile, orig->data, orig->h, orig->w, orig->c);
  int x2 = x + lay->tile + lay->gap;
  denormalise(b->images + (size_t)k * b->channels * hw, tmp, b->channels, hw, cfg->mean, cfg->std);
  beit_canvas_blit_f32(cv, x2, y, lay->tile, lay->tile, tmp, S, S, b->channels, 0.0f, 1.0f);
  const uint8_t *m = b->masks + (size_t)k * b->num_patches;
  for (int i = 0; i < b->grid; i++)
    for (int j = 0; j < b->grid; j++)
      if (m[i * b->grid + j]) beit_canvas_tint(cv, x2 + j * p, y + i * p, p, p, tint, 0.55f);
  int S2 = b->second_size;
  if (b->images2)
    beit_canvas_blit_f32(cv, x2 + lay->tile + lay->gap, y, lay->tile, lay->tile,
                         b->images2 + (size_t)k * b->channels * S2 * S2, S2, S2, b->channels, 0.0f, 1.0f);
}

static int render_preview(const beit_dataset *ds, const beit_batch *b, const beit_loader_cfg *cfg, int scale,
                          const char *out) {
  preview_layout lay = {b->size * scale, scale, 2};
  int cols = (int)ceil(sqrt((double)b->n)), tiles = b->images2 ? 3 : 2;
  beit_grid g = {(b->n + cols - 1) / cols, cols, tiles * lay.tile + (tiles - 1) * lay.gap, lay.tile, 8, 8};
  int w, h;
  beit_grid_size(&g, &w, &h);
  beit_canvas cv;
  beit_image orig = {0};
  float *tmp = malloc(sizeof(float) * (size_t)b->channels * b->size * b->size);
  int rc = tmp ? beit_canvas_init(&cv, w, h, (const uint8_t[3]){255, 255, 255}) : beit_errorf("out of memory");
  for (int k = 0; rc == BEIT_OK && k < b->n; k++) {
    int x, y;
    beit_grid_cell(&g, k, &x, &y);
    rc = beit_dataset_get(ds, b->indices[k], &orig, NULL);
    if (rc == BEIT_OK) draw_sample(&cv, x, y, &lay, b, k, &orig, cfg, tmp);
  }
  if (rc == BEIT_OK) rc = beit_canvas_save_png(&cv, out);
  if (tmp) beit_canvas_free(&cv);
  beit_image_free(&orig);
  free(tmp);
  return rc;
}

static void print_preview(const beit_batch *b, const beit_loader_cfg *cfg, const char *out, const char *view_b) {
  long masked = 0;
  for (int k = 0; k < b->n * b->num_patches; k++) masked += b->masks[k];
  printf("wrote %s: %d samples (the image; view A %dx%d with masked patches tinted%s)\n", out, b->n, b->size, b->size,
         b->images2 ? "; view B, the tokenizer's input" : "");
  printf("patch %d -> %dx%d grid, %.1f of %d patches masked on average (%s masking)\n", cfg->patch_size, b->grid,
         b->grid, (double)masked / b->n, b->num_patches, cfg->random_mask ? "random" : "blockwise");
  if (b->images2) printf("view B (tokenizer input) %dx%d: %s\n", b->second_size, b->second_size, view_b);
  else printf("no view B: %s\n", view_b);
}

/* View B's side as `beit pretrain` sets it: the tokenizer's own input size
 * (-1 for 'pixel'); without --tokenizer, the size a tokenizer trained with
 * `beit tokenizer train`'s defaults has, the dataset's side. The tokenizer's
 * grid must be the patch grid, as pretraining requires. */
static int view_b_size(const char *tok, const beit_dataset *ds, int S, int P, int *S2, char *why, size_t n) {
  if (tok && !strcmp(tok, "pixel")) {
    *S2 = -1;
    snprintf(why, n, "--tokenizer pixel regresses the pixels of view A");
    return BEIT_OK;
  }
  if (!tok) {
    *S2 = ds->height > 0 && ds->height == ds->width ? ds->height : S;
    snprintf(why, n, "the size of a tokenizer trained on this dataset with the defaults (pass --tokenizer for yours)");
    return BEIT_OK;
  }
  beit_tokenizer t;
  if (beit_tokenizer_load(&t, tok) != BEIT_OK) return BEIT_ERR;
  int grid = t.grid, rc = BEIT_OK;
  *S2 = t.image_size;
  beit_tokenizer_free(&t);
  if (grid != S / P)
    rc = beit_errorf("--tokenizer %s gives a %dx%d token grid, --image-size %d with --patch-size %d a %dx%d patch grid "
                     "(beit pretrain refuses them)", tok, grid, grid, S, P, S / P, S / P);
  snprintf(why, n, "the input size of --tokenizer %s, as beit pretrain uses it", tok);
  return rc;
}

static int data_preview(int argc, char **argv) {
  const char *spec = "fashion-mnist", *split = "train", *out = NULL, *tok = NULL;
  int n = 16, size = 0, patch = 0, num_mask = 0, min_block = 0, random_mask = 0, scale = 0, fatal = 0;
  long long seed = 0, epoch = 0;
  float crop_min = 0.08f;
  beit_arg args[] = {
      {"data", ARG_STR, &spec, "dataset spec (see beit data inspect --help)", 0, 0},
      {"split", ARG_STR, &split, "train or test (val)", 0, 0},
      {"out", ARG_STR, &out, "PNG file to write (required)", 0, 0},
      {"n", ARG_INT, &n, "number of samples", 1, 256},
      {"seed", ARG_I64, &seed, "seed for shuffling, augmentation and masks", 0, 9e18},
      {"epoch", ARG_I64, &epoch, "epoch whose first batch is shown", 0, 1e9},
      {"image-size", ARG_INT, &size, "model input size, as beit pretrain's (0 = the dataset's, else 224)", 0, 4096},
      {"patch-size", ARG_INT, &patch, "patch size, as beit pretrain's (0 = 4 for inputs <= 64, else 16)", 0, 256},
      {"tokenizer", ARG_STR, &tok, "tokenizer checkpoint pretraining will use: view B at its input size ('pixel': no "
                                   "view B; none: the dataset's side, a default-trained tokenizer's)", 0, 0},
      {"num-mask", ARG_INT, &num_mask, "masked patches per sample (0 = 75 of 14x14, else 40%)", 0, 1000000},
      {"min-block", ARG_INT, &min_block, "smallest mask block (0 = min(16, max(4, round(num_mask/4))))", 0, 1000000},
      {"random-mask", ARG_FLAG, &random_mask, "plain random masking instead of blockwise", 0, 0},
      {"scale", ARG_INT, &scale, "pixel upscaling (0 = so that a tile is at least 112 pixels)", 0, 64},
      {"crop-min", ARG_FLOAT, &crop_min, "smallest random-resized-crop area share (BEiT: 0.08)", 0.01, 1},
      {"fatal", ARG_FLAG, &fatal, "stop at an unreadable image instead of skipping it", 0, 0},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit data preview --out grid.png [options]",
                           "Draw pretraining samples as the model sees them: the image, view A with the blockwise "
                           "mask tinted, and view B (the tokenizer's input) at the size beit pretrain gives it.",
                           args, (int)(sizeof args / sizeof args[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!out) return fprintf(stderr, "beit data preview: --out is required\n"), 2;
  beit_dataset ds;
  if ((rc = open_dataset(&ds, spec, split, fatal))) return rc;
  int S, P, S2;
  char why[1200];
  if (beit_resolve_sizes(size, patch, &ds, &S, &P) != BEIT_OK || view_b_size(tok, &ds, S, P, &S2, why, sizeof why)) {
    fprintf(stderr, "beit data preview: %s\n", beit_last_error());
    beit_dataset_close(&ds);
    return 1;
  }
  beit_loader_cfg cfg;
  beit_loader_defaults(&cfg, BEIT_LOAD_PRETRAIN);
  cfg.batch_size = n, cfg.image_size = S, cfg.patch_size = P, cfg.second_size = S2, cfg.num_mask = num_mask;
  cfg.min_block = min_block, cfg.random_mask = random_mask, cfg.seed = (uint64_t)seed, cfg.num_workers = 0;
  cfg.drop_last = 0, cfg.aug.scale_min = crop_min;
  beit_loader *L = NULL;
  beit_batch b;
  rc = beit_loader_open(&L, &ds, &cfg);
  if (rc == BEIT_OK) rc = beit_loader_seek(L, epoch, 0);
  if (rc == BEIT_OK) rc = beit_loader_next(L, &b) == 1 ? BEIT_OK : BEIT_ERR;
  const beit_loader_cfg *used = rc == BEIT_OK ? beit_loader_config(L) : NULL;
  if (rc == BEIT_OK) rc = render_preview(&ds, &b, used, scale ? scale : (111 + b.size) / b.size, out);
  if (rc == BEIT_OK) print_preview(&b, used, out, why);
  else fprintf(stderr, "beit data preview: %s\n", beit_last_error());
  beit_loader_close(L);
  beit_dataset_close(&ds);
  return rc ? 1 : 0;
}

int cmd_data(int argc, char **argv) {
  static const beit_subcommand subs[] = {
      {"inspect", data_inspect, "size, classes with counts, image shape, pixel mean/std"},
      {"preview", data_preview, "PNG grid of augmented pretraining samples with the blockwise mask"},
  };
  return beit_run_subcommand("data", subs, 2, argc, argv);
}
