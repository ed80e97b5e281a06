#ifndef PX_RESP_CMD_H
#define PX_RESP_CMD_H

/*
 * Redis commands as sluice needs to know them: where their keys are, whether
 * they carry connection state, how a multi-key command splits over shards.
 * And the parse of a request frame (an array of bulk strings) into its
 * arguments, without copying them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* What a command does to the connection it runs on. */
enum px_cmd_state {
    PX_ST_NONE,
    PX_ST_QUIT,   /* answered by sluice */
    PX_ST_RESET,  /* ends every state */
    PX_ST_PERM,   /* state until the client leaves: AUTH, HELLO, CLIENT SETNAME/TRACKING */
    PX_ST_SELECT, /* PERM unless it selects the cluster's own db */
    PX_ST_CLIENT, /* CLIENT: by subcommand */
    PX_ST_MULTI,  /* a transaction, until EXEC or DISCARD */
    PX_ST_EXEC,   /* EXEC, DISCARD: end the transaction and WATCH */
    PX_ST_WATCH,  /* until EXEC, DISCARD or UNWATCH */
    PX_ST_UNWATCH,
    PX_ST_STREAM, /* SUBSCRIBE, UNSUBSCRIBE, MONITOR...: not one reply per command any more */
    PX_ST_BLOCK,  /* blocks until its reply (BLPOP, WAIT...) */
    PX_ST_XBLOCK, /* XREAD / XREADGROUP: blocking with a BLOCK option */
    PX_ST_REFUSE, /* replication (SYNC, PSYNC, REPLCONF): not through a proxy */
};

/* How a multi-key command is split over shards and its replies joined. */
enum px_cmd_split {
    PX_SPLIT_NONE, /* every key must be on one server */
    PX_SPLIT_MGET, /* an array, in key order */
    PX_SPLIT_MSET, /* key value pairs; +OK when every part says so */
    PX_SPLIT_SUM,  /* DEL UNLINK EXISTS TOUCH: the sum of the integers */
};

/* Where the keys are: args first..last (last < 0: counted from the end), every step. */
enum px_cmd_keys {
    PX_KEYS_NONE,    /* no keys, harmless on any server (PING, ECHO, TIME) */
    PX_KEYS_RANGE,   /* first, last, step */
    PX_KEYS_NUMKEYS, /* a count at arg first, then the keys; plus arg 1 when step is 2 */
    PX_KEYS_STREAMS, /* XREAD: the first half of the args after STREAMS */
    PX_KEYS_ALL,     /* the whole keyspace or the server itself: cannot be sharded */
};

struct px_cmd_info {
    const char *name; /* upper case */
    uint8_t state;    /* enum px_cmd_state */
    uint8_t split;    /* enum px_cmd_split */
    uint8_t keys;     /* enum px_cmd_keys */
    int8_t first;
    int8_t last;
    uint8_t step;
    uint8_t may_repeat; /* only reads: the pool may send it twice (pool_req.may_repeat) */
};

/* The command named by the len bytes at name (any case), or NULL. */
const struct px_cmd_info *px_cmd_lookup(const char *name, size_t len);
/* The same for a name already in upper case (px_cmd.name). */
const struct px_cmd_info *px_cmd_lookup_upper(const char *up, size_t len);

/* One argument of a request: its header and its payload, as offsets in the frame. */
struct px_arg {
    uint32_t hdr; /* the '$' */
    uint32_t off; /* the payload */
    uint32_t len; /* payload bytes; the arg ends at off + len + 2 */
};

struct px_cmd {
    struct px_arg *argv; /* owned: grown as needed, reused across requests */
    size_t argc;
    size_t cap;
    const char *flat;    /* borrowed: the frame, when it is contiguous */
    struct evbuffer *in; /* borrowed: the frame is its first bytes */
    char name[24];       /* arg 0, upper case, NUL-terminated; "" when longer */
    bool may_repeat;     /* its command only reads (px_cmd_info.may_repeat) */
};

void px_cmd_deinit(struct px_cmd *cmd);

/*
 * Index the arguments of the request frame of n bytes at the start of in.
 * Return 0, or -1 with *why when it is not an array of bulk strings.
 */
int px_cmd_parse(struct px_cmd *cmd, struct evbuffer *in, size_t n, const char **why);

/*
 * Frame and index a request in one pass, for the common case: an array of
 * bulk strings wholly in the buffer's first chunk, at most max bytes and
 * max_elements arguments, with plain decimal lengths. Return its length, or
 * 0 when the codec's framer (then px_cmd_parse) must decide: the framer
 * accepts every frame this accepts, with the same length.
 */
long px_cmd_frame(struct px_cmd *cmd, struct evbuffer *in, uint64_t max, uint64_t max_elements);

/* Copy up to cap bytes of argument i into buf; return its full length. */
size_t px_cmd_arg(const struct px_cmd *cmd, size_t i, char *buf, size_t cap);
/* Argument i equals s (ASCII, any case). */
bool px_cmd_arg_is(const struct px_cmd *cmd, size_t i, const char *s);
/* Argument i as a non-negative integer, or -1. */
int64_t px_cmd_arg_int(const struct px_cmd *cmd, size_t i);

/* XREAD, XREADGROUP: the index of STREAMS (option values skipped), or -1. */
long px_cmd_streams(const struct px_cmd *cmd);

/*
 * The key argument indexes of a command into keys (up to max); return their
 * count, or -1 when the arguments do not fit the command's key spec.
 */
long px_cmd_keys(const struct px_cmd *cmd, const struct px_cmd_info *info, size_t *keys,
                 size_t max);

/*
 * Turn an inline command (a line of words) at the start of in, n bytes, into
 * a RESP array in its place. Return the new frame length, 0 for an empty
 * line (removed), or -1 with *why (unbalanced quotes; the line is removed).
 */
long px_cmd_from_inline(struct evbuffer *in, size_t n, struct evbuffer *scratch, const char **why);

#endif
