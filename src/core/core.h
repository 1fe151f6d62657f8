/* core.h - what every part of libbeit shares: status codes with a thread-local
 * error message, aligned allocation, a keyed counter-based RNG, timers, thread
 * control and a progress bar. Nothing here knows about models or data. */
#ifndef BEIT_CORE_H
#define BEIT_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The public API (BEIT_OK, BEIT_ERR, beit_last_error, beit_set_threads, BEIT_API
 * marking what libbeit exports; everything else is hidden). */
#include <beit.h>

/* ---- errors ------------------------------------------------------------
 * Library functions that can fail on input return BEIT_OK (0) or BEIT_ERR (-1)
 * and leave a one-line message (naming the file/flag and the problem) that
 * beit_last_error() returns. Nothing in the library calls exit() or prints an
 * error: only the program (src/cli) chooses exit codes. */
int beit_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current message with context: "ctx: <old message>". Returns BEIT_ERR. */
int beit_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Always-on invariant check for programming errors (not for bad input). */
#define BEIT_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) beit_check_failed(#cond, __FILE__, __LINE__);                        \
  } while (0)
void beit_check_failed(const char *expr, const char *file, int line) __attribute__((noreturn));

/* ---- memory -------------------------------------------------------------
 * 64-byte aligned; on failure sets an error naming `what` and the size. Test
 * hook (docs/reliability.md): with BEIT_TEST_ALLOC_FAIL=TEXT in the environment,
 * every allocation whose `what` contains TEXT fails as if memory ran out. */
void *beit_alloc(size_t bytes, const char *what);
void *beit_calloc(size_t bytes, const char *what);
/* realloc for tables (alignment as malloc's, not 64 bytes): grows p, or
 * allocates when p is NULL; on failure p is untouched and NULL comes back with
 * the error set. Free with beit_free. */
void *beit_realloc(void *p, size_t bytes, const char *what);
void beit_free(void *p);
/* Overflow-checked a*b; returns 0 and sets an error on overflow. */
int beit_mul_size(size_t a, size_t b, size_t *out);

/* ---- memory budget --------------------------------------------------------
 * What this process can still allocate without being killed: MemAvailable of
 * /proc/meminfo, lowered by a cgroup memory limit and by RLIMIT_AS (minus the
 * address space already in use). SIZE_MAX when nothing is known. */
size_t beit_memory_available(void);
/* BEIT_ERR with "<what> needs X GiB, Y GiB available" when `need` bytes exceed
 * beit_memory_available(). BEIT_MEMORY_CHECK=off in the environment disables it.
 * beit_alloc applies it to every allocation of 64 MiB or more. */
int beit_memory_check(double need, const char *what);

/* ---- random numbers -----------------------------------------------------
 * Determinism by construction: a generator is seeded from a key derived from
 * (seed, purpose, i, j), e.g. (seed, RNG_MASK, epoch, sample index), so results
 * do not depend on thread count, rank count or where a run was resumed. */
enum beit_rng_purpose {
  BEIT_RNG_INIT = 1, BEIT_RNG_SHUFFLE, BEIT_RNG_AUGMENT, BEIT_RNG_MASK,
  BEIT_RNG_DROPPATH, BEIT_RNG_MIXUP, BEIT_RNG_GUMBEL, BEIT_RNG_KMEANS, BEIT_RNG_TEST, BEIT_RNG_VQ, BEIT_RNG_SPLIT
};
typedef struct { uint64_t s[4]; } beit_rng;  /* xoshiro256** state */
void beit_rng_seed(beit_rng *r, uint64_t seed, uint64_t purpose, uint64_t i, uint64_t j);
uint64_t beit_rng_u64(beit_rng *r);
double beit_rng_uniform(beit_rng *r);               /* [0, 1) */
double beit_rng_uniform_range(beit_rng *r, double lo, double hi); /* [lo, hi) */
int64_t beit_rng_randint(beit_rng *r, int64_t lo, int64_t hi); /* inclusive both ends */
double beit_rng_normal(beit_rng *r);                /* N(0, 1) */
/* Normal(0, std) truncated to [lo, hi] by rejection (BEiT's trunc_normal_). */
float beit_rng_trunc_normal(beit_rng *r, float std, float lo, float hi);

/* ---- time and threads ---------------------------------------------------- */
double beit_now(void);              /* monotonic seconds */
/* beit_set_threads (beit.h) sets OpenMP and BLAS threads together so the two
 * never oversubscribe. */
/* Peak resident set size of this process in MiB (from /proc/self/status). */
double beit_peak_rss_mib(void);

/* ---- runtime ------------------------------------------------------------
 * Call first thing in main(): if OpenBLAS picked a weaker kernel set than the
 * CPU supports (and OPENBLAS_CORETYPE is unset), or the user set no OpenMP wait
 * policy, sets OPENBLAS_CORETYPE / the wait policy (a short spin on an idle
 * machine, passive otherwise) and re-executes (once). */
void beit_runtime_init(char **argv);
/* e.g. "spin 10000, then sleep (the machine was idle at start); set by beit, ..." */
const char *beit_wait_describe(void);
/* e.g. "OpenBLAS 0.3.21, kernels SkylakeX (kernel set chosen by beit (SkylakeX)); gemm dnnl (...); conv dnnl (...)" */
const char *beit_blas_describe(void);

/* ---- the sgemm library of gemm() (src/ops/linear.c) --------------------------
 * oneDNN's dnnl_sgemm when the build found libdnnl (the default then: faster on the model's
 * tall-thin shapes, bench/bench_gemm), else OpenBLAS; BEIT_GEMM=openblas|dnnl picks one (a
 * value this binary cannot honour gets a warning on stderr and is ignored). */
typedef enum { BEIT_GEMM_OPENBLAS, BEIT_GEMM_DNNL, BEIT_GEMM_COUNT } beit_gemm_lib;
int beit_gemm_built(beit_gemm_lib lib); /* 1 when this binary has it */
beit_gemm_lib beit_gemm_active(void);
/* Switches gemm() to `lib` (tests, benchmarks); BEIT_ERR when this binary lacks it. */
int beit_gemm_set(beit_gemm_lib lib);
const char *beit_gemm_name(beit_gemm_lib lib); /* "openblas", "dnnl" */

/* ---- how conv2d runs (src/ops/conv2d.c) ---------------------------------------
 * oneDNN's convolution primitives when the build found libdnnl (the default then), else im2col +
 * OpenBLAS sgemm; BEIT_CONV=im2col|dnnl picks (read at the first convolution, as BEIT_GEMM). */
typedef enum { BEIT_CONV_IM2COL, BEIT_CONV_DNNL, BEIT_CONV_COUNT } beit_conv_impl;
int beit_conv_built(beit_conv_impl c);
beit_conv_impl beit_conv_active(void);
int beit_conv_set(beit_conv_impl c); /* tests, benchmarks; BEIT_ERR when this binary lacks it */
const char *beit_conv_name(beit_conv_impl c); /* "im2col", "dnnl" */

/* ---- vector ISA of the element-wise kernels (src/ops/simd*.c) ---------------
 * Each kernel exists once per ISA; the first kernel call picks the best this CPU
 * runs, or the one BEIT_ISA=generic|avx2|avx512 names (a value it cannot honour
 * gets a warning on stderr and is ignored). AVX2 and AVX-512 compute the same
 * bits, the generic path the same to rounding (docs/performance.md). */
typedef enum { BEIT_ISA_GENERIC, BEIT_ISA_AVX2, BEIT_ISA_AVX512, BEIT_ISA_COUNT } beit_isa;
int beit_isa_supported(beit_isa isa);
beit_isa beit_isa_active(void);
/* Switches the kernels to `isa` (tests, benchmarks); BEIT_ERR when this CPU lacks it. */
int beit_isa_set(beit_isa isa);
const char *beit_isa_name(beit_isa isa);  /* "generic", "avx2", "avx512" */
/* e.g. "avx2 (the best this CPU runs; BEIT_ISA=generic|avx2|avx512 picks one)" */
const char *beit_isa_describe(void);

/* ---- progress (stderr) -----------------------------------------------------
 * On a terminal (or with BEIT_PROGRESS set) a bar redrawn in place; otherwise
 * (nohup, CI, a pipe, a file) a plain line after the first update, then at
 * least every BEIT_PROGRESS_SECONDS seconds (default 30), at each
 * beit_progress_line and at the end:
 *   finetune: step 8/80, epoch 1/10, loss 2.3015 | 256/2560 images (10%), 412.0 img/s, 00:01 elapsed, ETA 00:06 */
typedef struct {
  const char *label;
  int64_t total, done;
  int64_t done0;     /* items done before this process started (a resumed run): not in the rate */
  double t_start, t_last_draw;
  int enabled;       /* callers turn it off (--quiet, MPI ranks other than 0) */
  int in_place;      /* the terminal bar; else plain lines */
  double every;      /* seconds between plain lines */
  int64_t line_done; /* `done` at the last plain line, -1 before the first */
  int open;          /* a bar is on the terminal's current line (no newline yet) */
  char extra[128];   /* the caller's state, e.g. "step 8/80, epoch 1/10, loss 2.3015" */
} beit_progress;
void beit_progress_start(beit_progress *p, const char *label, int64_t total);
/* Advance by `n` items (images); `extra` (may be NULL) is shown after the rate. */
void beit_progress_update(beit_progress *p, int64_t n, const char *extra);
/* A plain line now (an epoch's end); nothing on a terminal, whose bar is current. */
void beit_progress_line(beit_progress *p);
void beit_progress_finish(beit_progress *p);
/* "\n" when a bar is on the current line (ending it there), else "": print it
 * before a message so the message starts on a line of its own. */
const char *beit_progress_eol(beit_progress *p);

/* ---- small string/file helpers ------------------------------------------- */
/* Every reader in libbeit opens its input through these: open(O_NONBLOCK), fstat,
 * and a FIFO, directory, device or socket is refused ("PATH: not a regular file
 * (a FIFO)") before anything can wait on it; then the descriptor blocks as usual.
 * -1 / NULL with the message set (naming path) on failure. */
int beit_open_read(const char *path);
FILE *beit_fopen_read(const char *path);
int beit_is_dir(const char *path);
/* 1 when something other than a directory is at path: a regular file, or a FIFO,
 * device or socket, which the openers above then refuse by name instead of a
 * lookup passing over it as if it were missing. */
int beit_is_file(const char *path);
/* Reads a whole file; on error names the path. Caller frees with beit_free. */
int beit_read_file(const char *path, uint8_t **data, size_t *size);
/* Writes atomically: path.tmp, fsync, rename, fsync the directory. On failure
 * (disk full, read-only, EFBIG) path.tmp is removed, path is untouched and the
 * message names path and the errno text. */
int beit_write_file_atomic(const char *path, const void *data, size_t size);
/* Test hook for the kill tests (docs/reliability.md): sleeps BEIT_TEST_WRITE_DELAY_MS
 * milliseconds when that variable is set, else returns at once. Called in the
 * middle of every atomic write and between the renames of a checkpoint rotation,
 * so a SIGKILL can be aimed at those moments. */
void beit_test_write_delay(void);
int beit_mkdir_p(const char *path);

#endif
