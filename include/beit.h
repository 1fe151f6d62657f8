/* beit.h - the public API of libbeit, for C programs that embed it: the model
 * (config, forward, backward), tokenizers, data loading, checkpoints and the
 * training recipes. Link with libbeit.a (see CMakeLists.txt). */
#ifndef BEIT_PUBLIC_H
#define BEIT_PUBLIC_H

#include "core/core.h"        /* errors, RNG, threads, progress */
#include "data/dataset.h"     /* dataset readers */
#include "data/loader.h"      /* batches with augmentation and masks */
#include "io/safetensors.h"   /* checkpoint files */
#include "io/convert.h"       /* timm / unilm / Hugging Face checkpoints in and out */
#include "model/beit.h"       /* the BEiT encoder and heads */
#include "train/recipes.h"    /* pretrain / fine-tune */
#include "train/tokenizer.h"  /* visual tokenizers */
#include "train/train.h"      /* AdamW, schedule, run folders, checkpoints */

#endif
