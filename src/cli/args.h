/* args.h - GNU long-option parsing shared by every subcommand: each flag has a
 * type, a destination holding its default, a range, and a help line; --help
 * prints them all with defaults. Numbers are parsed strictly and range-checked. */
#ifndef BEIT_ARGS_H
#define BEIT_ARGS_H

#include "io/image.h"

typedef enum { ARG_INT, ARG_I64, ARG_FLOAT, ARG_STR, ARG_FLAG } beit_arg_type;

/* What --resume allows of a flag (see beit_args_check_resume). */
typedef enum {
  ARG_RESUME_SAME = 0,   /* changes the computation: must equal the run's (the default) */
  ARG_RESUME_SAFE,       /* may change: the steps still compute what they would have */
  ARG_RESUME_GROWS,      /* may grow, and only with the table's --extend-NAME flag (e.g. --extend-epochs) */
} beit_arg_resume;

typedef struct {
  const char *name;      /* long name without dashes, e.g. "batch" */
  beit_arg_type type;
  void *dest;            /* int*, long long*, float*, const char**, int* (flag); holds the default */
  const char *help;
  double min, max;       /* inclusive range for numbers; ignored when min == max == 0 */
  beit_arg_resume resume;
} beit_arg;

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_ERROR = 2 };

/* Flags that mean the same in every command that has them: one entry to put in a
 * command's table; beit_args_parse applies the value. --max-image-pixels belongs
 * in every command that decodes images (beit_image_set_max_pixels); it may change
 * on --resume (an image it admits decodes the same whatever the limit). */
extern long long beit_arg_max_image_pixels;
#define BEIT_ARG_MAX_IMAGE_PIXELS                                                                           \
  {"max-image-pixels", ARG_I64, &beit_arg_max_image_pixels,                                                 \
   "refuse an image (PNG, JPEG, IDX) whose header declares more pixels, width x height (decompression bombs)", \
   1, (double)BEIT_IMAGE_MAX_PIXELS, ARG_RESUME_SAFE}

/* Parses argv[0..argc) (argv[0] is the subcommand name). Positional arguments
 * are returned in *pos (pointers into argv) when pos != NULL; otherwise they are
 * an error. Prints usage on --help (returns ARGS_HELP) and a one-line error on
 * bad input (returns ARGS_ERROR; callers exit with 2). */
int beit_args_parse(const char *usage, const char *summary, const beit_arg *args, int nargs,
                    int argc, char **argv, char ***pos, int *npos);

/* ---- the flags of a run, and --resume ------------------------------------------
 * A run records every flag of its command's table (defaults included) in its
 * config.json as "beit_args": {"command": "pretrain", "batch": "64", "lr":
 * "0.0015", "quiet": "off", ...}, each value as --help would print it (floats in
 * the shortest form that reads back the same). malloc'd; NULL when out of memory. */
char *beit_args_record(const char *command, const beit_arg *args, int nargs);
/* --resume of a run in `dir`: every flag of the table must equal its value in
 * dir/config.json's record, except those marked ARG_RESUME_SAFE, and those
 * marked ARG_RESUME_GROWS, which may grow when --extend-NAME is on. BEIT_ERR
 * naming the flag, both values and the file, e.g.
 *   --resume: --batch 32 differs from the run's 64 (runs/x/config.json)
 * No config.json, or one without a record (an older beit.c): a warning, BEIT_OK. */
int beit_args_check_resume(const char *command, const beit_arg *args, int nargs, const char *dir);

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
