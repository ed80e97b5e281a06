#ifndef PX_RESP_RO_H
#define PX_RESP_RO_H

/*
 * Redis commands that only read (Redis's "readonly" flag, no side effect,
 * not blocking): a request the pool may send twice (pool_req.may_repeat)
 * when the connection it was written on breaks under an earlier request.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * The set, keyed by a name's first 4 bytes (every name has 3 or more, so a
 * name of 3 has its NUL in them), built before main(): one lookup per
 * request, inline, a multiply and a compare or two.
 */
#define PX_RO_SLOTS 512 /* a power of two, well over the names: short probes */
#define PX_RO_SLOT_BITS 9
struct px_ro_slot {
    const char *name; /* NULL: free */
    uint32_t head;    /* its first 4 bytes, its NUL included when it has 3 letters */
};
extern struct px_ro_slot px_ro_set[PX_RO_SLOTS];

static inline uint32_t
px_ro_slot_of(uint32_t head)
{
    return (head * 0x9E3779B1u) >> (32 - PX_RO_SLOT_BITS);
}

/*
 * Whether the command named name only reads: name is px_cmd.name (upper
 * case, NUL-terminated, in a buffer of 4 bytes or more: 4 are read at once).
 */
static inline bool
px_cmd_may_repeat(const char *name)
{
    uint32_t head, k;

    memcpy(&head, name, sizeof(head));
    for (k = px_ro_slot_of(head); px_ro_set[k].name != NULL; k = (k + 1) & (PX_RO_SLOTS - 1)) {
        if (px_ro_set[k].head == head &&
            (px_ro_set[k].name[3] == '\0' || strcmp(px_ro_set[k].name + 4, name + 4) == 0)) {
            return true;
        }
    }
    return false;
}

#endif
