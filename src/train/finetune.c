/* finetune.c - fine-tuning a BEiT classifier: start from a pretraining
 * checkpoint (the shared relative position table copied into every block, the
 * MIM head dropped) or from scratch, mean-pooled patch tokens + fc_norm + head,
 * layer-wise lr decay, mixup/cutmix with label smoothing, evaluation each epoch
 * (on the --val-split images, else on the test split), the best checkpoint kept
 * as best.safetensors and, with --val-split, the test split evaluated once at
 * the end on it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "model/convert.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "train/evaluate.h"
#include "train/trainer.h"

void beit_recipe_defaults_finetune(beit_recipe_opts *o) {
  beit_recipe_defaults_pretrain(o);
  o->out = "runs/finetune";
  o->epochs = 10;
  o->lr = 4e-3f;            /* paper: 4e-3 at batch 1024 (base) */
  o->min_lr = 1e-6f;
  o->warmup_epochs = 1;     /* paper: 20 of 100 */
  o->clip_grad = 0;         /* paper: none */
  o->layer_decay = 0.65f;
  o->label_smoothing = 0.1f;
  o->mixup = 0.8f;
  o->cutmix = 1.0f;
  o->crop_scale_min = 0.08f;
  o->eval_every = 1;
  o->randaug = "rand-m9-mstd0.5-inc1";  /* unilm's run_class_finetuning.py defaults (spec 7.2) */
  o->reprob = 0.25f;
  o->crop_pad = -1;         /* unilm's datasets.py: RandomCrop(32, padding 4) for inputs of 32 px and below */
  o->model_ema_decay = 0.9999f;
}

/* Copies what the classifier shares with a pretraining checkpoint of any
 * scheme (beit.c, timm, unilm, Hugging Face): the shared table
 * rel_pos_bias.relative_position_bias_table becomes each block's own (spec 1.4),
 * tables of another image size are resized (spec 7.1); mask_token, norm and
 * lm_head are not used; head and fc_norm keep their fresh initialisation. */
static int load_pretrained(beit_model *m, const beit_model *src, const char *path) {
  beit_transfer_report r;
  if (beit_checkpoint_transfer(m, src, path, &r) != BEIT_OK) return BEIT_ERR;
  if (r.copied + r.resized == 0) return beit_errorf("%s: no tensor fits the model", path);
  if (beit_dist_is_root())
    fprintf(stderr, "finetune: %d tensors from %s (%d resized to %d px, %d from the shared table), %d freshly initialised\n",
            r.copied + r.resized, path, r.resized, m->cfg.image_size, r.from_shared, r.kept);
  return BEIT_OK;
}

/* Gamma(a, 1) by Marsaglia and Tsang (a >= 1; a < 1 through the boost). */
static double sample_gamma(beit_rng *r, double a) {
  if (a < 1) return sample_gamma(r, a + 1) * pow(beit_rng_uniform(r) + 1e-300, 1 / a);
  double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
  for (;;) {
    double x = beit_rng_normal(r), v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = beit_rng_uniform(r);
    if (log(u + 1e-300) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
  }
}

static double sample_beta(beit_rng *r, double a) {
  double x = sample_gamma(r, a), y = sample_gamma(r, a);
  return x / (x + y);
}

/* timm's batch-mode mixup/cutmix: pairs image i of the (global) batch with
 * image G-1-i; targets are the label-smoothed one-hots mixed with the same
 * lambda. `partner` holds the batch that contains the partners, read from its
 * end: this batch itself in one process; under MPI, the batch of the mirror rank
 * (ranks - 1 - rank), since the partner of position k * ranks + rank is
 * position (B - 1 - k) * ranks + (ranks - 1 - rank). */
static void mix_batch(float *images, float *soft, const int32_t *labels, const float *partner,
                      const int32_t *partner_labels, int B, int C, int S, int K, const beit_recipe_opts *o,
                      uint64_t seed, int64_t step) {
  beit_rng r;
  beit_rng_seed(&r, seed, BEIT_RNG_MIXUP, (uint64_t)step, 0);
  double lam = 1;
  int use_cutmix = o->cutmix > 0 && (o->mixup <= 0 || beit_rng_uniform(&r) < 0.5);
  size_t img = (size_t)C * S * S;
#define FLIPPED(b) (partner + (size_t)(B - 1 - (b)) * img)
  if (use_cutmix) {
    lam = sample_beta(&r, o->cutmix);
    int ch = (int)(S * sqrt(1 - lam)), cw = ch;
    int cy = (int)beit_rng_randint(&r, 0, S - 1), cx = (int)beit_rng_randint(&r, 0, S - 1);
    int y0 = cy - ch / 2 < 0 ? 0 : cy - ch / 2, y1 = cy + ch / 2 > S ? S : cy + ch / 2;
    int x0 = cx - cw / 2 < 0 ? 0 : cx - cw / 2, x1 = cx + cw / 2 > S ? S : cx + cw / 2;
    for (int b = 0; b < B; b++)
      for (int c = 0; c < C; c++)
        for (int y = y0; y < y1; y++)
          memcpy(images + (size_t)b * img + ((size_t)c * S + y) * S + x0, FLIPPED(b) + ((size_t)c * S + y) * S + x0,
                 (size_t)(x1 - x0) * sizeof(float));
    lam = 1 - (double)(y1 - y0) * (x1 - x0) / ((double)S * S);  /* the box actually pasted */
  } else if (o->mixup > 0) {
    lam = sample_beta(&r, o->mixup);
    for (int b = 0; b < B; b++)
      for (size_t i = 0; i < img; i++)
        images[(size_t)b * img + i] = (float)(lam * images[(size_t)b * img + i] + (1 - lam) * FLIPPED(b)[i]);
  }
  float off = o->label_smoothing / K, on = 1 - o->label_smoothing + off;
  for (int b = 0; b < B; b++)
    for (int k = 0; k < K; k++) {
      float t1 = k == labels[b] ? on : off, t2 = k == partner_labels[B - 1 - b] ? on : off;
      soft[(size_t)b * K + k] = (float)(lam * t1 + (1 - lam) * t2);
    }
#undef FLIPPED
}

/* The --init encoder must be the --model preset's (width, depth, heads, MLP)
 * with the patch size P the run uses (0: not known before the data). */
static int check_init(const beit_recipe_opts *o, const beit_config *init, int P) {
  beit_config c = {0};
  if (beit_config_preset(&c, o->model) != BEIT_OK) return beit_error_context("--model");
  if (c.dim != init->dim || c.depth != init->depth || c.heads != init->heads ||
      fabsf(c.mlp_ratio - init->mlp_ratio) > 1e-6f)
    return beit_errorf("--init %s holds an encoder of %d blocks x %d wide (%d heads, MLP %g x), --model %s is %d blocks "
                       "x %d wide (%d heads, MLP %g x): pass the --model it was pretrained with", o->init, init->depth,
                       init->dim, init->heads, init->mlp_ratio, o->model, c.depth, c.dim, c.heads, c.mlp_ratio);
  if (P && P != init->patch_size)
    return beit_errorf("--init %s has %dx%d patches, the run %dx%d (--patch-size %d%s): pass --patch-size %d", o->init,
                       init->patch_size, init->patch_size, P, P, P, o->patch_size ? "" : ", the default",
                       init->patch_size);
  return BEIT_OK;
}

/* Evaluates on the evaluation split (the --val-split images, else the test split
 * or its first --eval-subset images), logs it and keeps best.safetensors, the
 * weights of the best evaluation by top-1 (the first of equals). `record` = 0 for
 * the evaluation that ends a run stopped by --max-steps where none was due: logged
 * as "partial", it writes best.safetensors only while no evaluation of an epoch
 * has, and changes nothing of the checkpoint's best, so a resumed run ends with
 * the best.safetensors an uninterrupted one does. */
static int evaluate_weights(beit_trainer *t, const beit_dataset *ds, int64_t epoch, int record, beit_eval_result *r) {
  beit_eval_prep prep = trainer_eval_prep(t);  /* what best.safetensors will tell `beit eval` to use */
  if (beit_evaluate_ranks(&t->model, ds, &prep, r, 0) != BEIT_OK) return BEIT_ERR;
  free(r->confusion);
  r->confusion = NULL;
  const char *split = t->val.n ? "val" : "test";
  double acc = r->n ? (double)r->top1 / r->n : 0, top5 = r->n ? (double)r->top5 / r->n : 0;
  if (beit_run_log(&t->run, "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"%s_top1\": %.6f, \"%s_top5\": %.6f, "
                   "\"%s_loss\": %.6f%s}", t->st.step, epoch, split, acc, split, top5, split, r->loss,
                   record ? "" : ", \"partial\": true") != BEIT_OK)
    return BEIT_ERR;
  if (t->rank == 0)
    fprintf(stderr, "%sfinetune: %s %" PRId64 " %s top-1 %.2f%% top-5 %.2f%% loss %.4f (%" PRId64 " images)\n",
            beit_progress_eol(&t->bar), record ? "epoch" : "step", record ? epoch + 1 : t->st.step,
            t->val.n ? "validation" : "test", 100 * acc, 100 * top5, r->loss, r->n);
  if (record ? acc <= t->st.best && t->st.best_epochs : t->st.best_epochs) return BEIT_OK;
  if (record) t->st.best = acc, t->st.best_top5 = top5, t->st.best_epochs = epoch + 1;
  return trainer_save_weights(t, "best.safetensors");
}

/* On the EMA weights with --model-ema (timm's ModelEma: what is kept), else on the trained ones. */
static int evaluate(beit_trainer *t, const beit_dataset *ds, int64_t epoch, int record, beit_eval_result *r) {
  trainer_use_ema(t, 1);
  int rc = evaluate_weights(t, ds, epoch, record, r);
  trainer_use_ema(t, 0);
  return rc;
}

/* The selected weights (best.safetensors) into the model, on every rank. */
static int load_best(beit_trainer *t) {
  char path[1100];
  beit_run_path(&t->run, "best.safetensors", path, sizeof path);
  int rc = t->rank == 0 ? beit_checkpoint_load(path, &t->model.params, NULL, NULL, 0) : BEIT_OK;
  if (rc != BEIT_OK) return beit_error_context("the selected weights");
  if (t->world > 1) beit_dist_bcast(t->model.params.data, t->model.params.total * sizeof(float), 0);
  return BEIT_OK;
}

/* The end of a complete run: with --val-split the test split evaluated once, on
 * the weights selected on validation; the final log line, the last stderr line
 * and summary.json. `partial`: the --max-steps evaluation (epoch `at`), the
 * selection while no epoch has been evaluated. */
static int finish(beit_trainer *t, const beit_dataset *test, const beit_eval_result *partial, int64_t at) {
  beit_summary s = trainer_summary(t);
  int recorded = t->st.best_epochs > 0;
  double sel = recorded ? t->st.best : partial->n ? (double)partial->top1 / partial->n : 0;
  double sel5 = recorded ? t->st.best_top5 : partial->n ? (double)partial->top5 / partial->n : 0;
  s.result = 1, s.best_epoch = recorded ? t->st.best_epochs - 1 : at;
  s.selected_on = t->val.n ? "val" : "test";
  s.test_top1 = sel, s.test_top5 = sel5;
  if (t->val.n) {
    beit_eval_result r;
    beit_eval_prep prep = trainer_eval_prep(t);
    if (load_best(t) != BEIT_OK || beit_evaluate_ranks(&t->model, test, &prep, &r, 0) != BEIT_OK) return BEIT_ERR;
    free(r.confusion);
    s.val_top1 = sel;
    s.test_top1 = r.n ? (double)r.top1 / r.n : 0, s.test_top5 = r.n ? (double)r.top5 / r.n : 0;
  }
  char val[48] = "";
  if (t->val.n) snprintf(val, sizeof val, "\"val_top1\": %.6f, ", s.val_top1);
  if (beit_run_log(&t->run, "{\"step\": %" PRId64 ", \"final\": true, \"best_epoch\": %lld, %s\"test_top1\": %.6f, "
                   "\"test_top5\": %.6f, \"selected_on\": \"%s\"}", t->st.step, s.best_epoch, val, s.test_top1,
                   s.test_top5, s.selected_on) != BEIT_OK)
    return BEIT_ERR;
  if (t->rank != 0) return BEIT_OK;
  if (t->val.n)
    fprintf(stderr, "finetune: epoch %lld selected on validation (top-1 %.2f%%, %" PRId64 " images); test top-1 %.2f%% "
            "top-5 %.2f%%; weights in %s/best.safetensors\n", s.best_epoch + 1, 100 * s.val_top1, t->val.n,
            100 * s.test_top1, 100 * s.test_top5, t->o->out);
  else
    fprintf(stderr, "finetune: best test top-1 %.2f%% (epoch %lld, selected on the test split: --val-split selects on "
            "held-out training images); weights in %s/best.safetensors\n", 100 * s.test_top1, s.best_epoch + 1,
            t->o->out);
  return beit_run_write_summary(t->o->out, &s);
}

int beit_finetune(const beit_recipe_opts *o) {
  beit_set_threads(o->threads);
  beit_trainer t;
  beit_dataset test;
  memset(&test, 0, sizeof test);
  memset(&t, 0, sizeof t);
  beit_model init;  /* the pretrained encoder, read before the data so that a mismatch is refused at once */
  memset(&init, 0, sizeof init);
  float *soft = NULL, *partner = NULL;
  int32_t *partner_labels = NULL;
  int rc = BEIT_ERR, S = 0, P = 0;
  int use_init = o->init && !o->resume;
  if (beit_recipe_check(o, "finetune") != BEIT_OK) goto done;
  if (o->image_size > 0 && beit_resolve_sizes(o->image_size, o->patch_size, NULL, &S, &P) != BEIT_OK) goto done;
  if (use_init && (beit_checkpoint_open(&init, o->init, NULL) != BEIT_OK ||
                   check_init(o, &init.cfg, S ? P : o->patch_size) != BEIT_OK))
    goto done;
  if (trainer_open_data(&t, o, "finetune", BEIT_LOAD_TRAIN, -1, 0, 0) != BEIT_OK) goto done;
  const beit_loader_cfg *lc = beit_loader_config(t.loader);
  if (use_init && check_init(o, &init.cfg, lc->patch_size) != BEIT_OK) goto done;
  if (beit_dataset_open(&test, o->data, 0) != BEIT_OK) goto done;
  if (o->eval_subset > 0 && o->eval_subset < test.n) test.n = o->eval_subset;
  beit_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (beit_config_preset(&cfg, o->model) != BEIT_OK) goto done;
  cfg.image_size = lc->image_size, cfg.patch_size = lc->patch_size, cfg.channels = t.ds.channels;
  cfg.num_classes = t.ds.num_classes, cfg.use_mean_pooling = !o->use_cls, cfg.rel_pos = BEIT_RELPOS_PER_BLOCK;
  cfg.drop_path = o->drop_path, cfg.layer_scale_init = o->layer_scale;
  t.saves_at_epoch_end = 1;  /* the end-of-epoch checkpoint comes after the evaluation */
  if (trainer_open_model(&t, &cfg, o->layer_decay) != BEIT_OK) goto done;
  if (use_init && load_pretrained(&t.model, &init, o->init) != BEIT_OK) goto done;
  if (!o->resume) beit_optimizer_ema_reset(&t.opt);  /* the EMA starts from the weights training starts from */
  beit_model_free(&init);
  int K = cfg.num_classes, mixing = o->mixup > 0 || o->cutmix > 0;
  size_t img = (size_t)cfg.channels * cfg.image_size * cfg.image_size;
  soft = beit_alloc((size_t)o->batch * K * sizeof(float), "soft targets");
  partner = beit_alloc((size_t)o->batch * img * sizeof(float), "mixup partners");
  partner_labels = beit_alloc((size_t)o->batch * sizeof(int32_t), "mixup partner labels");
  if (!soft || !partner || !partner_labels) goto done;
  beit_batch b;
  int64_t epoch_done = t.st.step / t.steps_per_epoch, evaluated_at = -1;
  const beit_dataset *eval_ds = t.val.n ? &t.val : &test;
  beit_eval_result r, extra = {0};
  int every = o->eval_every > 1 ? o->eval_every : 1;
  while (t.st.step < t.end_step && !trainer_stopping(&t)) {
    int got = beit_loader_next(t.loader, &b);
    if (got < 0) goto done;
    if (got == 0) continue;
    if (mixing) {
      int mirror = t.world - 1 - t.rank;
      beit_dist_exchange(b.images, partner, (size_t)b.n * img * sizeof(float), mirror);
      beit_dist_exchange(b.labels, partner_labels, (size_t)b.n * sizeof(int32_t), mirror);
      mix_batch(b.images, soft, b.labels, partner, partner_labels, b.n, cfg.channels, cfg.image_size, K, o,
                (uint64_t)o->seed, t.st.step);
    } else {
      smooth_targets(soft, b.labels, b.n, K, o->label_smoothing);
    }
    beit_input in = {.B = b.n, .images = b.images, .labels = b.labels, .soft_labels = soft, .shard = t.rank,
                     .shards = t.world};
    beit_stats s;
    beit_params_zero_grad(&t.model.params);
    if (beit_forward(&t.model, BEIT_TASK_CLASSIFY, &in, 1, (uint64_t)o->seed, t.st.step, &s) != BEIT_OK) goto done;
    if (isfinite(s.loss) && beit_backward(&t.model, &in) != BEIT_OK) goto done;
    if (trainer_after_step(&t, &b, s.loss, &s) != BEIT_OK) goto done;
    if (t.st.step % t.steps_per_epoch == 0) {  /* end of an epoch: evaluate (every --eval-every and the last) */
      epoch_done++;
      if (epoch_done % every == 0 || t.st.step == t.total_steps) {
        if (evaluate(&t, eval_ds, epoch_done - 1, 1, &r) != BEIT_OK) goto done;
        evaluated_at = t.st.step;
      }
      if (t.st.step < t.end_step && trainer_save(&t) != BEIT_OK) goto done;  /* the last: trainer_finish's */
    }
  }
  /* --max-steps ended the run where no evaluation was due: one now, so the run has its numbers and
     best.safetensors (one an uninterrupted run does not make, so it does not count in the checkpoint's best) */
  if (t.st.step == t.end_step && t.end_step < t.total_steps && evaluated_at != t.st.step &&
      evaluate(&t, eval_ds, epoch_done, 0, &extra) != BEIT_OK)
    goto done;
  int stopped = trainer_stopping(&t);
  rc = trainer_finish(&t);
  if (rc == BEIT_OK && !stopped && finish(&t, &test, &extra, epoch_done) != BEIT_OK) rc = BEIT_ERR;
done:
  beit_free(soft), beit_free(partner), beit_free(partner_labels);
  beit_dataset_close(&test);
  beit_model_free(&init);
  trainer_close(&t);
  return rc;
}
