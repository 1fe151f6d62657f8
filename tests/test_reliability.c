/* test_reliability.c - the guarantees of docs/reliability.md other than the
 * kill test (test_resume.c): checksummed files (checked against Python's zlib),
 * a corrupted checkpoint refused and the previous kept one resumed from, the
 * rotation of --keep, a failed checkpoint write (file-size limit, full tmpfs,
 * read-only directory) leaving the previous checkpoint whole and stopping the
 * run with a message, non-finite steps caught and named (stop or skip), no NaN
 * ever written, and configs needing absurd memory refused before allocating. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>

#include "child.h"
#include "core/core.h"
#include "fixture.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "test.h"
#include "train/train.h"

static char g_data[1000];  /* "mnist:<fixtures>/tiny-mnist" */

static void fx_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/rel-%s", fx_dir(), name); }

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  fflush(stdout);
  return system(cmd);
}

/* A tiny pretraining into dir (fresh, or resumed with resume = 1, which may
 * raise --epochs); extra args after the common ones; stderr into dir.err.
 * Returns the exit code. */
static int pretrain(const char *dir, int epochs, int resume, const child_opts *base, const char *const *extra) {
  char ep[16], err[1100];
  snprintf(ep, sizeof ep, "%d", epochs);
  snprintf(err, sizeof err, "%s.err", dir);
  char *args[48] = {(char *)child_beit_bin(), "pretrain", "--model", "micro", "--data", g_data, "--batch", "32",
                    "--epochs", ep, "--threads", "2", "--workers", "1", "--log-every", "1", "--save-every", "3",
                    "--keep", "3", "--quiet", "--tokenizer", "pixel", "--out", (char *)dir, NULL};
  int n = 25;
  if (resume) args[n++] = "--resume", args[n++] = "--extend-epochs";
  for (int i = 0; extra && extra[i] && n < 46; i++) args[n++] = (char *)extra[i];
  args[n] = NULL;
  child_opts co = base ? *base : (child_opts){0};
  co.err_path = err;
  return child_run(args, &co);
}

static char *stderr_of(const char *dir) {
  char err[1100];
  snprintf(err, sizeof err, "%s.err", dir);
  return slurp(err);
}


static int same_bytes(const char *a, const char *b) { return sh("cmp -s '%s' '%s'", a, b) == 0; }

/* Every float tensor of the file is finite (and the file opens). */
static int all_finite(const char *path) {
  beit_safetensors st;
  if (beit_st_open(&st, path) != BEIT_OK) return 0;
  int ok = 1;
  for (int i = 0; i < st.n && ok; i++) {
    size_t n = beit_st_numel(&st.e[i]);
    float *x = malloc(n * sizeof(float) + 4);
    ok = beit_st_read_f32(&st, i, x, n) == BEIT_OK;
    for (size_t k = 0; k < n && ok; k++) ok = isfinite(x[k]);
    free(x);
  }
  beit_st_close(&st);
  return ok;
}

/* Training steps in log.jsonl are exactly 1..last, in order. */
static int log_steps_are(const char *dir, int last) {
  char p[1100];
  snprintf(p, sizeof p, "%s/log.jsonl", dir);
  char *s = slurp(p);
  int next = 1;
  for (const char *q = s; (q = strstr(q, "{\"step\": ")); q++)
    if (atoi(q + 9) != next++) next = -1000;
  free(s);
  return next == last + 1;
}

static void flip_byte(const char *path, long from_end) {
  FILE *f = fopen(path, "r+b");
  if (!f) return;
  fseek(f, -from_end, SEEK_END);
  int c = fgetc(f);
  fseek(f, -from_end, SEEK_END);
  fputc(c ^ 0x10, f);
  fclose(f);
}

/* ---- checksums ------------------------------------------------------------- */
static void test_checksum_interop(void) {
  printf("checksum: against Python's zlib.crc32 (tests/ref/stio.py)\n");
  char good[1100], bad[1100], plain[1100], mine[1100];
  fx_path(good, sizeof good, "py-crc.safetensors");
  fx_path(bad, sizeof bad, "py-crc-bad.safetensors");
  fx_path(plain, sizeof plain, "py-plain.safetensors");
  int rc = sh("/usr/bin/python3 -c \"import sys; sys.path.insert(0, '%s/tests/ref'); import stio, numpy as np; "
              "t = {'w': np.arange(12, dtype=np.float32).reshape(3, 4), 'b': np.ones(3, np.float16), 'i': np.arange(4)}; "
              "m = {'format': 'pt', 'note': '\\u00fc'}; stio.save('%s', t, m, checksum=True); "
              "stio.save('%s', t, m, checksum=True); stio.save('%s', t, m)\"",
              fx_root(), good, bad, plain);
  CHECK_TRUE(rc == 0, "python wrote a file with the checksum, a copy, and one without");
  flip_byte(bad, 3);
  beit_safetensors st;
  int ok = beit_st_open(&st, good) == BEIT_OK;
  CHECK_TRUE(ok && beit_st_meta(&st, BEIT_ST_CRC_KEY), "C verifies the checksum Python computed (%s)",
             ok ? beit_st_meta(&st, BEIT_ST_CRC_KEY) : beit_last_error());
  if (ok) beit_st_close(&st);
  ok = beit_st_open(&st, bad) != BEIT_OK;
  CHECK_TRUE(ok && strstr(beit_last_error(), bad) && strstr(beit_last_error(), "checksum mismatch"),
             "one flipped data bit is refused: %s", beit_last_error());
  if (!ok) beit_st_close(&st);
  ok = beit_st_open(&st, plain) == BEIT_OK;
  CHECK_TRUE(ok, "a file without a checksum (another tool's) still loads");
  if (ok) beit_st_close(&st);
  /* C writes (the checksum is stamped by the writer), Python recomputes */
  fx_path(mine, sizeof mine, "c-crc.safetensors");
  float w[6] = {1, 2, 3, 4, 5, 6};
  beit_st_tensor t[] = {{"w", 2, (int64_t[]){2, 3}, w}};
  const char *meta[] = {"b-key", "x", "a-key", "y", BEIT_ST_CRC_KEY, "deadbeef"};
  rc = beit_st_write(mine, t, 1, meta, 3);
  CHECK_TRUE(rc == BEIT_OK, "C writes a file (a stale checksum in the metadata it is given is replaced)");
  rc = sh("/usr/bin/python3 -c \"import sys; sys.path.insert(0, '%s/tests/ref'); import stio; "
          "t, m = stio.load('%s'); sys.exit(0 if m['beit.crc32'] == stio.content_crc32('%s') else 1)\"",
          fx_root(), mine, mine);
  CHECK_TRUE(rc == 0, "Python's recomputation matches the checksum C stored");
}

/* ---- corrupted checkpoint, --keep ------------------------------------------ */
static void test_keep_and_fallback(const char *base) {
  printf("--keep rotation and resuming past a corrupted checkpoint\n");
  char p[1100], dir[1100];
  long long steps[4];
  for (int k = 0; k < 4; k++) {
    beit_checkpoint_name(base, k, p, sizeof p);
    steps[k] = file_exists(p) ? fx_checkpoint_step(p) : -2;
  }
  CHECK_TRUE(steps[0] == 8 && steps[1] == 6 && steps[2] == 3 && steps[3] == -2,
             "--keep 3 after 8 steps saved every 3: checkpoint.safetensors step %lld, -1 step %lld, -2 step %lld, no -3",
             steps[0], steps[1], steps[2]);
  TEST_PATHF(p, "%s/model.safetensors", base);
  CHECK_TRUE(sh("/usr/bin/python3 -c \"import sys; sys.path.insert(0, '%s/tests/ref'); import stio; "
                "t, m = stio.load('%s'); sys.exit(0 if m['beit.crc32'] == stio.content_crc32('%s') else 1)\"",
                fx_root(), p, p) == 0, "model.safetensors (weights only) carries a valid checksum too");
  fx_path(dir, sizeof dir, "fallback");
  sh("rm -rf '%s' && cp -a '%s' '%s'", dir, base, dir);
  beit_checkpoint_name(dir, 0, p, sizeof p);
  flip_byte(p, 1000);
  beit_model m;
  int refused = beit_model_open(&m, p) != BEIT_OK;
  CHECK_TRUE(refused && strstr(beit_last_error(), p) && strstr(beit_last_error(), "corrupted"),
             "loading the corrupted checkpoint is refused, naming it: %s", beit_last_error());
  if (!refused) beit_model_free(&m);
  const char *keep2[] = {"--keep", "2", NULL};
  int rc = pretrain(dir, 2, 1, NULL, keep2);
  char *err = stderr_of(dir);
  CHECK_TRUE(rc == 0 && strstr(err, "skipping") && strstr(err, "checksum mismatch") && strstr(err, "resuming at step 6"),
             "--resume skips it (saying why) and continues from checkpoint-1 at step 6 (exit %d)", rc);
  free(err);
  char bad[1120];
  snprintf(bad, sizeof bad, "%s.bad", p);
  beit_checkpoint_name(dir, 2, p, sizeof p);
  CHECK_TRUE(file_exists(bad) && !file_exists(p) && log_steps_are(dir, 16),
             "the broken file is set aside as checkpoint.safetensors.bad, --keep 2 removed checkpoint-2, the log has steps 1..16 once");
}

/* ---- failed writes ---------------------------------------------------------- */
/* After a run that had to fail writing: exit code 1 (no signal), a message
 * naming the checkpoint and the errno text, the previous checkpoint unchanged. */
static void expect_clean_failure(const char *what, const char *dir, int rc, const char *errno_text, const char *saved) {
  char *err = stderr_of(dir), p[1100], tmp[1120];
  beit_checkpoint_name(dir, 0, p, sizeof p);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  const char *line = strstr(err, "beit pretrain:");
  CHECK_TRUE(rc == 1 && line && strstr(line, dir) && strstr(line, errno_text),
             "%s: exit %d, message: %.200s", what, rc, line ? line : err);
  CHECK_TRUE(same_bytes(p, saved) && fx_checkpoint_step(p) == 8 && !file_exists(tmp),
             "%s: checkpoint.safetensors is unchanged (step %lld, loads) and no .tmp is left", what, fx_checkpoint_step(p));
  free(err);
}

static void test_file_size_limit(const char *base, const char *saved) {
  printf("disk full: a file-size limit (ulimit -f)\n");
  char dir[1100];
  fx_path(dir, sizeof dir, "fsize");
  sh("rm -rf '%s' && cp -a '%s' '%s'", dir, base, dir);
  child_opts co = {.fsize_limit = 200 << 10};  /* the 330 KB checkpoint cannot be written */
  int rc = pretrain(dir, 2, 1, &co, NULL);
  expect_clean_failure("ulimit -f 200 KiB", dir, rc, "File too large", saved);
}

/* `unshare -m` gives a private mount namespace where the test may mount. */
static int can_mount(void) {
  return sh("unshare -m --propagation private sh -c 'mount -t tmpfs -o size=64k tmpfs /mnt' >/dev/null 2>&1") == 0;
}

static void test_full_tmpfs(const char *base, const char *saved) {
  printf("disk full: a small tmpfs\n");
  if (!can_mount()) {
    printf("  skip (cannot mount a tmpfs here: needs root and unshare -m; the file-size case covers the code path)\n");
    return;
  }
  char dir[1100], mnt[1100];
  fx_path(dir, sizeof dir, "tmpfs");
  fx_path(mnt, sizeof mnt, "tmpfs-mnt");
  sh("rm -rf '%s' '%s' && mkdir -p '%s' '%s'", dir, mnt, dir, mnt);
  /* room for what is there plus ~100 KB: the next 330 KB checkpoint does not fit */
  int rc = sh("unshare -m --propagation private sh -c 'mount -t tmpfs -o size=560k tmpfs \"%s\" && cd \"%s\" && "
              "cp -a checkpoint.safetensors model.safetensors log.jsonl config.json \"%s\"/ && \"%s\" pretrain --model micro --data \"%s\" --batch 32 --epochs 2 --threads 2 "
              "--workers 1 --log-every 1 --save-every 3 --keep 3 --quiet --tokenizer pixel --out \"%s\" --resume --extend-epochs "
              "2>\"%s.err\"; echo $? > \"%s.rc\"; cp -a \"%s\"/. \"%s\"/'",
              mnt, base, mnt, child_beit_bin(), g_data, mnt, dir, dir, mnt, dir);
  char rcpath[1120];
  snprintf(rcpath, sizeof rcpath, "%s.rc", dir);
  char *code = slurp(rcpath);
  int exit_code = rc == 0 ? atoi(code) : -1;
  free(code);
  /* the message names the path inside the namespace: check that one */
  char *err = stderr_of(dir);
  const char *line = strstr(err, "beit pretrain:");
  CHECK_TRUE(exit_code == 1 && line && strstr(line, mnt) && strstr(line, "No space left on device"),
             "560 KiB tmpfs: exit %d, message: %.200s", exit_code, line ? line : err);
  free(err);
  char p[1100];
  beit_checkpoint_name(dir, 0, p, sizeof p);
  CHECK_TRUE(same_bytes(p, saved) && fx_checkpoint_step(p) == 8,
             "560 KiB tmpfs: checkpoint.safetensors is unchanged (step %lld, loads)", fx_checkpoint_step(p));
}

static void test_read_only(const char *base, const char *saved) {
  printf("read-only run folder\n");
  char dir[1100];
  fx_path(dir, sizeof dir, "readonly");
  sh("rm -rf '%s' && cp -a '%s' '%s'", dir, base, dir);
  const char *how = NULL, *text = NULL;
  int rc = -1;
  if (can_mount()) {  /* root ignores permission bits: a read-only bind mount in a private namespace */
    char args[2048];
    TEST_PATHF(args, "'%s' pretrain --model micro --data '%s' --batch 32 --epochs 2 --threads 2 --workers 1 "
             "--log-every 1 --save-every 3 --keep 3 --quiet --tokenizer pixel --out '%s' --resume --extend-epochs 2>'%s.err'",
             child_beit_bin(), g_data, dir, dir);
    int s = sh("unshare -m --propagation private sh -c \"mount --bind '%s' '%s' && mount -o remount,bind,ro '%s' && "
               "%s; echo \\$? > '%s.rc'\"", dir, dir, dir, args, dir);
    char rcpath[1120];
    snprintf(rcpath, sizeof rcpath, "%s.rc", dir);
    char *code = slurp(rcpath);
    rc = s == 0 ? atoi(code) : -1;
    free(code);
    how = "read-only bind mount", text = "Read-only file system";
  } else if (geteuid() != 0) {
    sh("chmod 555 '%s'", dir);
    rc = pretrain(dir, 2, 1, NULL, NULL);
    sh("chmod 755 '%s'", dir);
    how = "chmod 555", text = "Permission denied";
  } else if (sh("chattr +i '%s' 2>/dev/null", dir) == 0) {
    rc = pretrain(dir, 2, 1, NULL, NULL);
    sh("chattr -i '%s'", dir);
    how = "chattr +i", text = "Operation not permitted";
  } else {
    printf("  skip (root, and neither a private mount namespace nor chattr +i is available to make a read-only folder)\n");
    return;
  }
  expect_clean_failure(how, dir, rc, text, saved);
}

/* ---- non-finite steps ------------------------------------------------------- */
static void test_nonfinite(void) {
  printf("non-finite loss or gradient (BEIT_TEST_NAN)\n");
  char dir[1100], p[1100];
  /* NaN in two gradients, the later tensor named first: the report names the first in table order */
  fx_path(dir, sizeof dir, "nan-grad");
  sh("rm -rf '%s'", dir);
  child_opts co = {.env = {"BEIT_TEST_NAN=5:blocks.1.mlp.fc2.weight,blocks.0.attn.qkv.weight"}};
  int rc = pretrain(dir, 1, 0, &co, NULL);
  char *err = stderr_of(dir);
  CHECK_TRUE(rc == 1 && strstr(err, "step 5: the gradient of 'blocks.0.attn.qkv.weight'") && strstr(err, "stopping"),
             "NaN gradient at step 5: exit %d, names the step and the first tensor: %.160s", rc,
             strstr(err, "step 5") ? strstr(err, "step 5") : err);
  free(err);
  beit_checkpoint_name(dir, 0, p, sizeof p);
  char model[1100];
  TEST_PATHF(model, "%s/model.safetensors", dir);
  CHECK_TRUE(fx_checkpoint_step(p) == 3 && all_finite(p) && all_finite(model) && log_steps_are(dir, 4),
             "stopped before updating: the checkpoint of step 3 stays, every file on disk is finite, the log ends at step 4");
  fx_path(dir, sizeof dir, "nan-loss");
  sh("rm -rf '%s'", dir);
  co = (child_opts){.env = {"BEIT_TEST_NAN=2:loss"}};
  rc = pretrain(dir, 1, 0, &co, NULL);
  err = stderr_of(dir);
  CHECK_TRUE(rc == 1 && strstr(err, "step 2: the loss (nan) is not finite"), "NaN loss at step 2: exit %d, %.120s", rc,
             strstr(err, "step 2") ? strstr(err, "step 2") : err);
  free(err);
  /* --skip-nonfinite: three bad steps are skipped, the run completes */
  fx_path(dir, sizeof dir, "nan-skip");
  sh("rm -rf '%s'", dir);
  co = (child_opts){.env = {"BEIT_TEST_NAN=4:blocks.0.norm1.weight:3"}};
  const char *skip[] = {"--skip-nonfinite", NULL};
  rc = pretrain(dir, 1, 0, &co, skip);
  err = stderr_of(dir);
  TEST_PATHF(model, "%s/model.safetensors", dir);
  TEST_PATHF(p, "%s/log.jsonl", dir);
  char *log = slurp(p);
  int skipped_lines = 0;
  for (const char *q = log; (q = strstr(q, "\"skipped\": 1")); q++) skipped_lines++;
  CHECK_TRUE(rc == 0 && strstr(err, "step 6: the gradient of 'blocks.0.norm1.weight'") && strstr(err, "3 in a row") &&
             skipped_lines == 3 && log_steps_are(dir, 8) && all_finite(model),
             "--skip-nonfinite: steps 4-6 skipped (3 log lines say so), the run ends at step 8 with finite weights (exit %d)", rc);
  free(err), free(log);
  fx_path(dir, sizeof dir, "nan-cap");
  sh("rm -rf '%s'", dir);
  co = (child_opts){.env = {"BEIT_TEST_NAN=1:loss:100"}};
  rc = pretrain(dir, 2, 0, &co, skip);
  err = stderr_of(dir);
  CHECK_TRUE(rc == 1 && strstr(err, "step 10: 10 non-finite steps in a row"),
             "--skip-nonfinite stops at %d non-finite steps in a row (exit %d): %.100s", BEIT_MAX_NONFINITE_SKIPS, rc,
             strstr(err, "step 10") ? strstr(err, "step 10") : err);
  free(err);
}

/* No file with a NaN is ever written, even when the caller asks. */
static void test_no_nan_written(void) {
  printf("no checkpoint or weights file holds a NaN\n");
  beit_params p;
  beit_params_init(&p);
  beit_params_add(&p, "a.weight", 2, (int64_t[]){2, 3}, 0, 1);
  beit_params_add(&p, "b.bias", 1, (int64_t[]){3}, 0, 0);
  BEIT_CHECK(beit_params_alloc(&p) == BEIT_OK);
  beit_optimizer opt;
  beit_optim_cfg oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .layer_decay = 1};
  BEIT_CHECK(beit_optimizer_init(&opt, &p, &oc) == BEIT_OK);
  char dir[1100], path[1100], copy[1100];
  fx_path(dir, sizeof dir, "nan-save");
  sh("rm -rf '%s' && mkdir -p '%s'", dir, dir);
  beit_train_state st = {.step = 1};
  int ok = beit_checkpoint_save_kept(dir, 2, &p, &opt, &st, NULL, 0) == BEIT_OK;
  beit_checkpoint_name(dir, 0, path, sizeof path);
  TEST_PATHF(copy, "%s.copy", path);
  sh("cp '%s' '%s'", path, copy);
  opt.v[p.t[1].offset + 1] = NAN;
  st.step = 2;
  int refused = beit_checkpoint_save_kept(dir, 2, &p, &opt, &st, NULL, 0) != BEIT_OK;
  CHECK_TRUE(ok && refused && strstr(beit_last_error(), "b.bias") && same_bytes(path, copy),
             "a NaN in an AdamW moment: save refused (%s), the previous checkpoint unchanged", beit_last_error());
  char rot[1100];
  beit_checkpoint_name(dir, 1, rot, sizeof rot);
  CHECK_TRUE(!file_exists(rot), "nothing was rotated for the refused save");
  beit_optimizer_free(&opt);
  beit_params_free(&p);
}

/* ---- memory limits ----------------------------------------------------------- */
static void test_memory_limits(void) {
  printf("configs that need absurd memory are refused before allocating\n");
  char dir[1100];
  fx_path(dir, sizeof dir, "mem-huge");
  /* base at 224 px with 4 px patches: 3137 tokens, attention maps of 256 x 12 x 3137^2 per block */
  beit_config c;
  memset(&c, 0, sizeof c);
  beit_config_preset(&c, "base");
  c.image_size = 224, c.patch_size = 4, c.channels = 1, c.pixel_head = 1, c.rel_pos = BEIT_RELPOS_SHARED;
  c.use_mean_pooling = 1;
  double need = beit_model_memory_bytes(&c, 256, 1, 1);
  const char *args[] = {"--model", "base", "--image-size", "224", "--patch-size", "4", "--batch", "256", NULL};
  child_opts safe = {.as_limit = 16LL << 30};  /* should the check ever fail, the allocation fails too */
  int rc = pretrain(dir, 1, 0, &safe, args);
  char *err = stderr_of(dir);
  CHECK_TRUE(need > 1099511627776.0 && rc == 1 && strstr(err, "needs") && strstr(err, "TiB") && strstr(err, "available"),
             "pretraining 'base' at 224 px / patch 4 / batch 256 (estimated %.2f TiB) is refused: %.220s",
             need / 1099511627776.0, strstr(err, "beit pretrain:") ? strstr(err, "beit pretrain:") : err);
  free(err);
  /* RLIMIT_AS below the need (but MemAvailable above it): the limit is what counts */
  fx_path(dir, sizeof dir, "mem-rlimit");
  c.image_size = 64, c.patch_size = 4;
  beit_config_preset(&c, "tiny");
  need = beit_model_memory_bytes(&c, 128, 1, 1);
  const char *args2[] = {"--model", "tiny", "--image-size", "64", "--patch-size", "4", "--batch", "128", NULL};
  child_opts co = {.as_limit = 3LL << 30};
  if (CHILD_SANITIZED) {
    printf("  skip RLIMIT_AS = 3 GiB (AddressSanitizer cannot run under an address-space limit)\n");
  } else {
    rc = pretrain(dir, 1, 0, &co, args2);
    err = stderr_of(dir);
    int binding = beit_memory_available() > (4LL << 30);  /* else MemAvailable is the lower limit here */
    CHECK_TRUE(need > (3LL << 30) && rc == 1 && strstr(err, "needs") && strstr(err, binding ? "RLIMIT_AS" : "available"),
               "with RLIMIT_AS = 3 GiB, 'tiny' at 64 px / batch 128 (estimated %.1f GiB) is refused: %.200s",
               need / 1073741824.0, strstr(err, "beit pretrain:") ? strstr(err, "beit pretrain:") : err);
    free(err);
  }
  /* a checkpoint whose config asks for 16384 x 64 blocks: refused on opening (more parameters than
   * the file has bytes), nothing allocated */
  char ckpt[1100];
  fx_path(ckpt, sizeof ckpt, "huge-config.safetensors");
  const char *meta[] = {"config", "{\"image_size\": 224, \"patch_size\": 16, \"hidden_size\": 16384, \"num_hidden_layers\": 64, "
                                  "\"num_attention_heads\": 128, \"num_labels\": 10, \"num_channels\": 1}"};
  float one = 1;
  beit_st_tensor t[] = {{"cls_token", 1, (int64_t[]){1}, &one}};
  BEIT_CHECK(beit_st_write(ckpt, t, 1, meta, 1) == BEIT_OK);
  char err_path[1100];
  fx_path(err_path, sizeof err_path, "eval.err");
  char *eargs[] = {(char *)child_beit_bin(), "eval", "--checkpoint", ckpt, "--data", g_data, NULL};
  co = (child_opts){.err_path = err_path, .as_limit = 16LL << 30};
  rc = child_run(eargs, &co);
  err = slurp(err_path);
  CHECK_TRUE(rc == 1 && strstr(err, "describes") && strstr(err, "bytes of tensors"),
             "beit eval of a checkpoint configured at 16384 x 64 blocks (4 bytes of tensors): %.200s", err);
  free(err);
  /* sizes beyond any ViT are refused when the config is read */
  beit_config bad;
  rc = beit_config_from_json(&bad, "{\"image_size\": 224, \"patch_size\": 16, \"hidden_size\": 1000000, "
                                   "\"num_hidden_layers\": 12, \"num_attention_heads\": 10}", "x.json");
  CHECK_TRUE(rc != BEIT_OK && strstr(beit_last_error(), "hidden size 1000000 above the limit"), "config JSON: %s", beit_last_error());
  /* the tokenizer's data loader: 256 images of 4096 x 4096 per batch */
  fx_path(err_path, sizeof err_path, "tok.err");
  fx_path(dir, sizeof dir, "mem-tok");
  char *targs[] = {(char *)child_beit_bin(), "tokenizer", "train", "--data", g_data, "--image-size", "4096", "--batch", "256",
                   "--out", dir, NULL};
  co = (child_opts){.err_path = err_path, .as_limit = 16LL << 30};  /* 48 GiB: refused on any machine */
  rc = child_run(targs, &co);
  err = slurp(err_path);
  CHECK_TRUE(rc != 0 && rc > 0 && strstr(err, "needs") && strstr(err, "available"), "beit tokenizer train at 4096 px, batch 256: %.200s", err);
  free(err);
}

int main(void) {
  TEST_BEGIN("test_reliability");
  char tiny[1000], base[1100], saved[1100];
  snprintf(tiny, sizeof tiny, "%s/tiny-mnist", fx_dir());
  TEST_PATHF(g_data, "mnist:%s", tiny);
  CHECK_TRUE(make_tiny_mnist(tiny, 256, 64) == 0, "tiny dataset in %s", tiny);
  test_checksum_interop();
  /* one 8-step run (checkpoints at 3, 6, 8) that the failure cases start from */
  fx_path(base, sizeof base, "base");
  sh("rm -rf '%s'", base);
  int rc = pretrain(base, 1, 0, NULL, NULL);
  CHECK_TRUE(rc == 0, "base run: 8 steps, checkpoints every 3 (exit %d)", rc);
  fx_path(saved, sizeof saved, "base-checkpoint.copy");
  sh("cp '%s/checkpoint.safetensors' '%s'", base, saved);
  test_keep_and_fallback(base);
  test_file_size_limit(base, saved);
  test_full_tmpfs(base, saved);
  test_read_only(base, saved);
  test_nonfinite();
  test_no_nan_written();
  test_memory_limits();
  return TEST_END();
}
