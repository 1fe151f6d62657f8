/* bench_allreduce.c - how long the data-parallel gradient reduction takes
 * (beit_dist_weighted_sum over one gradient buffer) for the parameter counts
 * of the BEiT presets, to weigh it against a training step. Run it under MPI:
 *   mpirun -np 2 build/bench/bench_allreduce [reps]
 * A barrier before every timed call keeps a slower rank's compute out of it.
 * On a loaded machine the wall time mostly measures the share of a core each
 * rank gets; the CPU time of rank 0 inside the call is the steadier figure. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/core.h"
#include "core/dist.h"

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
  beit_runtime_init(argv);
  if (beit_dist_init(&argc, &argv) != BEIT_OK) {
    fprintf(stderr, "bench_allreduce: %s\n", beit_last_error());
    return 1;
  }
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  if (reps < 1) reps = 1;
  beit_set_threads(0);
  const struct { const char *name; size_t params; } sizes[] = {
      {"mini (demo)", 460000}, {"tiny", 5700000}, {"small", 22000000}, {"base", 86000000}};
  if (beit_dist_is_root())
    printf("gradient allreduce, %s, %d threads per rank, %d reps each\n", beit_dist_describe(), beit_get_threads(),
           reps);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t n = sizes[s].params;
    float *g = beit_alloc(n * sizeof(float), "gradient");
    if (!g) return fprintf(stderr, "bench_allreduce: %s\n", beit_last_error()), 1;
    for (size_t i = 0; i < n; i++) g[i] = (float)(i % 97) * 1e-3f;
    beit_dist_weighted_sum(g, n, 0.5);  /* warm-up: first-touch and MPI buffers */
    double total = 0, best = 1e30, cpu = 0;
    for (int r = 0; r < reps; r++) {
      beit_dist_barrier();
      double t0 = beit_now(), c0 = cpu_seconds();
      beit_dist_weighted_sum(g, n, 0.5);
      double dt = beit_now() - t0;
      cpu += cpu_seconds() - c0;
      total += dt, best = dt < best ? dt : best;
    }
    if (beit_dist_is_root())
      printf("  %-12s %6.1f M params (%6.1f MiB): wall mean %8.2f ms, best %8.2f ms (%5.2f GB/s); CPU %8.2f ms\n",
             sizes[s].name, n / 1e6, n * 4 / 1048576.0, 1e3 * total / reps, 1e3 * best, n * 4 / best / 1e9,
             1e3 * cpu / reps);
    beit_free(g);
  }
  return 0;
}
