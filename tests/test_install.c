/* test_install.c - libbeit as another program uses it: `cmake --install` of
 * this build into a temporary prefix; examples/classify.c copied out of the
 * tree and compiled with nothing but pkg-config's flags, against libbeit.so and
 * (a prefix holding only libbeit.a) statically; neither binary nor library links
 * MPI; both print exactly what `beit predict` prints for a timm-layout
 * checkpoint. And the installed libraries export only beit_* symbols, and
 * never call exit(). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "fixture.h"
#include "model/convert.h"
#include "io/image.h"
#include "test.h"

static char g_tmp[256];
static char g_env[600];  /* OPENBLAS_CORETYPE=... for both programs, or "" */

/* Runs a shell command built from fmt; its stdout (and stderr) into out. Returns the exit status. */
static int shf(char *out, size_t n, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char sink[4096];
  size_t k = 0, got;
  if (!out) out = sink, n = sizeof sink;
  while (k + 1 < n && (got = fread(out + k, 1, n - 1 - k, p)) > 0) k += got;
  out[k] = 0;
  while (fread(sink, 1, sizeof sink, p) > 0) {}
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A 1000-class micro classifier in timm's names and a 23x19 photo, so the eval
 * transform resizes and crops. */
static int make_inputs(const char *ckpt, const char *img) {
  beit_config c = {.image_size = 16, .channels = 3, .patch_size = 4, .num_classes = 1000, .use_mean_pooling = 1};
  beit_config_preset(&c, "micro");
  beit_model m;
  if (beit_model_init(&m, &c) != BEIT_OK) return BEIT_ERR;
  beit_model_init_weights(&m, 21, 1.0f);
  float *hw = beit_params_get(&m.params, "head.weight");
  for (int i = 0; i < 1000 * c.dim; i++) hw[i] *= 50;  /* distinct probabilities */
  int rc = beit_checkpoint_export(&m, NULL, BEIT_SCHEME_TIMM, ckpt);
  beit_model_free(&m);
  uint8_t px[19 * 23 * 3];
  beit_rng r;
  beit_rng_seed(&r, 8, BEIT_RNG_TEST, 0, 0);
  for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)beit_rng_randint(&r, 0, 255);
  return rc == BEIT_OK ? beit_png_save(img, px, 19, 23, 3) : rc;
}

/* Symbols a library defines globally that do not start with beit_ (first few), and how many start with it. */
static void check_exports(const char *what, const char *nm_cmd) {
  char out[8192], bad[8192];
  int rc = shf(out, sizeof out, "%s | awk 'NF==3 && $2 ~ /[A-TV-Z]/ {print $3}' | grep -c '^beit_'", nm_cmd);
  int good = rc == 0 ? atoi(out) : 0;
  shf(bad, sizeof bad, "%s | awk 'NF==3 && $2 ~ /[A-TV-Z]/ {print $3}' | grep -v '^beit_' | head -20 | tr '\\n' ' '",
      nm_cmd);
  CHECK_TRUE(good >= 10 && !bad[0], "%s exports %d beit_* symbols and nothing else%s%s", what, good,
             bad[0] ? "; also: " : "", bad);
}

int main(void) {
  TEST_BEGIN("test_install");
  beit_set_threads(2);
  const char *bin = child_beit_bin();
  snprintf(g_tmp, sizeof g_tmp, "/tmp/beit-install-XXXXXX");
  if (!mkdtemp(g_tmp)) {
    CHECK_TRUE(0, "mkdtemp");
    return TEST_END();
  }
  char out[8192], ckpt[400], img[400], want[8192];
  snprintf(ckpt, sizeof ckpt, "%s/in1k_timm.safetensors", g_tmp);
  snprintf(img, sizeof img, "%s/photo.png", g_tmp);
  CHECK_TRUE(make_inputs(ckpt, img) == BEIT_OK, "a 1000-class timm checkpoint and a 23x19 PNG in %s", g_tmp);

  int rc = shf(out, sizeof out, "'%s' --install '%s' --prefix '%s/p' 2>&1", BEIT_CMAKE, BEIT_BUILD_DIR, g_tmp);
  char lib_so[400], lib_a[400];
  snprintf(lib_so, sizeof lib_so, "%s/p/lib/libbeit.so", g_tmp);
  snprintf(lib_a, sizeof lib_a, "%s/p/lib/libbeit.a", g_tmp);
  CHECK_TRUE(rc == 0 && file_exists(lib_so) && file_exists(lib_a),
             "cmake --install --prefix: lib/libbeit.so, lib/libbeit.a%s%s", rc ? ": " : "", rc ? out : "");
  rc = shf(out, sizeof out, "readelf -d '%s' | sed -n 's/.*soname: //p'", lib_so);
  out[strcspn(out, "\n")] = 0;
  CHECK_TRUE(rc == 0 && !strcmp(out, "[libbeit.so.0]"), "versioned soname %s", out);
  rc = shf(out, sizeof out,
           "grep -c '^#include' '%s/p/include/beit.h'; grep '^#include' '%s/p/include/beit.h' | tr '\\n' ' '", g_tmp,
           g_tmp);
  const char *incs = strchr(out, '\n') ? strchr(out, '\n') + 1 : "";
  CHECK_TRUE(rc == 0 && incs[0] && !strchr(incs, '"') && !strchr(incs, '/'),
             "include/beit.h includes only standard headers: %.200s", incs);

  /* libbeit.a first: the relocatable object must be position-independent for a shared link */
  char nm[600];
  snprintf(nm, sizeof nm, "nm -D --defined-only '%s'", lib_so);
  check_exports("libbeit.so", nm);
  snprintf(nm, sizeof nm, "nm -g --defined-only '%s'", lib_a);
  check_exports("libbeit.a", nm);
  rc = shf(out, sizeof out,
           "nm -u '%s' '%s' | awk '{print $NF}' | grep -E '^(exit|_exit|MPI_.*|ompi_.*)$' | sort -u | tr '\\n' ' '",
           lib_so, lib_a);
  CHECK_TRUE(file_exists(lib_so) && file_exists(lib_a) && !out[0],
             "neither library calls exit() or MPI (undefined: %s)", out[0] ? out : "none of them");
  rc = shf(out, sizeof out,
           "cd '%s' && cc -shared -o pic_check.so -Wl,--whole-archive '%s' -Wl,--no-whole-archive 2>&1", g_tmp, lib_a);
  CHECK_TRUE(rc == 0, "libbeit.a links into a shared object (position-independent)%s%.300s", rc ? ": " : "", out);

  /* examples/classify.c out of the tree, with pkg-config's flags only */
  const char *san = CHILD_SANITIZED ? " -fsanitize=address,undefined" : "";  /* as the library was built */
  rc = shf(out, sizeof out,
           "cp '%s/examples/classify.c' '%s/' && cd '%s' && cp -r p ps && rm -f ps/lib/libbeit.so* && "
           "cc -std=c11 -Wall -Wextra -Werror -pedantic%s classify.c $(PKG_CONFIG_PATH=p/lib/pkgconfig "
           "pkg-config --cflags --libs beit) -o classify_shared && cc -std=c11%s classify.c "
           "$(PKG_CONFIG_PATH=ps/lib/pkgconfig pkg-config --static --cflags --libs beit) -o classify_static 2>&1",
           fx_root(), g_tmp, g_tmp, san, san);
  CHECK_TRUE(rc == 0, "cc classify.c $(pkg-config --cflags --libs beit): shared, and static (--static, only "
             "libbeit.a)%s%.2000s", rc ? ":\n" : "", rc ? out : "");
  rc = shf(out, sizeof out, "cd '%s' && LD_LIBRARY_PATH=p/lib ldd classify_shared | grep -c libbeit.so.0; "
           "LD_LIBRARY_PATH=p/lib ldd classify_shared classify_static | grep -ci mpi", g_tmp);
  CHECK_TRUE(atoi(out) == 1 && strchr(out, '\n') && atoi(strchr(out, '\n') + 1) == 0,
             "ldd: classify_shared loads libbeit.so.0; neither binary loads an MPI library");
  rc = shf(out, sizeof out, "cd '%s' && readelf -d classify_static | grep -c 'libbeit'", g_tmp);
  CHECK_TRUE(atoi(out) == 0, "readelf: classify_static does not need libbeit.so");

  /* the same answer as `beit predict`, on the same BLAS kernels (beit may re-execute itself with
   * OPENBLAS_CORETYPE, which a library cannot do for its host; docs/c-api.md) */
  shf(out, sizeof out, "'%s' version | sed -n 's/^BLAS: .*kernels \\([A-Za-z0-9]*\\).*/\\1/p'", bin);
  out[strcspn(out, "\n")] = 0;
  snprintf(g_env, sizeof g_env, "%s%.64s", out[0] ? "OPENBLAS_CORETYPE=" : "", out);
  int prc = shf(want, sizeof want, "%s '%s' predict --checkpoint '%s' '%s' 2>/dev/null", g_env, bin, ckpt, img);
  CHECK_TRUE(prc == 0 && strstr(want, "%  "), "beit predict (%s):\n%s", g_env[0] ? g_env : "BLAS as detected", want);
  const char *kind[2] = {"shared", "static"};
  for (int k = 0; k < 2; k++) {
    rc = shf(out, sizeof out, "cd '%s' && %s LD_LIBRARY_PATH=p/lib ./classify_%s '%s' '%s' 2>&1", g_tmp, g_env, kind[k],
             ckpt, img);
    CHECK_TRUE(rc == 0 && prc == 0 && !strcmp(out, want),
               "classify (%s link) prints the same top-5 as beit predict%s%s", kind[k], strcmp(out, want) ? ":\n" : "",
               strcmp(out, want) ? out : "");
  }
  rc = shf(out, sizeof out,
           "cd '%s' && LD_LIBRARY_PATH=p/lib ./classify_shared nonesuch.safetensors '%s' 2>&1; echo \"exit $?\"", g_tmp,
           img);
  CHECK_TRUE(strstr(out, "classify: ") && strstr(out, "nonesuch.safetensors") && strstr(out, "exit 1"),
             "a missing checkpoint: the library's message, exit 1: %.200s", out);

  char cleanup[400];
  snprintf(cleanup, sizeof cleanup, "rm -rf '%s'", g_tmp);
  if (test_failed_ == 0 && system(cleanup) != 0) printf("  (could not remove %s)\n", g_tmp);
  return TEST_END();
}
