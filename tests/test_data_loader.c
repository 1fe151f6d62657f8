/* test_data_loader.c - the batch loader: bit-identical output for 0, 1 and 2
 * workers, epoch boundaries, disjoint and covering rank slices, seek/resume
 * equal to an uninterrupted pass, the composition of augmentation and masks,
 * eval order, partial batches and error propagation from a corrupt file. */
#include "data/loader.h"
#include "test.h"
#include "test_data_fixtures.h"

#define NS 103

static beit_dataset DS, FOLDER;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t batch_hash(const beit_batch *b) {
  size_t B = (size_t)b->batch_size, C = (size_t)b->channels;
  uint64_t h = fnv(0xcbf29ce484222325ull, b->images, sizeof(float) * B * C * b->size * b->size);
  if (b->images2) h = fnv(h, b->images2, sizeof(float) * B * C * b->second_size * b->second_size);
  if (b->masks) h = fnv(h, b->masks, B * b->num_patches);
  h = fnv(h, b->labels, sizeof(int32_t) * B);
  h = fnv(h, b->indices, sizeof(int64_t) * B);
  h = fnv(h, &b->epoch, sizeof b->epoch);
  return fnv(h, &b->step, sizeof b->step);
}

/* Hashes of every batch of `epochs` epochs (-1 marks an epoch end). */
static int run_hashes(const beit_dataset *ds, beit_loader_cfg cfg, int epochs, uint64_t *out, int cap) {
  beit_loader *L;
  if (beit_loader_open(&L, ds, &cfg)) return -1;
  beit_batch b;
  int n = 0, ends = 0;
  while (ends < epochs && n < cap) {
    int rc = beit_loader_next(L, &b);
    if (rc < 0) { n = -1; break; }
    out[n++] = rc ? batch_hash(&b) : (uint64_t)-1;
    ends += rc == 0;
  }
  beit_loader_close(L);
  return n;
}

static beit_loader_cfg pretrain_cfg(int workers) {
  beit_loader_cfg c;
  beit_loader_defaults(&c, BEIT_LOAD_PRETRAIN);
  c.batch_size = 8, c.num_workers = workers, c.seed = 1234;
  return c;
}

static void test_threads(void) {
  static uint64_t h0[64], h1[64], h2[64], h3[64];
  int n0 = run_hashes(&DS, pretrain_cfg(0), 2, h0, 64);
  int n1 = run_hashes(&DS, pretrain_cfg(1), 2, h1, 64);
  int n2 = run_hashes(&DS, pretrain_cfg(2), 2, h2, 64);
  beit_loader_cfg c = pretrain_cfg(2);
  c.prefetch = 5;
  int n3 = run_hashes(&DS, c, 2, h3, 64);
  CHECK_TRUE(n0 == 26 && n1 == n0 && n2 == n0 && n3 == n0, "2 epochs = 2 x (12 batches + end marker): %d %d %d %d", n0, n1, n2, n3);
  CHECK_TRUE(n0 > 0 && !memcmp(h0, h1, sizeof(uint64_t) * n0) && !memcmp(h0, h2, sizeof(uint64_t) * n0) &&
                 !memcmp(h0, h3, sizeof(uint64_t) * n0),
             "pretraining batches bit-identical with 0, 1, 2 workers and prefetch 2 or 5");
  beit_loader_cfg f0 = pretrain_cfg(0), f2 = pretrain_cfg(2);
  f0.image_size = f2.image_size = 32, f0.batch_size = f2.batch_size = 3;
  n0 = run_hashes(&FOLDER, f0, 1, h0, 64);
  n2 = run_hashes(&FOLDER, f2, 1, h2, 64);
  CHECK_TRUE(n0 == 4 && n2 == 4 && !memcmp(h0, h2, sizeof(uint64_t) * 4),
             "image folder (PNG/JPEG decode, mixed sizes) identical with 0 and 2 workers: %d %d", n0, n2);
}

static void test_epochs(void) {
  beit_loader *L;
  beit_loader_cfg c = pretrain_cfg(2);
  beit_loader_open(&L, &DS, &c);
  beit_batch b;
  int seen[NS] = {0}, ok = 1, steps = 0, rc;
  int64_t first_e0[8];
  while ((rc = beit_loader_next(L, &b)) == 1) {
    ok &= b.epoch == 0 && b.step == steps && b.n == 8;
    if (steps == 0) memcpy(first_e0, b.indices, sizeof first_e0);
    for (int k = 0; k < b.n; k++) seen[b.indices[k]]++;
    steps++;
  }
  int dup = 0, used = 0;
  for (int i = 0; i < NS; i++) dup += seen[i] > 1, used += seen[i];
  CHECK_TRUE(rc == 0 && steps == 12 && ok && dup == 0 && used == 96 && beit_loader_steps_per_epoch(L) == 12,
             "epoch 0: 12 full batches (drop_last), steps 0..11, 96 distinct samples, then 0");
  rc = beit_loader_next(L, &b);
  CHECK_TRUE(rc == 1 && b.epoch == 1 && b.step == 0, "the call after the end starts epoch 1 at step 0");
  CHECK_TRUE(memcmp(first_e0, b.indices, sizeof first_e0) != 0, "epochs 0 and 1 are shuffled differently");
  beit_loader_seek(L, 0, 0);
  beit_loader_next(L, &b);
  CHECK_TRUE(!memcmp(first_e0, b.indices, sizeof first_e0), "seek(0, 0) gives epoch 0's first batch again");
  /* masks and views are what the per-sample functions give for (seed, epoch, index) */
  const beit_mask_cfg *mc = beit_loader_mask_config(L);
  uint8_t m[49];
  beit_mask_sample(mc, 1234, 0, b.indices[3], m);
  CHECK_TRUE(b.grid == 7 && b.num_patches == 49 && !memcmp(m, b.masks + 3 * 49, 49) && mc->num_masking_patches == 20,
             "mask of sample 3 = beit_mask_sample(seed, epoch 0, its index); 7x7 grid, 20 patches");
  beit_image img = {0};
  beit_dataset_get(&DS, b.indices[3], &img, NULL);
  beit_rng rng;
  beit_rng_seed(&rng, 1234, BEIT_RNG_AUGMENT, 0, (uint64_t)b.indices[3]);
  static float va[28 * 28], vb[56 * 56];
  beit_aug_pretrain(&c.aug, &img, &rng, 28, 56, DS.mean, DS.std, va, vb, NULL);
  CHECK_TRUE(b.second_size == 56 && !memcmp(va, b.images + 3 * 784, sizeof va) && !memcmp(vb, b.images2 + 3 * 3136, sizeof vb),
             "views of sample 3 = beit_aug_pretrain with rng (seed, AUGMENT, epoch, index), dataset mean/std; S2 = 7*8");
  beit_image_free(&img);
  beit_loader_close(L);
}

/* Every rank's indices over one epoch. */
static int rank_indices(beit_load_mode mode, int rank, int world, int *seen) {
  beit_loader_cfg c;
  beit_loader_defaults(&c, mode);
  c.batch_size = 5, c.rank = rank, c.world_size = world, c.drop_last = 0, c.num_workers = 1, c.seed = 77;
  beit_loader *L;
  if (beit_loader_open(&L, &DS, &c)) return -1;
  beit_batch b;
  int n = 0;
  while (beit_loader_next(L, &b) == 1)
    for (int k = 0; k < b.n; k++) seen[b.indices[k]]++, n++;
  beit_loader_close(L);
  return n;
}

static void test_ranks(void) {
  for (int mode = 0; mode < 3; mode += 2) {
    int seen[NS] = {0}, counts[3], dup = 0, covered = 0;
    for (int r = 0; r < 3; r++) counts[r] = rank_indices((beit_load_mode)mode, r, 3, seen);
    for (int i = 0; i < NS; i++) dup += seen[i] > 1, covered += seen[i] == 1;
    if (mode == BEIT_LOAD_PRETRAIN)
      CHECK_TRUE(counts[0] == 34 && counts[1] == 34 && counts[2] == 34 && dup == 0 && covered == 102,
                 "shuffled, 3 ranks: equal slices of 34, disjoint, covering 102 of 103 (n mod 3 left out)");
    else
      CHECK_TRUE(counts[0] == 35 && counts[1] == 34 && counts[2] == 34 && dup == 0 && covered == NS,
                 "eval, 3 ranks: 35/34/34, disjoint, covering all 103");
  }
}

static void test_seek(void) {
  static uint64_t full[64];
  int n = run_hashes(&DS, pretrain_cfg(2), 3, full, 64); /* positions: epoch e step s at e*13 + s */
  beit_loader *L;
  beit_loader_cfg c = pretrain_cfg(2);
  beit_loader_open(&L, &DS, &c);
  beit_batch b;
  beit_loader_seek(L, 1, 5);
  int ok = 1, k = 13 + 5;
  for (; k < n; k++) {
    int rc = beit_loader_next(L, &b);
    ok &= rc == 1 ? batch_hash(&b) == full[k] : full[k] == (uint64_t)-1;
  }
  CHECK_TRUE(n == 39 && ok, "fresh loader seek(1, 5): every later batch equals the uninterrupted run");
  beit_loader_seek(L, 0, 2);
  for (int i = 0; i < 3; i++) beit_loader_next(L, &b);
  beit_loader_seek(L, 2, 11);
  int r1 = beit_loader_next(L, &b);
  uint64_t h = batch_hash(&b);
  int r2 = beit_loader_next(L, &b), r3 = beit_loader_next(L, &b);
  CHECK_TRUE(r1 == 1 && h == full[2 * 13 + 11] && r2 == 0 && r3 == 1 && b.epoch == 3 && b.step == 0,
             "seek mid-stream to the last step: that batch, the epoch end, then epoch 3");
  CHECK_TRUE(beit_loader_seek(L, 0, 13) == BEIT_ERR, "seek past the epoch refused: %s", beit_last_error());
  beit_loader_close(L);
}

static void test_eval_train(void) {
  beit_loader_cfg c;
  beit_loader_defaults(&c, BEIT_LOAD_EVAL);
  c.batch_size = 8, c.num_workers = 2;
  beit_loader *L;
  beit_loader_open(&L, &DS, &c);
  beit_batch b;
  int ok = 1, steps = 0, last_n = 0, pad = 0;
  static float ref[8 * 784];
  int32_t lab[8];
  while (beit_loader_next(L, &b) == 1) {
    beit_eval_prep prep = beit_eval_prep_make(28, 0, DS.mean, DS.std);  /* the loader's default crop */
    beit_eval_images(&DS, steps * 8, b.n, &prep, ref, lab);
    ok &= !memcmp(ref, b.images, sizeof(float) * 784 * b.n) && !memcmp(lab, b.labels, sizeof(int32_t) * b.n);
    for (int k = 0; k < b.n; k++) ok &= b.indices[k] == steps * 8 + k;
    ok &= b.masks == NULL && b.images2 == NULL;
    last_n = b.n;
    pad = b.n < 8 ? b.indices[7] == -1 : pad;
    steps++;
  }
  CHECK_TRUE(ok && steps == 13 && last_n == 7 && pad,
             "eval: in order, = beit_eval_images, 13 batches with a last one of 7 (padding index -1)");
  beit_loader_close(L);
  beit_loader_defaults(&c, BEIT_LOAD_TRAIN);
  c.batch_size = 16, c.num_workers = 2;
  beit_loader_open(&L, &DS, &c);
  beit_loader_next(L, &b);
  ok = 1;
  for (int k = 0; k < b.n; k++) ok &= b.labels[k] == DS.labels[b.indices[k]];
  CHECK_TRUE(ok && b.masks == NULL, "train mode: labels belong to the shuffled indices, no masks");
  beit_loader_close(L);
}

static void test_errors(void) {
  beit_loader *L;
  beit_loader_cfg c = pretrain_cfg(2);
  c.rank = 3, c.world_size = 3;
  CHECK_TRUE(beit_loader_open(&L, &DS, &c) == BEIT_ERR && L == NULL, "rank 3 of 3 refused: %s", beit_last_error());
  c = pretrain_cfg(1);
  c.batch_size = 200;
  CHECK_TRUE(beit_loader_open(&L, &DS, &c) == BEIT_ERR, "batch 200 > 103 samples with drop_last: %s", beit_last_error());
  c = pretrain_cfg(1);
  c.image_size = 30;
  CHECK_TRUE(beit_loader_open(&L, &DS, &c) == BEIT_ERR, "size 30 with patch 4 refused: %s", beit_last_error());
  /* a corrupt file with the fatal policy surfaces as an error naming it */
  FOLDER.bad_policy = BEIT_BAD_FATAL;
  c = pretrain_cfg(2);
  c.batch_size = 9, c.image_size = 32, c.shuffle = 0;
  beit_loader_open(&L, &FOLDER, &c);
  beit_batch b;
  int rc = beit_loader_next(L, &b);
  CHECK_TRUE(rc == BEIT_ERR && strstr(beit_last_error(), "bad.jpg"), "fatal policy: next() fails: %s", beit_last_error());
  beit_loader_close(L);
  FOLDER.bad_policy = BEIT_BAD_SKIP;
}

static void make_datasets(void) {
  const char *d = fx_dir("loader/idx");
  fx_idx_dir(d, NS, 5, 28, 28, 0);
  char spec[1200], p[1200];
  snprintf(spec, sizeof spec, "fashion-mnist:%s", d);
  if (beit_dataset_open(&DS, spec, 1)) { printf("%s\n", beit_last_error()); exit(1); }
  const char *f = fx_dir("loader/folder/train/a");
  fx_dir("loader/folder/train/b");
  for (int i = 0; i < 9; i++) {
    uint8_t *px = fx_picture(20 + 7 * i, 50 - 3 * i, i % 3 ? 3 : 1, i);
    snprintf(p, sizeof p, "%s/../%s/img%d.%s", f, i < 5 ? "a" : "b", i, i % 2 ? "png" : "jpg");
    if (i % 2) beit_png_save(p, px, 20 + 7 * i, 50 - 3 * i, i % 3 ? 3 : 1);
    else fx_jpeg(p, px, 20 + 7 * i, 50 - 3 * i, i % 3 ? 3 : 1, 90);
    free(px);
  }
  snprintf(p, sizeof p, "%s/bad.jpg", f);
  fx_write(p, "\xff\xd8\xff\xe0 broken", 11);
  if (beit_dataset_open(&FOLDER, fx_dir("loader/folder"), 1)) { printf("%s\n", beit_last_error()); exit(1); }
  FOLDER.bad_policy = BEIT_BAD_SKIP;
}

int main(void) {
  TEST_BEGIN("test_data_loader");
  make_datasets();
  test_threads();
  test_epochs();
  test_ranks();
  test_seek();
  test_eval_train();
  test_errors();
  beit_dataset_close(&DS);
  beit_dataset_close(&FOLDER);
  return TEST_END();
}
