/* trainer.c - see trainer.h. */
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "io/safetensors.h"

int trainer_open_data(beit_trainer *t, const beit_recipe_opts *o, const char *kind, beit_load_mode mode,
                      int second_size, int num_mask, int random_mask) {
  memset(t, 0, sizeof *t);
  t->o = o;
  t->kind = kind;
  t->t_begin = beit_now();
  t->rank = beit_dist_rank(), t->world = beit_dist_world();
  if (o->batch % t->world)
    return beit_errorf("--batch %d is not a multiple of the %d ranks (each rank takes an equal share of the batch)",
                       o->batch, t->world);
  if (t->rank == 0 && beit_run_claim(&t->run, o->out, o->resume, o->overwrite, 1) != BEIT_OK) return BEIT_ERR;
  if (beit_dataset_open(&t->ds, o->data, 1) != BEIT_OK || beit_recipe_check_data(o, kind, &t->ds) != BEIT_OK)
    return BEIT_ERR;
  if (beit_recipe_split(&t->ds, &t->val, o->val_split, o->labels_per_class, o->split_seed,
                        t->rank == 0 ? o->out : NULL) != BEIT_OK)
    return BEIT_ERR;
  if (o->subset > 0 && o->subset < t->ds.n) t->ds.n = o->subset;
  beit_loader_cfg lc;
  beit_loader_defaults(&lc, mode);
  lc.batch_size = o->batch / t->world;
  lc.rank = t->rank, lc.world_size = t->world;
  lc.image_size = o->image_size;
  lc.patch_size = o->patch_size;
  lc.second_size = second_size;
  lc.num_mask = num_mask;
  lc.random_mask = random_mask;
  lc.aug.scale_min = o->crop_scale_min;
  lc.aug.brightness = lc.aug.contrast = lc.aug.saturation = o->color_jitter;
  if (mode == BEIT_LOAD_TRAIN) {  /* the fine-tuning recipe's own augmentations */
    if (beit_randaug_parse(o->randaug, &lc.aug.randaug) != BEIT_OK) return beit_error_context("--randaug");
    lc.aug.reprob = o->reprob, lc.aug.crop_pad = o->crop_pad;
  }
  lc.seed = (uint64_t)o->seed;
  lc.num_workers = o->workers;
  if (beit_loader_open(&t->loader, &t->ds, &lc) != BEIT_OK) return BEIT_ERR;
  t->steps_per_epoch = beit_loader_steps_per_epoch(t->loader);
  t->total_steps = t->steps_per_epoch * o->epochs;
  t->end_step = o->max_steps > 0 && o->max_steps < t->total_steps ? o->max_steps : t->total_steps;
  if (t->steps_per_epoch <= 0)
    return beit_errorf("%s: %lld images give no full batch of %d", o->data, (long long)t->ds.n, o->batch);
  return BEIT_OK;
}

char *trainer_config_json(const beit_trainer *t) {
  const beit_recipe_opts *o = t->o;
  char *model_json = beit_config_to_json(&t->model.cfg);
  cJSON *j = model_json ? cJSON_Parse(model_json) : NULL;
  free(model_json);
  cJSON *a = j ? cJSON_CreateObject() : NULL;
  if (!a) {
    cJSON_Delete(j);
    beit_errorf("out of memory writing the run's config.json");
    return NULL;
  }
  cJSON_AddStringToObject(a, "command", t->kind);
  cJSON_AddStringToObject(a, "data", o->data);
  cJSON_AddStringToObject(a, "model", o->model);
  cJSON_AddNumberToObject(a, "epochs", o->epochs);
  cJSON_AddNumberToObject(a, "batch", o->batch);
  cJSON_AddNumberToObject(a, "subset", (double)o->subset);
  cJSON_AddNumberToObject(a, "lr", o->lr);
  cJSON_AddNumberToObject(a, "min_lr", o->min_lr);
  cJSON_AddNumberToObject(a, "warmup_epochs", o->warmup_epochs);
  cJSON_AddNumberToObject(a, "weight_decay", o->weight_decay);
  cJSON_AddNumberToObject(a, "beta2", o->beta2);
  cJSON_AddNumberToObject(a, "clip_grad", o->clip_grad);
  cJSON_AddNumberToObject(a, "crop_scale_min", o->crop_scale_min);
  cJSON_AddNumberToObject(a, "color_jitter", o->color_jitter);
  cJSON_AddNumberToObject(a, "seed", (double)o->seed);
  cJSON_AddNumberToObject(a, "threads", o->threads);
  cJSON_AddNumberToObject(a, "ranks", t->world);
  cJSON_AddNumberToObject(a, "val_split", (double)o->val_split);
  cJSON_AddNumberToObject(a, "split_seed", (double)o->split_seed);
  cJSON_AddNumberToObject(a, "labels_per_class", (double)o->labels_per_class);
  cJSON_AddStringToObject(a, "weight_init", o->weight_init ? o->weight_init : "beit");
  if (!strcmp(t->kind, "pretrain")) {
    cJSON_AddStringToObject(a, "tokenizer", o->tokenizer ? o->tokenizer : "pixel");
    cJSON_AddNumberToObject(a, "mask_ratio", o->mask_ratio);
    cJSON_AddStringToObject(a, "masking", o->random_mask ? "random" : "blockwise");
  } else {
    cJSON_AddStringToObject(a, "init", o->init ? o->init : "scratch");
    cJSON_AddNumberToObject(a, "layer_decay", o->layer_decay);
    cJSON_AddNumberToObject(a, "label_smoothing", o->label_smoothing);
    cJSON_AddNumberToObject(a, "mixup", o->mixup);
    cJSON_AddNumberToObject(a, "cutmix", o->cutmix);
    cJSON_AddStringToObject(a, "randaug", o->randaug ? o->randaug : "none");
    cJSON_AddNumberToObject(a, "reprob", o->reprob);
    cJSON_AddNumberToObject(a, "crop_pad", beit_loader_config(t->loader)->aug.crop_pad);  /* resolved */
    cJSON_AddNumberToObject(a, "model_ema_decay", o->model_ema ? o->model_ema_decay : 0);
  }
  cJSON_AddStringToObject(a, "blas", beit_blas_describe());
  cJSON_AddItemToObject(j, "beit_train_args", a);
  cJSON *record = o->args_record ? cJSON_Parse(o->args_record) : NULL;  /* what --resume compares (cli/args.h) */
  if (record) cJSON_AddItemToObject(j, "beit_args", record);
  cJSON *command = t->command ? cJSON_Parse(t->command) : NULL;
  if (command) cJSON_AddItemToObject(j, "beit_command", command);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  if (!s) beit_errorf("out of memory writing the run's config.json");
  return s;
}

/* Every rank starts from rank 0's weights, optimizer state and position (its
 * checkpoint when resuming), so only rank 0 needs the run folder. */
static void sync_from_root(beit_trainer *t) {
  if (t->world == 1) return;
  size_t bytes = t->model.params.total * sizeof(float);
  beit_dist_bcast(t->model.params.data, bytes, 0);
  beit_dist_bcast(t->opt.m, bytes, 0);
  beit_dist_bcast(t->opt.v, bytes, 0);
  if (t->opt.ema) beit_dist_bcast(t->opt.ema, bytes, 0);
  beit_dist_bcast(&t->st, sizeof t->st, 0);
  t->opt.step = t->st.step;
}

/* The command line that started the run: a resumed run keeps its config.json's. */
static char *run_command(const beit_trainer *t) {
  char path[1100];
  uint8_t *text = NULL;
  size_t size;
  beit_run_path(&t->run, "config.json", path, sizeof path);
  cJSON *j = t->o->resume && beit_read_file(path, &text, &size) == BEIT_OK ? cJSON_Parse((const char *)text) : NULL;
  beit_free(text);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "beit_command");
  char *s = cJSON_IsArray(c) ? cJSON_PrintUnformatted(c) : beit_command_json(t->o->argc, t->o->argv);
  cJSON_Delete(j);
  if (!s) beit_errorf("out of memory for the command line");
  return s;
}

double trainer_seconds(const beit_trainer *t) { return t->seconds0 + beit_now() - t->t_begin; }

/* DIR/time.json: the wall time of the run's work up to its newest checkpoint, for
 * summary.json's minutes (outside the checkpoint, which a resumed run writes bit
 * for bit as an uninterrupted one does). */
static int save_seconds(const beit_trainer *t) {
  char path[1100], text[96];
  beit_run_path(&t->run, "time.json", path, sizeof path);
  int n = snprintf(text, sizeof text, "{\"step\": %" PRId64 ", \"seconds\": %.3f}\n", t->st.step, trainer_seconds(t));
  return beit_write_file_atomic(path, text, (size_t)n);
}

static double load_seconds(const beit_trainer *t) {
  char path[1100];
  uint8_t *text = NULL;
  size_t size;
  beit_run_path(&t->run, "time.json", path, sizeof path);
  cJSON *j = beit_read_file(path, &text, &size) == BEIT_OK ? cJSON_Parse((const char *)text) : NULL;
  beit_free(text);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "seconds");
  double s = cJSON_IsNumber(v) ? v->valuedouble : 0;
  cJSON_Delete(j);
  return s;
}

beit_summary trainer_summary(const beit_trainer *t) {
  const beit_recipe_opts *o = t->o;
  return (beit_summary){.kind = t->kind, .command = t->command, .seed = o->seed, .split_seed = o->split_seed,
                        .val_split = o->val_split, .labels_per_class = o->labels_per_class,
                        .seconds = trainer_seconds(t), .best_epoch = -1, .val_top1 = -1};
}

static int grad_mode(const beit_recipe_opts *o) { return o->recompute ? BEIT_GRAD_RECOMPUTE : BEIT_GRAD_KEEP; }

/* Everything the model will hold, checked before any of it is allocated. */
static int check_memory(const beit_trainer *t, const beit_config *cfg) {
  int local = beit_dist_local_size();
  double need = beit_model_memory_bytes(cfg, t->o->batch / t->world, grad_mode(t->o), 1);
  if (need < 0) return BEIT_ERR;
  char what[200];
  snprintf(what, sizeof what, "%s of '%s' at %d images per step (weights, gradients, AdamW moments, activations%s)",
           t->kind, t->o->model, t->o->batch, local > 1 ? "; for every rank on this machine" : "");
  return beit_memory_check(need * local, what);
}

int trainer_open_model(beit_trainer *t, const beit_config *cfg, float layer_decay) {
  const beit_recipe_opts *o = t->o;
  int root = t->rank == 0;
  if (check_memory(t, cfg) != BEIT_OK) return BEIT_ERR;
  if (beit_model_init(&t->model, cfg) != BEIT_OK || beit_model_reserve(&t->model, o->batch / t->world, grad_mode(o)) != BEIT_OK)
    return BEIT_ERR;
  if (beit_model_init_named(&t->model, o->weight_init, (uint64_t)o->seed, 0.001f) != BEIT_OK) return BEIT_ERR;
  beit_optim_cfg oc = {.lr = o->lr, .min_lr = o->min_lr,
                       .warmup_steps = (int64_t)llroundf(o->warmup_epochs * t->steps_per_epoch),
                       .total_steps = t->total_steps, .beta1 = 0.9f, .beta2 = o->beta2, .eps = 1e-8f,
                       .weight_decay = o->weight_decay, .layer_decay = layer_decay, .num_layers = cfg->depth,
                       .clip_grad = o->clip_grad};
  if (beit_optimizer_init(&t->opt, &t->model.params, &oc) != BEIT_OK) return BEIT_ERR;
  if (o->model_ema && beit_optimizer_ema_init(&t->opt, o->model_ema_decay) != BEIT_OK) return BEIT_ERR;
  int64_t resume_step = -1;
  if (o->resume && root) {
    char path[1100];
    if (beit_checkpoint_resume(o->out, &t->model.params, &t->opt, &t->st, path, sizeof path) != BEIT_OK)
      return beit_error_context("--resume");
  }
  sync_from_root(t);
  if (root && o->resume) t->seconds0 = load_seconds(t);
  if (root && !(t->command = run_command(t))) return BEIT_ERR;
  if (o->resume) {
    if (beit_loader_seek(t->loader, t->st.epoch, t->st.step_in_epoch) != BEIT_OK) return BEIT_ERR;
    resume_step = t->st.step;
    if (root)
      fprintf(stderr, "%s: resuming at step %" PRId64 " (epoch %" PRId64 ", batch %" PRId64 ")\n", t->kind,
              t->st.step, t->st.epoch, t->st.step_in_epoch);
  }
  if (root) {
    char *json = trainer_config_json(t);
    if (!json) return BEIT_ERR;
    int rc = beit_run_open(&t->run, json, resume_step);
    free(json);
    if (rc != BEIT_OK) return BEIT_ERR;
    fprintf(stderr, "%s: %s, %d blocks x %d wide, %.2f M parameters, %.0f MiB activations; %" PRId64
            " steps (%" PRId64 " per epoch); %s\n", t->kind, o->model, cfg->depth, cfg->dim,
            t->model.params.total / 1e6, beit_model_arena_bytes(&t->model) / 1048576.0, t->total_steps,
            t->steps_per_epoch, beit_blas_describe());
    if (t->end_step < t->total_steps)
      fprintf(stderr, "%s: stopping after step %" PRId64 " (--max-steps; the schedule spans all %" PRId64 ")\n",
              t->kind, t->end_step, t->total_steps);
    if (t->world > 1)
      fprintf(stderr, "%s: %d ranks x %d images per step (%s), %d threads each\n", t->kind, t->world,
              o->batch / t->world, beit_dist_describe(), beit_get_threads());
  }
  beit_progress_start(&t->bar, t->kind, t->end_step * o->batch);
  t->bar.done = t->bar.done0 = t->st.step * o->batch;
  t->bar.enabled = t->bar.enabled && !o->quiet && root;
  t->t_window = t->t_start = beit_now();
  beit_install_stop_handler();
  return BEIT_OK;
}

/* A step whose loss or gradient is not finite (`what` says which): stops the
 * run, or with --skip-nonfinite lets the caller skip the update. */
static int nonfinite_step(beit_trainer *t, const char *what) {
  int64_t step = t->st.step + 1;  /* numbered as in log.jsonl */
  if (!t->o->skip_nonfinite)
    return beit_errorf("step %" PRId64 ": %s is not finite; stopping without saving (the last checkpoint is intact; "
                       "--skip-nonfinite skips such steps)", step, what);
  if (++t->skipped_in_row >= BEIT_MAX_NONFINITE_SKIPS)
    return beit_errorf("step %" PRId64 ": %d non-finite steps in a row (the last: %s); stopping without saving "
                       "(the last checkpoint is intact; try a lower --lr)", step, t->skipped_in_row, what);
  if (t->rank == 0)
    fprintf(stderr, "%s%s: step %" PRId64 ": %s is not finite; update skipped (%d in a row)\n",
            beit_progress_eol(&t->bar), t->kind, step, what, t->skipped_in_row);
  return BEIT_OK;
}

/* Runs the optimizer unless the loss or the gradient is not finite; then fills
 * `what` ("" when the update happened) and returns the gradient norm. */
static double update(beit_trainer *t, double loss, char *what, size_t n) {
  what[0] = 0;
  if (!isfinite(loss)) {
    snprintf(what, n, "the loss (%g)", loss);
    return NAN;
  }
  double norm = beit_optimizer_step(&t->opt);
  if (isfinite(norm)) return norm;
  int bad = beit_params_first_nonfinite(&t->model.params, t->model.params.grad);
  if (bad >= 0) snprintf(what, n, "the gradient of '%s' (the first such tensor)", t->model.params.t[bad].name);
  else snprintf(what, n, "the gradient norm (its sum of squares overflows)");
  return norm;
}

/* A JSON number, or null for NaN / infinity (which JSON cannot hold). */
static const char *json_num(char *buf, size_t n, const char *fmt, double x) {
  if (isfinite(x)) snprintf(buf, n, fmt, x);
  else snprintf(buf, n, "null");
  return buf;
}

beit_eval_prep trainer_eval_prep(const beit_trainer *t) {
  const beit_loader_cfg *lc = beit_loader_config(t->loader);
  return beit_eval_prep_make(t->model.cfg.image_size, 0, lc->mean, lc->std);
}

/* Metadata of every file a trainer writes: the model config (to rebuild it),
 * the command, the class names (newline-separated) and the eval preprocessing
 * (trainer_eval_prep), so `beit predict` and `beit eval` need nothing but the
 * file and see the images as fine-tuning's evaluation did. Returns the number of
 * pairs, or BEIT_ERR when out of memory (*json and *names are then freed or NULL). */
static int trainer_meta(const beit_trainer *t, const char **kv, char **json, char **names, char *norm, size_t nn,
                        char *crop, size_t nc) {
  *json = beit_config_to_json(&t->model.cfg);
  size_t len = 1;
  for (int k = 0; k < t->ds.num_classes; k++) len += strlen(t->ds.class_names[k]) + 1;
  *names = beit_calloc(len, "the class names of the checkpoint's metadata");
  if (!*json || !*names) {
    if (!*json) beit_errorf("out of memory writing the checkpoint's config metadata");
    free(*json), beit_free(*names);
    *json = *names = NULL;
    return BEIT_ERR;
  }
  for (int k = 0; k < t->ds.num_classes; k++) {
    if (k) strcat(*names, "\n");
    strcat(*names, t->ds.class_names[k]);
  }
  beit_eval_prep p = trainer_eval_prep(t);
  snprintf(norm, nn, "%g %g %g %g %g %g", p.mean[0], p.mean[1], p.mean[2], p.std[0], p.std[1], p.std[2]);
  snprintf(crop, nc, "%g", p.crop_pct);
  const char *pairs[] = {"config", *json, "command", t->kind, "class_names", *names, "normalize", norm, "crop_pct", crop};
  memcpy(kv, pairs, sizeof pairs);
  return 5;
}

static int save_weights(beit_trainer *t, const char *name) {
  char path[1100], *json, *names, norm[128], crop[32];
  const char *kv[10];
  int n = trainer_meta(t, kv, &json, &names, norm, sizeof norm, crop, sizeof crop);
  if (n < 0) return BEIT_ERR;
  beit_run_path(&t->run, name, path, sizeof path);
  int bad = beit_params_first_nonfinite(&t->model.params, t->model.params.data);
  int rc = bad < 0 ? beit_params_save(&t->model.params, path, kv, n)
                   : beit_errorf("%s: parameter '%s' holds a NaN or infinity; not writing it (the previous file is kept)",
                                 path, t->model.params.t[bad].name);
  free(json), beit_free(names);
  return rc;
}

void trainer_use_ema(beit_trainer *t, int on) {
  if (!t->opt.ema || t->ema_in == on) return;
  float *w = t->model.params.data, *e = t->opt.ema;
  for (size_t i = 0; i < t->model.params.total; i++) {
    float x = w[i];
    w[i] = e[i], e[i] = x;
  }
  t->ema_in = on;
}

int trainer_save_weights(beit_trainer *t, const char *name) {
  if (t->rank != 0) return BEIT_OK;
  int was = t->ema_in;
  trainer_use_ema(t, 1);
  int rc = save_weights(t, name);
  trainer_use_ema(t, was);
  return rc;
}

int trainer_save(beit_trainer *t) {
  if (!beit_dist_same(t->model.params.data, t->model.params.total * sizeof(float)))
    return beit_errorf("step %" PRId64 ": the ranks hold different weights; not saving", t->st.step);
  if (t->rank != 0) return BEIT_OK;
  char *json, *names, norm[128], crop[32];
  const char *kv[10];
  int n = trainer_meta(t, kv, &json, &names, norm, sizeof norm, crop, sizeof crop);
  if (n < 0) return BEIT_ERR;
  int rc = beit_checkpoint_save_kept(t->run.dir, t->o->keep, &t->model.params, &t->opt, &t->st, kv, n);
  free(json), beit_free(names);
  if (rc == BEIT_OK) rc = save_seconds(t);
  return rc == BEIT_OK ? trainer_save_weights(t, "model.safetensors") : rc;
}

/* Data parallelism: the loss and counts of the whole global batch, whether any
 * rank was asked to stop, and the gradient one process would have computed.
 * Every recipe's loss is a mean over s->count units (masked tokens, images);
 * with blockwise masks the counts differ between ranks, so each rank's
 * gradient is weighted by its share of the global count, not by 1 / ranks. */
static void reduce_step(beit_trainer *t, double *loss, beit_stats *s) {
  double v[4] = {*loss * (double)s->count, (double)s->count, (double)s->correct, beit_stop_requested()};
  beit_dist_sum_f64(v, 4);
  double share = v[1] > 0 ? s->count / v[1] : 1.0 / t->world;
  *loss = v[1] > 0 ? v[0] / v[1] : NAN;
  s->count = (int64_t)v[1], s->correct = (int64_t)v[2];
  t->stop = v[3] > 0;
  if (isfinite(*loss)) beit_dist_weighted_sum(t->model.params.grad, t->model.params.total, share);
}

int trainer_stopping(const beit_trainer *t) { return t->world > 1 ? t->stop : beit_stop_requested(); }

int trainer_finish(beit_trainer *t) {
  int rc = trainer_save(t);
  beit_progress_finish(&t->bar);
  t->bar.enabled = 0;
  if (rc != BEIT_OK) return rc;
  if (trainer_stopping(t)) {
    if (t->rank == 0)
      fprintf(stderr, "%s: stopped by %s at step %" PRId64 "; checkpoint saved in %s (continue with --resume)\n",
              t->kind, beit_stop_exit_code() == 128 + SIGINT ? "SIGINT" : "SIGTERM", t->st.step, t->o->out);
    return BEIT_STOPPED;
  }
  if (t->st.step < t->total_steps && t->rank == 0)
    fprintf(stderr, "%s: stopped after step %" PRId64 " of %" PRId64 " (--max-steps); checkpoint saved in %s "
            "(continue with --resume, with a larger --max-steps or none)\n", t->kind, t->st.step, t->total_steps,
            t->o->out);
  return BEIT_OK;
}

/* ", epoch_loss, epoch_accuracy" of the line that ends an epoch: the means over
 * its updates (the sums live in the checkpoint, so a resumed run logs what an
 * uninterrupted one does); then the sums start again. */
static void epoch_fields(beit_trainer *t, char *out, size_t n) {
  beit_train_state *st = &t->st;
  char lossv[32];
  snprintf(out, n, ", \"epoch_loss\": %s, \"epoch_accuracy\": %.6f",
           json_num(lossv, sizeof lossv, "%.6f", st->epoch_steps ? st->epoch_loss / st->epoch_steps : NAN),
           st->epoch_count ? (double)st->epoch_correct / st->epoch_count : 0.0);
  st->epoch_loss = 0, st->epoch_steps = st->epoch_correct = st->epoch_count = 0;
}

int trainer_after_step(beit_trainer *t, const beit_batch *b, double loss, const beit_stats *s_local) {
  const beit_recipe_opts *o = t->o;
  beit_stats reduced = *s_local, *s = &reduced;
  beit_test_inject_nan(t->st.step + 1, &loss, &t->model.params);
  if (t->world > 1) reduce_step(t, &loss, s);
  double lr = beit_lr_at(&t->opt.cfg, t->opt.step);
  char what[BEIT_NAME_MAX + 64];
  double norm = update(t, loss, what, sizeof what);
  if (what[0] && nonfinite_step(t, what) != BEIT_OK) return BEIT_ERR;
  if (!what[0]) {
    t->skipped_in_row = 0;
    t->window_loss += loss;
    t->window_correct += s->correct;
    t->window_count += s->count;
    t->st.epoch_loss += loss, t->st.epoch_steps++;
    t->st.epoch_correct += s->correct, t->st.epoch_count += s->count;
  }
  t->window_skipped += what[0] != 0;
  t->st.step++;
  t->opt.step = t->st.step;  /* a skipped step keeps its place in the schedule (and resume stays exact) */
  t->st.epoch = b->epoch;
  t->st.step_in_epoch = b->step + 1;
  t->window_images += (int64_t)b->n * t->world;
  t->window_steps++;
  char extra[128];
  snprintf(extra, sizeof extra, "step %" PRId64 "/%" PRId64 ", epoch %" PRId64 "/%d, loss %.4f", t->st.step,
           t->total_steps, b->epoch + 1, o->epochs, loss);
  beit_progress_update(&t->bar, (int64_t)b->n * t->world, extra);
  int last = t->st.step == t->end_step, epoch_end = t->st.step % t->steps_per_epoch == 0;
  if (epoch_end) beit_progress_line(&t->bar);
  if (last && t->world > 1 && t->rank == 0)
    fprintf(stderr, "%s%s: gradient allreduce took %.2f s of %.2f s on rank 0\n", beit_progress_eol(&t->bar),
            t->kind, beit_dist_reduce_seconds(), beit_now() - t->t_start);
  /* at multiples of --log-every (not every N steps from the start of this process): a resumed run logs the steps
     the uninterrupted one does; and at the end of each epoch, with the epoch's means */
  if (t->st.step % o->log_every == 0 || last || epoch_end) {
    double now = beit_now();
    char lossv[32], normv[32], skipped[48] = "", epoch[96] = "";
    if (t->window_skipped) snprintf(skipped, sizeof skipped, ", \"skipped\": %" PRId64, t->window_skipped);
    if (epoch_end) epoch_fields(t, epoch, sizeof epoch);
    int64_t good = t->window_steps - t->window_skipped;
    int rc = beit_run_log(&t->run,
                 "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"lr\": %.6g, \"loss\": %s, \"accuracy\": %.6f, "
                 "\"grad_norm\": %s%s, \"images_per_s\": %.1f, \"data_wait_s\": %.6f%s}",
                 t->st.step, b->epoch, lr, json_num(lossv, sizeof lossv, "%.6f", good ? t->window_loss / good : NAN),
                 t->window_count ? (double)t->window_correct / t->window_count : 0.0,
                 json_num(normv, sizeof normv, "%.4f", norm), epoch, t->window_images / (now - t->t_window),
                 beit_loader_wait_seconds(t->loader) - t->wait_window, skipped);
    if (rc != BEIT_OK) return BEIT_ERR;
    t->t_window = now;
    t->wait_window = beit_loader_wait_seconds(t->loader);
    t->window_loss = 0, t->window_correct = t->window_count = t->window_images = t->window_steps = 0;
    t->window_skipped = 0;
  }
  /* a checkpoint at every epoch's end (fine-tuning's comes after its evaluation) and every --save-every steps:
     a killed run loses at most an epoch */
  if (last || (epoch_end && t->saves_at_epoch_end)) return BEIT_OK;
  if (epoch_end || (o->save_every > 0 && t->st.step % o->save_every == 0)) return trainer_save(t);
  return BEIT_OK;
}

void trainer_close(beit_trainer *t) {
  beit_progress_finish(&t->bar);
  beit_run_close(&t->run);
  beit_optimizer_free(&t->opt);
  beit_model_free(&t->model);
  if (t->loader) beit_loader_close(t->loader);
  beit_dataset_close(&t->ds);
  beit_dataset_close(&t->val);
  free(t->command);
  t->command = NULL;
}
