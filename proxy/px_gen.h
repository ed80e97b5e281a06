#ifndef PX_GEN_H
#define PX_GEN_H

/*
 * A configuration generation: one loaded file, numbered from 1 and counted
 * up by each reload that applies. Everything built from it (listeners,
 * pools, shared health) borrows pointers into its cfg, so it is reference
 * counted across threads and freed by whichever thread drops the last
 * reference. A session keeps the listener (and so the generation) that
 * accepted it.
 */

#include <stdatomic.h>

struct cfg;

struct px_gen {
    struct cfg *cfg; /* owned */
    unsigned number;
    atomic_uint refs;
};

/* Take ownership of cfg (freed here on failure); one reference. NULL on failure. */
struct px_gen *px_gen_new(struct cfg *cfg, unsigned number);
struct px_gen *px_gen_ref(struct px_gen *g);
/* Drop a reference, from any thread; the last one frees the generation. */
void px_gen_unref(struct px_gen *g);

#endif
