/*
 * Upstream connections and their pools: connect, set up, warm, pipeline,
 * idle, retire, reconnect with backoff; the cluster. Dispatch and the wait
 * queue are in pool_dispatch.c, pinned connections in pool_pin.c.
 */
#include "pool_internal.h"
#include "pool_hash.h"
#include "pool_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define EARLY_CLOSE_MS                                                                             \
    1000 /* an idle connection the server closes this young counts as a failure */
#define READ_CHUNK 65536
#define SPARE_IDLE_MS 1000 /* a spare connection idle this long closes (down to min_idle) */

const char *const pool_result_str[POOL_RESULT_MAX] = {
    [POOL_OK] = "ok",
    [POOL_CONNECT_FAILED] = "connect failed",
    [POOL_UPSTREAM_ERROR] = "upstream error",
    [POOL_TIMEOUT] = "upstream timeout",
    [POOL_MALFORMED] = "malformed response",
    [POOL_QUEUE_FULL] = "queue full",
    [POOL_QUEUE_TIMEOUT] = "queue timeout",
    [POOL_SHUTDOWN] = "shutting down",
    [POOL_REFUSED] = "upstream refused the login",
    [POOL_PIN_LIMIT] = "too many pinned clients",
    [POOL_UNHEALTHY] = "no healthy server",
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

uint64_t
pool_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Upper bounds of the latency buckets: 100us to 10s, as Prometheus buckets. */
const uint64_t pool_latency_us[POOL_LATENCY_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

/*
 * Now in microseconds, for latency. Not libevent's cached time: without
 * EVENT_BASE_FLAG_PRECISE_TIMER (a timerfd, syscalls per loop turn) that is
 * CLOCK_MONOTONIC_COARSE, whose ticks of milliseconds would put most
 * answers in 0us. This is a vDSO call: no syscall.
 */
uint64_t
pool_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The latency of req, answered at now (us): a binary search of the bucket bounds. Return it. */
static uint64_t
record_latency(struct pool_cluster *c, const struct pool_req *req, uint64_t now)
{
    uint64_t us = now > req->submit_us ? now - req->submit_us : 0;
    size_t lo = 0, hi = POOL_LATENCY_BUCKETS;

    while (lo < hi) { /* the first bound at or over us; POOL_LATENCY_BUCKETS: over them all */
        size_t mid = (lo + hi) / 2;

        if (us > pool_latency_us[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    POOL_STAT_INC(c->stats->latency[lo]);
    POOL_STAT_ADD(c->stats->latency_sum_us, us);
    return us;
}

/*
 * The server's typical response time, for the head-of-line guard: a moving
 * average (1/16) of samples (one a read: its latest reply's) capped at twice
 * it plus 1 ms, so that one slow reply barely moves it while a lasting change
 * is followed within tens of reads. The guard waits pool.stall, or 4 x that
 * (us / 256 ~ 4 x ms) when longer.
 */
static void
learn_latency(struct pool_server *s, uint64_t us)
{
    uint32_t lat = s->lat_us, cap = 2 * lat + 1000, x = us < cap ? (uint32_t)us : cap;

    lat = (uint32_t)((int32_t)lat + ((int32_t)x - (int32_t)lat) / 16);
    s->lat_us = lat;
    if ((lat >> 8) > s->stall_floor || s->stall_ms > s->stall_floor) { /* rare: a slow server */
        s->stall_ms =
            s->stall_floor == 0 || (lat >> 8) < s->stall_floor ? s->stall_floor : lat >> 8;
    }
}

uint64_t
pool_random(struct pool_cluster *c)
{
    /* xorshift64*: balancing needs speed and spread, not secrecy */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1DULL;
}

bool
pool_server_usable(const struct pool_server *s, uint64_t now)
{
    return s->down_until <= now;
}

struct timeval
pool_tv_ms(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

static void
event_ms(struct pool_cluster *c, enum pool_event ev, const struct pool_server *s,
         const char *detail)
{
    if (c->h.event != NULL) {
        c->h.event(c->h.arg, c, s->ep->text, ev, detail);
    }
}

/*
 * Back off from s: no new connection before an exponentially growing, capped
 * delay; requests that want it may probe it sooner (pool_server_dial).
 */
void
pool_server_failed(struct pool_server *s)
{
    uint64_t backoff = (uint64_t)BACKOFF_MIN_MS << (s->fails < 7 ? s->fails : 7);
    uint64_t now = pool_now_ms();

    s->fails++;
    backoff = backoff < BACKOFF_MAX_MS ? backoff : BACKOFF_MAX_MS;
    s->down_until = now + backoff;
    s->probe_at = now + (backoff < POOL_PROBE_MS ? backoff : POOL_PROBE_MS);
}

bool
pool_server_dialable(const struct pool_server *s, uint64_t now)
{
    return s->down_until <= now || s->probe_at <= now;
}

struct pool_conn *
pool_server_dial(struct pool_server *s, enum conn_kind kind, uint64_t now)
{
    if (s->down_until > now) {
        if (s->probe_at > now) {
            POOL_STAT_INC(s->cluster->stats->connects_deferred);
            return NULL;
        }
        s->probe_at = now + POOL_PROBE_MS; /* one at a time: the next after it fails */
    }
    return pool_conn_open(s, kind);
}

/* ---- connections ---- */

/*
 * Events first, then the descriptor: epoll forgets a closed fd on its own, so
 * an event_del() after close() would ask it to change a descriptor that is no
 * longer there (or, with other threads opening files, someone else's).
 */
void
pool_conn_free(struct pool_conn *conn)
{
    event_del(&conn->rev);
    event_del(&conn->wev);
    if (conn->fd != -1) {
        close(conn->fd);
    }
    if (conn->in != NULL) {
        evbuffer_free(conn->in);
    }
    if (conn->out != NULL) {
        evbuffer_free(conn->out);
    }
    if (conn->held != NULL) {
        evbuffer_free(conn->held);
    }
    free(conn);
}

/* Take conn out of its server's list and the counts. */
void
pool_conn_detach(struct pool_conn *conn)
{
    struct pool_server *s = conn->server;

    if (conn->kind == CONN_SHARED) {
        TAILQ_REMOVE(&s->conns, conn, link);
        s->nconns--;
        POOL_STAT_DEC(s->cluster->stats->conns_active);
    } else if (conn->kind == CONN_PINNED) {
        TAILQ_REMOVE(&s->pinned, conn, link);
        s->npinned--;
        POOL_STAT_DEC(s->cluster->stats->pinned);
    }
    if (conn->idle_counted) {
        POOL_STAT_DEC(s->cluster->stats->conns_idle);
        conn->idle_counted = false;
    }
}

struct pool_conn *
pool_conn_open(struct pool_server *s, enum conn_kind kind)
{
    struct pool_cluster *c = s->cluster;
    struct pool_conn *conn;
    struct timeval tv = pool_tv_ms(c->cfg->timeouts.connect_ms);
    int fd, one = 1;

    fd = socket(s->ep->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        event_ms(c, POOL_EV_CONNECT_FAILED, s, strerror(errno));
        return NULL;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        close(fd);
        return NULL;
    }
    conn->server = s;
    conn->fd = fd;
    conn->kind = (uint8_t)kind;
    conn->state = CONN_CONNECTING;
    conn->born = pool_now_ms();
    TAILQ_INIT(&conn->fifo);
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    if (conn->in == NULL || conn->out == NULL ||
        event_assign(&conn->rev, c->base, fd, EV_READ | EV_PERSIST, on_read, conn) == -1 ||
        event_assign(&conn->wev, c->base, fd, EV_WRITE, on_write, conn) == -1) {
        pool_conn_free(conn);
        return NULL;
    }
    if (connect(fd, (const struct sockaddr *)&s->ep->sa, s->ep->salen) == -1 &&
        errno != EINPROGRESS) {
        conn->connect_errno = errno;
        event_active(&conn->wev, EV_WRITE, 0); /* reported from the loop, never inline */
    } else if (event_add(&conn->wev, &tv) == -1) {
        pool_conn_free(conn);
        return NULL;
    }
    if (kind == CONN_PINNED) {
        TAILQ_INSERT_TAIL(&s->pinned, conn, link);
        s->npinned++;
        POOL_STAT_INC(c->stats->pinned);
    } else if (kind == CONN_SHARED) {
        TAILQ_INSERT_TAIL(&s->conns, conn, link);
        s->nconns++;
        POOL_STAT_INC(c->stats->conns_active);
        if (s->nconns > POOL_STAT_GET(c->stats->max_conns_seen)) {
            POOL_STAT_SET(c->stats->max_conns_seen, s->nconns);
        }
    }
    POOL_STAT_INC(c->stats->conns_opened);
    return conn;
}

/* Close a connection with nothing on it. */
void
pool_conn_close(struct pool_conn *conn)
{
    struct pool_server *s = conn->server;

    pool_conn_detach(conn);
    pool_conn_free(conn);
    POOL_STAT_INC(s->cluster->stats->conns_closed);
    pool_maintain(s);
}

/* Arm the read event for what the connection is waiting for. */
void
pool_conn_rev_arm(struct pool_conn *conn)
{
    const struct cfg_cluster *cfg = conn->server->cluster->cfg;
    bool waiting =
        conn->nfifo > 0 || conn->init_left > 0 || (conn->expect > 0 && conn->expect_deadline);
    enum rev_mode mode = waiting ? REV_RESPONSE : REV_IDLE;
    uint64_t ms = 0;
    struct timeval tv;

    if (mode == conn->rev_mode && (mode == REV_RESPONSE || conn->kind == CONN_PINNED)) {
        return; /* EV_PERSIST re-arms the read deadline on every read */
    }
    if (mode == REV_RESPONSE) {
        ms = cfg->timeouts.read_ms;
    } else if (conn->kind == CONN_PINNED) {
        ms = 0; /* its owner decides how long it lives */
    } else {
        uint64_t age = pool_now_ms() - conn->born;

        ms = cfg->pool.idle_timeout_ms;
        if (conn->spare && (ms == 0 || ms > SPARE_IDLE_MS)) {
            ms = SPARE_IDLE_MS; /* the stall it was opened for is over */
        }
        if (cfg->pool.max_lifetime_ms > 0) {
            uint64_t left = cfg->pool.max_lifetime_ms > age ? cfg->pool.max_lifetime_ms - age : 1;

            ms = ms == 0 || left < ms ? left : ms;
        }
    }
    tv = pool_tv_ms(ms);
    if (ms == 0) {
        event_del(&conn->rev); /* event_add() with no timeout keeps one already armed */
    }
    if (event_add(&conn->rev, ms > 0 ? &tv : NULL) == -1) {
        /* Maybe inside pool_submit(): callbacks come only from the loop, so fail it there. */
        conn->broken = true;
        event_active(&conn->wev, EV_WRITE, 0);
        return;
    }
    conn->rev_mode = (uint8_t)mode;
    if (conn->idle_counted != (mode == REV_IDLE && conn->kind == CONN_SHARED)) {
        conn->idle_counted = !conn->idle_counted;
        if (conn->idle_counted) {
            POOL_STAT_INC(conn->server->cluster->stats->conns_idle);
        } else {
            POOL_STAT_DEC(conn->server->cluster->stats->conns_idle);
        }
    }
}

/* Write what is buffered; arm the write event for the rest. Return -1 if conn failed. */
int
pool_conn_flush(struct pool_conn *conn)
{
    const struct cfg_cluster *cfg = conn->server->cluster->cfg;
    struct timeval tv = pool_tv_ms(cfg->timeouts.write_ms);

    while (evbuffer_get_length(conn->out) > 0) {
        int n = evbuffer_write(conn->out, conn->fd);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            pool_conn_fail(conn, POOL_UPSTREAM_ERROR, strerror(errno));
            return -1;
        }
    }
    if (evbuffer_get_length(conn->out) > 0) {
        if (!event_pending(&conn->wev, EV_WRITE, NULL) &&
            event_add(&conn->wev, cfg->timeouts.write_ms > 0 ? &tv : NULL) == -1) {
            pool_conn_fail(conn, POOL_UPSTREAM_ERROR, "cannot arm write event");
            return -1;
        }
    } else {
        event_del(&conn->wev);
    }
    return 0;
}

bool
pool_conn_quiet(struct pool_conn *conn, uint64_t now)
{
    int n = 0;

    if (conn->looked_ms != now) {
        conn->looked_ms = now;
        conn->looked_quiet = ioctl(conn->fd, FIONREAD, &n) == -1 || n == 0;
    }
    return conn->looked_quiet;
}

bool
pool_conn_expired(const struct pool_conn *conn, uint64_t now)
{
    const struct cfg_pool *p = &conn->server->cluster->cfg->pool;

    return (p->max_lifetime_ms > 0 && now - conn->born >= p->max_lifetime_ms) ||
           (p->max_requests > 0 && conn->nreq >= p->max_requests);
}

bool
pool_conn_idle(const struct pool_conn *conn, uint64_t now)
{
    return conn->state == CONN_READY && conn->nfifo == 0 && evbuffer_get_length(conn->in) == 0 &&
           evbuffer_get_length(conn->out) == 0 && !pool_conn_expired(conn, now);
}

/* Write what conn->out holds once this turn of the loop is done: one write for the batch. */
void
pool_conn_queue_flush(struct pool_conn *conn)
{
    if (!conn->flush_queued) {
        conn->flush_queued = true;
        event_active(&conn->wev, EV_WRITE, 0);
    }
}

/* Copy every byte frame holds to out, leaving frame as it is. Return -1 if it could not. */
static int
copy_frame(struct evbuffer *out, struct evbuffer *frame)
{
    size_t len = evbuffer_get_length(frame), done = 0;
    struct evbuffer_iovec v[8];
    struct evbuffer_ptr at;

    if (evbuffer_ptr_set(frame, &at, 0, EVBUFFER_PTR_SET) == -1) {
        return -1;
    }
    while (done < len) {
        /* at most 8 extents a turn: peek fills no more than it is given */
        int n = evbuffer_peek(frame, (ev_ssize_t)(len - done), &at, v, 8), i;
        size_t turn = 0;

        if (n <= 0) {
            return -1;
        }
        for (i = 0; i < n && i < 8; i++) {
            size_t k = v[i].iov_len < len - done - turn ? v[i].iov_len : len - done - turn;

            if (evbuffer_add(out, v[i].iov_base, k) == -1) {
                return -1;
            }
            turn += k;
        }
        done += turn;
        if (done < len && evbuffer_ptr_set(frame, &at, turn, EVBUFFER_PTR_ADD) == -1) {
            return -1;
        }
    }
    return 0;
}

/*
 * A large request kept: its bytes stay in its frame and a copy goes out. The
 * copy is made aside, so a failure leaves conn->out as it was; the request's
 * bytes are in conn->out either way, kept only when the copy was made.
 */
static void
keep_frame(struct pool_conn *conn, struct pool_req *req, struct evbuffer *src, size_t len)
{
    struct evbuffer *copy;

    if (src != NULL && src != req->frame) {
        evbuffer_remove_buffer(src, req->frame, len);
    }
    copy = evbuffer_new();
    if (copy == NULL || copy_frame(copy, req->frame) == -1) {
        evbuffer_add_buffer(conn->out, req->frame); /* written, not kept */
    } else {
        evbuffer_add_buffer(conn->out, copy);
        req->kept = KEEP_FRAME;
    }
    if (copy != NULL) {
        evbuffer_free(copy);
    }
}

/*
 * A request that may be repeated, written behind another: keep a copy of its
 * bytes (the first len of src, or frame when src is NULL or frame), so that
 * it can be sent again if the connection breaks under an earlier request. A
 * small one is copied aside and written the plain way (return false); a large
 * one is written by keep_frame (return true).
 */
static bool
keep_bytes(struct pool_conn *conn, struct pool_req *req, struct evbuffer *src, size_t len)
{
    struct evbuffer *from = src != NULL ? src : req->frame;

    if (from == req->frame) {
        len = evbuffer_get_length(from);
    }
    if (len <= POOL_KEEP_INLINE) {
        if (evbuffer_copyout(from, req->keep, len) == (ev_ssize_t)len) {
            req->kept = KEEP_INLINE;
            req->keep_len = (uint8_t)len;
        }
        return false;
    }
    keep_frame(conn, req, src, len);
    return true;
}

void
pool_req_unkeep(struct pool_req *req)
{
    if (req->kept == KEEP_FRAME) {
        evbuffer_drain(req->frame, evbuffer_get_length(req->frame));
    }
    req->kept = KEEP_NONE;
}

int
pool_req_restore(struct pool_req *req)
{
    int rc = 0;

    if (req->kept == KEEP_INLINE) {
        rc = evbuffer_add(req->frame, req->keep, req->keep_len);
    }
    req->kept = KEEP_NONE;
    return rc;
}

void
pool_conn_assign(struct pool_conn *conn, struct pool_req *req, struct evbuffer *src, size_t len)
{
    struct pool_server *s = conn->server;
    uint64_t now = pool_now_ms();

    TAILQ_INSERT_TAIL(&conn->fifo, req, link);
    conn->nfifo++;
    conn->nreq++;
    s->inflight++;
    req->conn = conn;
    req->last = s;
    req->since_ms = now;
    if (conn->state == CONN_CONNECTING || conn->state == CONN_HELLO) {
        req->state = POOL_REQ_ASSIGNED;
        if (src != NULL && src != req->frame) {
            evbuffer_remove_buffer(src, req->frame, len);
        }
        return;
    }
    req->state = POOL_REQ_SENT;
    if (req->may_repeat && !req->repeated && conn->nfifo > 1 &&
        now - TAILQ_FIRST(&conn->fifo)->since_ms >= s->stall_ms &&
        keep_bytes(conn, req, src, len)) {
        /* a large one: kept in frame, a copy went out */
    } else if (src != NULL && src != req->frame) {
        evbuffer_remove_buffer(src, conn->out, len);
    } else {
        evbuffer_add_buffer(conn->out, req->frame);
    }
    pool_conn_queue_flush(conn);
    if (pool_conn_expired(conn, now)) {
        conn->state = CONN_RETIRING;
    }
    pool_conn_rev_arm(conn);
}

/* The setup is answered (or there is none): the connection takes its requests. Return -1 if conn
 * failed. */
static int
setup_done(struct pool_conn *conn)
{
    struct pool_server *s = conn->server;
    struct pool_cluster *c = s->cluster;
    struct pool_req *req;

    if (s->fails > 0) {
        event_ms(c, POOL_EV_SERVER_UP, s, NULL);
    }
    s->fails = 0;
    s->down_until = 0;
    conn->state = CONN_READY;
    if (s->warming) {
        pool_server_warmed(s);
    }
    if (conn->kind == CONN_PINNED) {
        return pool_pin_setup_done(conn);
    }
    TAILQ_FOREACH(req, &conn->fifo, link)
    {
        req->state = POOL_REQ_SENT;
        if (!req->may_repeat || req->repeated || req == TAILQ_FIRST(&conn->fifo) ||
            !keep_bytes(conn, req, NULL, 0)) {
            evbuffer_add_buffer(conn->out, req->frame);
        }
    }
    if (pool_server_out(s)) {
        if (conn->nfifo == 0) {
            pool_conn_close(conn); /* went out while it connected: not kept idle */
            return -1;
        }
        conn->state = CONN_RETIRING; /* its requests go; then it closes */
    }
    if (pool_conn_flush(conn) == -1) {
        return -1;
    }
    pool_conn_rev_arm(conn);
    pool_drain_queue(c, conn);
    return 0;
}

void
pool_conn_setup(struct pool_conn *conn, const void *bytes, size_t len, unsigned replies)
{
    if (replies == 0) {
        (void)setup_done(conn);
        return;
    }
    conn->state = CONN_HELLO;
    conn->init_left = replies;
    if (evbuffer_prepend(conn->out, bytes, len) == -1) {
        pool_conn_fail(conn, POOL_UPSTREAM_ERROR, "out of memory");
        return;
    }
    if (pool_conn_flush(conn) == 0) {
        pool_conn_rev_arm(conn);
    }
}

static void
conn_ready(struct pool_conn *conn)
{
    struct pool_server *s = conn->server;
    struct pool_cluster *c = s->cluster;
    struct pool_req *req;

    if (conn->kind == CONN_LEASE) {
        if (s->fails > 0) {
            event_ms(c, POOL_EV_SERVER_UP, s, NULL);
        }
        s->fails = 0;
        s->down_until = 0;
        req = TAILQ_FIRST(&conn->fifo);
        event_del(&conn->rev);
        event_del(&conn->wev);
        evbuffer_free(conn->in);
        evbuffer_free(conn->out);
        s->inflight--;
        req->conn = NULL;
        req->state = POOL_REQ_NEW;
        POOL_STAT_INC(c->stats->leases);
        c->h.leased(req, conn->fd);
        free(conn);
        pool_server_reap(s); /* removed by DNS while it connected: s may be freed */
        return;
    }
    pool_conn_setup(conn, c->h.hello, c->h.hello_len, c->h.hello_replies);
}

static bool
writable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0;
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    struct pool_conn *conn = arg;
    int err = conn->connect_errno;
    socklen_t len = sizeof(err);

    conn->flush_queued = false;
    if (conn->broken) {
        pool_conn_fail(conn, POOL_UPSTREAM_ERROR, "cannot arm read event");
        return;
    }
    if (conn->release != 0) {
        pool_pin_release(conn);
        return;
    }
    if (conn->state != CONN_CONNECTING) {
        size_t before = evbuffer_get_length(conn->out);

        /* On a write deadline, try first: a late loop turn reports it over a writable socket. */
        if (pool_conn_flush(conn) == -1) {
            return;
        }
        if ((what & EV_TIMEOUT) && evbuffer_get_length(conn->out) == before && before > 0) {
            pool_conn_fail(conn, POOL_TIMEOUT, "write timeout");
            return;
        }
        if (conn->notify_drain && evbuffer_get_length(conn->out) == 0 && conn->owner != NULL) {
            conn->notify_drain = false;
            conn->server->cluster->h.pin_drained(conn->owner);
        }
        return;
    }
    if ((what & EV_TIMEOUT) && !writable_now(fd)) {
        err = ETIMEDOUT; /* checked first: a late loop reports the deadline, not the connect */
    } else if (err == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }
    if (err != 0) {
        struct pool_server *s = conn->server;

        pool_server_failed(s);
        POOL_STAT_INC(s->cluster->stats->connect_failures);
        event_ms(s->cluster, POOL_EV_CONNECT_FAILED, s, strerror(err));
        pool_conn_fail(conn, POOL_CONNECT_FAILED, strerror(err));
        return;
    }
    conn_ready(conn);
}

/* Deliver every complete response in conn->in to the head of the FIFO. Return -1 if conn failed. */
static int
deliver(struct pool_conn *conn)
{
    struct pool_cluster *c = conn->server->cluster;
    uint64_t now = 0, us = 0; /* read once for every response of this read */

    while (evbuffer_get_length(conn->in) > 0) {
        const char *why = NULL;
        ssize_t n = c->h.frame(c->h.frame_arg, conn->in, conn->fstate, &why);
        struct pool_req *req;

        if (n == POOL_FRAME_AGAIN) {
            break;
        }
        if (n < 0) {
            pool_conn_fail(conn, POOL_MALFORMED, why);
            return -1;
        }
        memset(conn->fstate, 0, sizeof(conn->fstate));
        if (conn->init_left > 0) {
            int verdict = c->h.reply_ok(c->h.frame_arg, conn->in, (size_t)n);
            bool ok = verdict == 0;

            evbuffer_drain(conn->in, (size_t)n);
            if (verdict == POOL_SETUP_SKIP) {
                continue; /* a push, not the reply being waited for */
            }
            if (!ok && conn->kind == CONN_PINNED && conn->owner == NULL) {
                pool_conn_close(conn); /* a reset that failed (Redis < 6.2): just not reused */
                return -1;
            }
            if (!ok) {
                pool_server_failed(conn->server);
                pool_conn_fail(conn, POOL_REFUSED, "the setup was refused");
                return -1;
            }
            if (--conn->init_left == 0 && setup_done(conn) == -1) {
                return -1;
            }
            continue;
        }
        if (conn->kind == CONN_PINNED) {
            if (conn->owner == NULL) {
                evbuffer_drain(conn->in, (size_t)n); /* released: nobody wants it */
                continue;
            }
            pool_pin_frame(conn, (size_t)n);
            if (conn->owner == NULL || conn->release != 0) {
                return -1; /* the owner let go inside the callback: released from the loop */
            }
            continue;
        }
        req = TAILQ_FIRST(&conn->fifo);
        if (req == NULL) {
            pool_conn_fail(conn, POOL_MALFORMED, "response with no request");
            return -1;
        }
        TAILQ_REMOVE(&conn->fifo, req, link);
        conn->nfifo--;
        conn->server->inflight--;
        req->conn = NULL;
        req->state = POOL_REQ_NEW;
        if (req->kept != KEEP_NONE) {
            pool_req_unkeep(req);
        }
        POOL_STAT_INC(c->stats->responses);
        pool_health_success(conn->server->ep);
        if (now == 0) {
            now = pool_now_us();
        }
        us = record_latency(c, req, now);
        c->h.response(req, conn->in, (size_t)n);
    }
    if (now != 0) {
        learn_latency(conn->server, us); /* one sample a read: the latest reply's */
    }
    return 0;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    struct pool_conn *conn = arg;
    struct pool_cluster *c = conn->server->cluster;
    ssize_t n;

    if (conn->release != 0) {
        pool_pin_release(conn);
        return;
    }
    if ((what & EV_TIMEOUT) && conn->rev_mode == REV_IDLE) {
        if (conn->kind == CONN_PINNED) {
            conn->rev_mode = REV_OFF; /* its owner decides when it closes */
            pool_conn_rev_arm(conn);
            return;
        }
        if (pool_conn_expired(conn, pool_now_ms()) ||
            conn->server->nconns > c->cfg->pool.min_idle || pool_server_out(conn->server)) {
            pool_conn_close(conn);
        } else {
            conn->spare = false; /* min_idle keeps it: one of the others now */
            conn->rev_mode = REV_OFF;
            pool_conn_rev_arm(conn);
        }
        return;
    }
    /*
     * On a read deadline, look before failing: when one turn of the loop ran
     * late, libevent reports the deadline and drops the readiness that came
     * with it, so the response may be waiting in the socket.
     */
    n = pool_io_read(conn->in, fd, READ_CHUNK);
    if (n < 0 && (what & EV_TIMEOUT) && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pool_conn_fail(conn, POOL_TIMEOUT, "read timeout");
        return;
    }
    if (n == 0) {
        if (pool_now_ms() - conn->born < EARLY_CLOSE_MS) {
            pool_server_failed(conn->server); /* accepts, then hangs up: do not reconnect at once */
        }
        if (conn->nfifo > 0 || (conn->kind == CONN_PINNED && conn->owner != NULL)) {
            pool_conn_fail(conn, POOL_UPSTREAM_ERROR, "closed by the server");
        } else {
            pool_conn_close(conn);
        }
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            pool_conn_fail(conn, POOL_UPSTREAM_ERROR, strerror(errno));
        }
        return;
    }
    if (deliver(conn) == -1) {
        return;
    }
    if (conn->kind == CONN_PINNED || conn->state == CONN_HELLO) {
        pool_conn_rev_arm(conn); /* a partial frame is normal here: no FIFO to keep in sync */
        return;
    }
    if (conn->nfifo == 0 && evbuffer_get_length(conn->in) > 0) {
        /* part of a response nobody asked for: it would be glued to the next one */
        pool_conn_fail(conn, POOL_MALFORMED, "bytes with no request");
        pool_drain_queue(c, NULL);
        return;
    }
    if (conn->nfifo == 0 && (conn->state == CONN_RETIRING || pool_server_out(conn->server) ||
                             pool_conn_expired(conn, pool_now_ms()))) {
        pool_conn_close(conn);
        conn = NULL;
    } else {
        if (conn->nfifo == 0) {
            conn->rev_mode = REV_OFF; /* restart the idle clock */
        }
        pool_conn_rev_arm(conn);
    }
    pool_drain_queue(c, conn);
}

/*
 * The connection broke: close it, then retry its unwritten requests and fail
 * the written ones. Its requests move to the cluster's failing list first, so
 * a callback that cancels one of them finds it there.
 *
 * The oldest written request (the head) fails with result: it is the one the
 * read deadline waited for, or the one a reset or a bad reply cut. Those
 * written behind it fail as POOL_UPSTREAM_ERROR (lost with the connection),
 * or, when they may be repeated (pool_req.may_repeat), are sent again once
 * on another connection.
 */
void
pool_conn_fail(struct pool_conn *conn, enum pool_result result, const char *detail)
{
    struct pool_server *s = conn->server;
    struct pool_cluster *c = s->cluster;
    struct pool_req *req;
    void *owner = conn->kind == CONN_PINNED ? conn->owner : NULL;
    bool lost = conn->nfifo > 0 || (owner != NULL && conn->expect > 0);
    bool head = false; /* the first written request has had its failure */

    pool_conn_detach(conn);
    while ((req = TAILQ_FIRST(&conn->fifo)) != NULL) {
        TAILQ_REMOVE(&conn->fifo, req, link);
        s->inflight--;
        req->conn = NULL;
        /* ASSIGNED stays ASSIGNED: never written, it may be retried */
        if (req->state == POOL_REQ_SENT) {
            req->state = POOL_REQ_FAILING;
        }
        TAILQ_INSERT_TAIL(&c->failing, req, link);
    }
    pool_conn_free(conn);
    POOL_STAT_INC(c->stats->conns_closed);
    if (result == POOL_CONNECT_FAILED || result == POOL_UPSTREAM_ERROR || result == POOL_TIMEOUT ||
        result == POOL_MALFORMED || result == POOL_REFUSED) {
        pool_health_failure(s->ep); /* passive ejection counts what traffic sees */
    }
    if (result == POOL_REFUSED) {
        POOL_STAT_INC(c->stats->connect_failures);
        event_ms(c, POOL_EV_CONNECT_FAILED, s, detail);
    } else if (lost && result != POOL_CONNECT_FAILED) {
        event_ms(c, POOL_EV_CONN_LOST, s, detail != NULL ? detail : pool_result_str[result]);
    }
    if (owner != NULL) {
        c->h.pin_lost(owner, result);
    }
    while ((req = TAILQ_FIRST(&c->failing)) != NULL) {
        TAILQ_REMOVE(&c->failing, req, link);
        if (req->state == POOL_REQ_ASSIGNED) {
            req->state = POOL_REQ_NEW;
            pool_retry_or_fail(c, req, result);
        } else if (!head || result == POOL_SHUTDOWN) {
            head = true;
            req->state = POOL_REQ_NEW;
            pool_req_unkeep(req);
            POOL_STAT_INC(c->stats->failed[result]);
            c->h.failure(req, result);
        } else {
            pool_repeat_or_fail(c, req);
        }
    }
    if (s->down_until > pool_now_ms()) {
        /* refused, failed setup, or an early hang-up: queued requests that only this kind of
         * server could take fail now rather than at the queue's timeout */
        pool_queue_backoff(c, POOL_CONNECT_FAILED);
    }
    pool_maintain(s);
    pool_drain_queue(c, NULL);
}

/* ---- warm connections ---- */

void
pool_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pool_maintain(arg);
}

/* Keep min_idle connections open, backing off while the server refuses. */
void
pool_maintain(struct pool_server *s)
{
    struct pool_cluster *c = s->cluster;
    uint64_t now = pool_now_ms();

    if (c->closing) {
        return;
    }
    if (s->gone) {
        pool_server_reap(s); /* s may be freed */
        return;
    }
    if (pool_server_out(s) || !pool_endpoint_fit(s->ep)) {
        return; /* no warm connections to a server that is out; its return brings them */
    }
    if (!pool_server_usable(s, now)) {
        struct timeval tv = pool_tv_ms(s->down_until - now);

        if (s->nconns < c->cfg->pool.min_idle && !event_pending(s->retry, EV_TIMEOUT, NULL)) {
            event_add(s->retry, &tv);
        }
        return;
    }
    while (s->nconns < c->cfg->pool.min_idle) {
        if (pool_conn_open(s, CONN_SHARED) ==
            NULL) { /* no descriptor or memory now: try again later */
            struct timeval tv = pool_tv_ms(BACKOFF_MIN_MS);

            if (!event_pending(s->retry, EV_TIMEOUT, NULL)) {
                event_add(s->retry, &tv);
            }
            break;
        }
        if (!pool_server_usable(s, now)) {
            break;
        }
    }
}

/* ---- the cluster ---- */

_Static_assert((int)CFG_HASH_ONE_AT_A_TIME == (int)POOL_HASH_ONE_AT_A_TIME &&
                   (int)CFG_HASH_MD5 == (int)POOL_HASH_MD5 &&
                   (int)CFG_HASH_FNV1A_64 == (int)POOL_HASH_FNV1A_64 &&
                   (int)CFG_HASH_JENKINS == (int)POOL_HASH_JENKINS &&
                   (int)CFG_DIST_KETAMA == (int)POOL_HASH_KETAMA &&
                   (int)CFG_DIST_RANDOM == (int)POOL_HASH_RANDOM,
               "config's hash names follow pool_hash.h's order");

/* The key continuum, with servers named as twemproxy names them. */
static int
build_ring(struct pool_cluster *c)
{
    size_t n = c->cfg->nservers;
    struct pool_hash_server *hs = calloc(n, sizeof(*hs));
    char(*names)[300] = calloc(n, sizeof(*names));
    int rc = -1;
    size_t i;

    if (hs == NULL || names == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        const struct cfg_server *srv = &c->cfg->servers[i];
        char port[8];

        snprintf(port, sizeof(port), "%u", srv->address.port);
        if (srv->name != NULL) {
            snprintf(names[i], sizeof(names[i]), "%s", srv->name);
        } else if (srv->address.kind == CFG_ADDR_IPV6) {
            snprintf(names[i], sizeof(names[i]), "%s", srv->address.text); /* [::1]:6379 */
        } else if (pool_hash_server_name(names[i], sizeof(names[i]), srv->address.host, port) ==
                   -1) {
            goto done;
        }
        hs[i].name = names[i];
        hs[i].weight = srv->weight;
    }
    c->ring = pool_hash_ring_new((enum pool_hash_dist)c->cfg->distribution, hs, n, NULL);
    rc = c->ring != NULL ? 0 : -1;
done:
    free(hs);
    free(names);
    return rc;
}

uint32_t
pool_cluster_shard(struct pool_cluster *c, const char *key, size_t len)
{
    const char *tag = c->cfg->hash_tag.ptr, *part;
    size_t n;

    if (c->ring == NULL) {
        return 0;
    }
    if (c->cfg->distribution == CFG_DIST_RANDOM) {
        return 1 + (uint32_t)pool_hash_ring_pick(c->ring, (uint32_t)pool_random(c));
    }
    n = pool_hash_tag(tag, key, len, &part);
    return 1 + (uint32_t)pool_hash_ring_pick(
                   c->ring, pool_hash_key((enum pool_hash_fn)c->cfg->hash, part, n));
}

size_t
pool_cluster_nservers(const struct pool_cluster *c)
{
    return c->cfg->nservers;
}

struct pool_cluster *
pool_cluster_new(struct event_base *base, const struct cfg_cluster *cfg, struct pool_health *health,
                 const struct pool_handler *h, struct pool_stats *stats)
{
    struct pool_cluster *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->base = base;
    c->cfg = cfg;
    c->health = health;
    c->h = *h;
    c->stats = stats != NULL ? stats : &c->own;
    c->balancer = pool_balancer_for(cfg->balance);
    TAILQ_INIT(&c->queue);
    TAILQ_INIT(&c->failing);
    TAILQ_INIT(&c->draining);
    if (getrandom(&c->rng, sizeof(c->rng), GRND_NONBLOCK) != sizeof(c->rng) || c->rng == 0) {
        c->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL | 1;
    }
    c->slots = calloc(cfg->nservers, sizeof(*c->slots));
    c->queue_timer = evtimer_new(base, pool_on_queue_timer, c);
    if (c->slots == NULL || c->queue_timer == NULL || pool_servers_sync(c) == -1) {
        goto fail;
    }
    if (cfg->balance == CFG_BALANCE_HASH && build_ring(c) == -1) {
        goto fail;
    }
    return c;
fail:
    pool_cluster_free(c);
    return NULL;
}

void
pool_cluster_start(struct pool_cluster *c)
{
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        pool_maintain(c->servers[i]);
    }
}

static void
close_server(struct pool_server *s)
{
    struct pool_conn *conn;

    while ((conn = TAILQ_FIRST(&s->conns)) != NULL) {
        pool_conn_fail(conn, POOL_SHUTDOWN, NULL);
    }
    while ((conn = TAILQ_FIRST(&s->pinned)) != NULL) {
        pool_conn_fail(conn, POOL_SHUTDOWN, NULL);
    }
    pool_server_free(s);
}

void
pool_cluster_free(struct pool_cluster *c)
{
    struct pool_server *s;
    struct pool_req *req;
    size_t i;

    if (c == NULL) {
        return;
    }
    c->closing = true;
    while ((req = TAILQ_FIRST(&c->queue)) != NULL) {
        pool_dequeue(c, req);
        c->h.failure(req, POOL_SHUTDOWN);
    }
    for (i = 0; i < c->nservers; i++) {
        close_server(c->servers[i]);
    }
    while ((s = TAILQ_FIRST(&c->draining)) != NULL) {
        TAILQ_REMOVE(&c->draining, s, link);
        close_server(s);
    }
    if (c->queue_timer != NULL) {
        event_free(c->queue_timer);
    }
    pool_hash_ring_free(c->ring);
    free(c->servers);
    free(c->slots);
    free(c);
}

const struct pool_stats *
pool_cluster_stats(const struct pool_cluster *c)
{
    return c->stats;
}

const char *
pool_cluster_name(const struct pool_cluster *c)
{
    return c->cfg->name;
}

const struct cfg_cluster *
pool_cluster_cfg(const struct pool_cluster *c)
{
    return c->cfg;
}
