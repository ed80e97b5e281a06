/*
 * The read-only commands, as a small open-addressing set built once: a
 * lookup hashes the name and compares one or two strings.
 */
#include "px_resp_ro.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define SLOTS 256 /* a power of two, well over the names below */

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

static const char *set[SLOTS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint32_t
hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

static void
build(void)
{
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        uint32_t k = hash(names[i]) & (SLOTS - 1);

        while (set[k] != NULL) {
            k = (k + 1) & (SLOTS - 1);
        }
        set[k] = names[i];
    }
}

bool
px_cmd_may_repeat(const char *upper)
{
    uint32_t k = hash(upper) & (SLOTS - 1);

    (void)pthread_once(&once, build);
    while (set[k] != NULL) {
        if (strcmp(set[k], upper) == 0) {
            return true;
        }
        k = (k + 1) & (SLOTS - 1);
    }
    return false;
}
