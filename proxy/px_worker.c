#include "px_worker.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "pool/pool_health.h"
#include "proxy/codec/px_codec.h"
#include "proxy/codec/px_resp_cmd.h"
#include "proxy/px_budget.h"
#include "proxy/px_gen.h"
#include "proxy/px_listener.h"
#include "proxy/px_log.h"
#include "proxy/px_relay.h"
#include "proxy/px_resp.h"
#include "proxy/px_session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
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

/* A pool of this worker: shared by the generations and listeners that use it. */
struct wpool {
    TAILQ_ENTRY(wpool) link;   /* the worker's pools */
    struct pool_cluster *pool; /* owned */
    struct pool_handler handler;
    char *setup;                  /* owned: resp setup bytes (pool_handler hello/reset) */
    struct pool_health *health;   /* held (pool_health_hold) */
    struct px_gen *gen;           /* ref: where its cfg_cluster lives */
    const struct cfg_cluster *cc; /* borrowed from gen */
    unsigned refs;                /* the current generation, plus one per listener */
    bool draining;                /* no reference left, requests still on it: freed once idle */
};

/* A listener of this worker, current or draining (retired with clients left). */
struct wlistener {
    TAILQ_ENTRY(wlistener) link; /* the worker's retired listeners */
    struct px_listener *l;       /* owned */
    struct wpool *pool;          /* ref */
    struct px_gen *gen;          /* ref: where its cfg_listener lives */
};

TAILQ_HEAD(wpool_list, wpool);
TAILQ_HEAD(wlistener_list, wlistener);

struct px_worker {
    unsigned id;
    struct event_base *base; /* owned */
    pthread_t thread;
    bool started;
    struct px_gen *gen;            /* ref: the generation new clients get; NULL before the first */
    struct wpool **pools;          /* per gen->cfg cluster: a ref, NULL when unused */
    struct wlistener **listeners;  /* per gen->cfg listener: owned */
    struct wpool_list allpools;    /* every pool alive */
    struct wlistener_list retired; /* replaced listeners whose clients go on */
    struct wlistener_list drained; /* retired listeners with no client left: freed by the reaper */
    struct px_client_list live;
    struct px_client_list dead;
    struct event *reaper;     /* owned */
    struct event *pool_drain; /* owned: looks at draining pools until they are idle */
    bool freeing;             /* px_worker_free(): pools go at once */
    int stopfd;               /* owned: an eventfd the main thread writes to stop the loop */
    struct event *stop;       /* owned */
    int syncfd;               /* owned: an eventfd the main thread writes when health changed */
    struct event *sync;       /* owned */
    int ctlfd;                /* owned: an eventfd the main thread writes with a plan or a drain */
    struct event *ctl;        /* owned */
    int notifyfd; /* borrowed: the main thread's, written when a plan or a drain is done */
    _Atomic(const struct px_plan *) next; /* posted by the main thread, taken by the worker */
    atomic_uint applied;                  /* the generation of the last plan taken */
    atomic_bool drain_asked;
    atomic_bool retired_all; /* draining: no listener watches a socket any more */
    atomic_uint nclients;    /* sessions and relays alive */
    bool draining;
    struct evbuffer *scratch; /* owned: re-framing space */
    struct px_cmd cmd;        /* a resp request's arguments, reused */
    struct px_req **cache;    /* owned: spare requests */
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
    struct px_log_ctx ctx = {.cluster = pool_cluster_name(c),
                             .server = server,
                             .server_name = px_log_server_name(pool_cluster_cfg(c), server)};
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

/* ---- pools and listeners across generations ---- */

#define POOL_DRAIN_CHECK_MS 100

static void
wpool_free(struct px_worker *w, struct wpool *wp)
{
    struct px_log_ctx ctx = {.cluster = wp->cc->name};

    px_log_debug("pool", &ctx, "worker %u: pool of generation %u closed", w->id, wp->gen->number);
    TAILQ_REMOVE(&w->allpools, wp, link);
    pool_cluster_free(wp->pool); /* orphaned requests come back to the cache */
    free(wp->setup);             /* after the pool that used it */
    pool_health_release(wp->health);
    px_gen_unref(wp->gen);
    free(wp);
}

/* Free the pools that no one references and that have nothing on them any more. */
static void
on_pool_drain(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tv = {0, POOL_DRAIN_CHECK_MS * 1000};
    struct px_worker *w = arg;
    struct wpool *wp, *next;
    bool waiting = false;

    (void)fd;
    (void)what;
    for (wp = TAILQ_FIRST(&w->allpools); wp != NULL; wp = next) {
        next = TAILQ_NEXT(wp, link);
        if (!wp->draining) {
            continue;
        }
        if (pool_cluster_idle(wp->pool)) {
            wpool_free(w, wp);
        } else {
            waiting = true;
        }
    }
    if (waiting && evtimer_add(w->pool_drain, &tv) == -1) {
        px_log_warn("worker", NULL, "worker %u: cannot arm the timer that closes drained pools",
                    w->id);
    }
}

/*
 * Drop a reference. The last one frees the pool, or, while requests are on
 * it (clients a reload moved to a new pool, orphans), leaves it draining.
 */
static void
wpool_unref(struct px_worker *w, struct wpool *wp)
{
    if (wp == NULL || --wp->refs > 0) {
        return;
    }
    if (w->freeing || pool_cluster_idle(wp->pool)) {
        wpool_free(w, wp);
        return;
    }
    if (!wp->draining) {
        struct px_log_ctx ctx = {.cluster = wp->cc->name};

        px_log_debug("pool", &ctx, "worker %u: pool of generation %u draining", w->id,
                     wp->gen->number);
    }
    wp->draining = true;
    if (!evtimer_pending(w->pool_drain, NULL)) {
        on_pool_drain(-1, 0, w);
    }
}

static struct wpool *
wpool_new(struct px_worker *w, struct px_gen *gen, size_t i, const struct px_plan *p)
{
    const struct cfg_cluster *cc = &gen->cfg->clusters[i];
    struct wpool *wp = calloc(1, sizeof(*wp));
    struct pool_handler *h;

    if (wp == NULL) {
        return NULL;
    }
    h = &wp->handler;
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
        if (px_resp_setup(cc, h, &wp->setup) == -1) {
            free(wp);
            return NULL;
        }
    }
    wp->pool = pool_cluster_new(w->base, cc, p->health[i], h, p->pstats[i]);
    if (wp->pool == NULL) {
        free(wp->setup);
        free(wp);
        return NULL;
    }
    wp->health = p->health[i];
    pool_health_hold(wp->health);
    wp->gen = px_gen_ref(gen);
    wp->cc = cc;
    wp->refs = 1;
    TAILQ_INSERT_TAIL(&w->allpools, wp, link);
    return wp;
}

/* The pool a plan's cluster i gets: the one already built on the same shared health, or new. */
static struct wpool *
wpool_for(struct px_worker *w, const struct px_plan *p, size_t i, bool *made)
{
    struct wpool *wp;

    *made = false;
    if (p->health[i] == NULL) {
        return NULL; /* no listener uses it */
    }
    TAILQ_FOREACH(wp, &w->allpools, link)
    {
        if (wp->health == p->health[i]) {
            wp->draining = false; /* back in use before it was idle */
            wp->refs++;
            return wp;
        }
    }
    wp = wpool_new(w, p->gen, i, p);
    *made = wp != NULL;
    return wp;
}

static void
listener_free(struct px_worker *w, struct wlistener *wl)
{
    px_listener_free(wl->l);
    wpool_unref(w, wl->pool);
    px_gen_unref(wl->gen);
    free(wl);
}

static struct wlistener *
listener_new(struct px_worker *w, const struct px_plan *p, size_t i, struct wpool *wp)
{
    const struct cfg_listener *lc = &p->gen->cfg->listeners[i];
    struct wlistener *wl = calloc(1, sizeof(*wl));

    if (wl == NULL) {
        return NULL;
    }
    wl->l = px_listener_new(w, lc, p->fds[i], wp->pool, p->clients[i], p->lstats[i]);
    if (wl->l == NULL) {
        free(wl);
        return NULL;
    }
    wl->pool = wp;
    wp->refs++;
    wl->gen = px_gen_ref(p->gen);
    return wl;
}

/* Stop a listener accepting; free it now if no client is left, else when the last one ends. */
static void
listener_retire(struct px_worker *w, struct wlistener *wl)
{
    px_listener_retire(wl->l);
    if (px_listener_clients(wl->l) == 0) {
        listener_free(w, wl);
    } else {
        TAILQ_INSERT_TAIL(&w->retired, wl, link);
    }
}

void
px_worker_listener_drained(struct px_worker *w, struct px_listener *l)
{
    struct wlistener *wl;

    TAILQ_FOREACH(wl, &w->retired, link)
    {
        if (wl->l == l) {
            TAILQ_REMOVE(&w->retired, wl, link);
            TAILQ_INSERT_TAIL(&w->drained, wl, link);
            event_active(w->reaper, EV_TIMEOUT, 0); /* its caller still uses it */
            return;
        }
    }
}

/*
 * Whether the clients of a listener whose pool serves cluster a may send their
 * next requests to a pool of b: the same cluster, and nothing a session has
 * read from a (framing, whether keys are sharded, the db it emulates SELECT
 * against) changed. Servers, pool sizes, timeouts and health may: a sharded
 * session takes the new pool's key map when it next routes (px_resp.c).
 */
static bool
clients_can_move(const struct cfg_cluster *a, const struct cfg_cluster *b)
{
    return strcmp(a->name, b->name) == 0 && cfg_codec_equal(&a->codec, &b->codec) &&
           (a->balance == CFG_BALANCE_HASH) == (b->balance == CFG_BALANCE_HASH) &&
           a->resp.db == b->resp.db;
}

/* Point a listener's clients at the new pool of their cluster, when they may move. */
static void
move_clients(struct px_worker *w, struct wlistener *wl, const struct cfg *cfg, struct wpool **pools)
{
    struct wpool *old = wl->pool;
    size_t i;

    for (i = 0; i < cfg->nclusters; i++) {
        if (pools[i] != NULL && pools[i] != old && clients_can_move(old->cc, pools[i]->cc)) {
            px_listener_set_pool(wl->l, pools[i]->pool);
            pools[i]->refs++;
            wl->pool = pools[i];
            wpool_unref(w, old); /* drains: requests still on it finish there */
            return;
        }
    }
}

/* Drop the current generation: its listeners retire, its pools lose its reference. */
static void
gen_release(struct px_worker *w)
{
    size_t i;

    if (w->gen == NULL) {
        return;
    }
    for (i = 0; i < w->gen->cfg->nlisteners; i++) {
        if (w->listeners[i] != NULL) {
            listener_retire(w, w->listeners[i]);
        }
    }
    for (i = 0; i < w->gen->cfg->nclusters; i++) {
        wpool_unref(w, w->pools[i]);
    }
    free(w->listeners);
    free(w->pools);
    w->listeners = NULL;
    w->pools = NULL;
    px_gen_unref(w->gen);
    w->gen = NULL;
}

/*
 * Serve plan p from now on: a cluster whose shared health carried over keeps
 * its pool (and its warm connections); others get new pools. Listeners are
 * new objects on the plan's sockets, which are the old ones for an unchanged
 * address, so no connection is refused; the old listeners stop accepting,
 * their clients keep their listener settings and move to the new pool of
 * their cluster when they can (move_clients). On failure nothing changes.
 */
static int
apply(struct px_worker *w, const struct px_plan *p)
{
    const struct cfg *cfg = p->gen->cfg;
    struct wpool **pools = calloc(cfg->nclusters + 1, sizeof(*pools));
    struct wlistener **listeners = calloc(cfg->nlisteners + 1, sizeof(*listeners));
    bool *made = calloc(cfg->nclusters + 1, sizeof(*made));
    struct wlistener *wl;
    size_t i;

    if (pools == NULL || listeners == NULL || made == NULL) {
        goto fail;
    }
    for (i = 0; i < cfg->nclusters; i++) {
        pools[i] = wpool_for(w, p, i, &made[i]);
        if (pools[i] == NULL && p->health[i] != NULL) {
            goto fail;
        }
    }
    for (i = 0; i < cfg->nlisteners; i++) {
        listeners[i] = listener_new(w, p, i, pools[cfg->listeners[i].cluster - cfg->clusters]);
        if (listeners[i] == NULL) {
            goto fail;
        }
    }
    for (i = 0; w->gen != NULL && i < w->gen->cfg->nlisteners; i++) {
        move_clients(w, w->listeners[i], cfg, pools);
    }
    TAILQ_FOREACH(wl, &w->retired, link)
    {
        move_clients(w, wl, cfg, pools);
    }
    gen_release(w);
    w->gen = px_gen_ref(p->gen);
    w->pools = pools;
    w->listeners = listeners;
    for (i = 0; i < cfg->nclusters; i++) {
        if (made[i] && w->started) {
            pool_cluster_start(pools[i]->pool); /* else when the thread starts */
        }
    }
    for (i = 0; i < cfg->nlisteners && w->started; i++) {
        if (px_listener_enable(listeners[i]->l) == -1) {
            px_log_error("worker", NULL, "worker %u: cannot watch listener %s", w->id,
                         cfg->listeners[i].name);
        }
    }
    free(made);
    return 0;
fail:
    for (i = 0; listeners != NULL && i < cfg->nlisteners; i++) {
        if (listeners[i] != NULL) {
            listener_free(w, listeners[i]);
        }
    }
    for (i = 0; pools != NULL && i < cfg->nclusters; i++) {
        wpool_unref(w, pools[i]);
    }
    free(listeners);
    free(pools);
    free(made);
    px_log_error("worker", NULL, "worker %u: cannot apply generation %u: out of memory", w->id,
                 p->gen->number);
    return -1;
}

/* ---- clients ---- */

static void
notify_main(struct px_worker *w)
{
    uint64_t one = 1;

    if (write(w->notifyfd, &one, sizeof(one)) == -1 && errno != EAGAIN) {
        px_log_warn("worker", NULL, "worker %u: cannot wake the main thread: %s", w->id,
                    strerror(errno));
    }
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    struct px_client *c;
    struct wlistener *wl;

    (void)fd;
    (void)what;
    while ((c = TAILQ_FIRST(&w->dead)) != NULL) {
        TAILQ_REMOVE(&w->dead, c, link);
        c->free(c);
        if (atomic_fetch_sub_explicit(&w->nclients, 1, memory_order_relaxed) == 1 && w->draining) {
            notify_main(w); /* the last client of a drain */
        }
    }
    while ((wl = TAILQ_FIRST(&w->drained)) != NULL) {
        TAILQ_REMOVE(&w->drained, wl, link);
        listener_free(w, wl);
    }
}

void
px_worker_add_client(struct px_worker *w, struct px_client *c)
{
    TAILQ_INSERT_TAIL(&w->live, c, link);
    atomic_fetch_add_explicit(&w->nclients, 1, memory_order_relaxed);
    if (w->draining) {
        c->drain(c); /* accepted in the same turn the drain began */
    }
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
    struct wpool *wp;
    uint64_t n;

    (void)what;
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN) {
        px_log_warn("worker", NULL, "worker %u: cannot read the health wake-up: %s", w->id,
                    strerror(errno));
    }
    TAILQ_FOREACH(wp, &w->allpools, link)
    {
        pool_cluster_sync(wp->pool);
    }
}

/* Stop accepting; every client finishes what it sent and then closes (or closes now, idle). */
static void
drain(struct px_worker *w)
{
    struct px_client *c, *next;

    if (w->draining) {
        return;
    }
    w->draining = true;
    gen_release(w); /* its listeners stop accepting; pools stay while clients use them */
    atomic_store(&w->retired_all, true);
    notify_main(w); /* the main thread may close the listening sockets now */
    for (c = TAILQ_FIRST(&w->live); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        c->drain(c); /* may close it: it moves to the dead list */
    }
}

/* The main thread posted a plan or asked for a drain. */
static void
on_ctl(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    const struct px_plan *p;
    uint64_t n;

    (void)what;
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN) {
        px_log_warn("worker", NULL, "worker %u: cannot read the control wake-up: %s", w->id,
                    strerror(errno));
    }
    p = atomic_exchange_explicit(&w->next, NULL, memory_order_acquire);
    if (p != NULL) { /* draining: taken, not applied (its sockets are about to close) */
        if (!w->draining && apply(w, p) == -1) {
            /* Only memory can fail it, and half the workers on the new sockets and half on
             * the old would leave some connections unaccepted: like every allocation, fatal. */
            abort();
        }
        atomic_store(&w->applied, p->gen->number);
        notify_main(w);
    }
    if (atomic_load(&w->drain_asked)) {
        drain(w);
    }
}

static int
post(struct px_worker *w)
{
    uint64_t one = 1;

    while (write(w->ctlfd, &one, sizeof(one)) == -1) {
        if (errno != EINTR) {
            px_log_error("worker", NULL, "cannot wake worker %u: %s", w->id, strerror(errno));
            return -1;
        }
    }
    return 0;
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

int
px_worker_apply(struct px_worker *w, const struct px_plan *p)
{
    px_budget_set(p->gen->cfg);
    if (!w->started) {
        return apply(w, p);
    }
    atomic_store_explicit(&w->next, p, memory_order_release);
    return post(w);
}

unsigned
px_worker_applied(const struct px_worker *w)
{
    return atomic_load(&w->applied);
}

int
px_worker_drain(struct px_worker *w)
{
    atomic_store(&w->drain_asked, true);
    return post(w);
}

bool
px_worker_draining(const struct px_worker *w)
{
    return atomic_load(&w->retired_all);
}

unsigned
px_worker_clients(const struct px_worker *w)
{
    return atomic_load_explicit(&w->nclients, memory_order_relaxed);
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

static struct event *
watch_fd(struct px_worker *w, int fd, event_callback_fn fn)
{
    struct event *ev = event_new(w->base, fd, EV_READ | EV_PERSIST, fn, w);

    if (ev != NULL && event_add(ev, NULL) == -1) {
        event_free(ev);
        return NULL;
    }
    return ev;
}

struct px_worker *
px_worker_new(unsigned id, int notifyfd)
{
    struct px_worker *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    w->id = id;
    w->notifyfd = notifyfd;
    w->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->syncfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->ctlfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    TAILQ_INIT(&w->allpools);
    TAILQ_INIT(&w->retired);
    TAILQ_INIT(&w->drained);
    TAILQ_INIT(&w->live);
    TAILQ_INIT(&w->dead);
    w->base = event_base_new();
    w->cache = calloc(REQ_CACHE_MAX, sizeof(*w->cache));
    w->scratch = evbuffer_new();
    if (w->base == NULL || w->cache == NULL || w->scratch == NULL || w->stopfd == -1 ||
        w->syncfd == -1 || w->ctlfd == -1 ||
        (w->reaper = event_new(w->base, -1, 0, on_reap, w)) == NULL ||
        (w->pool_drain = evtimer_new(w->base, on_pool_drain, w)) == NULL ||
        (w->stop = watch_fd(w, w->stopfd, on_stop)) == NULL ||
        (w->sync = watch_fd(w, w->syncfd, on_sync)) == NULL ||
        (w->ctl = watch_fd(w, w->ctlfd, on_ctl)) == NULL) {
        px_worker_free(w);
        return NULL;
    }
    return w;
}

static void *
worker_main(void *arg)
{
    struct px_worker *w = arg;
    struct wpool *wp;
    size_t i;

    TAILQ_FOREACH(wp, &w->allpools, link)
    {
        pool_cluster_start(wp->pool);
    }
    for (i = 0; w->gen != NULL && i < w->gen->cfg->nlisteners; i++) {
        if (px_listener_enable(w->listeners[i]->l) == -1) {
            px_log_error("worker", NULL, "worker %u: cannot watch listener %s", w->id,
                         w->gen->cfg->listeners[i].name);
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
    int rc;

    w->started = true; /* before the thread: apply() from here on is the thread's */
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        w->started = false;
        px_log_error("worker", NULL, "cannot start worker %u: %s", w->id, strerror(rc));
        return -1;
    }
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
    struct wlistener *wl;
    struct wpool *wp;

    if (w == NULL) {
        return;
    }
    px_worker_stop(w);
    w->freeing = true;
    while ((c = TAILQ_FIRST(&w->live)) != NULL) {
        c->close(c, "shutting down");
    }
    if (w->reaper != NULL) {
        on_reap(-1, 0, w); /* the clients, then listeners they drained */
    }
    gen_release(w);
    while ((wl = TAILQ_FIRST(&w->retired)) != NULL) { /* only if a client could not be freed */
        TAILQ_REMOVE(&w->retired, wl, link);
        listener_free(w, wl);
    }
    while ((wp = TAILQ_FIRST(&w->allpools)) != NULL) { /* draining ones */
        wpool_free(w, wp);
    }
    if (w->pool_drain != NULL) {
        event_free(w->pool_drain);
    }
    if (w->reaper != NULL) {
        event_free(w->reaper);
    }
    if (w->stop != NULL) {
        event_free(w->stop);
    }
    if (w->sync != NULL) {
        event_free(w->sync);
    }
    if (w->ctl != NULL) {
        event_free(w->ctl);
    }
    if (w->stopfd != -1) {
        close(w->stopfd);
    }
    if (w->syncfd != -1) {
        close(w->syncfd);
    }
    if (w->ctlfd != -1) {
        close(w->ctlfd);
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
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    free(w->cache);
    free(w);
}

struct event_base *
px_worker_base(struct px_worker *w)
{
    return w->base;
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
