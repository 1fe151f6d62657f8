/* test_inputs.c - input files nobody should trust (issue 19). A FIFO, directory or
 * device where a file is expected is refused at once by every reader (checkpoint,
 * image, tokenizer, convert --in, config.json, IDX, CIFAR, a run's log), each command
 * run under a timeout so that a hang fails instead of blocking. */
#include <sys/resource.h>
#include <sys/time.h>

#include "child.h"
#include "io/convert.h"
#include "model/beit.h"
#include "test.h"
#include "test_data_fixtures.h"

static const char *DIR_;
static char g_cls[1200], g_img[1200], g_tiny[1000];

static const char *at(const char *name) {
  static char buf[8][1200];
  static int k = 0;
  char *p = buf[k++ % 8];
  fx_path(p, 1200, DIR_, name);
  return p;
}

typedef struct {
  int rc;          /* exit code, -signal, or -SIGKILL after the timeout */
  double secs;
  double rss_mib;  /* the child's peak resident set */
  char *err;       /* its stderr */
} result;

/* Runs beit with args, killed after timeout_s; stderr captured. */
static result run(char *const args[], const child_opts *o, double timeout_s) {
  char err[1300];
  TEST_PATHF(err, "%s/run.err", DIR_);
  child_opts co = o ? *o : (child_opts){0};
  co.err_path = err;
  result r = {0};
  double t0 = beit_now();
  pid_t pid = child_start(args, &co);
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(pid, &status, WNOHANG, &ru) == 0) {
    if (beit_now() - t0 > timeout_s) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      break;
    }
    child_sleep_ms(5);
  }
  r.rc = child_status(status);
  r.secs = beit_now() - t0;
  r.rss_mib = ru.ru_maxrss / 1024.0;
  r.err = test_keep(slurp(err));
  return r;
}

/* The one "beit ..." line of stderr when there is exactly one, else NULL. */
static const char *error_line(const char *err) {
  const char *found = NULL;
  for (const char *p = err; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
    if (strncmp(p, "beit ", 5)) continue;
    if (found) return NULL;
    found = p;
  }
  return found;
}

static int make_fifo(const char *path) {
  unlink(path);
  return mkfifo(path, 0600);
}

/* ---- fixtures ---------------------------------------------------------------- */
static void make_classifier(void) {
  beit_config c = {.image_size = 16, .channels = 3, .patch_size = 4, .num_classes = 10, .use_mean_pooling = 1};
  beit_config_preset(&c, "micro");
  beit_model m;
  BEIT_CHECK(beit_model_init(&m, &c) == BEIT_OK);
  beit_model_init_weights(&m, 3, 1.0f);
  TEST_PATHF(g_cls, "%s", at("cls.safetensors"));
  CHECK_TRUE(beit_checkpoint_export(&m, NULL, BEIT_SCHEME_BEIT, g_cls) == BEIT_OK, "a micro classifier: %s", g_cls);
  CHECK_TRUE(beit_checkpoint_export(&m, NULL, BEIT_SCHEME_HF, at("hf")) == BEIT_OK, "the same in the Hugging Face layout");
  beit_model_free(&m);
  uint8_t *px = fx_picture(16, 16, 3, 1);
  TEST_PATHF(g_img, "%s", at("photo.png"));
  beit_png_save(g_img, px, 16, 16, 3);
  free(px);
}

/* ---- 5. non-regular files ---------------------------------------------------------- */
static void expect_refused(const char *what, char *const args[], const char *path, const char *kind) {
  result r = run(args, NULL, 10);
  const char *line = error_line(r.err);
  int ok = r.rc == 1 && r.secs < 5 && line && strstr(line, path) && strstr(line, "not a regular file") &&
           strstr(line, kind);
  CHECK_TRUE(ok, "%s: exit %d after %.2f s: %.*s", what, r.rc, r.secs,
             line ? (int)strcspn(line, "\n") : 200, line ? line : r.err);
}

static void test_non_regular(void) {
  printf("a FIFO (directory, device) where a file is expected: exit 1 at once, one line naming it\n");
  char *bin = (char *)child_beit_bin();
  char fifo[1200];
  TEST_PATHF(fifo, "%s", at("in.fifo"));
  CHECK_TRUE(make_fifo(fifo) == 0, "mkfifo %s", fifo);
  char *a1[] = {bin, "predict", "--checkpoint", fifo, g_img, NULL};
  expect_refused("predict --checkpoint FIFO", a1, fifo, "a FIFO");
  char *a2[] = {bin, "predict", "--checkpoint", g_cls, fifo, NULL};
  expect_refused("predict --checkpoint CLS FIFO (the image)", a2, fifo, "a FIFO");
  char data[1300];
  TEST_PATHF(data, "mnist:%s", g_tiny);
  char *a3[] = {bin, "tokenizer", "encode", "--tokenizer", fifo, "--data", data, "--out", (char *)at("t.bin"), NULL};
  expect_refused("tokenizer encode --tokenizer FIFO", a3, fifo, "a FIFO");
  char *a4[] = {bin, "convert", "--in", fifo, "--out", (char *)at("conv.safetensors"), NULL};
  expect_refused("convert --in FIFO", a4, fifo, "a FIFO");
  char *a5[] = {bin, "eval", "--checkpoint", fifo, "--data", data, NULL};
  expect_refused("eval --checkpoint FIFO", a5, fifo, "a FIFO");

  /* files found inside folders: config.json of a hub folder, IDX, CIFAR, a run's log */
  char cfg[1200];
  TEST_PATHF(cfg, "%s", at("hf/config.json"));
  CHECK_TRUE(make_fifo(cfg) == 0, "config.json of the hub folder replaced by a FIFO");
  char hf[1200];
  TEST_PATHF(hf, "%s", at("hf"));
  char *a6[] = {bin, "predict", "--checkpoint", hf, g_img, NULL};
  expect_refused("predict --checkpoint HUB-FOLDER (config.json a FIFO)", a6, cfg, "a FIFO");
  const char *idx = fx_dir("inputs/idx-fifo");
  char ipath[1300], ispec[1300];
  TEST_PATHF(ipath, "%s/train-images-idx3-ubyte", idx);
  TEST_PATHF(ispec, "mnist:%s", idx);
  unlink(ipath);  /* a FIFO of the last run would block the writer */
  fx_idx_dir(idx, 4, 4, 5, 5, 0);
  CHECK_TRUE(make_fifo(ipath) == 0, "IDX images file replaced by a FIFO");
  char *a7[] = {bin, "data", "inspect", "--data", ispec, NULL};
  expect_refused("data inspect --data mnist:DIR (images a FIFO)", a7, ipath, "a FIFO");
  const char *cifar = fx_dir("inputs/cifar-fifo");
  char cpath[1300], cspec[1300];
  TEST_PATHF(cpath, "%s/test_batch.bin", cifar);
  TEST_PATHF(cspec, "cifar10:%s", cifar);
  CHECK_TRUE(make_fifo(cpath) == 0, "CIFAR test batch as a FIFO");
  char *a8[] = {bin, "data", "inspect", "--data", cspec, "--split", "test", NULL};
  expect_refused("data inspect --data cifar10:DIR (test_batch.bin a FIFO)", a8, cpath, "a FIFO");
  const char *run_dir = fx_dir("inputs/run-fifo");
  char log[1300];
  TEST_PATHF(log, "%s/log.jsonl", run_dir);
  CHECK_TRUE(make_fifo(log) == 0, "a run folder whose log.jsonl is a FIFO");
  char *a9[] = {bin, "plot", "--out", (char *)at("plots"), (char *)run_dir, NULL};
  result r = run(a9, NULL, 10);
  CHECK_TRUE(r.rc == 1 && r.secs < 5 && strstr(r.err, "not a regular file"), "plot RUN (log.jsonl a FIFO): exit %d after %.2f s: %.*s",
             r.rc, r.secs, (int)strcspn(r.err, "\n"), r.err);

  /* the other kinds that are not regular files */
  char *a10[] = {bin, "predict", "--checkpoint", g_cls, (char *)DIR_, NULL};
  expect_refused("predict --checkpoint CLS DIR (a directory as the image)", a10, DIR_, "a directory");
  char *a11[] = {bin, "predict", "--checkpoint", "/dev/zero", g_img, NULL};
  expect_refused("predict --checkpoint /dev/zero", a11, "/dev/zero", "a character device");
}

int main(void) {
  TEST_BEGIN("test_inputs");
  DIR_ = fx_dir("inputs");
  TEST_PATHF(g_tiny, "%s/tiny-mnist", DIR_);
  CHECK_TRUE(make_tiny_mnist(g_tiny, 64, 32) == 0, "tiny dataset in %s", g_tiny);
  make_classifier();
  test_non_regular();
  return TEST_END();
}
