#include "px_relay.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "pool/pool_io.h"
#include "proxy/px_listener.h"
#include "proxy/px_log.h"
#include "proxy/px_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELAY_CHUNK 65536       /* also the pipe's capacity, Linux's default */
#define RELAY_HIGH (256u << 10) /* stop reading a side while this much waits for the other */

/*
 * One direction. Bytes move src -> pipe -> dst with splice(2) and never enter
 * user space; the pipe is made on the first data. Where no pipe can be had
 * (out of descriptors) they go through buf instead.
 */
struct half {
    int *src;
    int *dst;
    struct event *rev;       /* reads src */
    struct event *wev;       /* writes dst */
    struct evbuffer *buf;    /* owned */
    int pipe[2];             /* owned: -1 until made */
    size_t inpipe;           /* bytes in the pipe */
    bool pipe_full;          /* splice into it would block: read again only after a write */
    _Atomic uint64_t *bytes; /* the listener's counter (pool_stat.h) */
    bool eof;                /* src sent FIN */
    bool shut;               /* dst got shutdown(SHUT_WR) */
};

struct px_relay {
    struct pool_req pr; /* first: the pool hands the lease back */
    struct px_client head;
    struct px_listener *l; /* borrowed */
    struct px_worker *w;   /* borrowed */
    int cfd;               /* owned: the client */
    int ufd;               /* owned: the upstream, -1 until leased */
    struct event crev, cwev, urev, uwev;
    struct half c2u, u2c;
    bool closing;
};

static void relay_io(evutil_socket_t fd, short what, void *arg);

void
px_relay_close(struct px_relay *r, const char *why)
{
    if (r->closing) {
        return;
    }
    r->closing = true;
    if (why != NULL) {
        struct px_log_ctx ctx;
        char peer[PX_PEER_LEN];

        px_listener_log_ctx(r->l, r->cfd, &ctx, peer);
        px_log_debug("relay", &ctx, "closed: %s", why);
    }
    event_del(&r->crev);
    event_del(&r->cwev);
    if (r->ufd != -1) {
        event_del(&r->urev);
        event_del(&r->uwev);
        close(r->ufd);
    } else {
        (void)pool_cancel(&r->pr); /* a lease is never "sent": this always withdraws it */
    }
    close(r->cfd);
    px_listener_client_gone(r->l);
    px_worker_reap(r->w, &r->head);
}

static void
half_free(struct half *h)
{
    if (h->buf != NULL) {
        evbuffer_free(h->buf);
    }
    if (h->pipe[0] != -1) {
        close(h->pipe[0]);
        close(h->pipe[1]);
    }
}

void
px_relay_free(struct px_relay *r)
{
    half_free(&r->c2u);
    half_free(&r->u2c);
    free(r);
}

static void
client_close(struct px_client *c, const char *why)
{
    px_relay_close(px_container_of(c, struct px_relay, head), why);
}

/*
 * A raw relay has no frames, so no boundary at which closing is safe: it
 * runs on until either side closes it, or the shutdown's drain_timeout.
 */
static void
client_drain(struct px_client *c)
{
    (void)c;
}

static void
client_free(struct px_client *c)
{
    px_relay_free(px_container_of(c, struct px_relay, head));
}

static size_t
pending(const struct half *h)
{
    return h->pipe[0] != -1 ? h->inpipe : evbuffer_get_length(h->buf);
}

static size_t
room(const struct half *h)
{
    return h->pipe[0] != -1 ? RELAY_CHUNK - h->inpipe : RELAY_HIGH - evbuffer_get_length(h->buf);
}

/* Arm h's events: read src while there is room, write dst while bytes wait. */
static int
half_arm(struct px_relay *r, struct half *h)
{
    uint64_t idle = px_listener_cfg(r->l)->timeouts.idle_ms;
    struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)(idle % 1000) * 1000};
    size_t waiting = pending(h);

    if (!h->eof && waiting < RELAY_HIGH && room(h) > 0 && !h->pipe_full) {
        if (event_add(h->rev, idle > 0 ? &tv : NULL) == -1) {
            return -1;
        }
    } else {
        event_del(h->rev);
    }
    if (waiting > 0) {
        return event_add(h->wev, NULL);
    }
    event_del(h->wev);
    if (h->eof && !h->shut) {
        h->shut = true;
        if (shutdown(*h->dst, SHUT_WR) == -1 && errno != ENOTCONN) {
            return -1;
        }
    }
    return 0;
}

/* The pipe for h, made on the first data; false: use the buffer. */
static bool
use_pipe(struct half *h)
{
    if (h->pipe[0] == -1 && evbuffer_get_length(h->buf) == 0 &&
        pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
        h->pipe[0] = h->pipe[1] = -1;
    }
    return h->pipe[0] != -1;
}

/* Read from src into the pipe or the buffer: > 0 bytes, 0 at EOF, -1 with errno. */
static ssize_t
half_read(struct half *h)
{
    ssize_t n;

    if (!use_pipe(h)) {
        return pool_io_read(h->buf, *h->src, RELAY_CHUNK);
    }
    do {
        n = splice(*h->src, NULL, h->pipe[1], NULL, room(h), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n == -1 && errno == EINTR);
    if (n > 0) {
        h->inpipe += (size_t)n;
    } else if (n == -1 && errno == EAGAIN && h->inpipe > 0) {
        /* A pipe fills by slots, not bytes: small segments fill it with a few KiB. This
         * EAGAIN may mean "full"; wait for the write side (armed: bytes wait) to drain it. */
        h->pipe_full = true;
    }
    return n;
}

/* Write what waits to dst: 0 (done or would block), -1 with errno. */
static int
half_write(struct half *h)
{
    while (pending(h) > 0) {
        ssize_t n;

        if (h->pipe[0] != -1) {
            n = splice(h->pipe[0], NULL, *h->dst, NULL, h->inpipe,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                h->inpipe -= (size_t)n;
                h->pipe_full = false;
            }
        } else {
            n = evbuffer_write(h->buf, *h->dst);
        }
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
    }
    return 0;
}

/* Move what can be moved on h; -1 when the relay must close. */
static int
half_pump(struct px_relay *r, struct half *h, bool readable, bool writable)
{
    if (readable && !h->eof && room(h) > 0) {
        ssize_t n = half_read(h);

        if (n == 0) {
            h->eof = true;
        } else if (n > 0) {
            POOL_STAT_ADD(*h->bytes, n);
            writable = true; /* try at once: the common case needs no write event */
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -1;
        }
    }
    if (writable && half_write(h) == -1) {
        return -1;
    }
    return half_arm(r, h);
}

static bool
readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

static void
relay_io(evutil_socket_t fd, short what, void *arg)
{
    struct px_relay *r = arg;
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];
    bool client = fd == r->cfd;
    struct half *in = client ? &r->c2u : &r->u2c;  /* what fd reads */
    struct half *out = client ? &r->u2c : &r->c2u; /* what fd writes */

    if (r->closing) {
        return;
    }
    if ((what & EV_TIMEOUT) && !readable_now(fd)) { /* a late loop reports the deadline over data */
        px_listener_log_ctx(r->l, r->cfd, &ctx, peer);
        POOL_STAT_INC(px_listener_stats(r->l)->idle_timeouts);
        px_log_debug("relay", &ctx, "idle timeout");
        px_relay_close(r, NULL);
        return;
    }
    if (half_pump(r, in, (what & (EV_READ | EV_TIMEOUT)) != 0, false) == -1 ||
        half_pump(r, out, false, (what & EV_WRITE) != 0) == -1) {
        px_relay_close(r, strerror(errno));
        return;
    }
    if (r->c2u.shut && r->u2c.shut) {
        px_relay_close(r, "both sides finished");
    }
}

static void
relay_begin(struct px_relay *r, int ufd)
{
    struct event_base *base = px_worker_base(r->w);
    int one = 1;

    r->ufd = ufd;
    (void)setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (event_assign(&r->urev, base, ufd, EV_READ, relay_io, r) == -1 ||
        event_assign(&r->uwev, base, ufd, EV_WRITE, relay_io, r) == -1 ||
        half_arm(r, &r->c2u) == -1 || half_arm(r, &r->u2c) == -1) {
        px_relay_close(r, "cannot arm events");
    }
}

void
px_relay_on_leased(struct pool_req *pr, int fd)
{
    relay_begin((struct px_relay *)pr, fd);
}

void
px_relay_on_failure(struct pool_req *pr, int result)
{
    struct px_relay *r = (struct px_relay *)pr;
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];

    px_listener_log_ctx(r->l, r->cfd, &ctx, peer);
    px_log_warn("relay", &ctx, "no upstream connection (%s); closing the client",
                pool_result_str[result]);
    POOL_STAT_INC(px_listener_stats(r->l)->upstream_failures);
    px_relay_close(r, NULL);
}

void
px_relay_start(struct px_listener *l, int fd)
{
    struct px_worker *w = px_listener_worker(l);
    struct event_base *base = px_worker_base(w);
    struct px_relay *r = calloc(1, sizeof(*r));
    struct px_listener_stats *st = px_listener_stats(l);
    int ufd = -1, rc;

    if (r == NULL) {
        close(fd);
        px_listener_client_gone(l);
        return;
    }
    r->l = l;
    r->w = w;
    r->cfd = fd;
    r->ufd = -1;
    r->c2u = (struct half){.src = &r->cfd,
                           .dst = &r->ufd,
                           .rev = &r->crev,
                           .wev = &r->uwev,
                           .buf = evbuffer_new(),
                           .pipe = {-1, -1},
                           .bytes = &st->bytes_in};
    r->u2c = (struct half){.src = &r->ufd,
                           .dst = &r->cfd,
                           .rev = &r->urev,
                           .wev = &r->cwev,
                           .buf = evbuffer_new(),
                           .pipe = {-1, -1},
                           .bytes = &st->bytes_out};
    if (r->c2u.buf == NULL || r->u2c.buf == NULL ||
        event_assign(&r->crev, base, fd, EV_READ, relay_io, r) == -1 ||
        event_assign(&r->cwev, base, fd, EV_WRITE, relay_io, r) == -1) {
        close(fd);
        px_listener_client_gone(l);
        px_relay_free(r);
        return;
    }
    r->head.close = client_close;
    r->head.drain = client_drain;
    r->head.free = client_free;
    px_worker_add_client(w, &r->head);
    rc = pool_lease(px_listener_pool(l), &r->pr, &ufd);
    if (rc == 1) {
        relay_begin(r, ufd);
    } else if (rc == -1) {
        px_relay_on_failure(&r->pr, POOL_CONNECT_FAILED);
    }
    /* rc == 0: connecting; the client's bytes wait in the kernel until leased */
}
