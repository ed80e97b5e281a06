#include "cfg_diag.h"
#include "cfg_arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct diag_entry {
    unsigned line;
    unsigned col;
    size_t seq;
    char *msg; /* owned */
};

struct cfg_diag {
    struct diag_entry *entries; /* owned */
    size_t n;
    size_t cap;
    size_t dropped;
    char *summary; /* owned: "N more errors" once dropped > 0 */
};

struct cfg_diag *
cfg_diag_new(void)
{
    struct cfg_diag *d = cfg_xmalloc(sizeof(*d));

    memset(d, 0, sizeof(*d));
    return d;
}

void
cfg_diag_clear(struct cfg_diag *diag)
{
    size_t i;

    for (i = 0; i < diag->n; i++) {
        free(diag->entries[i].msg);
    }
    free(diag->summary);
    diag->summary = NULL;
    diag->n = 0;
    diag->dropped = 0;
}

void
cfg_diag_free(struct cfg_diag *diag)
{
    if (diag == NULL) {
        return;
    }
    cfg_diag_clear(diag);
    free(diag->entries);
    free(diag);
}

void
cfg_diag_add(struct cfg_diag *diag, const char *file, unsigned line, unsigned col, const char *path,
             const char *fmt, ...)
{
    char what[512];
    struct diag_entry *e;
    va_list ap;
    int n;

    if (diag->n == CFG_DIAG_KEEP) {
        diag->dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (diag->n == diag->cap) {
        diag->cap = diag->cap == 0 ? 16 : diag->cap * 2;
        diag->entries = cfg_xrealloc(diag->entries, diag->cap * sizeof(*diag->entries));
    }
    e = &diag->entries[diag->n];
    e->line = line;
    e->col = col;
    e->seq = diag->n;
    if (path != NULL && path[0] != '\0') {
        n = snprintf(NULL, 0, "%s:%u:%u: %s: %s", file, line, col, path, what);
        e->msg = cfg_xmalloc((size_t)n + 1);
        snprintf(e->msg, (size_t)n + 1, "%s:%u:%u: %s: %s", file, line, col, path, what);
    } else {
        n = snprintf(NULL, 0, "%s:%u:%u: %s", file, line, col, what);
        e->msg = cfg_xmalloc((size_t)n + 1);
        snprintf(e->msg, (size_t)n + 1, "%s:%u:%u: %s", file, line, col, what);
    }
    diag->n++;
}

static int
by_position(const void *a, const void *b)
{
    const struct diag_entry *x = a, *y = b;

    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    if (x->col != y->col) {
        return x->col < y->col ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

void
cfg_diag_finish(struct cfg_diag *diag)
{
    size_t i;

    if (diag->n > 1) {
        qsort(diag->entries, diag->n, sizeof(*diag->entries), by_position);
    }
    for (i = CFG_DIAG_MAX; i < diag->n; i++) { /* the first CFG_DIAG_MAX in file order stay */
        free(diag->entries[i].msg);
        diag->dropped++;
    }
    if (diag->n > CFG_DIAG_MAX) {
        diag->n = CFG_DIAG_MAX;
    }
    if (diag->dropped > 0 && diag->summary == NULL) {
        int n = snprintf(NULL, 0, "... and %zu more errors", diag->dropped);

        diag->summary = cfg_xmalloc((size_t)n + 1);
        snprintf(diag->summary, (size_t)n + 1, "... and %zu more errors", diag->dropped);
    }
}

size_t
cfg_diag_count(const struct cfg_diag *diag)
{
    return diag->n + (diag->dropped > 0 ? 1 : 0);
}

const char *
cfg_diag_message(const struct cfg_diag *diag, size_t i)
{
    if (i < diag->n) {
        return diag->entries[i].msg;
    }
    if (i == diag->n && diag->dropped > 0) {
        return diag->summary;
    }
    return NULL;
}
