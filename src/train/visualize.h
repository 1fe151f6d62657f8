/* visualize.h - what the model sees, as PNG: the CLS token's attention over
 * the patches at the last layer (per head and averaged, overlaid on the image)
 * and training curves read from log.jsonl files. */
#ifndef BEIT_VISUALIZE_H
#define BEIT_VISUALIZE_H

#include "model/beit.h"

/* images: [n, C, S, S] normalised with mean/std (for display they are mapped
 * back). One row per image: the image, then one overlay per head, then the
 * head average. Runs a forward pass with the model's arena (n <= its batch). */
int beit_attention_png(beit_model *m, const float *images, int n, const float mean[3], const float std[3],
                       const char *path);
/* One chart of `field` against "step" for each run folder: runs overlaid in
 * distinct colours (a run with one value as a point), axes with round ticks and
 * their values, a legend naming each run; the runs are listed on stdout with
 * their final values. BEIT_ERR when a log cannot be read or none has the field. */
int beit_plot_png(const char *const *runs, int nruns, const char *field, const char *path);
/* BEIT_OK when RUN/log.jsonl can be read; else the message names it. */
int beit_plot_run_readable(const char *run);

#endif
