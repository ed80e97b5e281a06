#include "px_listener.h"
#include "config/cfg.h"
#include "pool/pool_stat.h"
#include "proxy/px_log.h"
#include "proxy/px_relay.h"
#include "proxy/px_session.h"
#include "proxy/px_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKEUP 64 /* then let the other events of the loop run */
#define ACCEPT_PAUSE_MS 100   /* after EMFILE and friends */

struct px_listener {
    const struct cfg_listener *cfg; /* borrowed */
    struct px_worker *w;            /* borrowed */
    struct pool_cluster *pool; /* borrowed: the pool new requests go to (a reload may move it) */
    atomic_uint *clients;      /* borrowed: this listener's clients, all workers */
    struct px_listener_stats *stats; /* borrowed: the worker's block for this listener's name */
    int fd;                          /* borrowed: the server's socket, shared across reloads */
    struct event ev;
    struct event pause;
    time_t last_error_log;
    unsigned nclients; /* sessions and relays of this listener, alive */
    unsigned gen;      /* px_listener_set_pool() calls: which pool a client last followed */
    bool reframe;      /* the cluster frames differently: every frame is re-framed both ways */
    bool retired;      /* a reload replaced it: it accepts no more, its clients finish */
};

static bool
accept_exhausted(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void
on_pause_end(evutil_socket_t fd, short what, void *arg)
{
    struct px_listener *l = arg;

    (void)fd;
    (void)what;
    px_listener_enable(l);
}

/* Out of descriptors or memory: stop accepting for a moment rather than spin. */
static void
pause_accepting(struct px_listener *l, int err)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    time_t now = time(NULL);

    POOL_STAT_INC(l->stats->accept_errors);
    if (now != l->last_error_log) {
        struct px_log_ctx ctx = {.listener = l->cfg->name};

        l->last_error_log = now;
        px_log_error("listener", &ctx, "accept failed: %s; pausing accepts for %d ms (%llu so far)",
                     strerror(err), ACCEPT_PAUSE_MS,
                     (unsigned long long)POOL_STAT_GET(l->stats->accept_errors));
    }
    event_del(&l->ev);
    event_add(&l->pause, &tv);
}

static void
serve(struct px_listener *l, int fd)
{
    int one = 1;

    if (atomic_fetch_add_explicit(l->clients, 1, memory_order_relaxed) >= l->cfg->max_clients) {
        atomic_fetch_sub_explicit(l->clients, 1, memory_order_relaxed);
        POOL_STAT_INC(l->stats->rejected);
        close(fd);
        return;
    }
    POOL_STAT_INC(l->stats->accepted);
    POOL_STAT_INC(l->stats->active);
    l->nclients++;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (l->cfg->codec.type == CFG_CODEC_RAW) {
        px_relay_start(l, fd);
    } else {
        px_session_start(l, fd);
    }
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct px_listener *l = arg;
    int i;

    (void)what;
    for (i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (accept_exhausted(errno)) {
                pause_accepting(l, errno);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                struct px_log_ctx ctx = {.listener = l->cfg->name};

                px_log_error("listener", &ctx, "accept failed: %s", strerror(errno));
            }
            return;
        }
        serve(l, fd);
    }
}

int
px_listener_addr(const struct cfg_listener *cfg, struct sockaddr_storage *ss, socklen_t *len)
{
    const struct cfg_addr *a = &cfg->bind;
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
    /* A name: resolved here, on the main thread at start or reload (blocking: a bind name is
     * expected to be local, such as localhost from /etc/hosts). */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(a->host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        struct px_log_ctx ctx = {.listener = cfg->name};

        px_log_error("listener", &ctx, "cannot resolve %s: %s", a->host, gai_strerror(rc));
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

int
px_listener_probe(const struct cfg_listener *cfg, const struct sockaddr_storage *addr,
                  socklen_t addrlen)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0, rc = 0, saved;

    if (fd == -1) {
        return -1;
    }
    /* SO_REUSEADDR, so that connections of a previous run in TIME_WAIT do not count; no
     * SO_REUSEPORT, so that a socket bound there counts, with SO_REUSEPORT or not: every
     * listening one, and every merely bound one but for one bound with SO_REUSEADDR (Linux lets
     * two such share an address until one listens). */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (addr->ss_family == AF_INET6 && cfg->bind.kind == CFG_ADDR_ANY &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == -1) ||
        bind(fd, (const struct sockaddr *)addr, addrlen) == -1) {
        rc = -1;
    }
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int
px_listener_open(const struct cfg_listener *cfg, const struct sockaddr_storage *addr,
                 socklen_t addrlen)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;

    if (fd == -1) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        (addr->ss_family == AF_INET6 && cfg->bind.kind == CFG_ADDR_ANY &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == -1) ||
        bind(fd, (const struct sockaddr *)addr, addrlen) == -1 ||
        listen(fd, (int)cfg->backlog) == -1) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

struct px_listener *
px_listener_new(struct px_worker *w, const struct cfg_listener *cfg, int fd,
                struct pool_cluster *pool, atomic_uint *clients, struct px_listener_stats *stats)
{
    struct px_listener *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return NULL;
    }
    l->cfg = cfg;
    l->w = w;
    l->pool = pool;
    l->clients = clients;
    l->stats = stats;
    l->fd = fd;
    l->reframe = !cfg_codec_equal(&cfg->codec, &cfg->cluster->codec);
    if (event_assign(&l->ev, px_worker_base(w), l->fd, EV_READ | EV_PERSIST, on_accept, l) == -1 ||
        evtimer_assign(&l->pause, px_worker_base(w), on_pause_end, l) == -1) {
        free(l);
        return NULL;
    }
    return l;
}

int
px_listener_enable(struct px_listener *l)
{
    if (l->retired) {
        return 0; /* a pause ended after a reload replaced it */
    }
    return event_add(&l->ev, NULL);
}

void
px_listener_retire(struct px_listener *l)
{
    l->retired = true;
    event_del(&l->ev);
    event_del(&l->pause);
}

void
px_listener_set_pool(struct px_listener *l, struct pool_cluster *pool)
{
    l->pool = pool;
    l->gen++;
}

unsigned
px_listener_gen(const struct px_listener *l)
{
    return l->gen;
}

unsigned
px_listener_clients(const struct px_listener *l)
{
    return l->nclients;
}

void
px_listener_free(struct px_listener *l)
{
    if (l == NULL) {
        return;
    }
    event_del(&l->ev);
    event_del(&l->pause);
    free(l);
}

const struct cfg_listener *
px_listener_cfg(const struct px_listener *l)
{
    return l->cfg;
}

struct px_listener_stats *
px_listener_stats(struct px_listener *l)
{
    return l->stats;
}

struct pool_cluster *
px_listener_pool(const struct px_listener *l)
{
    return l->pool;
}

bool
px_listener_reframes(const struct px_listener *l)
{
    return l->reframe;
}

struct px_worker *
px_listener_worker(const struct px_listener *l)
{
    return l->w;
}

void
px_listener_log_ctx(const struct px_listener *l, int fd, struct px_log_ctx *ctx, char *peer)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->listener = l->cfg->name;
    ctx->cluster = l->cfg->cluster_name;
    ctx->peer = px_log_peer(fd, peer, PX_PEER_LEN);
}

void
px_listener_client_gone(struct px_listener *l)
{
    POOL_STAT_DEC(l->stats->active);
    atomic_fetch_sub_explicit(l->clients, 1, memory_order_relaxed);
    if (--l->nclients == 0 && l->retired) {
        px_worker_listener_drained(l->w, l);
    }
}
