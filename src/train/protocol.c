/* protocol.c - the results protocol of every training command: the held-out
 * validation split and the labeled subset (with the index files that record
 * them) and summary.json, the small record of a finished run. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "model/beit.h"
#include "train/recipes.h"

static int write_indices(const char *dir, const char *name, const int64_t *idx, int64_t n) {
  char path[1100];
  snprintf(path, sizeof path, "%.1000s/%s", dir, name);
  char *text = beit_alloc((size_t)n * 21 + 1, "index list");
  if (!text) return BEIT_ERR;
  size_t len = 0;
  for (int64_t i = 0; i < n; i++) len += (size_t)sprintf(text + len, "%lld\n", (long long)idx[i]);
  int rc = beit_write_file_atomic(path, text, len);
  beit_free(text);
  return rc;
}

int beit_recipe_split(beit_dataset *ds, beit_dataset *val, long long val_split, long long labels_per_class,
                      long long split_seed, const char *dir) {
  if (!val_split && !labels_per_class) return BEIT_OK;
  beit_split s;
  if (beit_split_make(ds, val_split, labels_per_class, (uint64_t)split_seed, &s) != BEIT_OK) return BEIT_ERR;
  beit_dataset train;
  int rc = BEIT_OK;
  if (dir && val_split) rc = write_indices(dir, "val_indices.txt", s.val, s.n_val);
  if (rc == BEIT_OK && dir && labels_per_class) rc = write_indices(dir, "labels_indices.txt", s.train, s.n_train);
  if (rc == BEIT_OK && val) rc = beit_dataset_take(val, ds, s.val, s.n_val);
  if (rc == BEIT_OK && beit_dataset_take(&train, ds, s.train, s.n_train) == BEIT_OK) {
    beit_dataset_close(ds);
    *ds = train;
  } else if (rc == BEIT_OK) {
    rc = BEIT_ERR;
    if (val) beit_dataset_close(val);
  }
  beit_split_free(&s);
  return rc;
}

char *beit_command_json(int argc, char **argv) {
  cJSON *a = cJSON_CreateArray();
  if (a) cJSON_AddItemToArray(a, cJSON_CreateString("beit"));
  for (int i = 0; a && i < argc; i++) cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
  char *s = a ? cJSON_PrintUnformatted(a) : NULL;
  cJSON_Delete(a);
  return s;
}

/* "model name" of /proc/cpuinfo, or "unknown". */
static void cpu_name(char *out, size_t n) {
  snprintf(out, n, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) || !colon) continue;
    colon += 1 + (colon[1] == ' ');
    colon[strcspn(colon, "\n")] = 0;
    snprintf(out, n, "%s", colon);
    break;
  }
  fclose(f);
}

static void copy_number(cJSON *to, const char *as, const cJSON *from, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
  if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(to, as, v->valuedouble);
  else if (cJSON_IsNull(v)) cJSON_AddNullToObject(to, as);
}

/* One entry per epoch from the lines of log.jsonl. */
static cJSON *epochs_from_log(const char *dir, int pretrain) {
  char path[1100];
  snprintf(path, sizeof path, "%.1000s/log.jsonl", dir);
  cJSON *out = cJSON_CreateArray();
  uint8_t *data;
  size_t size;
  if (!out || beit_read_file(path, &data, &size) != BEIT_OK) return out;
  for (char *line = (char *)data, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    cJSON *j = cJSON_Parse(line);
    int skip = !j || cJSON_GetObjectItemCaseSensitive(j, "final") || cJSON_GetObjectItemCaseSensitive(j, "partial");
    int evaluation = j && (cJSON_GetObjectItemCaseSensitive(j, "val_top1") ||
                           cJSON_GetObjectItemCaseSensitive(j, "test_top1"));
    if (!skip && (pretrain ? cJSON_GetObjectItemCaseSensitive(j, "epoch_loss") != NULL : evaluation)) {
      cJSON *e = cJSON_CreateObject();
      copy_number(e, "epoch", j, "epoch");
      copy_number(e, pretrain ? "loss" : "val_top1", j, pretrain ? "epoch_loss" : "val_top1");
      copy_number(e, pretrain ? "mim_accuracy" : "test_top1", j, pretrain ? "epoch_accuracy" : "test_top1");
      cJSON_AddItemToArray(out, e);
    }
    cJSON_Delete(j);
  }
  beit_free(data);
  return out;
}

int beit_run_write_summary(const char *dir, const beit_summary *s) {
  cJSON *j = cJSON_CreateObject();
  cJSON *cmd = s->command ? cJSON_Parse(s->command) : NULL;
  cJSON_AddItemToObject(j, "command", cmd ? cmd : cJSON_CreateArray());
  cJSON_AddStringToObject(j, "kind", s->kind);
  cJSON_AddNumberToObject(j, "seed", (double)s->seed);
  cJSON_AddNumberToObject(j, "split_seed", (double)s->split_seed);
  cJSON_AddNumberToObject(j, "val_split", (double)s->val_split);
  cJSON_AddNumberToObject(j, "labels_per_class", (double)s->labels_per_class);
  cJSON_AddNumberToObject(j, "minutes", s->seconds / 60);
  char cpu[256];
  cpu_name(cpu, sizeof cpu);
  cJSON_AddStringToObject(j, "cpu", cpu);
  cJSON_AddNumberToObject(j, "threads", beit_get_threads());
  cJSON_AddItemToObject(j, "epochs", epochs_from_log(dir, !strcmp(s->kind, "pretrain")));
  if (s->result) {
    if (s->best_epoch >= 0) cJSON_AddNumberToObject(j, "best_epoch", (double)s->best_epoch);
    else cJSON_AddNullToObject(j, "best_epoch");
    if (s->val_top1 >= 0) cJSON_AddNumberToObject(j, "val_top1", s->val_top1);
    else cJSON_AddNullToObject(j, "val_top1");
    cJSON_AddNumberToObject(j, "test_top1", s->test_top1);
    cJSON_AddNumberToObject(j, "test_top5", s->test_top5);
    cJSON_AddStringToObject(j, "selected_on", s->selected_on);
  }
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  if (!text) return beit_errorf("out of memory writing %s/summary.json", dir);
  char path[1100];
  snprintf(path, sizeof path, "%.1000s/summary.json", dir);
  size_t n = strlen(text);
  text[n] = '\n';  /* cJSON's buffer has the terminator's byte */
  int rc = beit_write_file_atomic(path, text, n + 1);
  free(text);
  return rc;
}
