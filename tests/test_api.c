/* test_api.c - the public API misused: the wrong task for a model's heads, a
 * batch above max_batch, NULL inputs, a backward with nothing to replay, a
 * tokenizer that is not loaded. Each call must return BEIT_ERR with a message
 * naming the problem; each runs in a child process so an abort shows up as one
 * failed check (with its signal) rather than ending the test. Then the same
 * misuse in this process, followed by a correct call that still works. */
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "model/beit.h"
#include "model/dvae.h"
#include "test.h"
#include "train/tokenizer.h"

enum { S = 8, P = 4, NP = 4, B = 2, V = 16, K = 3 };

static float g_images[(B + 1) * S * S];
static uint8_t g_mask[(B + 1) * NP] = {1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1};
static int32_t g_tokens[(B + 1) * NP] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static int32_t g_labels[B + 1] = {0, 2, 1};

/* A tiny model: a pretraining one (MIM head) or a classifier; reserved for B
 * images unless max_batch is 0. */
static beit_model make_model(int classifier, int max_batch, int with_grad) {
  beit_config c = {.image_size = S, .channels = 1, .patch_size = P, .dim = 8, .depth = 1, .heads = 2,
                   .mlp_ratio = 2, .vocab_size = classifier ? 0 : V, .num_classes = classifier ? K : 0,
                   .rel_pos = classifier ? BEIT_RELPOS_PER_BLOCK : BEIT_RELPOS_SHARED, .use_mean_pooling = 1,
                   .ln_eps = 1e-6f};
  beit_model m;
  BEIT_CHECK(beit_model_init(&m, &c) == BEIT_OK);
  beit_model_init_weights(&m, 1, 0.001f);
  if (max_batch) BEIT_CHECK(beit_model_reserve(&m, max_batch, with_grad) == BEIT_OK);
  return m;
}

static beit_input batch(int n) {
  return (beit_input){.B = n, .images = g_images, .mask = g_mask, .tokens = g_tokens, .labels = g_labels};
}

/* ---- the misuse cases: each returns the status of the wrong call ---- */
static int classify_on_mim(void) {  /* the repro: params.c:75 abort */
  beit_model m = make_model(0, B, 0);
  beit_input in = batch(B);
  int rc = beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int mim_on_classifier(void) {
  beit_model m = make_model(1, B, 0);
  beit_input in = batch(B);
  int rc = beit_forward(&m, BEIT_TASK_MIM, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int pixel_on_mim(void) {
  beit_model m = make_model(0, B, 0);
  beit_input in = batch(B);
  int rc = beit_forward(&m, BEIT_TASK_PIXEL, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int batch_above_max(void) {
  beit_model m = make_model(0, B, 0);
  beit_input in = batch(B + 1);
  int rc = beit_forward(&m, BEIT_TASK_MIM, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int no_arena(void) {
  beit_model m = make_model(1, 0, 0);
  beit_input in = batch(B);
  int rc = beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int null_batch(void) {
  beit_model m = make_model(1, B, 0);
  int rc = beit_forward(&m, BEIT_TASK_CLASSIFY, NULL, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int null_model(void) {
  beit_input in = batch(B);
  return beit_forward(NULL, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
}
static int null_images(void) {
  beit_model m = make_model(1, B, 0);
  beit_input in = batch(B);
  in.images = NULL;
  int rc = beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int null_mask(void) {
  beit_model m = make_model(0, B, 0);
  beit_input in = batch(B);
  in.mask = NULL;
  int rc = beit_forward(&m, BEIT_TASK_MIM, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int null_tokens(void) {
  beit_model m = make_model(0, B, 0);
  beit_input in = batch(B);
  in.tokens = NULL;
  int rc = beit_forward(&m, BEIT_TASK_MIM, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int token_out_of_range(void) {
  beit_model m = make_model(0, B, 0);
  int32_t bad[B * NP] = {1, 2, V, 4, 5, 6, 7, 8};  /* position 2 is masked */
  beit_input in = batch(B);
  in.tokens = bad;
  int rc = beit_forward(&m, BEIT_TASK_MIM, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int label_out_of_range(void) {
  beit_model m = make_model(1, B, 0);
  int32_t bad[B] = {0, K};
  beit_input in = batch(B);
  in.labels = bad;
  int rc = beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int unknown_task(void) {
  beit_model m = make_model(1, B, 0);
  beit_input in = batch(B);
  int rc = beit_forward(&m, (beit_task)7, &in, 0, 0, 0, NULL);
  beit_model_free(&m);
  return rc;
}
static int encode_batch_zero(void) {
  beit_model m = make_model(0, B, 0);
  int rc = beit_encode(&m, g_images, 0);
  beit_model_free(&m);
  return rc;
}
static int backward_without_grad(void) {
  beit_model m = make_model(1, B, 0);
  beit_input in = batch(B);
  BEIT_CHECK(beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, NULL) == BEIT_OK);
  int rc = beit_backward(&m, &in);
  beit_model_free(&m);
  return rc;
}
static int backward_without_forward(void) {
  beit_model m = make_model(1, B, BEIT_GRAD_KEEP);
  beit_input in = batch(B);
  int rc = beit_backward(&m, &in);
  beit_model_free(&m);
  return rc;
}
static int backward_twice(void) {
  beit_model m = make_model(0, B, BEIT_GRAD_KEEP);
  beit_input in = batch(B);
  BEIT_CHECK(beit_forward(&m, BEIT_TASK_MIM, &in, 1, 0, 0, NULL) == BEIT_OK && beit_backward(&m, &in) == BEIT_OK);
  int rc = beit_backward(&m, &in);
  beit_model_free(&m);
  return rc;
}
static int backward_other_batch(void) {
  beit_model m = make_model(0, B, BEIT_GRAD_KEEP);
  beit_input in = batch(B), one = batch(1);
  BEIT_CHECK(beit_forward(&m, BEIT_TASK_MIM, &in, 1, 0, 0, NULL) == BEIT_OK);
  int rc = beit_backward(&m, &one);
  beit_model_free(&m);
  return rc;
}
static int backward_after_encode(void) {
  beit_model m = make_model(1, B, BEIT_GRAD_KEEP);
  beit_input in = batch(B);
  BEIT_CHECK(beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 1, 0, 0, NULL) == BEIT_OK);
  BEIT_CHECK(beit_encode(&m, g_images, B) == BEIT_OK);
  int rc = beit_backward(&m, &in);
  beit_model_free(&m);
  return rc;
}
static int reserve_zero(void) {
  beit_model m = make_model(1, 0, 0);
  int rc = beit_model_reserve(&m, 0, 0);
  beit_model_free(&m);
  return rc;
}
static int tokenizer_not_loaded(void) {
  beit_tokenizer t;
  memset(&t, 0, sizeof t);
  int32_t tok[NP];
  return beit_tokenizer_encode(&t, g_images, 1, tok);
}
static int dvae_backward_without_forward(void) {
  dvae_config c;
  dvae_config_small(&c);
  dvae d;
  BEIT_CHECK(dvae_create(&d, &c, 1) == BEIT_OK);
  dvae_train_opts o = {.tau = 1, .beta = 1};
  int rc = dvae_backward(&d, &o);
  dvae_free(&d);
  return rc;
}
static int save_unallocated(void) {
  beit_params p;
  beit_params_init(&p);
  int64_t shape[1] = {4};
  beit_params_add(&p, "w", 1, shape, 0, 0);
  int rc = beit_params_save(&p, "/nonexistent-dir/never.safetensors", NULL, 0);
  beit_params_free(&p);
  return rc;
}

typedef struct {
  const char *what;
  int (*call)(void);
  const char *needle;  /* the message must contain this */
} misuse;

static const misuse CASES[] = {
    {"beit_forward(CLASSIFY) on a pretraining (MIM) model", classify_on_mim, "classifier"},
    {"beit_forward(MIM) on a classifier", mim_on_classifier, "lm_head"},
    {"beit_forward(PIXEL) on a MIM model", pixel_on_mim, "pixel_head"},
    {"beit_forward with B above max_batch", batch_above_max, "1..2"},
    {"beit_forward before beit_model_reserve", no_arena, "beit_model_reserve"},
    {"beit_forward with a NULL batch", null_batch, "NULL"},
    {"beit_forward with a NULL model", null_model, "NULL"},
    {"beit_forward with NULL images", null_images, "images"},
    {"beit_forward(MIM) without a mask", null_mask, "mask"},
    {"beit_forward(MIM) without tokens", null_tokens, "tokens"},
    {"beit_forward(MIM) with a token outside the vocabulary", token_out_of_range, "outside 0..15"},
    {"beit_forward(CLASSIFY) with a label outside the classes", label_out_of_range, "outside 0..2"},
    {"beit_forward with an unknown task", unknown_task, "unknown task"},
    {"beit_encode of 0 images", encode_batch_zero, "batch of 0"},
    {"beit_backward on a forward-only arena", backward_without_grad, "without gradients"},
    {"beit_backward before any forward", backward_without_forward, "no beit_forward"},
    {"beit_backward twice after one forward", backward_twice, "no beit_forward"},
    {"beit_backward with another batch size", backward_other_batch, "batch of 1"},
    {"beit_backward after beit_encode", backward_after_encode, "no beit_forward"},
    {"beit_model_reserve for 0 images", reserve_zero, "max_batch 0"},
    {"beit_tokenizer_encode on a tokenizer never loaded", tokenizer_not_loaded, "not loaded"},
    {"dvae_backward without dvae_forward_train", dvae_backward_without_forward, "dvae_forward_train"},
    {"beit_params_save of an unallocated table", save_unallocated, "not allocated"},
};
enum { NCASES = sizeof CASES / sizeof CASES[0] };

/* Runs one case in a child: status and message come back through a pipe. */
static void run_in_child(const misuse *c) {
  int fd[2];
  BEIT_CHECK(pipe(fd) == 0);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    char msg[600];
    int rc = c->call();
    int n = snprintf(msg, sizeof msg, "%d %s", rc, rc == BEIT_ERR ? beit_last_error() : "");
    ssize_t w = write(fd[1], msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(w > 0 ? 0 : 3);
  }
  close(fd[1]);
  char buf[600] = "";
  ssize_t got = 0, r;
  while (got < (ssize_t)sizeof buf - 1 && (r = read(fd[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
  buf[got > 0 ? got : 0] = 0;
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    CHECK_TRUE(0, "%s: the process died of signal %d", c->what, WTERMSIG(status));
    return;
  }
  int rc = atoi(buf);
  const char *msg = strchr(buf, ' ') ? strchr(buf, ' ') + 1 : "";
  CHECK_TRUE(rc == BEIT_ERR && strstr(msg, c->needle), "%s: BEIT_ERR naming '%s' (got %d: %s)", c->what, c->needle,
             rc, msg);
}

/* The views refuse what they cannot show. */
static void test_views(void) {
  beit_model m = make_model(0, 0, 0);
  CHECK_TRUE(beit_logits(&m) == NULL && beit_attention(&m, 0) == NULL && beit_hidden(&m, 0) == NULL,
             "views of a model without an arena are NULL");
  BEIT_CHECK(beit_model_reserve(&m, B, 0) == BEIT_OK);
  CHECK_TRUE(beit_hidden(&m, m.cfg.depth) == NULL, "a forward-only arena before any forward shows no hidden state");
  BEIT_CHECK(beit_encode(&m, g_images, B) == BEIT_OK);
  CHECK_TRUE(beit_attention(&m, m.cfg.depth) == NULL && beit_hidden(&m, m.cfg.depth + 1) == NULL &&
                 beit_hidden(&m, -1) == NULL && beit_hidden(&m, m.cfg.depth) != NULL,
             "views of a layer outside 0..depth are NULL");
  beit_model_free(&m);
}

/* All the misuse once more in this process, then correct calls on the same models. */
static void test_survives(void) {
  int errors = 0;
  for (int i = 0; i < NCASES; i++) errors += CASES[i].call() == BEIT_ERR;
  beit_model m = make_model(0, B, BEIT_GRAD_KEEP);
  beit_input in = batch(B);
  beit_stats st;
  int bad = beit_forward(&m, BEIT_TASK_CLASSIFY, &in, 0, 0, 0, &st) == BEIT_ERR;
  int ok = beit_forward(&m, BEIT_TASK_MIM, &in, 1, 0, 0, &st) == BEIT_OK && isfinite(st.loss) && st.count == 4 &&
           beit_backward(&m, &in) == BEIT_OK;
  CHECK_TRUE(errors == NCASES && bad && ok,
             "in one process: %d of %d misuses refused, then a MIM forward (loss %.4f over %lld masked tokens) and "
             "backward work on the model a classify call was refused on",
             errors, NCASES, st.loss, (long long)st.count);
  beit_model_free(&m);
}

int main(void) {
  TEST_BEGIN("test_api");
  beit_set_threads(1);
  for (int i = 0; i < (B + 1) * S * S; i++) g_images[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
  for (int i = 0; i < NCASES; i++) run_in_child(&CASES[i]);
  test_views();
  test_survives();
  return TEST_END();
}
