/*
 * A worker's servers against the shared health: one pool_server per
 * endpoint, added and drained as DNS changes the endpoints; idle
 * connections closed when a server goes down; warm connections opened
 * before a returning server takes traffic; slow start; panic.
 */
#include "pool_internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <unistd.h>

#define SLOW_START_FLOOR 10 /* percent of its weight a returning server starts from */

bool
pool_server_healthy(const struct pool_server *s, uint64_t now)
{
    /* s->fit waits for this worker's sync (which starts the warm-up); going down does not wait */
    return s->fit && !s->gone && pool_endpoint_fit(s->ep) && (!s->warming || now >= s->warm_until);
}

uint64_t
pool_server_weight(const struct pool_server *s, uint64_t now)
{
    uint64_t w = (uint64_t)s->cfg->weight * 100, window = s->cluster->cfg->slow_start_ms, back, pct;

    if (window == 0) {
        return w;
    }
    back = atomic_load_explicit(&s->ep->back, memory_order_relaxed);
    if (back == 0 || now >= back + window) {
        return w;
    }
    pct = now > back ? (now - back) * 100 / window : 0;
    return w * (pct > SLOW_START_FLOOR ? pct : SLOW_START_FLOOR) / 100;
}

bool
pool_server_coming(const struct pool_server *s)
{
    /* up by the shared health, and this worker is warming it or has not caught up yet */
    return !s->gone && (s->warming || !s->fit) && pool_endpoint_fit(s->ep);
}

/* Healthy, or back and warming up: requests for it wait instead of failing. */
static bool
any_healthy(const struct pool_cluster *c, uint64_t now)
{
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        if (pool_server_healthy(c->servers[i], now) || pool_server_coming(c->servers[i])) {
            return true;
        }
    }
    return false;
}

bool
pool_cluster_failing_fast(struct pool_cluster *c, uint64_t now)
{
    return c->cfg->panic == CFG_PANIC_FAIL_FAST && !any_healthy(c, now);
}

bool
pool_server_takes(struct pool_cluster *c, const struct pool_server *s, uint64_t now)
{
    if (pool_server_healthy(s, now)) {
        return true;
    }
    return c->cfg->panic == CFG_PANIC_ROUTE_ALL && !s->gone && !pool_server_coming(s) &&
           !any_healthy(c, now);
}

/* ---- a server's life ---- */

static struct pool_server *
server_new(struct pool_cluster *c, struct pool_endpoint *ep)
{
    struct pool_server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->cluster = c;
    s->cfg = ep->cfg;
    s->ep = ep;
    s->fit = pool_endpoint_fit(ep);
    s->stall_floor = (uint32_t)c->cfg->pool.stall_ms;
    s->stall_ms = s->stall_floor; /* until replies teach it more */
    TAILQ_INIT(&s->conns);
    TAILQ_INIT(&s->pinned);
    s->retry = evtimer_new(c->base, pool_on_retry, s);
    if (s->retry == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void
pool_server_free(struct pool_server *s)
{
    event_free(s->retry);
    pool_endpoint_put(s->ep);
    free(s);
}

void
pool_server_reap(struct pool_server *s)
{
    struct pool_cluster *c = s->cluster;
    struct pool_req *req;

    if (!s->gone || s->nconns > 0 || s->npinned > 0 || s->inflight > 0) {
        return;
    }
    TAILQ_REMOVE(&c->draining, s, link);
    TAILQ_FOREACH(req, &c->queue, link)
    {
        if (req->last == s) {
            req->last = NULL;
        }
    }
    TAILQ_FOREACH(req, &c->failing, link)
    {
        if (req->last == s) {
            req->last = NULL;
        }
    }
    pool_server_free(s);
}

/*
 * s takes no more traffic: close its idle connections now, retire the busy
 * ones (they close once their requests are answered or fail on their own
 * deadlines). Connections still connecting carry on; requests waiting on
 * them are written when they connect.
 */
static void
shed(struct pool_server *s)
{
    struct pool_conn *conn, *next;

    for (conn = TAILQ_FIRST(&s->conns); conn != NULL; conn = next) {
        next = TAILQ_NEXT(conn, link);
        if (conn->nfifo == 0 && evbuffer_get_length(conn->out) == 0) {
            pool_conn_detach(conn);
            pool_conn_free(conn);
            POOL_STAT_INC(s->cluster->stats->conns_closed);
        } else if (conn->state == CONN_READY) {
            conn->state = CONN_RETIRING;
        }
    }
    event_del(s->retry);
}

void
pool_server_warmed(struct pool_server *s)
{
    const struct pool_conn *conn;
    unsigned ready = 0;

    TAILQ_FOREACH(conn, &s->conns, link)
    {
        ready += conn->state == CONN_READY;
    }
    if (ready >= s->cluster->cfg->pool.min_idle) {
        s->warming = false;
    }
}

/* ---- catching up with the shared health ---- */

static bool
listed(struct pool_endpoint *const *eps, size_t n, const struct pool_endpoint *ep)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (eps[i] == ep) {
            return true;
        }
    }
    return false;
}

static struct pool_server *
server_of(const struct pool_cluster *c, const struct pool_endpoint *ep)
{
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        if (c->servers[i]->ep == ep) {
            return c->servers[i];
        }
    }
    return NULL;
}

int
pool_servers_sync(struct pool_cluster *c)
{
    struct pool_endpoint **eps;
    size_t n, i, keep = 0;
    unsigned version;
    int rc = 0;

    eps = pool_health_endpoints(c->health, &n, &version);
    if (eps == NULL) {
        return -1;
    }
    if (c->nservers + n > c->cap) {
        size_t cap = (c->nservers + n) * 2;
        struct pool_server **grown = realloc(c->servers, cap * sizeof(*grown));

        if (grown == NULL) {
            for (i = 0; i < n; i++) {
                pool_endpoint_put(eps[i]);
            }
            free(eps);
            return -1;
        }
        c->servers = grown;
        c->cap = cap;
    }
    for (i = 0; i < c->nservers; i++) {
        struct pool_server *s = c->servers[i];

        if (listed(eps, n, s->ep)) {
            c->servers[keep++] = s;
            continue;
        }
        s->gone = true; /* DNS dropped it: drain */
        TAILQ_INSERT_TAIL(&c->draining, s, link);
        shed(s);
        pool_server_reap(s);
    }
    c->nservers = keep;
    for (i = 0; i < n; i++) {
        struct pool_server *s;

        if (server_of(c, eps[i]) != NULL) {
            pool_endpoint_put(eps[i]); /* known: drop the list's extra reference */
            continue;
        }
        s = server_new(c, eps[i]);
        if (s == NULL) {
            pool_endpoint_put(eps[i]);
            rc = -1;
            continue;
        }
        c->servers[c->nservers++] = s;
        if (c->health_version != 0) {
            pool_maintain(s); /* added after the start: warm it now */
        }
    }
    free(eps);
    for (i = 0; i < c->cfg->nservers; i++) {
        c->slots[i] = NULL;
    }
    for (i = 0; i < c->nservers; i++) {
        c->slots[c->servers[i]->ep->slot] = c->servers[i];
    }
    if (rc == 0) {
        c->health_version = version;
    }
    return rc;
}

static void
fail_queue(struct pool_cluster *c, enum pool_result result)
{
    struct pool_req *req;

    while ((req = TAILQ_FIRST(&c->queue)) != NULL) {
        pool_dequeue(c, req);
        POOL_STAT_INC(c->stats->failed[result]);
        c->h.failure(req, result);
    }
}

/* Queued requests whose key's server is out: they fail now rather than at the queue timeout. */
static void
fail_shards(struct pool_cluster *c, uint64_t now)
{
    struct pool_req *req, *next;

    for (req = TAILQ_FIRST(&c->queue); req != NULL; req = next) {
        struct pool_server *s = req->shard != 0 ? c->slots[req->shard - 1] : NULL;

        next = TAILQ_NEXT(req, link);
        if (req->shard == 0 || pool_server_wanted(c, s, now)) {
            continue;
        }
        pool_dequeue(c, req);
        POOL_STAT_INC(c->stats->failed[POOL_UNHEALTHY]);
        c->h.failure(req, POOL_UNHEALTHY);
        next = TAILQ_FIRST(&c->queue); /* the callback may have withdrawn others */
    }
}

void
pool_cluster_sync(struct pool_cluster *c)
{
    uint64_t now = pool_now_ms();
    size_t i;

    if (c->closing) {
        return;
    }
    if (pool_health_version(c->health) != c->health_version) {
        (void)pool_servers_sync(c); /* out of memory: the next change tries again */
    }
    for (i = 0; i < c->nservers; i++) {
        struct pool_server *s = c->servers[i];
        bool fit = pool_endpoint_fit(s->ep);

        if (fit == s->fit) {
            continue;
        }
        s->fit = fit;
        if (!fit) {
            s->warming = false;
            shed(s);
            continue;
        }
        /* back: its checks say it answers, so forget the connect backoff */
        s->fails = 0;
        s->down_until = 0;
        if (c->cfg->pool.min_idle > 0) {
            s->warming = true;
            s->warm_until = now + c->cfg->timeouts.connect_ms;
        }
        pool_maintain(s);
    }
    if (pool_cluster_failing_fast(c, now)) {
        fail_queue(c, POOL_UNHEALTHY);
        return;
    }
    fail_shards(c, now);
    pool_drain_queue(c, NULL);
}

/* ---- for the owner: a pool a reload replaced, status ---- */

static bool
server_idle(const struct pool_server *s)
{
    return s->inflight == 0 && s->npinned == 0;
}

bool
pool_cluster_idle(const struct pool_cluster *c)
{
    const struct pool_server *s;
    size_t i;

    if (c->nqueued > 0 || !TAILQ_EMPTY(&c->failing)) {
        return false;
    }
    for (i = 0; i < c->nservers; i++) {
        if (!server_idle(c->servers[i])) {
            return false;
        }
    }
    TAILQ_FOREACH(s, &c->draining, link)
    {
        if (!server_idle(s)) {
            return false;
        }
    }
    return true;
}

unsigned
pool_cluster_conns(const struct pool_cluster *c)
{
    const struct pool_server *s;
    unsigned n = 0;
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        n += c->servers[i]->nconns;
    }
    TAILQ_FOREACH(s, &c->draining, link)
    {
        n += s->nconns;
    }
    return n;
}
