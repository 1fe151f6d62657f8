/* args.c - see args.h. */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_default(const beit_arg *a) {
  switch (a->type) {
    case ARG_INT: printf("%d", *(int *)a->dest); break;
    case ARG_I64: printf("%lld", *(long long *)a->dest); break;
    case ARG_FLOAT: printf("%g", *(float *)a->dest); break;
    case ARG_STR: printf("%s", *(const char **)a->dest ? *(const char **)a->dest : "(none)"); break;
    case ARG_FLAG: printf("%s", *(int *)a->dest ? "on" : "off"); break;
  }
}

static void print_help(const char *usage, const char *summary, const beit_arg *args, int nargs) {
  printf("usage: %s\n\n%s\n\noptions:\n", usage, summary);
  for (int i = 0; i < nargs; i++) {
    const beit_arg *a = &args[i];
    char left[64];
    const char *meta = a->type == ARG_INT || a->type == ARG_I64 ? " N" : a->type == ARG_FLOAT ? " X"
                       : a->type == ARG_STR ? " S" : "";
    snprintf(left, sizeof left, "--%s%s", a->name, meta);
    printf("  %-24s %s (default: ", left, a->help);
    print_default(a);
    printf(")\n");
  }
  printf("  %-24s show this help\n", "--help");
}

static int in_range(const beit_arg *a, double x) {
  if (a->min == 0 && a->max == 0) return 1;
  return x >= a->min && x <= a->max;
}

static int set_value(const beit_arg *a, const char *cmd, const char *val) {
  char *end = NULL;
  errno = 0;
  switch (a->type) {
    case ARG_INT:
    case ARG_I64: {
      long long x = strtoll(val, &end, 10);
      if (errno || end == val || *end || !in_range(a, (double)x) ||
          (a->type == ARG_INT && (x < -2147483647LL || x > 2147483647LL))) {
        fprintf(stderr, "beit %s: --%s expects an integer", cmd, a->name);
        if (a->min != 0 || a->max != 0) fprintf(stderr, " in [%g, %g]", a->min, a->max);
        fprintf(stderr, ", got '%s'\n", val);
        return ARGS_ERROR;
      }
      if (a->type == ARG_INT) *(int *)a->dest = (int)x;
      else *(long long *)a->dest = x;
      return ARGS_OK;
    }
    case ARG_FLOAT: {
      float x = strtof(val, &end);
      if (errno || end == val || *end || !isfinite(x) || !in_range(a, x)) {
        fprintf(stderr, "beit %s: --%s expects a number", cmd, a->name);
        if (a->min != 0 || a->max != 0) fprintf(stderr, " in [%g, %g]", a->min, a->max);
        fprintf(stderr, ", got '%s'\n", val);
        return ARGS_ERROR;
      }
      *(float *)a->dest = x;
      return ARGS_OK;
    }
    case ARG_STR: *(const char **)a->dest = val; return ARGS_OK;
    case ARG_FLAG: *(int *)a->dest = 1; return ARGS_OK;
  }
  return ARGS_ERROR;
}

int beit_args_parse(const char *usage, const char *summary, const beit_arg *args, int nargs,
                    int argc, char **argv, char ***pos, int *npos) {
  const char *cmd = argv[0];
  if (npos) *npos = 0;
  if (pos) *pos = NULL;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      print_help(usage, summary, args, nargs);
      return ARGS_HELP;
    }
    if (strncmp(s, "--", 2) != 0 || s[2] == 0) {
      if (!pos) {
        fprintf(stderr, "beit %s: unexpected argument '%s' (see --help)\n", cmd, s);
        return ARGS_ERROR;
      }
      if (!*pos) *pos = calloc((size_t)argc, sizeof(char *));
      (*pos)[(*npos)++] = argv[i];
      continue;
    }
    const char *name = s + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const beit_arg *a = NULL;
    for (int k = 0; k < nargs; k++)
      if (strlen(args[k].name) == len && !strncmp(args[k].name, name, len)) a = &args[k];
    if (!a) {
      fprintf(stderr, "beit %s: unknown option '--%.*s' (see --help)\n", cmd, (int)len, name);
      return ARGS_ERROR;
    }
    const char *val = NULL;
    if (a->type == ARG_FLAG) {
      if (eq) {
        fprintf(stderr, "beit %s: --%s takes no value\n", cmd, a->name);
        return ARGS_ERROR;
      }
    } else if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(stderr, "beit %s: --%s needs a value\n", cmd, a->name);
      return ARGS_ERROR;
    }
    if (set_value(a, cmd, val) != ARGS_OK) return ARGS_ERROR;
  }
  return ARGS_OK;
}

static void subcommand_usage(FILE *f, const char *group, const beit_subcommand *subs, int nsubs) {
  fprintf(f, "usage: beit %s <", group);
  for (int i = 0; i < nsubs; i++) fprintf(f, "%s%s", i ? "|" : "", subs[i].name);
  fprintf(f, "> [options]   (beit %s <sub> --help)\n\n", group);
  for (int i = 0; i < nsubs; i++) fprintf(f, "  %-12s %s\n", subs[i].name, subs[i].summary);
}

int beit_run_subcommand(const char *group, const beit_subcommand *subs, int nsubs, int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    subcommand_usage(argc < 2 ? stderr : stdout, group, subs, nsubs);
    return argc < 2 ? 2 : 0;
  }
  for (int i = 0; i < nsubs; i++) {
    if (strcmp(argv[1], subs[i].name)) continue;
    char name[64], *sub = argv[1];
    snprintf(name, sizeof name, "%s %s", group, sub);
    argv[1] = name;  /* option errors read "beit data inspect: ..." */
    int rc = subs[i].fn(argc - 1, argv + 1);
    argv[1] = sub;
    return rc;
  }
  fprintf(stderr, "beit %s: unknown subcommand '%s'\n", group, argv[1]);
  subcommand_usage(stderr, group, subs, nsubs);
  return 2;
}
