/*
 * Redis sessions: what sluice answers itself, what pins a client to an
 * upstream connection of its own, and how keys are sharded.
 *
 * A pinned client's requests go, in order, to its pinned connection; the
 * pool hands every frame from it back here, and the head of pinq (its
 * requests still waiting there) takes it. Once the client subscribes (or
 * runs MONITOR, or turns replies off) replies no longer match requests: the
 * session becomes a stream and every frame goes straight to the client,
 * until it leaves. Changing route (shared to pinned) waits until nothing is
 * in flight, so no reply can overtake another.
 */
#include "px_resp.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "proxy/px_budget.h"
#include "proxy/codec/px_codec.h"
#include "proxy/codec/px_resp_cmd.h"
#include "proxy/px_listener.h"
#include "proxy/px_log.h"
#include "proxy/px_session.h"
#include "proxy/px_resp_internal.h"
#include "proxy/px_resp_shard.h"
#include "proxy/px_session_internal.h"
#include "proxy/px_worker.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unread messages a subscriber may have queued (Redis's pubsub hard limit). */
#define STREAM_OUT_MAX (32u << 20)
/* Unwritten commands of a streaming client (no replies to pace it) before it is paused. */
#define STREAM_IN_HIGH (1u << 20)

#define MAX_KEYS_STACK 64

static const char *const fail_text[POOL_RESULT_MAX] = {
    [POOL_OK] = "internal error",
    [POOL_CONNECT_FAILED] = "no healthy server",
    [POOL_UPSTREAM_ERROR] = "upstream connection lost",
    [POOL_TIMEOUT] = "upstream timeout",
    [POOL_MALFORMED] = "malformed upstream reply",
    [POOL_QUEUE_FULL] = "queue full",
    [POOL_QUEUE_TIMEOUT] = "queue timeout",
    [POOL_SHUTDOWN] = "shutting down",
    [POOL_REFUSED] = "upstream refused the login",
    [POOL_PIN_LIMIT] = "too many pinned clients",
    [POOL_UNHEALTHY] = "no healthy server",
};

static struct px_resp *
resp_of(struct px_session *s)
{
    if (s->resp == NULL) {
        struct pool_cluster *pool = px_listener_pool(s->l);
        const struct cfg_cluster *cc = px_listener_cfg(s->l)->cluster;
        size_t n = cc->balance == CFG_BALANCE_HASH ? pool_cluster_nservers(pool) : 0;

        s->resp = calloc(1, sizeof(*s->resp) + n * sizeof(s->resp->last[0]));
        if (s->resp == NULL) {
            return NULL;
        }
        s->resp->nlast = n;
        s->resp->gen = px_listener_gen(s->l);
        TAILQ_INIT(&s->resp->pinq);
    }
    return s->resp;
}

/*
 * A reload moved the listener's clients to their cluster's new pool
 * (px_worker.c). A hash cluster's key map is the pool's: a client takes the
 * new one as soon as nothing of it is in flight or pinned (so no request of
 * its overtakes an older one on another server), and from then on places
 * every key as a client connected after the reload does. Return 0, 1 while
 * it must wait, -1 when the session closed.
 */
static int
follow_pool(struct px_session *s)
{
    struct px_resp *r = s->resp, *nr;
    struct pool_cluster *pool = px_listener_pool(s->l);
    size_t n;

    if (r->nlast == 0 || r->pin != NULL) {
        if (r->nlast == 0) {
            r->gen = px_listener_gen(s->l); /* not sharded; or pinned: moves once unpinned */
        }
        return 0;
    }
    if (s->ninflight > 0) {
        return 1;
    }
    n = pool_cluster_nservers(pool);
    nr = calloc(1, sizeof(*nr) + n * sizeof(nr->last[0]));
    if (nr == NULL) {
        px_session_close(s, "out of memory");
        return -1;
    }
    memcpy(nr, r, sizeof(*r)); /* its state, without the old per-server slots */
    nr->gen = px_listener_gen(s->l);
    nr->nlast = n;
    TAILQ_INIT(&nr->pinq); /* empty: nothing is pinned */
    free(r);
    s->resp = nr;
    return 0;
}

void
px_resp_free(struct px_resp *r)
{
    free(r);
}

static bool
sharded(const struct px_session *s)
{
    return s->resp != NULL && s->resp->nlast > 1;
}

struct px_req **
px_resp_slot(struct px_session *s, uint32_t shard)
{
    if (shard == 0 || shard > s->resp->nlast) {
        return &s->last; /* (a shard out of the map is refused before it comes here) */
    }
    return &s->resp->last[shard - 1];
}

void
px_resp_forget(struct px_session *s, struct px_req *req)
{
    uint32_t shard = req->pr.shard;

    if (shard != 0 && shard <= s->resp->nlast && s->resp->last[shard - 1] == req) {
        s->resp->last[shard - 1] = NULL;
    }
}

bool
px_resp_idle_exempt(const struct px_session *s)
{
    return s->resp->stream; /* as Redis spares Pub/Sub clients its timeout */
}

/* ---- replies made here ---- */

void
px_resp_consume(struct px_session *s, size_t n)
{
    evbuffer_drain(s->in, n);
    memset(&s->fst, 0, sizeof(s->fst));
}

/* Answer the frame of n bytes with text (len bytes) in its place in the order. */
static void
local_reply(struct px_session *s, size_t n, const char *text, size_t len)
{
    struct px_req *req = px_session_req_new(s);

    px_resp_consume(s, n);
    POOL_STAT_INC(px_listener_stats(s->l)->frames_in);
    evbuffer_add(req->buf, text, len);
    req->done = true;
    if (px_session_ensure_out(s) == 0) {
        px_session_deliver(s, false);
    }
}

void
px_resp_local_error(struct px_session *s, size_t n, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(text, sizeof(text) - 2, fmt, ap);
    va_end(ap);
    if (len < 0) {
        len = 0;
    } else if ((size_t)len > sizeof(text) - 3) {
        len = (int)sizeof(text) - 3;
    }
    memcpy(text + len, "\r\n", 2);
    POOL_STAT_INC(px_listener_stats(s->l)->rejected_commands);
    local_reply(s, n, text, (size_t)len + 2);
}

/* req's reply becomes "-ERR sluice: <why>". */
void
px_resp_error_into(struct px_req *req, int result)
{
    evbuffer_drain(req->buf, evbuffer_get_length(req->buf)); /* an unsent request's bytes */
    evbuffer_add_printf(req->buf, "-ERR sluice: %s\r\n",
                        result > 0 && result < POOL_RESULT_MAX ? fail_text[result] : "error");
}

int
px_resp_timed_out(struct px_session *s, struct px_req *req)
{
    struct px_req *ph;

    if (req->aux == NULL && req->pr.state == POOL_REQ_NEW) {
        return -1; /* pinned: its reply is matched by position on that connection */
    }
    if (req->aux != NULL) { /* a split command: its fragments are orphaned, it is answered */
        px_resp_drop_fragments(req);
        req->nfrags = 0;
        evbuffer_drain(req->buf, evbuffer_get_length(req->buf));
        evbuffer_add_printf(req->buf, "-ERR sluice: request timeout\r\n");
        req->done = true;
        px_session_deliver(s, false);
        return 0;
    }
    /* a placeholder with the error takes its place; the request itself is orphaned */
    ph = px_worker_req_get(s->w);
    ph->s = s;
    ph->t0 = req->t0;
    evbuffer_add_printf(ph->buf, "-ERR sluice: request timeout\r\n");
    ph->done = true;
    TAILQ_INSERT_BEFORE(req, ph, link);
    TAILQ_REMOVE(&s->reqs, req, link);
    px_req_unlink_after(req);
    if (pool_cancel(&req->pr) == 0) {
        px_req_release(req);
    } else {
        px_budget_orphan(req); /* its reply is read and dropped */
    }
    px_session_deliver(s, false);
    return 0;
}

void
px_resp_bad_frame(struct px_session *s, const char *why)
{
    struct px_req *req = px_session_req_new(s);

    if (strstr(why, "max_frame") != NULL) {
        evbuffer_add_printf(req->buf, "-ERR sluice: frame too large\r\n");
    } else {
        evbuffer_add_printf(req->buf, "-ERR sluice: protocol error: %s\r\n", why);
    }
    req->done = true;
    if (px_session_ensure_out(s) == 0) {
        px_session_deliver(s, false);
        px_session_finish(s);
    }
}

/* ---- client authentication at sluice ---- */

static bool
same(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    size_t i;

    for (i = 0; i < alen && i < blen; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static void
auth(struct px_session *s, struct px_cmd *cmd, size_t n)
{
    const struct cfg_resp_auth *a = &px_listener_cfg(s->l)->resp.auth;
    const char *want_user = a->username != NULL ? a->username : "default";
    char user[128], pass[512];
    size_t ulen = 7, plen;

    if (cmd->argc != 2 && cmd->argc != 3) {
        px_resp_local_error(s, n, "-ERR wrong number of arguments for 'auth' command");
        return;
    }
    memcpy(user, "default", 7);
    if (cmd->argc == 3) {
        ulen = px_cmd_arg(cmd, 1, user, sizeof(user));
    }
    plen = px_cmd_arg(cmd, cmd->argc - 1, pass, sizeof(pass));
    if (ulen <= sizeof(user) && plen <= sizeof(pass) &&
        same(user, ulen, want_user, strlen(want_user)) &
            same(pass, plen, a->password.ptr, a->password.len)) {
        s->resp->authed = true;
        local_reply(s, n, "+OK\r\n", 5);
        return;
    }
    POOL_STAT_INC(px_listener_stats(s->l)->rejected_commands);
    local_reply(s, n, "-WRONGPASS invalid username-password pair or user is disabled.\r\n", 64);
}

/* ---- pinned clients ---- */

/*
 * A request written on the pinned connection ends (POOL_OK: answered; a
 * failure; POOL_RESULT_MAX: its client left first). Counted in the cluster's
 * pool like a shared request, once sent and once ended, as only here replies
 * are told from messages.
 */
static struct pool_cluster *
pin_pool(struct px_session *s)
{
    /* the pinned connection's own pool: a reload since the pin moved the listener on */
    return s->resp->pin_pool != NULL ? s->resp->pin_pool : px_listener_pool(s->l);
}

static void
pinned_done(struct px_session *s, unsigned n, int result)
{
    struct pool_cluster *pool = pin_pool(s);

    while (n-- > 0) {
        pool_pin_count_done(pool, result);
    }
}

static void
update_expect(struct px_resp *r)
{
    if (r->pin != NULL) {
        pool_pin_expect(r->pin, r->npinq + r->hidden, r->nblocking == 0);
    }
}

/* Every request still waiting on the pin is answered by the stream from here on. */
static void
start_stream(struct px_session *s)
{
    struct px_resp *r = s->resp;
    struct pool_req *pr;

    r->stream = true;
    pinned_done(s, r->npinq, POOL_OK); /* their replies are the stream's first frames */
    while ((pr = TAILQ_FIRST(&r->pinq)) != NULL) {
        struct px_req *req = (struct px_req *)pr;

        TAILQ_REMOVE(&r->pinq, pr, link);
        req->done = true; /* its replies come in the stream, in order */
    }
    r->npinq = 0;
    r->nblocking = 0;
    update_expect(r);
    px_session_deliver(s, false);
}

/* A stream starts when its request is next to be answered. */
static void
advance(struct px_session *s)
{
    struct pool_req *head = TAILQ_FIRST(&s->resp->pinq);

    if (head != NULL && ((struct px_req *)head)->kind == K_STREAM) {
        start_stream(s);
    }
}

/* The state is over: the connection goes back to the pool as it is. */
static void
maybe_unpin(struct px_session *s)
{
    struct px_resp *r = s->resp;

    if (r->pin != NULL && !r->stream && r->npinq == 0 && r->hidden == 0 && !r->perm && !r->multi &&
        !r->watch) {
        pool_unpin(r->pin, POOL_UNPIN_RETURN);
        r->pin = NULL;
        r->pin_pool = NULL;
    }
}

static void
send_pinned(struct px_session *s, size_t n, enum kind kind)
{
    struct px_resp *r = s->resp;

    POOL_STAT_INC(px_listener_stats(s->l)->frames_in);
    pool_pin_count_sent(pin_pool(s));
    if (r->stream) { /* no reply to wait for: the stream brings it */
        pinned_done(s, 1, POOL_OK);
        pool_pin_write(r->pin, s->in, n);
        memset(&s->fst, 0, sizeof(s->fst));
        if (pool_pin_backlogged(r->pin, STREAM_IN_HIGH)) {
            s->paused = true; /* the server reads slower than this client writes */
        }
        return;
    }
    {
        struct px_req *req = px_session_req_new(s);

        req->kind = (uint8_t)kind;
        if (kind == K_BLOCK) {
            req->t0 = PX_NO_DEADLINE; /* it may wait as long as the client asked */
            r->nblocking++;
        }
        pool_pin_write(r->pin, s->in, n);
        memset(&s->fst, 0, sizeof(s->fst));
        TAILQ_INSERT_TAIL(&r->pinq, &req->pr, link);
        r->npinq++;
        if (kind == K_RESET) { /* RESET logs out: log in (and select) again right after */
            req->nfrags = pool_pin_rehello(r->pin);
            r->hidden += req->nfrags;
        }
    }
    advance(s);
    update_expect(r);
    px_session_arm_timer(s);
}

/*
 * The connection's state changes when the reply says it did, in reply
 * order: a pipelined EXEC, MULTI leaves a transaction open, and a refused
 * DISCARD keeps a WATCH.
 */
static void
apply_reply(struct px_resp *r, const struct px_req *req, struct evbuffer *in, unsigned char type)
{
    bool error = type == '-' || type == '!';

    switch ((enum kind)req->kind) {
    case K_MULTI:
        r->multi = r->multi || !error;
        break;
    case K_WATCH:
        r->watch = r->watch || !error;
        break;
    case K_PERM:
        r->perm = true; /* even refused: RESET at the end costs little */
        break;
    case K_EXEC: {
        char head[11] = {0};

        evbuffer_copyout(in, head, sizeof(head) - 1);
        if (!error || strncmp(head, "-EXECABORT", 10) == 0) {
            r->multi = false;
            r->watch = false;
        }
        break;
    }
    case K_UNWATCH:
        r->watch = r->watch && error;
        break;
    case K_BLOCK:
        r->nblocking--;
        break;
    case K_RESET:
        if (!error) { /* and the hello written after it restores the login and db */
            r->multi = r->watch = r->perm = false;
        }
        r->skip += req->nfrags;
        break;
    default:
        break;
    }
}

void
px_resp_on_pinned(void *owner, struct evbuffer *in, size_t len)
{
    struct px_session *s = owner;
    struct px_resp *r = s->resp;
    struct pool_req *pr = TAILQ_FIRST(&r->pinq);
    struct px_req *req = (struct px_req *)pr;
    unsigned char type = 0;

    if (s->closing || px_session_ensure_out(s) == -1) {
        evbuffer_drain(in, len);
        return;
    }
    evbuffer_copyout(in, &type, 1);
    if (r->skip > 0 && type != '>') { /* our hello's reply, after the client's RESET */
        evbuffer_drain(in, len);
        r->skip--;
        r->hidden--;
        update_expect(r);
        maybe_unpin(s);
        return;
    }
    if (r->stream || pr == NULL || type == '>') {
        /* a message, a RESP3 push, or a reply nobody waits for: straight on */
        struct px_listener_stats *st = px_listener_stats(s->l);

        if (evbuffer_get_length(s->out) > STREAM_OUT_MAX) {
            struct px_log_ctx ctx;
            char peer[PX_PEER_LEN];

            evbuffer_drain(in, len);
            px_listener_log_ctx(s->l, s->fd, &ctx, peer);
            px_log_info("resp", &ctx, "subscriber reads too slowly (%u MiB unread); closing it",
                        STREAM_OUT_MAX >> 20);
            POOL_STAT_INC(px_listener_stats(s->l)->write_timeouts);
            px_session_close(s, NULL);
            return;
        }

        evbuffer_remove_buffer(in, s->out, len);
        POOL_STAT_INC(st->frames_out);
        POOL_STAT_ADD(st->bytes_out, len);
        px_session_deliver(s, true);
        return;
    }
    TAILQ_REMOVE(&r->pinq, pr, link);
    r->npinq--;
    pinned_done(s, 1, POOL_OK);
    apply_reply(r, req, in, type);
    evbuffer_remove_buffer(in, req->buf, len);
    req->done = true;
    advance(s);
    update_expect(r);
    maybe_unpin(s);
    px_session_deliver(s, false);
}

void
px_resp_on_pin_drained(void *owner)
{
    struct px_session *s = owner;

    if (s->paused && !s->closing) {
        s->paused = false; /* process() pauses it again if something else still holds it */
        event_active(&s->rev, EV_READ, 0);
    }
}

void
px_resp_on_pin_lost(void *owner, enum pool_result result)
{
    struct px_session *s = owner;
    struct px_resp *r = s->resp;
    struct pool_req *pr;
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];

    r->pin = NULL;
    pinned_done(s, r->npinq, (int)result);
    r->pin_pool = NULL;
    while ((pr = TAILQ_FIRST(&r->pinq)) != NULL) {
        struct px_req *req = (struct px_req *)pr;

        TAILQ_REMOVE(&r->pinq, pr, link);
        px_resp_error_into(req, result);
        req->done = true;
        POOL_STAT_INC(px_listener_stats(s->l)->upstream_failures);
    }
    r->npinq = 0;
    r->nblocking = 0;
    r->hidden = r->skip = 0;
    px_listener_log_ctx(s->l, s->fd, &ctx, peer);
    px_log_info("resp", &ctx, "pinned upstream connection lost (%s); closing the client",
                pool_result_str[result]);
    if (px_session_ensure_out(s) == 0) {
        px_session_deliver(s, false);
        px_session_finish(s); /* its connection state is gone with the connection */
    }
}

void
px_resp_close(struct px_session *s)
{
    struct px_resp *r = s->resp;
    enum pool_unpin_mode mode = POOL_UNPIN_RETURN;

    if (r->pin == NULL) {
        return;
    }
    if (r->stream || r->npinq > 0 || r->hidden > 0) {
        mode = POOL_UNPIN_CLOSE; /* replies still coming: the stream cannot be resynced */
        pinned_done(s, r->npinq, POOL_RESULT_MAX); /* the client left before they came */
    } else if (r->perm || r->multi || r->watch) {
        mode = POOL_UNPIN_RESET;
    }
    pool_unpin(r->pin, mode);
    r->pin = NULL;
    r->pin_pool = NULL;
    TAILQ_INIT(&r->pinq);
    r->npinq = 0;
}

/* ---- shared connections and shards ---- */

void
px_resp_submit(struct px_session *s, size_t n, uint32_t shard, enum kind kind)
{
    struct px_req *req = px_session_req_new(s);
    struct pool_cluster *pool;
    enum pool_result rc;

    req->kind = (uint8_t)kind;
    req->pr.shard = shard;
    req->pr.may_repeat = px_worker_cmd(s->w)->may_repeat; /* docs/pooling.md */
    pool = px_session_pool(s, px_resp_slot(s, shard));
    px_session_chain(s, req, px_resp_slot(s, shard));
    POOL_STAT_INC(px_listener_stats(s->l)->frames_in);
    memset(&s->fst, 0, sizeof(s->fst));
    rc = pool_submit(pool, &req->pr, s->in, n);
    if (rc != POOL_OK) {
        px_req_unlink_after(req);
        px_resp_error_into(req, rc);
        req->done = true;
        POOL_STAT_INC(px_listener_stats(s->l)->upstream_failures);
        if (px_session_ensure_out(s) == 0) {
            px_session_deliver(s, false);
        }
        return;
    }
    px_session_arm_timer(s);
}

void
px_resp_fail(struct px_session *s, struct px_req *req, int result)
{
    px_resp_error_into(req, result);
    if (req->parent != NULL) {
        /* the session counted it; its split command counts once, when it is answered */
        POOL_STAT_DEC(px_listener_stats(s->l)->upstream_failures);
        px_resp_fragment_failed(req);
        return;
    }
    req->done = true;
    if (px_session_ensure_out(s) == 0) {
        px_session_deliver(s, false);
    }
}

/* ---- routing one request ---- */

/* Whether a command changes the connection's state, and how (kind); false when it does not. */
static bool
stateful(struct px_session *s, const struct px_cmd *cmd, const struct px_cmd_info *info,
         enum kind *kind)
{
    size_t i;

    *kind = K_PLAIN;
    switch ((enum px_cmd_state)info->state) {
    case PX_ST_PERM:
    case PX_ST_MULTI:
    case PX_ST_WATCH:
        return true;
    case PX_ST_SELECT: {
        int64_t db = px_cmd_arg_int(cmd, 1);

        /* a malformed SELECT goes to a shared connection, for the server's error */
        return cmd->argc == 2 && db >= 0 && db != (int64_t)px_listener_cfg(s->l)->cluster->resp.db;
    }
    case PX_ST_CLIENT:
        if (px_cmd_arg_is(cmd, 1, "REPLY")) {
            if (cmd->argc == 3 && (px_cmd_arg_is(cmd, 2, "OFF") || px_cmd_arg_is(cmd, 2, "SKIP"))) {
                *kind = K_STREAM; /* replies no longer match requests */
                return true;
            }
            return false; /* ON, or a malformed one the server answers */
        }
        /* state, or the identity of the connection: an id must be the client's own and stay so */
        return px_cmd_arg_is(cmd, 1, "SETNAME") || px_cmd_arg_is(cmd, 1, "TRACKING") ||
               px_cmd_arg_is(cmd, 1, "CACHING") || px_cmd_arg_is(cmd, 1, "NO-EVICT") ||
               px_cmd_arg_is(cmd, 1, "NO-TOUCH") || px_cmd_arg_is(cmd, 1, "ID") ||
               px_cmd_arg_is(cmd, 1, "INFO") || px_cmd_arg_is(cmd, 1, "GETNAME") ||
               px_cmd_arg_is(cmd, 1, "TRACKINGINFO") || px_cmd_arg_is(cmd, 1, "GETREDIR");
    case PX_ST_STREAM:
        *kind = K_STREAM;
        return true;
    case PX_ST_BLOCK:
        *kind = K_BLOCK;
        return true;
    case PX_ST_XBLOCK: {
        long streams = px_cmd_streams(cmd);

        for (i = 1; streams > 0 && i < (size_t)streams; i++) {
            if (px_cmd_arg_is(cmd, i, "BLOCK")) {
                *kind = K_BLOCK;
                return true;
            }
            if (px_cmd_arg_is(cmd, i, "COUNT")) {
                i++;
            } else if (px_cmd_arg_is(cmd, i, "GROUP")) {
                i += 2;
            }
        }
        return false;
    }
    default:
        return false;
    }
}

static enum kind
pinned_kind(const struct px_cmd_info *info, enum kind kind)
{
    if (info == NULL) {
        return K_PLAIN;
    }
    switch ((enum px_cmd_state)info->state) {
    case PX_ST_MULTI:
        return K_MULTI;
    case PX_ST_WATCH:
        return K_WATCH;
    case PX_ST_EXEC:
        return K_EXEC;
    case PX_ST_UNWATCH:
        return K_UNWATCH;
    case PX_ST_RESET:
        return K_RESET;
    default:
        return kind;
    }
}

/*
 * CLIENT subcommands that act on other connections: refused where they could
 * hit what they do not mean to (NULL: sent on). Ids are per server, and a
 * client learns its own only on a pinned connection (CLIENT ID pins), so
 * KILL must name an ID: by address, user or type it could close connections
 * that other clients' requests share.
 */
static const char *
client_refusal(struct px_session *s, const struct px_cmd *cmd)
{
    size_t i;

    if (sharded(s)) {
        return "CLIENT is not supported on a sharded cluster";
    }
    if (!px_cmd_arg_is(cmd, 1, "KILL")) {
        return NULL;
    }
    for (i = 2; cmd->argc > 3 && i + 1 < cmd->argc; i += 2) {
        if (px_cmd_arg_is(cmd, i, "ID")) {
            return NULL;
        }
    }
    return "CLIENT KILL needs an ID filter through a proxy (its connections are shared)";
}

/* Pin s to a connection (of shard, when not 0) and send the frame on it. */
static int
pin_and_send(struct px_session *s, const struct px_cmd_info *info, size_t n, uint32_t shard,
             enum kind kind)
{
    struct px_resp *r = s->resp;
    enum pool_result why = POOL_CONNECT_FAILED;

    if (s->ninflight > 0) {
        return 1; /* replies on shared connections first */
    }
    r->pin_pool = px_listener_pool(s->l);
    r->pin = pool_pin(r->pin_pool, shard, s, &why);
    if (r->pin == NULL) {
        pool_pin_count_sent(r->pin_pool); /* and failed: as a shared one would be */
        pinned_done(s, 1, (int)why);
        r->pin_pool = NULL;
        px_resp_local_error(s, n, "-ERR sluice: %s", fail_text[why]);
        return 0;
    }
    kind = pinned_kind(info, kind);
    send_pinned(s, n, kind == K_PLAIN ? K_PERM : kind);
    return 0;
}

/* A stateful command: pinned (to its keys' shard when sharded), or refused. */
static int
route_stateful(struct px_session *s, const struct px_cmd *cmd, const struct px_cmd_info *info,
               size_t n, enum kind kind)
{
    uint32_t shard = 0;

    if (px_listener_cfg(s->l)->resp.stateful == CFG_STATEFUL_REJECT) {
        px_resp_local_error(s, n,
                            "-ERR sluice: %s needs a connection of its own (resp.stateful: reject)",
                            cmd->name);
        return 0;
    }
    if (sharded(s)) {
        size_t *keys = kind == K_BLOCK ? malloc(cmd->argc * sizeof(*keys)) : NULL;
        long nkeys = keys != NULL ? px_cmd_keys(cmd, info, keys, cmd->argc) : 0;
        long k;

        shard = nkeys > 0 ? px_resp_shard_of(s, cmd, keys[0]) : 0;
        for (k = 1; k < nkeys && shard != 0; k++) {
            if (px_resp_shard_of(s, cmd, keys[k]) != shard) {
                free(keys);
                px_resp_local_error(s, n, "-ERR sluice: keys of %s are on different servers",
                                    cmd->name);
                return 0;
            }
        }
        free(keys);
        if (shard == 0) {
            px_resp_local_error(s, n, "-ERR sluice: %s is not supported on a sharded cluster",
                                cmd->name);
            return 0;
        }
    }
    return pin_and_send(s, info, n, shard, kind);
}

int
px_resp_request(struct px_session *s, size_t n, bool parsed)
{
    const struct cfg_listener *cfg = px_listener_cfg(s->l);
    struct px_cmd *cmd = px_worker_cmd(s->w);
    const struct px_cmd_info *info;
    struct px_resp *r = resp_of(s);
    unsigned char type = 0;
    const char *why;
    enum kind kind;

    if (r == NULL) {
        px_session_close(s, "out of memory");
        return -1;
    }
    if (r->gen != px_listener_gen(s->l) ||
        (r->nlast != 0 && r->pin == NULL &&
         r->nlast != pool_cluster_nservers(px_listener_pool(s->l)))) {
        int rc = follow_pool(s);

        if (rc != 0) {
            return rc;
        }
        r = s->resp;
    }
    if (!parsed) {
        evbuffer_copyout(s->in, &type, 1);
    }
    if (!parsed && type != '*') {
        long len = px_cmd_from_inline(s->in, n, px_worker_scratch(s->w), &why);

        memset(&s->fst, 0, sizeof(s->fst));
        if (len < 0) { /* the line is gone: the stream is still in sync */
            POOL_STAT_INC(px_listener_stats(s->l)->bad_frames);
            px_resp_local_error(s, 0, "-ERR sluice: protocol error: %s", why);
            return 0;
        }
        if (len == 0) {
            return 0;
        }
        n = (size_t)len;
    }
    if (!parsed && type == '*') {
        char head[2] = {0};

        evbuffer_copyout(s->in, head, 2);
        if (head[1] == '-' || (head[1] == '0' && n == 4)) {
            px_resp_consume(s, n); /* a count <= 0 ("*0", "*-10"): Redis skips it too */
            return 0;
        }
    }
    if (!parsed && px_cmd_parse(cmd, s->in, n, &why) == -1) {
        /* a whole RESP value, but not a command: answered, and the stream goes on */
        POOL_STAT_INC(px_listener_stats(s->l)->bad_frames);
        px_resp_local_error(s, n, "-ERR sluice: protocol error: %s", why);
        return 0;
    }
    info = px_cmd_lookup_upper(cmd->name, strlen(cmd->name));
    cmd->may_repeat = info != NULL && info->may_repeat;
    if (info != NULL && info->state == PX_ST_REFUSE) {
        px_resp_local_error(s, n, "-ERR sluice: %s is not supported through a proxy", cmd->name);
        return 0;
    }
    if (info != NULL && info->state == PX_ST_QUIT) {
        local_reply(s, n, "+OK\r\n", 5);
        px_session_finish(s);
        return -1;
    }
    if (cfg->resp.auth.enabled) {
        if (info != NULL && info->state == PX_ST_PERM && strcmp(info->name, "AUTH") == 0) {
            auth(s, cmd, n);
            return 0;
        }
        if (!r->authed && strcmp(cmd->name, "HELLO") == 0 && cmd->argc > 2) {
            px_resp_local_error(s, n,
                                "-NOAUTH sluice checks passwords itself (resp.auth): "
                                "send AUTH first, then HELLO without AUTH");
            return 0;
        }
        if (!r->authed) {
            POOL_STAT_INC(px_listener_stats(s->l)->rejected_commands);
            local_reply(s, n, "-NOAUTH Authentication required.\r\n", 34);
            return 0;
        }
    }
    if (info != NULL && info->state == PX_ST_CLIENT && (why = client_refusal(s, cmd)) != NULL) {
        px_resp_local_error(s, n, "-ERR sluice: %s", why);
        return 0;
    }
    if (r->pin != NULL) {
        if (sharded(s) && !r->stream) {
            return 1; /* pinned to one shard while it blocks: the rest waits for its keys */
        }
        bool lasting;

        kind = K_PLAIN;
        lasting = !r->stream && info != NULL && stateful(s, cmd, info, &kind);
        kind = pinned_kind(info, kind);
        send_pinned(s, n, lasting && kind == K_PLAIN ? K_PERM : kind);
        return 0;
    }
    if (info != NULL && stateful(s, cmd, info, &kind)) {
        return route_stateful(s, cmd, info, n, kind);
    }
    if (info != NULL && info->state == PX_ST_RESET) {
        local_reply(s, n, "+RESET\r\n", 8); /* a shared connection has no state to reset */
        return 0;
    }
    if (info != NULL && info->state == PX_ST_SELECT && cmd->argc == 2 &&
        px_cmd_arg_int(cmd, 1) == (int64_t)cfg->cluster->resp.db) {
        local_reply(s, n, "+OK\r\n", 5); /* the cluster's own db: already selected */
        return 0;
    }
    if (sharded(s)) {
        return px_resp_route_sharded(s, cmd, info, n);
    }
    px_resp_submit(s, n, 0, K_PLAIN);
    return 0;
}

/* ---- connection setup ---- */

static size_t
put_command(char *p, const char *const *argv, const size_t *lens, size_t argc)
{
    size_t i, n = (size_t)sprintf(p, "*%zu\r\n", argc);

    for (i = 0; i < argc; i++) {
        n += (size_t)sprintf(p + n, "$%zu\r\n", lens[i]);
        memcpy(p + n, argv[i], lens[i]);
        n += lens[i];
        memcpy(p + n, "\r\n", 2);
        n += 2;
    }
    return n;
}

int
px_resp_setup(const struct cfg_cluster *c, struct pool_handler *h, char **bytes)
{
    const struct cfg_resp_upstream *u = &c->resp;
    size_t cap = 128 + (u->username != NULL ? strlen(u->username) : 0) + u->password.len;
    char *buf = malloc(2 * cap), *hello;
    size_t n, hn = 0;
    unsigned replies = 0;

    if (buf == NULL) {
        return -1;
    }
    n = put_command(buf, (const char *const[]){"RESET"}, (const size_t[]){5}, 1);
    hello = buf + n;
    if (u->enabled && u->password.ptr != NULL) {
        if (u->username != NULL) {
            hn +=
                put_command(hello + hn, (const char *const[]){"AUTH", u->username, u->password.ptr},
                            (const size_t[]){4, strlen(u->username), u->password.len}, 3);
        } else {
            hn += put_command(hello + hn, (const char *const[]){"AUTH", u->password.ptr},
                              (const size_t[]){4, u->password.len}, 2);
        }
        replies++;
    }
    if (u->enabled && u->db != 0) {
        char db[16];
        int dl = snprintf(db, sizeof(db), "%u", u->db);

        hn += put_command(hello + hn, (const char *const[]){"SELECT", db},
                          (const size_t[]){6, (size_t)dl}, 2);
        replies++;
    }
    h->hello = replies > 0 ? hello : NULL;
    h->hello_len = hn;
    h->hello_replies = replies;
    h->reset = buf;
    h->reset_len = n + hn;
    h->reset_replies = 1 + replies;
    *bytes = buf;
    return 0;
}
