/*
 * Redis keys over a hash cluster: each request goes to the server of its
 * keys; MGET, MSET, DEL, UNLINK, EXISTS and TOUCH with keys on several
 * servers are split into one fragment per server and their replies joined
 * in the client's key order; anything else that spans servers is refused.
 */
#include "px_resp_shard.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "proxy/px_budget.h"
#include "proxy/codec/px_codec.h"
#include "proxy/codec/px_resp_cmd.h"
#include "proxy/px_listener.h"
#include "proxy/px_resp_internal.h"
#include "proxy/px_session_internal.h"
#include "proxy/px_worker.h"

#include <errno.h>
#include <stdbool.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A split command's fragments and, for MGET, which fragment has each key. */
struct split {
    uint32_t nfrags;
    uint32_t nkeys;
    bool failed; /* a fragment failed upstream: one failure, as the client sees one error */
    struct px_req **frags; /* into this allocation */
    uint32_t *order;       /* into this allocation */
};

/* The shard of key argument i. */
uint32_t
px_resp_shard_of(struct px_session *s, const struct px_cmd *cmd, size_t i)
{
    char stack[512], *key = stack;
    size_t len = cmd->argv[i].len;
    uint32_t shard;

    if (len > sizeof(stack) && (key = malloc(len)) == NULL) {
        return 1; /* out of memory: any valid shard; the request still gets an answer */
    }
    px_cmd_arg(cmd, i, key, len);
    shard = pool_cluster_shard(px_listener_pool(s->l), key, len);
    if (key != stack) {
        free(key);
    }
    return shard;
}

/* Every key's shard in shards; return the one they share, or 0 when they differ. */
static uint32_t
common_shard(const uint32_t *shards, size_t n)
{
    size_t i;

    for (i = 1; i < n; i++) {
        if (shards[i] != shards[0]) {
            return 0;
        }
    }
    return n > 0 ? shards[0] : 0;
}

static void parent_step(struct px_session *s, struct px_req *parent);

void
px_resp_fragment_done(struct px_req *frag)
{
    frag->done = true;
    parent_step(frag->s, frag->parent);
}

void
px_resp_fragment_failed(struct px_req *frag)
{
    ((struct split *)frag->parent->aux)->failed = true;
    px_resp_fragment_done(frag);
}

/* Send one fragment; a refused one is answered with its error at once. */
static void
send_fragment(struct px_session *s, struct px_req *frag)
{
    enum pool_result rc;

    px_session_chain(s, frag, px_resp_slot(s, frag->pr.shard));
    rc = pool_submit(px_listener_pool(s->l), &frag->pr, frag->buf, evbuffer_get_length(frag->buf));
    if (rc != POOL_OK) {
        px_req_unlink_after(frag);
        px_resp_error_into(frag, rc);
        px_resp_fragment_failed(frag);
    }
}

/*
 * Split a multi-key command over the shards of its keys: one fragment per
 * shard, each the same command with that shard's keys (and values), in order.
 */
static void
split(struct px_session *s, const struct px_cmd *cmd, size_t n, const uint32_t *shards,
      size_t nkeys, size_t step, enum kind kind)
{
    size_t nservers = s->resp->nlast, i, k;
    struct px_req *parent = px_session_req_new(s);
    struct split *sp =
        calloc(1, sizeof(*sp) + nservers * sizeof(struct px_req *) + nkeys * sizeof(uint32_t));
    int32_t *frag_of = calloc(nservers, sizeof(*frag_of));
    uint32_t *count = calloc(nservers, sizeof(*count));

    POOL_STAT_INC(px_listener_stats(s->l)->frames_in);
    parent->kind = (uint8_t)kind;
    if (sp == NULL || frag_of == NULL || count == NULL) {
        free(sp);
        px_resp_consume(s, n);
        evbuffer_add_printf(parent->buf, "-ERR sluice: out of memory\r\n");
        parent->done = true;
        goto out;
    }
    sp->frags = (struct px_req **)(sp + 1);
    sp->order = (uint32_t *)(sp->frags + nservers);
    sp->nkeys = (uint32_t)nkeys;
    parent->aux = sp;
    for (i = 0; i < nservers; i++) {
        frag_of[i] = -1;
    }
    for (k = 0; k < nkeys; k++) {
        uint32_t sh = shards[k] - 1;

        if (frag_of[sh] < 0) {
            struct px_req *frag = px_worker_req_get(s->w);

            frag->s = s;
            frag->parent = parent;
            frag->t0 = parent->t0;
            frag->pr.frame = frag->buf;
            frag->pr.shard = shards[k];
            frag_of[sh] = (int32_t)sp->nfrags;
            sp->frags[sp->nfrags++] = frag;
        }
        sp->order[k] = (uint32_t)frag_of[sh];
        count[sh]++;
    }
    for (i = 0; i < nservers; i++) {
        if (frag_of[i] >= 0) {
            evbuffer_add_printf(sp->frags[frag_of[i]]->buf, "*%zu\r\n$%zu\r\n%s\r\n",
                                1 + count[i] * step, strlen(cmd->name), cmd->name);
        }
    }
    /* the arguments, in order: each key (with its value) to its fragment */
    evbuffer_drain(s->in, cmd->argv[1].hdr);
    for (k = 0; k < nkeys; k++) {
        const struct px_arg *first = &cmd->argv[1 + k * step];
        const struct px_arg *end = &cmd->argv[k * step + step];

        evbuffer_remove_buffer(s->in, sp->frags[sp->order[k]]->buf,
                               end->off + end->len + 2 - first->hdr);
    }
    memset(&s->fst, 0, sizeof(s->fst));
    parent->nfrags = sp->nfrags + 1; /* held until every fragment is sent */
    for (i = 0; i < sp->nfrags; i++) {
        send_fragment(s, sp->frags[i]);
    }
    free(frag_of);
    free(count);
    px_session_arm_timer(s);
    parent_step(s, parent);
    return;
out:
    free(frag_of);
    free(count);
    if (px_session_ensure_out(s) == 0) {
        px_session_deliver(s, false);
    }
}

/* Remove the header "*<n>\r\n" (or any first line) of buf; return n, or -1 if not an array. */
static long
take_array_header(struct evbuffer *buf)
{
    char line[32];
    struct evbuffer_ptr eol = evbuffer_search_eol(buf, NULL, NULL, EVBUFFER_EOL_CRLF_STRICT);
    ev_ssize_t got;

    if (eol.pos < 0 || eol.pos >= (ev_ssize_t)sizeof(line)) {
        return -1;
    }
    got = evbuffer_copyout(buf, line, (size_t)eol.pos);
    if (got != eol.pos || line[0] != '*') {
        return -1;
    }
    line[got] = '\0';
    evbuffer_drain(buf, (size_t)eol.pos + 2);
    return strtol(line + 1, NULL, 10);
}

static long long
integer_reply(struct evbuffer *buf, bool *ok)
{
    char line[32];
    ev_ssize_t got = evbuffer_copyout(buf, line, sizeof(line) - 1);
    char *end;
    long long v;

    *ok = false;
    if (got < 4 || line[0] != ':') {
        return 0;
    }
    line[got] = '\0';
    errno = 0;
    v = strtoll(line + 1, &end, 10);
    *ok = errno == 0 && end != line + 1 && end[0] == '\r' && end[1] == '\n';
    return v;
}

/* Join the fragments' replies into the parent's, in the client's key order. */
static void
join(struct px_session *s, struct px_req *parent)
{
    struct split *sp = parent->aux;
    const struct cfg_codec *codec = &px_listener_cfg(s->l)->codec;
    long long sum = 0;
    uint32_t i;

    for (i = 0; i < sp->nfrags; i++) { /* an error anywhere is the answer */
        struct evbuffer *b = sp->frags[i]->buf;
        unsigned char type = 0;

        evbuffer_copyout(b, &type, 1);
        if (type == '-' || type == '!') {
            evbuffer_add_buffer(parent->buf, b);
            return;
        }
    }
    switch ((enum kind)parent->kind) {
    case K_MGET:
        for (i = 0; i < sp->nfrags; i++) {
            if (take_array_header(sp->frags[i]->buf) < 0) {
                evbuffer_add_printf(parent->buf, "-ERR sluice: malformed upstream reply\r\n");
                return;
            }
        }
        evbuffer_add_printf(parent->buf, "*%u\r\n", sp->nkeys);
        for (i = 0; i < sp->nkeys; i++) {
            struct evbuffer *b = sp->frags[sp->order[i]]->buf;
            struct px_frame_state st = {0};
            const char *why;
            ssize_t len = px_codec_frame(codec, b, &st, &why);

            if (len <= 0) {
                evbuffer_drain(parent->buf, evbuffer_get_length(parent->buf));
                evbuffer_add_printf(parent->buf, "-ERR sluice: malformed upstream reply\r\n");
                return;
            }
            evbuffer_remove_buffer(b, parent->buf, (size_t)len);
        }
        return;
    case K_MSET:
        evbuffer_add(parent->buf, "+OK\r\n", 5);
        return;
    default:
        for (i = 0; i < sp->nfrags; i++) {
            bool ok;

            long long v = integer_reply(sp->frags[i]->buf, &ok);

            if (!ok || __builtin_add_overflow(sum, v, &sum)) {
                evbuffer_add_printf(parent->buf, "-ERR sluice: malformed upstream reply\r\n");
                return;
            }
        }
        evbuffer_add_printf(parent->buf, ":%lld\r\n", sum);
        return;
    }
}

/* One fragment of parent (or its sending) is done; the last one joins the replies. */
static void
parent_step(struct px_session *s, struct px_req *parent)
{
    struct split *sp = parent->aux;
    uint32_t i;

    if (--parent->nfrags > 0) {
        return;
    }
    join(s, parent);
    if (sp->failed) {
        POOL_STAT_INC(px_listener_stats(s->l)->upstream_failures);
    }
    for (i = 0; i < sp->nfrags; i++) {
        px_req_release(sp->frags[i]);
        sp->frags[i] = NULL;
    }
    sp->nfrags = 0;
    parent->done = true;
    if (px_session_ensure_out(s) == 0) {
        px_session_deliver(s, false);
    }
}

void
px_resp_fragment(struct px_req *frag, struct evbuffer *in, size_t len)
{
    evbuffer_remove_buffer(in, frag->buf, len);
    px_resp_fragment_done(frag);
}

void
px_resp_drop_fragments(struct px_req *parent)
{
    struct split *sp = parent->aux;
    uint32_t i;

    for (i = 0; i < sp->nfrags; i++) {
        struct px_req *frag = sp->frags[i];

        if (frag->done || pool_cancel(&frag->pr) == 0) {
            px_req_release(frag);
        } else {
            px_req_unlink_after(frag);
            px_budget_orphan(frag); /* orphaned: its reply is read and dropped */
            frag->parent = NULL;
        }
    }
    sp->nfrags = 0;
}

/* A request on a sharded cluster: to the shard of its keys, split, or refused. */
int
px_resp_route_sharded(struct px_session *s, const struct px_cmd *cmd,
                      const struct px_cmd_info *info, size_t n)
{
    size_t stack_keys[MAX_KEYS_STACK], *keys = stack_keys;
    uint32_t stack_shards[MAX_KEYS_STACK], *shards = stack_shards;
    size_t max = cmd->argc, i;
    long nkeys;
    uint32_t shard;

    if (info == NULL || info->keys == PX_KEYS_ALL) {
        px_resp_local_error(s, n, "-ERR sluice: %s cannot be sharded", cmd->name);
        return 0;
    }
    if (info->keys == PX_KEYS_NONE) {
        px_resp_submit(s, n, 0, K_PLAIN);
        return 0;
    }
    if (max > MAX_KEYS_STACK) {
        keys = malloc(max * sizeof(*keys));
        shards = malloc(max * sizeof(*shards));
        if (keys == NULL || shards == NULL) {
            free(keys != stack_keys ? keys : NULL);
            free(shards != stack_shards ? shards : NULL);
            px_resp_local_error(s, n, "-ERR sluice: out of memory");
            return 0;
        }
    }
    nkeys = px_cmd_keys(cmd, info, keys, max);
    if (nkeys <= 0) {
        /* the arguments do not fit the command: any server answers the error */
        px_resp_submit(s, n, nkeys == 0 ? 0 : 1, K_PLAIN);
        goto out;
    }
    for (i = 0; i < (size_t)nkeys; i++) {
        shards[i] = px_resp_shard_of(s, cmd, keys[i]);
        if (shards[i] == 0 || shards[i] > s->resp->nlast) {
            /* the key map is not the one last[] follows: never index past it */
            px_resp_local_error(s, n, "-ERR sluice: internal error (shard map)");
            goto out;
        }
    }
    shard = common_shard(shards, (size_t)nkeys);
    if (shard != 0) {
        px_resp_submit(s, n, shard, K_PLAIN);
    } else if (info->split == PX_SPLIT_MGET) {
        split(s, cmd, n, shards, (size_t)nkeys, 1, K_MGET);
    } else if (info->split == PX_SPLIT_MSET && (cmd->argc - 1) % 2 != 0) {
        px_resp_submit(s, n, shards[0], K_PLAIN); /* a missing value: the server says so */
    } else if (info->split == PX_SPLIT_MSET) {
        split(s, cmd, n, shards, (size_t)nkeys, 2, K_MSET);
    } else if (info->split == PX_SPLIT_SUM) {
        split(s, cmd, n, shards, (size_t)nkeys, 1, K_SUM);
    } else {
        px_resp_local_error(s, n, "-ERR sluice: keys of %s are on different servers", cmd->name);
    }
out:
    if (keys != stack_keys) {
        free(keys);
        free(shards);
    }
    return 0;
}
