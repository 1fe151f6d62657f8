/* main.c - the `beit` command: a table of subcommands. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/core.h"
#include "core/dist.h"

typedef struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} command;

static const command COMMANDS[] = {
    {"demo", cmd_demo, "the whole method on Fashion-MNIST: tokenizer, pretraining, fine-tuning, pictures"},
    {"version", cmd_version, "print version, BLAS library and kernel set"},
    {"data", cmd_data, "inspect a dataset or preview masked pretraining samples"},
    {"pretrain", cmd_pretrain, "pretrain BEiT by masked image modeling"},
    {"finetune", cmd_finetune, "fine-tune a classifier (from a pretrained checkpoint or scratch)"},
    {"tokenizer", cmd_tokenizer, "train a visual tokenizer (dVAE or k-means), encode or reconstruct"},
    {"linprobe", cmd_linprobe, "linear probe of a frozen encoder"},
    {"eval", cmd_eval, "top-1/top-5 accuracy and confusion matrix of a classifier"},
    {"predict", cmd_predict, "classify image files (beit.c, timm, unilm or Hugging Face checkpoint)"},
    {"attention", cmd_attention, "attention maps of image files as PNG"},
    {"convert", cmd_convert, "checkpoints between beit.c, timm, unilm and Hugging Face names; new image size"},
    {"plot", cmd_plot, "training curves of run folders as PNG"},
    {"bench", cmd_bench, "time a workload (pretrain, finetune, infer, tokenize, sgemm) on synthetic data"},
};
static const int NCOMMANDS = (int)(sizeof COMMANDS / sizeof COMMANDS[0]);

static void usage(FILE *f) {
  fprintf(f, "beit.c - BEiT (BERT pre-training of image transformers) in C\n\n"
             "usage: beit <command> [options]   (beit <command> --help for its options)\n\ncommands:\n");
  for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int main(int argc, char **argv) {
  beit_runtime_init(argv);  /* may re-execute us: before MPI starts */
  signal(SIGXFSZ, SIG_IGN);  /* past `ulimit -f` a write fails with EFBIG and is reported, instead of killing us */
  if (beit_dist_init(&argc, &argv) != BEIT_OK) {
    fprintf(stderr, "beit: %s\n", beit_last_error());
    return 1;
  }
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) return cmd_version(argc - 1, argv + 1);
  for (int i = 0; i < NCOMMANDS; i++)
    if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "beit: unknown command '%s' (see beit --help)\n", argv[1]);
  return 2;
}
