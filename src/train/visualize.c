/* visualize.c - attention overlays and training curves (see visualize.h). */
#include "train/visualize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/image.h"

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
  beit_encode(m, images, n);  /* encoder only: works for classifiers and pretrained (MIM) checkpoints alike */
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

static int read_series(const char *run, const char *field, series *s) {
  char path[1100], key[64];
  snprintf(path, sizeof path, "%s/log.jsonl", run);
  snprintf(key, sizeof key, "\"%s\":", field);
  FILE *f = beit_fopen_read(path);
  if (!f) return BEIT_ERR;
  char line[4096];
  memset(s, 0, sizeof *s);
  while (fgets(line, sizeof line, f)) {
    const char *st = strstr(line, "\"step\":"), *v = strstr(line, key);
    if (!st || !v) continue;
    char *end;
    double y = strtod(v + strlen(key), &end);
    if (end == v + strlen(key)) continue;  /* null: every step of the window was skipped as non-finite */
    if (s->n == s->cap) {
      s->cap = s->cap ? 2 * s->cap : 256;
      s->x = realloc(s->x, (size_t)s->cap * sizeof(double));
      s->y = realloc(s->y, (size_t)s->cap * sizeof(double));
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

int beit_plot_png(const char *const *runs, int nruns, const char *field, const char *path) {
  static const uint8_t colors[6][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189}, {140, 86, 75}};
  series *s = calloc((size_t)nruns, sizeof *s);
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
  if (rc == BEIT_OK && !(ymax >= ymin)) rc = beit_errorf("no '%s' values in the logs of %s", field, runs[0]);
  if (rc == BEIT_OK) {
    if (ymax == ymin) ymax = ymin + 1;
    int W = 640, H = 400, L = 40, T = 20, PW = W - 2 * L, PH = H - 2 * T;
    beit_canvas cv;
    const uint8_t white[3] = {255, 255, 255}, grey[3] = {200, 200, 200}, black[3] = {0, 0, 0};
    rc = beit_canvas_init(&cv, W, H, white);
    if (rc == BEIT_OK) {
      for (int k = 0; k <= 4; k++) beit_canvas_fill(&cv, L, T + PH * k / 4, PW, 1, grey);  /* quarter lines */
      beit_canvas_frame(&cv, L, T, PW, PH, black);
      printf("%s: x = step 0..%g, y = %s %.4g (bottom) .. %.4g (top)\n", path, xmax, field, ymin, ymax);
      for (int r = 0; r < nruns; r++) {
        const uint8_t *col = colors[r % 6];
        for (int i = 1; i < s[r].n; i++)
          plot_line(&cv, L + (int)(PW * s[r].x[i - 1] / xmax), T + PH - (int)(PH * (s[r].y[i - 1] - ymin) / (ymax - ymin)),
                    L + (int)(PW * s[r].x[i] / xmax), T + PH - (int)(PH * (s[r].y[i] - ymin) / (ymax - ymin)), col);
        static const char *cname[6] = {"blue", "orange", "green", "red", "purple", "brown"};
        printf("  %-6s %s (last %s %.4g)\n", cname[r % 6], runs[r], field, s[r].n ? s[r].y[s[r].n - 1] : NAN);
      }
      rc = beit_canvas_save_png(&cv, path);
      beit_canvas_free(&cv);
    }
  }
  for (int r = 0; r < nruns; r++) free(s[r].x), free(s[r].y);
  free(s);
  return rc;
}
