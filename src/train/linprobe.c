/* linprobe.c - linear probing (spec section 8): the encoder is frozen, each image
 * becomes the mean of its patch tokens after block `layer`, and a linear
 * classifier is trained on those features with AdamW and a cosine schedule.
 * Features are computed once (centre view, no augmentation) and standardised
 * with the training set's mean and std, which leaves linear separability as it
 * is and makes one learning rate fit every encoder. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "model/beit.h"
#include "ops/ops.h"
#include "train/recipes.h"
#include "train/train.h"

/* Mean-pooled patch tokens of block output `layer` for every image: out [n, C].
 * Blocks after `layer` are not run, so a forward-only arena holds the output. */
static int extract(beit_model *m, const beit_dataset *ds, int64_t n, int layer, float *out, int quiet) {
  int B = m->max_batch, S = m->cfg.image_size, C = m->cfg.dim;
  float *img = beit_alloc((size_t)B * ds->channels * S * S * sizeof(float), "probe images");
  if (!img) return BEIT_ERR;
  beit_eval_prep prep = beit_eval_prep_make(S, 1.0f, ds->mean, ds->std);
  beit_progress bar;
  beit_progress_start(&bar, ds->train ? "features (train)" : "features (test)", n);
  bar.enabled = bar.enabled && !quiet;
  for (int64_t first = 0; first < n; first += B) {
    int k = (int)(n - first < B ? n - first : B);
    if (beit_eval_images(ds, first, k, &prep, img, NULL) != BEIT_OK || beit_encode_blocks(m, img, k, layer) != BEIT_OK) {
      beit_free(img);
      return BEIT_ERR;
    }
    mean_pool_forward(out + (size_t)first * C, beit_hidden(m, layer), k, m->tokens, C, 1);
    beit_progress_update(&bar, k, NULL);
  }
  beit_progress_finish(&bar);
  beit_free(img);
  return BEIT_OK;
}

static void standardise(float *x, int64_t n, int C, const float *mean, const float *rstd) {
  for (int64_t i = 0; i < n; i++)
    for (int c = 0; c < C; c++) x[i * C + c] = (x[i * C + c] - mean[c]) * rstd[c];
}

/* Top-1 (and, when top5 != NULL, top-5) accuracy of the probe; logits: [K] scratch. */
static double probe_accuracy(const float *x, const int32_t *y, int64_t n, const float *w, const float *b, int C, int K,
                             float *logits, double *top5) {
  int64_t correct = 0, in5 = 0;
  for (int64_t i = 0; i < n; i++) {
    linear_forward(logits, x + i * C, w, b, 1, C, K);
    int place = logits_rank(logits, K, y[i]);
    correct += place == 0, in5 += place < 5;
  }
  if (top5) *top5 = n ? (double)in5 / n : 0;
  return n ? (double)correct / n : 0;
}

/* After each epoch with --val-split: the probe on the held-out images, logged;
 * the best (by top-1, the first of equals) kept in best [K * C + K]. */
static int probe_validate(beit_run *run, const float *xv, const int32_t *yv, int64_t nv, const beit_params *p, int C,
                          int K, float *logits, int64_t epoch, float *best, double *best_acc, int64_t *best_epoch) {
  const float *w = p->data, *b = p->data + p->t[1].offset;
  double top5, acc = probe_accuracy(xv, yv, nv, w, b, C, K, logits, &top5);
  if (beit_run_log(run, "{\"epoch\": %" PRId64 ", \"val_top1\": %.6f, \"val_top5\": %.6f}", epoch, acc, top5) !=
      BEIT_OK)
    return BEIT_ERR;
  if (*best_epoch >= 0 && acc <= *best_acc) return BEIT_OK;
  *best_acc = acc, *best_epoch = epoch;
  memcpy(best, p->data, p->total * sizeof(float));
  return BEIT_OK;
}

/* probe.json, the final log line and summary.json (val_top1 < 0: no --val-split). */
static int write_results(const beit_linprobe_opts *o, beit_run *run, int layer, double acc_tr, double acc_val,
                         double acc_te, double top5, int64_t best_epoch, double t_begin) {
  char path[1100], text[1400], val[48] = "";
  if (acc_val >= 0) snprintf(val, sizeof val, "\"val_top1\": %.6f, ", acc_val);
  const char *selected = acc_val >= 0 ? "val" : "last";
  int len = snprintf(text, sizeof text, "{\"encoder\": \"%s\", \"layer\": %d, \"train_top1\": %.4f, %s\"test_top1\": "
                     "%.4f, \"epochs\": %d}\n", o->checkpoint ? o->checkpoint : "random", layer, acc_tr, val, acc_te,
                     o->epochs);
  snprintf(path, sizeof path, "%.1000s/probe.json", o->out);
  if (beit_write_file_atomic(path, text, (size_t)len) != BEIT_OK ||
      beit_run_log(run, "{\"final\": true, \"best_epoch\": %" PRId64 ", %s\"test_top1\": %.6f, \"test_top5\": %.6f, "
                   "\"selected_on\": \"%s\"}", best_epoch, val, acc_te, top5, selected) != BEIT_OK)
    return BEIT_ERR;
  char *command = beit_command_json(o->argc, o->argv);
  beit_summary s = {.kind = "linprobe", .command = command, .seed = o->seed, .split_seed = o->split_seed,
                    .val_split = o->val_split, .labels_per_class = o->labels_per_class, .seconds = beit_now() - t_begin,
                    .result = 1, .best_epoch = best_epoch, .val_top1 = acc_val, .test_top1 = acc_te, .test_top5 = top5,
                    .selected_on = selected};
  int rc = beit_run_write_summary(o->out, &s);
  free(command);
  return rc;
}

int beit_linprobe(const beit_linprobe_opts *o) {
  beit_set_threads(o->threads);
  beit_model m;
  beit_dataset train, test, val;
  beit_run run;
  memset(&train, 0, sizeof train), memset(&test, 0, sizeof test), memset(&m, 0, sizeof m), memset(&run, 0, sizeof run);
  memset(&val, 0, sizeof val);
  double t_begin = beit_now();
  float *ftr = NULL, *fte = NULL, *mean = NULL, *rstd = NULL, *xb = NULL, *logits = NULL, *probs = NULL, *dlog = NULL;
  float *fva = NULL, *best = NULL;
  int32_t *yb = NULL, *order = NULL;
  beit_params p;
  beit_params_init(&p);
  beit_optimizer opt;
  memset(&opt, 0, sizeof opt);
  int rc = BEIT_ERR;
  /* the flags and the encoder first, the data after (a mismatch is refused at once) */
  beit_config cfg = {.patch_size = o->patch_size};  /* the random-encoder baseline */
  if (o->checkpoint) {
    if (beit_model_open(&m, o->checkpoint) != BEIT_OK) goto done;
    cfg = m.cfg;
  } else if (beit_config_preset(&cfg, o->model) != BEIT_OK) {
    beit_error_context("--model");
    goto done;
  } else if (o->image_size > 0 &&
             beit_check_sizes(o->image_size, o->patch_size, NULL, &cfg.image_size, &cfg.patch_size) != BEIT_OK) {
    goto done;
  }
  int L = cfg.depth, layer = o->layer > 0 ? o->layer : (3 * L + 3) / 4;  /* paper: block 9 of 12 */
  if (layer > L) {
    beit_errorf("--layer %d: the encoder%s has %d blocks", layer, o->checkpoint ? " of --checkpoint" : "", L);
    goto done;
  }
  if (o->out && beit_run_claim(&run, o->out, 0, o->overwrite, 0) != BEIT_OK) goto done;
  if (beit_dataset_open(&train, o->data, 1) != BEIT_OK || beit_dataset_open(&test, o->data, 0) != BEIT_OK ||
      beit_recipe_split(&train, &val, o->val_split, o->labels_per_class, o->split_seed, o->out) != BEIT_OK ||
      (o->out && beit_run_open(&run, NULL, -1) != BEIT_OK))
    goto done;
  if (!o->checkpoint) {
    cfg.channels = train.channels;
    if ((o->image_size <= 0 && beit_check_sizes(0, o->patch_size, &train, &cfg.image_size, &cfg.patch_size)) ||
        beit_model_init(&m, &cfg) != BEIT_OK)
      goto done;
    beit_model_init_weights(&m, (uint64_t)o->seed, 0.001f);
  }
  if (m.cfg.channels != train.channels) {
    beit_errorf("--checkpoint %s reads %d-channel images, --data %s has %d", o->checkpoint, m.cfg.channels, o->data,
                train.channels);
    goto done;
  }
  if (beit_model_reserve(&m, 256, 0) != BEIT_OK) goto done;
  int C = m.cfg.dim, K = train.num_classes, B = 256;
  int64_t ntr = o->subset > 0 && o->subset < train.n ? o->subset : train.n, nte = test.n, nva = val.n;
  if (ntr < 1) {
    beit_errorf("--data %s: no training images left for the probe", o->data);
    goto done;
  }
  if (ntr < B) B = (int)ntr;  /* a small (held-out) training set: one batch of all of it */
  ftr = beit_alloc((size_t)ntr * C * sizeof(float), "train features");
  fte = beit_alloc((size_t)nte * C * sizeof(float), "test features");
  mean = beit_alloc((size_t)C * sizeof(float), "feature means");
  rstd = beit_alloc((size_t)C * sizeof(float), "feature scales");
  xb = beit_alloc((size_t)B * C * sizeof(float), "probe batch");
  logits = beit_alloc((size_t)B * K * sizeof(float), "probe logits");
  probs = beit_alloc((size_t)B * K * sizeof(float), "probe probabilities");
  dlog = beit_alloc((size_t)B * K * sizeof(float), "probe logit gradients");
  yb = beit_alloc((size_t)B * sizeof(int32_t), "probe labels");
  order = beit_alloc((size_t)ntr * sizeof(int32_t), "probe order");
  fva = beit_alloc((size_t)(nva ? nva : 1) * C * sizeof(float), "validation features");
  best = beit_alloc((size_t)(K * C + K) * sizeof(float), "best probe");
  if (!ftr || !fte || !mean || !rstd || !xb || !logits || !probs || !dlog || !yb || !order || !fva || !best ||
      extract(&m, &train, ntr, layer, ftr, o->quiet) != BEIT_OK || extract(&m, &test, nte, layer, fte, o->quiet) != BEIT_OK ||
      (nva && extract(&m, &val, nva, layer, fva, o->quiet) != BEIT_OK))
    goto done;
  for (int c = 0; c < C; c++) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < ntr; i++) s += ftr[i * C + c], ss += (double)ftr[i * C + c] * ftr[i * C + c];
    double mu = s / ntr, var = ss / ntr - mu * mu;
    mean[c] = (float)mu, rstd[c] = (float)(1 / sqrt(fmax(var, 0) + 1e-6));
  }
  standardise(ftr, ntr, C, mean, rstd);
  standardise(fte, nte, C, mean, rstd);
  standardise(fva, nva, C, mean, rstd);
  /* the classifier: its own parameter table so AdamW and the schedule apply as everywhere */
  int64_t ws[2] = {K, C}, bs[1] = {K};
  beit_params_add(&p, "head.weight", 2, ws, 0, 1);
  beit_params_add(&p, "head.bias", 1, bs, 0, 0);
  if (beit_params_alloc(&p) != BEIT_OK) goto done;
  int64_t steps = (ntr / B) * o->epochs;
  beit_optim_cfg oc = {.lr = o->lr, .min_lr = 0, .warmup_steps = 0, .total_steps = steps, .beta1 = 0.9f,
                       .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = o->weight_decay, .layer_decay = 1};
  if (beit_optimizer_init(&opt, &p, &oc) != BEIT_OK) goto done;
  float *w = beit_params_get(&p, "head.weight"), *b = beit_params_get(&p, "head.bias");
  double best_acc = 0;
  int64_t best_epoch = -1;
  for (int64_t s = 0; s < steps; s++) {
    int64_t e = s / (ntr / B), j = s % (ntr / B);
    if (j == 0) {  /* a fresh permutation each epoch, keyed by (seed, epoch) */
      beit_rng r;
      beit_rng_seed(&r, (uint64_t)o->seed, BEIT_RNG_SHUFFLE, (uint64_t)e, 7);
      for (int64_t i = 0; i < ntr; i++) order[i] = (int32_t)i;
      for (int64_t i = ntr - 1; i > 0; i--) {
        int64_t k = beit_rng_randint(&r, 0, i);
        int32_t t = order[i]; order[i] = order[k]; order[k] = t;
      }
    }
    for (int i = 0; i < B; i++) {
      int32_t idx = order[j * B + i];
      memcpy(xb + (size_t)i * C, ftr + (size_t)idx * C, (size_t)C * sizeof(float));
      yb[i] = train.labels[idx];
    }
    linear_forward(logits, xb, w, b, B, C, K);
    softmax_xent_forward(probs, logits, yb, B, K);
    memset(dlog, 0, (size_t)B * K * sizeof(float));
    softmax_xent_backward(dlog, probs, yb, B, K, 1.0f);
    beit_params_zero_grad(&p);
    linear_backward(NULL, p.grad, p.grad + p.t[1].offset, dlog, xb, w, B, C, K);
    beit_optimizer_step(&opt);
    if (nva && j == ntr / B - 1 &&
        probe_validate(&run, fva, val.labels, nva, &p, C, K, logits, e, best, &best_acc, &best_epoch) != BEIT_OK)
      goto done;
  }
  if (nva) memcpy(p.data, best, p.total * sizeof(float));  /* the probe selected on validation */
  else best_epoch = o->epochs - 1;
  double acc_tr = probe_accuracy(ftr, train.labels, ntr, w, b, C, K, logits, NULL), top5;
  double acc_te = probe_accuracy(fte, test.labels, nte, w, b, C, K, logits, &top5);
  printf("linear probe of %s, block %d of %d (%d features): train top-1 %.2f%%, test top-1 %.2f%%", o->checkpoint ?
         o->checkpoint : "a random encoder", layer, L, C, 100 * acc_tr, 100 * acc_te);
  if (nva) printf(" (epoch %lld selected on validation, top-1 %.2f%%)", (long long)best_epoch + 1, 100 * best_acc);
  printf("\n");
  if (o->out && write_results(o, &run, layer, acc_tr, nva ? best_acc : -1, acc_te, top5, best_epoch, t_begin) != BEIT_OK)
    goto done;
  rc = BEIT_OK;
done:
  beit_optimizer_free(&opt);
  beit_params_free(&p);
  beit_free(ftr), beit_free(fte), beit_free(mean), beit_free(rstd);
  beit_free(xb), beit_free(logits), beit_free(probs), beit_free(dlog), beit_free(yb), beit_free(order);
  beit_free(fva), beit_free(best);
  beit_dataset_close(&val);
  beit_model_free(&m);
  beit_dataset_close(&train), beit_dataset_close(&test);
  beit_run_close(&run);
  return rc;
}
