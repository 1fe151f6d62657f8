/* optim.c - AdamW over a parameter table with the BEiT schedule: linear warmup
 * from 0, then cosine from lr to min_lr (spec section 6), global-norm clipping,
 * per-tensor weight-decay flags and layer-wise lr decay (spec section 7.2). */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "train/train.h"

/* BEiT's cosine_scheduler: warmup values linspace(0, lr, W) (so step 0 has lr 0),
 * then min + (lr - min)/2 * (1 + cos(pi * i / (T - W))) for i = step - W. */
double beit_lr_at(const beit_optim_cfg *c, int64_t step) {
  if (step < c->warmup_steps) return c->warmup_steps > 1 ? c->lr * (double)step / (c->warmup_steps - 1) : c->lr;
  int64_t span = c->total_steps - c->warmup_steps;
  if (span <= 0) return c->lr;
  double i = (double)(step - c->warmup_steps);
  if (i > span) i = span;
  return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1 + cos(M_PI * i / span));
}

int beit_optimizer_init(beit_optimizer *o, beit_params *p, const beit_optim_cfg *cfg) {
  memset(o, 0, sizeof *o);
  o->p = p;
  o->cfg = *cfg;
  o->be = beit_backend_default();
  o->m = beit_calloc(p->total * sizeof(float), "AdamW first moment");
  o->v = o->m ? beit_calloc(p->total * sizeof(float), "AdamW second moment") : NULL;
  if (!o->v) {
    beit_free(o->m);
    return BEIT_ERR;
  }
  return BEIT_OK;
}

int beit_optimizer_ema_init(beit_optimizer *o, float decay) {
  if (!(o->ema = beit_alloc(o->p->total * sizeof(float), "the EMA of the weights"))) return BEIT_ERR;
  o->ema_decay = decay;
  beit_optimizer_ema_reset(o);
  return BEIT_OK;
}

void beit_optimizer_ema_reset(beit_optimizer *o) {
  if (o->ema) memcpy(o->ema, o->p->data, o->p->total * sizeof(float));
}

void beit_optimizer_free(beit_optimizer *o) {
  beit_free(o->m);
  beit_free(o->v);
  beit_free(o->ema);
  memset(o, 0, sizeof *o);
}

double beit_optimizer_step(beit_optimizer *o) {
  beit_params *p = o->p;
  const beit_optim_cfg *c = &o->cfg;
  const beit_backend *be = o->be;
  double norm = sqrt(be->sum_squares(p->grad, p->total));
  if (!isfinite(norm)) return norm;
  if (c->clip_grad > 0 && norm > c->clip_grad)
    be->scale_inplace(p->grad, p->total, (float)(c->clip_grad / (norm + 1e-6)));
  double lr = beit_lr_at(c, o->step);
  o->step++;
  for (int i = 0; i < p->n; i++) {
    const beit_tensor_info *t = &p->t[i];
    double scale = c->layer_decay > 0 && c->layer_decay != 1 ? pow(c->layer_decay, c->num_layers + 1 - t->layer_id) : 1;
    be->adamw_update(p->data + t->offset, p->grad + t->offset, o->m + t->offset, o->v + t->offset, t->numel,
                     (float)(lr * scale), c->beta1, c->beta2, c->eps, t->decay ? c->weight_decay : 0.0f, o->step);
  }
  if (o->ema) {
    be->scale_inplace(o->ema, p->total, o->ema_decay);
    be->axpy(o->ema, p->data, 1.0f - o->ema_decay, p->total);
  }
  return norm;
}
