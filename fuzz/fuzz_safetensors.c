/* fuzz_safetensors.c - the safetensors reader (src/io/safetensors.c) on hostile
 * bytes: header length, JSON, dtypes, shapes, data offsets (overlaps, out of
 * range, huge sizes), duplicate names and metadata keys. Whatever beit_st_open
 * accepts must then be safe to read in full, to look up, and to load into a
 * parameter table. */
#include "fuzz_common.h"
#include "io/safetensors.h"
#include "model/params.h"

static beit_params g_table;

/* A table like a small model's, so that loads get past the name and shape checks
 * when the input comes from the seed corpus. */
static void make_table(beit_params *p) {
  beit_params_init(p);
  beit_params_add(p, "patch_embed.proj.weight", 4, (int64_t[]){4, 1, 2, 2}, 0, 1);
  beit_params_add(p, "cls_token", 3, (int64_t[]){1, 1, 4}, 0, 0);
  beit_params_add(p, "head.weight", 2, (int64_t[]){3, 4}, 1, 1);
  beit_params_add(p, "head.bias", 1, (int64_t[]){3}, 1, 0);
  if (beit_params_alloc(p)) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  make_table(&g_table);
  return 0;
}

static int is_float(int dtype) {
  return dtype == BEIT_ST_F32 || dtype == BEIT_ST_F16 || dtype == BEIT_ST_BF16 || dtype == BEIT_ST_F64;
}

static void read_every_tensor(const beit_safetensors *st) {
  for (int i = 0; i < st->n; i++) {
    const beit_st_entry *e = &st->e[i];
    FUZZ_ASSERT(e->begin <= e->end && e->end <= st->data_size);
    FUZZ_ASSERT(beit_st_find(st, e->name) == i);
    size_t numel = beit_st_numel(e);
    void *out = malloc(numel * 8 + 8);
    FUZZ_ASSERT(out != NULL);
    int rf = beit_st_read_f32(st, i, out, numel), ri = beit_st_read_i64(st, i, out, numel);
    FUZZ_ASSERT((rf == BEIT_OK) == is_float(e->dtype));
    (void)ri;
    FUZZ_ASSERT(beit_st_read_f32(st, i, out, numel + 1) != BEIT_OK);  /* wrong count is refused */
    free(out);
  }
  for (int k = 0; k < st->nmeta; k++) FUZZ_ASSERT(beit_st_meta(st, st->meta_keys[k]) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  beit_safetensors st;
  if (beit_st_open_memory(&st, data, size, "fuzz.safetensors") != BEIT_OK) {
    fuzz_refused();
    FUZZ_ASSERT(st.buf == NULL && st.e == NULL);
    return 0;
  }
  fuzz_accepted("safetensors");
  read_every_tensor(&st);
  beit_params_load_from(&g_table, &st, 1);
  beit_params_load_from(&g_table, &st, 0);
  beit_st_close(&st);
  return 0;
}
