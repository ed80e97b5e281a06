/*
 * pool/pool_check: active health checks (tcp, send/expect, expect_regex, a
 * greeting, http), their deadline, the port override, the jittered schedule
 * and freeing from inside the report. Servers are listening sockets on
 * 127.0.0.1 (port 0) served by the same event loop; no mocks. Replies are
 * framed by the real line and raw codecs.
 */
#include "config/cfg.h"
#include "pool/pool_check.h"
#include "proxy/codec/px_codec.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* pool_test_util.c: a loopback address whose port was just free (connecting is refused). */
void pt_refused_addr(struct sockaddr_in *dead);

#define MAX_CONNS 32
#define MAX_REPORTS 16
#define BYTES(s)                                                                                   \
    (struct cfg_bytes)                                                                             \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

/* ---- a server in the same loop ---- */

struct server {
    struct evconnlistener *listener;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *greeting; /* written on accept */
    const char *until;    /* the reply goes once what was read holds this (NULL: any byte) */
    const char *reply;    /* NULL: never answer */
    const char *rest;     /* written 50 ms after reply: a reply in two parts */
    bool close_after;     /* close once the reply is written */
    int accepted;
    struct bufferevent *bevs[MAX_CONNS]; /* in accept order, NULL once closed */
    struct bufferevent *last;            /* the newest connection, NULL once closed */
    bool answered;                       /* the newest connection had its reply */
    char got[1024];                      /* what the newest connection read */
    size_t ngot;
    struct event *later; /* writes rest */
};

struct fixture {
    struct event_base *base;
    struct server srv;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Run the loop in 5 ms steps until cond holds or ms pass. */
#define RUN_UNTIL(base, cond, ms)                                                                  \
    do {                                                                                           \
        uint64_t until_ = now_ms() + (ms);                                                         \
        while (!(cond) && now_ms() < until_) {                                                     \
            run_for((base), 5);                                                                    \
        }                                                                                          \
    } while (0)

static void
conn_close(struct server *srv, struct bufferevent *bev)
{
    int i;

    for (i = 0; i < MAX_CONNS; i++) {
        if (srv->bevs[i] == bev) {
            srv->bevs[i] = NULL;
        }
    }
    if (srv->last == bev) {
        srv->last = NULL;
    }
    bufferevent_free(bev);
}

/* All written: close if asked, once the whole reply is out. */
static void
srv_written(struct bufferevent *bev, void *arg)
{
    struct server *srv = arg;

    if (srv->close_after && srv->answered && bev == srv->last &&
        (srv->rest == NULL || srv->later == NULL)) {
        conn_close(srv, bev);
    }
}

static void
srv_later(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    (void)fd;
    (void)what;
    if (srv->last != NULL) {
        bufferevent_write(srv->last, srv->rest, strlen(srv->rest));
    }
    event_free(srv->later);
    srv->later = NULL;
}

static void
srv_read(struct bufferevent *bev, void *arg)
{
    struct server *srv = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);

    if (bev == srv->last && srv->ngot + n < sizeof(srv->got)) {
        evbuffer_copyout(in, srv->got + srv->ngot, n);
        srv->ngot += n;
        srv->got[srv->ngot] = '\0';
    }
    evbuffer_drain(in, n);
    if (bev != srv->last || srv->answered || srv->reply == NULL ||
        (srv->until != NULL && strstr(srv->got, srv->until) == NULL)) {
        return;
    }
    srv->answered = true;
    bufferevent_write(bev, srv->reply, strlen(srv->reply));
    if (srv->rest != NULL) {
        struct timeval tv = {0, 50000};

        srv->later = evtimer_new(bufferevent_get_base(bev), srv_later, srv);
        assert_non_null(srv->later);
        assert_int_equal(evtimer_add(srv->later, &tv), 0);
    }
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        conn_close(arg, bev);
    }
}

static void
srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    struct server *srv = arg;
    struct bufferevent *bev;

    (void)sa;
    (void)len;
    if (srv->accepted >= MAX_CONNS) {
        srv->accepted++;
        close(fd);
        return;
    }
    bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(bev);
    srv->bevs[srv->accepted++] = bev;
    srv->last = bev;
    srv->answered = false;
    srv->ngot = 0;
    srv->got[0] = '\0';
    bufferevent_setcb(bev, srv_read, srv_written, srv_event, srv);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (srv->greeting != NULL) {
        bufferevent_write(bev, srv->greeting, strlen(srv->greeting));
    }
}

static void
srv_start(struct event_base *base, struct server *srv)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv->listener = evconnlistener_new_bind(base, srv_accept, srv, LEV_OPT_CLOSE_ON_FREE, 16,
                                            (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(srv->listener);
    srv->addrlen = sizeof(srv->addr);
    assert_int_equal(getsockname(evconnlistener_get_fd(srv->listener),
                                 (struct sockaddr *)&srv->addr, &srv->addrlen),
                     0);
}

static void
srv_stop(struct server *srv)
{
    int i;

    for (i = 0; i < MAX_CONNS; i++) {
        if (srv->bevs[i] != NULL) {
            bufferevent_free(srv->bevs[i]);
        }
    }
    if (srv->later != NULL) {
        event_free(srv->later);
    }
    if (srv->listener != NULL) {
        evconnlistener_free(srv->listener);
    }
}

static uint16_t
srv_port(const struct server *srv)
{
    return ntohs(((const struct sockaddr_in *)&srv->addr)->sin_port);
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    srv_start(f->base, &f->srv);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    srv_stop(&f->srv);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* ---- the checker's owner ---- */

struct result {
    struct pool_check *ck;
    bool free_in_done; /* free the checker from inside its first report */
    int calls;
    bool pass;
    char why[128];
    uint64_t at[MAX_REPORTS]; /* ms of each report */
};

static void
on_done(void *arg, bool pass, const char *why)
{
    struct result *r = arg;

    if (r->calls < MAX_REPORTS) {
        r->at[r->calls] = now_ms();
    }
    r->calls++;
    r->pass = pass;
    snprintf(r->why, sizeof(r->why), "%s", why != NULL ? why : "");
    if (r->free_in_done) {
        pool_check_free(r->ck);
        r->ck = NULL;
    }
}

static ssize_t
frame_codec(const void *arg, struct evbuffer *in, void *state, const char **why)
{
    return px_codec_frame(arg, in, state, why);
}

static const struct cfg_codec line_codec = {
    .type = CFG_CODEC_LINE,
    .set = true,
    .max_frame = 1024,
    .delimiter = {"\r\n", 2},
};
static const struct cfg_codec short_line_codec = {
    .type = CFG_CODEC_LINE,
    .set = true,
    .max_frame = 8,
    .delimiter = {"\r\n", 2},
};
static const struct cfg_codec raw_codec = {.type = CFG_CODEC_RAW, .set = true};

/* Checks every second (so a test sees one), each within 500 ms. */
static struct cfg_health_active
active(void)
{
    struct cfg_health_active a;

    memset(&a, 0, sizeof(a));
    a.enabled = true;
    a.interval_ms = 1000;
    a.timeout_ms = 500;
    a.rise = 1;
    a.fall = 1;
    return a;
}

static void
http(struct cfg_health_active *a, uint32_t min, uint32_t max)
{
    a->http.enabled = true;
    a->http.path = BYTES("/healthz");
    a->http.status_min = min;
    a->http.status_max = max;
}

static void
check_addr(struct fixture *f, const struct cfg_health_active *cfg, const struct sockaddr *sa,
           socklen_t salen, const struct cfg_codec *codec, struct result *r)
{
    r->ck = pool_check_new(f->base, cfg, sa, salen, "db.example:6379",
                           codec != NULL ? frame_codec : NULL, codec, on_done, r);
    assert_non_null(r->ck);
    assert_int_equal(pool_check_start(r->ck), 0);
}

/* Check f's server, run until the first report (at most 3 s). */
static void
check_once(struct fixture *f, const struct cfg_health_active *cfg, const struct cfg_codec *codec,
           struct result *r)
{
    check_addr(f, cfg, (const struct sockaddr *)&f->srv.addr, f->srv.addrlen, codec, r);
    RUN_UNTIL(f->base, r->calls > 0, 3000);
    assert_int_equal(r->calls, 1);
}

static void
done_with(struct result *r)
{
    pool_check_free(r->ck);
    r->ck = NULL;
}

/* ---- tcp ---- */

static void
test_tcp_pass(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    check_once(f, &a, NULL, &r);
    assert_true(r.pass);
    assert_string_equal(r.why, "");
    RUN_UNTIL(f->base, f->srv.accepted == 1, 1000);
    assert_int_equal(f->srv.accepted, 1);
    done_with(&r);
}

static void
test_tcp_refused(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct sockaddr_in dead;
    struct result r = {0};

    pt_refused_addr(&dead);
    check_addr(f, &a, (const struct sockaddr *)&dead, sizeof(dead), NULL, &r);
    RUN_UNTIL(f->base, r.calls > 0, 3000);
    assert_int_equal(r.calls, 1);
    assert_false(r.pass);
    assert_string_equal(r.why, "connect: Connection refused");
    done_with(&r);
}

/* cfg->port replaces the port of the address given: the server's own is refused. */
static void
test_port_override(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct sockaddr_in dead;
    struct result r = {0};

    pt_refused_addr(&dead);
    a.port = srv_port(&f->srv);
    check_addr(f, &a, (const struct sockaddr *)&dead, sizeof(dead), NULL, &r);
    RUN_UNTIL(f->base, r.calls > 0, 3000);
    assert_int_equal(r.calls, 1);
    assert_true(r.pass);
    done_with(&r);
}

/* The same for IPv6, where ::1 is there. */
static void
test_port_override_ipv6(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct sockaddr_in6 sin6;
    struct evconnlistener *l;
    struct result r = {0};
    socklen_t len = sizeof(sin6);

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    l = evconnlistener_new_bind(f->base, srv_accept, &f->srv, LEV_OPT_CLOSE_ON_FREE, 16,
                                (struct sockaddr *)&sin6, sizeof(sin6));
    if (l == NULL) {
        skip(); /* no IPv6 loopback here */
    }
    assert_int_equal(getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin6, &len), 0);
    a.port = ntohs(sin6.sin6_port);
    sin6.sin6_port = htons(1); /* replaced */
    check_addr(f, &a, (const struct sockaddr *)&sin6, sizeof(sin6), NULL, &r);
    RUN_UNTIL(f->base, r.calls > 0, 3000);
    evconnlistener_free(l);
    assert_int_equal(r.calls, 1);
    assert_true(r.pass);
    done_with(&r);
}

/* ---- send/expect ---- */

static void
test_send_expect_pass(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.until = "PING\r\n";
    f->srv.reply = "+PONG\r\n";
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &line_codec, &r);
    assert_true(r.pass);
    assert_string_equal(f->srv.got, "PING\r\n");
    done_with(&r);
}

static void
test_send_expect_mismatch(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.until = "PING\r\n";
    f->srv.reply = "-LOADING\r\n+PONG\r\n"; /* only the first reply counts */
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &line_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "reply does not match");
    done_with(&r);
}

/* A whole reply that is a proper prefix of expect: nothing more comes; a mismatch at the deadline.
 */
static void
test_expect_longer_than_the_reply(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "+OK\r\n";
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+OK\r\n and more");
    check_once(f, &a, &line_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "reply does not match");
    done_with(&r);
}

/* send alone: any complete reply passes. */
static void
test_send_any_reply(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "whatever\r\n";
    a.send = BYTES("HELLO\r\n");
    check_once(f, &a, &line_codec, &r);
    assert_true(r.pass);
    done_with(&r);
}

static void
test_expect_regex(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "$11\r\nrole:master\r\n";
    f->srv.until = "\r\n";
    a.send = BYTES("INFO replication\r\n");
    a.expect_regex = BYTES("^\\$[0-9]+\r\n$");
    check_once(f, &a, &line_codec, &r);
    assert_true(r.pass); /* matched against the first line only */
    done_with(&r);

    memset(&r, 0, sizeof(r));
    a.expect_regex = BYTES("role:(master|slave)");
    check_once(f, &a, &line_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "reply does not match");
    done_with(&r);
}

static void
test_bad_regex_is_refused(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();

    a.expect_regex = BYTES("(unclosed");
    assert_null(pool_check_new(f->base, &a, (const struct sockaddr *)&f->srv.addr, f->srv.addrlen,
                               NULL, frame_codec, &line_codec, on_done, NULL));
}

/* No send: the reply is the server's greeting, and nothing is written. */
static void
test_greeting(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.greeting = "220 mail.example ESMTP\r\n";
    a.expect = BYTES("220 ");
    check_once(f, &a, &line_codec, &r);
    assert_true(r.pass);
    assert_int_equal(f->srv.ngot, 0);
    done_with(&r);

    memset(&r, 0, sizeof(r));
    f->srv.greeting = "554 go away\r\n";
    check_once(f, &a, &line_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "reply does not match");
    done_with(&r);
}

static void
test_malformed_reply(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "a line far longer than max_frame\r\n";
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &short_line_codec, &r);
    assert_false(r.pass);
    assert_true(strncmp(r.why, "malformed reply: ", 17) == 0);
    assert_true(strlen(r.why) > 17);
    done_with(&r);
}

static void
test_closed_before_a_reply(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "+PON"; /* then closes: no whole line */
    f->srv.close_after = true;
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &line_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "closed before a reply");
    done_with(&r);
}

/* raw has no frames: a reply that agrees with expect so far is read on. */
static void
test_raw_reply_in_two_parts(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "+PO";
    f->srv.rest = "NG\r\n";
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &raw_codec, &r);
    assert_true(r.pass);
    done_with(&r);
}

static void
test_raw_mismatch_and_early_close(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "-ERR\r\n";
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &raw_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "reply does not match");
    done_with(&r);

    memset(&r, 0, sizeof(r));
    f->srv.reply = "+PO"; /* agrees so far, then the server closes */
    f->srv.close_after = true;
    check_once(f, &a, NULL, &r); /* no framer: raw */
    assert_false(r.pass);
    assert_string_equal(r.why, "reply does not match");
    done_with(&r);
}

/* ---- http ---- */

static void
test_http_200_passes(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.until = "\r\n\r\n";
    f->srv.reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    f->srv.close_after = true;
    http(&a, 200, 399);
    check_once(f, &a, NULL, &r);
    assert_true(r.pass);
    assert_string_equal(f->srv.got, "GET /healthz HTTP/1.1\r\nHost: db.example:6379\r\n"
                                    "User-Agent: sluice-health\r\nAccept: */*\r\n"
                                    "Connection: close\r\n\r\n");
    done_with(&r);
}

static void
test_http_503_fails(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.until = "\r\n\r\n";
    f->srv.reply = "HTTP/1.0 503 Service Unavailable\r\n\r\n";
    f->srv.close_after = true;
    http(&a, 200, 399);
    a.http.host = "status.example";
    check_once(f, &a, NULL, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "status 503");
    assert_non_null(strstr(f->srv.got, "\r\nHost: status.example\r\n")); /* the configured one */
    done_with(&r);
}

static void
test_http_status_range(void **state)
{
    static const struct {
        const char *reply;
        bool pass;
        const char *why;
    } cases[] = {
        {"HTTP/1.1 204 No Content\r\n\r\n", true, ""},
        {"HTTP/1.1 299\r\n\r\n", true, ""},
        {"HTTP/1.1 200 \r\n\r\n", true, ""},
        {"HTTP/1.1 302 Found\r\n\r\n", false, "status 302"},
        {"HTTP/1.1 199 Early\r\n\r\n", false, "status 199"},
        {"SSH-2.0-OpenSSH_9.2\r\n", false, "not an HTTP status line"},
        {"HTTP/1.1 2000 OK\r\n\r\n", false, "not an HTTP status line"},
        {"HTTP/2 200\r\n\r\n", false, "not an HTTP status line"},
    };
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    size_t i;

    http(&a, 200, 299);
    f->srv.until = "\r\n\r\n";
    f->srv.close_after = true;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct result r = {0};

        f->srv.reply = cases[i].reply;
        check_once(f, &a, NULL, &r);
        if (r.pass != cases[i].pass || strcmp(r.why, cases[i].why) != 0) {
            fail_msg("%s: pass %d why '%s'", cases[i].reply, r.pass, r.why);
        }
        done_with(&r);
    }
}

/* Bytes that cannot begin a status line fail at once, without waiting for a CRLF. */
static void
test_http_garbage_fails_early(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    f->srv.reply = "garbage with no line end";
    http(&a, 200, 399);
    check_once(f, &a, NULL, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "not an HTTP status line");
    done_with(&r);
}

/* ---- deadline, schedule, freeing ---- */

static void
test_timeout(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};
    uint64_t t0 = now_ms();

    a.timeout_ms = 200; /* the server accepts and never answers */
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &line_codec, &r);
    assert_false(r.pass);
    assert_string_equal(r.why, "timeout");
    /* the first check starts within interval / 10, then runs for timeout */
    assert_true(r.at[0] - t0 >= 195); /* libevent's clock is coarse */
    assert_true(r.at[0] - t0 <= 100 + 200 + 100);
    assert_int_equal(f->srv.accepted, 1);
    done_with(&r);
}

/* timeout equal to interval: checks may meet; each still ends and reports, none overlap. */
static void
test_timeout_as_long_as_interval(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};
    int i;

    a.interval_ms = 100;
    a.timeout_ms = 100;
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_addr(f, &a, (const struct sockaddr *)&f->srv.addr, f->srv.addrlen, &line_codec, &r);
    RUN_UNTIL(f->base, r.calls >= 4, 3000);
    assert_true(r.calls >= 4);
    assert_string_equal(r.why, "timeout");
    for (i = 1; i < 4; i++) {
        assert_true(r.at[i] - r.at[i - 1] >= 90 - 10); /* each ran its whole timeout */
    }
    done_with(&r);
}

/* First check within 10% of interval; then starts interval +-10% apart, not all alike. */
static void
test_jitter(void **state)
{
    enum { N = 11, INTERVAL = 200, SLACK = 25 };
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};
    uint64_t t0 = now_ms(), lo = UINT64_MAX, hi = 0;
    int i;

    a.interval_ms = INTERVAL;
    a.timeout_ms = 100;
    check_addr(f, &a, (const struct sockaddr *)&f->srv.addr, f->srv.addrlen, NULL, &r);
    RUN_UNTIL(f->base, r.calls >= N, N * INTERVAL * 2);
    assert_true(r.calls >= N);
    assert_true(r.at[0] - t0 <= INTERVAL / 10 + SLACK);
    for (i = 1; i < N; i++) {
        uint64_t gap = r.at[i] - r.at[i - 1];

        if (gap < INTERVAL * 9 / 10 - SLACK || gap > INTERVAL * 11 / 10 + SLACK) {
            fail_msg("check %d came %llu ms after the one before", i, (unsigned long long)gap);
        }
        lo = gap < lo ? gap : lo;
        hi = gap > hi ? gap : hi;
    }
    /* jittered over 40 ms, not a fixed period: 10 gaps all within 10 ms of each other
     * would happen about once in 30,000 runs */
    assert_true(hi - lo >= 10);
    assert_true(r.pass);
    done_with(&r);
}

static void
test_free_inside_done(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    a.interval_ms = 100;
    a.timeout_ms = 50;
    r.free_in_done = true;
    check_once(f, &a, NULL, &r); /* a pass */
    assert_true(r.pass);
    assert_null(r.ck);
    run_for(f->base, 300);
    assert_int_equal(r.calls, 1);

    memset(&r, 0, sizeof(r)); /* a timeout */
    r.free_in_done = true;
    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_once(f, &a, &line_codec, &r);
    assert_string_equal(r.why, "timeout");
    assert_null(r.ck);
    run_for(f->base, 300);
    assert_int_equal(r.calls, 1);

    memset(&r, 0, sizeof(r)); /* a reply that matches, reported from the read */
    r.free_in_done = true;
    f->srv.reply = "+PONG\r\n";
    check_once(f, &a, &line_codec, &r);
    assert_true(r.pass);
    assert_null(r.ck);
    run_for(f->base, 300);
    assert_int_equal(r.calls, 1);
}

/* Freed with a check under way: no report, nothing left behind. */
static void
test_free_during_a_check(void **state)
{
    struct fixture *f = *state;
    struct cfg_health_active a = active();
    struct result r = {0};

    a.send = BYTES("PING\r\n");
    a.expect = BYTES("+PONG");
    check_addr(f, &a, (const struct sockaddr *)&f->srv.addr, f->srv.addrlen, &line_codec, &r);
    RUN_UNTIL(f->base, f->srv.ngot > 0, 3000);
    assert_string_equal(f->srv.got, "PING\r\n");
    done_with(&r);
    run_for(f->base, 600);
    assert_int_equal(r.calls, 0);
    assert_null(f->srv.bevs[0]); /* the checker closed its socket */
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tcp_pass),
        T(test_tcp_refused),
        T(test_port_override),
        T(test_port_override_ipv6),
        T(test_send_expect_pass),
        T(test_send_expect_mismatch),
        T(test_expect_longer_than_the_reply),
        T(test_send_any_reply),
        T(test_expect_regex),
        T(test_bad_regex_is_refused),
        T(test_greeting),
        T(test_malformed_reply),
        T(test_closed_before_a_reply),
        T(test_raw_reply_in_two_parts),
        T(test_raw_mismatch_and_early_close),
        T(test_http_200_passes),
        T(test_http_503_fails),
        T(test_http_status_range),
        T(test_http_garbage_fails_early),
        T(test_timeout),
        T(test_timeout_as_long_as_interval),
        T(test_jitter),
        T(test_free_inside_done),
        T(test_free_during_a_check),
    };
#undef T

    return cmocka_run_group_tests_name("active health checks", tests, NULL, NULL);
}
