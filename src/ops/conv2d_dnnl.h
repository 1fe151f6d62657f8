/* conv2d_dnnl.h - conv2d.c's oneDNN path (conv2d_dnnl.c; without BEIT_HAVE_DNNL it always refuses). */
#ifndef BEIT_CONV2D_DNNL_H
#define BEIT_CONV2D_DNNL_H

#include "ops/ops.h"

/* out = conv2d(inp, weight) + bias (bias may be NULL) through a cached oneDNN primitive; the
 * scratchpad lives in scratch (scratch_floats floats) when it fits. 0 when oneDNN refuses the shape
 * or fails: the caller then computes all of out another way. */
int conv2d_dnnl_forward(float *out, float *scratch, size_t scratch_floats, const float *inp, const float *weight,
                        const float *bias, const conv2d_dims *d);
/* Shapes in the primitive cache now (at most 64). */
int conv2d_dnnl_cached(void);

#endif
