/* tokenizer_vq.c - `beit tokenizer train --type vq`: the vector-quantised
 * tokenizer (src/model/vq.h) trained to reconstruct pixels with AdamW on the
 * network, the codebook initialised by k-means of the first batch's encoder
 * outputs and then moved by EMA, dead codes restarted. One process. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/loader.h"
#include "train/recipes.h"
#include "train/tokenizer_shared.h"

static const float ZERO3[3] = {0, 0, 0}, ONE3[3] = {1, 1, 1};

typedef struct {
  beit_dataset train, test;
  beit_loader *loader;
  vq_tok vq;
  beit_optimizer opt;
  beit_tok_ema ema;
  beit_run run;
  int64_t *hist, *ever;  /* code counts in the log interval / since the start */
  int64_t start, epoch, in_epoch;  /* first step of this process; the loader's position */
} vq_run;

static int open_vq(vq_run *r, beit_tok_train_cfg *c) {
  if (beit_run_claim(&r->run, c->out, c->resume, c->overwrite, 1) || beit_tok_open_data(c, &r->train, &r->test))
    return BEIT_ERR;
  if (c->dv.image_size <= 0 && beit_tok_default_size(c, &r->train, &c->dv.image_size)) return BEIT_ERR;
  c->dv.channels = r->train.channels;
  int64_t outputs = (int64_t)c->batch * dvae_grid_side(&c->dv) * dvae_grid_side(&c->dv);
  if (outputs < c->dv.vocab)
    return beit_errorf("--batch %d gives %lld encoder outputs per step, fewer than --vocab %d (the k-means initial "
                       "codebook needs one per code)", c->batch, (long long)outputs, c->dv.vocab);
  beit_loader_cfg lc;
  beit_loader_defaults(&lc, BEIT_LOAD_TRAIN);
  lc.batch_size = c->batch, lc.image_size = c->dv.image_size, lc.seed = c->seed, lc.num_workers = c->workers;
  lc.aug.scale_min = c->crop_min, lc.aug.hflip = c->hflip, lc.aug.interp = BEIT_INTERP_LANCZOS;
  lc.aug.brightness = lc.aug.contrast = lc.aug.saturation = 0;
  memcpy(lc.mean, ZERO3, sizeof lc.mean), memcpy(lc.std, ONE3, sizeof lc.std);
  if (beit_loader_open(&r->loader, &r->train, &lc)) return BEIT_ERR;
  vq_config vc = {.net = c->dv, .vocab = c->dv.vocab};
  vc.net.vocab = c->code_dim;
  if (vq_create(&r->vq, &vc)) return BEIT_ERR;
  vq_init_weights(&r->vq, c->seed);
  beit_optim_cfg oc = {.lr = c->lr, .min_lr = c->min_lr, .warmup_steps = c->warmup, .total_steps = c->steps,
                       .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = c->weight_decay,
                       .layer_decay = 1.0f, .clip_grad = c->clip_grad};
  if (beit_optimizer_init(&r->opt, &r->vq.net.params, &oc) || beit_tok_ema_init(&r->ema, &r->vq.net.params, c->ema))
    return BEIT_ERR;
  if (c->resume) {  /* weights, AdamW moments, codebook and its EMA sums, weights' EMA, the loader's position */
    beit_train_state st;
    char used[1200];
    beit_ckpt_extra x = beit_tok_ckpt_extra(&r->ema, &r->vq.cb);
    if (beit_checkpoint_resume_x(c->out, &r->vq.net.params, &r->opt, &x, &st, used, sizeof used) ||
        beit_loader_seek(r->loader, st.epoch, st.step_in_epoch))
      return BEIT_ERR;
    r->start = st.step, r->epoch = st.epoch, r->in_epoch = st.step_in_epoch;
    printf("resuming from %s at step %lld\n", used, (long long)st.step);
  }
  if (beit_tok_open_run_folder(&r->run, c, c->resume ? r->start : -1)) return BEIT_ERR;
  r->hist = beit_calloc((size_t)vc.vocab * sizeof(int64_t), "code histogram");
  r->ever = beit_calloc((size_t)vc.vocab * sizeof(int64_t), "code histogram");
  return r->hist && r->ever ? BEIT_OK : BEIT_ERR;
}

static void close_vq(vq_run *r) {
  if (r->loader) beit_loader_close(r->loader);
  beit_optimizer_free(&r->opt);
  beit_tok_ema_free(&r->ema);
  vq_free(&r->vq);
  beit_free(r->hist), beit_free(r->ever);
  beit_dataset_close(&r->train), beit_dataset_close(&r->test);
  beit_run_close(&r->run);
}

static int next_batch(vq_run *r, beit_batch *b) {
  int got = beit_loader_next(r->loader, b);
  if (got == 0) r->epoch++, r->in_epoch = 0, got = beit_loader_next(r->loader, b);  /* the next call: a new epoch */
  r->in_epoch += got == 1;
  return got == 1 ? BEIT_OK : got == 0 ? beit_errorf("the data loader returned an empty epoch") : BEIT_ERR;
}

typedef struct {
  double loss, recon, commit, gnorm;
  int n, restarted;
  double t0;
} vq_interval;

/* One log line: the interval's means, the codes used in it and ever (count and share of V). */
static int log_vq(vq_run *r, vq_interval *iv, int64_t step, double lr, int V, int batch, int *used, int64_t *tokens) {
  int ever;
  double ppl, ppl_ever;
  beit_token_usage(r->hist, V, used, &ppl);
  beit_token_usage(r->ever, V, &ever, &ppl_ever);
  *tokens = 0;
  for (int k = 0; k < V; k++) *tokens += r->hist[k];
  double n = iv->n ? iv->n : 1, el = beit_now() - iv->t0;
  int rc = beit_run_log(&r->run,
                        "{\"step\": %lld, \"loss\": %.6f, \"recon\": %.6f, \"commit\": %.6f, \"lr\": %.3e, "
                        "\"perplexity\": %.2f, \"codes_used\": %d, \"codes_used_share\": %.4f, \"codes_ever\": %d, "
                        "\"codes_ever_share\": %.4f, \"restarted\": %d, \"grad_norm\": %.4f, \"images_per_s\": %.1f}",
                        (long long)step, iv->loss / n, iv->recon / n, iv->commit / n, lr, ppl, *used,
                        (double)*used / V, ever, (double)ever / V, iv->restarted, iv->gnorm / n,
                        el > 0 ? iv->n * batch / el : 0.0);
  memset(iv, 0, sizeof *iv);
  iv->t0 = beit_now();
  memset(r->hist, 0, (size_t)V * sizeof(int64_t));
  return rc;
}

static int vq_step(vq_run *r, const beit_tok_train_cfg *c, const beit_batch *b, int64_t step, vq_stats *st,
                   double *gn, int *restarted) {
  vq_train_opts o = {.beta = c->vq_beta, .decay = c->vq_decay, .dead = c->vq_dead, .seed = c->seed, .step = step};
  beit_params_zero_grad(&r->vq.net.params);
  *gn = NAN, *restarted = 0;
  if (vq_forward_train(&r->vq, b->images, b->n, &o, st)) return isfinite(st->loss) ? BEIT_ERR : BEIT_OK;
  if (vq_backward(&r->vq, &o)) return BEIT_ERR;
  *gn = beit_optimizer_step(&r->opt);
  if (!isfinite(*gn)) return BEIT_OK;
  *restarted = vq_update_codebook(&r->vq, &o);
  return *restarted < 0 ? BEIT_ERR : BEIT_OK;
}

/* OUT/checkpoint.safetensors after `step` updates: the network, AdamW, the quantizer, the EMA, the loader's
 * position. */
static int save_checkpoint(vq_run *r, const beit_tok_train_cfg *c, int64_t step) {
  beit_train_state st = {.step = step, .epoch = r->epoch, .step_in_epoch = r->in_epoch};
  const char *kv[] = {"type", "vq", "data", c->data};
  beit_ckpt_extra x = beit_tok_ckpt_extra(&r->ema, &r->vq.cb);
  return beit_checkpoint_save_kept_x(c->out, 1, &r->vq.net.params, &r->opt, &x, &st, kv, 2);
}

static int vq_loop(vq_run *r, const beit_tok_train_cfg *c) {
  const int V = c->dv.vocab, ntok = dvae_grid_side(&c->dv) * dvae_grid_side(&c->dv);
  const int64_t end = beit_tok_end_step(c);
  beit_progress bar;
  beit_progress_start(&bar, "tokenizer", (end - r->start) * c->batch);
  vq_interval iv = {.t0 = beit_now()};
  int bad = 0, warned = 0;
  for (int64_t step = r->start; step < end; step++) {
    beit_batch b;
    vq_stats st;
    double gn;
    int restarted;
    if (beit_stop_requested()) {
      beit_progress_finish(&bar);
      return save_checkpoint(r, c, step) ? BEIT_ERR : beit_tok_stopped(c, step);
    }
    if (step > r->start && c->save_every && step % c->save_every == 0 && save_checkpoint(r, c, step)) return BEIT_ERR;
    if (next_batch(r, &b)) return BEIT_ERR;
    if (step == 0 && vq_init_codebook(&r->vq, b.images, b.n, c->seed)) return BEIT_ERR;
    if (vq_step(r, c, &b, step, &st, &gn, &restarted)) return BEIT_ERR;
    if (!isfinite(gn)) {
      fprintf(stderr, "%sbeit: warning: step %lld skipped: non-finite loss or gradient norm\n",
              beit_progress_eol(&bar), (long long)step);
      if (++bad >= 10) return beit_errorf("10 non-finite steps in a row at step %lld; lower --lr", (long long)step);
      continue;
    }
    bad = 0;
    beit_tok_ema_update(&r->ema, &r->vq.net.params, step);
    iv.loss += st.loss, iv.recon += st.recon, iv.commit += st.commit, iv.gnorm += gn, iv.n++;
    iv.restarted += restarted;
    for (int i = 0; i < b.n * ntok; i++) r->hist[r->vq.codes[i]]++, r->ever[r->vq.codes[i]]++;
    if ((step + 1) % c->log_every == 0 || step + 1 == end) {
      int used;
      int64_t tokens;
      if (log_vq(r, &iv, step + 1, beit_lr_at(&r->opt.cfg, step), V, c->batch, &used, &tokens)) return BEIT_ERR;
      beit_tok_warn_collapse(used, tokens, step + 1, V, &warned);
    }
    char extra[128];
    snprintf(extra, sizeof extra, "step %lld/%lld, loss %.4f recon %.4f commit %.4f codes %d", (long long)step + 1,
             (long long)c->steps, st.loss, st.recon, st.commit, st.codes_used);
    beit_progress_update(&bar, b.n, extra);
  }
  beit_progress_finish(&bar);
  return BEIT_OK;
}

static int finish_vq(vq_run *r, const beit_tok_train_cfg *c, double seconds) {
  beit_tok_ema_apply(&r->ema, &r->vq.net.params);
  beit_tokenizer t = {.type = BEIT_TOK_VQ, .vq = r->vq};
  memset(&r->vq, 0, sizeof r->vq);
  t.image_size = t.vq.cfg.net.image_size, t.channels = t.vq.cfg.net.channels;
  t.grid = vq_grid_side(&t.vq.cfg), t.vocab = t.vq.cfg.vocab;
  int n = c->eval_images < r->test.n ? c->eval_images : (int)r->test.n, used;
  double mae, ppl;
  int rc = beit_tok_evaluate(&t, &r->test, n, &mae, &used, &ppl);
  const long long steps = (long long)beit_tok_end_step(c);
  return beit_tok_save_trained(c, &t, rc, steps, seconds, n, mae, used, ppl);
}

int beit_tok_train_vq(beit_tok_train_cfg *c) {
  vq_run r;
  memset(&r, 0, sizeof r);
  beit_install_stop_handler();  /* before the folder is opened: a stop from then on saves a checkpoint */
  int rc = open_vq(&r, c);
  double t0 = beit_now();
  if (!rc)
    printf("VQ %dx%dx%d -> %dx%d tokens, vocab %d, codes of %d (l2-normalised, cosine lookup), n_hid %d, %d groups x "
           "%d blocks, %zu parameters; %lld steps of %d\n",
           c->dv.image_size, c->dv.image_size, c->dv.channels, dvae_grid_side(&c->dv), dvae_grid_side(&c->dv),
           c->dv.vocab, c->code_dim, c->dv.n_hid, c->dv.n_groups, c->dv.n_blk_per_group, r.vq.net.params.total,
           (long long)c->steps, c->batch);
  if (!rc) rc = vq_loop(&r, c);
  if (!rc) rc = finish_vq(&r, c, beit_now() - t0);
  close_vq(&r);
  return rc;
}
