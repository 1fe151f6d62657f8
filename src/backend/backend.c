/* backend.c - the compiled backends and the default one. A new backend adds its
 * table here (behind its build option). */
#include "backend/backend.h"

const beit_backend *beit_backend_default(void) { return beit_backend_cpu(); }

const beit_backend *beit_backend_at(int i) {
  const beit_backend *compiled[] = {beit_backend_cpu()};
  return i >= 0 && i < (int)(sizeof compiled / sizeof *compiled) ? compiled[i] : NULL;
}
