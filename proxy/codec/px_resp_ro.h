#ifndef PX_RESP_RO_H
#define PX_RESP_RO_H

/*
 * Redis commands that only read (Redis's "readonly" flag, no side effect,
 * not blocking): a request the pool may send twice (pool_req.may_repeat)
 * when the connection it was written on breaks under an earlier request.
 */

#include <stdbool.h>

/* Whether the command named upper (upper case, NUL-terminated) only reads. */
bool px_cmd_may_repeat(const char *upper);

#endif
