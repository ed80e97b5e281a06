#ifndef CFG_DIAG_H
#define CFG_DIAG_H

/* Adding to a cfg_diag (private to config/; the reading side is in cfg.h). */

#include "cfg.h"

#define CFG_DIAG_MAX 200    /* shown, the first in file order; one line counts the rest */
#define CFG_DIAG_KEEP 20000 /* collected before sorting */

void cfg_diag_add(struct cfg_diag *diag, const char *file, unsigned line, unsigned col,
                  const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Order by position (cross-reference errors are found late) and count what was dropped. */
void cfg_diag_finish(struct cfg_diag *diag);
void cfg_diag_clear(struct cfg_diag *diag);

#endif
