/* test_protocol.c - the results protocol (docs/training.md, "Protocol:
 * validation split"; docs/reliability.md): the held-out split is class-balanced,
 * a pure function of (data, --val-split, --split-seed) that pretrain, finetune
 * and linprobe share, disjoint from what is trained on; fine-tuning selects its
 * epoch on it and evaluates the test split exactly once, on the selected
 * weights; summary.json states the run, and a resumed run's equals an
 * uninterrupted one's but for the minutes; --weight-init timm draws an uncut
 * normal, beit one cut at one sigma. */
#include <cjson/cJSON.h>
#include <stdarg.h>

#include "child.h"
#include "core/core.h"
#include "data/dataset.h"
#include "fixture.h"
#include "model/beit.h"
#include "test.h"

static char g_data[1100], g_dir[1100];

/* Runs `beit ARGS... NULL` with stderr into err; the exit code. */
static int beit(const char *err, ...) {
  char *v[64] = {(char *)child_beit_bin()};
  int n = 1;
  va_list ap;
  va_start(ap, err);
  for (char *s; (s = va_arg(ap, char *)) && n < 62;) v[n++] = s;
  va_end(ap);
  child_opts co = {.err_path = err};
  return child_run(v, &co);
}

static char *path_of(const char *run, const char *name) {
  char *p = test_keep(malloc(1300));
  snprintf(p, 1300, "%s/%s/%s", g_dir, run, name);
  return p;
}

/* g_dir/RUN.err, the stderr of the run into g_dir/RUN */
static char *err_of(const char *run) {
  char *p = test_keep(malloc(1300));
  snprintf(p, 1300, "%s/%s.err", g_dir, run);
  return p;
}

/* A fine-tuning (or pretraining) of micro on the tiny dataset into g_dir/run: 6 steps per epoch. */
#define RECIPE(cmd, run, ...)                                                                                       \
  beit(err_of(run), cmd, "--model", "micro", "--data", g_data, "--batch", "32", "--threads", "2", \
       "--workers", "1", "--quiet", "--log-every", "1", "--out", path_of(run, ""), __VA_ARGS__, NULL)

/* The lines of log.jsonl as JSON objects (an array; caller deletes). */
static cJSON *log_lines(const char *run) {
  char *text = slurp(path_of(run, "log.jsonl"));
  cJSON *a = cJSON_CreateArray();
  for (char *line = text, *next; *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    else next = line + strlen(line);
    cJSON *j = cJSON_Parse(line);
    if (j) cJSON_AddItemToArray(a, j);
  }
  free(text);
  return a;
}

static int count_key(const cJSON *lines, const char *key) {
  int n = 0;
  const cJSON *j;
  cJSON_ArrayForEach(j, lines) n += cJSON_GetObjectItemCaseSensitive(j, key) != NULL;
  return n;
}

static double num(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static cJSON *read_json(const char *path) {
  char *text = slurp(path);
  cJSON *j = cJSON_Parse(text);
  free(text);
  return j;
}

/* ---- the split itself, in process ------------------------------------------------ */
static void make_labels(beit_dataset *ds, int64_t n, int K) {
  memset(ds, 0, sizeof *ds);
  ds->n = n, ds->channels = 1, ds->height = ds->width = 2, ds->train = 1;
  snprintf(ds->root, sizeof ds->root, "synthetic");
  beit_ds_set_names(ds, NULL, K);
  ds->labels = beit_alloc((size_t)n * sizeof(int32_t), "labels");
  ds->pixels = beit_alloc((size_t)n * 4, "pixels");
  for (int64_t i = 0; i < n; i++) {
    ds->labels[i] = (int32_t)((i * 7 + i / 13) % K);  /* uneven, interleaved classes */
    for (int k = 0; k < 4; k++) ds->pixels[i * 4 + k] = (uint8_t)(i + k);
  }
}

static void test_split(void) {
  printf("the split: class-balanced, a function of (data, N, seed), disjoint, and refused when too large\n");
  beit_dataset ds;
  make_labels(&ds, 1000, 10);
  beit_split a, b, c, l;
  int ok = beit_split_make(&ds, 103, 0, 5, &a) == BEIT_OK && beit_split_make(&ds, 103, 0, 5, &b) == BEIT_OK &&
           beit_split_make(&ds, 103, 0, 6, &c) == BEIT_OK && beit_split_make(&ds, 103, 20, 5, &l) == BEIT_OK;
  CHECK_TRUE(ok, "four splits made");
  if (!ok) return;
  int per[10] = {0}, balanced = 1, same = a.n_val == b.n_val, differs = 0;
  for (int64_t i = 0; i < a.n_val; i++) per[ds.labels[a.val[i]]]++;
  for (int k = 0; k < 10; k++) balanced &= per[k] == 103 / 10 + (k < 103 % 10);
  for (int64_t i = 0; same && i < a.n_val; i++) same &= a.val[i] == b.val[i];
  for (int64_t i = 0; i < a.n_val; i++) differs += a.val[i] != c.val[i];
  CHECK_TRUE(a.n_val == 103 && balanced, "103 held out of 10 classes: %d %d %d ... %d (11 for the first 3, then 10)",
             per[0], per[1], per[2], per[9]);
  CHECK_TRUE(same && differs > 50, "the same seed holds out the same images, another seed others (%d of 103 differ)",
             differs);
  uint8_t *seen = calloc(1000, 1);
  for (int64_t i = 0; i < a.n_val; i++) seen[a.val[i]] |= 1;
  for (int64_t i = 0; i < a.n_train; i++) seen[a.train[i]] |= 2;
  int both = 0, neither = 0;
  for (int i = 0; i < 1000; i++) both += seen[i] == 3, neither += seen[i] == 0;
  CHECK_TRUE(both == 0 && neither == 0 && a.n_train == 897, "training part: the other %lld, none in both, none lost",
             (long long)a.n_train);
  int lper[10] = {0}, lshared = 0;
  for (int64_t i = 0; i < l.n_train; i++) lper[ds.labels[l.train[i]]]++, lshared += seen[l.train[i]] == 1;
  int lok = l.n_train == 200 && !lshared && l.n_val == 103;
  for (int k = 0; k < 10; k++) lok &= lper[k] == 20 && (l.val[0] == a.val[0]);
  CHECK_TRUE(lok, "--labels-per-class 20: 200 images, 20 per class, none held out, the same held-out images");
  beit_dataset val;
  int took = beit_dataset_take(&val, &ds, a.val, a.n_val) == BEIT_OK;
  CHECK_TRUE(took && val.n == 103 && val.labels[5] == ds.labels[a.val[5]] &&
             !memcmp(val.pixels + 5 * 4, ds.pixels + a.val[5] * 4, 4) && !strcmp(val.class_names[3], "3"),
             "beit_dataset_take copies the chosen samples with their labels and class names");
  if (took) beit_dataset_close(&val);
  beit_split bad;
  int rc = beit_split_make(&ds, 1000, 0, 0, &bad);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "--val-split 1000 is not below the 1000"),
             "--val-split 1000 of 1000: %s", beit_last_error());
  rc = beit_split_make(&ds, 10, 95, 0, &bad);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "--labels-per-class 95"), "too few per class: %s",
             beit_last_error());
  free(seen);
  beit_split_free(&a), beit_split_free(&b), beit_split_free(&c), beit_split_free(&l);
  beit_dataset_close(&ds);
}

/* ---- the split through the commands --------------------------------------------- */
static void test_commands_share_split(void) {
  printf("pretrain, finetune and linprobe with the same flags hold out the same images, balanced\n");
  int rp = RECIPE("pretrain", "pt", "--tokenizer", "pixel", "--epochs", "1", "--val-split", "40", "--split-seed", "3");
  int rf = RECIPE("finetune", "ft-seed1", "--epochs", "1", "--val-split", "40", "--split-seed", "3", "--seed", "1",
                  "--labels-per-class", "10");
  char *lp = path_of("lp", "");
  int rl = beit(err_of("lp"), "linprobe", "--model", "micro", "--patch-size", "4", "--data", g_data,
                "--epochs", "2", "--threads", "2", "--quiet", "--val-split", "40", "--split-seed", "3", "--out", lp,
                NULL);
  char *vp = slurp(path_of("pt", "val_indices.txt")), *vf = slurp(path_of("ft-seed1", "val_indices.txt"));
  char *vl = slurp(path_of("lp", "val_indices.txt")), *lab = slurp(path_of("ft-seed1", "labels_indices.txt"));
  int lines = 0;
  for (char *q = vp; *q; q++) lines += *q == '\n';
  CHECK_TRUE(rp == 0 && rf == 0 && rl == 0 && lines == 40 && !strcmp(vp, vf) && !strcmp(vp, vl),
             "exit %d %d %d; val_indices.txt of 40 lines, identical in the three runs (another --seed too)", rp, rf,
             rl);
  /* tiny-mnist's label of image i is i % 10 */
  int per[10] = {0}, lper[10] = {0}, shared = 0, nl = 0;
  for (char *q = vp; *q; q = strchr(q, '\n') + 1) per[atoi(q) % 10]++;
  for (char *q = lab; *q; q = strchr(q, '\n') + 1, nl++) {
    lper[atoi(q) % 10]++;
    char key[32];
    snprintf(key, sizeof key, "\n%d\n", atoi(q));
    shared += strstr(vp, key) != NULL || atoi(vp) == atoi(q);
  }
  int bal = 1;
  for (int k = 0; k < 10; k++) bal &= per[k] == 4 && lper[k] == 10;
  CHECK_TRUE(bal && nl == 100 && shared == 0, "4 held out per class; labels_indices.txt: 10 per class (%d lines), "
             "none held out (%d)", nl, shared);
  free(vp), free(vf), free(vl), free(lab);
  int r = RECIPE("finetune", "ft-seed1", "--epochs", "1", "--val-split", "41", "--split-seed", "3", "--seed", "1",
                 "--labels-per-class", "10", "--resume");
  char *e = slurp(err_of("ft-seed1"));
  CHECK_TRUE(r == 1 && strstr(e, "--val-split 41 differs from the run's 40"), "--resume with another --val-split: "
             "exit %d, %.*s", r, (int)strcspn(e, "\n"), e);
  free(e);
  r = RECIPE("finetune", "ft-big", "--epochs", "1", "--val-split", "256");
  e = slurp(err_of("ft-big"));
  CHECK_TRUE(r == 1 && strstr(e, "beit finetune: --val-split 256 is not below the 256 training images"),
             "--val-split as large as the training split: exit %d, %.*s", r, (int)strcspn(e, "\n"), e);
  free(e);
}

/* Fine-tuning with --val-split: validation every epoch, the best epoch by it,
 * the test split once (on best.safetensors), and summary.json saying so. */
static void test_select_on_val(void) {
  printf("fine-tuning selects on validation and tests once, on the selected weights\n");
  int rc = RECIPE("finetune", "ft", "--epochs", "3", "--val-split", "40", "--lr", "0.01", "--seed", "2");
  cJSON *lines = log_lines("ft");
  const cJSON *j, *final = NULL;
  double best = -1;
  int best_epoch = -1;
  cJSON_ArrayForEach(j, lines) {
    if (cJSON_GetObjectItemCaseSensitive(j, "final")) final = j;
    else if (cJSON_GetObjectItemCaseSensitive(j, "val_top1") && num(j, "val_top1") > best)
      best = num(j, "val_top1"), best_epoch = (int)num(j, "epoch");
  }
  CHECK_TRUE(rc == 0 && count_key(lines, "val_top1") == 4 && count_key(lines, "test_top1") == 1 && final &&
             cJSON_GetObjectItemCaseSensitive(final, "test_top1"),
             "exit %d; val_top1 in %d lines (3 epochs + the final), test_top1 in %d (the final line only)", rc,
             count_key(lines, "val_top1"), count_key(lines, "test_top1"));
  CHECK_TRUE(final && num(final, "best_epoch") == best_epoch && num(final, "val_top1") == best,
             "best_epoch %g = the first epoch of the highest val_top1 (%d, %.4f)", final ? num(final, "best_epoch") : -1,
             best_epoch, best);
  char out[1300], err[1300];
  snprintf(out, sizeof out, "%s/ft-eval.out", g_dir), snprintf(err, sizeof err, "%s/ft-eval.err", g_dir);
  char *args[] = {(char *)child_beit_bin(), "eval", "--checkpoint", path_of("ft", "best.safetensors"), "--data", g_data,
                  NULL};
  char cmd[4000];
  snprintf(cmd, sizeof cmd, "'%s' eval --checkpoint '%s' --data '%s' > '%s' 2> '%s'", args[0], args[3], g_data, out, err);
  int erc = system(cmd);
  char *eo = slurp(out), *p = strstr(eo, "top-1 ");
  double eval_top1 = p ? atof(p + 6) : -1;
  CHECK_TRUE(erc == 0 && final && fabs(100 * num(final, "test_top1") - eval_top1) < 0.006,
             "the final test_top1 %.2f%% is beit eval's of best.safetensors (%.2f%%)",
             final ? 100 * num(final, "test_top1") : -1, eval_top1);
  free(eo);
  cJSON *s = read_json(path_of("ft", "summary.json"));
  const cJSON *cmd0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "command"), 1);
  const cJSON *ep = cJSON_GetObjectItemCaseSensitive(s, "epochs"), *so = cJSON_GetObjectItemCaseSensitive(s, "selected_on");
  const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(s, "cpu"), *kind = cJSON_GetObjectItemCaseSensitive(s, "kind");
  CHECK_TRUE(s && cJSON_IsString(cmd0) && !strcmp(cmd0->valuestring, "finetune") && cJSON_IsString(kind) &&
             !strcmp(kind->valuestring, "finetune") && num(s, "seed") == 2 && num(s, "split_seed") == 0 &&
             num(s, "val_split") == 40 && num(s, "labels_per_class") == 0 && num(s, "minutes") > 0 &&
             cJSON_IsString(cpu) && num(s, "threads") == 2 && cJSON_GetArraySize(ep) == 3 &&
             num(cJSON_GetArrayItem(ep, 2), "epoch") == 2 && !isnan(num(cJSON_GetArrayItem(ep, 2), "val_top1")) &&
             final && num(s, "best_epoch") == num(final, "best_epoch") && num(s, "val_top1") == best &&
             num(s, "test_top1") == num(final, "test_top1") && num(s, "test_top5") == num(final, "test_top5") &&
             cJSON_IsString(so) && !strcmp(so->valuestring, "val"),
             "summary.json: command, kind, seeds, split, minutes, cpu '%s', threads, 3 epochs, best epoch, val and "
             "test top-1, selected_on val", cJSON_IsString(cpu) ? cpu->valuestring : "?");
  cJSON_Delete(s);
  cJSON_Delete(lines);
  rc = RECIPE("finetune", "ft-noval", "--epochs", "2");
  char *e = slurp(err_of("ft-noval"));
  s = read_json(path_of("ft-noval", "summary.json"));
  so = cJSON_GetObjectItemCaseSensitive(s, "selected_on");
  CHECK_TRUE(rc == 0 && strstr(e, "selected on the test split") && cJSON_IsString(so) && !strcmp(so->valuestring, "test") &&
             cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "val_top1")),
             "without --val-split: the last line and summary.json say the epoch was selected on the test split");
  free(e);
  cJSON_Delete(s);
}

/* summary.json of a run stopped by --max-steps mid-epoch and resumed equals an
 * uninterrupted run's, but for the minutes. */
static void compare_summaries(const char *what, const char *a, const char *b) {
  cJSON *x = read_json(path_of(a, "summary.json")), *y = read_json(path_of(b, "summary.json"));
  int ok = x && y && num(x, "minutes") > 0 && num(y, "minutes") > 0;
  char *cmd = ok ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(y, "command")) : NULL;
  int first = cmd && strstr(cmd, "\"--max-steps\"") && !strstr(cmd, "--resume");
  CHECK_TRUE(first, "%s: the resumed run's summary.json names the command that started it: %.200s", what, cmd ? cmd : "");
  free(cmd);
  if (ok) {  /* and the run folders differ: --out */
    const char *drop[] = {"minutes", "command"};
    for (int k = 0; k < 2; k++) cJSON_DeleteItemFromObject(x, drop[k]), cJSON_DeleteItemFromObject(y, drop[k]);
    ok = cJSON_Compare(x, y, 1);
  }
  char *sx = x ? cJSON_PrintUnformatted(x) : NULL;
  CHECK_TRUE(ok, "%s: resumed summary.json = the uninterrupted one's but for the minutes (and the --out of the command)%s%.300s", what, ok ? "" : ": ",
             ok || !sx ? "" : sx);
  free(sx);
  cJSON_Delete(x), cJSON_Delete(y);
}

static void test_resume_summary(void) {
  printf("a resumed run's summary.json equals an uninterrupted one's\n");
  int r1 = RECIPE("finetune", "ft-full", "--epochs", "2", "--val-split", "40", "--eval-every", "1");
  int r2 = RECIPE("finetune", "ft-part", "--epochs", "2", "--val-split", "40", "--eval-every", "1", "--max-steps", "8");
  int r3 = RECIPE("finetune", "ft-part", "--epochs", "2", "--val-split", "40", "--eval-every", "1", "--resume");
  CHECK_TRUE(r1 == 0 && r2 == 0 && r3 == 0, "finetune: exit %d, stopped at step 8 of 12 %d, resumed %d", r1, r2, r3);
  compare_summaries("finetune", "ft-full", "ft-part");
  r1 = RECIPE("pretrain", "pt-full", "--tokenizer", "pixel", "--epochs", "2", "--val-split", "16");
  r2 = RECIPE("pretrain", "pt-part", "--tokenizer", "pixel", "--epochs", "2", "--val-split", "16", "--max-steps", "9");
  r3 = RECIPE("pretrain", "pt-part", "--tokenizer", "pixel", "--epochs", "2", "--val-split", "16", "--resume");
  cJSON *s = read_json(path_of("pt-full", "summary.json"));
  const cJSON *ep = cJSON_GetObjectItemCaseSensitive(s, "epochs");
  CHECK_TRUE(r1 == 0 && r2 == 0 && r3 == 0 && cJSON_GetArraySize(ep) == 2 &&
             num(cJSON_GetArrayItem(ep, 1), "loss") > 0 && !isnan(num(cJSON_GetArrayItem(ep, 1), "mim_accuracy")),
             "pretrain: exit %d %d %d; summary.json has the loss and MIM accuracy of each of the 2 epochs", r1, r2, r3);
  cJSON_Delete(s);
  compare_summaries("pretrain", "pt-full", "pt-part");
}

/* ---- --weight-init ------------------------------------------------------------------ */
static void test_init(void) {
  printf("--weight-init: timm draws N(0, 0.02) not cut, beit cuts at one sigma\n");
  beit_config c = {0};
  beit_config_preset(&c, "tiny");
  c.image_size = 32, c.patch_size = 4, c.channels = 3, c.num_classes = 10, c.use_mean_pooling = 1;
  c.rel_pos = BEIT_RELPOS_PER_BLOCK;
  const char *schemes[2] = {"timm", "beit"};
  double want_beyond[2] = {0.3173, 0}, want_std[2] = {0.02, 0.02 * 0.5379};  /* std of N(0,1) cut at +-1: 0.5379 */
  for (int k = 0; k < 2; k++) {
    beit_model m;
    memset(&m, 0, sizeof m);
    if (beit_model_init(&m, &c) != BEIT_OK || beit_model_init_named(&m, schemes[k], 7, 0.001f) != BEIT_OK) {
      CHECK_TRUE(0, "%s init: %s", schemes[k], beit_last_error());
      continue;
    }
    const float *w = beit_params_get(&m.params, "blocks.0.mlp.fc1.weight");
    size_t n = m.params.t[beit_params_find(&m.params, "blocks.0.mlp.fc1.weight")].numel;
    double ss = 0, beyond = 0;
    for (size_t i = 0; i < n; i++) ss += (double)w[i] * w[i], beyond += fabsf(w[i]) > 0.02f;
    double sd = sqrt(ss / n);
    beyond /= n;
    CHECK_TRUE(fabs(sd - want_std[k]) < 0.02 * want_std[k] && fabs(beyond - want_beyond[k]) < 0.01,
               "%s: fc1 weight std %.5f (want %.5f), share beyond 0.02 %.4f (want %.4f), n=%zu", schemes[k], sd,
               want_std[k], beyond, want_beyond[k], n);
    const float *b = beit_params_get(&m.params, "blocks.0.mlp.fc1.bias"), *g = beit_params_get(&m.params, "blocks.0.norm1.weight");
    const float *cls = beit_params_get(&m.params, "cls_token");
    CHECK_TRUE(b[0] == 0 && b[7] == 0 && g[3] == 1 && (k ? fabsf(cls[0]) <= 0.02f : fabsf(cls[0]) < 1e-5f),
               "%s: biases 0, LayerNorm weight 1, cls_token %g", schemes[k], cls[0]);
    beit_model_free(&m);
  }
  CHECK_TRUE(beit_model_init_named(NULL, "jax", 0, 0) == BEIT_ERR && strstr(beit_last_error(), "--weight-init 'jax'"),
             "another name is refused: %s", beit_last_error());
  int rc = RECIPE("finetune", "ft-bad-init", "--epochs", "1", "--weight-init", "jax");
  char *e = slurp(err_of("ft-bad-init"));
  CHECK_TRUE(rc == 1 && strstr(e, "beit finetune: --weight-init 'jax'"), "beit finetune --weight-init jax: exit %d, %.*s",
             rc, (int)strcspn(e, "\n"), e);
  free(e);
}

int main(void) {
  TEST_BEGIN("test_protocol");
  char tiny[1000];
  snprintf(tiny, sizeof tiny, "%s/protocol-mnist", fx_dir());
  TEST_PATHF(g_data, "mnist:%s", tiny);
  TEST_PATHF(g_dir, "%s/protocol-runs", fx_dir());
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_dir, g_dir);
  CHECK_TRUE(make_tiny_mnist(tiny, 256, 64) == 0 && system(cmd) == 0, "tiny dataset in %s", tiny);
  test_split();
  test_commands_share_split();
  test_select_on_val();
  test_resume_summary();
  test_init();
  return TEST_END();
}
