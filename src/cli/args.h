/* args.h - GNU long-option parsing shared by every subcommand: each flag has a
 * type, a destination holding its default, a range, and a help line; --help
 * prints them all with defaults. Numbers are parsed strictly and range-checked. */
#ifndef BEIT_ARGS_H
#define BEIT_ARGS_H

typedef enum { ARG_INT, ARG_I64, ARG_FLOAT, ARG_STR, ARG_FLAG } beit_arg_type;

typedef struct {
  const char *name;      /* long name without dashes, e.g. "batch" */
  beit_arg_type type;
  void *dest;            /* int*, long long*, float*, const char**, int* (flag); holds the default */
  const char *help;
  double min, max;       /* inclusive range for numbers; ignored when min == max == 0 */
} beit_arg;

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_ERROR = 2 };

/* Parses argv[0..argc) (argv[0] is the subcommand name). Positional arguments
 * are returned in *pos (pointers into argv) when pos != NULL; otherwise they are
 * an error. Prints usage on --help (returns ARGS_HELP) and a one-line error on
 * bad input (returns ARGS_ERROR; callers exit with 2). */
int beit_args_parse(const char *usage, const char *summary, const beit_arg *args, int nargs,
                    int argc, char **argv, char ***pos, int *npos);

/* A command with subcommands (`beit data inspect`, `beit tokenizer train`):
 * dispatches argv[1] to the matching entry, renaming it "<group> <sub>" so that
 * option errors name both; prints the list on --help or an unknown name. */
typedef struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} beit_subcommand;
int beit_run_subcommand(const char *group, const beit_subcommand *subs, int nsubs, int argc, char **argv);

#endif
