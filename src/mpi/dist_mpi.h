/* dist_mpi.h - what only a program that links the MPI implementation of
 * core/dist.h (src/mpi/dist_mpi.c) has: ending the whole job. The library never
 * ends a process: it returns BEIT_ERR, and the program decides (src/cli/fail.c). */
#ifndef BEIT_DIST_MPI_H
#define BEIT_DIST_MPI_H

/* Ends every rank of the job with `code` (MPI_Abort; plain exit() in a world of one). */
void beit_dist_abort(int code) __attribute__((noreturn));

#endif
