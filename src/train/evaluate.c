/* evaluate.c - top-1/top-5 accuracy, mean loss and the confusion matrix. */
#include "train/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/loader.h"

static int rank_of_label(const float *logits, int K, int label) {
  int r = 0;
  for (int k = 0; k < K; k++) r += logits[k] > logits[label];
  return r;
}

int beit_evaluate(beit_model *m, const beit_dataset *ds, int image_size, beit_eval_result *r, int show_progress) {
  int K = m->cfg.num_classes, B = m->max_batch, C = ds->channels;
  memset(r, 0, sizeof *r);
  r->num_classes = K;
  r->confusion = calloc((size_t)K * K, sizeof(int64_t));
  float *images = beit_alloc((size_t)B * C * image_size * image_size * sizeof(float), "eval images");
  int32_t *labels = beit_alloc((size_t)B * sizeof(int32_t), "eval labels");
  if (!r->confusion || !images || !labels) {
    beit_free(images), beit_free(labels);
    return beit_errorf("out of memory for evaluation");
  }
  beit_progress bar;
  beit_progress_start(&bar, "eval", ds->n);
  bar.enabled = bar.enabled && show_progress;
  int rc = BEIT_OK;
  for (int64_t first = 0; first < ds->n && rc == BEIT_OK; first += B) {
    int n = (int)(ds->n - first < B ? ds->n - first : B);
    rc = beit_eval_images(ds, first, n, image_size, 0.875f, ds->mean, ds->std, images, labels);
    if (rc != BEIT_OK) break;
    beit_input in = {.B = n, .images = images, .labels = labels};
    beit_stats s;
    beit_forward(m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, &s);
    r->loss += s.loss * n;
    const float *logits = beit_logits(m);
    for (int i = 0; i < n; i++) {
      int rank = rank_of_label(logits + (size_t)i * K, K, labels[i]), pred = 0;
      for (int k = 1; k < K; k++) if (logits[(size_t)i * K + k] > logits[(size_t)i * K + pred]) pred = k;
      r->top1 += rank == 0;
      r->top5 += rank < 5;
      r->confusion[(size_t)labels[i] * K + pred]++;
    }
    r->n += n;
    beit_progress_update(&bar, n, NULL);
  }
  beit_progress_finish(&bar);
  if (r->n) r->loss /= r->n;
  beit_free(images);
  beit_free(labels);
  return rc;
}
