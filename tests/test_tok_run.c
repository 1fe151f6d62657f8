/* test_tok_run.c - tokenizer training as a user sees it: the codebook-collapse
 * warning only where the tokens counted could have used 5% of the codes (a
 * batch of 2 at 7x7 = 98 tokens cannot cover 5% of 8192 codes; a dataset of
 * identical images really collapses), the k-means trainer writing the run folder
 * its --help promises (config.json, log.jsonl) like the dVAE trainer,
 * `beit data preview` drawing view B at the size pretraining gives the tokenizer,
 * and an image folder's own size as the default --image-size (refused, naming
 * two files, when its images differ). */
#include <cjson/cJSON.h>
#include <stdarg.h>

#include "child.h"
#include "fixture.h"
#include "io/image.h"
#include "test.h"

static char g_data[1100], g_flat[1100], g_out[1100], g_err[1100];

/* Runs `beit ARGS` through the shell, stdout into g_out and stderr into g_err; returns the exit status. */
static int beit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int beit(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = child_beit_shell(g_out, g_err, fmt, ap);
  va_end(ap);
  return rc;
}

/* A dataset of all-black 28x28 images: every image gives the same tokens, at most 49 codes. */
static int make_flat(const char *dir) {
  char path[1200];
  snprintf(path, sizeof path, "mkdir -p '%s'", dir);
  if (system(path) != 0) return -1;
  static unsigned char img[64 * 784], lab[64];
  unsigned dims[3] = {64, 28, 28};
  const char *split[2] = {"train", "t10k"};
  int rc = 0;
  for (int s = 0; s < 2; s++) {
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, split[s]);
    rc |= write_idx(path, img, sizeof img, dims, 3);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split[s]);
    rc |= write_idx(path, lab, sizeof lab, dims, 1);
  }
  return rc;
}

static void test_collapse_warning(void) {
  char dir[1100];
  TEST_PATHF(dir, "%s/tokrun-dvae", fx_dir());
  const char *common = "tokenizer train --n-hid 8 --steps 2 --log-every 1 --kl-warmup 0 --workers 0 --threads 1";
  int rc = beit("%s --data '%s' --vocab 8192 --batch 2 --eval-images 2 --out '%s'", common, g_data, dir);
  char *err = slurp(g_err);
  CHECK_TRUE(rc == 0 && !strstr(err, "collapse"),
             "dVAE, vocab 8192, batch 2 (98 tokens per interval, 98 in the final evaluation): no collapse warning "
             "(exit %d): %.300s", rc, err);
  free(err);
  /* the dVAE's run folder, now through beit_run_open / beit_run_log as every trainer's */
  char path[1200];
  TEST_PATHF(path, "%s/log.jsonl", dir);
  char *log = slurp(path);
  int lines = 0;
  for (const char *p = log; (p = strstr(p, "{\"step\": ")); p++) lines++;
  TEST_PATHF(path, "%s/config.json", dir);
  CHECK_TRUE(lines == 2 && file_exists(path), "dVAE run folder: config.json and a log.jsonl of 2 steps (%d lines)", lines);
  const char *share = log ? strstr(log, "\"codes_used_share\": ") : NULL;
  CHECK_TRUE(share && strstr(share, "\"codes_ever_share\": "),
             "each dVAE log line has the share of the codes used in the window and ever: %.300s", log ? log : "");
  free(log);
  TEST_PATHF(dir, "%s/tokrun-flat", fx_dir());
  rc = beit("%s --data '%s' --vocab 1024 --batch 8 --eval-images 20 --out '%s'", common, g_flat, dir);
  err = slurp(g_err);
  const char *warning = strstr(err, "codebook collapse at step 1");
  CHECK_TRUE(rc == 0 && warning && strstr(err, "the codebook collapsed"),
             "identical images, vocab 1024, batch 8 (392 tokens, at most 49 codes): the collapse is still reported, "
             "in training and in the evaluation (exit %d): %.130s", rc, warning ? warning : err);
  free(err);
}

/* `path` parses as JSON; returns it (caller deletes) or NULL. */
static cJSON *read_json(const char *path) {
  char *text = slurp(path);
  cJSON *j = cJSON_Parse(text);
  free(text);
  return j;
}

static void test_kmeans_run_folder(const char *dir) {
  int rc = beit("tokenizer train --type kmeans --data '%s' --vocab 16 --threads 1 --out '%s'", g_data, dir);
  char path[1200];
  TEST_PATHF(path, "%s/config.json", dir);
  cJSON *cfg = read_json(path);
  const cJSON *type = cJSON_GetObjectItem(cfg, "type"), *vocab = cJSON_GetObjectItem(cfg, "vocab");
  const cJSON *patch = cJSON_GetObjectItem(cfg, "patch"), *size = cJSON_GetObjectItem(cfg, "image_size");
  CHECK_TRUE(rc == 0 && cJSON_IsString(type) && !strcmp(type->valuestring, "kmeans") && cJSON_IsNumber(vocab) &&
                 vocab->valueint == 16 && cJSON_IsNumber(patch) && patch->valueint == 4 && cJSON_IsNumber(size) &&
                 size->valueint == 28,
             "k-means run folder: config.json with type kmeans, vocab 16, patch 4, image_size 28 (exit %d)", rc);
  cJSON_Delete(cfg);
  TEST_PATHF(path, "%s/log.jsonl", dir);
  char *log = slurp(path), *nl = strchr(log, '\n');
  if (nl) *nl = 0;
  cJSON *line = cJSON_Parse(log);
  CHECK_TRUE(nl && nl[1] == 0 && cJSON_IsNumber(cJSON_GetObjectItem(line, "step")) &&
                 cJSON_IsNumber(cJSON_GetObjectItem(line, "inertia")) &&
                 cJSON_IsNumber(cJSON_GetObjectItem(line, "test_codes_used")),
             "k-means run folder: log.jsonl, one JSON line with step, inertia and test_codes_used: %.200s", log);
  cJSON_Delete(line);
  free(log);
  /* --val-split: the tokenizer is trained without pretraining's validation images */
  char vdir[1200];
  TEST_PATHF(vdir, "%s-val", dir);
  rc = beit("tokenizer train --type kmeans --data '%s' --vocab 16 --threads 1 --val-split 10 --out '%s'", g_data, vdir);
  char *said = slurp(g_out);
  TEST_PATHF(path, "%s/val_indices.txt", vdir);
  char *held = slurp(path);
  int lines = 0;
  for (const char *q = held; q && *q; q++) lines += *q == '\n';
  CHECK_TRUE(rc == 0 && said && strstr(said, "from 54 images") && lines == 10,
             "--val-split 10: k-means fitted on 54 of the 64 training images, the 10 held out listed in "
             "val_indices.txt (%d lines; exit %d)", lines, rc);
  free(said), free(held);
  rc = beit("tokenizer train --type kmeans --data '%s' --vocab 16 --threads 1 --val-split 64 --overwrite --out '%s'",
            g_data, vdir);
  char *err = slurp(g_err);
  CHECK_TRUE(rc != 0 && err && strstr(err, "--val-split 64"), "--val-split 64 of 64 images: refused, naming the flag");
  free(err);
  rc = beit("tokenizer train --help");
  char *help = slurp(g_out);
  CHECK_TRUE(rc == 0 && strstr(help, "log.jsonl") && strstr(help, "config.json"),
             "--help promises log.jsonl and config.json, which both trainers now write");
  free(help);
}

/* DIR/{train,val}/c/N.png: grey images of side S (the last training one of side S2). */
static int make_folder(const char *dir, int S, int S2) {
  char path[1300];
  const uint8_t bg[3] = {90, 90, 90};
  for (int i = 0; i < 6; i++) {
    int val = i == 5, side = i == 4 ? S2 : S;
    snprintf(path, sizeof path, "mkdir -p '%s/%s/c'", dir, val ? "val" : "train");
    if (system(path)) return -1;
    snprintf(path, sizeof path, "%s/%s/c/%d.png", dir, val ? "val" : "train", i);
    beit_canvas cv;
    if (beit_canvas_init(&cv, side, side, bg)) return -1;
    for (int p = 0; p < side * side; p++) cv.rgb[3 * p] = cv.rgb[3 * p + 1] = cv.rgb[3 * p + 2] = (uint8_t)(p * 7 + i);
    int rc = beit_canvas_save_png(&cv, path);
    beit_canvas_free(&cv);
    if (rc) return -1;
  }
  return 0;
}

static void test_folder_size(void) {
  char same[1100], mixed[1100], out[1100], path[1200];
  TEST_PATHF(same, "%s/tokrun-folder16", fx_dir());
  TEST_PATHF(mixed, "%s/tokrun-folder-mixed", fx_dir());
  TEST_PATHF(out, "%s/tokrun-folder-run", fx_dir());
  CHECK_TRUE(make_folder(same, 16, 16) == 0 && make_folder(mixed, 16, 24) == 0, "folders of 16 px PNGs written");
  int rc = beit("tokenizer train --type kmeans --data 'folder:%s' --vocab 4 --threads 1 --overwrite --out '%s'", same,
                out);
  TEST_PATHF(path, "%s/config.json", out);
  cJSON *cfg = read_json(path);
  const cJSON *size = cJSON_GetObjectItem(cfg, "image_size");
  CHECK_TRUE(rc == 0 && cJSON_IsNumber(size) && size->valueint == 16,
             "a folder of 16x16 images trains at 16 px without --image-size (exit %d, image_size %d)", rc,
             cJSON_IsNumber(size) ? size->valueint : -1);
  cJSON_Delete(cfg);
  rc = beit("tokenizer train --data 'folder:%s' --threads 1 --overwrite --out '%s'", mixed, out);
  char *err = slurp(g_err);
  CHECK_TRUE(rc == 1 && err && strstr(err, "differ in size") && strstr(err, "--image-size") && strstr(err, "4.png"),
             "a folder of 16 and 24 px images: exit 1 asking for --image-size, naming the odd file: %.300s",
             err ? err : "");
  free(err);
}

/* View B's side from the preview's stdout, and the PNG is three tiles wide per sample. */
static void preview(const char *what, const char *tok, int want_side) {
  char png[1200], flag[1300] = "";
  TEST_PATHF(png, "%s/tokrun-preview.png", fx_dir());
  if (tok) snprintf(flag, sizeof flag, "--tokenizer '%s'", tok);
  remove(png);
  int rc = beit("data preview --data '%s' --n 2 %s --out '%s'", g_data, flag, png);
  char *out = slurp(g_out), *err = slurp(g_err), want[64];
  snprintf(want, sizeof want, "view B (tokenizer input) %dx%d", want_side, want_side);
  int h = 0, w = 0, c = 0, tile = 28 * 4;  /* 28 px upscaled x4; 2 samples side by side */
  if (file_exists(png)) beit_image_probe(png, &h, &w, &c);
  int ok = rc == 0 && strstr(out, want) && w >= 2 * 3 * tile;
  CHECK_TRUE(ok, "data preview %s: '%s', three tiles per sample (%d px wide)%s%.300s%.300s", what, want, w,
             ok ? "" : ": ", ok ? "" : out, ok ? "" : err);
  free(out), free(err);
}

int main(void) {
  TEST_BEGIN("test_tok_run");
  char tiny[1000], flat[1000], km[1100], km56[1100], tok[1200], tok56[1200];
  snprintf(tiny, sizeof tiny, "%s/tokrun-mnist", fx_dir());
  snprintf(flat, sizeof flat, "%s/tokrun-flat-mnist", fx_dir());
  TEST_PATHF(g_data, "mnist:%s", tiny);
  TEST_PATHF(g_flat, "mnist:%s", flat);
  TEST_PATHF(g_out, "%s/tokrun.out", fx_dir());
  TEST_PATHF(g_err, "%s/tokrun.err", fx_dir());
  TEST_PATHF(km, "%s/tokrun-km", fx_dir());
  TEST_PATHF(km56, "%s/tokrun-km56", fx_dir());
  char cmd[4000];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'/tokrun-*", fx_dir());
  CHECK_TRUE(system(cmd) == 0 && make_tiny_mnist(tiny, 64, 32) == 0 && make_flat(flat) == 0,
             "datasets: tiny MNIST-like and all-black");
  test_collapse_warning();
  test_kmeans_run_folder(km);
  test_folder_size();
  /* a tokenizer that reads 56 px: 8x8 patches, the same 7x7 grid as the model's 4x4 patches of 28 px */
  int rc = beit("tokenizer train --type kmeans --data '%s' --vocab 16 --image-size 56 --patch 8 --threads 1 --out '%s'",
                g_data, km56);
  CHECK_TRUE(rc == 0, "k-means tokenizer at 56 px (exit %d)", rc);
  TEST_PATHF(tok, "%s/tokenizer.safetensors", km);
  TEST_PATHF(tok56, "%s/tokenizer.safetensors", km56);
  preview("--tokenizer (56 px)", tok56, 56);
  preview("--tokenizer (28 px)", tok, 28);
  preview("without --tokenizer (a default tokenizer's: the dataset's 28 px)", NULL, 28);
  return TEST_END();
}
