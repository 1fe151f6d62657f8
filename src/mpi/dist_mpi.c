/* dist_mpi.c - the MPI implementation of core/dist.h, linked only into what
 * trains under mpirun (the beit program, bench_allreduce), never into libbeit:
 * it defines every function of dist.h, so the library's world of one
 * (src/core/dist.c) is not taken from the archive, and adds beit_dist_abort
 * (dist_mpi.h). It joins the job only when a launcher's environment says there
 * is one (an Open MPI singleton start costs most of a second and may warn about
 * networks), so a plain `beit ...` never touches MPI. */
#include "mpi/dist_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/dist.h"

static double g_reduce_seconds;

double beit_dist_reduce_seconds(void) { return g_reduce_seconds; }
int beit_dist_is_root(void) { return beit_dist_rank() == 0; }

/* FNV-1a over 8-byte words: cheap, and any differing byte changes it in practice. */
static uint64_t hash_bytes(const void *buf, size_t bytes) {
  const unsigned char *p = buf;
  uint64_t h = 1469598103934665603ull, w;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) memcpy(&w, p + i, 8), h = (h ^ w) * 1099511628211ull;
  for (; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static int g_on, g_rank, g_world = 1, g_local = 1;
static char g_desc[400];

/* MPI counts are ints: large buffers go in pieces. */
#define MAX_COUNT (1 << 30)
/* Reductions go in pieces of 2M elements (8 MiB of floats): for messages of
 * 32 MiB and more Open MPI 4.1 switches to an algorithm that took 4x the time
 * here (bench/bench_allreduce.c: a BEiT-base gradient 3.7 s -> 0.75 s on 2 ranks). */
#define REDUCE_CHUNK (1 << 21)

int beit_dist_init(int *argc, char ***argv) {
  if (!beit_dist_launcher_world() && !getenv("PMIX_RANK")) {
    snprintf(g_desc, sizeof g_desc, "available, not started (run under mpirun for several ranks)");
    return BEIT_OK;
  }
  int provided;
  /* only the main thread calls MPI; OpenMP and loader threads never do */
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &g_local);
  MPI_Comm_free(&local);
  g_on = 1;
  atexit(beit_dist_finalize);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len;
  MPI_Get_library_version(lib, &len);
  lib[strcspn(lib, ",\n")] = 0;  /* "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4" */
  snprintf(g_desc, sizeof g_desc, "%s, %d rank%s (%d on this machine)", lib, g_world, g_world > 1 ? "s" : "", g_local);
  return BEIT_OK;
}

void beit_dist_finalize(void) {
  int done = 0;
  if (!g_on || (MPI_Finalized(&done), done)) return;
  MPI_Finalize();
}

int beit_dist_rank(void) { return g_rank; }
int beit_dist_world(void) { return g_world; }
int beit_dist_local_size(void) { return g_local; }
const char *beit_dist_describe(void) { return g_desc; }

static void allreduce(void *x, size_t n, size_t elem, MPI_Datatype type, MPI_Op op) {
  for (size_t i = 0; i < n; i += REDUCE_CHUNK) {
    int count = (int)(n - i < REDUCE_CHUNK ? n - i : REDUCE_CHUNK);
    MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, count, type, op, MPI_COMM_WORLD);
  }
}

void beit_dist_sum_f32(float *x, size_t n) {
  if (g_world > 1) allreduce(x, n, sizeof *x, MPI_FLOAT, MPI_SUM);
}
void beit_dist_sum_f64(double *x, size_t n) {
  if (g_world > 1) allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_SUM);
}
void beit_dist_sum_i64(int64_t *x, size_t n) {
  if (g_world > 1) allreduce(x, n, sizeof *x, MPI_INT64_T, MPI_SUM);
}
void beit_dist_max_f64(double *x, size_t n) {
  if (g_world > 1) allreduce(x, n, sizeof *x, MPI_DOUBLE, MPI_MAX);
}

void beit_dist_weighted_sum(float *g, size_t n, double weight) {
  if (g_world == 1) return;
  double t0 = beit_now();
  float w = (float)weight;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) g[i] *= w;
  /* Every reduction algorithm of Open MPI either reduces each element once and
   * distributes it (ring, reduce + bcast) or adds pairwise in both orders
   * (recursive doubling; IEEE addition commutes), so all ranks get the same bits. */
  allreduce(g, n, sizeof *g, MPI_FLOAT, MPI_SUM);
  g_reduce_seconds += beit_now() - t0;
}

void beit_dist_bcast(void *buf, size_t bytes, int root) {
  if (g_world == 1) return;
  for (size_t i = 0; i < bytes; i += MAX_COUNT) {
    int count = (int)(bytes - i < MAX_COUNT ? bytes - i : MAX_COUNT);
    MPI_Bcast((char *)buf + i, count, MPI_BYTE, root, MPI_COMM_WORLD);
  }
}

void beit_dist_exchange(const void *send, void *recv, size_t bytes, int peer) {
  if (peer == g_rank) {
    memmove(recv, send, bytes);
    return;
  }
  for (size_t i = 0; i < bytes; i += MAX_COUNT) {
    int count = (int)(bytes - i < MAX_COUNT ? bytes - i : MAX_COUNT);
    MPI_Sendrecv((const char *)send + i, count, MPI_BYTE, peer, 7, (char *)recv + i, count, MPI_BYTE, peer, 7,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
}

void beit_dist_barrier(void) {
  if (g_world > 1) MPI_Barrier(MPI_COMM_WORLD);
}

int beit_dist_same(const void *buf, size_t bytes) {
  if (g_world == 1) return 1;
  uint64_t lo = hash_bytes(buf, bytes), hi = lo;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

void beit_dist_abort(int code) {
  fflush(stdout), fflush(stderr);
  if (g_on && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}
