#include "px_gen.h"
#include "config/cfg.h"

#include <stdlib.h>

struct px_gen *
px_gen_new(struct cfg *cfg, unsigned number)
{
    struct px_gen *g = calloc(1, sizeof(*g));

    if (g == NULL) {
        cfg_free(cfg);
        return NULL;
    }
    g->cfg = cfg;
    g->number = number;
    atomic_init(&g->refs, 1);
    return g;
}

struct px_gen *
px_gen_ref(struct px_gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void
px_gen_unref(struct px_gen *g)
{
    if (g != NULL && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1) {
        cfg_free(g->cfg);
        free(g);
    }
}
