/* safetensors.h - the safetensors checkpoint format: a validating reader that
 * checks a whole (possibly hostile) file up front, dtype conversion to float32,
 * and an F32 writer. A leaf: it uses only core (parameter tables load and save
 * through it in model/params_io.c). */
#ifndef BEIT_SAFETENSORS_H
#define BEIT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define BEIT_ST_PATH_MAX 1024
#define BEIT_ST_HEADER_MAX (100u << 20) /* 100 MiB: larger JSON headers are refused */

enum beit_st_dtype {
  BEIT_ST_F32, BEIT_ST_F16, BEIT_ST_BF16, BEIT_ST_F64,
  BEIT_ST_I64, BEIT_ST_I32, BEIT_ST_I16, BEIT_ST_I8,
  BEIT_ST_U64, BEIT_ST_U32, BEIT_ST_U16, BEIT_ST_U8, BEIT_ST_BOOL,
  BEIT_ST_NDTYPES
};

#define BEIT_MAX_DIMS 4    /* tensor rank limit (parameter tables share it) */
#define BEIT_NAME_MAX 96   /* longest tensor name a table holds, with its NUL */

typedef struct beit_st_entry {
  char name[BEIT_NAME_MAX];
  int dtype;                    /* enum beit_st_dtype */
  int ndim;                     /* 0 (scalar) .. BEIT_MAX_DIMS */
  int64_t shape[BEIT_MAX_DIMS];
  size_t begin, end;            /* byte range inside the data section */
} beit_st_entry;

typedef struct {
  char path[BEIT_ST_PATH_MAX];
  uint8_t *buf;                 /* the whole file */
  size_t size;
  const uint8_t *data;          /* data section (after the header) */
  size_t data_size;
  int n;                        /* tensors, in header order */
  beit_st_entry *e;
  int *by_name;                 /* indices of e sorted by name (for beit_st_find) */
  int nmeta;                    /* "__metadata__" string map, in header order */
  char **meta_keys, **meta_vals;
} beit_safetensors;

/* Reads and validates the whole file. On error nothing stays allocated and the
 * message names the file and the problem. */
int beit_st_open(beit_safetensors *st, const char *path);
/* The same checks on a copy of `size` bytes in memory; `name` stands for the path. */
int beit_st_open_memory(beit_safetensors *st, const void *buf, size_t size, const char *name);
void beit_st_close(beit_safetensors *st);
/* Index of the tensor called `name`, or -1. */
int beit_st_find(const beit_safetensors *st, const char *name);
/* Metadata value for `key`, or NULL. */
const char *beit_st_meta(const beit_safetensors *st, const char *key);
/* "F32", "BF16", ...; "?" for an out-of-range value. */
const char *beit_st_dtype_name(int dtype);
size_t beit_st_numel(const beit_st_entry *e);

/* Tensor idx converted to float32 (from F32, F16, BF16 or F64). numel must equal
 * the tensor's element count. */
int beit_st_read_f32(const beit_safetensors *st, int idx, float *out, size_t numel);
/* Tensor idx converted to int64 (from I64, I32, I16, I8, U32, U16 or U8). */
int beit_st_read_i64(const beit_safetensors *st, int idx, int64_t *out, size_t numel);

/* ---- content checksum -----------------------------------------------------
 * Every file the writer produces carries metadata BEIT_ST_CRC_KEY: 8 lowercase
 * hex digits of zlib's crc32 over the metadata pairs (all but this one, in key
 * order, each as key NUL value NUL) followed by the tensors (in name order, each
 * as name NUL dtype NUL comma-joined dims NUL raw bytes). beit_st_open refuses a
 * file whose content does not match ("checksum mismatch ... corrupted"); files
 * without the key (other tools) are accepted. tests/ref/stio.py computes it
 * independently. */
#define BEIT_ST_CRC_KEY "beit.crc32"

/* ---- writer: F32 tensors in the given order, written atomically ---------- */
typedef struct {
  const char *name;
  int ndim;
  const int64_t *shape;
  const float *data;
} beit_st_tensor;
/* meta_kv holds n_meta (key, value) pairs: key0, value0, key1, value1, ...
 * The checksum pair is added (a BEIT_ST_CRC_KEY pair in meta_kv is replaced). */
int beit_st_write(const char *path, const beit_st_tensor *t, int n,
                  const char *const *meta_kv, int n_meta);
/* Same, where i64[k] != NULL writes tensor k as I64 from i64[k] instead of its
 * float data (index buffers of other libraries' checkpoints). */
int beit_st_write_i64(const char *path, const beit_st_tensor *t, const int64_t *const *i64, int n,
                      const char *const *meta_kv, int n_meta);

/* Helpers for messages about tensors: a name with control bytes replaced and long
 * names cut, and a shape as "[2, 3]". */
const char *beit_st_printable(const char *s, char *buf, size_t n);
void beit_st_shape_text(const int64_t *shape, int ndim, char *buf, size_t n);

#endif
