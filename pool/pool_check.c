/*
 * Active health checks of one server (pool_check.h). One check at a time, on
 * a socket of its own: connect, write the request (http's GET or send), read
 * until the reply can be judged, close, report. A deadline timer bounds the
 * whole check; a tick timer, armed when a check starts, starts the next.
 *
 * send/expect replies are framed by the caller's framer. A codec without
 * frames (raw, or no framer at all) calls whatever is buffered a frame; when
 * that is a proper prefix of expect, the check reads on until the reply is
 * as long as expect, ends, or the framer cuts it shorter anyway.
 */
#include "pool_check.h"
#include "pool_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define HTTP_MAX 4096         /* bytes read looking for the status line's end */
#define REPLY_MAX (64u << 10) /* bytes read looking for a send/expect reply */
#define WHY_MAX 160

enum kind {
    KIND_TCP,   /* connect only */
    KIND_FRAME, /* send/expect: a framed reply */
    KIND_HTTP,  /* GET, a status in range */
};

/* Why a check failed; %s is the detail (an errno text, the framer's why, a status). */
enum why {
    W_SOCKET,
    W_CONNECT,
    W_WRITE,
    W_READ,
    W_TIMEOUT,
    W_CLOSED,
    W_MISMATCH,
    W_MALFORMED,
    W_TOO_LONG,
    W_STATUS,
    W_NOT_HTTP,
    W_NO_MEMORY,
    W_EVENT,
    W_MAX,
};

static const char *const why_fmt[W_MAX] = {
    [W_SOCKET] = "socket: %s",
    [W_CONNECT] = "connect: %s",
    [W_WRITE] = "write: %s",
    [W_READ] = "read: %s",
    [W_TIMEOUT] = "timeout",
    [W_CLOSED] = "closed before a reply",
    [W_MISMATCH] = "reply does not match",
    [W_MALFORMED] = "malformed reply: %s",
    [W_TOO_LONG] = "reply too long",
    [W_STATUS] = "status %s",
    [W_NOT_HTTP] = "not an HTTP status line",
    [W_NO_MEMORY] = "out of memory",
    [W_EVENT] = "cannot arm an event",
};

struct pool_check {
    struct event_base *base;             /* borrowed */
    const struct cfg_health_active *cfg; /* borrowed: outlives the checker */
    struct sockaddr_storage sa;          /* cfg->port applied */
    socklen_t salen;
    enum kind kind;
    const char *out; /* the bytes each check writes: request (http) or cfg->send */
    size_t outlen;
    char *request; /* owned: http's GET */
    regex_t re;    /* owned when has_re */
    bool has_re;
    pool_frame_fn frame;   /* NULL: every buffered byte is the frame */
    const void *frame_arg; /* borrowed */
    pool_check_done_fn done;
    void *arg;
    uint64_t rng;
    struct event tick;     /* the next check's start */
    struct event deadline; /* the check under way's timeout */
    struct event io;       /* the check under way's socket */
    /* the check under way */
    int fd;              /* owned; -1 between checks */
    bool due;            /* the tick came while a check was still under way */
    bool eof;            /* the server closed its side */
    size_t sent;         /* bytes of out written */
    size_t held;         /* a frame that is a proper prefix of expect, maybe still growing */
    struct evbuffer *in; /* owned */
    _Alignas(max_align_t) unsigned char fstate[POOL_FRAME_STATE_SIZE];
};

static void on_tick(evutil_socket_t fd, short what, void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);

/* ---- time and chance ---- */

static uint64_t
next_random(struct pool_check *ck)
{
    /* xorshift64*: spreading checks needs no secrecy */
    ck->rng ^= ck->rng >> 12;
    ck->rng ^= ck->rng << 25;
    ck->rng ^= ck->rng >> 27;
    return ck->rng * 0x2545F4914F6CDD1DULL;
}

static void
seed(struct pool_check *ck)
{
    uint64_t s = 0;

    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts = {0, 0};

        (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* a weaker seed still spreads the checks */
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)ck;
    }
    ck->rng = s != 0 ? s : 0x9E3779B97F4A7C15ULL;
}

static struct timeval
tv_us(uint64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

    return tv;
}

/* A uniform delay in [lo, hi] microseconds. */
static struct timeval
delay_between(struct pool_check *ck, uint64_t lo_us, uint64_t hi_us)
{
    return tv_us(lo_us + next_random(ck) % (hi_us - lo_us + 1));
}

/* interval, varied by up to 10% either way. */
static int
arm_tick(struct pool_check *ck)
{
    uint64_t us = ck->cfg->interval_ms * 1000;
    struct timeval tv = delay_between(ck, us - us / 10, us + us / 10);

    return evtimer_add(&ck->tick, &tv);
}

/* ---- the end of a check ---- */

/* Close the check under way; the next one starts at once if its tick came already. */
static void
stop(struct pool_check *ck)
{
    event_del(&ck->io);
    event_del(&ck->deadline);
    if (ck->fd != -1) {
        close(ck->fd);
        ck->fd = -1;
    }
    (void)evbuffer_drain(ck->in, evbuffer_get_length(ck->in));
    if (ck->due) {
        ck->due = false;
        event_active(&ck->tick, EV_TIMEOUT, 0);
    }
}

/* Report; done() may free ck, so callers return at once. */
static void
pass(struct pool_check *ck)
{
    pool_check_done_fn done = ck->done;
    void *arg = ck->arg;

    stop(ck);
    done(arg, true, NULL);
}

static void
fail(struct pool_check *ck, enum why w, const char *detail)
{
    pool_check_done_fn done = ck->done;
    void *arg = ck->arg;
    char why[WHY_MAX]; /* on the stack: still valid if done() frees ck */

    (void)snprintf(why, sizeof(why), why_fmt[w], detail != NULL ? detail : "");
    stop(ck);
    done(arg, false, why);
}

static void
fail_errno(struct pool_check *ck, enum why w, int err)
{
    char buf[WHY_MAX];

    fail(ck, w, strerror_r(err, buf, sizeof(buf)));
}

/* ---- judging a reply ---- */

/* The HTTP status of the line at the start of ck->in, len bytes before its CRLF, or -1. */
static int
parse_status(struct pool_check *ck, size_t len)
{
    char line[13];
    int status = 0;
    int i;

    if (len < 12 || evbuffer_copyout(ck->in, line, sizeof(line)) != (ssize_t)sizeof(line)) {
        return -1;
    }
    if (memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' || line[8] != ' ' ||
        (len > 12 && line[12] != ' ')) {
        return -1;
    }
    for (i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9') {
            return -1;
        }
        status = status * 10 + (line[i] - '0');
    }
    return status;
}

/* Whether what came so far can still begin a status line. */
static bool
http_start(struct pool_check *ck)
{
    static const char head[] = "HTTP/1.";
    char got[sizeof(head) - 1];
    ssize_t n = evbuffer_copyout(ck->in, got, sizeof(got));

    return n >= 0 && memcmp(got, head, (size_t)n) == 0;
}

static void
judge_http(struct pool_check *ck)
{
    struct evbuffer_ptr crlf = evbuffer_search(ck->in, "\r\n", 2, NULL);
    char text[16];
    int status;

    if (crlf.pos < 0) {
        if (!http_start(ck) || evbuffer_get_length(ck->in) >= HTTP_MAX) {
            fail(ck, W_NOT_HTTP, NULL);
        } else if (ck->eof) {
            fail(ck, W_CLOSED, NULL);
        }
        return;
    }
    status = parse_status(ck, (size_t)crlf.pos);
    if (status == -1) {
        fail(ck, W_NOT_HTTP, NULL);
    } else if ((uint32_t)status < ck->cfg->http.status_min ||
               (uint32_t)status > ck->cfg->http.status_max) {
        (void)snprintf(text, sizeof(text), "%d", status);
        fail(ck, W_STATUS, text);
    } else {
        pass(ck);
    }
}

/* Whether the first len bytes of ck->in match the regular expression. */
static void
judge_regex(struct pool_check *ck, size_t len)
{
    char *copy = malloc(len + 1);
    int rc;

    if (copy == NULL) {
        fail(ck, W_NO_MEMORY, NULL);
        return;
    }
    if (evbuffer_copyout(ck->in, copy, len) != (ssize_t)len) {
        free(copy);
        fail(ck, W_NO_MEMORY, NULL);
        return;
    }
    copy[len] = '\0'; /* a NUL byte in the reply ends what the expression sees */
    rc = regexec(&ck->re, copy, 0, NULL, 0);
    free(copy);
    if (rc == 0) {
        pass(ck);
    } else {
        fail(ck, W_MISMATCH, NULL);
    }
}

/*
 * A frame of len bytes: judge it. One shorter than expect that is all there
 * is and agrees with expect so far may be a raw reply still coming: held.
 */
static void
judge_frame_of(struct pool_check *ck, size_t len)
{
    const struct cfg_bytes *expect = &ck->cfg->expect;
    size_t have = evbuffer_get_length(ck->in);
    unsigned char *p;

    if (ck->has_re) {
        judge_regex(ck, len);
        return;
    }
    if (expect->ptr == NULL) {
        pass(ck); /* any complete reply */
        return;
    }
    p = evbuffer_pullup(ck->in, (ev_ssize_t)(len < expect->len ? len : expect->len));
    if (p == NULL) {
        fail(ck, W_NO_MEMORY, NULL);
    } else if (len < expect->len) {
        if (memcmp(p, expect->ptr, len) != 0 || len < have || ck->eof) {
            fail(ck, W_MISMATCH, NULL);
        } else {
            ck->held = len; /* read on */
        }
    } else if (memcmp(p, expect->ptr, expect->len) == 0) {
        pass(ck);
    } else {
        fail(ck, W_MISMATCH, NULL);
    }
}

static void
judge_frame(struct pool_check *ck)
{
    size_t have = evbuffer_get_length(ck->in);
    const char *why = NULL;
    ssize_t n;

    if (ck->frame == NULL) {
        n = have > 0 ? (ssize_t)have : POOL_FRAME_AGAIN;
    } else {
        if (ck->held > 0) {
            memset(ck->fstate, 0, sizeof(ck->fstate)); /* frame it again, from the start */
        }
        n = ck->frame(ck->frame_arg, ck->in, ck->fstate, &why);
    }
    if (n == POOL_FRAME_AGAIN) {
        if (ck->eof) {
            fail(ck, W_CLOSED, NULL);
        } else if (have >= REPLY_MAX) {
            fail(ck, W_TOO_LONG, NULL);
        }
        return;
    }
    if (n <= 0 || (size_t)n > have) {
        fail(ck, W_MALFORMED, why != NULL ? why : "cannot frame it");
        return;
    }
    judge_frame_of(ck, (size_t)n);
}

/* ---- a check's steps: connect, write, read ---- */

static int
wait_io(struct pool_check *ck, short what, event_callback_fn cb)
{
    event_del(&ck->io);
    if (event_assign(&ck->io, ck->base, ck->fd, what, cb, ck) == -1 ||
        event_add(&ck->io, NULL) == -1) {
        return -1;
    }
    return 0;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    struct pool_check *ck = arg;
    size_t have = evbuffer_get_length(ck->in);
    size_t max = ck->kind == KIND_HTTP ? HTTP_MAX : REPLY_MAX;
    ssize_t got;

    (void)what;
    if (have >= max) {
        fail(ck, ck->kind == KIND_HTTP ? W_NOT_HTTP : W_TOO_LONG, NULL);
        return;
    }
    got = pool_io_read(ck->in, fd, max - have);
    if (got == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        fail_errno(ck, errno == ENOMEM ? W_NO_MEMORY : W_READ, errno);
        return;
    }
    ck->eof = got == 0;
    if (ck->kind == KIND_HTTP) {
        judge_http(ck);
    } else {
        judge_frame(ck);
    }
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    struct pool_check *ck = arg;

    (void)what;
    while (ck->sent < ck->outlen) {
        ssize_t n = send(fd, ck->out + ck->sent, ck->outlen - ck->sent, MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_io(ck, EV_WRITE, on_write) == -1) {
                    fail(ck, W_EVENT, NULL);
                }
                return;
            }
            fail_errno(ck, W_WRITE, errno);
            return;
        }
        ck->sent += (size_t)n;
    }
    if (wait_io(ck, EV_READ | EV_PERSIST, on_read) == -1) {
        fail(ck, W_EVENT, NULL);
    }
}

static void
on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct pool_check *ck = arg;
    socklen_t len = sizeof(int);
    int err = 0;

    (void)what;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }
    if (err != 0) {
        fail_errno(ck, W_CONNECT, err);
    } else if (ck->kind == KIND_TCP) {
        pass(ck);
    } else {
        on_write(fd, EV_WRITE, ck); /* nothing to send: on to the greeting */
    }
}

/* Out of time; a reply held as a prefix of expect never grew to match it. */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct pool_check *ck = arg;

    (void)fd;
    (void)what;
    fail(ck, ck->held > 0 ? W_MISMATCH : W_TIMEOUT, NULL);
}

/* Start a check and arm the next one's start. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct pool_check *ck = arg;
    struct timeval tv = tv_us(ck->cfg->timeout_ms * 1000);
    int one = 1;

    (void)fd;
    (void)what;
    if (ck->fd != -1) {
        ck->due = true; /* timeout is near interval: start when this one ends */
        return;
    }
    ck->eof = false;
    ck->sent = 0;
    ck->held = 0;
    memset(ck->fstate, 0, sizeof(ck->fstate));
    if (arm_tick(ck) == -1 || evtimer_add(&ck->deadline, &tv) == -1) {
        fail(ck, W_EVENT, NULL);
        return;
    }
    ck->fd = socket(ck->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ck->fd == -1) {
        fail_errno(ck, W_SOCKET, errno);
        return;
    }
    if (setsockopt(ck->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
        fail_errno(ck, W_SOCKET, errno);
        return;
    }
    if (connect(ck->fd, (const struct sockaddr *)&ck->sa, ck->salen) == -1 &&
        errno != EINPROGRESS && errno != EINTR) {
        fail_errno(ck, W_CONNECT, errno);
        return;
    }
    if (wait_io(ck, EV_WRITE, on_connect) == -1) {
        fail(ck, W_EVENT, NULL);
    }
}

/* ---- the checker ---- */

/* "127.0.0.1:6379" or "[::1]:6379": the Host header when no name is given. */
static int
set_addr(struct pool_check *ck, const struct sockaddr *sa, socklen_t salen)
{
    uint16_t port = htons((uint16_t)ck->cfg->port);

    if (salen > sizeof(ck->sa) ||
        (sa->sa_family == AF_INET && salen < sizeof(struct sockaddr_in)) ||
        (sa->sa_family == AF_INET6 && salen < sizeof(struct sockaddr_in6)) ||
        (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        return -1;
    }
    memcpy(&ck->sa, sa, salen);
    ck->salen = salen;
    if (ck->cfg->port == 0) {
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        ((struct sockaddr_in6 *)&ck->sa)->sin6_port = port;
    } else {
        ((struct sockaddr_in *)&ck->sa)->sin_port = port;
    }
    return 0;
}

/* The GET of an http check. Host: the configured one, else the caller's, else the address. */
static int
build_request(struct pool_check *ck, const char *host)
{
    const struct cfg_health_http *h = &ck->cfg->http;
    char addr[INET6_ADDRSTRLEN + 8];
    int n;

    if (h->host != NULL) {
        host = h->host;
    } else if (host == NULL || host[0] == '\0') {
        if (pool_addr_text(&ck->sa, true, addr, sizeof(addr)) == -1) {
            return -1;
        }
        host = addr;
    }
    n = asprintf(&ck->request,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-health\r\nAccept: "
                 "*/*\r\nConnection: close\r\n\r\n",
                 h->path.ptr != NULL && h->path.ptr[0] != '\0' ? h->path.ptr : "/", host);
    if (n == -1) {
        ck->request = NULL;
        return -1;
    }
    ck->out = ck->request;
    ck->outlen = (size_t)n;
    return 0;
}

struct pool_check *
pool_check_new(struct event_base *base, const struct cfg_health_active *cfg,
               const struct sockaddr *sa, socklen_t salen, const char *host, pool_frame_fn frame,
               const void *frame_arg, pool_check_done_fn done, void *arg)
{
    struct pool_check *ck = calloc(1, sizeof(*ck));

    if (ck == NULL) {
        return NULL;
    }
    ck->base = base;
    ck->cfg = cfg;
    ck->fd = -1;
    ck->frame = frame;
    ck->frame_arg = frame_arg;
    ck->done = done;
    ck->arg = arg;
    seed(ck);
    if (evtimer_assign(&ck->tick, base, on_tick, ck) == -1 ||
        evtimer_assign(&ck->deadline, base, on_deadline, ck) == -1 ||
        event_assign(&ck->io, base, -1, 0, on_read, ck) == -1) {
        free(ck);
        return NULL;
    }
    ck->in = evbuffer_new();
    if (ck->in == NULL || set_addr(ck, sa, salen) == -1) {
        goto fail;
    }
    if (cfg->http.enabled) {
        ck->kind = KIND_HTTP;
        if (build_request(ck, host) == -1) {
            goto fail;
        }
    } else if (cfg->send.ptr != NULL || cfg->expect.ptr != NULL || cfg->expect_regex.ptr != NULL) {
        ck->kind = KIND_FRAME;
        ck->out = cfg->send.ptr;
        ck->outlen = cfg->send.ptr != NULL ? cfg->send.len : 0;
        if (cfg->expect_regex.ptr != NULL) {
            if (regcomp(&ck->re, cfg->expect_regex.ptr, REG_EXTENDED | REG_NOSUB) != 0) {
                goto fail;
            }
            ck->has_re = true;
        }
    } else {
        ck->kind = KIND_TCP;
    }
    return ck;

fail:
    pool_check_free(ck);
    return NULL;
}

int
pool_check_start(struct pool_check *ck)
{
    uint64_t us = ck->cfg->interval_ms * 1000;
    struct timeval tv = delay_between(ck, 0, us / 10);

    return evtimer_add(&ck->tick, &tv) == -1 ? -1 : 0;
}

void
pool_check_free(struct pool_check *ck)
{
    if (ck == NULL) {
        return;
    }
    event_del(&ck->tick);
    event_del(&ck->deadline);
    event_del(&ck->io);
    if (ck->fd != -1) {
        close(ck->fd);
    }
    if (ck->in != NULL) {
        evbuffer_free(ck->in);
    }
    if (ck->has_re) {
        regfree(&ck->re);
    }
    free(ck->request);
    free(ck);
}
