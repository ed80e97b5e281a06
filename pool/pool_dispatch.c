/*
 * Dispatch: which connection a request goes on (its shard's server, its
 * owner's previous request's connection, the balancer's pick, the fewest
 * in flight), the wait queue, leases, retries and cancel.
 */
#include "pool_internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- dispatch ---- */

/*
 * The open connection with the fewest requests in flight and room for one
 * more, among those not stalled (pool_conn_stalled, pool_conn_quiet); a
 * spare one only when no other is left; *late: the best of the stalled ones,
 * or NULL.
 */
static struct pool_conn *
best_conn(struct pool_server *s, uint64_t now, struct pool_conn **late)
{
    unsigned max = s->cluster->cfg->pool.max_pipeline;
    struct pool_conn *conn, *best = NULL, *spare = NULL;

    *late = NULL;
    TAILQ_FOREACH(conn, &s->conns, link)
    {
        if (conn->state == CONN_RETIRING || conn->nfifo >= max || (conn->spare && best != NULL)) {
            continue; /* spares come last (opened last): passed over once another will do */
        }
        if (conn->state == CONN_READY && conn->nfifo == 0 && pool_conn_expired(conn, now)) {
            conn->state = CONN_RETIRING; /* closed by its idle timer or next read */
            continue;
        }
        if (pool_conn_stalled(conn, now) && pool_conn_quiet(conn, now)) {
            if (*late == NULL || conn->nfifo < (*late)->nfifo) {
                *late = conn;
            }
            continue;
        }
        if (conn->spare) {
            if (spare == NULL || conn->nfifo < spare->nfifo) {
                spare = conn;
            }
            continue;
        }
        if (best == NULL || conn->nfifo < best->nfifo) {
            best = conn;
        }
    }
    return best != NULL ? best : spare;
}

/*
 * A connection of s for a new request: one with room that is not stalled,
 * else a new one (within max_connections, and the backoff), else a stalled
 * one rather than none. One opened because others are stalled is a spare:
 * it takes requests only while no other can, so that traffic goes back to
 * the others (and their batching) once the stall is over.
 */
static struct pool_conn *
conn_for(struct pool_server *s, uint64_t now)
{
    struct pool_conn *late, *conn = best_conn(s, now, &late);

    if (conn == NULL && s->nconns < s->cluster->cfg->pool.max_connections) {
        conn = pool_server_dial(s, CONN_SHARED, now);
        if (conn != NULL && late != NULL) {
            conn->spare = true;
        }
    }
    if (late != NULL) {
        if (conn == NULL) {
            return late;
        }
        POOL_STAT_INC(s->cluster->stats->stalls);
    }
    return conn;
}

/*
 * A connection for req: its target server's, else the balancer's server
 * first, then any with room.
 */
static struct pool_conn *
find_conn(struct pool_cluster *c, const struct pool_req *req, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();
    struct pool_server *s;
    struct pool_conn *conn;
    size_t i, start;

    if (req->shard != 0) {
        s = c->slots[req->shard - 1]; /* a key lives on one server only */
        return s != NULL && pool_server_takes(c, s, now) ? conn_for(s, now) : NULL;
    }
    if (c->nservers == 1) {
        s = pool_server_takes(c, c->servers[0], now) ? c->servers[0] : NULL;
    } else {
        s = c->balancer->pick(c, exclude);
    }
    if (s == NULL) {
        return NULL;
    }
    conn = conn_for(s, now);
    for (start = 0; start < c->nservers && c->servers[start] != s; start++) {
    }
    for (i = 1; conn == NULL && i < c->nservers; i++) {
        struct pool_server *t = c->servers[(start + i) % c->nservers];

        if (t != exclude && pool_server_takes(c, t, now)) { /* conn_for() minds backoffs */
            conn = conn_for(t, now);
        }
    }
    return conn;
}

/*
 * Nothing for req to wait for: every server it may go to backs off after
 * connect failures, with no connection open or opening and no probe due.
 */
static bool
backing_off(struct pool_cluster *c, const struct pool_req *req, uint64_t now)
{
    size_t i;

    if (req->shard != 0) {
        const struct pool_server *s = c->slots[req->shard - 1];

        return s != NULL && s->nconns == 0 && !pool_server_dialable(s, now);
    }
    for (i = 0; i < c->nservers; i++) {
        const struct pool_server *s = c->servers[i];

        if (s->nconns > 0 || pool_server_coming(s) ||
            (pool_server_dialable(s, now) && pool_server_takes(c, s, now))) {
            return false; /* something open or opening to wait for, or a connect may start */
        }
    }
    return true;
}

/* The shared connection holding the owner's previous unanswered request to req's server, if any. */
static struct pool_conn *
pred_conn(struct pool_cluster *c, const struct pool_req *req)
{
    const struct pool_req *a = req->after;

    if (a == NULL || a->cluster != c || a->conn == NULL ||
        (a->state != POOL_REQ_SENT && a->state != POOL_REQ_ASSIGNED) ||
        a->conn->kind != CONN_SHARED) {
        return NULL;
    }
    if (req->shard != 0 && a->conn->server != c->slots[req->shard - 1]) {
        return NULL;
    }
    return a->conn;
}

/* That connection, when it has room for req too. */
static struct pool_conn *
affine_conn(struct pool_cluster *c, const struct pool_req *req)
{
    struct pool_conn *conn = pred_conn(c, req);

    return conn != NULL && conn->nfifo < c->cfg->pool.max_pipeline ? conn : NULL;
}

/*
 * req must wait in the queue: behind its predecessor there, or until the
 * connection its predecessor is on has room (max_pipeline holds even for one
 * client's pipeline, so a server that takes one request at a time gets one).
 */
static bool
must_wait(struct pool_cluster *c, const struct pool_req *req)
{
    return (req->after != NULL && req->after->cluster == c &&
            req->after->state == POOL_REQ_QUEUED) ||
           (pred_conn(c, req) != NULL && affine_conn(c, req) == NULL);
}

static void
arm_queue_timer(struct pool_cluster *c)
{
    struct pool_req *head = TAILQ_FIRST(&c->queue);
    uint64_t now = pool_now_ms(), due;
    struct timeval tv;

    if (head == NULL) {
        event_del(c->queue_timer);
        return;
    }
    due = head->since_ms + c->cfg->pool.queue.timeout_ms;
    tv = pool_tv_ms(due > now ? due - now : 0);
    event_add(c->queue_timer, &tv);
}

static enum pool_result
enqueue(struct pool_cluster *c, struct pool_req *req)
{
    if (c->nqueued >= c->cfg->pool.queue.max) {
        return POOL_QUEUE_FULL;
    }
    req->state = POOL_REQ_QUEUED;
    req->conn = NULL;
    req->since_ms = pool_now_ms();
    TAILQ_INSERT_TAIL(&c->queue, req, link);
    c->nqueued++;
    POOL_STAT_INC(c->stats->queue_depth);
    POOL_STAT_INC(c->stats->queued);
    if (c->nqueued == 1) {
        arm_queue_timer(c);
    }
    return POOL_OK;
}

void
pool_dequeue(struct pool_cluster *c, struct pool_req *req)
{
    TAILQ_REMOVE(&c->queue, req, link);
    c->nqueued--;
    POOL_STAT_DEC(c->stats->queue_depth);
    req->state = POOL_REQ_NEW;
}

/*
 * Serve waiting requests, oldest first. room, when not NULL, is a connection
 * that just got free slots (it answered, or it connected): it takes them
 * first, without a search, since every other connection was full when they
 * queued.
 */
void
pool_drain_queue(struct pool_cluster *c, struct pool_conn *room)
{
    unsigned max = c->cfg->pool.max_pipeline;
    struct pool_req *req, *next;
    bool had = !TAILQ_EMPTY(&c->queue);

    if (room != NULL) {
        uint64_t now = pool_now_ms();

        if (room->kind != CONN_SHARED || room->state != CONN_READY ||
            !pool_server_takes(c, room->server, now) || room->spare ||
            (pool_conn_stalled(room, now) && pool_conn_quiet(room, now))) {
            room = NULL;
        }
    }
    for (req = TAILQ_FIRST(&c->queue); !c->closing && req != NULL; req = next) {
        struct pool_conn *conn = affine_conn(c, req);

        next = TAILQ_NEXT(req, link);
        if (conn == NULL && must_wait(c, req)) {
            continue; /* its predecessor could not go yet */
        }
        if (conn == NULL) {
            conn = room != NULL && room->nfifo < max &&
                           (req->shard == 0 || room->server == c->slots[req->shard - 1])
                       ? room
                       : find_conn(c, req, NULL);
        }
        if (conn == NULL) {
            if (req->shard == 0) {
                break;
            }
            continue; /* its server is full; others may not be */
        }
        pool_dequeue(c, req);
        pool_conn_assign(conn, req, NULL, 0);
    }
    if (had) {
        arm_queue_timer(c);
    }
}

void
pool_on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pool_cluster *c = arg;
    uint64_t now = pool_now_ms();
    struct pool_req *req;

    (void)fd;
    (void)what;
    while ((req = TAILQ_FIRST(&c->queue)) != NULL &&
           now - req->since_ms >= c->cfg->pool.queue.timeout_ms) {
        pool_dequeue(c, req);
        POOL_STAT_INC(c->stats->failed[POOL_QUEUE_TIMEOUT]);
        c->h.failure(req, POOL_QUEUE_TIMEOUT);
    }
    arm_queue_timer(c);
}

enum pool_result
pool_submit(struct pool_cluster *c, struct pool_req *req, struct evbuffer *src, size_t len)
{
    struct pool_conn *conn = NULL;

    POOL_STAT_INC(c->stats->requests);
    req->cluster = c;
    req->submit_us = pool_now_us();
    req->tries = 0;
    req->exclusive = 0;
    req->kept = KEEP_NONE;
    req->repeated = 0;
    if (!c->closing && (conn = affine_conn(c, req)) == NULL && !must_wait(c, req)) {
        enum pool_result why = POOL_OK;

        if (req->shard != 0) {
            struct pool_server *s = c->slots[req->shard - 1];
            uint64_t now = pool_now_ms();

            if (!pool_server_wanted(c, s, now)) {
                why = POOL_UNHEALTHY;
            } else if (s->nconns == 0 && !pool_server_dialable(s, now)) {
                why = POOL_CONNECT_FAILED; /* its only server is backing off */
            }
        }
        conn = why == POOL_OK ? find_conn(c, req, NULL) : NULL;
        if (conn == NULL && why == POOL_OK) {
            uint64_t now = pool_now_ms();

            if (pool_cluster_failing_fast(c, now)) {
                why = POOL_UNHEALTHY;
            } else if (backing_off(c, req, now)) {
                why = POOL_CONNECT_FAILED; /* fail fast rather than wait out the backoff */
            }
        }
        if (why != POOL_OK) {
            evbuffer_drain(src, len); /* fail fast rather than wait for a server */
            POOL_STAT_INC(c->stats->failed[why]);
            return why;
        }
    }
    if (conn != NULL) {
        pool_conn_assign(conn, req, src, len);
        return POOL_OK;
    }
    if (src != req->frame) {
        evbuffer_remove_buffer(src, req->frame, len);
    }
    if (enqueue(c, req) != POOL_OK) {
        POOL_STAT_INC(c->stats->failed[POOL_QUEUE_FULL]);
        return POOL_QUEUE_FULL;
    }
    return POOL_OK;
}

/* A lease: a warm idle connection from s, or a new exclusive one. */
static int
lease_from(struct pool_server *s, struct pool_req *req, int *fd)
{
    struct pool_conn *conn;

    TAILQ_FOREACH(conn, &s->conns, link)
    {
        if (pool_conn_idle(conn, pool_now_ms())) {
            *fd = conn->fd;
            conn->fd = -1; /* the lease's now: pool_conn_free() leaves it open */
            pool_conn_detach(conn);
            pool_conn_free(conn);
            POOL_STAT_INC(s->cluster->stats->leases);
            pool_maintain(s); /* the pool keeps its warm connections */
            return 1;
        }
    }
    conn = pool_server_dial(s, CONN_LEASE, pool_now_ms());
    if (conn == NULL) {
        return -1;
    }
    TAILQ_INSERT_TAIL(&conn->fifo, req, link);
    conn->nfifo = 1;
    s->inflight++;
    req->conn = conn;
    req->last = s;
    req->state = POOL_REQ_ASSIGNED;
    return 0;
}

int
pool_lease(struct pool_cluster *c, struct pool_req *req, int *fd)
{
    struct pool_server *s = c->closing ? NULL : c->balancer->pick(c, NULL);

    req->cluster = c;
    req->tries = 0;
    req->exclusive = 1;
    return s == NULL ? -1 : lease_from(s, req, fd);
}

/* Retry a request that was never written, elsewhere; or fail it. */
void
pool_retry_or_fail(struct pool_cluster *c, struct pool_req *req, enum pool_result result)
{
    if (!c->closing && req->tries < c->cfg->retries) {
        struct pool_server *s;
        int fd;

        req->tries++;
        POOL_STAT_INC(c->stats->retries);
        if (req->exclusive) {
            s = c->balancer->pick(c, req->last);
            if (s != NULL) {
                int rc = lease_from(s, req, &fd);

                if (rc == 1) {
                    c->h.leased(req, fd);
                }
                if (rc >= 0) {
                    return;
                }
            }
        } else {
            /* after its owner's previous request, if that one was placed again */
            struct pool_conn *conn = affine_conn(c, req);

            if (conn == NULL && !must_wait(c, req)) {
                conn = find_conn(c, req, req->last);
            }
            if (conn != NULL) {
                pool_conn_assign(conn, req, NULL, 0);
                return;
            }
            if (pool_cluster_failing_fast(c, pool_now_ms())) {
                result = POOL_UNHEALTHY;
            } else if (!backing_off(c, req, pool_now_ms()) && enqueue(c, req) == POOL_OK) {
                return;
            }
        }
    }
    POOL_STAT_INC(c->stats->failed[result]);
    c->h.failure(req, result);
}

void
pool_queue_backoff(struct pool_cluster *c, enum pool_result result)
{
    uint64_t now = pool_now_ms();
    struct pool_req *req, *next;

    for (req = TAILQ_FIRST(&c->queue); req != NULL; req = next) {
        next = TAILQ_NEXT(req, link);
        if (!backing_off(c, req, now)) {
            continue;
        }
        pool_dequeue(c, req);
        POOL_STAT_INC(c->stats->failed[result]);
        c->h.failure(req, result);
        next = TAILQ_FIRST(&c->queue); /* the callback may have withdrawn others */
    }
    arm_queue_timer(c);
}

void
pool_repeat_or_fail(struct pool_cluster *c, struct pool_req *req)
{
    req->state = POOL_REQ_NEW;
    if (req->kept != KEEP_NONE && !req->repeated && !c->closing && c->cfg->retries > 0 &&
        pool_req_restore(req) == 0) {
        struct pool_conn *conn = affine_conn(c, req);

        req->repeated = 1;
        if (conn == NULL && !must_wait(c, req)) {
            conn = find_conn(c, req, req->last);
        }
        if (conn != NULL) {
            POOL_STAT_INC(c->stats->repeats);
            pool_conn_assign(conn, req, NULL, 0);
            return;
        }
        if (!pool_cluster_failing_fast(c, pool_now_ms()) && !backing_off(c, req, pool_now_ms()) &&
            enqueue(c, req) == POOL_OK) {
            POOL_STAT_INC(c->stats->repeats);
            return;
        }
    }
    pool_req_unkeep(req);
    evbuffer_drain(req->frame, evbuffer_get_length(req->frame)); /* restored, not sent again */
    POOL_STAT_INC(c->stats->failed[POOL_UPSTREAM_ERROR]);
    c->h.failure(req, POOL_UPSTREAM_ERROR);
}

int
pool_cancel(struct pool_req *req)
{
    struct pool_conn *conn = req->conn;

    switch ((enum pool_req_state)req->state) {
    case POOL_REQ_NEW:
        return 0;
    case POOL_REQ_QUEUED:
        pool_dequeue(req->cluster, req);
        POOL_STAT_INC(req->cluster->stats->canceled);
        return 0;
    case POOL_REQ_ASSIGNED:
        if (conn == NULL) { /* on the failing list */
            TAILQ_REMOVE(&req->cluster->failing, req, link);
        } else {
            struct pool_server *s = conn->server;

            TAILQ_REMOVE(&conn->fifo, req, link);
            conn->nfifo--;
            conn->nreq--;
            s->inflight--;
            if (conn->kind == CONN_LEASE) {
                pool_conn_free(conn);
                POOL_STAT_INC(req->cluster->stats->conns_closed);
                pool_server_reap(s); /* removed by DNS while it connected */
            }
        }
        req->state = POOL_REQ_NEW;
        req->conn = NULL;
        POOL_STAT_INC(req->cluster->stats->canceled);
        return 0;
    case POOL_REQ_SENT:
    case POOL_REQ_FAILING:
        break;
    }
    return -1;
}
