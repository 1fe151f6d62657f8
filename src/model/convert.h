/* convert.h - BEiT checkpoints of the other implementations, in and out:
 * timm's beit.py, Hugging Face transformers' Beit* models (safetensors +
 * config.json) and the official microsoft/unilm code. The key-name scheme is
 * detected from the keys, the architecture inferred from the shapes (and
 * config.json), and anything that does not fit is refused naming the key and
 * the shapes. Also the fine-tuning surgery of spec 7.1 (shared -> per-block
 * relative position tables, tables and pos_embed resized to a new image size).
 * The name mapping is documented in docs/checkpoints.md. */
#ifndef BEIT_CONVERT_H
#define BEIT_CONVERT_H

#include "data/augment.h"
#include "model/beit.h"

typedef enum { BEIT_SCHEME_BEIT, BEIT_SCHEME_TIMM, BEIT_SCHEME_UNILM, BEIT_SCHEME_HF } beit_scheme;

const char *beit_scheme_name(beit_scheme s);
/* "beit", "timm", "unilm", "hf"; BEIT_ERR (message lists them) otherwise. */
int beit_scheme_parse(const char *name, beit_scheme *s);

/* What a checkpoint carries besides its weights. */
typedef struct {
  beit_scheme scheme;       /* detected key-name scheme */
  char weights[1100];       /* the safetensors file that was read */
  char config[1100];        /* the config.json used, "" if none */
  char **class_names;       /* num_names entries (classifiers: one per class) */
  int num_names;
  const char *names_from;   /* where they came from, for messages */
  int names_stated;         /* 1: from the file (metadata, config.json); 0: ImageNet-1k's or numbers, guessed */
  float mean[3], std[3];    /* input normalisation */
  const char *norm_from;
  float crop_pct;           /* eval centre-crop share the checkpoint asks for; 0 = not stated */
  int ignored;              /* tensors of the file the model does not use (index buffers) */
} beit_checkpoint_info;

/* Opens a checkpoint of any scheme as a model: a safetensors file, or a folder
 * holding model.safetensors (+ config.json, preprocessor_config.json) as the
 * Hugging Face hub and timm's hub layout have it. info may be NULL. */
int beit_checkpoint_open(beit_model *m, const char *path, beit_checkpoint_info *info);
void beit_checkpoint_info_free(beit_checkpoint_info *info);
/* The eval preprocessing of an opened checkpoint: m's input size, its mean/std,
 * crop_pct if > 0 (a --crop-pct), else its own, else beit_default_crop_pct. Its
 * own settings were checked on opening (a NaN-making std or an absurd crop_pct
 * is refused there, naming the file); a crop_pct given here is the caller's to
 * check (beit_eval_crop_check). */
beit_eval_prep beit_checkpoint_eval_prep(const beit_model *m, const beit_checkpoint_info *info, float crop_pct);

/* Writes m in `scheme`: a safetensors file for beit/timm/unilm, a folder with
 * model.safetensors + config.json + preprocessor_config.json for hf. Class
 * names and normalisation come from info (may be NULL). */
int beit_checkpoint_export(const beit_model *m, const beit_checkpoint_info *info, beit_scheme scheme,
                           const char *out);

/* Checkpoint surgery: every tensor of dst that src has is copied; relative
 * position tables and pos_embed of another grid are resized (pos_resize.h); a
 * shared table fills per-block ones; a classifier head of another size stays
 * as initialised. Any other shape difference is an error naming the tensor. */
typedef struct { int copied, resized, from_shared, kept, unused; } beit_transfer_report;
int beit_checkpoint_transfer(beit_model *dst, const beit_model *src, const char *src_name, beit_transfer_report *r);
/* beit_checkpoint_open + transfer: `beit finetune --init` with any scheme. */
int beit_checkpoint_load_pretrained(beit_model *dst, const char *path, beit_transfer_report *r);

/* The 1000 ImageNet-1k class names (torchvision's wording), newline-separated. */
const char *beit_imagenet_class_names(void);

#endif
