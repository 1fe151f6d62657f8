/* cmd_convert.c - `beit convert`: a BEiT checkpoint of any scheme (beit.c,
 * timm, unilm, Hugging Face) to any other, optionally for another image size
 * (relative position tables and pos_embed resized as the official fine-tuning
 * code does). Without --out it only reports what it found. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/core.h"
#include "model/convert.h"

static void describe(const char *path, const beit_model *m, const beit_checkpoint_info *info) {
  const beit_config *c = &m->cfg;
  size_t n = 0;
  for (int i = 0; i < m->params.n; i++) n += m->params.t[i].numel;
  printf("%s: %s names%s%s\n", path, beit_scheme_name(info->scheme), info->config[0] ? " + " : "", info->config);
  printf("  %d blocks x %d wide, %d heads, MLP %d, patch %d, %d px (%dx%d patches), %d channels, %.2f M parameters\n",
         c->depth, c->dim, c->heads, (int)(c->dim * c->mlp_ratio), c->patch_size, c->image_size, m->grid, m->grid,
         c->channels, n / 1e6);
  printf("  position: %s%s; LayerScale %s; LayerNorm eps %g\n",
         c->rel_pos == BEIT_RELPOS_NONE     ? "no relative bias"
         : c->rel_pos == BEIT_RELPOS_SHARED ? "shared relative bias table"
                                            : "relative bias table per block",
         c->abs_pos_emb ? " + absolute embeddings" : "", c->layer_scale_init > 0 ? "yes" : "no", c->ln_eps);
  if (c->num_classes > 0)
    printf("  classifier: %d classes (%s pooling), names from %s\n", c->num_classes,
           c->use_mean_pooling ? "mean" : "CLS", info->names_from);
  if (c->vocab_size > 0) printf("  masked image modeling head: %d visual tokens\n", c->vocab_size);
  if (c->pixel_head) printf("  pixel-regression head (beit.c's ablation; only the beit scheme can hold it)\n");
  printf("  normalisation: mean %g %g %g, std %g %g %g (%s)\n", info->mean[0], info->mean[1], info->mean[2], info->std[0],
         info->std[1], info->std[2], info->norm_from);
  if (info->ignored) printf("  %d index buffer%s checked and not stored (rebuilt from the grid)\n", info->ignored,
                            info->ignored > 1 ? "s" : "");
}

/* The same model for another image size: every tensor carried over, position tables resized. */
static int resized(beit_model *out, const beit_model *in, int image_size, const char *name) {
  beit_config c = in->cfg;
  c.image_size = image_size;
  if (beit_model_init(out, &c) != BEIT_OK) return BEIT_ERR;
  beit_transfer_report r;
  if (beit_checkpoint_transfer(out, in, name, &r) != BEIT_OK) {
    beit_model_free(out);
    return BEIT_ERR;
  }
  fprintf(stderr, "convert: %d -> %d px: %d tensors resized, %d copied\n", in->cfg.image_size, image_size, r.resized,
          r.copied);
  return BEIT_OK;
}

int cmd_convert(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *to = "beit";
  int image_size = 0;
  beit_arg a[] = {
      {"in", ARG_STR, &in, "checkpoint: a safetensors file, or a folder with model.safetensors (+ config.json)", 0, 0},
      {"out", ARG_STR, &out, "file to write (a folder for --to hf); none = only describe --in", 0, 0},
      {"to", ARG_STR, &to, "key names to write: beit (ours, with config), timm, unilm (official), hf (transformers)", 0, 0},
      {"image-size", ARG_INT, &image_size, "resize the position parameters for this input side (0 = keep)", 0, 4096},
  };
  int rc = beit_args_parse("beit convert --in CKPT [--out OUT --to beit|timm|unilm|hf] [--image-size S]",
                           "Convert BEiT checkpoints between beit.c, timm, the official unilm code and Hugging Face "
                           "transformers (docs/checkpoints.md).",
                           a, (int)(sizeof a / sizeof a[0]), argc, argv, NULL, NULL);
  if (rc) return rc == ARGS_HELP ? 0 : 2;
  beit_scheme scheme;
  if (!in) { fprintf(stderr, "beit convert: --in is required\n"); return 2; }
  if (beit_scheme_parse(to, &scheme) != BEIT_OK) { fprintf(stderr, "beit convert: --to: %s\n", beit_last_error()); return 2; }
  beit_model m, r;
  beit_checkpoint_info info;
  if (beit_checkpoint_open(&m, in, &info) != BEIT_OK) {
    fprintf(stderr, "beit convert: %s\n", beit_last_error());
    return 1;
  }
  describe(in, &m, &info);
  rc = BEIT_OK;
  const beit_model *src = &m;
  if (image_size && image_size != m.cfg.image_size) {
    rc = resized(&r, &m, image_size, in);
    if (rc == BEIT_OK) src = &r;
  }
  if (rc == BEIT_OK && out) rc = beit_checkpoint_export(src, &info, scheme, out);
  if (rc == BEIT_OK && out) printf("wrote %s (%s names)\n", out, beit_scheme_name(scheme));
  if (rc != BEIT_OK) fprintf(stderr, "beit convert: %s\n", beit_last_error());
  if (src == &r) beit_model_free(&r);
  beit_checkpoint_info_free(&info);
  beit_model_free(&m);
  return rc == BEIT_OK ? 0 : 1;
}
