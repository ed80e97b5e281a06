/*
 * The Redis command table (key positions as Redis's COMMAND reports them,
 * state, split) and request argument parsing.
 */
#include "px_resp_cmd.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FLAT_MAX (64u << 10) /* frames up to this are made contiguous to be parsed in place */

#define ENTRY(rd, n, st, sp, k, f, l, s)                                                           \
    {                                                                                              \
        n, PX_ST_##st, PX_SPLIT_##sp, PX_KEYS_##k, f, l, s, rd                                     \
    }
#define CMD(...) ENTRY(0, __VA_ARGS__)
#define KEY1(n) CMD(n, NONE, NONE, RANGE, 1, 1, 1)
#define KEYS(n, f, l, s) CMD(n, NONE, NONE, RANGE, f, l, s)
#define NOKEY(n) CMD(n, NONE, NONE, NONE, 0, 0, 0)
#define ALL(n) CMD(n, NONE, NONE, ALL, 0, 0, 0)
#define STATE(n, st) CMD(n, st, NONE, NONE, 0, 0, 0)
/* The same for commands that only read (Redis's readonly flag, not blocking): may be sent twice. */
#define RCMD(...) ENTRY(1, __VA_ARGS__)
#define RKEY1(n) RCMD(n, NONE, NONE, RANGE, 1, 1, 1)
#define RKEYS(n, f, l, s) RCMD(n, NONE, NONE, RANGE, f, l, s)
#define RNOKEY(n) RCMD(n, NONE, NONE, NONE, 0, 0, 0)
#define RALL(n) RCMD(n, NONE, NONE, ALL, 0, 0, 0)

/* Sorted by name, for the reader (the unit tests keep it so); looked up by hash. */
static const struct px_cmd_info table[] = {
    KEY1("APPEND"),
    STATE("AUTH", PERM),
    ALL("BGREWRITEAOF"),
    ALL("BGSAVE"),
    RKEY1("BITCOUNT"),
    KEY1("BITFIELD"),
    RKEY1("BITFIELD_RO"),
    KEYS("BITOP", 2, -1, 1),
    RKEY1("BITPOS"),
    CMD("BLMOVE", BLOCK, NONE, RANGE, 1, 2, 1),
    CMD("BLMPOP", BLOCK, NONE, NUMKEYS, 2, 0, 1),
    CMD("BLPOP", BLOCK, NONE, RANGE, 1, -2, 1),
    CMD("BRPOP", BLOCK, NONE, RANGE, 1, -2, 1),
    CMD("BRPOPLPUSH", BLOCK, NONE, RANGE, 1, 2, 1),
    CMD("BZMPOP", BLOCK, NONE, NUMKEYS, 2, 0, 1),
    CMD("BZPOPMAX", BLOCK, NONE, RANGE, 1, -2, 1),
    CMD("BZPOPMIN", BLOCK, NONE, RANGE, 1, -2, 1),
    STATE("CLIENT", CLIENT),
    ALL("CLUSTER"),
    NOKEY("COMMAND"),
    ALL("CONFIG"),
    KEYS("COPY", 1, 2, 1),
    RALL("DBSIZE"),
    ALL("DEBUG"),
    KEY1("DECR"),
    KEY1("DECRBY"),
    CMD("DEL", NONE, SUM, RANGE, 1, -1, 1),
    STATE("DISCARD", EXEC),
    RKEY1("DUMP"),
    RNOKEY("ECHO"),
    CMD("EVAL", NONE, NONE, NUMKEYS, 2, 0, 1),
    CMD("EVALSHA", NONE, NONE, NUMKEYS, 2, 0, 1),
    RCMD("EVALSHA_RO", NONE, NONE, NUMKEYS, 2, 0, 1),
    RCMD("EVAL_RO", NONE, NONE, NUMKEYS, 2, 0, 1),
    STATE("EXEC", EXEC),
    RCMD("EXISTS", NONE, SUM, RANGE, 1, -1, 1),
    KEY1("EXPIRE"),
    KEY1("EXPIREAT"),
    RKEY1("EXPIRETIME"),
    ALL("FAILOVER"),
    CMD("FCALL", NONE, NONE, NUMKEYS, 2, 0, 1),
    RCMD("FCALL_RO", NONE, NONE, NUMKEYS, 2, 0, 1),
    ALL("FLUSHALL"),
    ALL("FLUSHDB"),
    ALL("FUNCTION"),
    KEY1("GEOADD"),
    RKEY1("GEODIST"),
    RKEY1("GEOHASH"),
    RKEY1("GEOPOS"),
    KEY1("GEORADIUS"),
    KEY1("GEORADIUSBYMEMBER"),
    RKEY1("GEORADIUSBYMEMBER_RO"),
    RKEY1("GEORADIUS_RO"),
    RKEY1("GEOSEARCH"),
    KEYS("GEOSEARCHSTORE", 1, 2, 1),
    RKEY1("GET"),
    RKEY1("GETBIT"),
    KEY1("GETDEL"),
    KEY1("GETEX"),
    RKEY1("GETRANGE"),
    KEY1("GETSET"),
    KEY1("HDEL"),
    STATE("HELLO", PERM),
    RKEY1("HEXISTS"),
    RKEY1("HGET"),
    RKEY1("HGETALL"),
    KEY1("HINCRBY"),
    KEY1("HINCRBYFLOAT"),
    RKEY1("HKEYS"),
    RKEY1("HLEN"),
    RKEY1("HMGET"),
    KEY1("HMSET"),
    RKEY1("HRANDFIELD"),
    RKEY1("HSCAN"),
    KEY1("HSET"),
    KEY1("HSETNX"),
    RKEY1("HSTRLEN"),
    RKEY1("HVALS"),
    KEY1("INCR"),
    KEY1("INCRBY"),
    KEY1("INCRBYFLOAT"),
    ALL("INFO"),
    RALL("KEYS"),
    ALL("LASTSAVE"),
    ALL("LATENCY"),
    RKEYS("LCS", 1, 2, 1),
    RKEY1("LINDEX"),
    KEY1("LINSERT"),
    RKEY1("LLEN"),
    KEYS("LMOVE", 1, 2, 1),
    CMD("LMPOP", NONE, NONE, NUMKEYS, 1, 0, 1),
    NOKEY("LOLWUT"),
    KEY1("LPOP"),
    RKEY1("LPOS"),
    KEY1("LPUSH"),
    KEY1("LPUSHX"),
    RKEY1("LRANGE"),
    KEY1("LREM"),
    KEY1("LSET"),
    KEY1("LTRIM"),
    ALL("MEMORY"),
    RCMD("MGET", NONE, MGET, RANGE, 1, -1, 1),
    ALL("MIGRATE"),
    ALL("MODULE"),
    STATE("MONITOR", STREAM),
    ALL("MOVE"),
    CMD("MSET", NONE, MSET, RANGE, 1, -1, 2),
    KEYS("MSETNX", 1, -1, 2),
    STATE("MULTI", MULTI),
    KEYS("OBJECT", 2, 2, 1),
    KEY1("PERSIST"),
    KEY1("PEXPIRE"),
    KEY1("PEXPIREAT"),
    RKEY1("PEXPIRETIME"),
    KEY1("PFADD"),
    KEYS("PFCOUNT", 1, -1, 1),
    KEYS("PFMERGE", 1, -1, 1),
    RNOKEY("PING"),
    KEY1("PSETEX"),
    STATE("PSUBSCRIBE", STREAM),
    STATE("PSYNC", REFUSE),
    RKEY1("PTTL"),
    ALL("PUBLISH"),
    ALL("PUBSUB"),
    STATE("PUNSUBSCRIBE", STREAM),
    STATE("QUIT", QUIT),
    RALL("RANDOMKEY"),
    ALL("READONLY"),
    ALL("READWRITE"),
    KEYS("RENAME", 1, 2, 1),
    KEYS("RENAMENX", 1, 2, 1),
    STATE("REPLCONF", REFUSE),
    ALL("REPLICAOF"),
    STATE("RESET", RESET),
    KEY1("RESTORE"),
    ALL("ROLE"),
    KEY1("RPOP"),
    KEYS("RPOPLPUSH", 1, 2, 1),
    KEY1("RPUSH"),
    KEY1("RPUSHX"),
    KEY1("SADD"),
    ALL("SAVE"),
    RALL("SCAN"),
    RKEY1("SCARD"),
    ALL("SCRIPT"),
    RKEYS("SDIFF", 1, -1, 1),
    KEYS("SDIFFSTORE", 1, -1, 1),
    STATE("SELECT", SELECT),
    KEY1("SET"),
    KEY1("SETBIT"),
    KEY1("SETEX"),
    KEY1("SETNX"),
    KEY1("SETRANGE"),
    ALL("SHUTDOWN"),
    RKEYS("SINTER", 1, -1, 1),
    RCMD("SINTERCARD", NONE, NONE, NUMKEYS, 1, 0, 1),
    KEYS("SINTERSTORE", 1, -1, 1),
    RKEY1("SISMEMBER"),
    ALL("SLAVEOF"),
    ALL("SLOWLOG"),
    RKEY1("SMEMBERS"),
    RKEY1("SMISMEMBER"),
    KEYS("SMOVE", 1, 2, 1),
    KEY1("SORT"),
    KEY1("SORT_RO"),
    KEY1("SPOP"),
    ALL("SPUBLISH"),
    RKEY1("SRANDMEMBER"),
    KEY1("SREM"),
    RKEY1("SSCAN"),
    STATE("SSUBSCRIBE", STREAM),
    RKEY1("STRLEN"),
    STATE("SUBSCRIBE", STREAM),
    RKEY1("SUBSTR"),
    RKEYS("SUNION", 1, -1, 1),
    KEYS("SUNIONSTORE", 1, -1, 1),
    STATE("SUNSUBSCRIBE", STREAM),
    ALL("SWAPDB"),
    STATE("SYNC", REFUSE),
    RNOKEY("TIME"),
    CMD("TOUCH", NONE, SUM, RANGE, 1, -1, 1),
    RKEY1("TTL"),
    RKEY1("TYPE"),
    CMD("UNLINK", NONE, SUM, RANGE, 1, -1, 1),
    STATE("UNSUBSCRIBE", STREAM),
    STATE("UNWATCH", UNWATCH),
    STATE("WAIT", BLOCK),
    STATE("WAITAOF", BLOCK),
    CMD("WATCH", WATCH, NONE, RANGE, 1, -1, 1),
    KEY1("XACK"),
    KEY1("XADD"),
    KEY1("XAUTOCLAIM"),
    KEY1("XCLAIM"),
    KEY1("XDEL"),
    KEYS("XGROUP", 2, 2, 1),
    KEYS("XINFO", 2, 2, 1),
    RKEY1("XLEN"),
    KEY1("XPENDING"),
    RKEY1("XRANGE"),
    CMD("XREAD", XBLOCK, NONE, STREAMS, 0, 0, 0),
    CMD("XREADGROUP", XBLOCK, NONE, STREAMS, 0, 0, 0),
    RKEY1("XREVRANGE"),
    KEY1("XSETID"),
    KEY1("XTRIM"),
    KEY1("ZADD"),
    RKEY1("ZCARD"),
    RKEY1("ZCOUNT"),
    RCMD("ZDIFF", NONE, NONE, NUMKEYS, 1, 0, 1),
    CMD("ZDIFFSTORE", NONE, NONE, NUMKEYS, 2, 0, 2),
    KEY1("ZINCRBY"),
    RCMD("ZINTER", NONE, NONE, NUMKEYS, 1, 0, 1),
    RCMD("ZINTERCARD", NONE, NONE, NUMKEYS, 1, 0, 1),
    CMD("ZINTERSTORE", NONE, NONE, NUMKEYS, 2, 0, 2),
    RKEY1("ZLEXCOUNT"),
    CMD("ZMPOP", NONE, NONE, NUMKEYS, 1, 0, 1),
    RKEY1("ZMSCORE"),
    KEY1("ZPOPMAX"),
    KEY1("ZPOPMIN"),
    RKEY1("ZRANDMEMBER"),
    RKEY1("ZRANGE"),
    RKEY1("ZRANGEBYLEX"),
    RKEY1("ZRANGEBYSCORE"),
    KEYS("ZRANGESTORE", 1, 2, 1),
    RKEY1("ZRANK"),
    KEY1("ZREM"),
    KEY1("ZREMRANGEBYLEX"),
    KEY1("ZREMRANGEBYRANK"),
    KEY1("ZREMRANGEBYSCORE"),
    RKEY1("ZREVRANGE"),
    RKEY1("ZREVRANGEBYLEX"),
    RKEY1("ZREVRANGEBYSCORE"),
    RKEY1("ZREVRANK"),
    RKEY1("ZSCAN"),
    RKEY1("ZSCORE"),
    RCMD("ZUNION", NONE, NONE, NUMKEYS, 1, 0, 1),
    CMD("ZUNIONSTORE", NONE, NONE, NUMKEYS, 2, 0, 2),
};

#define NTABLE (sizeof(table) / sizeof(table[0]))
#define SLOTS 1024 /* a power of two, over four times the table: short probes */

/* Open addressing by FNV-1a of the upper-case name: a lookup per request stays cheap. */
static uint16_t slots[SLOTS]; /* 1 + index into table; 0: empty */
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static uint32_t
name_hash(const char *up, size_t len)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ (uint8_t)up[i]) * 16777619u;
    }
    return h;
}

static void
build_slots(void)
{
    size_t i;

    for (i = 0; i < NTABLE; i++) {
        uint32_t h = name_hash(table[i].name, strlen(table[i].name)) & (SLOTS - 1);

        while (slots[h] != 0) {
            h = (h + 1) & (SLOTS - 1);
        }
        slots[h] = (uint16_t)(i + 1);
    }
}

const struct px_cmd_info *
px_cmd_lookup_upper(const char *up, size_t len)
{
    uint32_t h;

    pthread_once(&slots_once, build_slots);
    h = name_hash(up, len) & (SLOTS - 1);
    while (slots[h] != 0) {
        const struct px_cmd_info *info = &table[slots[h] - 1];

        if (strncmp(info->name, up, len) == 0 && info->name[len] == '\0') {
            return info;
        }
        h = (h + 1) & (SLOTS - 1);
    }
    return NULL;
}

const struct px_cmd_info *
px_cmd_lookup(const char *name, size_t len)
{
    char up[24];
    size_t i;

    if (len == 0 || len >= sizeof(up)) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        up[i] = (char)toupper((unsigned char)name[i]);
    }
    up[len] = '\0';
    return px_cmd_lookup_upper(up, len);
}

/* For the unit tests: the table and its size. */
const struct px_cmd_info *px_cmd_table(size_t *n);

const struct px_cmd_info *
px_cmd_table(size_t *n)
{
    *n = sizeof(table) / sizeof(table[0]);
    return table;
}

void
px_cmd_deinit(struct px_cmd *cmd)
{
    free(cmd->argv);
    cmd->argv = NULL;
    cmd->cap = 0;
}

/* ---- parsing ---- */

/* Copy len bytes at offset pos of the frame into out. */
static int
copy_at(const struct px_cmd *cmd, size_t pos, void *out, size_t len)
{
    struct evbuffer_ptr p;

    if (cmd->flat != NULL) {
        memcpy(out, cmd->flat + pos, len);
        return 0;
    }
    if (evbuffer_ptr_set(cmd->in, &p, pos, EVBUFFER_PTR_SET) == -1 ||
        evbuffer_copyout_from(cmd->in, &p, out, len) != (ev_ssize_t)len) {
        return -1;
    }
    return 0;
}

/* A header "<type><digits>\r\n" at pos (the framer checked its shape): its number and end. */
static int
header(const struct px_cmd *cmd, size_t pos, size_t n, char type, uint64_t *value, size_t *end)
{
    char buf[24];
    size_t avail = n - pos < sizeof(buf) ? n - pos : sizeof(buf), i;
    uint64_t v = 0;

    if (avail < 4 || copy_at(cmd, pos, buf, avail) == -1 || buf[0] != type) {
        return -1;
    }
    for (i = 1; i < avail && buf[i] >= '0' && buf[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(buf[i] - '0');
    }
    if (i == 1 || i + 1 >= avail || buf[i] != '\r' || buf[i + 1] != '\n') {
        return -1;
    }
    *value = v;
    *end = pos + i + 2;
    return 0;
}

/* Make room for argc arguments. */
static int
reserve(struct px_cmd *cmd, uint64_t argc)
{
    if (argc > cmd->cap) {
        size_t cap = argc < 16 ? 16 : (size_t)argc;
        struct px_arg *v = realloc(cmd->argv, cap * sizeof(*v));

        if (v == NULL) {
            return -1;
        }
        cmd->argv = v;
        cmd->cap = cap;
    }
    return 0;
}

/* The decimal number ending at "\r\n" from b[at]; at moves past the CRLF. Pure digits only. */
static inline int
number(const uint8_t *b, size_t len, size_t *at, uint64_t *v)
{
    size_t i = *at, start = i;
    uint64_t n = 0;

    while (i < len && b[i] >= '0' && b[i] <= '9' && i - start < 18) {
        n = n * 10 + (uint64_t)(b[i] - '0');
        i++;
    }
    if (i == start || i + 1 >= len || b[i] != '\r' || b[i + 1] != '\n') {
        return -1;
    }
    *at = i + 2;
    *v = n;
    return 0;
}

static void
set_name(struct px_cmd *cmd)
{
    const struct px_arg *a = &cmd->argv[0];
    size_t k;

    cmd->name[0] = '\0';
    if (a->len < sizeof(cmd->name)) {
        for (k = 0; k < a->len; k++) {
            cmd->name[k] = (char)toupper((unsigned char)cmd->flat[a->off + k]);
        }
        cmd->name[a->len] = '\0';
    }
}

long
px_cmd_frame(struct px_cmd *cmd, struct evbuffer *in, uint64_t max, uint64_t max_elements)
{
    struct evbuffer_iovec v;
    const uint8_t *b;
    size_t len, at = 1, i;
    uint64_t argc, n;

    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len < 4) {
        return 0;
    }
    b = v.iov_base;
    len = v.iov_len < max ? v.iov_len : (size_t)max;
    /* each argument takes 6 bytes or more ("$0\r\n\r\n"): no room for a count this chunk cannot
     * hold */
    if (b[0] != '*' || number(b, len, &at, &argc) == -1 || argc == 0 || argc > max_elements ||
        argc > (len - at) / 6 || reserve(cmd, argc) == -1) {
        return 0;
    }
    for (i = 0; i < argc; i++) {
        struct px_arg *a = &cmd->argv[i];

        a->hdr = (uint32_t)at;
        if (at >= len || b[at] != '$') {
            return 0;
        }
        at++;
        if (number(b, len, &at, &n) == -1 || n > len || at + n + 2 > len || b[at + n] != '\r' ||
            b[at + n + 1] != '\n') {
            return 0;
        }
        a->off = (uint32_t)at;
        a->len = (uint32_t)n;
        at += n + 2;
    }
    cmd->in = in;
    cmd->flat = (const char *)b;
    cmd->argc = argc;
    set_name(cmd);
    return (long)at;
}

int
px_cmd_parse(struct px_cmd *cmd, struct evbuffer *in, size_t n, const char **why)
{
    uint64_t argc, len;
    size_t pos, i;

    cmd->in = in;
    cmd->argc = 0;
    cmd->name[0] = '\0';
    cmd->flat = n <= FLAT_MAX ? (const char *)evbuffer_pullup(in, (ev_ssize_t)n) : NULL;
    if (header(cmd, 0, n, '*', &argc, &pos) == -1 || argc == 0 || argc > (n - pos) / 6) {
        *why = "expected an array of bulk strings";
        return -1;
    }
    if (argc > cmd->cap) {
        size_t cap = argc < 16 ? 16 : argc;
        struct px_arg *v = realloc(cmd->argv, cap * sizeof(*v));

        if (v == NULL) {
            *why = "out of memory";
            return -1;
        }
        cmd->argv = v;
        cmd->cap = cap;
    }
    for (i = 0; i < argc; i++) {
        struct px_arg *a = &cmd->argv[i];

        a->hdr = (uint32_t)pos;
        if (header(cmd, pos, n, '$', &len, &pos) == -1 || len > n || pos + len + 2 > n) {
            *why = "expected '$' for each argument";
            return -1;
        }
        {
            char crlf[2];

            if (copy_at(cmd, pos + len, crlf, 2) == -1 || crlf[0] != '\r' || crlf[1] != '\n') {
                *why = "expected CRLF after an argument";
                return -1;
            }
        }
        a->off = (uint32_t)pos;
        a->len = (uint32_t)len;
        pos += len + 2;
    }
    if (pos != n) {
        *why = "trailing bytes after the arguments";
        return -1;
    }
    cmd->argc = argc;
    if (cmd->argv[0].len < sizeof(cmd->name)) {
        size_t k;

        if (copy_at(cmd, cmd->argv[0].off, cmd->name, cmd->argv[0].len) == -1) {
            *why = "cannot read the command";
            return -1;
        }
        for (k = 0; k < cmd->argv[0].len; k++) {
            cmd->name[k] = (char)toupper((unsigned char)cmd->name[k]);
        }
        cmd->name[cmd->argv[0].len] = '\0';
    }
    return 0;
}

size_t
px_cmd_arg(const struct px_cmd *cmd, size_t i, char *buf, size_t cap)
{
    const struct px_arg *a = &cmd->argv[i];
    size_t n = a->len < cap ? a->len : cap;

    if (copy_at(cmd, a->off, buf, n) == -1) {
        return 0;
    }
    return a->len;
}

bool
px_cmd_arg_is(const struct px_cmd *cmd, size_t i, const char *s)
{
    char buf[32];
    size_t len = strlen(s);

    return i < cmd->argc && cmd->argv[i].len == len && len < sizeof(buf) &&
           px_cmd_arg(cmd, i, buf, sizeof(buf)) == len && strncasecmp(buf, s, len) == 0;
}

int64_t
px_cmd_arg_int(const struct px_cmd *cmd, size_t i)
{
    char buf[24];
    size_t len, k;
    int64_t v = 0;

    if (i >= cmd->argc || (len = cmd->argv[i].len) == 0 || len > 18 ||
        px_cmd_arg(cmd, i, buf, sizeof(buf)) != len || (len > 1 && buf[0] == '0')) {
        return -1; /* Redis reads "00" as no number at all, too */
    }
    for (k = 0; k < len; k++) {
        if (buf[k] < '0' || buf[k] > '9') {
            return -1;
        }
        v = v * 10 + (buf[k] - '0');
    }
    return v;
}

long
px_cmd_streams(const struct px_cmd *cmd)
{
    size_t i;

    for (i = 1; i < cmd->argc; i++) { /* the options' values are skipped, as Redis does */
        if (px_cmd_arg_is(cmd, i, "STREAMS")) {
            return (long)i;
        }
        if (px_cmd_arg_is(cmd, i, "COUNT") || px_cmd_arg_is(cmd, i, "BLOCK")) {
            i++;
        } else if (px_cmd_arg_is(cmd, i, "GROUP")) {
            i += 2;
        }
    }
    return -1;
}

long
px_cmd_keys(const struct px_cmd *cmd, const struct px_cmd_info *info, size_t *keys, size_t max)
{
    size_t argc = cmd->argc, first, last, i, n = 0;
    int64_t count;

    switch ((enum px_cmd_keys)info->keys) {
    case PX_KEYS_NONE:
    case PX_KEYS_ALL:
        return 0;
    case PX_KEYS_RANGE:
        first = (size_t)info->first;
        if (info->last < 0) {
            if ((size_t)(-info->last) > argc) {
                return -1;
            }
            last = argc - (size_t)(-info->last);
        } else {
            last = (size_t)info->last;
        }
        if (first >= argc || last >= argc || last < first) {
            return -1;
        }
        for (i = first; i <= last && n < max; i += info->step) {
            keys[n++] = i;
        }
        return (long)n;
    case PX_KEYS_NUMKEYS:
        if (info->step == 2 && n < max && argc > 1) {
            keys[n++] = 1; /* a destination key before the count */
        }
        count = px_cmd_arg_int(cmd, (size_t)info->first);
        if (count <= 0 || (size_t)info->first + (size_t)count >= argc) {
            return count == 0 ? (long)n : -1;
        }
        for (i = 0; i < (size_t)count && n < max; i++) {
            keys[n++] = (size_t)info->first + 1 + i;
        }
        return (long)n;
    case PX_KEYS_STREAMS: {
        long at = px_cmd_streams(cmd);
        size_t rest, k;

        if (at < 0) {
            return -1;
        }
        rest = argc - (size_t)at - 1;
        if (rest == 0 || rest % 2 != 0) {
            return -1;
        }
        for (k = 0; k < rest / 2 && n < max; k++) {
            keys[n++] = (size_t)at + 1 + k;
        }
        return (long)n;
    }
    }
    return -1;
}

/* ---- inline commands ---- */

static bool
blank(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * One word of an inline command at *p (before end), as Redis splits it
 * (sdssplitargs): double quotes with \n \r \t \b \a \xHH escapes, single
 * quotes with \', a closing quote followed by a blank or the end. The word
 * is written to out (never longer than the input). Return its length, or -1.
 */
static long
inline_word(const char **p, const char *end, char *out)
{
    const char *q = *p;
    char *o = out;
    bool dq = false, sq = false;

    for (;;) {
        if (dq) {
            if (q == end) {
                return -1;
            }
            if (q[0] == '\\' && end - q >= 4 && q[1] == 'x' && hexval(q[2]) >= 0 &&
                hexval(q[3]) >= 0) {
                *o++ = (char)(hexval(q[2]) * 16 + hexval(q[3]));
                q += 4;
            } else if (q[0] == '\\' && end - q >= 2) {
                char c = q[1];

                *o++ = c == 'n'   ? '\n'
                       : c == 'r' ? '\r'
                       : c == 't' ? '\t'
                       : c == 'b' ? '\b'
                       : c == 'a' ? '\a'
                                  : c;
                q += 2;
            } else if (q[0] == '"') {
                if (q + 1 < end && !blank(q[1])) {
                    return -1; /* a closing quote must end the word */
                }
                q++;
                break;
            } else {
                *o++ = *q++;
            }
        } else if (sq) {
            if (q == end) {
                return -1;
            }
            if (q[0] == '\\' && end - q >= 2 && q[1] == '\'') {
                *o++ = '\'';
                q += 2;
            } else if (q[0] == '\'') {
                if (q + 1 < end && !blank(q[1])) {
                    return -1;
                }
                q++;
                break;
            } else {
                *o++ = *q++;
            }
        } else if (q == end || blank(*q)) {
            break;
        } else if (*q == '"') {
            dq = true;
            q++;
        } else if (*q == '\'') {
            sq = true;
            q++;
        } else {
            *o++ = *q++;
        }
    }
    *p = q;
    return (long)(o - out);
}

long
px_cmd_from_inline(struct evbuffer *in, size_t n, struct evbuffer *scratch, const char **why)
{
    char *line = malloc(2 * n + 1), *word;
    const char *p, *end;
    size_t words = 0;
    long total;
    struct evbuffer *body = scratch;

    if (line == NULL || evbuffer_remove(in, line, n) != (int)n) {
        free(line);
        evbuffer_drain(in, n); /* consumed all the same: the stream stays in sync */
        *why = "out of memory";
        return -1;
    }
    word = line + n;
    end = line + n;
    if (end > line && end[-1] == '\n') { /* the line, as Redis cuts it: without "\r\n" */
        end--;
    }
    if (end > line && end[-1] == '\r') {
        end--;
    }
    evbuffer_drain(body, evbuffer_get_length(body));
    for (p = line; p < end;) {
        long len;

        while (p < end && blank(*p)) {
            p++;
        }
        if (p == end) {
            break;
        }
        if ((len = inline_word(&p, end, word)) < 0) {
            free(line);
            evbuffer_drain(body, evbuffer_get_length(body)); /* scratch is shared: leave it empty */
            *why = "unbalanced quotes in an inline command";
            return -1;
        }
        evbuffer_add_printf(body, "$%ld\r\n", len);
        evbuffer_add(body, word, (size_t)len);
        evbuffer_add(body, "\r\n", 2);
        words++;
    }
    free(line);
    if (words == 0) {
        return 0;
    }
    total = (long)evbuffer_get_length(body);
    {
        char head[24];
        int h = snprintf(head, sizeof(head), "*%zu\r\n", words);

        evbuffer_prepend(body, head, (size_t)h);
        total += h;
    }
    evbuffer_prepend_buffer(in, body);
    return total;
}
