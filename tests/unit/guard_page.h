#ifndef GUARD_PAGE_H
#define GUARD_PAGE_H

/*
 * Test input that ends at a PROT_NONE page: a parser that reads one byte past
 * its input faults. Shared by the codec and command-parsing tests.
 */

#include <stddef.h>
#include <stdint.h>

struct guarded {
    uint8_t *map;
    size_t size;
};

/* A read-only copy of src whose last byte is the last before the guard page. */
const uint8_t *guard(const void *src, size_t len, struct guarded *g);
void unguard(struct guarded *g);

#endif
