/* cpu.c - which vector ISA the kernels of src/ops/simd*.c run: the best this CPU
 * supports, unless BEIT_ISA names another. Picked once, at the first kernel call,
 * so the binary itself stays portable (no -march=native needed). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const char *const NAMES[BEIT_ISA_COUNT] = {"generic", "avx2", "avx512"};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_isa;  /* beit_isa, read with __atomic so beit_isa_set may change it */
static char g_note[160];

const char *beit_isa_name(beit_isa isa) { return (int)isa >= 0 && isa < BEIT_ISA_COUNT ? NAMES[isa] : "?"; }

int beit_isa_supported(beit_isa isa) {
  if (isa == BEIT_ISA_GENERIC) return 1;
#if defined(__x86_64__)
  __builtin_cpu_init();  /* libgcc's checks include the OS saving the vector registers (XGETBV) */
  if (isa == BEIT_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == BEIT_ISA_AVX512) return __builtin_cpu_supports("avx512f") != 0;
#endif
  return 0;
}

static beit_isa best(void) {
  for (int i = BEIT_ISA_COUNT - 1; i > 0; i--)
    if (beit_isa_supported((beit_isa)i)) return (beit_isa)i;
  return BEIT_ISA_GENERIC;
}

/* The choice, and a warning when BEIT_ISA names something this binary cannot run. */
static void pick(void) {
  beit_isa b = best(), isa = b;
  const char *env = getenv("BEIT_ISA");
  snprintf(g_note, sizeof g_note, "the best this CPU runs; BEIT_ISA=generic|avx2|avx512 picks one");
  if (env && *env && strcmp(env, "auto")) {
    int want = -1;
    for (int i = 0; i < BEIT_ISA_COUNT; i++) if (!strcmp(env, NAMES[i])) want = i;
    if (want < 0 || !beit_isa_supported((beit_isa)want)) {
      snprintf(g_note, sizeof g_note, "BEIT_ISA=%.40s ignored: %s", env,
               want < 0 ? "not one of generic, avx2, avx512, auto" : "this CPU does not support it");
      fprintf(stderr, "beit: warning: %s; using %s\n", g_note, NAMES[b]);
    } else {
      isa = (beit_isa)want;
      snprintf(g_note, sizeof g_note, "BEIT_ISA=%s from the environment; this CPU runs up to %s", env, NAMES[b]);
    }
  }
  __atomic_store_n(&g_isa, (int)isa, __ATOMIC_RELAXED);
}

beit_isa beit_isa_active(void) {
  pthread_once(&g_once, pick);
  return (beit_isa)__atomic_load_n(&g_isa, __ATOMIC_RELAXED);
}

int beit_isa_set(beit_isa isa) {
  pthread_once(&g_once, pick);
  if ((int)isa < 0 || isa >= BEIT_ISA_COUNT) return beit_errorf("no vector ISA number %d", (int)isa);
  if (!beit_isa_supported(isa)) return beit_errorf("this CPU cannot run the %s kernels", beit_isa_name(isa));
  __atomic_store_n(&g_isa, (int)isa, __ATOMIC_RELAXED);
  snprintf(g_note, sizeof g_note, "set by the program; this CPU runs up to %s", NAMES[best()]);
  return BEIT_OK;
}

const char *beit_isa_describe(void) {
  static char buf[224];
  beit_isa isa = beit_isa_active();
  snprintf(buf, sizeof buf, "%s (%s)", NAMES[isa], g_note);
  return buf;
}
