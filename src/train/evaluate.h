/* evaluate.h - classification metrics of a model over a dataset split. */
#ifndef BEIT_EVALUATE_H
#define BEIT_EVALUATE_H

#include <stdint.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "model/beit.h"

/* top1/top5 count by logits_rank (ops.h): a tie or a non-finite logit is wrong.
 * An image whose logits have no strict finite maximum has no prediction: it is
 * counted in no_pred and in no column of the confusion matrix. */
typedef struct {
  int64_t n, top1, top5, no_pred;
  double loss;
  int64_t *confusion;  /* [K, K]: row = true class, column = predicted */
  int num_classes;
} beit_eval_result;

/* Runs the eval transform `prep` (the checkpoint's: beit_checkpoint_eval_prep)
 * over all of ds in batches of the model's reserved size; fills r (caller frees
 * r->confusion with free()). */
int beit_evaluate(beit_model *m, const beit_dataset *ds, const beit_eval_prep *prep, beit_eval_result *r,
                  int show_progress);
/* The same, collective under MPI: each rank evaluates every ranks-th batch and
 * every rank gets the sums over all of them (one process: beit_evaluate). */
int beit_evaluate_ranks(beit_model *m, const beit_dataset *ds, const beit_eval_prep *prep, beit_eval_result *r,
                        int show_progress);

#endif
