/* trainer.c - see trainer.h. */
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int trainer_open_data(beit_trainer *t, const beit_recipe_opts *o, const char *kind, beit_load_mode mode,
                      int second_size, int num_mask, int random_mask) {
  memset(t, 0, sizeof *t);
  t->o = o;
  t->kind = kind;
  if (beit_dataset_open(&t->ds, o->data, 1) != BEIT_OK) return BEIT_ERR;
  if (o->subset > 0 && o->subset < t->ds.n) t->ds.n = o->subset;
  beit_loader_cfg lc;
  beit_loader_defaults(&lc, mode);
  lc.batch_size = o->batch;
  lc.image_size = o->image_size;
  lc.patch_size = o->patch_size;
  lc.second_size = second_size;
  lc.num_mask = num_mask;
  lc.random_mask = random_mask;
  lc.aug.scale_min = o->crop_scale_min;
  lc.aug.brightness = lc.aug.contrast = lc.aug.saturation = o->color_jitter;
  lc.seed = (uint64_t)o->seed;
  lc.num_workers = o->workers;
  if (beit_loader_open(&t->loader, &t->ds, &lc) != BEIT_OK) return BEIT_ERR;
  t->steps_per_epoch = beit_loader_steps_per_epoch(t->loader);
  t->total_steps = t->steps_per_epoch * o->epochs;
  if (t->steps_per_epoch <= 0)
    return beit_errorf("%s: %lld images give no full batch of %d", o->data, (long long)t->ds.n, o->batch);
  return BEIT_OK;
}

char *trainer_config_json(const beit_trainer *t) {
  const beit_recipe_opts *o = t->o;
  char *model_json = beit_config_to_json(&t->model.cfg);
  cJSON *j = cJSON_Parse(model_json);
  free(model_json);
  cJSON *a = cJSON_CreateObject();
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
  }
  cJSON_AddStringToObject(a, "blas", beit_blas_describe());
  cJSON_AddItemToObject(j, "beit_train_args", a);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  return s;
}

int trainer_open_model(beit_trainer *t, const beit_config *cfg, float layer_decay) {
  const beit_recipe_opts *o = t->o;
  if (beit_model_init(&t->model, cfg) != BEIT_OK || beit_model_reserve(&t->model, o->batch, 1) != BEIT_OK)
    return BEIT_ERR;
  beit_model_init_weights(&t->model, (uint64_t)o->seed, 0.001f);
  beit_optim_cfg oc = {.lr = o->lr, .min_lr = o->min_lr,
                       .warmup_steps = (int64_t)llroundf(o->warmup_epochs * t->steps_per_epoch),
                       .total_steps = t->total_steps, .beta1 = 0.9f, .beta2 = o->beta2, .eps = 1e-8f,
                       .weight_decay = o->weight_decay, .layer_decay = layer_decay, .num_layers = cfg->depth,
                       .clip_grad = o->clip_grad};
  if (beit_optimizer_init(&t->opt, &t->model.params, &oc) != BEIT_OK) return BEIT_ERR;
  int64_t resume_step = -1;
  if (o->resume) {
    char path[1100];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", o->out);
    if (beit_checkpoint_load(path, &t->model.params, &t->opt, &t->st, 1) != BEIT_OK)
      return beit_error_context("--resume");
    if (beit_loader_seek(t->loader, t->st.epoch, t->st.step_in_epoch) != BEIT_OK) return BEIT_ERR;
    resume_step = t->st.step;
    fprintf(stderr, "%s: resuming at step %" PRId64 " (epoch %" PRId64 ", batch %" PRId64 ")\n", t->kind,
            t->st.step, t->st.epoch, t->st.step_in_epoch);
  }
  char *json = trainer_config_json(t);
  int rc = beit_run_open(&t->run, o->out, json, resume_step);
  free(json);
  if (rc != BEIT_OK) return BEIT_ERR;
  fprintf(stderr, "%s: %s, %d blocks x %d wide, %.2f M parameters, %.0f MiB activations; %" PRId64
          " steps (%" PRId64 " per epoch); %s\n", t->kind, o->model, cfg->depth, cfg->dim,
          t->model.params.total / 1e6, beit_model_arena_bytes(&t->model) / 1048576.0, t->total_steps,
          t->steps_per_epoch, beit_blas_describe());
  beit_progress_start(&t->bar, t->kind, t->total_steps * o->batch);
  t->bar.done = t->st.step * o->batch;
  t->bar.enabled = t->bar.enabled && !o->quiet;
  t->t_window = beit_now();
  beit_install_stop_handler();
  return BEIT_OK;
}

/* Names the first tensor whose gradient holds a NaN or an infinity. */
static const char *first_nonfinite_grad(const beit_params *p) {
  for (int i = 0; i < p->n; i++)
    for (size_t k = 0; k < p->t[i].numel; k++)
      if (!isfinite(p->grad[p->t[i].offset + k])) return p->t[i].name;
  return "(none)";
}

/* Metadata of every file a trainer writes: the model config (to rebuild it),
 * the command, the class names (newline-separated) and the input normalisation,
 * so `beit predict` needs nothing but the file. Returns the number of pairs. */
static int trainer_meta(const beit_trainer *t, const char **kv, char **json, char **names, char *norm, size_t nn) {
  *json = beit_config_to_json(&t->model.cfg);
  size_t len = 1;
  for (int k = 0; k < t->ds.num_classes; k++) len += strlen(t->ds.class_names[k]) + 1;
  *names = calloc(len, 1);
  for (int k = 0; k < t->ds.num_classes; k++) {
    if (k) strcat(*names, "\n");
    strcat(*names, t->ds.class_names[k]);
  }
  snprintf(norm, nn, "%g %g %g %g %g %g", t->ds.mean[0], t->ds.mean[1], t->ds.mean[2], t->ds.std[0], t->ds.std[1],
           t->ds.std[2]);
  const char *pairs[] = {"config", *json, "command", t->kind, "class_names", *names, "normalize", norm};
  memcpy(kv, pairs, sizeof pairs);
  return 4;
}

int trainer_save_weights(beit_trainer *t, const char *name) {
  char path[1100], *json, *names, norm[128];
  const char *kv[8];
  int n = trainer_meta(t, kv, &json, &names, norm, sizeof norm);
  beit_run_path(&t->run, name, path, sizeof path);
  int rc = beit_params_save(&t->model.params, path, kv, n);
  free(json), free(names);
  return rc;
}

int trainer_save(beit_trainer *t) {
  char path[1100], *json, *names, norm[128];
  const char *kv[8];
  int n = trainer_meta(t, kv, &json, &names, norm, sizeof norm);
  beit_run_path(&t->run, "checkpoint.safetensors", path, sizeof path);
  int rc = beit_checkpoint_save(path, &t->model.params, &t->opt, &t->st, kv, n);
  free(json), free(names);
  return rc == BEIT_OK ? trainer_save_weights(t, "model.safetensors") : rc;
}

int trainer_after_step(beit_trainer *t, const beit_batch *b, double loss, const beit_stats *s) {
  const beit_recipe_opts *o = t->o;
  if (!isfinite(loss))
    return beit_errorf("step %" PRId64 ": loss is %g; stopping without saving (the last checkpoint is intact)",
                       t->st.step, loss);
  double lr = beit_lr_at(&t->opt.cfg, t->opt.step);
  double norm = beit_optimizer_step(&t->opt);
  if (!isfinite(norm))
    return beit_errorf("step %" PRId64 ": gradient is not finite (first in '%s'); stopping without saving",
                       t->st.step, first_nonfinite_grad(&t->model.params));
  t->st.step++;
  t->st.epoch = b->epoch;
  t->st.step_in_epoch = b->step + 1;
  t->window_loss += loss;
  t->window_correct += s->correct;
  t->window_count += s->count;
  t->window_images += b->n;
  t->window_steps++;
  char extra[96];
  snprintf(extra, sizeof extra, " loss %.4f", loss);
  beit_progress_update(&t->bar, b->n, extra);
  int last = t->st.step == t->total_steps;
  if (t->window_steps >= o->log_every || last) {
    double now = beit_now();
    beit_run_log(&t->run,
                 "{\"step\": %" PRId64 ", \"epoch\": %" PRId64 ", \"lr\": %.6g, \"loss\": %.6f, \"accuracy\": %.6f, "
                 "\"grad_norm\": %.4f, \"images_per_s\": %.1f}",
                 t->st.step, b->epoch, lr, t->window_loss / t->window_steps,
                 t->window_count ? (double)t->window_correct / t->window_count : 0.0, norm,
                 t->window_images / (now - t->t_window));
    t->t_window = now;
    t->window_loss = 0, t->window_correct = t->window_count = t->window_images = t->window_steps = 0;
  }
  if (o->save_every > 0 && t->st.step % o->save_every == 0 && !last) return trainer_save(t);
  return BEIT_OK;
}

void trainer_close(beit_trainer *t) {
  beit_progress_finish(&t->bar);
  beit_run_close(&t->run);
  beit_optimizer_free(&t->opt);
  beit_model_free(&t->model);
  if (t->loader) beit_loader_close(t->loader);
  beit_dataset_close(&t->ds);
}
