#include "px_listener.h"
#include "config/cfg.h"
#include "proxy/px_log.h"
#include "proxy/px_relay.h"
#include "proxy/px_session.h"
#include "proxy/px_worker.h"

#include <errno.h>
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
    struct pool_cluster *pool;      /* borrowed: the worker's pool of cfg->cluster */
    atomic_uint *clients;           /* borrowed: this listener's clients, all workers */
    int fd;                         /* owned */
    struct event ev;
    struct event pause;
    time_t last_error_log;
    bool reframe; /* the cluster frames differently: every frame is re-framed both ways */
    struct px_listener_stats stats;
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

    l->stats.accept_errors++;
    if (now != l->last_error_log) {
        struct px_log_ctx ctx = {.listener = l->cfg->name};

        l->last_error_log = now;
        px_log_error("listener", &ctx, "accept failed: %s; pausing accepts for %d ms (%llu so far)",
                     strerror(err), ACCEPT_PAUSE_MS, (unsigned long long)l->stats.accept_errors);
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
        l->stats.rejected++;
        close(fd);
        return;
    }
    l->stats.accepted++;
    l->stats.active++;
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

static int
open_socket(const struct cfg_listener *cfg, const struct sockaddr_storage *addr, unsigned addrlen)
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
px_listener_new(struct px_worker *w, const struct cfg_listener *cfg,
                const struct sockaddr_storage *addr, unsigned addrlen, struct pool_cluster *pool,
                atomic_uint *clients)
{
    struct px_log_ctx ctx = {.listener = cfg->name};
    struct px_listener *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return NULL;
    }
    l->cfg = cfg;
    l->w = w;
    l->pool = pool;
    l->clients = clients;
    l->reframe = !cfg_codec_equal(&cfg->codec, &cfg->cluster->codec);
    l->fd = open_socket(cfg, addr, addrlen);
    if (l->fd == -1) {
        px_log_error("listener", &ctx, "cannot listen on %s: %s", cfg->bind.text, strerror(errno));
        free(l);
        return NULL;
    }
    if (event_assign(&l->ev, px_worker_base(w), l->fd, EV_READ | EV_PERSIST, on_accept, l) == -1 ||
        evtimer_assign(&l->pause, px_worker_base(w), on_pause_end, l) == -1) {
        close(l->fd);
        free(l);
        return NULL;
    }
    return l;
}

int
px_listener_enable(struct px_listener *l)
{
    return event_add(&l->ev, NULL);
}

void
px_listener_free(struct px_listener *l)
{
    if (l == NULL) {
        return;
    }
    event_del(&l->ev);
    event_del(&l->pause);
    close(l->fd);
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
    return &l->stats;
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
    l->stats.active--;
    atomic_fetch_sub_explicit(l->clients, 1, memory_order_relaxed);
}
