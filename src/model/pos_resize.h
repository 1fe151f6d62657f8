/* pos_resize.h - carrying position parameters to another image size (spec 7.1):
 * the relative position bias table by the official BEiT scheme (geometric
 * source coordinates, bicubic spline onto the integer target grid) and the
 * absolute position embedding by torch-style bicubic interpolation. */
#ifndef BEIT_POS_RESIZE_H
#define BEIT_POS_RESIZE_H

/* Ratio q of the geometric spacing used for a table side of src_side offsets
 * (2*grid-1) resized to dst_side: the bisection of unilm's run_class_finetuning.py. */
double beit_relpos_ratio(int src_side, int dst_side);

/* src [(2*src_grid-1)^2 + 3, heads] -> dst [(2*dst_grid-1)^2 + 3, heads]. The
 * (2g-1)^2 offset rows of each head are a square interpolated as in unilm's
 * fine-tuning code (scipy interp2d, kind 'cubic': the interpolating not-a-knot
 * bicubic spline, constant beyond the outermost source coordinate); the three
 * CLS rows are copied. Fails for a grid below 2 (a cubic needs 4 points). */
int beit_relpos_table_resize(float *dst, int dst_grid, const float *src, int src_grid, int heads);

/* pos_embed [1, 1 + src_grid^2, dim] -> [1, 1 + dst_grid^2, dim]: the CLS slot
 * kept, the grid part resized like torch F.interpolate(mode='bicubic',
 * align_corners=False) (the official code's choice). */
void beit_pos_embed_resize(float *dst, int dst_grid, const float *src, int src_grid, int dim);

#endif
