/* tokenizer_train.c - the visual tokenizer drivers: a handle over the dVAE and
 * k-means tokenizers, token files, dVAE training (AdamW, Gumbel temperature and
 * KL-weight schedules, codebook usage, JSON-lines log), k-means training, and
 * encoding / reconstructing whole datasets. */
#include "train/tokenizer_shared.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "core/core.h"
#include "core/dist.h"
#include "data/loader.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "train/recipes.h"
#include "train/train.h"

/* ---- the tokenizer handle ----------------------------------------------------- */
static void describe(beit_tokenizer *t) {
  if (t->type == BEIT_TOK_DVAE) {
    t->image_size = t->dv.cfg.image_size, t->channels = t->dv.cfg.channels;
    t->grid = dvae_grid_side(&t->dv.cfg), t->vocab = t->dv.cfg.vocab;
  } else if (t->type == BEIT_TOK_VQ) {
    t->image_size = t->vq.cfg.net.image_size, t->channels = t->vq.cfg.net.channels;
    t->grid = vq_grid_side(&t->vq.cfg), t->vocab = t->vq.cfg.vocab;
  } else {
    t->image_size = t->km.cfg.image_size, t->channels = t->km.cfg.channels;
    t->grid = kmeans_grid_side(&t->km.cfg), t->vocab = t->km.cfg.k;
  }
}

int beit_tokenizer_load(beit_tokenizer *t, const char *path) {
  return beit_tokenizer_load_sized(t, path, BEIT_DALLE_IMAGE_SIZE);
}

int beit_tokenizer_load_sized(beit_tokenizer *t, const char *path, int dalle_size) {
  if (!t || !path) return beit_errorf("beit_tokenizer_load: the %s is NULL", t ? "path" : "tokenizer");
  memset(t, 0, sizeof *t);
  beit_safetensors st;
  if (beit_st_open(&st, path)) return BEIT_ERR;
  const char *type = beit_st_meta(&st, "type");
  int dalle = !type && beit_st_find(&st, "blocks.input.w") >= 0;  /* a converted dall_e encoder.pkl */
  t->type = dalle || (type && !strcmp(type, "dvae")) ? BEIT_TOK_DVAE : type && !strcmp(type, "kmeans") ? BEIT_TOK_KMEANS
          : type && !strcmp(type, "vq") ? BEIT_TOK_VQ : 0;
  if (!t->type)  /* before closing: `type` points into st */
    beit_errorf("%s: metadata type is '%.40s'; expected a tokenizer ('dvae', 'kmeans' or 'vq') or a dall_e "
                "encoder",
                path, type ? type : "(none)");
  beit_st_close(&st);
  if (!t->type) return BEIT_ERR;
  int rc = dalle ? dvae_load_dalle_encoder(&t->dv, path, dalle_size)
           : t->type == BEIT_TOK_DVAE ? dvae_load(&t->dv, path)
           : t->type == BEIT_TOK_VQ ? vq_load(&t->vq, path) : kmeans_load(&t->km, path);
  if (rc) return BEIT_ERR;
  describe(t);
  return BEIT_OK;
}

void beit_tokenizer_free(beit_tokenizer *t) {
  if (t->type == BEIT_TOK_DVAE) dvae_free(&t->dv);
  if (t->type == BEIT_TOK_KMEANS) kmeans_free(&t->km);
  if (t->type == BEIT_TOK_VQ) vq_free(&t->vq);
  memset(t, 0, sizeof *t);
}

/* Misuse (a tokenizer not loaded, NULL buffers, a negative count) is an error, not a crash. */
static int check_call(const beit_tokenizer *t, const void *in, int B, const void *out, const char *fn) {
  if (!t || (t->type != BEIT_TOK_DVAE && t->type != BEIT_TOK_KMEANS && t->type != BEIT_TOK_VQ))
    return beit_errorf("%s: the tokenizer is not loaded (beit_tokenizer_load)", fn);
  if (B < 0) return beit_errorf("%s: a batch of %d images", fn, B);
  if (B > 0 && (!in || !out)) return beit_errorf("%s: the %s buffer is NULL", fn, in ? "output" : "input");
  return BEIT_OK;
}

int beit_tokenizer_encode(beit_tokenizer *t, const float *images, int B, int32_t *tokens) {
  if (check_call(t, images, B, tokens, "beit_tokenizer_encode")) return BEIT_ERR;
  if (t->type == BEIT_TOK_VQ) return vq_encode(&t->vq, images, B, tokens);
  return t->type == BEIT_TOK_DVAE ? dvae_encode(&t->dv, images, B, tokens) : kmeans_encode(&t->km, images, B, tokens);
}

int beit_tokenizer_decode(beit_tokenizer *t, const int32_t *tokens, int B, float *images) {
  if (check_call(t, tokens, B, images, "beit_tokenizer_decode")) return BEIT_ERR;
  if (t->type == BEIT_TOK_VQ) return vq_decode(&t->vq, tokens, B, images);
  return t->type == BEIT_TOK_DVAE ? dvae_decode(&t->dv, tokens, B, images) : kmeans_decode(&t->km, tokens, B, images);
}

/* ---- token files ---------------------------------------------------------------- */
static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int beit_tokens_write(const char *path, const int32_t *tokens, int64_t n, int grid_h, int grid_w, int vocab) {
  if (vocab < 2 || vocab > 65536 || grid_h < 1 || grid_w < 1 || n < 0)
    return beit_errorf("%s: cannot write tokens with vocab %d, grid %dx%d, n %lld", path, vocab, grid_h, grid_w,
                       (long long)n);
  size_t count = (size_t)n * grid_h * grid_w, size = BEIT_TOKENS_HEADER + 2 * count;
  uint8_t *buf = beit_calloc(size, "token file");
  if (!buf) return BEIT_ERR;
  memcpy(buf, BEIT_TOKENS_MAGIC, 8);
  put_u32(buf + 8, BEIT_TOKENS_VERSION), put_u32(buf + 12, (uint32_t)grid_h), put_u32(buf + 16, (uint32_t)grid_w);
  put_u32(buf + 20, (uint32_t)vocab), put_u32(buf + 24, (uint32_t)n), put_u32(buf + 28, (uint32_t)((uint64_t)n >> 32));
  int rc = BEIT_OK;
  for (size_t i = 0; i < count && !rc; i++) {
    if (tokens[i] < 0 || tokens[i] >= vocab) rc = beit_errorf("%s: token %d at %zu is outside 0..%d", path, tokens[i], i, vocab - 1);
    buf[BEIT_TOKENS_HEADER + 2 * i] = (uint8_t)tokens[i], buf[BEIT_TOKENS_HEADER + 2 * i + 1] = (uint8_t)(tokens[i] >> 8);
  }
  if (!rc) rc = beit_write_file_atomic(path, buf, size);
  beit_free(buf);
  return rc;
}

static int parse_token_header(const char *path, const uint8_t *buf, size_t size, beit_token_file *tf) {
  if (size < BEIT_TOKENS_HEADER || memcmp(buf, BEIT_TOKENS_MAGIC, 8))
    return beit_errorf("%s: not a beit token file (bad magic or shorter than %d bytes)", path, BEIT_TOKENS_HEADER);
  uint32_t version = get_u32(buf + 8);
  if (version != BEIT_TOKENS_VERSION) return beit_errorf("%s: token file version %u (expected 1)", path, version);
  uint64_t gh = get_u32(buf + 12), gw = get_u32(buf + 16), vocab = get_u32(buf + 20);
  uint64_t n = get_u32(buf + 24) | (uint64_t)get_u32(buf + 28) << 32;
  if (gh < 1 || gw < 1 || gh > 4096 || gw > 4096 || vocab < 2 || vocab > 65536)
    return beit_errorf("%s: bad header: grid %llux%llu, vocab %llu", path, (unsigned long long)gh,
                       (unsigned long long)gw, (unsigned long long)vocab);
  if (n > (size - BEIT_TOKENS_HEADER) / 2 / (gh * gw) || BEIT_TOKENS_HEADER + 2 * n * gh * gw != size)
    return beit_errorf("%s: %zu bytes, but the header says %llu grids of %llux%llu (%llu bytes)", path, size,
                       (unsigned long long)n, (unsigned long long)gh, (unsigned long long)gw,
                       (unsigned long long)(BEIT_TOKENS_HEADER + 2 * n * gh * gw));
  tf->n = (int64_t)n, tf->grid_h = (int)gh, tf->grid_w = (int)gw, tf->vocab = (int)vocab;
  return BEIT_OK;
}

int beit_tokens_read(const char *path, beit_token_file *tf) {
  memset(tf, 0, sizeof *tf);
  uint8_t *buf;
  size_t size;
  if (beit_read_file(path, &buf, &size)) return BEIT_ERR;
  int rc = parse_token_header(path, buf, size, tf);
  size_t count = (size_t)tf->n * tf->grid_h * tf->grid_w;
  if (!rc && !(tf->tokens = beit_alloc(count * sizeof(int32_t) + 1, "tokens"))) rc = BEIT_ERR;
  for (size_t i = 0; !rc && i < count; i++) {
    const uint8_t *p = buf + BEIT_TOKENS_HEADER + 2 * i;
    tf->tokens[i] = p[0] | p[1] << 8;
    if (tf->tokens[i] >= tf->vocab)
      rc = beit_errorf("%s: token %d at %zu is outside the vocabulary 0..%d", path, tf->tokens[i], i, tf->vocab - 1);
  }
  beit_free(buf);
  if (rc) beit_tokens_free(tf);
  return rc;
}

void beit_tokens_free(beit_token_file *tf) {
  beit_free(tf->tokens);
  memset(tf, 0, sizeof *tf);
}

void beit_token_usage(const int64_t *hist, int vocab, int *used, double *perplexity) {
  int64_t total = 0;
  *used = 0;
  for (int k = 0; k < vocab; k++) total += hist[k], *used += hist[k] > 0;
  double h = 0;
  for (int k = 0; k < vocab; k++)
    if (hist[k]) h -= (double)hist[k] / total * log((double)hist[k] / total);
  *perplexity = exp(h);
}

/* ---- whole datasets ------------------------------------------------------------- */
static const float ZERO3[3] = {0, 0, 0}, ONE3[3] = {1, 1, 1};

static int check_channels(const beit_tokenizer *t, const beit_dataset *ds) {
  if (ds->channels != t->channels)
    return beit_errorf("dataset %s has %d channel(s) but the tokenizer expects %d", ds->name, ds->channels,
                       t->channels);
  return BEIT_OK;
}

/* Images [first, first+count) through the eval transform, as [0,1] floats. */
static int eval_images(const beit_tokenizer *t, const beit_dataset *ds, int64_t first, int count, float *out) {
  beit_eval_prep prep = beit_eval_prep_make(t->image_size, 1.0f, ZERO3, ONE3);
  return beit_eval_images(ds, first, count, &prep, out, NULL);
}

int beit_tokenizer_encode_dataset(beit_tokenizer *t, const beit_dataset *ds, int batch, const char *out_path) {
  if (check_channels(t, ds)) return BEIT_ERR;
  size_t img = (size_t)t->channels * t->image_size * t->image_size, per = (size_t)t->grid * t->grid;
  float *x = beit_alloc((size_t)batch * img * sizeof(float), "encode batch");
  int32_t *tok = beit_alloc((size_t)ds->n * per * sizeof(int32_t) + 1, "tokens");
  int64_t *hist = beit_calloc((size_t)t->vocab * sizeof(int64_t), "token histogram");
  int rc = x && tok && hist ? BEIT_OK : BEIT_ERR;
  beit_progress bar;
  beit_progress_start(&bar, "encode", ds->n);
  for (int64_t b0 = 0; !rc && b0 < ds->n; b0 += batch) {
    int nb = (int)(ds->n - b0 < batch ? ds->n - b0 : batch);
    rc = eval_images(t, ds, b0, nb, x);
    if (!rc) rc = beit_tokenizer_encode(t, x, nb, tok + (size_t)b0 * per);
    beit_progress_update(&bar, nb, NULL);
  }
  beit_progress_finish(&bar);
  if (!rc) rc = beit_tokens_write(out_path, tok, ds->n, t->grid, t->grid, t->vocab);
  if (!rc) {
    for (size_t i = 0; i < (size_t)ds->n * per; i++) hist[tok[i]]++;
    int used;
    double ppl;
    beit_token_usage(hist, t->vocab, &used, &ppl);
    printf("encoded %lld images to %dx%d tokens: %s (codebook: %d of %d codes used, %.1f%%, perplexity %.1f)\n",
           (long long)ds->n, t->grid, t->grid, out_path, used, t->vocab, 100.0 * used / t->vocab, ppl);
  }
  beit_free(x), beit_free(tok), beit_free(hist);
  return rc;
}

static int save_pairs_png(const char *png, const float *orig, const float *rec, int n, int C, int S) {
  const int pairs_per_row = 8, scale = S < 64 ? 2 : 1;
  beit_grid g = {.rows = (n + pairs_per_row - 1) / pairs_per_row, .cols = 2 * (n < pairs_per_row ? n : pairs_per_row),
                 .cell_w = S * scale, .cell_h = S * scale, .pad = 2, .margin = 4};
  int w, h;
  beit_grid_size(&g, &w, &h);
  beit_canvas cv;
  const uint8_t bg[3] = {255, 255, 255}, frame[3] = {200, 60, 60};
  if (beit_canvas_init(&cv, w, h, bg)) return BEIT_ERR;
  size_t img = (size_t)C * S * S;
  for (int i = 0; i < n; i++) {
    int x, y;
    beit_grid_cell(&g, 2 * i, &x, &y);
    beit_canvas_blit_f32(&cv, x, y, g.cell_w, g.cell_h, orig + i * img, S, S, C, 0, 1);
    beit_grid_cell(&g, 2 * i + 1, &x, &y);
    beit_canvas_blit_f32(&cv, x, y, g.cell_w, g.cell_h, rec + i * img, S, S, C, 0, 1);
    beit_canvas_frame(&cv, x - 1, y - 1, g.cell_w + 2, g.cell_h + 2, frame);
  }
  int rc = beit_canvas_save_png(&cv, png);
  beit_canvas_free(&cv);
  return rc;
}

int beit_tokenizer_reconstruct(beit_tokenizer *t, const beit_dataset *ds, int64_t first, int n, const char *png,
                               double *mae) {
  if (check_channels(t, ds)) return BEIT_ERR;
  if (first < 0 || first + n > ds->n || n < 1)
    return beit_errorf("images %lld..%lld are outside the %lld of %s", (long long)first, (long long)(first + n - 1),
                       (long long)ds->n, ds->name);
  size_t img = (size_t)t->channels * t->image_size * t->image_size;
  float *x = beit_alloc((size_t)n * img * sizeof(float), "images"), *r = beit_alloc((size_t)n * img * sizeof(float), "recon");
  int32_t *tok = beit_alloc((size_t)n * t->grid * t->grid * sizeof(int32_t), "tokens");
  int rc = x && r && tok ? eval_images(t, ds, first, n, x) : BEIT_ERR;
  if (!rc) rc = beit_tokenizer_encode(t, x, n, tok);
  if (!rc) rc = beit_tokenizer_decode(t, tok, n, r);
  if (!rc) {
    double s = 0;
    for (size_t i = 0; i < (size_t)n * img; i++) s += fabs(r[i] - x[i]);
    *mae = s / ((double)n * img);
    if (png) rc = save_pairs_png(png, x, r, n < BEIT_RECON_PNG_MAX ? n : BEIT_RECON_PNG_MAX, t->channels, t->image_size);
  }
  beit_free(x), beit_free(r), beit_free(tok);
  return rc;
}

/* ---- training: schedules, log --------------------------------------------------- */
void beit_tok_train_defaults(beit_tok_train_cfg *c) {
  memset(c, 0, sizeof *c);
  c->data = "fashion-mnist", c->out = "runs/tok", c->type = BEIT_TOK_DVAE;
  dvae_config_small(&c->dv);
  c->dv.image_size = 0, c->dv.vocab = 0;
  c->steps = 1200, c->batch = 64;
  c->lr = 2e-3f, c->min_lr = 1e-5f, c->weight_decay = 1e-4f, c->clip_grad = 0, c->warmup = 100;
  c->tau_start = 1.0f, c->tau_end = 1.0f / 16, c->tau_steps = 0;
  /* the usage KL, at once: a KL ramped from 0 lets the codebook collapse in the first 50 steps (docs/tokenizer.md) */
  c->kl_usage = 1, c->beta = 10.0f, c->kl_warmup = 0;
  c->crop_min = 0.5f, c->hflip = 0.5f;
  c->log_every = 50, c->eval_images = 1000, c->seed = 0, c->workers = 1, c->save_every = BEIT_TOK_SAVE_EVERY;
  c->km = (kmeans_config){.image_size = 0, .channels = 1, .patch = 4, .k = 512, .normalize = KMEANS_NORM_PATCH};
  c->km_iters = 20, c->km_images = 10000, c->km_max_patches = 200000;
  c->code_dim = 32, c->vq_beta = 0.25f, c->vq_decay = 0.99f, c->vq_dead = 0.5f;
}

/* cosine from a (t = 0) to b (t >= T) */
static double cosine_ramp(double a, double b, int64_t t, int64_t T) {
  if (T <= 0 || t >= T) return b;
  return b + 0.5 * (a - b) * (1 + cos(M_PI * (double)t / (double)T));
}

typedef struct {
  double loss, recon, kl, ppl, gnorm;
  int n;
  int64_t *hist, *ever;  /* argmax counts in the interval / since the start */
  double t0;
} interval_stats;

static void interval_add(interval_stats *s, const dvae_stats *st, double gn, const int32_t *tok, int ntok) {
  s->loss += st->loss, s->recon += st->recon, s->kl += st->kl, s->ppl += st->perplexity, s->gnorm += gn, s->n++;
  for (int i = 0; i < ntok; i++) s->hist[tok[i]]++, s->ever[tok[i]]++;
}

/* One JSON line in the run's log (rank 0; the others have none). *used and
 * *tokens: the distinct codes and the tokens counted in the interval. Collective
 * under MPI: the code counts of all ranks. BEIT_ERR when the log write fails. */
static int log_interval(beit_run *run, interval_stats *s, int64_t step, double tau, double beta, double lr,
                        int vocab, int batch, int *used, int64_t *tokens) {
  int ever;
  double ppl_hard, ppl_ever;
  *used = vocab, *tokens = 0;
  int64_t *all_ever = beit_alloc((size_t)vocab * sizeof(int64_t), "code histogram");
  if (!all_ever) return BEIT_OK;  /* only the log line's code counts are lost */
  memcpy(all_ever, s->ever, (size_t)vocab * sizeof(int64_t));
  beit_dist_sum_i64(all_ever, (size_t)vocab);
  beit_dist_sum_i64(s->hist, (size_t)vocab);  /* reset below */
  beit_token_usage(s->hist, vocab, used, &ppl_hard);
  beit_token_usage(all_ever, vocab, &ever, &ppl_ever);
  beit_free(all_ever);
  for (int k = 0; k < vocab; k++) *tokens += s->hist[k];
  double el = beit_now() - s->t0, n = s->n ? s->n : 1;
  int rc = beit_run_log(run,
          "{\"step\": %lld, \"loss\": %.6f, \"recon\": %.6f, \"kl\": %.6f, \"tau\": %.5f, \"beta\": %.5f, "
          "\"lr\": %.3e, \"perplexity\": %.2f, \"codes_used\": %d, \"codes_used_share\": %.4f, \"codes_ever\": %d, "
          "\"codes_ever_share\": %.4f, \"grad_norm\": %.4f, \"images_per_s\": %.1f}",
          (long long)step, s->loss / n, s->recon / n, s->kl / n, tau, beta, lr, s->ppl / n, *used,
          (double)*used / vocab, ever, (double)ever / vocab, s->gnorm / n, el > 0 ? s->n * batch / el : 0.0);
  s->loss = s->recon = s->kl = s->ppl = s->gnorm = 0, s->n = 0, s->t0 = beit_now();
  memset(s->hist, 0, (size_t)vocab * sizeof(int64_t));
  return rc;
}

int beit_tok_open_data(const beit_tok_train_cfg *c, beit_dataset *train, beit_dataset *test) {
  if (beit_dataset_open(train, c->data, 1) || beit_dataset_open(test, c->data, 0)) return BEIT_ERR;
  return beit_recipe_split(train, NULL, c->val_split, 0, c->split_seed, beit_dist_is_root() ? c->out : NULL);
}

/* config.json of a tokenizer run: the settings that made it. Caller frees. */
static char *config_json(const beit_tok_train_cfg *c) {
  cJSON *j = cJSON_CreateObject();
  int km = c->type == BEIT_TOK_KMEANS;
  cJSON_AddStringToObject(j, "type", km ? "kmeans" : c->type == BEIT_TOK_VQ ? "vq" : "dvae");
  cJSON_AddStringToObject(j, "data", c->data);
  cJSON_AddNumberToObject(j, "val_split", (double)c->val_split);
  cJSON_AddNumberToObject(j, "split_seed", (double)c->split_seed);
  if (km) {
    const kmeans_config *k = &c->km;
    const double v[] = {k->image_size, k->channels, k->patch, k->k, c->km_iters, c->km_images, (double)c->km_max_patches,
                        c->eval_images, (double)c->seed};
    const char *names[] = {"image_size", "channels", "patch", "vocab", "iters", "images", "max_patches",
                           "eval_images", "seed"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cJSON_AddNumberToObject(j, names[i], v[i]);
    cJSON_AddStringToObject(j, "normalize", k->normalize == KMEANS_NORM_PATCH ? "patch" : "none");
  } else {
    const dvae_config *d = &c->dv;
    const double v[] = {d->image_size, d->channels, d->n_hid, d->n_init, d->n_blk_per_group, d->n_groups, d->vocab,
                        (double)c->steps, (double)c->max_steps, c->batch, c->lr, c->min_lr, c->weight_decay,
                        c->clip_grad, (double)c->warmup, c->tau_start, c->tau_end, (double)c->tau_steps, c->beta,
                        (double)c->kl_warmup, c->crop_min, c->hflip, c->eval_images, (double)c->seed};
    const char *names[] = {"image_size", "channels", "n_hid", "n_init", "n_blk_per_group", "n_groups", "vocab",
                           "steps", "max_steps", "batch", "lr", "min_lr", "weight_decay",
                           "clip_grad", "warmup", "tau_start", "tau_end", "tau_steps", "beta",
                           "kl_warmup", "crop_min", "hflip", "eval_images", "seed"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cJSON_AddNumberToObject(j, names[i], v[i]);
    cJSON_AddStringToObject(j, "recon", d->recon == DVAE_RECON_MSE ? "mse" : "laplace");
    if (c->type == BEIT_TOK_DVAE) cJSON_AddBoolToObject(j, "straight_through", c->hard);
    if (c->type == BEIT_TOK_DVAE) cJSON_AddStringToObject(j, "kl", c->kl_usage ? "usage" : "cell");
    cJSON_AddNumberToObject(j, "ema", c->ema);
    if (c->type == BEIT_TOK_VQ) {
      cJSON_AddNumberToObject(j, "code_dim", c->code_dim), cJSON_AddNumberToObject(j, "vq_beta", c->vq_beta);
      cJSON_AddNumberToObject(j, "vq_decay", c->vq_decay), cJSON_AddNumberToObject(j, "vq_dead", c->vq_dead);
    }
  }
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  return text;
}

/* config.json and log.jsonl in the claimed run folder, as every training command
 * has them; rank 0 only (the others log nothing: beit_run_log ignores a run
 * without a log). */
static int open_run_folder(beit_run *run, const beit_tok_train_cfg *c, int64_t resume_step) {
  if (!beit_dist_is_root()) return BEIT_OK;
  char *json = config_json(c);
  int rc = json ? beit_run_open(run, json, resume_step) : beit_errorf("out of memory writing config.json");
  free(json);
  return rc;
}

/* The relations between the flags of `beit tokenizer train` that their ranges
 * alone do not catch, named as the user typed them; called before any data is
 * read when --image-size is given, else once the dataset gave the size. */
static int check_flags(const beit_tok_train_cfg *c, int image_size) {
  const char *size_from = c->dv.image_size > 0 || c->km.image_size > 0 ? "--image-size" : "the dataset's image size";
  if (c->type == BEIT_TOK_KMEANS) {
    if (c->km.patch > image_size || image_size % c->km.patch)
      return beit_errorf("%s %d is not a multiple of --patch %d", size_from, image_size, c->km.patch);
    if (c->km_max_patches > 0 && c->km_max_patches < c->km.k)
      return beit_errorf("--max-patches %lld is fewer than --vocab %d (k-means needs a patch per code)",
                         (long long)c->km_max_patches, c->km.k);
    return BEIT_OK;
  }
  int down = 1 << (c->dv.n_groups - 1);
  if (image_size < down || image_size % down)
    return beit_errorf("%s %d is not a multiple of %d, the downsampling of --groups %d", size_from, image_size, down,
                       c->dv.n_groups);
  if (c->dv.n_hid % 4) return beit_errorf("--n-hid %d is not a multiple of 4", c->dv.n_hid);
  return BEIT_OK;
}

#define SIZE_PROBES 16

/* The input side without --image-size: the dataset's fixed size, or, for an image
 * folder, the size its images share (the headers of SIZE_PROBES files spread over
 * it), then checked against the flags. Square images only. */
static int default_size(const beit_tok_train_cfg *c, const beit_dataset *ds, int *size) {
  int h = ds->height, w = ds->width;
  for (int k = 0; ds->kind == BEIT_DS_FOLDER && k < SIZE_PROBES && k < ds->n; k++) {
    int64_t i = ds->n * k / (ds->n < SIZE_PROBES ? ds->n : SIZE_PROBES);
    int ih, iw, ic;
    if (beit_image_probe(ds->paths[i], &ih, &iw, &ic)) return beit_error_context("%s", c->data);
    if (k == 0) h = ih, w = iw;
    else if (ih != h || iw != w)
      return beit_errorf("%s: its images differ in size (%dx%d %s, %dx%d %s); pass --image-size", c->data, w, h,
                         ds->paths[0], iw, ih, ds->paths[i]);
  }
  if (h <= 0 || h != w)
    return beit_errorf("%s has no fixed square image size (%dx%d); pass --image-size", c->data, w, h);
  if (check_flags(c, h)) return BEIT_ERR;
  *size = h;
  return BEIT_OK;
}

/* ---- training: dVAE ------------------------------------------------------------- */
typedef struct {
  beit_dataset train, test;
  beit_loader *loader;
  dvae d;
  beit_optimizer opt;
  interval_stats iv;
  beit_tok_ema ema;
  int64_t start, epoch, in_epoch;  /* first step of this process; the loader's position */
  int stop;  /* under MPI: some rank was asked to stop (agreed in reduce_step) */
  beit_run run;  /* the folder (rank 0): its claim, config.json, log.jsonl */
} dvae_run;

static int open_run(dvae_run *r, beit_tok_train_cfg *c) {
  int root = beit_dist_is_root(), world = beit_dist_world();
  if (c->batch % world)
    return beit_errorf("--batch %d is not a multiple of the %d ranks (each rank takes an equal share of the batch)",
                       c->batch, world);
  if (root && beit_run_claim(&r->run, c->out, c->resume, c->overwrite, 1)) return BEIT_ERR;
  if (beit_tok_open_data(c, &r->train, &r->test)) return BEIT_ERR;
  if (c->dv.image_size <= 0 && default_size(c, &r->train, &c->dv.image_size)) return BEIT_ERR;
  c->dv.channels = r->train.channels;
  if (!c->dv.vocab) c->dv.vocab = c->dv.channels == 3 ? 1024 : 512;  /* colour needs more codes */
  beit_loader_cfg lc;
  beit_loader_defaults(&lc, BEIT_LOAD_TRAIN);
  lc.batch_size = c->batch / world, lc.image_size = c->dv.image_size, lc.seed = c->seed, lc.num_workers = c->workers;
  lc.rank = beit_dist_rank(), lc.world_size = world;
  lc.aug.scale_min = c->crop_min, lc.aug.hflip = c->hflip, lc.aug.interp = BEIT_INTERP_LANCZOS;
  lc.aug.brightness = lc.aug.contrast = lc.aug.saturation = 0;
  memcpy(lc.mean, ZERO3, sizeof lc.mean), memcpy(lc.std, ONE3, sizeof lc.std);
  if (beit_loader_open(&r->loader, &r->train, &lc)) return BEIT_ERR;
  if (dvae_create(&r->d, &c->dv, 1)) return BEIT_ERR;
  dvae_init_weights(&r->d, c->seed);
  beit_dist_bcast(r->d.params.data, r->d.params.total * sizeof(float), 0);  /* the same start on every rank */
  beit_optim_cfg oc = {.lr = c->lr, .min_lr = c->min_lr, .warmup_steps = c->warmup, .total_steps = c->steps,
                       .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = c->weight_decay,
                       .layer_decay = 1.0f, .clip_grad = c->clip_grad};
  if (beit_optimizer_init(&r->opt, &r->d.params, &oc) || beit_tok_ema_init(&r->ema, &r->d.params, c->ema))
    return BEIT_ERR;
  if (c->resume) {  /* the newest checkpoint that loads: weights, AdamW moments, EMA, the loader's position */
    beit_train_state st;
    char used[1200];
    beit_ckpt_extra x = beit_tok_ckpt_extra(&r->ema, NULL);
    if (beit_checkpoint_resume_x(c->out, &r->d.params, &r->opt, &x, &st, used, sizeof used) ||
        beit_loader_seek(r->loader, st.epoch, st.step_in_epoch))
      return BEIT_ERR;
    r->start = st.step, r->epoch = st.epoch, r->in_epoch = st.step_in_epoch;
    if (root) printf("resuming from %s at step %lld\n", used, (long long)st.step);
  }
  if (open_run_folder(&r->run, c, c->resume ? r->start : -1)) return BEIT_ERR;
  r->iv.hist = beit_calloc((size_t)c->dv.vocab * sizeof(int64_t), "code histogram");
  r->iv.ever = beit_calloc((size_t)c->dv.vocab * sizeof(int64_t), "code histogram");
  return r->iv.hist && r->iv.ever ? BEIT_OK : BEIT_ERR;
}

static void close_run(dvae_run *r) {
  if (r->loader) beit_loader_close(r->loader);
  beit_optimizer_free(&r->opt);
  beit_tok_ema_free(&r->ema);
  dvae_free(&r->d);
  beit_free(r->iv.hist), beit_free(r->iv.ever);
  beit_dataset_close(&r->train), beit_dataset_close(&r->test);
  beit_run_close(&r->run);
}

int64_t beit_tok_end_step(const beit_tok_train_cfg *c) {
  return c->max_steps > 0 && c->max_steps < c->steps ? c->max_steps : c->steps;
}

static int next_batch(dvae_run *r, beit_batch *b) {
  int got = beit_loader_next(r->loader, b);
  if (got == 0) r->epoch++, r->in_epoch = 0, got = beit_loader_next(r->loader, b);  /* the next call: a new epoch */
  r->in_epoch += got == 1;
  return got == 1 ? BEIT_OK : got == 0 ? beit_errorf("the data loader returned an empty epoch") : BEIT_ERR;
}

/* A codebook has collapsed when fewer than 5% of its codes are in use, which
 * only says something when the tokens counted could have used that many:
 * 98 tokens (a batch of 2 at 7x7) can use at most 1.2% of 8192 codes. */
static int collapsed(int used, int64_t tokens, int vocab) {
  return used < 0.05 * vocab && tokens >= 0.05 * vocab;
}

static void warn_collapse(int used, int64_t tokens, int64_t step, int vocab, int *warned) {
  if (!collapsed(used, tokens, vocab) || *warned >= 3) return;
  fprintf(stderr, "\nbeit: warning: codebook collapse at step %lld: only %d of the %d codes (%.1f%%) were used by the "
                  "%lld tokens of the last interval (try a larger --beta, a longer --tau-steps or a smaller --lr)\n",
          (long long)step, used, vocab, 100.0 * used / vocab, (long long)tokens);
  (*warned)++;
}

/* Under MPI: the statistics averaged over the ranks (every rank has the same
 * number of images, and every loss term is a mean over images), whether any
 * rank was asked to stop (r->stop, so that all stop at the same step), and the
 * gradient averaged likewise. Returns 0 when some rank's loss was not finite:
 * then every rank skips the step. */
static int reduce_step(dvae_run *r, dvae_stats *st, int finite) {
  int world = beit_dist_world();
  double v[6] = {st->loss, st->recon, st->kl, st->perplexity, !finite, beit_stop_requested()};
  beit_dist_sum_f64(v, 6);
  r->stop = v[5] > 0;
  if (v[4] > 0) return 0;
  st->loss = v[0] / world, st->recon = v[1] / world, st->kl = v[2] / world, st->perplexity = v[3] / world;
  beit_dist_weighted_sum(r->d.params.grad, r->d.params.total, 1.0 / world);
  return 1;
}

/* One update. Returns BEIT_ERR on a hard failure (e.g. memory); a non-finite loss
 * or gradient norm is reported through *gn = NAN and leaves the weights unchanged. */
static int train_step(dvae_run *r, const beit_tok_train_cfg *c, const float *images, int B, int64_t step,
                      dvae_train_opts *o, dvae_stats *st, double *gn) {
  o->tau = (float)cosine_ramp(c->tau_start, c->tau_end, step, c->tau_steps > 0 ? c->tau_steps : c->steps);
  o->beta = (float)cosine_ramp(0, c->beta, step, c->kl_warmup);
  o->seed = c->seed, o->step = step, o->gumbel = NULL, o->hard = c->hard, o->kl_usage = c->kl_usage;
  o->shard = beit_dist_rank(), o->shards = beit_dist_world();
  memset(st, 0, sizeof *st);
  *gn = NAN;
  beit_params_zero_grad(&r->d.params);
  int finite = 1;
  if (dvae_forward_train(&r->d, images, B, o, st)) {
    if (isfinite(st->loss)) return BEIT_ERR;
    finite = 0;
  }
  if (finite && o->kl_usage && beit_dist_world() > 1) {  /* the usage of the whole batch, as one process has it */
    beit_dist_weighted_sum(r->d.qbar, (size_t)c->dv.vocab, 1.0 / beit_dist_world());
    int cells = dvae_grid_side(&c->dv) * dvae_grid_side(&c->dv);
    double values = (double)c->dv.channels * c->dv.image_size * c->dv.image_size;
    st->loss = st->recon + o->beta * cells * dvae_usage_kl(&r->d) / values;
  }
  if (finite && dvae_backward(&r->d, o)) return BEIT_ERR;
  if (beit_dist_world() > 1 ? !reduce_step(r, st, finite) : !finite) {
    st->loss = NAN;
    return BEIT_OK;
  }
  *gn = beit_optimizer_step(&r->opt);
  return BEIT_OK;
}

/* OUT/checkpoint.safetensors after `step` updates (rank 0): weights, AdamW moments, the loader's position. */
static int save_checkpoint(dvae_run *r, const beit_tok_train_cfg *c, int64_t step) {
  if (!beit_dist_is_root()) return BEIT_OK;
  beit_train_state st = {.step = step, .epoch = r->epoch, .step_in_epoch = r->in_epoch};
  const char *kv[] = {"type", "dvae", "data", c->data};
  beit_ckpt_extra x = beit_tok_ckpt_extra(&r->ema, NULL);
  return beit_checkpoint_save_kept_x(c->out, 1, &r->d.params, &r->opt, &x, &st, kv, 2);
}

static int train_loop(dvae_run *r, const beit_tok_train_cfg *c) {
  const int V = c->dv.vocab, ntok = dvae_grid_side(&c->dv) * dvae_grid_side(&c->dv);
  const int root = beit_dist_is_root(), world = beit_dist_world();
  const int64_t end = beit_tok_end_step(c);
  beit_progress bar;
  beit_progress_start(&bar, "tokenizer", (end - r->start) * c->batch);
  bar.enabled = bar.enabled && root;
  r->iv.t0 = beit_now();
  int bad = 0, warned = 0;
  for (int64_t step = r->start; step < end; step++) {
    beit_batch b;
    dvae_train_opts o;
    dvae_stats st;
    double gn;
    if (world > 1 ? r->stop : beit_stop_requested()) {
      beit_progress_finish(&bar);
      return save_checkpoint(r, c, step) ? BEIT_ERR : beit_tok_stopped(c, step);
    }
    if (step > r->start && c->save_every && step % c->save_every == 0 && save_checkpoint(r, c, step)) return BEIT_ERR;
    if (next_batch(r, &b) || train_step(r, c, b.images, b.n, step, &o, &st, &gn)) return BEIT_ERR;
    if (!isfinite(gn)) {
      if (root)
        fprintf(stderr, "%sbeit: warning: step %lld skipped: non-finite %s\n", beit_progress_eol(&bar), (long long)step,
                isfinite(st.loss) ? "gradient norm" : "loss");
      if (++bad >= 10) return beit_errorf("10 non-finite steps in a row at step %lld; lower --lr", (long long)step);
      continue;
    }
    bad = 0;
    beit_tok_ema_update(&r->ema, &r->d.params, step);
    interval_add(&r->iv, &st, gn, r->d.tokens, b.n * ntok);
    if ((step + 1) % c->log_every == 0 || step + 1 == end) {
      int used;
      int64_t tokens;
      if (log_interval(&r->run, &r->iv, step + 1, o.tau, o.beta, beit_lr_at(&r->opt.cfg, step), V, c->batch, &used,
                       &tokens))
        return BEIT_ERR;
      if (step >= c->kl_warmup && root) warn_collapse(used, tokens, step + 1, V, &warned);
    }
    char extra[128];
    snprintf(extra, sizeof extra, "step %lld/%lld, loss %.4f recon %.4f kl %.3f tau %.3f codes %d", (long long)step + 1,
             (long long)c->steps, st.loss, st.recon, st.kl, o.tau, st.codes_used);
    beit_progress_update(&bar, (int64_t)b.n * world, extra);
  }
  beit_progress_finish(&bar);
  return BEIT_OK;
}

/* Codebook usage on the first n test images and, when the tokens can be turned
 * back into pixels, the reconstruction MAE (else NAN). */
static int evaluate(beit_tokenizer *t, const beit_dataset *test, int n, double *mae, int *used, double *ppl) {
  n = n < test->n ? n : (int)test->n;
  size_t img = (size_t)t->channels * t->image_size * t->image_size, per = (size_t)t->grid * t->grid;
  float *x = beit_alloc((size_t)n * img * sizeof(float), "eval images");
  int32_t *tok = beit_alloc((size_t)n * per * sizeof(int32_t), "eval tokens");
  int64_t *hist = beit_calloc((size_t)t->vocab * sizeof(int64_t), "eval histogram");
  int rc = x && tok && hist ? eval_images(t, test, 0, n, x) : BEIT_ERR;
  if (!rc) rc = beit_tokenizer_encode(t, x, n, tok);
  for (size_t i = 0; !rc && i < (size_t)n * per; i++) hist[tok[i]]++;
  if (!rc) beit_token_usage(hist, t->vocab, used, ppl);
  beit_free(x), beit_free(tok), beit_free(hist);
  *mae = NAN;
  if (!rc && beit_tokenizer_can_decode(t)) rc = beit_tokenizer_reconstruct(t, test, 0, n, NULL, mae);
  return rc;
}

static void print_eval(const beit_tokenizer *t, int n, double mae, int used, double ppl) {
  if (isfinite(mae)) printf("test reconstruction MAE %.4f on %d images; ", mae, n);
  printf("test codebook: %d of %d codes used (%.1f%%), perplexity %.1f\n", used, t->vocab, 100.0 * used / t->vocab,
         ppl);
  if (collapsed(used, (int64_t)n * t->grid * t->grid, t->vocab))
    fprintf(stderr, "beit: warning: the codebook collapsed: only %d of %d codes in use\n", used, t->vocab);
}

/* Evaluates, saves OUT/tokenizer.safetensors (the dVAE moves into a handle). */
static int finish_dvae(dvae_run *r, const beit_tok_train_cfg *c, double seconds) {
  beit_tok_ema_apply(&r->ema, &r->d.params);
  beit_tokenizer t = {.type = BEIT_TOK_DVAE, .dv = r->d};
  memset(&r->d, 0, sizeof r->d);
  describe(&t);
  int n = c->eval_images < r->test.n ? c->eval_images : (int)r->test.n, used;
  double mae, ppl;
  int rc = evaluate(&t, &r->test, n, &mae, &used, &ppl);
  return beit_tok_save_trained(c, &t, rc, (long long)beit_tok_end_step(c), seconds, n, mae, used, ppl);
}

static int train_dvae(beit_tok_train_cfg *c) {
  dvae_run r;
  memset(&r, 0, sizeof r);
  beit_install_stop_handler();  /* before the folder is opened: a stop from then on saves a checkpoint */
  int rc = open_run(&r, c), root = beit_dist_is_root();
  double t0 = beit_now();
  if (!rc && root) {
    printf("dVAE %dx%dx%d -> %dx%d tokens, vocab %d, n_hid %d, %d groups x %d blocks, %zu parameters; %lld steps "
           "of %d\n",
           c->dv.image_size, c->dv.image_size, c->dv.channels, dvae_grid_side(&c->dv), dvae_grid_side(&c->dv),
           c->dv.vocab, c->dv.n_hid, c->dv.n_groups, c->dv.n_blk_per_group, r.d.params.total, (long long)c->steps,
           c->batch);
    if (beit_dist_world() > 1) printf("%d ranks x %d images per step (%s)\n", beit_dist_world(),
                                      c->batch / beit_dist_world(), beit_dist_describe());
  }
  if (!rc) rc = train_loop(&r, c);
  if (!rc && !beit_dist_same(r.d.params.data, r.d.params.total * sizeof(float)))
    rc = beit_errorf("the ranks ended with different weights; not saving");
  if (!rc && root) rc = finish_dvae(&r, c, beit_now() - t0);  /* evaluation and the file: rank 0 */
  close_run(&r);
  return rc;
}

/* ---- training: k-means ---------------------------------------------------------- */
static int open_kmeans(beit_tok_train_cfg *c, beit_run *run, beit_dataset *train, beit_dataset *test,
                       beit_tokenizer *t) {
  if (beit_run_claim(run, c->out, 0, c->overwrite, 0) || beit_tok_open_data(c, train, test)) return BEIT_ERR;
  if (c->km.image_size <= 0 && default_size(c, train, &c->km.image_size)) return BEIT_ERR;
  c->km.channels = train->channels;
  int n = c->km_images > 0 && c->km_images < train->n ? c->km_images : (int)train->n;
  int64_t patches = (int64_t)n * (c->km.image_size / c->km.patch) * (c->km.image_size / c->km.patch);
  if (patches < c->km.k)
    return beit_errorf("%d images give %lld patches of --patch %d, fewer than --vocab %d (more --images or a smaller "
                       "--vocab)", n, (long long)patches, c->km.patch, c->km.k);
  t->type = BEIT_TOK_KMEANS;
  if (kmeans_create(&t->km, &c->km)) return BEIT_ERR;
  describe(t);
  return open_run_folder(run, c, -1);
}

static int train_kmeans(beit_tok_train_cfg *c) {
  beit_dataset train, test;
  beit_tokenizer t;
  beit_run run;
  memset(&train, 0, sizeof train), memset(&test, 0, sizeof test), memset(&t, 0, sizeof t), memset(&run, 0, sizeof run);
  float *x = NULL;
  int rc = open_kmeans(c, &run, &train, &test, &t);
  int n = c->km_images > 0 && c->km_images < train.n ? c->km_images : (int)train.n;
  size_t img = (size_t)t.channels * t.image_size * t.image_size, all = (size_t)n * t.grid * t.grid;
  if (!rc && !(x = beit_alloc((size_t)n * img * sizeof(float), "k-means images"))) rc = BEIT_ERR;
  if (!rc) rc = eval_images(&t, &train, 0, n, x);
  double t0 = beit_now();
  kmeans_fit_opts o = {.iters = c->km_iters, .seed = c->seed, .max_patches = (size_t)c->km_max_patches};
  kmeans_fit_stats st = {0};
  if (!rc) rc = kmeans_train(&t.km, x, n, &o, &st);
  double secs = beit_now() - t0, mae, ppl;
  int used, ne = c->eval_images < test.n ? c->eval_images : (int)test.n;
  if (!rc) rc = evaluate(&t, &test, ne, &mae, &used, &ppl);
  char path[1200], v[3][32];
  snprintf(path, sizeof path, "%s/tokenizer.safetensors", c->out);
  snprintf(v[0], sizeof v[0], "%d", n);
  snprintf(v[1], sizeof v[1], "%.6f", st.inertia);
  snprintf(v[2], sizeof v[2], "%d", rc ? 0 : used);
  const char *kv[] = {"train_images", v[0], "inertia", v[1], "test_codes_used", v[2], "data", c->data};
  if (!rc) rc = kmeans_save(&t.km, path, kv, 4);
  char maev[32] = "null";
  if (isfinite(mae)) snprintf(maev, sizeof maev, "%.6f", mae);
  if (!rc)  /* one line: k-means has no steps to log, but a run folder has its log */
    rc = beit_run_log(&run, "{\"step\": %d, \"inertia\": %.6f, \"iters\": %d, \"train_images\": %d, "
                      "\"patches\": %zu, \"empty_reseeded\": %d, \"test_codes_used\": %d, \"test_perplexity\": %.2f, "
                      "\"test_mae\": %s, \"seconds\": %.3f}", st.iters_run, st.inertia, st.iters_run, n,
                      o.max_patches && o.max_patches < all ? o.max_patches : all, st.empty_reseeded, used, ppl, maev,
                      secs);
  if (!rc) {
    printf("k-means: %zu patches (%dx%d) from %d images, k %d, %d Lloyd iterations in %.2f s, inertia %.4f\n",
           o.max_patches && o.max_patches < all ? o.max_patches : all, c->km.patch, c->km.patch, n, c->km.k,
           st.iters_run, secs, st.inertia);
    print_eval(&t, ne, mae, used, ppl);
    printf("saved %s\n", path);
  }
  beit_free(x);
  beit_tokenizer_free(&t);
  beit_dataset_close(&train), beit_dataset_close(&test);
  beit_run_close(&run);
  return rc;
}

int beit_tokenizer_train(const beit_tok_train_cfg *cfg) {
  beit_tok_train_cfg c = *cfg;
  if (c.steps < 1 || c.batch < 1 || c.log_every < 1) return beit_errorf("steps, batch and log interval must be >= 1");
  int size = c.type == BEIT_TOK_KMEANS ? c.km.image_size : c.dv.image_size;
  if (size > 0 && check_flags(&c, size)) return BEIT_ERR;  /* before any data is read */
  if (c.type == BEIT_TOK_KMEANS && beit_dist_world() > 1) {  /* seconds of work: not worth sharding */
    int root = beit_dist_is_root(), rc = BEIT_OK;
    if (root) fprintf(stderr, "beit tokenizer: k-means runs on rank 0 alone\n"), rc = train_kmeans(&c);
    int32_t ok = rc == BEIT_OK;
    beit_dist_bcast(&ok, sizeof ok, 0);  /* the others wait for rank 0's file */
    return root || ok ? rc : beit_errorf("k-means training failed on rank 0");
  }
  /* a failing rank returns BEIT_ERR like any other; the program ends the job (src/cli/fail.c) */
  if (c.type == BEIT_TOK_VQ)
    return beit_dist_world() > 1 ? beit_errorf("--type vq trains in one process (no mpirun)") : beit_tok_train_vq(&c);
  return c.type == BEIT_TOK_KMEANS ? train_kmeans(&c) : train_dvae(&c);
}

/* ---- shared with the VQ trainer (tokenizer_vq.c) --------------------------------- */
int beit_tok_check_flags(const beit_tok_train_cfg *c, int image_size) { return check_flags(c, image_size); }
int beit_tok_default_size(const beit_tok_train_cfg *c, const beit_dataset *ds, int *size) {
  return default_size(c, ds, size);
}
int beit_tok_open_run_folder(beit_run *run, const beit_tok_train_cfg *c, int64_t resume_step) {
  return open_run_folder(run, c, resume_step);
}
int beit_tok_evaluate(beit_tokenizer *t, const beit_dataset *test, int n, double *mae, int *used, double *ppl) {
  return evaluate(t, test, n, mae, used, ppl);
}
int beit_tok_save_trained(const beit_tok_train_cfg *c, beit_tokenizer *t, int rc, long long steps, double seconds,
                          int n, double mae, int used, double ppl) {
  char v[3][32], path[1200];
  snprintf(v[0], sizeof v[0], "%lld", steps);
  snprintf(v[1], sizeof v[1], "%.5f", mae);
  snprintf(v[2], sizeof v[2], "%d", used);
  const char *kv[] = {"steps", v[0], "test_mae", v[1], "test_codes_used", v[2], "data", c->data};
  snprintf(path, sizeof path, "%s/tokenizer.safetensors", c->out);
  const int dv = t->type == BEIT_TOK_DVAE;
  const beit_params *p = dv ? &t->dv.params : &t->vq.net.params;
  int bad = rc ? -1 : beit_params_first_nonfinite(p, p->data);
  if (bad >= 0)
    rc = beit_errorf("%s: %s '%s' holds a NaN or infinity; not writing it", path, dv ? "dVAE parameter" : "parameter",
                     p->t[bad].name);
  if (!rc) rc = dv ? dvae_save(&t->dv, path, kv, 4) : vq_save(&t->vq, path, kv, 4);
  if (!rc) {
    printf("trained %lld steps (%lld images) in %.1f s (%.1f images/s)%s\n", steps, steps * c->batch, seconds,
           steps * c->batch / seconds, steps < c->steps ? " (--max-steps; the schedules span --steps)" : "");
    print_eval(t, n, mae, used, ppl);
    printf("saved %s\n", path);
  }
  beit_tokenizer_free(t);
  return rc;
}
int beit_tok_stopped(const beit_tok_train_cfg *c, int64_t step) {
  if (beit_dist_is_root())
    fprintf(stderr, "tokenizer: stopped by %s at step %lld; checkpoint saved in %s (continue with --resume)\n",
            beit_stop_exit_code() == 128 + SIGINT ? "SIGINT" : "SIGTERM", (long long)step, c->out);
  return BEIT_STOPPED;
}
void beit_tok_warn_collapse(int used, int64_t tokens, int64_t step, int vocab, int *warned) {
  warn_collapse(used, tokens, step, vocab, warned);
}

/* ---- EMA of the weights (dVAE and VQ) ------------------------------------------- */
beit_ckpt_extra beit_tok_ckpt_extra(beit_tok_ema *e, beit_params *more) {
  beit_ckpt_extra x = {{0}, 0};
  if (more) x.t[x.n++] = more;
  if (e->decay) x.t[x.n++] = &e->p;
  return x;
}

int beit_tok_ema_init(beit_tok_ema *e, const beit_params *w, float decay) {
  memset(e, 0, sizeof *e);
  beit_params_init(&e->p);
  if (!(decay > 0)) return BEIT_OK;
  char name[BEIT_NAME_MAX + 8];
  for (int i = 0; i < w->n; i++) {
    snprintf(name, sizeof name, "ema.%s", w->t[i].name);
    beit_params_add(&e->p, name, w->t[i].ndim, w->t[i].shape, 0, 0);
  }
  if (beit_params_alloc_data(&e->p)) return beit_error_context("the weights' EMA");
  e->decay = decay;
  memcpy(e->p.data, w->data, w->total * sizeof(float));  /* same order, same offsets */
  return BEIT_OK;
}

void beit_tok_ema_update(beit_tok_ema *e, const beit_params *w, int64_t step) {
  if (!e->decay) return;
  const beit_backend *be = beit_backend_default();
  double d = (1.0 + (double)step) / (10.0 + (double)step);
  if (d > e->decay) d = e->decay;
  be->scale_inplace(e->p.data, e->p.total, (float)d);
  be->axpy(e->p.data, w->data, (float)(1 - d), e->p.total);
}

void beit_tok_ema_apply(const beit_tok_ema *e, beit_params *w) {
  if (e->decay) memcpy(w->data, e->p.data, w->total * sizeof(float));
}

void beit_tok_ema_free(beit_tok_ema *e) {
  beit_params_free(&e->p);
  memset(e, 0, sizeof *e);
}
