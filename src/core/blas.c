/* blas.c - the runtime environment beit needs, set without the user knowing
 * the tricks:
 * - Debian's OpenBLAS 0.3.21 picks its kernel set at load time and does not
 *   recognise some AVX-512 Xeons (it falls back to Haswell or even Prescott
 *   kernels, up to 5x slower); it reads OPENBLAS_CORETYPE only while loading.
 * - libgomp's default wait policy spins idle threads; on a machine with any other
 *   load a spinning thread steals the core its partner needs (measured 3.3x
 *   slower at load 4 on 2 cores). Passive waiting costs a futex wake per parallel
 *   region, negligible at our region sizes. libgomp also reads it while loading.
 * So when either needs changing we set it and re-execute ourselves once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/core.h"

#ifdef BEIT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

static char g_note[160];

/* The best kernel set of OpenBLAS 0.3.x this CPU can run. */
static const char *best_core(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return NULL;
}

/* How capable an OpenBLAS kernel set is: 3 AVX-512, 2 AVX2, 1 AVX, 0 older. */
static int core_rank(const char *core) {
  static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const char *const avx2[] = {"Haswell", "Zen"};
  for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++) if (!strcasecmp(core, avx512[i])) return 3;
  for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++) if (!strcasecmp(core, avx2[i])) return 2;
  return !strcasecmp(core, "Sandybridge") ? 1 : 0;
}

/* What beit_blas_describe reports after the kernel choice. */
static void note_kernels(const char *env, const char *best, int weaker) {
  const char *picked = getenv("BEIT_BLAS_PICKED");
  if (picked)
    snprintf(g_note, sizeof g_note, "set by beit: OpenBLAS had picked %s", picked);
  else if (env) /* the user's explicit choice wins; say when the CPU could do better */
    snprintf(g_note, sizeof g_note, "OPENBLAS_CORETYPE=%s from the environment%s%s%s", env,
             weaker ? "; this CPU supports " : "", weaker ? best : "", weaker ? ", unset it" : "");
  else
    snprintf(g_note, sizeof g_note, "detected by OpenBLAS");
}

/* Other tasks ready to run on this machine now: /proc/loadavg's runnable count (its 4th field,
 * "R/T", an instantaneous one, unlike the averages) less this process, in the majority of five
 * looks 2 ms apart; a large number when it cannot be read. */
static int others_runnable(void) {
  int busy = 0, most = 0;
  for (int i = 0; i < 5; i++) {
    FILE *f = fopen("/proc/loadavg", "r");
    int r = 0;
    if (!f || fscanf(f, "%*s %*s %*s %d/", &r) != 1) r = 1 << 20;
    if (f) fclose(f);
    busy += r - 1 > 0;
    most = r - 1 > most ? r - 1 : most;
    if (i < 4) usleep(2000);
  }
  return busy >= 3 ? most : 0;
}

/* How OpenMP threads wait between parallel regions, when the user set neither OMP_WAIT_POLICY nor
 * GOMP_SPINCOUNT. A thread that spins steals the core its partner needs when other work shares the
 * machine (passive waiting made a step 3.3x faster at load 4 on 2 cores), and one that sleeps at
 * once pays a wake-up at every region (spinning 10,000 rounds first made the demo's fine-tuning
 * step 25% faster on an idle 2-core machine: docs/performance.md). So: a short spin when nothing
 * else is ready to run at start-up, passive otherwise. It changes timing only, never a result. */
static void pick_wait_policy(void) {
  int others = others_runnable();
  char why[64];
  if (others == 0) {
    setenv("GOMP_SPINCOUNT", "10000", 1);
    snprintf(why, sizeof why, "spin 10000, then sleep (the machine was idle at start)");
  } else {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    snprintf(why, sizeof why, "passive (%d other runnable task%s at start)", others, others == 1 ? "" : "s");
  }
  setenv("BEIT_WAIT_PICKED", why, 1);
}

const char *beit_wait_describe(void) {
  static char buf[160];
  const char *picked = getenv("BEIT_WAIT_PICKED"), *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
  if (picked)
    snprintf(buf, sizeof buf, "%s; set by beit, OMP_WAIT_POLICY or GOMP_SPINCOUNT overrides", picked);
  else if (policy || spin)
    snprintf(buf, sizeof buf, "%s%s%s%s from the environment", policy ? "OMP_WAIT_POLICY=" : "", policy ? policy : "",
             spin ? (policy ? ", GOMP_SPINCOUNT=" : "GOMP_SPINCOUNT=") : "", spin ? spin : "");
  else
    snprintf(buf, sizeof buf, "libgomp's default");
  return buf;
}

void beit_runtime_init(char **argv) {
  const char *best = best_core(), *core = openblas_get_corename(), *env = getenv("OPENBLAS_CORETYPE");
  int weaker = best && core && core_rank(core) < core_rank(best);
  note_kernels(env, best, weaker);
  if (getenv("BEIT_REEXEC")) return;  /* already restarted once */
  int fix_core = weaker && !env, fix_wait = !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT");
  if (!fix_core && !fix_wait) return;
  if (fix_core) setenv("OPENBLAS_CORETYPE", best, 1), setenv("BEIT_BLAS_PICKED", core, 1);
  if (fix_wait) pick_wait_policy();
  setenv("BEIT_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc?): carry on as we are, and say so */
  if (fix_core) unsetenv("OPENBLAS_CORETYPE"), unsetenv("BEIT_BLAS_PICKED");
  if (fix_wait) unsetenv("OMP_WAIT_POLICY"), unsetenv("GOMP_SPINCOUNT"), unsetenv("BEIT_WAIT_PICKED");
  unsetenv("BEIT_REEXEC");
  if (fix_core) snprintf(g_note, sizeof g_note, "could not switch OpenBLAS from %s to %s kernels (slower)", core, best);
}

/* ---- run-time choices between OpenBLAS-based code and oneDNN: gemm()'s sgemm, conv2d's method ----
 * Each is [0] always built, [1] oneDNN (built when libdnnl-dev was found, then the default); read
 * from its environment variable at the first use; a value the binary cannot honour warns. */
typedef struct {
  const char *env;           /* "BEIT_GEMM" */
  const char *names[2];      /* {"openblas", "dnnl"} */
  pthread_once_t once;
  int pick;
  char note[160];
} lib_choice;

static lib_choice g_gemm = {"BEIT_GEMM", {"openblas", "dnnl"}, PTHREAD_ONCE_INIT, 0, ""};
static lib_choice g_conv = {"BEIT_CONV", {"im2col", "dnnl"}, PTHREAD_ONCE_INIT, 0, ""};

static int dnnl_built(void) {
#ifdef BEIT_HAVE_DNNL
  return 1;
#else
  return 0;
#endif
}

static void choice_pick(lib_choice *c) {
  int def = dnnl_built(), lib = def;
  const char *env = getenv(c->env), *n0 = c->names[0], *n1 = c->names[1];
  snprintf(c->note, sizeof c->note, "the default; %s=%s%s%s picks", c->env, n0, def ? "|" : "", def ? n1 : "");
  if (env && *env) {
    int want = !strcmp(env, n0) ? 0 : !strcmp(env, n1) ? 1 : -1;
    if (want < 0 || (want == 1 && !def)) {
      char other[64];
      snprintf(other, sizeof other, def ? "not one of %s, %s" : "not one of %s (the only one built in)", n0, n1);
      snprintf(c->note, sizeof c->note, "%s=%.40s ignored: %s", c->env, env,
               want >= 0 ? "not built into this binary (libdnnl-dev was missing)" : other);
      fprintf(stderr, "beit: warning: %s; using %s\n", c->note, c->names[def]);
    } else {
      lib = want;
      snprintf(c->note, sizeof c->note, "%s=%s from the environment", c->env, env);
    }
  }
  __atomic_store_n(&c->pick, lib, __ATOMIC_RELAXED);
}

static void gemm_pick(void) { choice_pick(&g_gemm); }
static void conv_pick(void) { choice_pick(&g_conv); }

static int choice_active(lib_choice *c) {
  pthread_once(&c->once, c == &g_gemm ? gemm_pick : conv_pick);
  return __atomic_load_n(&c->pick, __ATOMIC_RELAXED);
}

static int choice_set(lib_choice *c, int lib, const char *what) {
  choice_active(c);
  if (lib < 0 || lib > 1) return beit_errorf("no %s number %d", what, lib);
  if (lib == 1 && !dnnl_built()) return beit_errorf("the %s %s is not built into this binary", c->names[1], what);
  __atomic_store_n(&c->pick, lib, __ATOMIC_RELAXED);
  snprintf(c->note, sizeof c->note, "set by the program");
  return BEIT_OK;
}

/* e.g. "gemm dnnl (oneDNN 2.6.3; the default; ...)"; `base` names what choice 0 runs on */
static void choice_describe(lib_choice *c, const char *what, const char *base, char *buf, size_t n) {
  int lib = choice_active(c);
  char version[64];
  snprintf(version, sizeof version, "%s", base);
#ifdef BEIT_HAVE_DNNL
  if (lib == 1) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(version, sizeof version, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  }
#endif
  snprintf(buf, n, "%s %s (%s; %.150s)", what, c->names[lib], version, c->note);
}

const char *beit_gemm_name(beit_gemm_lib lib) {
  return (int)lib >= 0 && lib < BEIT_GEMM_COUNT ? g_gemm.names[lib] : "?";
}
int beit_gemm_built(beit_gemm_lib lib) { return lib == BEIT_GEMM_OPENBLAS || (lib == BEIT_GEMM_DNNL && dnnl_built()); }
beit_gemm_lib beit_gemm_active(void) { return (beit_gemm_lib)choice_active(&g_gemm); }
int beit_gemm_set(beit_gemm_lib lib) { return choice_set(&g_gemm, (int)lib, "gemm library"); }

const char *beit_conv_name(beit_conv_impl c) {
  return (int)c >= 0 && c < BEIT_CONV_COUNT ? g_conv.names[c] : "?";
}
int beit_conv_built(beit_conv_impl c) { return c == BEIT_CONV_IM2COL || (c == BEIT_CONV_DNNL && dnnl_built()); }
beit_conv_impl beit_conv_active(void) { return (beit_conv_impl)choice_active(&g_conv); }
int beit_conv_set(beit_conv_impl c) { return choice_set(&g_conv, (int)c, "convolution"); }

const char *beit_blas_describe(void) {
  static char buf[768];
  const char *cfg = openblas_get_config(), *core = openblas_get_corename();
  /* the config string starts with "OpenBLAS 0.3.21 ...": keep its first two words */
  const char *end = cfg ? strchr(cfg, ' ') : NULL;
  if (end) end = strchr(end + 1, ' ');
  int len = !cfg ? 0 : end ? (int)(end - cfg) : (int)strlen(cfg);
  char gemm[256], conv[256];
  choice_describe(&g_gemm, "gemm", "OpenBLAS", gemm, sizeof gemm);
  choice_describe(&g_conv, "conv", "OpenBLAS sgemm", conv, sizeof conv);
  snprintf(buf, sizeof buf, "%.*s, kernels %s (%s); %s; %s", len, cfg ? cfg : "", core ? core : "?",
           g_note[0] ? g_note : "not initialised", gemm, conv);
  return buf;
}
