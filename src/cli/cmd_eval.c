/* cmd_eval.c - `beit eval` (top-1, top-5, confusion matrix as text and PNG),
 * `beit predict IMAGE...` (top-k classes with probabilities) and `beit attention
 * IMAGE...` (attention maps) for a checkpoint of beit.c or of timm, unilm or
 * Hugging Face (model/convert.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/topk.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "data/augment.h"
#include "model/convert.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "train/evaluate.h"
#include "train/visualize.h"

/* A checkpoint of any scheme (beit.c, timm, unilm, Hugging Face; model/convert.h)
 * with its class names and its eval preprocessing: the shorter side to
 * S / crop_pct (bicubic), centre crop S x S, the checkpoint's mean/std (spec 7.3).
 * eval, predict and attention all prepare images through `prep`. */
typedef struct {
  beit_model m;
  beit_checkpoint_info info;
  beit_eval_prep prep;
} image_model;

static void close_image_model(image_model *im) {
  beit_checkpoint_info_free(&im->info);
  beit_model_free(&im->m);
}

/* crop_pct > 0: --crop-pct; classifier: refuse a model without a head. Returns
 * the exit code on failure (2 for a --crop-pct this model cannot use), else 0. */
static int open_image_model(image_model *im, const char *cmd, const char *ckpt, float crop_pct, int batch,
                            int classifier) {
  if (beit_checkpoint_open(&im->m, ckpt, &im->info) != BEIT_OK) {
    fprintf(stderr, "beit %s: %s\n", cmd, beit_last_error());
    return 1;
  }
  im->prep = beit_checkpoint_eval_prep(&im->m, &im->info, crop_pct);
  int code = 0;
  if (crop_pct > 0 && beit_eval_crop_check(im->prep.size, crop_pct) != BEIT_OK)
    code = 2, beit_error_context("--crop-pct");
  else if (classifier && im->m.cfg.num_classes <= 0)
    code = 1, beit_errorf("%s: not a classifier (no head; fine-tune it first%s)", ckpt,
                          strcmp(cmd, "predict") ? "" : ", or use beit attention");
  else if (beit_model_reserve(&im->m, batch, 0) != BEIT_OK)
    code = 1;
  if (code) {
    fprintf(stderr, "beit %s: %s\n", cmd, beit_last_error());
    close_image_model(im);
    return code;
  }
  int S = im->prep.size;
  const float *mu = im->prep.mean, *sd = im->prep.std;
  fprintf(stderr, "%s: %s (%s names), %dx%d input: shorter side to %d (bicubic), centre crop; mean %g %g %g, std %g %g %g (%s)\n",
          cmd, ckpt, beit_scheme_name(im->info.scheme), S, S, beit_eval_resize_side(S, im->prep.crop_pct), mu[0], mu[1],
          mu[2], sd[0], sd[1], sd[2], im->info.norm_from);
  return 0;
}

static int names_are_numbers(char *const *names, int K) {
  for (int k = 0; k < K; k++) {
    char a[32], b[32];
    snprintf(a, sizeof a, "%d", k), snprintf(b, sizeof b, "class %d", k);
    if (strcmp(names[k], a) && strcmp(names[k], b)) return 0;
  }
  return 1;
}

/* The checkpoint's class names against the dataset's, where both have names
 * (not a guess, not plain numbers): a mismatch means class k is not class k. */
static int check_names(const image_model *im, const char *ckpt, const beit_dataset *ds, const char *data) {
  int K = ds->num_classes;
  if (!im->info.names_stated || names_are_numbers(im->info.class_names, K) || names_are_numbers(ds->class_names, K))
    return BEIT_OK;
  for (int k = 0; k < K; k++)
    if (strcmp(im->info.class_names[k], ds->class_names[k]))
      return beit_errorf("class %d is '%.100s' in %s but '%.100s' in %s: not the dataset the model was trained on, or "
                         "its classes in another order (--no-name-check to evaluate anyway)",
                         k, im->info.class_names[k], ckpt, ds->class_names[k], data);
  return BEIT_OK;
}

/* The folder of an output file is writable, checked before the work that
 * produces the file starts (an evaluation can take an hour). */
static int check_output(const char *flag, const char *path) {
  char dir[1100];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  const char *folder = !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
  if (access(folder, W_OK) != 0) return beit_errorf("--%s %s: folder %s: %s", flag, path, folder, strerror(errno));
  return BEIT_OK;
}

/* Confusion matrix as a heat map: row = true class, column = prediction,
 * each row scaled by its count (white = 0, dark blue = all). */
static int confusion_png(const int64_t *conf, int K, const char *path) {
  int cell = K <= 20 ? 24 : K <= 100 ? 6 : 2;
  beit_canvas cv;
  const uint8_t white[3] = {255, 255, 255};
  if (beit_canvas_init(&cv, K * cell, K * cell, white) != BEIT_OK) return BEIT_ERR;
  for (int i = 0; i < K; i++) {
    int64_t row = 0;
    for (int j = 0; j < K; j++) row += conf[(size_t)i * K + j];
    for (int j = 0; j < K; j++) {
      float f = row ? (float)conf[(size_t)i * K + j] / row : 0;
      uint8_t rgb[3] = {(uint8_t)(255 * (1 - f)), (uint8_t)(255 * (1 - 0.8f * f)), 255};
      beit_canvas_fill(&cv, j * cell, i * cell, cell, cell, rgb);
    }
  }
  int rc = beit_canvas_save_png(&cv, path);
  beit_canvas_free(&cv);
  return rc;
}

int cmd_eval(int argc, char **argv) {
  const char *ckpt = NULL, *data = "fashion-mnist", *png = NULL;
  int batch = 128, threads = 0, train_split = 0, no_name_check = 0;
  float crop_pct = 0;
  beit_arg a[] = {
      {"checkpoint", ARG_STR, &ckpt, "classifier checkpoint (best.safetensors of beit finetune, or any scheme's)", 0, 0},
      {"data", ARG_STR, &data, "dataset spec", 0, 0},
      {"train-split", ARG_FLAG, &train_split, "evaluate the training split instead of the test split", 0, 0},
      {"confusion-png", ARG_STR, &png, "also write the confusion matrix as a PNG heat map", 0, 0},
      {"crop-pct", ARG_FLOAT, &crop_pct, "centre-crop share (0 = the checkpoint's, else 0.875 from 65 to 383 px, 1 outside)", 0, 1},
      {"no-name-check", ARG_FLAG, &no_name_check, "evaluate even when the checkpoint's class names differ from the dataset's", 0, 0},
      {"batch", ARG_INT, &batch, "images per forward pass", 1, 65536},
      {"threads", ARG_INT, &threads, "threads (0 = all cores)", 0, 1024},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  int rc = beit_args_parse("beit eval --checkpoint CKPT [options]",
                           "Top-1/top-5 accuracy and confusion matrix. Images are prepared as beit predict prepares "
                           "them: the checkpoint's input size, crop_pct and mean/std. A tie or a non-finite logit "
                           "counts as wrong.",
                           a, (int)(sizeof a / sizeof a[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!ckpt) { fprintf(stderr, "beit eval: --checkpoint is required\n"); return 2; }
  if (png && check_output("confusion-png", png) != BEIT_OK) {
    fprintf(stderr, "beit eval: %s\n", beit_last_error());
    return 1;
  }
  beit_set_threads(threads);
  image_model im;
  beit_dataset ds;
  memset(&ds, 0, sizeof ds);
  if ((rc = open_image_model(&im, "eval", ckpt, crop_pct, batch, 1)) != 0) return rc;
  rc = beit_dataset_open(&ds, data, train_split);
  if (rc == BEIT_OK && (ds.num_classes != im.m.cfg.num_classes || ds.channels != im.m.cfg.channels))
    rc = beit_errorf("%s has %d classes of %d-channel images, the model %d classes of %d-channel images", data,
                     ds.num_classes, ds.channels, im.m.cfg.num_classes, im.m.cfg.channels);
  if (rc == BEIT_OK && !no_name_check) rc = check_names(&im, ckpt, &ds, data);
  beit_eval_result r = {0};
  if (rc == BEIT_OK) rc = beit_evaluate(&im.m, &ds, &im.prep, &r, 1);
  if (rc == BEIT_OK) {
    int K = r.num_classes;
    char **names = im.info.class_names;
    printf("%s split, %lld images: top-1 %.2f%%, top-5 %.2f%%, loss %.4f\n", beit_dataset_split_name(&ds),
           (long long)r.n, 100.0 * r.top1 / r.n, 100.0 * r.top5 / r.n, r.loss);
    if (r.no_pred)
      printf("%lld images without a prediction (tied or non-finite logits): counted wrong, in no column below\n",
             (long long)r.no_pred);
    if (K <= 20) {
      printf("confusion matrix (rows: true class, columns: predicted)\n%14s", "");
      for (int j = 0; j < K; j++) printf(" %5d", j);
      printf("\n");
      for (int i = 0; i < K; i++) {
        printf("%2d %-11.11s", i, names[i]);
        for (int j = 0; j < K; j++) printf(" %5lld", (long long)r.confusion[(size_t)i * K + j]);
        printf("\n");
      }
    }
    if (png && confusion_png(r.confusion, K, png) == BEIT_OK) printf("confusion matrix: %s\n", png);
    else if (png) rc = BEIT_ERR;
  }
  if (rc != BEIT_OK) fprintf(stderr, "beit eval: %s\n", beit_last_error());
  free(r.confusion);
  beit_dataset_close(&ds);
  close_image_model(&im);
  return rc == BEIT_OK ? 0 : 1;
}

static int image_tensor(const image_model *im, const char *file, float *x) {
  beit_image img = {0};
  int side = beit_eval_resize_side(im->prep.size, im->prep.crop_pct);
  int rc = beit_image_load_scaled(file, side, &img) != BEIT_OK || beit_image_convert(&img, im->m.cfg.channels) != BEIT_OK ||
           beit_aug_eval(&img, &im->prep, x) != BEIT_OK;
  beit_image_free(&img);
  return rc ? BEIT_ERR : BEIT_OK;
}

int cmd_predict(int argc, char **argv) {
  const char *ckpt = NULL;
  int top = 5, threads = 0;
  float crop_pct = 0;
  beit_arg a[] = {
      {"checkpoint", ARG_STR, &ckpt, "classifier: beit.c, timm or unilm safetensors, or a Hugging Face folder", 0, 0},
      {"top", ARG_INT, &top, "classes to show per image", 1, 1000},
      {"crop-pct", ARG_FLOAT, &crop_pct, "centre-crop share (0 = the checkpoint's, else 0.875 from 65 to 383 px, 1 outside)", 0, 1},
      {"threads", ARG_INT, &threads, "threads (0 = all cores)", 0, 1024},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  char **files;
  int nfiles;
  int rc = beit_args_parse("beit predict --checkpoint CKPT IMAGE...",
                           "Classify PNG/JPEG files (top classes with probabilities), prepared with the checkpoint's "
                           "input size, crop_pct and mean/std. Non-finite logits are an error.",
                           a, (int)(sizeof a / sizeof a[0]), argc, argv, &files, &nfiles);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!ckpt || nfiles == 0) { fprintf(stderr, "beit predict: needs --checkpoint and at least one image\n"); return 2; }
  beit_set_threads(threads);
  image_model im;
  if ((rc = open_image_model(&im, "predict", ckpt, crop_pct, 1, 1)) != 0) {
    free(files);
    return rc;
  }
  int S = im.m.cfg.image_size, C = im.m.cfg.channels, K = im.m.cfg.num_classes, failures = 0;
  if (top > K) top = K;
  fprintf(stderr, "predict: class names from %s\n", im.info.names_from);
  float *x = malloc((size_t)C * S * S * sizeof(float)), *prob = malloc((size_t)top * sizeof(float));
  int *idx = malloc((size_t)top * sizeof(int));
  if (!x || !prob || !idx) {
    fprintf(stderr, "beit predict: out of memory for a %dx%d image\n", S, S);
    failures = nfiles;
  }
  for (int f = 0; f < nfiles && x && prob && idx; f++) {
    if (image_tensor(&im, files[f], x) != BEIT_OK) {
      fprintf(stderr, "beit predict: %s\n", beit_last_error());
      failures++;
      continue;
    }
    beit_input in = {.B = 1, .images = x};
    if (beit_forward(&im.m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL) != BEIT_OK) {
      fprintf(stderr, "beit predict: %s\n", beit_last_error());
      failures++;
      break;
    }
    if (beit_logits_topk(beit_logits(&im.m), K, top, idx, prob) != BEIT_OK) {
      /* the same weights fail every image: one line, then stop */
      fprintf(stderr, "beit predict: %s: non-finite logits for %s (a NaN or infinity in the weights, or weights so "
              "large that the logits overflow)\n", ckpt, files[f]);
      failures++;
      break;
    }
    printf("%s\n", files[f]);
    for (int r = 0; r < top; r++) printf("  %6.2f%%  %s\n", 100 * prob[r], im.info.class_names[idx[r]]);
  }
  free(x), free(prob), free(idx), free(files);
  close_image_model(&im);
  return failures ? 1 : 0;
}

int cmd_attention(int argc, char **argv) {
  const char *ckpt = NULL, *out = "attention.png";
  int threads = 0;
  float crop_pct = 0;
  beit_arg a[] = {
      {"checkpoint", ARG_STR, &ckpt, "any BEiT checkpoint (classifier or pretrained): beit.c, timm, unilm, Hugging Face", 0, 0},
      {"out", ARG_STR, &out, "PNG to write", 0, 0},
      {"crop-pct", ARG_FLOAT, &crop_pct, "centre-crop share (0 = the checkpoint's, else 0.875 from 65 to 383 px, 1 outside)", 0, 1},
      {"threads", ARG_INT, &threads, "threads (0 = all cores)", 0, 1024},
      BEIT_ARG_MAX_IMAGE_PIXELS,
  };
  char **files;
  int nfiles;
  int rc = beit_args_parse("beit attention --checkpoint CKPT [--out map.png] IMAGE...",
                           "The last layer's attention of the CLS token over the patches, per head and averaged, "
                           "over each image (one row per image).",
                           a, (int)(sizeof a / sizeof a[0]), argc, argv, &files, &nfiles);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!ckpt || nfiles == 0) { fprintf(stderr, "beit attention: needs --checkpoint and at least one image\n"); return 2; }
  if (nfiles > 32) { fprintf(stderr, "beit attention: at most 32 images per picture\n"); return 2; }
  beit_set_threads(threads);
  image_model im;
  if ((rc = open_image_model(&im, "attention", ckpt, crop_pct, nfiles, 0)) != 0) {
    free(files);
    return rc;
  }
  size_t one = (size_t)im.m.cfg.channels * im.m.cfg.image_size * im.m.cfg.image_size;
  float *x = malloc((size_t)nfiles * one * sizeof(float));
  int n = 0;
  for (int f = 0; f < nfiles && x; f++) {
    if (image_tensor(&im, files[f], x + (size_t)n * one) == BEIT_OK) n++;
    else fprintf(stderr, "beit attention: %s (skipped)\n", beit_last_error());
  }
  rc = !x ? beit_errorf("out of memory for %d images", nfiles)
       : n > 0 ? beit_attention_png(&im.m, x, n, im.prep.mean, im.prep.std, out) : beit_errorf("no image could be read");
  if (rc == BEIT_OK) printf("attention of %d image%s (%d heads + average): %s\n", n, n > 1 ? "s" : "", im.m.cfg.heads, out);
  else fprintf(stderr, "beit attention: %s\n", beit_last_error());
  free(x), free(files);
  close_image_model(&im);
  return rc == BEIT_OK && n == nfiles ? 0 : 1;
}

int cmd_plot(int argc, char **argv) {
  const char *out = "plots", *fields = "loss,accuracy,test_top1";
  beit_arg a[] = {
      {"out", ARG_STR, &out, "folder for the charts (<field>.png)", 0, 0},
      {"fields", ARG_STR, &fields, "comma-separated log.jsonl fields, one chart each", 0, 0},
  };
  char **runs;
  int nruns;
  int rc = beit_args_parse("beit plot RUN... [options]",
                           "Training curves of run folders, overlaid, as PNG: one chart per field, with axes, tick "
                           "values and a legend naming each run. A run whose log.jsonl cannot be read is reported "
                           "once and left out; the exit status is then 1.", a,
                           (int)(sizeof a / sizeof a[0]), argc, argv, &runs, &nruns);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (nruns == 0) { fprintf(stderr, "beit plot: name at least one run folder\n"); return 2; }
  int readable = 0;
  for (int r = 0; r < nruns; r++) {  /* one message per unreadable run, not one per chart */
    if (beit_plot_run_readable(runs[r]) == BEIT_OK) runs[readable++] = runs[r];
    else fprintf(stderr, "beit plot: %s (left out)\n", beit_last_error());
  }
  int drawn = 0;
  if (readable && beit_mkdir_p(out) != BEIT_OK) { fprintf(stderr, "beit plot: %s\n", beit_last_error()); readable = 0; }
  char *list = strdup(fields), *save = NULL;
  if (!list) { fprintf(stderr, "beit plot: out of memory\n"); free(runs); return 1; }
  for (char *f = readable ? strtok_r(list, ",", &save) : NULL; f; f = strtok_r(NULL, ",", &save)) {
    char path[1200];
    snprintf(path, sizeof path, "%.1000s/%s.png", out, f);
    if (beit_plot_png((const char *const *)runs, readable, f, path) != BEIT_OK) fprintf(stderr, "beit plot: %s (skipped)\n", beit_last_error());
    else drawn++;
  }
  free(list);
  free(runs);
  return drawn && readable == nruns ? 0 : 1;
}
