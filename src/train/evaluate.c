/* evaluate.c - top-1/top-5 accuracy, mean loss and the confusion matrix. */
#include "train/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/dist.h"
#include "data/loader.h"
#include "ops/ops.h"

/* Batches rank, rank + world, ... of the split; r->loss is left as a sum. */
static int evaluate_batches(beit_model *m, const beit_dataset *ds, const beit_eval_prep *prep, beit_eval_result *r,
                            int show_progress, int rank, int world) {
  int K = m->cfg.num_classes, B = m->max_batch, C = ds->channels, image_size = prep->size;
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
  for (int64_t first = (int64_t)rank * B; first < ds->n && rc == BEIT_OK; first += (int64_t)B * world) {
    int n = (int)(ds->n - first < B ? ds->n - first : B);
    rc = beit_eval_images(ds, first, n, prep, images, labels);
    if (rc != BEIT_OK) break;
    beit_input in = {.B = n, .images = images, .labels = labels};
    beit_stats s;
    if ((rc = beit_forward(m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, &s)) != BEIT_OK) break;
    r->loss += s.loss * n;
    const float *logits = beit_logits(m);
    for (int i = 0; i < n; i++) {
      const float *x = logits + (size_t)i * K;
      int place = logits_rank(x, K, labels[i]), pred = logits_top1(x, K);
      r->top1 += place == 0;
      r->top5 += place < 5;
      if (pred >= 0) r->confusion[(size_t)labels[i] * K + pred]++;
      else r->no_pred++;
    }
    r->n += n;
    beit_progress_update(&bar, n, NULL);
  }
  beit_progress_finish(&bar);
  beit_free(images);
  beit_free(labels);
  return rc;
}

int beit_evaluate(beit_model *m, const beit_dataset *ds, const beit_eval_prep *prep, beit_eval_result *r,
                  int show_progress) {
  int rc = evaluate_batches(m, ds, prep, r, show_progress, 0, 1);
  if (r->n) r->loss /= r->n;
  return rc;
}

int beit_evaluate_ranks(beit_model *m, const beit_dataset *ds, const beit_eval_prep *prep, beit_eval_result *r,
                        int show_progress) {
  int rank = beit_dist_rank(), world = beit_dist_world();
  int rc = evaluate_batches(m, ds, prep, r, show_progress && rank == 0, rank, world);
  if (rc != BEIT_OK) return rc;  /* the program ends every rank (src/cli/fail.c) */
  if (world > 1) {
    int64_t counts[4] = {r->n, r->top1, r->top5, r->no_pred};
    beit_dist_sum_i64(counts, 4);
    r->n = counts[0], r->top1 = counts[1], r->top5 = counts[2], r->no_pred = counts[3];
    beit_dist_sum_f64(&r->loss, 1);
    beit_dist_sum_i64(r->confusion, (size_t)r->num_classes * r->num_classes);
  }
  if (r->n) r->loss /= r->n;
  return rc;
}
