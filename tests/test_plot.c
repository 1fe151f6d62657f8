/* test_plot.c - `beit plot` as a user runs it: two run folders (a curve of ten
 * points and a run with a single point) and a folder that does not exist. One
 * "cannot open" line for the missing run (not one per chart), exit 1, the charts
 * still drawn from the other two; in each PNG: tick labels left of and below the
 * frame, a legend right of it with both runs' colours and their names, and the
 * one-point run drawn as a point inside the frame. */
#include "child.h"
#include "fixture.h"
#include "io/image.h"
#include "test.h"

static const uint8_t RUN0[3] = {31, 119, 180}, RUN1[3] = {255, 127, 14};  /* the first two colours of beit plot */

static void write_log(const char *dir, int points) {
  char path[1200];
  snprintf(path, sizeof path, "mkdir -p '%s'", dir);
  if (system(path) != 0) return;
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  FILE *f = fopen(path, "w");
  for (int i = 1; f && i <= points; i++)
    fprintf(f, "{\"step\": %d, \"loss\": %.4f, \"accuracy\": %.3f}\n", points == 1 ? 40 : 10 * i, 2.3 / i, 0.08 * i);
  if (f) fclose(f);
}

static const uint8_t *px(const beit_image *im, int x, int y) { return im->data + ((size_t)y * im->w + x) * im->c; }
static int is_rgb(const uint8_t *p, const uint8_t *c) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }
static int is_black(const uint8_t *p) { return p[0] == 0 && p[1] == 0 && p[2] == 0; }
static int is_ink(const uint8_t *p) { return p[0] == p[1] && p[1] == p[2] && p[0] < 128; }  /* text and frame */

/* Pixels in [x0, x1) x [y0, y1) that are `c` (or ink when c == NULL). */
static int count(const beit_image *im, int x0, int y0, int x1, int y1, const uint8_t *c) {
  int n = 0;
  for (int y = y0 < 0 ? 0 : y0; y < y1 && y < im->h; y++)
    for (int x = x0 < 0 ? 0 : x0; x < x1 && x < im->w; x++) n += c ? is_rgb(px(im, x, y), c) : is_ink(px(im, x, y));
  return n;
}

/* The frame: the columns and rows that are black over more than half the image. */
static int find_frame(const beit_image *im, int *left, int *right, int *top, int *bottom) {
  *left = *right = *top = *bottom = -1;
  for (int x = 0; x < im->w; x++) {
    int n = 0;
    for (int y = 0; y < im->h; y++) n += is_black(px(im, x, y));
    if (n > im->h / 2) {
      if (*left < 0) *left = x;
      *right = x;
    }
  }
  for (int y = 0; y < im->h; y++) {
    int n = 0;
    for (int x = 0; x < im->w; x++) n += is_black(px(im, x, y));
    if (n > im->w / 2) {
      if (*top < 0) *top = y;
      *bottom = y;
    }
  }
  return *left >= 0 && *right > *left && *top >= 0 && *bottom > *top;
}

static void check_chart(const char *path) {
  beit_image im = {0};
  if (beit_image_load(path, &im) != BEIT_OK || im.c != 3) {
    CHECK_TRUE(0, "%s: an RGB PNG (%s)", path, beit_last_error());
    beit_image_free(&im);
    return;
  }
  int l, r, t, b;
  if (!find_frame(&im, &l, &r, &t, &b)) {
    CHECK_TRUE(0, "%s: a black frame around the plot", path);
    beit_image_free(&im);
    return;
  }
  int yticks = count(&im, 0, t - 8, l - 5, b + 8, NULL), xticks = count(&im, l - 20, b + 5, r + 20, b + 18, NULL);
  CHECK_TRUE(yticks > 40 && xticks > 40, "%s: tick values left of the frame (%d ink pixels) and below it (%d)", path,
             yticks, xticks);
  int sw0 = count(&im, r + 3, 0, im.w, im.h, RUN0), sw1 = count(&im, r + 3, 0, im.w, im.h, RUN1);
  int names = count(&im, r + 3, 0, im.w, im.h, NULL);
  CHECK_TRUE(sw0 >= 50 && sw1 >= 50 && names > 80,
             "%s: a legend right of the frame: both runs' colours (%d, %d pixels) and their names (%d ink pixels)", path,
             sw0, sw1, names);
  int line = count(&im, l + 1, t + 1, r, b, RUN0), point = count(&im, l + 1, t + 1, r, b, RUN1);
  CHECK_TRUE(line > 200 && point >= 9, "%s: the ten-point run as a line (%d pixels), the one-point run as a point (%d)",
             path, line, point);
  beit_image_free(&im);
}

int main(void) {
  TEST_BEGIN("test_plot");
  char r1[1100], r2[1100], missing[1100], out[1100], err[1100], png[1200];
  TEST_PATHF(r1, "%s/plot-runs/curve", fx_dir());
  TEST_PATHF(r2, "%s/plot-runs/one-point", fx_dir());
  TEST_PATHF(missing, "%s/plot-runs/not-there", fx_dir());
  TEST_PATHF(out, "%s/plot-out", fx_dir());
  TEST_PATHF(err, "%s/plot.err", fx_dir());
  char cmd[4000];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/plot-runs' '%s'", fx_dir(), out);
  CHECK_TRUE(system(cmd) == 0, "fresh folders");
  write_log(r1, 10);
  write_log(r2, 1);
  child_opts co = {.err_path = err};
  int rc = child_run((char *const[]){(char *)child_beit_bin(), "plot", r1, r2, missing, "--fields", "loss,accuracy",
                                     "--out", out, NULL}, &co);
  char *e = slurp(err);
  int lines = 0;
  for (const char *p = e; *p; p++) lines += *p == '\n';
  CHECK_TRUE(rc == 1 && lines == 1 && strstr(e, missing) && strstr(e, "cannot open"),
             "two runs and a missing one: exit %d (want 1), %d stderr line(s) (want 1, naming the missing run): %s", rc,
             lines, e);
  free(e);
  const char *fields[] = {"loss", "accuracy"};
  for (int k = 0; k < 2; k++) {
    TEST_PATHF(png, "%s/%s.png", out, fields[k]);
    CHECK_TRUE(file_exists(png), "%s drawn from the two readable runs", png);
    if (file_exists(png)) check_chart(png);
  }
  return TEST_END();
}
