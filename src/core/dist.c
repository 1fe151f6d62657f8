/* dist.c - the library's world of one: rank 0 of 1, every collective a no-op,
 * so libbeit never links MPI. A program that trains under mpirun links
 * src/mpi/dist_mpi.c, which defines every function below (this object is then
 * never taken from the archive). Keep the two files' function sets equal: a
 * function only here would pull this object in next to the MPI one and fail the
 * link with duplicate definitions. */
#include "core/dist.h"

#include <string.h>

#include "core/core.h"

int beit_dist_init(int *argc, char ***argv) {
  int world = beit_dist_launcher_world();
  if (world > 1)
    return beit_errorf("started as one of %d ranks, but this program was built without MPI: every rank would train "
                       "alone into the same folder (install libopenmpi-dev and rebuild)", world);
  return BEIT_OK;
}

void beit_dist_finalize(void) {}
int beit_dist_rank(void) { return 0; }
int beit_dist_world(void) { return 1; }
int beit_dist_is_root(void) { return 1; }
int beit_dist_local_size(void) { return 1; }
const char *beit_dist_describe(void) { return "not built in (install libopenmpi-dev and rebuild)"; }
void beit_dist_sum_f32(float *x, size_t n) {}
void beit_dist_sum_f64(double *x, size_t n) {}
void beit_dist_sum_i64(int64_t *x, size_t n) {}
void beit_dist_max_f64(double *x, size_t n) {}
void beit_dist_weighted_sum(float *g, size_t n, double weight) {}
void beit_dist_bcast(void *buf, size_t bytes, int root) {}
void beit_dist_exchange(const void *send, void *recv, size_t bytes, int peer) {
  if (send != recv) memmove(recv, send, bytes);
}
void beit_dist_barrier(void) {}
int beit_dist_same(const void *buf, size_t bytes) { return 1; }
double beit_dist_reduce_seconds(void) { return 0; }
