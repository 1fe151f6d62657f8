/* cmd_eval.c - `beit eval` (top-1, top-5, confusion matrix as text and PNG) and
 * `beit predict IMAGE...` (top-k classes with probabilities) for a classifier
 * checkpoint written by `beit finetune`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "data/augment.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "train/evaluate.h"
#include "train/visualize.h"

/* Opens a classifier checkpoint and reads its class names and normalisation. */
static int open_classifier(beit_model *m, const char *path, int batch, char ***names, float mean[3], float std[3]) {
  if (beit_model_open(m, path) != BEIT_OK) return BEIT_ERR;
  if (m->cfg.num_classes <= 0) return beit_errorf("%s: not a classifier (no head; fine-tune it first)", path);
  if (beit_model_reserve(m, batch, 0) != BEIT_OK) return BEIT_ERR;
  beit_safetensors st;
  if (beit_st_open(&st, path) != BEIT_OK) return BEIT_ERR;
  const char *cn = beit_st_meta(&st, "class_names"), *norm = beit_st_meta(&st, "normalize");
  int K = m->cfg.num_classes;
  *names = calloc((size_t)K, sizeof(char *));
  char *copy = strdup(cn ? cn : ""), *save = NULL, *tok = strtok_r(copy, "\n", &save);
  for (int k = 0; k < K; k++, tok = tok ? strtok_r(NULL, "\n", &save) : NULL) {
    char buf[32];
    snprintf(buf, sizeof buf, "class %d", k);
    (*names)[k] = strdup(tok ? tok : buf);
  }
  free(copy);
  for (int c = 0; c < 3; c++) mean[c] = 0.5f, std[c] = 0.5f;
  if (norm && sscanf(norm, "%f %f %f %f %f %f", &mean[0], &mean[1], &mean[2], &std[0], &std[1], &std[2]) != 6)
    fprintf(stderr, "beit: %s: unreadable 'normalize' metadata, using 0.5/0.5\n", path);
  beit_st_close(&st);
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
  int batch = 128, threads = 0, train_split = 0;
  beit_arg a[] = {
      {"checkpoint", ARG_STR, &ckpt, "classifier checkpoint (best.safetensors of beit finetune)", 0, 0},
      {"data", ARG_STR, &data, "dataset spec", 0, 0},
      {"train-split", ARG_FLAG, &train_split, "evaluate the training split instead of the test split", 0, 0},
      {"confusion-png", ARG_STR, &png, "also write the confusion matrix as a PNG heat map", 0, 0},
      {"batch", ARG_INT, &batch, "images per forward pass", 1, 65536},
      {"threads", ARG_INT, &threads, "threads (0 = all cores)", 0, 1024},
  };
  int rc = beit_args_parse("beit eval --checkpoint CKPT [options]", "Top-1/top-5 accuracy and confusion matrix.", a,
                           (int)(sizeof a / sizeof a[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!ckpt) { fprintf(stderr, "beit eval: --checkpoint is required\n"); return 2; }
  beit_set_threads(threads);
  beit_model m;
  beit_dataset ds;
  char **names = NULL;
  float mean[3], std[3];
  memset(&ds, 0, sizeof ds);
  if (open_classifier(&m, ckpt, batch, &names, mean, std) != BEIT_OK || beit_dataset_open(&ds, data, train_split) != BEIT_OK) {
    fprintf(stderr, "beit eval: %s\n", beit_last_error());
    return 1;
  }
  if (ds.num_classes != m.cfg.num_classes || ds.channels != m.cfg.channels) {
    fprintf(stderr, "beit eval: %s has %d classes of %d-channel images, the model %d classes of %d-channel images\n",
            data, ds.num_classes, ds.channels, m.cfg.num_classes, m.cfg.channels);
    return 1;
  }
  beit_eval_result r;
  if (beit_evaluate(&m, &ds, m.cfg.image_size, &r, 1) != BEIT_OK) {
    fprintf(stderr, "beit eval: %s\n", beit_last_error());
    return 1;
  }
  int K = r.num_classes;
  printf("%s split, %lld images: top-1 %.2f%%, top-5 %.2f%%, loss %.4f\n", beit_dataset_split_name(&ds),
         (long long)r.n, 100.0 * r.top1 / r.n, 100.0 * r.top5 / r.n, r.loss);
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
  if (png && confusion_png(r.confusion, K, png) != BEIT_OK) {
    fprintf(stderr, "beit eval: %s\n", beit_last_error());
    return 1;
  }
  if (png) printf("confusion matrix: %s\n", png);
  free(r.confusion);
  return 0;
}

int cmd_predict(int argc, char **argv) {
  const char *ckpt = NULL;
  int top = 5, threads = 0;
  beit_arg a[] = {
      {"checkpoint", ARG_STR, &ckpt, "classifier checkpoint", 0, 0},
      {"top", ARG_INT, &top, "classes to show per image", 1, 1000},
      {"threads", ARG_INT, &threads, "threads (0 = all cores)", 0, 1024},
  };
  char **files;
  int nfiles;
  int rc = beit_args_parse("beit predict --checkpoint CKPT IMAGE...", "Classify PNG/JPEG files.", a,
                           (int)(sizeof a / sizeof a[0]), argc, argv, &files, &nfiles);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (!ckpt || nfiles == 0) { fprintf(stderr, "beit predict: needs --checkpoint and at least one image\n"); return 2; }
  beit_set_threads(threads);
  beit_model m;
  char **names;
  float mean[3], std[3];
  if (open_classifier(&m, ckpt, 1, &names, mean, std) != BEIT_OK) {
    fprintf(stderr, "beit predict: %s\n", beit_last_error());
    return 1;
  }
  int S = m.cfg.image_size, C = m.cfg.channels, K = m.cfg.num_classes, failures = 0;
  float *x = malloc((size_t)C * S * S * sizeof(float)), *p = malloc((size_t)K * sizeof(float));
  for (int f = 0; f < nfiles; f++) {
    beit_image img = {0};
    if (beit_image_load(files[f], &img) != BEIT_OK || beit_image_convert(&img, C) != BEIT_OK ||
        beit_aug_eval(&img, S, S <= 64 ? 1.0f : 0.875f, mean, std, x) != BEIT_OK) {
      fprintf(stderr, "beit predict: %s\n", beit_last_error());
      beit_image_free(&img);
      failures++;
      continue;
    }
    beit_image_free(&img);
    beit_input in = {.B = 1, .images = x};
    beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
    const float *logits = beit_logits(&m);
    float mx = logits[0], sum = 0;
    for (int k = 1; k < K; k++) mx = fmaxf(mx, logits[k]);
    for (int k = 0; k < K; k++) sum += p[k] = expf(logits[k] - mx);
    printf("%s\n", files[f]);
    for (int r = 0; r < top && r < K; r++) {
      int best = -1;
      for (int k = 0; k < K; k++) if (p[k] >= 0 && (best < 0 || p[k] > p[best])) best = k;
      printf("  %6.2f%%  %s\n", 100 * p[best] / sum, names[best]);
      p[best] = -1;
    }
  }
  free(x), free(p), free(files);
  beit_model_free(&m);
  return failures ? 1 : 0;
}

int cmd_plot(int argc, char **argv) {
  const char *out = "plots", *fields = "loss,accuracy,test_top1";
  beit_arg a[] = {
      {"out", ARG_STR, &out, "folder for the charts (<field>.png)", 0, 0},
      {"fields", ARG_STR, &fields, "comma-separated log.jsonl fields, one chart each", 0, 0},
  };
  char **runs;
  int nruns;
  int rc = beit_args_parse("beit plot RUN... [options]", "Training curves of run folders, overlaid, as PNG.", a,
                           (int)(sizeof a / sizeof a[0]), argc, argv, &runs, &nruns);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  if (nruns == 0) { fprintf(stderr, "beit plot: name at least one run folder\n"); return 2; }
  if (beit_mkdir_p(out) != BEIT_OK) { fprintf(stderr, "beit plot: %s\n", beit_last_error()); return 1; }
  char *list = strdup(fields), *save = NULL;
  int drawn = 0;
  for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
    char path[1200];
    snprintf(path, sizeof path, "%.1000s/%s.png", out, f);
    if (beit_plot_png((const char *const *)runs, nruns, f, path) != BEIT_OK) fprintf(stderr, "beit plot: %s (skipped)\n", beit_last_error());
    else drawn++;
  }
  free(list);
  free(runs);
  return drawn ? 0 : 1;
}
