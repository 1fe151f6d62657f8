/* cmd_version.c - `beit version`: what this binary runs with. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "core/dist.h"

int cmd_version(int argc, char **argv) {
  int rc = beit_args_parse("beit version", "Print the version, the BLAS kernels and the vector ISA of our kernels.",
                           NULL, 0, argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  printf("beit.c 0.1.0\nBLAS: %s\nISA: %s\nthreads: %d\nOpenMP waits: %s\nMPI: %s\n", beit_blas_describe(),
         beit_isa_describe(), beit_get_threads(), beit_wait_describe(), beit_dist_describe());
  return 0;
}
