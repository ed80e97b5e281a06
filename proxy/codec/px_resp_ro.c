/*
 * The read-only commands (every one 3 letters or more), as a small
 * open-addressing set built at start and looked up in px_resp_ro.h.
 */
#include "px_resp_ro.h"
#include "px_resp_cmd.h"

#include <stdint.h>
#include <string.h>

_Static_assert(sizeof(((struct px_cmd *)0)->name) >= 4, "px_cmd.name: 4 bytes are read at once");

static const char *const names[] = {
    "BITCOUNT",      "BITFIELD_RO", "BITPOS",      "DBSIZE",         "DUMP",
    "ECHO",          "EVALSHA_RO",  "EVAL_RO",     "EXISTS",         "EXPIRETIME",
    "FCALL_RO",      "GEODIST",     "GEOHASH",     "GEOPOS",         "GEORADIUSBYMEMBER_RO",
    "GEORADIUS_RO",  "GEOSEARCH",   "GET",         "GETBIT",         "GETRANGE",
    "HEXISTS",       "HGET",        "HGETALL",     "HKEYS",          "HLEN",
    "HMGET",         "HRANDFIELD",  "HSCAN",       "HSTRLEN",        "HVALS",
    "KEYS",          "LCS",         "LINDEX",      "LLEN",           "LPOS",
    "LRANGE",        "MGET",        "PEXPIRETIME", "PING",           "PTTL",
    "RANDOMKEY",     "SCAN",        "SCARD",       "SDIFF",          "SINTER",
    "SINTERCARD",    "SISMEMBER",   "SMEMBERS",    "SMISMEMBER",     "SRANDMEMBER",
    "SSCAN",         "STRLEN",      "SUBSTR",      "SUNION",         "TIME",
    "TTL",           "TYPE",        "XLEN",        "XRANGE",         "XREVRANGE",
    "ZCARD",         "ZCOUNT",      "ZDIFF",       "ZINTER",         "ZINTERCARD",
    "ZLEXCOUNT",     "ZMSCORE",     "ZRANDMEMBER", "ZRANGE",         "ZRANGEBYLEX",
    "ZRANGEBYSCORE", "ZRANK",       "ZREVRANGE",   "ZREVRANGEBYLEX", "ZREVRANGEBYSCORE",
    "ZREVRANK",      "ZSCAN",       "ZSCORE",      "ZUNION",
};

struct px_ro_slot px_ro_set[PX_RO_SLOTS];

/* Built before main(): no check per lookup, and the workers only read it. */
__attribute__((constructor)) static void
build(void)
{
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        uint32_t head, k;

        memcpy(&head, names[i], sizeof(head)); /* 3 letters and a NUL at least */
        k = px_ro_slot_of(head);
        while (px_ro_set[k].name != NULL) {
            k = (k + 1) & (PX_RO_SLOTS - 1);
        }
        px_ro_set[k].name = names[i];
        px_ro_set[k].head = head;
    }
}
