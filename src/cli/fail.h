/* fail.h - how the beit program ends on an error the library returned: it
 * prints the library's message (naming the rank under MPI) and, when several
 * ranks run, ends them all, since a rank left waiting in a collective would
 * hang forever. The library itself never prints errors or exits. */
#ifndef BEIT_CLI_FAIL_H
#define BEIT_CLI_FAIL_H

/* Prints "CMD: <beit_last_error()>" ("CMD (rank r of w): ..." under MPI), ends
 * the job when it has several ranks, else returns 1 (the exit code). */
int cli_fail(const char *cmd);
/* The exit code of a recipe's status: BEIT_OK 0, BEIT_STOPPED 128 + the signal
 * (SIGINT 130, SIGTERM 143; checkpoint saved), BEIT_ERR cli_fail(cmd). */
int cli_recipe_exit(const char *cmd, int status);

#endif
