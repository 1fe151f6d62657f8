/* args.c - see args.h. */
#include "cli/args.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* The flag's current value as text (NULL for an unset string); floats in the
 * shortest form that reads back as the same float. */
static const char *format_value(const beit_arg *a, char *buf, size_t n) {
  switch (a->type) {
    case ARG_INT: snprintf(buf, n, "%d", *(int *)a->dest); break;
    case ARG_I64: snprintf(buf, n, "%lld", *(long long *)a->dest); break;
    case ARG_FLOAT: {
      float x = *(float *)a->dest;
      for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, x);
        if (strtof(buf, NULL) == x) break;
      }
      break;
    }
    case ARG_STR: return *(const char **)a->dest;
    case ARG_FLAG: snprintf(buf, n, "%s", *(int *)a->dest ? "on" : "off"); break;
  }
  return buf;
}

long long beit_arg_max_image_pixels = BEIT_IMAGE_DEFAULT_MAX_PIXELS;

static void print_default(const beit_arg *a) {
  char buf[64];
  const char *v = format_value(a, buf, sizeof buf);
  printf("%s", v ? v : "(none)");
}

static const beit_arg *find_arg(const beit_arg *args, int nargs, const char *name) {
  for (int k = 0; k < nargs; k++)
    if (!strcmp(args[k].name, name)) return &args[k];
  return NULL;
}

/* A command that can resume says in --help which flags may change then. */
static void print_resume_rules(const beit_arg *args, int nargs) {
  if (!find_arg(args, nargs, "resume")) return;
  printf("\nWith --resume every option must be as the run had it (its config.json records them), except:");
  for (int i = 0, first = 1; i < nargs; i++)
    if (args[i].resume == ARG_RESUME_SAFE) printf("%s--%s", first ? " " : ", ", args[i].name), first = 0;
  printf(".\n");
  for (int i = 0; i < nargs; i++)
    if (args[i].resume == ARG_RESUME_GROWS)
      printf("--%s may grow with --extend-%s: the schedule then spans the new --%s from the checkpoint on.\n",
             args[i].name, args[i].name, args[i].name);
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
  print_resume_rules(args, nargs);
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
  beit_image_set_max_pixels(beit_arg_max_image_pixels);
  return ARGS_OK;
}

/* ---- the record of a run's flags, and --resume ------------------------------- */
char *beit_args_record(const char *command, const beit_arg *args, int nargs) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "command", command);
  for (int i = 0; i < nargs; i++) {
    char buf[64];
    const char *v = format_value(&args[i], buf, sizeof buf);
    if (v) cJSON_AddStringToObject(j, args[i].name, v);
    else cJSON_AddNullToObject(j, args[i].name);
  }
  char *s = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  return s;
}

/* One flag against the run's value `old` (NULL: unset). */
static int check_flag(const beit_arg *args, int nargs, const beit_arg *a, const char *old, const char *path) {
  char buf[64];
  const char *now = format_value(a, buf, sizeof buf);
  if (a->resume == ARG_RESUME_SAFE || (!now && !old) || (now && old && !strcmp(now, old))) return BEIT_OK;
  const char *shown = now ? now : "(none)", *was = old ? old : "(none)";
  if (a->type == ARG_FLAG)
    return beit_errorf("--resume: --%s is %s, but %s in the run (%s)", a->name, shown, was, path);
  if (a->resume != ARG_RESUME_GROWS || !now || !old)
    return beit_errorf("--resume: --%s %s differs from the run's %s (%s)", a->name, shown, was, path);
  char extend[80];
  snprintf(extend, sizeof extend, "extend-%s", a->name);
  const beit_arg *e = find_arg(args, nargs, extend);
  if (strtod(now, NULL) < strtod(old, NULL))
    return beit_errorf("--resume: --%s %s is below the run's %s (%s): a run cannot be shortened (--max-steps stops it "
                       "early and keeps its schedule)", a->name, now, old, path);
  if (!e || !*(int *)e->dest)
    return beit_errorf("--resume: --%s %s differs from the run's %s (%s); to train longer add --%s (the schedule then "
                       "spans the new --%s from the checkpoint on)", a->name, now, old, path, extend, a->name);
  fprintf(stderr, "resume: --%s %s (the run had %s) with --%s: the schedule spans the new --%s from the checkpoint on\n",
          a->name, now, old, extend, a->name);
  return BEIT_OK;
}

int beit_args_check_resume(const char *command, const beit_arg *args, int nargs, const char *dir) {
  char path[1100];
  snprintf(path, sizeof path, "%s/config.json", dir);
  if (access(path, F_OK) != 0) {
    if (access(dir, F_OK) == 0)
      fprintf(stderr, "resume: %s not found; the flags are not checked against the run's\n", path);
    return BEIT_OK;  /* no folder: the resume itself says there is nothing to resume */
  }
  uint8_t *text;
  size_t size;
  if (beit_read_file(path, &text, &size) != BEIT_OK) return beit_error_context("--resume");
  cJSON *j = cJSON_Parse((const char *)text);
  beit_free(text);
  if (!j) return beit_errorf("--resume: %s is not valid JSON (the run's settings cannot be checked)", path);
  const cJSON *rec = cJSON_GetObjectItemCaseSensitive(j, "beit_args");
  int rc = BEIT_OK;
  if (!cJSON_IsObject(rec)) {
    fprintf(stderr, "resume: %s has no record of the run's flags (written by an older beit); they are not checked\n",
            path);
  } else {
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(rec, "command");
    if (cJSON_IsString(cmd) && strcmp(cmd->valuestring, command))
      rc = beit_errorf("--resume: %s holds a %s run (%s), not a %s one", dir, cmd->valuestring, path, command);
    for (int i = 0; i < nargs && rc == BEIT_OK; i++) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, args[i].name);
      if (v && (cJSON_IsString(v) || cJSON_IsNull(v)))  /* a flag the run's beit did not have is not checked */
        rc = check_flag(args, nargs, &args[i], cJSON_IsString(v) ? v->valuestring : NULL, path);
    }
  }
  cJSON_Delete(j);
  return rc;
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
