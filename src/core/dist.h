/* dist.h - data parallelism across processes. Two implementations define it:
 * the library's world of one (src/core/dist.c: rank 0 of 1, every call a no-op,
 * so libbeit never links MPI) and the MPI one (src/mpi/dist_mpi.c), which only
 * the programs that train under mpirun link. Without a launcher such as mpirun
 * the MPI one is a world of one too, so callers never need an #ifdef.
 * Collectives must be called by every rank in the same order; an MPI failure
 * aborts the whole job. */
#ifndef BEIT_DIST_H
#define BEIT_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Call in main() after beit_runtime_init (which may re-execute the process)
 * and before anything else: joins the MPI job when a launcher started us.
 * Returns BEIT_ERR when launched with several ranks but built without MPI. */
int beit_dist_init(int *argc, char ***argv);
/* Leaves the MPI job (registered with atexit by beit_dist_init). */
void beit_dist_finalize(void);

int beit_dist_rank(void);
int beit_dist_world(void);
int beit_dist_is_root(void);    /* rank 0: the one that writes logs and checkpoints */
int beit_dist_local_size(void); /* ranks on this machine (divides its cores) */
/* e.g. "Open MPI v4.1.4, 2 ranks (2 on this machine)", or "off (...)" */
const char *beit_dist_describe(void);

/* In-place sums over all ranks. */
void beit_dist_sum_f32(float *x, size_t n);
void beit_dist_sum_f64(double *x, size_t n);
void beit_dist_sum_i64(int64_t *x, size_t n);
/* In-place maximum over all ranks. */
void beit_dist_max_f64(double *x, size_t n);
/* Data-parallel gradient: g <- sum over ranks of weight_r * g_r, the same bits
 * on every rank (weight_r = this rank's share of the global loss normaliser). */
void beit_dist_weighted_sum(float *g, size_t n, double weight);
/* Copies root's bytes to every rank. */
void beit_dist_bcast(void *buf, size_t bytes, int root);
/* Sends `bytes` to peer and receives as many from it (peer == rank: copy). */
void beit_dist_exchange(const void *send, void *recv, size_t bytes, int peer);
void beit_dist_barrier(void);
/* 1 when buf holds the same bytes on every rank (compares a 64-bit hash). */
int beit_dist_same(const void *buf, size_t bytes);
/* Seconds spent inside gradient reductions since the start (for measurements). */
double beit_dist_reduce_seconds(void);

/* The world size a launcher's environment announces (Open MPI, PMI, PMIx,
 * MVAPICH), 0 when none: both implementations decide with it. */
static inline int beit_dist_launcher_world(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return atoi(v);
  }
  return 0;
}

#endif
