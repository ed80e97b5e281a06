/*
 * Pinned connections: an upstream connection lent whole to one client whose
 * commands carry connection state (a transaction, a subscription, a
 * database), kept framed by the pool, and given back clean or closed.
 */
#include "pool_internal.h"

#include <event2/buffer.h>
#include <event2/event.h>

static void
attach_pinned(struct pool_server *s, struct pool_conn *conn)
{
    conn->kind = CONN_PINNED;
    TAILQ_INSERT_TAIL(&s->pinned, conn, link);
    s->npinned++;
    POOL_STAT_INC(s->cluster->stats->pinned);
}

struct pool_conn *
pool_pin(struct pool_cluster *c, uint32_t shard, void *owner, enum pool_result *why)
{
    uint64_t now = pool_now_ms();
    struct pool_server *s;
    struct pool_conn *conn;

    if (c->closing) {
        *why = POOL_SHUTDOWN;
        return NULL;
    }
    if (shard != 0) {
        s = c->slots[shard - 1];
    } else {
        s = c->nservers == 1 ? c->servers[0] : c->balancer->pick(c, NULL); /* none: NULL */
    }
    if (!pool_server_wanted(c, s, now)) {
        *why = POOL_UNHEALTHY;
        return NULL;
    }
    if (s->npinned >= c->cfg->pool.max_pinned) {
        *why = POOL_PIN_LIMIT;
        return NULL;
    }
    TAILQ_FOREACH(conn, &s->conns, link)
    {
        if (pool_conn_idle(conn, now)) {
            break;
        }
    }
    if (conn != NULL) { /* a warm one: the pool opens another to stay warm */
        pool_conn_detach(conn);
        attach_pinned(s, conn);
        conn->rev_mode = REV_OFF;
        pool_conn_rev_arm(conn);
        pool_maintain(s);
    } else {
        conn = pool_server_dial(s, CONN_PINNED, now); /* NULL: backing off, or no fd */
        if (conn == NULL) {
            *why = POOL_CONNECT_FAILED;
            return NULL;
        }
    }
    conn->owner = owner;
    conn->expect = 0;
    conn->expect_deadline = false;
    conn->release = 0;
    POOL_STAT_INC(c->stats->pins);
    return conn;
}

void
pool_pin_write(struct pool_conn *conn, struct evbuffer *src, size_t len)
{
    conn->nreq++;
    if (conn->state == CONN_READY) {
        evbuffer_remove_buffer(src, conn->out, len);
        pool_conn_queue_flush(conn);
        return;
    }
    /* held until connected and its setup (login, db) is answered */
    if (conn->held == NULL && (conn->held = evbuffer_new()) == NULL) {
        evbuffer_drain(src, len);
        conn->broken = true; /* failed from the loop: pin_lost() tells the owner */
        event_active(&conn->wev, EV_WRITE, 0);
        return;
    }
    evbuffer_remove_buffer(src, conn->held, len);
}

void
pool_pin_expect(struct pool_conn *conn, unsigned replies, bool deadline)
{
    conn->expect = replies;
    conn->expect_deadline = deadline;
    if (conn->state != CONN_CONNECTING) {
        pool_conn_rev_arm(conn);
    }
}

void
pool_unpin(struct pool_conn *conn, enum pool_unpin_mode mode)
{
    conn->owner = NULL;
    conn->release = (uint8_t)(mode + 1);
    /* from the loop: the owner may be inside pinned() for this very connection */
    event_active(&conn->wev, EV_WRITE, 0);
}

void
pool_pin_frame(struct pool_conn *conn, size_t len)
{
    struct pool_cluster *c = conn->server->cluster;

    c->h.pinned(conn->owner, conn->in, len); /* a reply or a message: the owner counts replies */
}

void
pool_pin_count_sent(struct pool_cluster *c)
{
    POOL_STAT_INC(c->stats->requests);
}

void
pool_pin_count_done(struct pool_cluster *c, int result)
{
    if (result == POOL_OK) {
        POOL_STAT_INC(c->stats->responses);
    } else if (result > 0 && result < POOL_RESULT_MAX) {
        POOL_STAT_INC(c->stats->failed[result]);
    } else {
        POOL_STAT_INC(c->stats->canceled);
    }
}

/* Back among the shared connections, idle; or closed when the pool is full. */
static void
return_to_pool(struct pool_conn *conn)
{
    struct pool_server *s = conn->server;
    struct pool_cluster *c = s->cluster;

    if (s->nconns >= c->cfg->pool.max_connections || c->closing || pool_server_out(s)) {
        pool_conn_close(conn);
        return;
    }
    pool_conn_detach(conn);
    conn->kind = CONN_SHARED;
    TAILQ_INSERT_TAIL(&s->conns, conn, link);
    s->nconns++;
    POOL_STAT_INC(c->stats->conns_active);
    conn->expect = 0;
    conn->rev_mode = REV_OFF;
    pool_conn_rev_arm(conn);
    pool_drain_queue(c, conn);
}

int
pool_pin_setup_done(struct pool_conn *conn)
{
    if (conn->owner == NULL) { /* a reset, answered: the connection is clean */
        POOL_STAT_INC(conn->server->cluster->stats->unpin_resets);
        return_to_pool(conn);
        return -1; /* not the pinned connection the caller was reading any more */
    }
    if (conn->held != NULL) {
        evbuffer_add_buffer(conn->out, conn->held);
        evbuffer_free(conn->held);
        conn->held = NULL;
    }
    if (pool_conn_flush(conn) == -1) {
        return -1;
    }
    conn->rev_mode = REV_OFF;
    pool_conn_rev_arm(conn);
    return 0;
}

void
pool_pin_release(struct pool_conn *conn)
{
    const struct pool_handler *h = &conn->server->cluster->h;
    enum pool_unpin_mode mode = (enum pool_unpin_mode)(conn->release - 1);
    bool clean = conn->state == CONN_READY && conn->expect == 0 &&
                 evbuffer_get_length(conn->in) == 0 && evbuffer_get_length(conn->out) == 0;

    conn->release = 0;
    conn->expect = 0;
    if (mode == POOL_UNPIN_CLOSE || !clean || conn->server->cluster->closing ||
        pool_server_out(conn->server)) {
        pool_conn_close(conn);
    } else if (mode == POOL_UNPIN_RESET && h->reset_replies > 0) {
        pool_conn_setup(conn, h->reset, h->reset_len, h->reset_replies);
    } else {
        return_to_pool(conn);
    }
}

unsigned
pool_pin_rehello(struct pool_conn *conn)
{
    const struct pool_handler *h = &conn->server->cluster->h;
    struct evbuffer *to;

    if (h->hello_replies == 0) {
        return 0;
    }
    if (conn->state != CONN_READY && conn->held == NULL) {
        conn->held = evbuffer_new();
    }
    to = conn->state == CONN_READY ? conn->out : conn->held;
    if (to == NULL || evbuffer_add(to, h->hello, h->hello_len) == -1) {
        conn->broken = true; /* failed from the loop: pin_lost() tells the owner */
        event_active(&conn->wev, EV_WRITE, 0);
        return 0;
    }
    if (to == conn->out) {
        pool_conn_queue_flush(conn);
    }
    return h->hello_replies;
}

bool
pool_pin_backlogged(struct pool_conn *conn, size_t high)
{
    size_t pending =
        evbuffer_get_length(conn->out) + (conn->held != NULL ? evbuffer_get_length(conn->held) : 0);

    if (pending <= high) {
        return false;
    }
    conn->notify_drain = true;
    return true;
}
