/* dvae_ops.c - the dVAE's own kernels: pixel mapping, the Gumbel-softmax latent
 * layer with its KL to the uniform prior, argmax / one-hot codes, code usage, and
 * the logit-Laplace (or MSE) reconstruction loss. Layout [B, V, hw] (ops.h). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "ops/ops.h"

void axpy(float *y, const float *x, float a, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void map_pixels(float *out, const float *x, size_t n, float eps) {
  float scale = 1.0f - 2.0f * eps;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = scale * x[i] + eps;
}

void unmap_pixels(float *images, const float *out, int B, int C, size_t P, float eps) {
  float span = 1.0f - 2.0f * eps;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (size_t i = 0; i < P; i++) {
        float s = 1.0f / (1.0f + expf(-out[((size_t)b * 2 * C + c) * P + i]));
        float v = (s - eps) / span;
        images[((size_t)b * C + c) * P + i] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
}

void argmax_channels(int32_t *codes, const float *x, int B, int V, int hw) {
#pragma omp parallel for schedule(static)
  for (int bp = 0; bp < B * hw; bp++) {
    const float *l = x + (size_t)(bp / hw) * V * hw + bp % hw;
    int best = 0;
    for (int k = 1; k < V; k++)
      if (l[(size_t)k * hw] > l[(size_t)best * hw]) best = k;
    codes[bp] = best;
  }
}

void one_hot_codes(float *z, const int32_t *codes, int B, int V, int hw) {
  memset(z, 0, (size_t)B * V * hw * sizeof(float));
  for (int i = 0; i < B * hw; i++) z[((size_t)(i / hw) * V + codes[i]) * hw + i % hw] = 1.0f;
}

void gumbel_noise(float *g, int B, size_t per_image, uint64_t seed, int64_t step, int shard, int shards) {
  if (shards <= 1) shards = 1, shard = 0;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    beit_rng r;
    beit_rng_seed(&r, seed, BEIT_RNG_GUMBEL, (uint64_t)step, (uint64_t)b * shards + shard);
    float *x = g + (size_t)b * per_image;
    for (size_t i = 0; i < per_image; i++) {
      double u = ((double)(beit_rng_u64(&r) >> 11) + 0.5) * 0x1.0p-53;  /* in (0, 1) */
      x[i] = (float)-log(-log(u));
    }
  }
}

/* out = softmax over k of (l[k] + g[k]) * inv_t at one position (stride hw);
 * returns log of the normaliser of the scaled values (for log-probabilities). */
static double softmax_strided(float *out, const float *l, const float *g, float inv_t, int V, int hw) {
  float mx = -INFINITY;
  for (int k = 0; k < V; k++) {
    float v = (l[(size_t)k * hw] + (g ? g[(size_t)k * hw] : 0.0f)) * inv_t;
    mx = v > mx ? v : mx;
  }
  double sum = 0;
  for (int k = 0; k < V; k++) {
    float e = expf((l[(size_t)k * hw] + (g ? g[(size_t)k * hw] : 0.0f)) * inv_t - mx);
    out[(size_t)k * hw] = e;
    sum += e;
  }
  float inv = (float)(1.0 / sum);
  /* shares below FLT_MIN become 0: at a low Gumbel temperature most of a cell's shares underflow into
     denormals, and the decoder's sgemm over them ran at 60% speed (146 -> 89 img/s at tau 1/16); a
     denormal share changes no normal sum it enters */
  for (int k = 0; k < V; k++) {
    float v = out[(size_t)k * hw] * inv;
    out[(size_t)k * hw] = v < FLT_MIN ? 0.0f : v;
  }
  return mx + log(sum);
}

double gumbel_softmax_forward(float *q, float *z, const float *logits, const float *gumbel, int B, int V, int hw,
                              float tau) {
  double kl = 0, logv = log((double)V);
#pragma omp parallel for schedule(static) reduction(+ : kl)
  for (int bp = 0; bp < B * hw; bp++) {
    size_t o = (size_t)(bp / hw) * V * hw + bp % hw;
    double lse = softmax_strided(q + o, logits + o, NULL, 1.0f, V, hw);
    double s = logv;
    for (int k = 0; k < V; k++) {
      float qk = q[o + (size_t)k * hw];
      if (qk > 0) s += qk * (logits[o + (size_t)k * hw] - lse);
    }
    kl += s;
    softmax_strided(z + o, logits + o, gumbel + o, 1.0f / tau, V, hw);
  }
  return kl;
}

/* d(KL)/d(logits) = q (log q - <q, log q>); the softmax's is z (dz - <z, dz>) / tau */
void gumbel_softmax_backward(float *dlogits, const float *dz, const float *z, const float *q, const float *logits,
                             int B, int V, int hw, float tau, float kl_coef) {
#pragma omp parallel for schedule(static)
  for (int bp = 0; bp < B * hw; bp++) {
    size_t o = (size_t)(bp / hw) * V * hw + bp % hw;
    const float *zo = z + o, *dzo = dz + o, *qo = q + o, *l = logits + o;
    float *dl = dlogits + o;
    double zdz = 0, qlq = 0, mx = -INFINITY, sum = 0;
    for (int k = 0; k < V; k++) mx = l[(size_t)k * hw] > mx ? l[(size_t)k * hw] : mx;
    for (int k = 0; k < V; k++) sum += exp(l[(size_t)k * hw] - mx);
    double lse = mx + log(sum);
    for (int k = 0; k < V; k++) {
      size_t i = (size_t)k * hw;
      zdz += (double)zo[i] * dzo[i];
      if (qo[i] > 0) qlq += qo[i] * (l[i] - lse);
    }
    for (int k = 0; k < V; k++) {
      size_t i = (size_t)k * hw;
      double lq = qo[i] > 0 ? (l[i] - lse) - qlq : 0;
      dl[i] += (float)(zo[i] * (dzo[i] - zdz) / tau + kl_coef * qo[i] * lq);
    }
  }
}

double code_perplexity(const float *q, int B, int V, int hw) {
  double h = 0;
#pragma omp parallel for schedule(static) reduction(+ : h)
  for (int k = 0; k < V; k++) {
    double s = 0;
    for (int b = 0; b < B; b++)
      for (int p = 0; p < hw; p++) s += q[((size_t)b * V + k) * hw + p];
    s /= (double)B * hw;
    if (s > 0) h -= s * log(s);
  }
  return exp(h);
}

void code_mean(float *qbar, const float *q, int B, int V, int hw) {
#pragma omp parallel for schedule(static)
  for (int k = 0; k < V; k++) {
    double s = 0;
    for (int b = 0; b < B; b++)
      for (int p = 0; p < hw; p++) s += q[((size_t)b * V + k) * hw + p];
    qbar[k] = (float)(s / ((double)B * hw));
  }
}

/* A code no position uses has qbar 0: its ln is clamped (1e-30), so its gradient pulls it up, finitely. */
void code_usage_kl_backward(float *dlogits, const float *q, const float *qbar, int B, int V, int hw, float coef) {
#pragma omp parallel for schedule(static)
  for (int bp = 0; bp < B * hw; bp++) {
    size_t o = (size_t)(bp / hw) * V * hw + bp % hw;
    double qg = 0;
    for (int k = 0; k < V; k++) qg += q[o + (size_t)k * hw] * log(qbar[k] > 1e-30f ? qbar[k] : 1e-30);
    for (int k = 0; k < V; k++) {
      size_t i = o + (size_t)k * hw;
      dlogits[i] += (float)(coef * q[i] * (log(qbar[k] > 1e-30f ? qbar[k] : 1e-30) - qg));
    }
  }
}

int distinct_codes(uint8_t *seen, const int32_t *codes, int n, int V) {
  int used = 0;
  memset(seen, 0, (size_t)V);
  for (int i = 0; i < n; i++)
    if (!seen[codes[i]]) seen[codes[i]] = 1, used++;
  return used;
}

/* Laplace: dmu = sign(mu - logit x) / b, d(ln b) = 1 - |logit x - mu| / b (per value,
 * over the mean's count); MSE: chain rule through the sigmoid. */
double recon_loss_forward(float *dout, const float *x, const float *out, int B, int C, size_t P, int laplace) {
  const size_t N = (size_t)B * C * P;
  const double inv_n = 1.0 / (double)N;
  double total = 0;
#pragma omp parallel for collapse(2) schedule(static) reduction(+ : total)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      const float *xc = x + ((size_t)b * C + c) * P;
      const float *mu = out + ((size_t)b * 2 * C + c) * P, *lb = mu + C * P;
      float *dmu = dout + ((size_t)b * 2 * C + c) * P, *dlb = dmu + C * P;
      for (size_t i = 0; i < P; i++) {
        double xi = xc[i];
        if (laplace) {
          double t = log(xi / (1 - xi)), ib = exp(-(double)lb[i]), e = fabs(t - mu[i]) * ib;
          total += e + lb[i] + M_LN2 + log(xi * (1 - xi));
          dmu[i] = (float)((t > mu[i] ? -ib : t < mu[i] ? ib : 0) * inv_n);
          dlb[i] = (float)((1 - e) * inv_n);
        } else {
          double p = 1 / (1 + exp(-(double)mu[i])), r = p - xi;
          total += r * r;
          dmu[i] = (float)(2 * r * p * (1 - p) * inv_n);
          dlb[i] = 0;
        }
      }
    }
  return total * inv_n;
}
