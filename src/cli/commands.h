/* commands.h - one function per subcommand: int cmd_x(int argc, char **argv),
 * where argv[0] is the subcommand name. Returns the process exit code
 * (0 ok, 1 runtime error, 2 usage error). Registered in main.c's table. */
#ifndef BEIT_COMMANDS_H
#define BEIT_COMMANDS_H

int cmd_version(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_linprobe(int argc, char **argv);
int cmd_attention(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif
