/* fail.c - see fail.h. */
#include "cli/fail.h"

#include <stdio.h>

#include "core/core.h"
#include "core/dist.h"
#include "train/recipes.h"
#include "train/train.h"
#ifdef BEIT_HAVE_MPI
#include "mpi/dist_mpi.h"
#endif

int cli_fail(const char *cmd) {
  int world = beit_dist_world();
  if (world == 1) {
    fprintf(stderr, "%s: %s\n", cmd, beit_last_error());
    return 1;
  }
  fprintf(stderr, "%s (rank %d of %d): %s\n", cmd, beit_dist_rank(), world, beit_last_error());
#ifdef BEIT_HAVE_MPI
  beit_dist_abort(1);
#endif
  return 1;  /* not reached: several ranks need MPI */
}

int cli_recipe_exit(const char *cmd, int status) {
  if (status == BEIT_OK) return 0;
  if (status == BEIT_STOPPED) return beit_stop_exit_code();
  return cli_fail(cmd);
}
