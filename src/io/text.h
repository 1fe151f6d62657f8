/* text.h - text on a canvas (io/image.h) in a 5x7 bitmap font, for chart labels. */
#ifndef BEIT_TEXT_H
#define BEIT_TEXT_H

#include <stdint.h>

#include "io/image.h"

#define BEIT_GLYPH_W 5
#define BEIT_GLYPH_H 7
#define BEIT_GLYPH_ADVANCE 6  /* glyph plus one column of space */

/* Draws `text` with its top-left corner at (x, y), each font pixel a
 * scale x scale square (clipped to the canvas); returns the x after the text. */
int beit_canvas_text(beit_canvas *cv, int x, int y, const char *text, const uint8_t rgb[3], int scale);
/* Width in pixels of `text` at `scale`. */
int beit_text_width(const char *text, int scale);

#endif
