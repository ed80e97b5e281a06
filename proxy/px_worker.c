#include "px_worker.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "pool/pool_health.h"
#include "proxy/codec/px_codec.h"
#include "proxy/codec/px_resp_cmd.h"
#include "proxy/px_listener.h"
#include "proxy/px_log.h"
#include "proxy/px_relay.h"
#include "proxy/px_resp.h"
#include "proxy/px_session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define REQ_CACHE_MAX 4096 /* spare requests kept for reuse, per worker */

_Static_assert(sizeof(struct px_frame_state) <= POOL_FRAME_STATE_SIZE,
               "the pool keeps too little decoder state for the codecs");
_Static_assert(PX_AGAIN == POOL_FRAME_AGAIN && PX_ERROR == POOL_FRAME_ERROR,
               "the codecs and the pool disagree on the framer's return values");

TAILQ_HEAD(px_client_list, px_client);

struct px_worker {
    unsigned id;
    const struct cfg *cfg;   /* borrowed */
    struct event_base *base; /* owned */
    pthread_t thread;
    bool started;
    struct pool_cluster **pools;    /* owned: one per cfg->clusters[i], NULL when unused */
    struct pool_handler *handlers;  /* owned: one per cluster */
    struct px_listener **listeners; /* owned: one per cfg->listeners[i] */
    struct px_client_list live;
    struct px_client_list dead;
    struct event *reaper;        /* owned */
    int stopfd;                  /* owned: an eventfd the main thread writes to stop the loop */
    struct event *stop;          /* owned */
    int syncfd;                  /* owned: an eventfd the main thread writes when health changed */
    struct event *sync;          /* owned */
    struct pool_health **health; /* borrowed: per cluster, the main thread's */
    struct evbuffer *scratch;    /* owned: re-framing space */
    struct px_cmd cmd;           /* a resp request's arguments, reused */
    char **setup;          /* owned: per cluster, resp setup bytes (pool_handler hello/reset) */
    struct px_req **cache; /* owned: spare requests */
    size_t ncache;
};

/* ---- the pool's view of proxy/: codecs and the owners of requests ---- */

ssize_t
px_worker_frame(const void *arg, struct evbuffer *in, void *state, const char **why)
{
    return px_codec_frame(arg, in, state, why);
}

/* A setup reply (AUTH, SELECT, RESET) is fine unless it is an error. */
static int
reply_ok(const void *arg, struct evbuffer *in, size_t len)
{
    unsigned char type = 0;

    (void)arg;
    if (len == 0 || evbuffer_copyout(in, &type, 1) != 1) {
        return -1;
    }
    if (type == '>') {
        return POOL_SETUP_SKIP; /* a RESP3 push (tracking) ahead of RESET's reply */
    }
    return type != '-' && type != '!' ? 0 : -1;
}

static void
on_failure(struct pool_req *pr, enum pool_result result)
{
    if (pr->exclusive) {
        px_relay_on_failure(pr, (int)result);
    } else {
        px_session_on_failure(pr, (int)result);
    }
}

static void
on_pool_event(void *arg, const struct pool_cluster *c, const char *server, enum pool_event ev,
              const char *detail)
{
    struct px_log_ctx ctx = {.cluster = pool_cluster_name(c), .server = server};
    const struct px_worker *w = arg;

    switch (ev) {
    case POOL_EV_CONNECT_FAILED:
        px_log_warn("pool", &ctx, "worker %u: connect failed: %s", w->id,
                    detail != NULL ? detail : "?");
        break;
    case POOL_EV_CONN_LOST:
        px_log_warn("pool", &ctx, "worker %u: connection lost with requests on it: %s", w->id,
                    detail != NULL ? detail : "?");
        break;
    case POOL_EV_SERVER_UP:
        px_log_info("pool", &ctx, "worker %u: connected again", w->id);
        break;
    }
}

/* ---- addresses ---- */

static int
resolve(const struct cfg_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    if (a->kind == CFG_ADDR_IPV4 || a->kind == CFG_ADDR_IPV6) {
        *ss = a->sa;
        *len = a->salen;
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (a->kind == CFG_ADDR_ANY) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        int probe = socket(AF_INET6, SOCK_STREAM, 0);

        if (probe != -1) { /* [::] with IPV6_V6ONLY off takes IPv4 too */
            close(probe);
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = in6addr_any;
            sin6->sin6_port = htons(a->port);
            *len = sizeof(*sin6);
        } else {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;

            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
            sin->sin_port = htons(a->port);
            *len = sizeof(*sin);
        }
        return 0;
    }
    /* A name: resolved once here, at start, before any event loop runs. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(a->host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        px_log_error("worker", NULL, "cannot resolve %s: %s", a->host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(a->port);
    } else {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(a->port);
    }
    freeaddrinfo(res);
    return 0;
}

static int
make_pool(struct px_worker *w, size_t i)
{
    const struct cfg_cluster *cc = &w->cfg->clusters[i];
    struct pool_handler *h = &w->handlers[i];

    h->response = px_session_on_response;
    h->failure = on_failure;
    h->leased = px_relay_on_leased;
    h->event = on_pool_event;
    h->frame = px_worker_frame;
    h->frame_arg = &cc->codec;
    h->arg = w;
    if (cc->codec.type == CFG_CODEC_RESP) {
        h->pinned = px_resp_on_pinned;
        h->pin_lost = px_resp_on_pin_lost;
        h->pin_drained = px_resp_on_pin_drained;
        h->reply_ok = reply_ok;
        if (px_resp_setup(cc, h, &w->setup[i]) == -1) {
            return -1;
        }
    }
    w->pools[i] = pool_cluster_new(w->base, cc, w->health[i], h);
    return w->pools[i] != NULL ? 0 : -1;
}

/* ---- clients ---- */

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    struct px_client *c;

    (void)fd;
    (void)what;
    while ((c = TAILQ_FIRST(&w->dead)) != NULL) {
        TAILQ_REMOVE(&w->dead, c, link);
        c->free(c);
    }
}

void
px_worker_add_client(struct px_worker *w, struct px_client *c)
{
    TAILQ_INSERT_TAIL(&w->live, c, link);
}

void
px_worker_reap(struct px_worker *w, struct px_client *c)
{
    TAILQ_REMOVE(&w->live, c, link);
    TAILQ_INSERT_TAIL(&w->dead, c, link);
    event_active(w->reaper, EV_TIMEOUT, 0);
}

struct px_req *
px_worker_req_get(struct px_worker *w)
{
    struct px_req *req;

    if (w->ncache > 0) {
        return w->cache[--w->ncache];
    }
    req = malloc(px_req_size());
    if (req == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        abort();
    }
    px_req_init(req, w);
    return req;
}

void
px_worker_req_put(struct px_worker *w, struct px_req *req)
{
    if (w->ncache < REQ_CACHE_MAX) {
        w->cache[w->ncache++] = req;
        return;
    }
    px_req_deinit(req);
    free(req);
}

/* ---- the worker ---- */

/* The main thread asked to stop: the only cross-thread touch, so bases need no locks. */
static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;

    (void)fd;
    (void)what;
    event_base_loopexit(w->base, NULL);
}

/* The main thread changed a server's health: every pool catches up. */
static void
on_sync(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    uint64_t n;
    size_t i;

    (void)what;
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN) {
        px_log_warn("worker", NULL, "worker %u: cannot read the health wake-up: %s", w->id,
                    strerror(errno));
    }
    for (i = 0; i < w->cfg->nclusters; i++) {
        if (w->pools[i] != NULL) {
            pool_cluster_sync(w->pools[i]);
        }
    }
}

void
px_worker_poke(struct px_worker *w)
{
    uint64_t one = 1;

    if (write(w->syncfd, &one, sizeof(one)) == -1) {
        px_log_warn("worker", NULL, "worker %u: cannot wake it for a health change: %s", w->id,
                    strerror(errno));
    }
}

bool
px_worker_cluster_used(const struct cfg *cfg, const struct cfg_cluster *c)
{
    size_t i;

    for (i = 0; i < cfg->nlisteners; i++) {
        if (cfg->listeners[i].cluster == c) {
            return true;
        }
    }
    return false;
}

struct px_worker *
px_worker_new(const struct cfg *cfg, unsigned id, atomic_uint *clients, struct pool_health **health)
{
    struct px_worker *w = calloc(1, sizeof(*w));
    size_t i;

    if (w == NULL) {
        return NULL;
    }
    w->id = id;
    w->cfg = cfg;
    w->health = health;
    w->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->syncfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    TAILQ_INIT(&w->live);
    TAILQ_INIT(&w->dead);
    w->base = event_base_new();
    w->pools = calloc(cfg->nclusters + 1, sizeof(*w->pools));
    w->handlers = calloc(cfg->nclusters + 1, sizeof(*w->handlers));
    w->setup = calloc(cfg->nclusters + 1, sizeof(*w->setup));
    w->listeners = calloc(cfg->nlisteners + 1, sizeof(*w->listeners));
    w->cache = calloc(REQ_CACHE_MAX, sizeof(*w->cache));
    w->scratch = evbuffer_new();
    if (w->base == NULL || w->pools == NULL || w->handlers == NULL || w->setup == NULL ||
        w->listeners == NULL || w->cache == NULL || w->scratch == NULL || w->stopfd == -1 ||
        w->syncfd == -1 || (w->reaper = event_new(w->base, -1, 0, on_reap, w)) == NULL ||
        (w->stop = event_new(w->base, w->stopfd, EV_READ, on_stop, w)) == NULL ||
        (w->sync = event_new(w->base, w->syncfd, EV_READ | EV_PERSIST, on_sync, w)) == NULL ||
        event_add(w->stop, NULL) == -1 || event_add(w->sync, NULL) == -1) {
        goto fail;
    }
    for (i = 0; i < cfg->nclusters; i++) {
        if (px_worker_cluster_used(cfg, &cfg->clusters[i]) && make_pool(w, i) == -1) {
            goto fail;
        }
    }
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *lc = &cfg->listeners[i];
        struct sockaddr_storage ss;
        socklen_t len;

        if (resolve(&lc->bind, &ss, &len) == -1) {
            goto fail;
        }
        w->listeners[i] =
            px_listener_new(w, lc, &ss, len, w->pools[lc->cluster - cfg->clusters], &clients[i]);
        if (w->listeners[i] == NULL) {
            goto fail;
        }
    }
    return w;
fail:
    px_worker_free(w);
    return NULL;
}

static void *
worker_main(void *arg)
{
    struct px_worker *w = arg;
    size_t i;

    for (i = 0; i < w->cfg->nclusters; i++) {
        if (w->pools[i] != NULL) {
            pool_cluster_start(w->pools[i]);
        }
    }
    for (i = 0; i < w->cfg->nlisteners; i++) {
        if (px_listener_enable(w->listeners[i]) == -1) {
            px_log_error("worker", NULL, "worker %u: cannot watch listener %s", w->id,
                         w->cfg->listeners[i].name);
        }
    }
    if (event_base_dispatch(w->base) == -1) {
        px_log_error("worker", NULL, "worker %u: event loop failed", w->id);
    }
    return NULL;
}

int
px_worker_start(struct px_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);

    if (rc != 0) {
        px_log_error("worker", NULL, "cannot start worker %u: %s", w->id, strerror(rc));
        return -1;
    }
    w->started = true;
    return 0;
}

void
px_worker_stop(struct px_worker *w)
{
    if (w->started) {
        uint64_t one = 1;

        while (write(w->stopfd, &one, sizeof(one)) == -1 && errno == EINTR) {
        }
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void
px_worker_free(struct px_worker *w)
{
    struct px_client *c;
    size_t i;

    if (w == NULL) {
        return;
    }
    px_worker_stop(w);
    while ((c = TAILQ_FIRST(&w->live)) != NULL) {
        c->close(c, "shutting down");
    }
    for (i = 0; w->listeners != NULL && i < w->cfg->nlisteners; i++) {
        px_listener_free(w->listeners[i]);
    }
    for (i = 0; w->pools != NULL && i < w->cfg->nclusters; i++) {
        pool_cluster_free(w->pools[i]); /* orphaned requests come back to the cache */
    }
    if (w->reaper != NULL) {
        on_reap(-1, 0, w);
        event_free(w->reaper);
    }
    if (w->stop != NULL) {
        event_free(w->stop);
    }
    if (w->stopfd != -1) {
        close(w->stopfd);
    }
    if (w->sync != NULL) {
        event_free(w->sync);
    }
    if (w->syncfd != -1) {
        close(w->syncfd);
    }
    while (w->ncache > 0) {
        struct px_req *req = w->cache[--w->ncache];

        px_req_deinit(req);
        free(req);
    }
    if (w->scratch != NULL) {
        evbuffer_free(w->scratch);
    }
    px_cmd_deinit(&w->cmd);
    for (i = 0; w->setup != NULL && i < w->cfg->nclusters; i++) {
        free(w->setup[i]); /* after the pools that used it */
    }
    free(w->setup);
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    free(w->cache);
    free(w->listeners);
    free(w->handlers);
    free(w->pools);
    free(w);
}

void
px_worker_log_stats(const struct px_worker *w)
{
    size_t i;

    for (i = 0; i < w->cfg->nlisteners && w->listeners[i] != NULL; i++) {
        const struct px_listener_stats *st = px_listener_stats(w->listeners[i]);
        struct px_log_ctx ctx = {.listener = w->cfg->listeners[i].name};

        px_log_info(
            "stats", &ctx,
            "worker %u: accepted=%llu rejected=%llu accept_errors=%llu frames_in=%llu "
            "frames_out=%llu bytes_in=%llu bytes_out=%llu bad_frames=%llu "
            "idle_timeouts=%llu read_timeouts=%llu request_timeouts=%llu "
            "write_timeouts=%llu upstream_failures=%llu rejected_commands=%llu",
            w->id, (unsigned long long)st->accepted, (unsigned long long)st->rejected,
            (unsigned long long)st->accept_errors, (unsigned long long)st->frames_in,
            (unsigned long long)st->frames_out, (unsigned long long)st->bytes_in,
            (unsigned long long)st->bytes_out, (unsigned long long)st->bad_frames,
            (unsigned long long)st->idle_timeouts, (unsigned long long)st->read_timeouts,
            (unsigned long long)st->request_timeouts, (unsigned long long)st->write_timeouts,
            (unsigned long long)st->upstream_failures, (unsigned long long)st->rejected_commands);
    }
    for (i = 0; i < w->cfg->nclusters; i++) {
        const struct pool_stats *ps;
        struct px_log_ctx ctx = {.cluster = w->cfg->clusters[i].name};

        if (w->pools[i] == NULL) {
            continue;
        }
        ps = pool_cluster_stats(w->pools[i]);
        px_log_info(
            "stats", &ctx,
            "worker %u: conns_opened=%llu conns_max=%llu connect_failures=%llu "
            "requests=%llu responses=%llu retries=%llu queued=%llu leases=%llu "
            "canceled=%llu pins=%llu unpin_resets=%llu failed_upstream=%llu "
            "failed_timeout=%llu failed_queue=%llu failed_unhealthy=%llu",
            w->id, (unsigned long long)ps->conns_opened, (unsigned long long)ps->max_conns_seen,
            (unsigned long long)ps->connect_failures, (unsigned long long)ps->requests,
            (unsigned long long)ps->responses, (unsigned long long)ps->retries,
            (unsigned long long)ps->queued, (unsigned long long)ps->leases,
            (unsigned long long)ps->canceled, (unsigned long long)ps->pins,
            (unsigned long long)ps->unpin_resets,
            (unsigned long long)(ps->failed[POOL_UPSTREAM_ERROR] + ps->failed[POOL_MALFORMED] +
                                 ps->failed[POOL_CONNECT_FAILED] + ps->failed[POOL_REFUSED]),
            (unsigned long long)ps->failed[POOL_TIMEOUT],
            (unsigned long long)(ps->failed[POOL_QUEUE_FULL] + ps->failed[POOL_QUEUE_TIMEOUT]),
            (unsigned long long)ps->failed[POOL_UNHEALTHY]);
    }
}

struct event_base *
px_worker_base(struct px_worker *w)
{
    return w->base;
}

struct pool_cluster *
px_worker_pool(struct px_worker *w, const char *cluster)
{
    size_t i;

    for (i = 0; i < w->cfg->nclusters; i++) {
        if (w->pools[i] != NULL && strcmp(w->cfg->clusters[i].name, cluster) == 0) {
            return w->pools[i];
        }
    }
    return NULL;
}

struct px_cmd *
px_worker_cmd(struct px_worker *w)
{
    return &w->cmd;
}

struct evbuffer *
px_worker_scratch(struct px_worker *w)
{
    return w->scratch;
}

unsigned
px_worker_id(const struct px_worker *w)
{
    return w->id;
}
