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

void beit_runtime_init(char **argv) {
  const char *best = best_core(), *core = openblas_get_corename(), *env = getenv("OPENBLAS_CORETYPE");
  int weaker = best && core && core_rank(core) < core_rank(best);
  note_kernels(env, best, weaker);
  if (getenv("BEIT_REEXEC")) return;  /* already restarted once */
  int fix_core = weaker && !env, fix_wait = !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT");
  if (!fix_core && !fix_wait) return;
  if (fix_core) setenv("OPENBLAS_CORETYPE", best, 1), setenv("BEIT_BLAS_PICKED", core, 1);
  if (fix_wait) setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv("BEIT_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc?): carry on as we are, and say so */
  if (fix_core) unsetenv("OPENBLAS_CORETYPE"), unsetenv("BEIT_BLAS_PICKED");
  if (fix_wait) unsetenv("OMP_WAIT_POLICY");
  unsetenv("BEIT_REEXEC");
  if (fix_core) snprintf(g_note, sizeof g_note, "could not switch OpenBLAS from %s to %s kernels (slower)", core, best);
}

/* ---- gemm()'s library ---- */
static const char *const GEMM_NAMES[BEIT_GEMM_COUNT] = {"openblas", "dnnl"};
static pthread_once_t g_gemm_once = PTHREAD_ONCE_INIT;
static int g_gemm;
static char g_gemm_note[160];

const char *beit_gemm_name(beit_gemm_lib lib) {
  return (int)lib >= 0 && lib < BEIT_GEMM_COUNT ? GEMM_NAMES[lib] : "?";
}

int beit_gemm_built(beit_gemm_lib lib) {
#ifdef BEIT_HAVE_DNNL
  if (lib == BEIT_GEMM_DNNL) return 1;
#endif
  return lib == BEIT_GEMM_OPENBLAS;
}

static void gemm_pick(void) {
  beit_gemm_lib def = beit_gemm_built(BEIT_GEMM_DNNL) ? BEIT_GEMM_DNNL : BEIT_GEMM_OPENBLAS, lib = def;
  const char *env = getenv("BEIT_GEMM");
  snprintf(g_gemm_note, sizeof g_gemm_note, "the default; BEIT_GEMM=openblas%s picks", def ? "|dnnl" : "");
  if (env && *env) {
    int want = -1;
    for (int i = 0; i < BEIT_GEMM_COUNT; i++) if (!strcmp(env, GEMM_NAMES[i])) want = i;
    if (want < 0 || !beit_gemm_built((beit_gemm_lib)want)) {
      snprintf(g_gemm_note, sizeof g_gemm_note, "BEIT_GEMM=%.40s ignored: %s", env,
               want >= 0 ? "not built into this binary (libdnnl-dev was missing)"
               : def ? "not one of openblas, dnnl" : "not one of openblas (the only one built in)");
      fprintf(stderr, "beit: warning: %s; using %s\n", g_gemm_note, GEMM_NAMES[def]);
    } else {
      lib = (beit_gemm_lib)want;
      snprintf(g_gemm_note, sizeof g_gemm_note, "BEIT_GEMM=%s from the environment", env);
    }
  }
  __atomic_store_n(&g_gemm, (int)lib, __ATOMIC_RELAXED);
}

beit_gemm_lib beit_gemm_active(void) {
  pthread_once(&g_gemm_once, gemm_pick);
  return (beit_gemm_lib)__atomic_load_n(&g_gemm, __ATOMIC_RELAXED);
}

int beit_gemm_set(beit_gemm_lib lib) {
  pthread_once(&g_gemm_once, gemm_pick);
  if ((int)lib < 0 || lib >= BEIT_GEMM_COUNT) return beit_errorf("no gemm library number %d", (int)lib);
  if (!beit_gemm_built(lib)) return beit_errorf("the %s gemm is not built into this binary", GEMM_NAMES[lib]);
  __atomic_store_n(&g_gemm, (int)lib, __ATOMIC_RELAXED);
  snprintf(g_gemm_note, sizeof g_gemm_note, "set by the program");
  return BEIT_OK;
}

/* e.g. "gemm dnnl (oneDNN 2.6.3; the default; ...)" */
static void gemm_describe(char *buf, size_t n) {
  beit_gemm_lib lib = beit_gemm_active();
  char version[64] = "OpenBLAS";
#ifdef BEIT_HAVE_DNNL
  if (lib == BEIT_GEMM_DNNL) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(version, sizeof version, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  }
#endif
  snprintf(buf, n, "gemm %s (%s; %s)", GEMM_NAMES[lib], version, g_gemm_note);
}

const char *beit_blas_describe(void) {
  static char buf[512];
  const char *cfg = openblas_get_config(), *core = openblas_get_corename();
  /* the config string starts with "OpenBLAS 0.3.21 ...": keep its first two words */
  const char *end = cfg ? strchr(cfg, ' ') : NULL;
  if (end) end = strchr(end + 1, ' ');
  int len = !cfg ? 0 : end ? (int)(end - cfg) : (int)strlen(cfg);
  char gemm[256];
  gemm_describe(gemm, sizeof gemm);
  snprintf(buf, sizeof buf, "%.*s, kernels %s (%s); %s", len, cfg ? cfg : "", core ? core : "?",
           g_note[0] ? g_note : "not initialised", gemm);
  return buf;
}
