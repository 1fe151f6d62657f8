/* tokenizer_eval.c - what a visual tokenizer is worth on a dataset split: the
 * share of its codebook the tokens use, the perplexity of the code histogram,
 * and the reconstruction error (MAE, PSNR) of tokenizers that decode. Behind
 * `beit tokenizer eval`. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "data/augment.h"
#include "data/loader.h"
#include "train/tokenizer.h"

int beit_tokenizer_can_decode(const beit_tokenizer *t) {
  if (t->type == BEIT_TOK_VQ) return 1;
  if (t->type == BEIT_TOK_DVAE) return t->dv.has_decoder;
  return t->type == BEIT_TOK_KMEANS && t->km.cfg.normalize == KMEANS_NORM_NONE;
}

typedef struct {
  float *x, *rec;
  int32_t *tok;
  int64_t *hist;
  double abs_sum, sq_sum, seconds;
} eval_bufs;

/* One batch: encode, count the codes, decode and add the errors. */
static int eval_batch(beit_tokenizer *t, eval_bufs *e, int nb, int decode) {
  size_t img = (size_t)t->channels * t->image_size * t->image_size, ntok = (size_t)nb * t->grid * t->grid;
  double t0 = beit_now();
  if (beit_tokenizer_encode(t, e->x, nb, e->tok) || (decode && beit_tokenizer_decode(t, e->tok, nb, e->rec)))
    return BEIT_ERR;
  e->seconds += beit_now() - t0;
  for (size_t i = 0; i < ntok; i++) e->hist[e->tok[i]]++;
  for (size_t i = 0; decode && i < (size_t)nb * img; i++) {
    double d = (double)e->rec[i] - e->x[i];
    e->abs_sum += fabs(d), e->sq_sum += d * d;
  }
  return BEIT_OK;
}

int beit_tokenizer_eval(beit_tokenizer *t, const beit_dataset *ds, int64_t n, int batch, beit_tok_eval *r) {
  memset(r, 0, sizeof *r);
  if (ds->channels != t->channels)
    return beit_errorf("dataset %s has %d channel(s) but the tokenizer expects %d", ds->name, ds->channels,
                       t->channels);
  if (batch < 1) return beit_errorf("beit_tokenizer_eval: batch %d", batch);
  n = n <= 0 || n > ds->n ? ds->n : n;
  if (n < 1) return beit_errorf("dataset %s has no images to evaluate", ds->name);
  int decode = beit_tokenizer_can_decode(t);
  size_t img = (size_t)t->channels * t->image_size * t->image_size;
  eval_bufs e = {0};
  e.x = beit_alloc((size_t)batch * img * sizeof(float), "eval images");
  e.rec = decode ? beit_alloc((size_t)batch * img * sizeof(float), "eval reconstructions") : NULL;
  e.tok = beit_alloc((size_t)batch * t->grid * t->grid * sizeof(int32_t), "eval tokens");
  e.hist = beit_calloc((size_t)t->vocab * sizeof(int64_t), "code histogram");
  int rc = e.x && e.tok && e.hist && (e.rec || !decode) ? BEIT_OK : BEIT_ERR;
  static const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
  beit_eval_prep prep = beit_eval_prep_make(t->image_size, 1.0f, zero, one);
  beit_progress bar;
  beit_progress_start(&bar, "eval", n);
  for (int64_t b0 = 0; !rc && b0 < n; b0 += batch) {
    int nb = (int)(n - b0 < batch ? n - b0 : batch);
    rc = beit_eval_images(ds, b0, nb, &prep, e.x, NULL);
    if (!rc) rc = eval_batch(t, &e, nb, decode);
    beit_progress_update(&bar, nb, NULL);
  }
  beit_progress_finish(&bar);
  if (!rc) {
    double values = (double)n * img, mse = e.sq_sum / values;
    r->images = n, r->tokens = n * t->grid * t->grid;
    beit_token_usage(e.hist, t->vocab, &r->used, &r->perplexity);
    r->mae = decode ? e.abs_sum / values : NAN;
    r->psnr = !decode ? NAN : mse > 0 ? 10 * log10(1.0 / mse) : INFINITY;
    r->seconds_per_image = e.seconds / n;
  }
  beit_free(e.x), beit_free(e.rec), beit_free(e.tok), beit_free(e.hist);
  return rc;
}
