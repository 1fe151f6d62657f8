/* visualize.c - attention overlays and training curves (see visualize.h). */
#include "train/visualize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/image.h"
#include "io/text.h"

#define SCALE 4  /* display pixels per image pixel for small images */

/* Heat colour for t in [0, 1] (black-red-yellow-white). */
static void heat(float t, uint8_t rgb[3]) {
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  rgb[0] = (uint8_t)(255 * fminf(1, 3 * t));
  rgb[1] = (uint8_t)(255 * fminf(1, fmaxf(0, 3 * t - 1)));
  rgb[2] = (uint8_t)(255 * fmaxf(0, 3 * t - 2));
}

/* Draws the image (de-normalised, through tmp: [C, S, S] scratch) and, if att
 * != NULL, blends the patch attention map [g*g] over it, normalised to its own maximum. */
static void draw_cell(beit_canvas *cv, int x, int y, int side, const float *img, int C, int S, const float mean[3],
                      const float std[3], const float *att, int g, float *tmp) {
  for (int c = 0; c < C; c++)
    for (int i = 0; i < S * S; i++) tmp[(size_t)c * S * S + i] = img[(size_t)c * S * S + i] * std[c] + mean[c];
  beit_canvas_blit_f32(cv, x, y, side, side, tmp, S, S, C, 0, 1);
  if (!att) return;
  float mx = 1e-12f;
  for (int q = 0; q < g * g; q++) mx = fmaxf(mx, att[q]);
  int cell = side / g;
  for (int q = 0; q < g * g; q++) {
    uint8_t rgb[3];
    heat(att[q] / mx, rgb);
    beit_canvas_tint(cv, x + (q % g) * cell, y + (q / g) * cell, cell, cell, rgb, 0.6f);
  }
}

int beit_attention_png(beit_model *m, const float *images, int n, const float mean[3], const float std[3],
                       const char *path) {
  const beit_config *c = &m->cfg;
  int S = c->image_size, C = c->channels, H = c->heads, N = m->tokens, g = m->grid;
  if (n > m->max_batch) n = m->max_batch;
  /* encoder only: works for classifiers and pretrained (MIM) checkpoints alike */
  if (beit_encode(m, images, n) != BEIT_OK) return BEIT_ERR;
  const float *att = beit_attention(m, c->depth - 1);  /* [B, H, N, N] */
  int side = S * (S < 64 ? SCALE : 1);
  side -= side % g;
  beit_grid grid = {.rows = n, .cols = H + 2, .cell_w = side, .cell_h = side, .pad = 4, .margin = 8};
  int w, h;
  beit_grid_size(&grid, &w, &h);
  beit_canvas cv;
  const uint8_t bg[3] = {255, 255, 255};
  if (beit_canvas_init(&cv, w, h, bg) != BEIT_OK) return BEIT_ERR;
  float *row = beit_alloc((size_t)(H + 1) * g * g * sizeof(float), "attention maps");
  float *tmp = beit_alloc((size_t)C * S * S * sizeof(float), "an image to draw");
  if (!row || !tmp) {
    beit_free(row), beit_free(tmp);
    beit_canvas_free(&cv);
    return BEIT_ERR;
  }
  for (int b = 0; b < n; b++) {
    float *avg = row + (size_t)H * g * g;
    memset(avg, 0, (size_t)g * g * sizeof(float));
    for (int hh = 0; hh < H; hh++) {
      const float *cls_row = att + (((size_t)b * H + hh) * N) * N;  /* query = CLS (token 0) */
      for (int q = 0; q < g * g; q++) {
        row[(size_t)hh * g * g + q] = cls_row[1 + q];
        avg[q] += cls_row[1 + q] / H;
      }
    }
    const float *img = images + (size_t)b * C * S * S;
    for (int k = 0; k < H + 2; k++) {
      int x, y;
      beit_grid_cell(&grid, b * (H + 2) + k, &x, &y);
      draw_cell(&cv, x, y, side, img, C, S, mean, std, k == 0 ? NULL : row + (size_t)(k - 1) * g * g, g, tmp);
    }
  }
  beit_free(row), beit_free(tmp);
  int rc = beit_canvas_save_png(&cv, path);
  beit_canvas_free(&cv);
  return rc;
}

/* ---- curves ---- */
typedef struct { double *x, *y; int n, cap; } series;

static int open_log(const char *run, FILE **f) {
  char path[1100];
  snprintf(path, sizeof path, "%s/log.jsonl", run);
  *f = beit_fopen_read(path);  /* names the path; refuses a FIFO instead of blocking on it */
  return *f ? BEIT_OK : BEIT_ERR;
}

int beit_plot_run_readable(const char *run) {
  FILE *f;
  if (open_log(run, &f) != BEIT_OK) return BEIT_ERR;
  fclose(f);
  return BEIT_OK;
}

static int read_series(const char *run, const char *field, series *s) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", field);
  memset(s, 0, sizeof *s);
  FILE *f;
  if (open_log(run, &f) != BEIT_OK) return BEIT_ERR;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    const char *st = strstr(line, "\"step\":"), *v = strstr(line, key);
    if (!st || !v) continue;
    char *end;
    double y = strtod(v + strlen(key), &end);
    if (end == v + strlen(key)) continue;  /* null: every step of the window was skipped as non-finite */
    if (s->n == s->cap) {
      s->cap = s->cap ? 2 * s->cap : 256;
      double *x = realloc(s->x, (size_t)s->cap * sizeof(double)), *yy = x ? realloc(s->y, (size_t)s->cap * sizeof(double)) : NULL;
      if (x) s->x = x;
      if (yy) s->y = yy;
      if (!x || !yy) {
        fclose(f);
        return beit_errorf("%s: out of memory reading its log", run);
      }
    }
    s->x[s->n] = strtod(st + 7, NULL);
    s->y[s->n] = y;
    s->n++;
  }
  fclose(f);
  return BEIT_OK;
}

static void plot_line(beit_canvas *cv, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
  int steps = abs(x1 - x0) > abs(y1 - y0) ? abs(x1 - x0) : abs(y1 - y0);
  for (int i = 0; i <= steps; i++) {
    int x = x0 + (steps ? (x1 - x0) * i / steps : 0), y = y0 + (steps ? (y1 - y0) * i / steps : 0);
    beit_canvas_fill(cv, x - 1, y - 1, 2, 2, rgb);
  }
}

/* A round tick spacing (1, 2 or 5 x 10^k) giving about `want` ticks over a span. */
static double tick_step(double span, int want) {
  double raw = span / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* The chart: value ranges rounded out to whole ticks, and the pixel box. */
typedef struct {
  double xhi, ylo, yhi, xstep, ystep;
  int L, T, PW, PH;
} chart;

static int px(const chart *c, double x) { return c->L + (int)lround(c->PW * x / c->xhi); }
static int py(const chart *c, double y) { return c->T + c->PH - (int)lround(c->PH * (y - c->ylo) / (c->yhi - c->ylo)); }

static void chart_range(chart *c, double xmax, double ymin, double ymax) {
  if (ymax - ymin < 1e-12 * fmax(1, fabs(ymax))) {  /* one value: a band around it */
    double pad = ymax != 0 ? fabs(ymax) * 0.1 : 0.5;
    ymin -= pad, ymax += pad;
  }
  c->xstep = tick_step(xmax, 6), c->ystep = tick_step(ymax - ymin, 5);
  c->xhi = ceil(xmax / c->xstep - 1e-9) * c->xstep;
  c->ylo = floor(ymin / c->ystep + 1e-9) * c->ystep, c->yhi = ceil(ymax / c->ystep - 1e-9) * c->ystep;
  if (c->yhi <= c->ylo) c->yhi = c->ylo + c->ystep;
}

static void draw_axes(beit_canvas *cv, const chart *c, const char *field) {
  const uint8_t grid[3] = {225, 225, 225}, black[3] = {0, 0, 0}, ink[3] = {60, 60, 60};
  char label[32];
  for (long k = lround(c->ylo / c->ystep); k * c->ystep <= c->yhi + 1e-9 * c->ystep; k++) {
    int y = py(c, k * c->ystep);
    beit_canvas_fill(cv, c->L, y, c->PW, 1, grid);
    beit_canvas_fill(cv, c->L - 4, y, 4, 1, black);
    snprintf(label, sizeof label, "%.4g", k * c->ystep);
    beit_canvas_text(cv, c->L - 7 - beit_text_width(label, 1), y - BEIT_GLYPH_H / 2, label, ink, 1);
  }
  for (long k = 0; k * c->xstep <= c->xhi + 1e-9 * c->xstep; k++) {
    int x = px(c, k * c->xstep);
    beit_canvas_fill(cv, x, c->T, 1, c->PH, grid);
    beit_canvas_fill(cv, x, c->T + c->PH, 1, 4, black);
    snprintf(label, sizeof label, "%.6g", k * c->xstep);
    beit_canvas_text(cv, x - beit_text_width(label, 1) / 2, c->T + c->PH + 7, label, ink, 1);
  }
  beit_canvas_frame(cv, c->L, c->T, c->PW + 1, c->PH + 1, black);
  beit_canvas_text(cv, c->L, 6, field, ink, 2);
  beit_canvas_text(cv, c->L + c->PW / 2 - beit_text_width("step", 1) / 2, c->T + c->PH + 20, "step", ink, 1);
}

#define LEGEND_CHARS 48  /* longer run names keep their end */

static void legend_name(char *out, size_t n, const char *run, int has_values) {
  size_t len = strlen(run);
  while (len > 1 && run[len - 1] == '/') len--;
  if (len > LEGEND_CHARS) snprintf(out, n, "...%.*s", LEGEND_CHARS - 3, run + len - (LEGEND_CHARS - 3));
  else snprintf(out, n, "%.*s", (int)len, run);
  if (!has_values) snprintf(out + strlen(out), n - strlen(out), " (no values)");
}

int beit_plot_png(const char *const *runs, int nruns, const char *field, const char *path) {
  static const uint8_t colors[6][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}, {140, 86, 75}};
  static const char *cname[6] = {"blue", "orange", "green", "red", "purple", "brown"};
  series *s = calloc((size_t)nruns, sizeof *s);
  if (!s) return beit_errorf("out of memory");
  double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
  int rc = BEIT_OK;
  for (int r = 0; r < nruns && rc == BEIT_OK; r++) {
    rc = read_series(runs[r], field, &s[r]);
    for (int i = 0; i < s[r].n; i++) {
      xmax = fmax(xmax, s[r].x[i]);
      ymin = fmin(ymin, s[r].y[i]);
      ymax = fmax(ymax, s[r].y[i]);
    }
  }
  if (rc == BEIT_OK && !(ymax >= ymin))
    rc = nruns == 1 ? beit_errorf("no '%s' values in %s/log.jsonl", field, runs[0])
                    : beit_errorf("no '%s' values in the logs of the %d runs", field, nruns);
  chart c = {.L = 64, .T = 32, .PW = 560, .PH = 320};
  char name[LEGEND_CHARS + 16];
  int legend_w = 0;
  for (int r = 0; r < nruns; r++) {
    legend_name(name, sizeof name, runs[r], s[r].n > 0);
    int w = beit_text_width(name, 1);
    if (w > legend_w) legend_w = w;
  }
  beit_canvas cv;
  const uint8_t white[3] = {255, 255, 255}, ink[3] = {60, 60, 60};
  if (rc == BEIT_OK) rc = beit_canvas_init(&cv, c.L + c.PW + 40 + legend_w + 16, c.T + c.PH + 40, white);
  if (rc == BEIT_OK) {
    chart_range(&c, xmax, ymin, ymax);
    draw_axes(&cv, &c, field);
    printf("%s: x = step 0..%g, y = %s %.4g .. %.4g\n", path, xmax, field, ymin, ymax);
    for (int r = 0; r < nruns; r++) {
      const uint8_t *col = colors[r % 6];
      for (int i = 1; i < s[r].n; i++)
        plot_line(&cv, px(&c, s[r].x[i - 1]), py(&c, s[r].y[i - 1]), px(&c, s[r].x[i]), py(&c, s[r].y[i]), col);
      if (s[r].n == 1) beit_canvas_fill(&cv, px(&c, s[r].x[0]) - 3, py(&c, s[r].y[0]) - 3, 7, 7, col);  /* a point */
      int lx = c.L + c.PW + 16, ly = c.T + 4 + 16 * r;
      beit_canvas_fill(&cv, lx, ly, 12, 9, col);
      legend_name(name, sizeof name, runs[r], s[r].n > 0);
      beit_canvas_text(&cv, lx + 18, ly + 1, name, ink, 1);
      printf("  %-6s %s (last %s %.4g)\n", cname[r % 6], runs[r], field, s[r].n ? s[r].y[s[r].n - 1] : NAN);
    }
    rc = beit_canvas_save_png(&cv, path);
    beit_canvas_free(&cv);
  }
  for (int r = 0; r < nruns; r++) free(s[r].x), free(s[r].y);
  free(s);
  return rc;
}
