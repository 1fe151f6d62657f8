/* main.c - the `beit` command: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help")) { printf("usage: beit <command>\n"); return 0; }
  fprintf(stderr, "beit: unknown command '%s'\n", argv[1]);
  return 2;
}
