/*
 * pool/: dispatch, pipelining, limits, the queue, retries and cancel,
 * connection setup (hello), pinned connections, shards and one owner's
 * ordering (pool_req.after), with a real event loop and real upstreams on
 * 127.0.0.1 (port 0), no mocks. An upstream echoes newline-terminated lines
 * (with a prefix naming it), or holds them (silent) until told, and records
 * every line each connection read.
 */
#include "config/cfg.h"
#include "pool/pool.h"
#include "pool/pool_hash.h"
#include "pool/pool_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
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
#include <event2/bufferevent.h>

#define MAX_CONNS 64
#define SEEN_MAX 512

/* ---- an upstream in the same loop ---- */

struct upstream;

/* One accepted connection, kept (with what it read) after it closes. */
struct up_conn {
    struct upstream *up;
    struct bufferevent *bev; /* NULL once closed */
    bool eof;                /* the pool closed it */
    bool hangup;             /* close it when its first line comes */
    char seen[SEEN_MAX];     /* every line it read, in order */
    size_t nseen;
};

struct upstream {
    struct evconnlistener *listener;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool silent;        /* read but never answer */
    const char *prefix; /* put before every echoed line: which upstream answered */
    int hangup;         /* the next this many connections close on their first line */
    int accepted;
    int open;
    int max_open;
    int lines;
    struct up_conn conns[MAX_CONNS]; /* in accept order */
};

static void
up_close(struct up_conn *uc)
{
    bufferevent_free(uc->bev);
    uc->bev = NULL;
    uc->up->open--;
}

static void
up_read(struct bufferevent *bev, void *arg)
{
    struct up_conn *uc = arg;
    struct upstream *up = uc->up;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
        if (uc->nseen + n + 1 < SEEN_MAX) {
            memcpy(uc->seen + uc->nseen, line, n);
            uc->nseen += n;
            uc->seen[uc->nseen++] = '\n';
            uc->seen[uc->nseen] = '\0';
        }
        up->lines++;
        if (uc->hangup) {
            free(line);
            up_close(uc);
            return;
        }
        if (!up->silent) {
            if (up->prefix != NULL) {
                bufferevent_write(bev, up->prefix, strlen(up->prefix));
            }
            bufferevent_write(bev, line, n);
            bufferevent_write(bev, "\n", 1);
        }
        free(line);
    }
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
    struct up_conn *uc = arg;

    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        uc->eof = true;
        up_close(uc);
    }
}

static void
up_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    struct upstream *up = arg;
    struct up_conn *uc;

    (void)sa;
    (void)len;
    if (up->accepted >= MAX_CONNS) { /* counted, not served */
        up->accepted++;
        close(fd);
        return;
    }
    uc = &up->conns[up->accepted++];
    uc->up = up;
    uc->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    if (up->hangup > 0) {
        up->hangup--;
        uc->hangup = true;
    }
    if (++up->open > up->max_open) {
        up->max_open = up->open;
    }
    bufferevent_setcb(uc->bev, up_read, NULL, up_event, uc);
    bufferevent_enable(uc->bev, EV_READ);
}

static void
up_start(struct event_base *base, struct upstream *up)
{
    struct sockaddr_in sin;

    memset(up, 0, sizeof(*up));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    up->listener = evconnlistener_new_bind(base, up_accept, up, LEV_OPT_CLOSE_ON_FREE, 128,
                                           (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(up->listener);
    up->addrlen = sizeof(up->addr);
    assert_int_equal(getsockname(evconnlistener_get_fd(up->listener), (struct sockaddr *)&up->addr,
                                 &up->addrlen),
                     0);
}

static void
up_stop(struct upstream *up)
{
    int i;

    if (up->listener == NULL) {
        return;
    }
    for (i = 0; i < MAX_CONNS; i++) {
        if (up->conns[i].bev != NULL) {
            bufferevent_free(up->conns[i].bev);
        }
    }
    evconnlistener_free(up->listener);
}

/* Answer on connection i as the upstream, whatever it read. */
static void
up_send(struct upstream *up, int i, const char *text)
{
    assert_non_null(up->conns[i].bev);
    bufferevent_write(up->conns[i].bev, text, strlen(text));
}

/* The connection whose lines began with first, or -1. */
static int
up_find(const struct upstream *up, const char *first)
{
    int i;

    for (i = 0; i < up->accepted && i < MAX_CONNS; i++) {
        if (strncmp(up->conns[i].seen, first, strlen(first)) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- the pool's owner ---- */

struct req {
    struct pool_req pr; /* first */
    struct evbuffer *buf;
    int result; /* -1 until answered */
    char reply[64];
    int order; /* when the callback came */
};

static int callbacks;
static void (*response_hook)(struct req *r); /* called after each response is recorded */

static void
on_response(struct pool_req *pr, struct evbuffer *in, size_t len)
{
    struct req *r = (struct req *)pr;

    assert_true(len < sizeof(r->reply));
    evbuffer_remove(in, r->reply, len);
    r->reply[len] = '\0';
    r->result = POOL_OK;
    r->order = callbacks++;
    if (response_hook != NULL) {
        response_hook(r);
    }
}

static struct pool_req *cancel_in_failure; /* a request the next failure callback withdraws */
static int cancel_in_failure_rc;

static void
on_failure(struct pool_req *pr, enum pool_result result)
{
    struct req *r = (struct req *)pr;

    r->result = (int)result;
    r->order = callbacks++;
    if (cancel_in_failure != NULL) { /* as a session does when it closes on a failure */
        cancel_in_failure_rc = pool_cancel(cancel_in_failure);
        cancel_in_failure = NULL;
    }
}

static void
on_leased(struct pool_req *pr, int fd)
{
    (void)pr;
    close(fd);
}

static ssize_t
frame_line(const void *arg, struct evbuffer *in, void *state, const char **why)
{
    struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);

    (void)arg;
    (void)state;
    (void)why;
    return p.pos < 0 ? POOL_FRAME_AGAIN : (ssize_t)p.pos + 1;
}

static const struct pool_handler handler = {
    .response = on_response,
    .failure = on_failure,
    .leased = on_leased,
    .frame = frame_line,
};

struct fixture {
    struct event_base *base;
    struct upstream up;
    struct upstream up2; /* the second server, when a test starts it */
    struct cfg_server servers[2];
    struct cfg_cluster cfg;
    struct sockaddr_storage addrs[2];
    socklen_t lens[2];
};

static struct fixture *
setup_cluster(unsigned max_conns, unsigned max_pipeline, unsigned queue_max,
              uint64_t queue_timeout_ms)
{
    struct fixture *f = calloc(1, sizeof(*f));

    f->base = event_base_new();
    up_start(f->base, &f->up);
    f->servers[0].weight = 1;
    f->servers[0].address.text = "upstream";
    f->cfg.name = "c";
    f->cfg.servers = f->servers;
    f->cfg.nservers = 1;
    f->cfg.retries = 1;
    f->cfg.pool.min_idle = 0;
    f->cfg.pool.max_connections = max_conns;
    f->cfg.pool.max_pipeline = max_pipeline;
    f->cfg.pool.queue.max = queue_max;
    f->cfg.pool.queue.timeout_ms = queue_timeout_ms;
    f->cfg.timeouts.connect_ms = 1000;
    f->cfg.timeouts.read_ms = 2000;
    f->addrs[0] = f->up.addr;
    f->lens[0] = f->up.addrlen;
    callbacks = 0;
    response_hook = NULL;
    return f;
}

static void
teardown_cluster(struct fixture *f, struct pool_cluster *c)
{
    pool_cluster_free(c);
    up_stop(&f->up);
    up_stop(&f->up2);
    event_base_free(f->base);
    free(f);
}

static void
req_init(struct req *r, const char *text)
{
    memset(r, 0, sizeof(*r));
    r->buf = evbuffer_new();
    evbuffer_add(r->buf, text, strlen(text));
    r->pr.frame = r->buf;
    r->result = -1;
}

/* Submit r's own bytes (the caller's buffer is the request's). */
static enum pool_result
submit(struct pool_cluster *c, struct req *r)
{
    return pool_submit(c, &r->pr, r->buf, evbuffer_get_length(r->buf));
}

/* Run the loop until every request is answered or 3 seconds pass. */
static void
run_until_done(struct event_base *base, struct req *reqs, int n)
{
    int i, spins;

    for (spins = 0; spins < 300; spins++) {
        struct timeval tv = {0, 10000};

        for (i = 0; i < n && reqs[i].result != -1; i++) {
        }
        if (i == n) {
            return;
        }
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void
run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void
free_reqs(struct req *reqs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        evbuffer_free(reqs[i].buf);
    }
}

/* A loopback address whose port was just free: connecting to it is refused. */
static void
refused_addr(struct sockaddr_in *dead)
{
    socklen_t len = sizeof(*dead);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd != -1);
    memset(dead, 0, sizeof(*dead));
    dead->sin_family = AF_INET;
    dead->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)dead, sizeof(*dead)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)dead, &len), 0);
    close(fd);
}

/* ---- tests ---- */

static void
test_pipelined_in_order_on_max_connections(void **state)
{
    struct fixture *f = setup_cluster(2, 64, 100, 1000);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[100];
    char text[32];
    int i;

    struct evbuffer *stream = evbuffer_new();

    (void)state;
    for (i = 0; i < 100; i++) { /* one client stream, cut into frames, as a session does */
        snprintf(text, sizeof(text), "r%d\n", i);
        evbuffer_add(stream, text, strlen(text));
        req_init(&reqs[i], "");
    }
    for (i = 0; i < 100; i++) {
        snprintf(text, sizeof(text), "r%d\n", i);
        assert_int_equal(pool_submit(c, &reqs[i].pr, stream, strlen(text)), POOL_OK);
    }
    assert_int_equal(evbuffer_get_length(stream), 0); /* the pool took every byte */
    evbuffer_free(stream);
    run_until_done(f->base, reqs, 100);
    for (i = 0; i < 100; i++) {
        snprintf(text, sizeof(text), "r%d\n", i);
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, text); /* each response to its own request */
    }
    assert_int_equal(f->up.max_open, 2); /* 100 requests, 64 per connection: two connections */
    assert_int_equal(pool_cluster_stats(c)->max_conns_seen, 2);
    free_reqs(reqs, 100);
    teardown_cluster(f, c);
}

static void
test_exclusive_connections_queue_the_rest(void **state)
{
    struct fixture *f = setup_cluster(3, 1, 100, 2000);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[10];
    int i;

    (void)state;
    for (i = 0; i < 10; i++) {
        req_init(&reqs[i], "x\n");
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    assert_int_equal(pool_cluster_stats(c)->queue_depth, 7); /* three on connections */
    run_until_done(f->base, reqs, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(reqs[i].result, POOL_OK);
    }
    assert_int_equal(f->up.max_open, 3);
    free_reqs(reqs, 10);
    teardown_cluster(f, c);
}

static void
test_queue_served_in_arrival_order(void **state)
{
    struct fixture *f = setup_cluster(1, 1, 100, 2000);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[10];
    char text[16];
    int i;

    (void)state;
    for (i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "n%d\n", i);
        req_init(&reqs[i], text);
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    run_until_done(f->base, reqs, 10);
    for (i = 0; i < 10; i++) { /* one connection, one at a time: strictly in arrival order */
        snprintf(text, sizeof(text), "n%d\n", i);
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, text);
        assert_int_equal(reqs[i].order, i);
    }
    assert_int_equal(f->up.accepted, 1);
    free_reqs(reqs, 10);
    teardown_cluster(f, c);
}

static void
test_queue_full_and_queue_timeout(void **state)
{
    struct fixture *f = setup_cluster(1, 1, 2, 200);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[4];
    int i;

    (void)state;
    f->up.silent = true;
    f->cfg.timeouts.read_ms = 5000;
    for (i = 0; i < 4; i++) {
        req_init(&reqs[i], "q\n");
    }
    assert_int_equal(submit(c, &reqs[0]), POOL_OK); /* on the connection */
    assert_int_equal(submit(c, &reqs[1]), POOL_OK); /* queued */
    assert_int_equal(submit(c, &reqs[2]), POOL_OK); /* queued */
    assert_int_equal(submit(c, &reqs[3]), POOL_QUEUE_FULL);
    run_for(f->base, 400);
    assert_int_equal(reqs[1].result, POOL_QUEUE_TIMEOUT);
    assert_int_equal(reqs[2].result, POOL_QUEUE_TIMEOUT);
    assert_int_equal(reqs[0].result, -1); /* still waiting on its silent upstream */
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_QUEUE_TIMEOUT], 2);
    assert_int_equal(pool_cancel(&reqs[0].pr), -1); /* written: its callback will still come */
    pool_cluster_free(c);
    assert_int_equal(reqs[0].result, POOL_SHUTDOWN);
    up_stop(&f->up);
    event_base_free(f->base);
    free(f);
    free_reqs(reqs, 4);
}

static void
test_read_deadline_fails_the_connection(void **state)
{
    struct fixture *f = setup_cluster(1, 8, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[3];
    int i;

    (void)state;
    f->cfg.timeouts.read_ms = 300;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    f->up.silent = true;
    for (i = 0; i < 3; i++) {
        req_init(&reqs[i], "s\n");
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    run_for(f->base, 200);
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, -1);
    }
    run_for(f->base, 250); /* 450 ms in: the 300 ms deadline has passed */
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, POOL_TIMEOUT); /* every request on that connection */
    }
    assert_int_equal(pool_cluster_conns(c), 0);
    free_reqs(reqs, 3);
    teardown_cluster(f, c);
}

static void
test_connect_failure_retries_on_another_server(void **state)
{
    struct fixture *f = setup_cluster(1, 8, 10, 1000);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    struct req r;

    (void)state;
    refused_addr(&dead);
    memcpy(&f->addrs[1], &f->addrs[0], sizeof(f->addrs[0]));
    f->lens[1] = f->lens[0];
    memcpy(&f->addrs[0], &dead, sizeof(dead));
    f->lens[0] = sizeof(dead);
    f->servers[1] = f->servers[0];
    f->cfg.nservers = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    req_init(&r, "hello\n");
    assert_int_equal(submit(c, &r), POOL_OK); /* round robin starts on the dead one */
    run_until_done(f->base, &r, 1);
    assert_int_equal(r.result, POOL_OK);
    assert_string_equal(r.reply, "hello\n");
    assert_int_equal(pool_cluster_stats(c)->retries, 1);
    assert_int_equal(pool_cluster_stats(c)->connect_failures, 1);
    free_reqs(&r, 1);
    teardown_cluster(f, c);
}

static void
test_cancel_unwritten_request(void **state)
{
    struct fixture *f = setup_cluster(1, 8, 10, 1000);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[2];

    (void)state;
    req_init(&reqs[0], "a\n");
    req_init(&reqs[1], "b\n");
    assert_int_equal(submit(c, &reqs[0]), POOL_OK);
    assert_int_equal(submit(c, &reqs[1]), POOL_OK);
    /* the connection is still connecting: nothing was written, so cancel withdraws it */
    assert_int_equal(pool_cancel(&reqs[0].pr), 0);
    run_until_done(f->base, &reqs[1], 1);
    assert_int_equal(reqs[1].result, POOL_OK);
    assert_string_equal(reqs[1].reply, "b\n");
    assert_int_equal(reqs[0].result, -1); /* no callback for a withdrawn request */
    assert_int_equal(callbacks, 1);
    free_reqs(reqs, 2);
    teardown_cluster(f, c);
}

static void
test_min_idle_and_max_lifetime(void **state)
{
    struct fixture *f = setup_cluster(4, 8, 10, 1000);
    struct pool_cluster *c;

    (void)state;
    f->cfg.pool.min_idle = 2;
    f->cfg.pool.max_lifetime_ms = 200;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    pool_cluster_start(c);
    run_for(f->base, 100);
    assert_int_equal(f->up.open, 2); /* warm before any request */
    run_for(f->base, 500);
    assert_int_equal(f->up.open, 2);
    assert_true(f->up.accepted >= 4); /* rotated at least once */
    teardown_cluster(f, c);
}

static void
test_max_requests_retires_connections(void **state)
{
    struct fixture *f = setup_cluster(1, 1, 100, 2000);
    struct pool_cluster *c;
    struct req reqs[6];
    int i;

    (void)state;
    f->cfg.pool.max_requests = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    for (i = 0; i < 6; i++) {
        req_init(&reqs[i], "m\n");
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    run_until_done(f->base, reqs, 6);
    for (i = 0; i < 6; i++) {
        assert_int_equal(reqs[i].result, POOL_OK); /* rotation loses nothing */
    }
    assert_int_equal(f->up.accepted, 3); /* two requests per connection */
    free_reqs(reqs, 6);
    teardown_cluster(f, c);
}

static void
test_cancel_queued_request(void **state)
{
    struct fixture *f = setup_cluster(1, 1, 10, 2000);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[3];
    int i;

    (void)state;
    for (i = 0; i < 3; i++) {
        req_init(&reqs[i], "q\n");
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    assert_int_equal(pool_cluster_stats(c)->queue_depth, 2);
    assert_int_equal(pool_cancel(&reqs[1].pr), 0); /* queued: withdrawn at once */
    assert_int_equal(pool_cluster_stats(c)->queue_depth, 1);
    run_until_done(f->base, reqs, 1);
    run_until_done(f->base, &reqs[2], 1);
    assert_int_equal(reqs[0].result, POOL_OK);
    assert_int_equal(reqs[2].result, POOL_OK);
    assert_int_equal(reqs[1].result, -1); /* never called back */
    assert_int_equal(callbacks, 2);
    free_reqs(reqs, 3);
    teardown_cluster(f, c);
}

static void
test_cancel_from_inside_a_failure_callback(void **state)
{
    struct fixture *f = setup_cluster(1, 8, 10, 2000);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    struct req reqs[3];
    int i;

    (void)state;
    refused_addr(&dead);
    memcpy(&f->addrs[0], &dead, sizeof(dead));
    f->lens[0] = sizeof(dead);
    f->cfg.retries = 0;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    for (i = 0; i < 3; i++) { /* all three wait on the one connecting connection */
        req_init(&reqs[i], "x\n");
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    cancel_in_failure = &reqs[1].pr; /* the first failure withdraws the second request */
    run_for(f->base, 300);
    assert_int_equal(reqs[0].result, POOL_CONNECT_FAILED);
    assert_int_equal(cancel_in_failure_rc, 0);
    assert_int_equal(reqs[1].result, -1); /* withdrawn from the failing list: no callback */
    assert_int_equal(reqs[2].result, POOL_CONNECT_FAILED);
    assert_int_equal(callbacks, 2);
    free_reqs(reqs, 3);
    teardown_cluster(f, c);
}

/* ---- helpers for setup, pins, shards ---- */

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop in 10 ms steps until cond holds or ms pass. */
#define RUN_UNTIL(base, cond, ms)                                                                  \
    do {                                                                                           \
        uint64_t until_ = now_ms() + (ms);                                                         \
        while (!(cond) && now_ms() < until_) {                                                     \
            run_for((base), 10);                                                                   \
        }                                                                                          \
    } while (0)

static const char hello_auth[] = "AUTH x\n";
static char setup_reply[64]; /* the last setup reply reply_ok() was shown */
static int setup_replies;    /* how many it was shown */

static void
note_setup_reply(struct evbuffer *in, size_t len)
{
    assert_true(len < sizeof(setup_reply));
    assert_true(evbuffer_get_length(in) >= len);
    evbuffer_copyout(in, setup_reply, len);
    setup_reply[len] = '\0';
    setup_replies++;
}

static int
reply_accept(const void *arg, struct evbuffer *in, size_t len)
{
    (void)arg;
    note_setup_reply(in, len);
    return 0;
}

static int
reply_reject(const void *arg, struct evbuffer *in, size_t len)
{
    (void)arg;
    note_setup_reply(in, len);
    return -1;
}

/* A pinned connection's owner, as a client session with connection state. */
#define OWNER_MAGIC 0x6f776e72u

struct owner {
    unsigned magic;
    struct pool_conn *conn;
    unsigned expect; /* replies still owed */
    bool deadline;   /* the read deadline watches them */
    int unpin_in_cb; /* -1, or the pool_unpin_mode to let go with inside pinned() once owed none */
    bool free_in_cb; /* free the owner right after that unpin */
    char got[128];   /* every frame, in order */
    size_t ngot;
    int frames;
    int lost;
    int lost_result;
    uint64_t lost_ms;
};

static int pinned_frames; /* frames to any owner, also those freed since */

static void
owner_init(struct owner *o)
{
    memset(o, 0, sizeof(*o));
    o->magic = OWNER_MAGIC;
    o->deadline = true;
    o->unpin_in_cb = -1;
    o->lost_result = -1;
}

static void
on_pinned(void *arg, struct evbuffer *in, size_t len)
{
    struct owner *o = arg;

    assert_non_null(o);
    assert_int_equal(o->magic, OWNER_MAGIC); /* the owner given to pool_pin(), still alive */
    assert_true(o->ngot + len < sizeof(o->got));
    evbuffer_remove(in, o->got + o->ngot, len);
    o->ngot += len;
    o->got[o->ngot] = '\0';
    o->frames++;
    pinned_frames++;
    if (o->expect > 0) {
        o->expect--;
        pool_pin_expect(o->conn, o->expect, o->deadline);
    }
    if (o->unpin_in_cb >= 0 && o->expect == 0) {
        pool_unpin(o->conn, (enum pool_unpin_mode)o->unpin_in_cb);
        o->conn = NULL;
        if (o->free_in_cb) {
            o->magic = 0;
            free(o);
        }
    }
}

static void
on_pin_lost(void *arg, enum pool_result result)
{
    struct owner *o = arg;

    assert_non_null(o);
    assert_int_equal(o->magic, OWNER_MAGIC);
    o->lost++;
    o->lost_result = (int)result;
    o->lost_ms = now_ms();
    o->conn = NULL;
}

static struct pool_handler
pin_handler(void)
{
    struct pool_handler h = handler;

    h.pinned = on_pinned;
    h.pin_lost = on_pin_lost;
    pinned_frames = 0;
    return h;
}

static void
pin(struct pool_cluster *c, struct owner *o)
{
    enum pool_result why = POOL_OK;

    o->conn = pool_pin(c, 0, o, &why);
    assert_non_null(o->conn);
}

/* Write text on o's pinned connection, owing replies more, as a session does. */
static void
pin_send(struct owner *o, const char *text, unsigned replies)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, text, strlen(text));
    pool_pin_write(o->conn, b, evbuffer_get_length(b));
    assert_int_equal(evbuffer_get_length(b), 0);
    evbuffer_free(b);
    o->expect += replies;
    pool_pin_expect(o->conn, o->expect, o->deadline);
}

static char tag_braces[] = "{}";
static char name_s1[] = "s1";
static char name_s2[] = "s2";

/*
 * Two servers, each its own upstream: balance hash (ketama, fnv1a_64, named
 * servers, hash_tag "{}"). Server 1 prefixes its replies with "1:", server 2
 * with "2:".
 */
static struct fixture *
setup_shards(unsigned max_conns, unsigned max_pipeline)
{
    struct fixture *f = setup_cluster(max_conns, max_pipeline, 100, 1000);

    up_start(f->base, &f->up2);
    f->up.prefix = "1:";
    f->up2.prefix = "2:";
    f->servers[0].name = name_s1;
    f->servers[1] = f->servers[0];
    f->servers[1].name = name_s2;
    f->servers[1].address.text = "upstream2";
    f->cfg.nservers = 2;
    f->cfg.balance = CFG_BALANCE_HASH;
    f->cfg.distribution = CFG_DIST_KETAMA;
    f->cfg.hash = CFG_HASH_FNV1A_64;
    f->cfg.hash_tag.ptr = tag_braces;
    f->cfg.hash_tag.len = 2;
    f->addrs[1] = f->up2.addr;
    f->lens[1] = f->up2.addrlen;
    return f;
}

/* pool_cluster_shard() of a key it places on server want (1-based), as a session sets it. */
static uint32_t
shard_on(struct pool_cluster *c, uint32_t want)
{
    char key[32];
    int i;

    for (i = 0; i < 1000; i++) {
        uint32_t shard;

        snprintf(key, sizeof(key), "%d:k", i);
        shard = pool_cluster_shard(c, key, strlen(key));
        if (shard == want) {
            return shard;
        }
    }
    fail_msg("no key on shard %u", want);
    return 0;
}

/* ---- connection setup (hello) ---- */

static void
test_hello_answered_before_requests_are_written(void **state)
{
    static const char *const texts[3] = {"a\n", "b\n", "c\n"};
    struct fixture *f = setup_cluster(1, 8, 10, 1000);
    struct pool_handler h = handler;
    struct pool_cluster *c;
    struct req reqs[4];
    int i;

    (void)state;
    h.hello = hello_auth;
    h.hello_len = strlen(hello_auth);
    h.hello_replies = 1;
    h.reply_ok = reply_accept;
    setup_replies = 0;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    f->up.silent = true; /* holds the setup's answer until told */
    for (i = 0; i < 2; i++) {
        req_init(&reqs[i], texts[i]);
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
        assert_int_equal(reqs[i].pr.state, POOL_REQ_ASSIGNED); /* its connection is connecting */
    }
    run_for(f->base, 100);
    assert_int_equal(f->up.accepted, 1);
    assert_string_equal(f->up.conns[0].seen, "AUTH x\n");
    req_init(&reqs[2], texts[2]); /* connected now, the hello's reply still due */
    assert_int_equal(submit(c, &reqs[2]), POOL_OK);
    assert_int_equal(reqs[2].pr.state, POOL_REQ_ASSIGNED);
    run_for(f->base, 50);
    /* connected and the hello sent, but nothing else while its reply is due */
    assert_string_equal(f->up.conns[0].seen, "AUTH x\n");
    assert_int_equal(setup_replies, 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, -1);
    }
    up_send(&f->up, 0, "+OK\n");
    f->up.silent = false;
    run_until_done(f->base, reqs, 3);
    assert_int_equal(setup_replies, 1);
    /* reply_ok() judged the setup reply, which no request got */
    assert_string_equal(setup_reply, "+OK\n");
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, texts[i]);
        assert_int_equal(reqs[i].order, i);
    }
    assert_string_equal(f->up.conns[0].seen, "AUTH x\na\nb\nc\n");
    req_init(&reqs[3], "d\n"); /* on the ready connection: no second hello */
    assert_int_equal(submit(c, &reqs[3]), POOL_OK);
    run_until_done(f->base, &reqs[3], 1);
    assert_string_equal(reqs[3].reply, "d\n");
    assert_string_equal(f->up.conns[0].seen, "AUTH x\na\nb\nc\nd\n");
    assert_int_equal(f->up.accepted, 1);
    assert_int_equal(setup_replies, 1);
    free_reqs(reqs, 4);
    teardown_cluster(f, c);
}

static void
test_hello_refused_fails_requests_and_backs_off(void **state)
{
    struct fixture *f = setup_cluster(1, 8, 10, 1000);
    struct pool_handler h = handler;
    struct pool_cluster *c;
    struct req reqs[2];
    int i;

    (void)state;
    h.hello = hello_auth;
    h.hello_len = strlen(hello_auth);
    h.hello_replies = 1;
    h.reply_ok = reply_reject; /* a wrong password: the echoed hello is refused */
    setup_replies = 0;
    f->cfg.pool.min_idle = 1; /* the pool keeps trying to stay warm */
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    pool_cluster_start(c);
    for (i = 0; i < 2; i++) {
        req_init(&reqs[i], "r\n");
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    run_for(f->base, 1000);
    for (i = 0; i < 2; i++) {
        assert_int_equal(reqs[i].result, POOL_REFUSED);
    }
    assert_int_equal(pool_cluster_stats(c)->retries, 2); /* retries 1: each was tried twice */
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_REFUSED], 2);
    /*
     * Backoff 100, 200, 400 ms...: about 4 connections in a second (the
     * retry's comes at once), not one per loop turn.
     */
    assert_in_range(f->up.accepted, 3, 6);
    assert_int_equal(setup_replies, f->up.accepted);
    for (i = 0; i < f->up.accepted; i++) {
        assert_string_equal(f->up.conns[i].seen, "AUTH x\n"); /* no request on a refused one */
    }
    assert_int_equal(pool_cluster_stats(c)->connect_failures, f->up.accepted);
    free_reqs(reqs, 2);
    teardown_cluster(f, c);
}

/* ---- pinned connections ---- */

static void
test_pin_takes_the_warm_connection_and_returns_it(void **state)
{
    struct fixture *f = setup_cluster(2, 1, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner o;
    struct req reqs[2];
    int i;

    (void)state;
    f->cfg.pool.min_idle = 1;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    pool_cluster_start(c);
    run_for(f->base, 100);
    assert_int_equal(f->up.accepted, 1);
    owner_init(&o);
    pin(c, &o);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(pool_cluster_stats(c)->pins, 1);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 1); /* a new warm one, connecting */
    pin_send(&o, "p1\np2\np3\n", 3);
    RUN_UNTIL(f->base, o.frames == 3, 1000);
    assert_int_equal(o.frames, 3);
    assert_string_equal(o.got, "p1\np2\np3\n"); /* every frame, in order, to its owner */
    assert_int_equal(o.lost, 0);
    assert_int_equal(f->up.accepted, 2); /* the replacement; none for the pin */
    assert_int_equal(f->up.open, 2);
    assert_string_equal(f->up.conns[0].seen, "p1\np2\np3\n"); /* the pin is the warm one */
    assert_int_equal(f->up.conns[1].nseen, 0);
    pool_unpin(o.conn, POOL_UNPIN_RETURN);
    run_for(f->base, 50);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 2);
    assert_int_equal(pool_cluster_stats(c)->conns_closed, 0);
    assert_non_null(f->up.conns[0].bev);
    /* max_pipeline 1: two requests take both connections, and open none */
    req_init(&reqs[0], "x\n");
    req_init(&reqs[1], "y\n");
    for (i = 0; i < 2; i++) {
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    run_until_done(f->base, reqs, 2);
    assert_string_equal(reqs[0].reply, "x\n");
    assert_string_equal(reqs[1].reply, "y\n");
    assert_int_equal(f->up.accepted, 2);
    assert_true(f->up.conns[0].nseen > strlen("p1\np2\np3\n")); /* served on the returned one */
    assert_int_equal(o.frames, 3); /* nothing to the owner after pool_unpin() */
    free_reqs(reqs, 2);
    teardown_cluster(f, c);
}

static void
test_unpin_reset_cleans_then_returns(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner o;
    struct req r;

    (void)state;
    h.reset = "RESET\n";
    h.reset_len = 6;
    h.reset_replies = 1;
    h.reply_ok = reply_accept;
    setup_replies = 0;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    owner_init(&o);
    pin(c, &o); /* none idle: a new connection */
    pin_send(&o, "MULTI\n", 1);
    RUN_UNTIL(f->base, o.frames == 1, 1000);
    assert_string_equal(o.got, "MULTI\n");
    pool_unpin(o.conn, POOL_UNPIN_RESET);
    RUN_UNTIL(f->base, pool_cluster_stats(c)->unpin_resets == 1, 1000);
    assert_int_equal(pool_cluster_stats(c)->unpin_resets, 1);
    assert_string_equal(f->up.conns[0].seen, "MULTI\nRESET\n");
    assert_int_equal(setup_replies, 1);
    assert_string_equal(setup_reply, "RESET\n"); /* the reset's reply, judged, not the owner's */
    assert_int_equal(o.frames, 1);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 1);
    assert_non_null(f->up.conns[0].bev); /* still open */
    req_init(&r, "after\n");
    assert_int_equal(submit(c, &r), POOL_OK);
    run_until_done(f->base, &r, 1);
    assert_string_equal(r.reply, "after\n");
    assert_int_equal(f->up.accepted, 1); /* served on the reset connection */
    assert_string_equal(f->up.conns[0].seen, "MULTI\nRESET\nafter\n");
    free_reqs(&r, 1);
    teardown_cluster(f, c);
}

static void
test_unpin_close_and_the_pin_limit(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner a, b, x;
    enum pool_result why = POOL_OK;
    int ia;

    (void)state;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    owner_init(&a);
    owner_init(&b);
    owner_init(&x);
    pin(c, &a);
    pin(c, &b);
    assert_ptr_not_equal(a.conn, b.conn);
    assert_null(pool_pin(c, 0, &x, &why)); /* max_pinned per server */
    assert_int_equal(why, POOL_PIN_LIMIT);
    pin_send(&a, "a1\n", 1);
    pin_send(&b, "b1\nb2\n", 2);
    RUN_UNTIL(f->base, a.frames == 1 && b.frames == 2, 1000);
    assert_string_equal(a.got, "a1\n"); /* each owner its own frames */
    assert_string_equal(b.got, "b1\nb2\n");
    ia = up_find(&f->up, "a1\n");
    assert_true(ia >= 0);
    pool_unpin(a.conn, POOL_UNPIN_CLOSE);
    RUN_UNTIL(f->base, f->up.conns[ia].eof, 1000);
    assert_true(f->up.conns[ia].eof); /* the upstream saw it close */
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(pool_cluster_stats(c)->conns_closed, 1);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 0); /* not given to the pool */
    assert_int_equal(a.lost, 0);
    pin(c, &x); /* its place is free again */
    assert_int_equal(pool_cluster_stats(c)->pinned, 2);
    pool_unpin(b.conn, POOL_UNPIN_CLOSE);
    pool_unpin(x.conn, POOL_UNPIN_CLOSE);
    run_for(f->base, 50);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(f->up.open, 0);
    assert_int_equal(a.lost + b.lost + x.lost, 0);
    teardown_cluster(f, c);
}

static void
test_unpin_inside_the_pinned_callback(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner *o;
    struct req r;
    int i;

    (void)state;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    /* RETURN from inside pinned(), then the owner is freed there and then */
    o = malloc(sizeof(*o));
    owner_init(o);
    o->unpin_in_cb = POOL_UNPIN_RETURN;
    o->free_in_cb = true;
    pin(c, o);
    pin_send(o, "u1\n", 1);
    RUN_UNTIL(f->base, pinned_frames == 1, 1000);
    assert_int_equal(pinned_frames, 1);
    run_for(f->base, 50);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 1); /* back in the pool */
    req_init(&r, "s\n");
    assert_int_equal(submit(c, &r), POOL_OK);
    run_until_done(f->base, &r, 1);
    assert_string_equal(r.reply, "s\n");
    assert_int_equal(f->up.accepted, 1);
    free_reqs(&r, 1);
    /* CLOSE from inside pinned() with a second frame read in the same turn */
    o = malloc(sizeof(*o));
    owner_init(o);
    o->unpin_in_cb = POOL_UNPIN_CLOSE;
    o->free_in_cb = true;
    pin(c, o);
    pin_send(o, "v1\nv2\n", 1); /* owes one: lets go after the first */
    RUN_UNTIL(f->base, pinned_frames == 2, 1000);
    assert_int_equal(pinned_frames, 2);
    RUN_UNTIL(f->base, f->up.conns[0].eof, 1000);
    assert_true(f->up.conns[0].eof); /* closed: v2 was still on it */
    assert_string_equal(f->up.conns[0].seen, "u1\ns\nv1\nv2\n");
    assert_int_equal(pinned_frames, 2); /* v2 went to nobody (its owner is freed) */
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    for (i = 0; i < 3; i++) { /* and the pool goes on */
        req_init(&r, "t\n");
        assert_int_equal(submit(c, &r), POOL_OK);
        run_until_done(f->base, &r, 1);
        assert_string_equal(r.reply, "t\n");
        free_reqs(&r, 1);
    }
    teardown_cluster(f, c);
}

static void
test_pin_lost_when_the_upstream_closes(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner a, b;
    int ia, ib;

    (void)state;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    owner_init(&a);
    owner_init(&b);
    pin(c, &a);
    pin(c, &b);
    pin_send(&b, "b1\n", 1);
    RUN_UNTIL(f->base, b.frames == 1, 1000);
    assert_int_equal(b.frames, 1); /* b owes nothing now: idle */
    f->up.silent = true;
    pin_send(&a, "a1\n", 1); /* a waits for a reply */
    ia = -1;
    RUN_UNTIL(f->base, (ia = up_find(&f->up, "a1\n")) >= 0, 1000);
    ib = up_find(&f->up, "b1\n");
    assert_true(ia >= 0 && ib >= 0);
    up_close(&f->up.conns[ia]);
    RUN_UNTIL(f->base, a.lost > 0, 1000);
    assert_int_equal(a.lost, 1); /* the owner is told, with its own pointer */
    assert_int_equal(a.lost_result, POOL_UPSTREAM_ERROR);
    up_close(&f->up.conns[ib]);
    RUN_UNTIL(f->base, b.lost > 0, 1000);
    assert_int_equal(b.lost, 1); /* idle or not, the connection is gone */
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(a.frames + b.frames, 1);
    teardown_cluster(f, c);
}

static void
test_pin_read_deadline_only_when_asked(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner o, p;
    uint64_t t0;
    int ip;

    (void)state;
    f->cfg.timeouts.read_ms = 300;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    f->up.silent = true;
    owner_init(&o);
    pin(c, &o);
    t0 = now_ms();
    pin_send(&o, "w\n", 1); /* deadline on, armed once connected */
    RUN_UNTIL(f->base, o.lost > 0, 1000);
    assert_int_equal(o.lost, 1);
    assert_int_equal(o.lost_result, POOL_TIMEOUT);
    assert_in_range(o.lost_ms - t0, 250, 700);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    owner_init(&p);
    p.deadline = false; /* a blocking command: waits as long as it takes */
    pin(c, &p);
    pin_send(&p, "blpop\n", 1);
    run_for(f->base, 600);
    assert_int_equal(p.lost, 0);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    ip = up_find(&f->up, "blpop\n");
    assert_true(ip >= 0);
    assert_false(f->up.conns[ip].eof);
    up_send(&f->up, ip, "late\n"); /* and its reply still comes */
    RUN_UNTIL(f->base, p.frames == 1, 1000);
    assert_string_equal(p.got, "late\n");
    pool_unpin(p.conn, POOL_UNPIN_CLOSE);
    run_for(f->base, 20);
    teardown_cluster(f, c);
}

static void
test_pin_deadline_ends_with_the_replies(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner o;
    struct req r;
    int io;

    (void)state;
    f->cfg.timeouts.read_ms = 200;
    f->cfg.pool.idle_timeout_ms = 10000;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    owner_init(&o);
    pin(c, &o); /* none idle: a new connection */
    /* one shared connection stays open: more than min_idle, as under load */
    req_init(&r, "s\n");
    assert_int_equal(submit(c, &r), POOL_OK);
    run_until_done(f->base, &r, 1);
    assert_int_equal(r.result, POOL_OK);
    assert_int_equal(pool_cluster_conns(c), 1);
    pin_send(&o, "GET\n", 1); /* deadline on while the reply is owed */
    RUN_UNTIL(f->base, o.frames == 1, 1000);
    assert_int_equal(o.frames, 1);
    io = up_find(&f->up, "GET\n");
    assert_true(io >= 0);
    run_for(f->base, 500); /* answered, the owner idles (in a transaction) past read_ms */
    assert_false(f->up.conns[io].eof);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(o.lost, 0);
    o.deadline = false; /* then a blocking command */
    f->up.silent = true;
    pin_send(&o, "BLPOP\n", 1);
    run_for(f->base, 500);
    assert_false(f->up.conns[io].eof);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(o.lost, 0);
    up_send(&f->up, io, "v\n");
    RUN_UNTIL(f->base, o.frames == 2, 1000);
    assert_string_equal(o.got, "GET\nv\n");
    pool_unpin(o.conn, POOL_UNPIN_CLOSE);
    run_for(f->base, 20);
    free_reqs(&r, 1);
    teardown_cluster(f, c);
}

static void
test_pin_bytes_wait_for_the_hello(void **state)
{
    struct fixture *f = setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pin_handler();
    struct pool_cluster *c;
    struct owner o;

    (void)state;
    h.hello = hello_auth;
    h.hello_len = strlen(hello_auth);
    h.hello_replies = 1;
    h.reply_ok = reply_accept;
    setup_replies = 0;
    f->cfg.pool.max_pinned = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    f->up.silent = true;
    owner_init(&o);
    pin(c, &o); /* a new connection: it needs its hello */
    pin_send(&o, "P\n", 1);
    run_for(f->base, 100);
    assert_int_equal(f->up.accepted, 1);
    /* "written once connected, after the setup" (pool_pin_write) */
    assert_string_equal(f->up.conns[0].seen, "AUTH x\n");
    up_send(&f->up, 0, "+OK\n");
    f->up.silent = false;
    RUN_UNTIL(f->base, o.frames == 1, 1000);
    assert_string_equal(setup_reply, "+OK\n");
    assert_string_equal(o.got, "P\n"); /* the owner gets its reply, not the hello's */
    assert_string_equal(f->up.conns[0].seen, "AUTH x\nP\n");
    pool_unpin(o.conn, POOL_UNPIN_CLOSE);
    run_for(f->base, 20);
    teardown_cluster(f, c);
}

/* ---- shards ---- */

static void
test_shard_is_stable_and_follows_the_hash_tag(void **state)
{
    struct fixture *f = setup_shards(2, 8);
    struct pool_hash_server hs[2] = {{"s1", 1}, {"s2", 1}};
    struct pool_hash_ring *ring = pool_hash_ring_new(POOL_HASH_KETAMA, hs, 2, NULL);
    struct pool_cluster *c, *untagged, *rr;
    char key[32], k2[32], k3[32];
    int counts[3] = {0, 0, 0}, split = 0, untagged_split = 0, i;

    (void)state;
    assert_non_null(ring);
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    assert_int_equal(pool_cluster_nservers(c), 2);
    for (i = 0; i < 200; i++) {
        uint32_t s, h;

        snprintf(key, sizeof(key), "%d:key", i); /* twemproxy's fnv1a_64 bunches "key:%d" */
        s = pool_cluster_shard(c, key, strlen(key));
        assert_in_range(s, 1, 2);
        assert_int_equal(pool_cluster_shard(c, key, strlen(key)), s); /* the same every time */
        /* as twemproxy: ketama over the servers' names, fnv1a_64 of the key */
        h = pool_hash_key(POOL_HASH_FNV1A_64, key, strlen(key));
        assert_int_equal(s, 1 + pool_hash_ring_pick(ring, h));
        counts[s]++;
    }
    assert_true(counts[1] > 20 && counts[2] > 20); /* both servers hold keys */
    for (i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "{u%d}a", i);
        snprintf(k2, sizeof(k2), "{u%d}b", i);
        snprintf(k3, sizeof(k3), "u%d", i);
        assert_int_equal(pool_cluster_shard(c, key, strlen(key)),
                         pool_cluster_shard(c, k2, strlen(k2)));
        assert_int_equal(pool_cluster_shard(c, key, strlen(key)), /* the tag's part is hashed */
                         pool_cluster_shard(c, k3, strlen(k3)));
        snprintf(key, sizeof(key), "a{u%d}", i);
        snprintf(k2, sizeof(k2), "b{u%d}", i);
        assert_int_equal(pool_cluster_shard(c, key, strlen(key)),
                         pool_cluster_shard(c, k2, strlen(k2)));
        assert_int_equal(pool_cluster_shard(c, key, strlen(key)),
                         pool_cluster_shard(c, k3, strlen(k3)));
        snprintf(key, sizeof(key), "au%d", i);
        snprintf(k2, sizeof(k2), "bu%d", i);
        split += pool_cluster_shard(c, key, strlen(key)) != pool_cluster_shard(c, k2, strlen(k2));
    }
    assert_true(split > 0); /* without a tag, such pairs do part */
    f->cfg.hash_tag.ptr = NULL;
    f->cfg.hash_tag.len = 0;
    untagged = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    for (i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "a{u%d}", i);
        snprintf(k2, sizeof(k2), "b{u%d}", i);
        untagged_split += pool_cluster_shard(untagged, key, strlen(key)) !=
                          pool_cluster_shard(untagged, k2, strlen(k2));
    }
    assert_true(untagged_split > 0); /* with no hash_tag the braces are just bytes */
    f->cfg.balance = CFG_BALANCE_ROUND_ROBIN;
    rr = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    assert_int_equal(pool_cluster_shard(rr, "{u1}a", 5), 0); /* not balanced by hash */
    pool_cluster_free(rr);
    pool_cluster_free(untagged);
    pool_hash_ring_free(ring);
    teardown_cluster(f, c);
}

static void
test_shard_requests_go_only_to_their_server(void **state)
{
    struct fixture *f = setup_shards(2, 8);
    struct pool_handler h = handler;
    struct pool_cluster *c;
    struct req reqs[10];
    char text[16];
    uint32_t s1, s2;
    int i;

    (void)state;
    h.hello = hello_auth; /* requests wait for its reply: a hang-up leaves them unwritten */
    h.hello_len = strlen(hello_auth);
    h.hello_replies = 1;
    h.reply_ok = reply_accept;
    f->up2.hangup = 1; /* server 2's first connection hangs up on its hello */
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &h);
    s1 = shard_on(c, 1);
    s2 = shard_on(c, 2);
    for (i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "t%d\n", i);
        req_init(&reqs[i], text);
        reqs[i].pr.shard = i < 5 ? s2 : s1;
        assert_int_equal(submit(c, &reqs[i]), POOL_OK);
    }
    run_until_done(f->base, reqs, 10);
    for (i = 0; i < 10; i++) {
        char want[16];

        snprintf(want, sizeof(want), "%d:t%d\n", i < 5 ? 2 : 1, i);
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, want);
    }
    assert_int_equal(pool_cluster_stats(c)->retries, 5); /* retried, on their own server */
    assert_int_equal(f->up2.accepted, 2);
    assert_string_equal(f->up2.conns[0].seen, "AUTH x\n");
    assert_string_equal(f->up2.conns[1].seen, "AUTH x\nt0\nt1\nt2\nt3\nt4\n");
    assert_int_equal(f->up.accepted, 1);
    assert_string_equal(f->up.conns[0].seen, "AUTH x\nt5\nt6\nt7\nt8\nt9\n");
    free_reqs(reqs, 10);
    teardown_cluster(f, c);
}

static void
test_shard_backing_off_fails_fast(void **state)
{
    struct fixture *f = setup_shards(2, 8);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    struct req reqs[4];
    int i;

    (void)state;
    refused_addr(&dead);
    memcpy(&f->addrs[1], &dead, sizeof(dead)); /* server 2 refuses connections */
    f->lens[1] = sizeof(dead);
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    for (i = 0; i < 4; i++) {
        req_init(&reqs[i], "x\n");
        reqs[i].pr.shard = shard_on(c, i == 2 ? 1 : 2);
    }
    assert_int_equal(submit(c, &reqs[0]), POOL_OK); /* not backing off yet: it is tried */
    run_until_done(f->base, reqs, 1);
    assert_int_equal(reqs[0].result, POOL_CONNECT_FAILED); /* and retried there, not elsewhere */
    assert_int_equal(pool_cluster_stats(c)->connect_failures, 2);
    assert_int_equal(f->up.accepted, 0);
    /* backing off now: refused at once, bytes taken, no callback */
    assert_int_equal(submit(c, &reqs[1]), POOL_CONNECT_FAILED);
    assert_int_equal(evbuffer_get_length(reqs[1].buf), 0);
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_CONNECT_FAILED], 2);
    assert_int_equal(pool_cluster_stats(c)->connect_failures, 2); /* no connect tried */
    /* the other shard is fine */
    assert_int_equal(submit(c, &reqs[2]), POOL_OK);
    run_until_done(f->base, &reqs[2], 1);
    assert_string_equal(reqs[2].reply, "1:x\n");
    assert_int_equal(reqs[1].result, -1);
    run_for(f->base, 300); /* past the backoff (200 ms after the second failure) */
    assert_int_equal(submit(c, &reqs[3]), POOL_OK); /* tried again */
    run_until_done(f->base, &reqs[3], 1);
    assert_int_equal(reqs[3].result, POOL_CONNECT_FAILED);
    assert_int_equal(reqs[1].result, -1);
    free_reqs(reqs, 4);
    teardown_cluster(f, c);
}

/* ---- one owner's order: pool_req.after ---- */

static void
test_after_goes_on_the_same_connection(void **state)
{
    struct fixture *f = setup_cluster(2, 64, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[5]; /* A P Q B C */
    struct req *a = &reqs[0], *p = &reqs[1], *q = &reqs[2], *b = &reqs[3], *x = &reqs[4];
    int ia, ip;

    (void)state;
    f->cfg.pool.min_idle = 2;
    c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    pool_cluster_start(c);
    run_for(f->base, 100);
    assert_int_equal(f->up.open, 2);
    req_init(a, "A\n");
    req_init(p, "P\n");
    req_init(q, "Q\n");
    req_init(b, "B\n");
    req_init(x, "C\n");
    assert_int_equal(submit(c, a), POOL_OK);
    assert_int_equal(submit(c, p), POOL_OK);
    assert_int_equal(submit(c, q), POOL_OK);
    assert_non_null(a->pr.conn);
    assert_ptr_not_equal(a->pr.conn, p->pr.conn);
    assert_ptr_equal(q->pr.conn, a->pr.conn); /* A's connection: 2 in flight, P's: 1 */
    b->pr.after = &a->pr;                     /* the same owner's next, A unanswered */
    assert_int_equal(submit(c, b), POOL_OK);
    assert_ptr_equal(b->pr.conn, a->pr.conn); /* not the less loaded one */
    assert_int_equal(submit(c, x), POOL_OK);  /* without after: the less loaded one */
    assert_ptr_equal(x->pr.conn, p->pr.conn);
    run_until_done(f->base, reqs, 5);
    assert_string_equal(a->reply, "A\n");
    assert_string_equal(b->reply, "B\n");
    assert_true(a->order < b->order);
    ia = up_find(&f->up, "A\n");
    ip = up_find(&f->up, "P\n");
    assert_true(ia >= 0 && ip >= 0);
    assert_string_equal(f->up.conns[ia].seen, "A\nQ\nB\n");
    assert_string_equal(f->up.conns[ip].seen, "P\nC\n");
    assert_int_equal(f->up.accepted, 2);
    free_reqs(reqs, 5);
    teardown_cluster(f, c);
}

static struct pool_cluster *hook_cluster;
static struct req *hook_first, *hook_next; /* when hook_first is answered, submit hook_next */
static int hook_next_state = -1;
static unsigned hook_room = 0; /* free slots on the connection at that moment */

static void
submit_next_in_response(struct req *r)
{
    struct pool_conn *conn;

    if (r != hook_first) {
        return;
    }
    conn = TAILQ_FIRST(&hook_cluster->servers[0].conns);
    assert_non_null(conn);
    hook_room = hook_cluster->cfg->pool.max_pipeline - conn->nfifo;
    assert_int_equal(submit(hook_cluster, hook_next), POOL_OK);
    hook_next_state = hook_next->pr.state;
}

static void
test_after_waits_behind_a_queued_request(void **state)
{
    struct fixture *f = setup_cluster(1, 1, 10, 2000);
    struct pool_cluster *c = pool_cluster_new(f->base, &f->cfg, f->addrs, f->lens, &handler);
    struct req reqs[3]; /* X, A, B */

    (void)state;
    req_init(&reqs[0], "X\n");
    req_init(&reqs[1], "A\n");
    req_init(&reqs[2], "B\n");
    assert_int_equal(submit(c, &reqs[0]), POOL_OK); /* the only connection's only slot */
    assert_int_equal(submit(c, &reqs[1]), POOL_OK);
    assert_int_equal(reqs[1].pr.state, POOL_REQ_QUEUED);
    /*
     * B follows A. It comes inside X's response callback: X's slot is free and
     * the queue not yet served, so B could go straight on, ahead of A.
     */
    reqs[2].pr.after = &reqs[1].pr;
    hook_cluster = c;
    hook_first = &reqs[0];
    hook_next = &reqs[2];
    hook_next_state = -1;
    hook_room = 0;
    response_hook = submit_next_in_response;
    run_until_done(f->base, reqs, 3);
    response_hook = NULL;
    /* B could have gone on at once, but waited behind A */
    assert_int_equal(hook_room, 1);
    assert_int_equal(hook_next_state, POOL_REQ_QUEUED);
    assert_int_equal(reqs[1].result, POOL_OK);
    assert_int_equal(reqs[2].result, POOL_OK);
    assert_string_equal(reqs[1].reply, "A\n");
    assert_string_equal(reqs[2].reply, "B\n");
    assert_true(reqs[1].order < reqs[2].order);
    assert_string_equal(f->up.conns[0].seen, "X\nA\nB\n");
    assert_int_equal(f->up.accepted, 1);
    free_reqs(reqs, 3);
    teardown_cluster(f, c);
}

/* ---- balancers, on a cluster with servers but no connections ---- */

struct bal {
    struct pool_cluster c;
    struct pool_server s[3];
    struct cfg_server cfg[3];
};

static void
bal_init(struct bal *b, unsigned w0, unsigned w1, unsigned w2)
{
    size_t i;

    memset(b, 0, sizeof(*b));
    b->cfg[0].weight = w0;
    b->cfg[1].weight = w1;
    b->cfg[2].weight = w2;
    for (i = 0; i < 3; i++) {
        b->s[i].cluster = &b->c;
        b->s[i].cfg = &b->cfg[i];
    }
    b->c.servers = b->s;
    b->c.nservers = 3;
    b->c.rng = 88172645463325252ULL;
}

static void
count_picks(struct bal *b, enum cfg_balance kind, const struct pool_server *exclude, int n,
            int counts[3])
{
    const struct pool_balancer *bal = pool_balancer_for(kind);
    int i;

    counts[0] = counts[1] = counts[2] = 0;
    for (i = 0; i < n; i++) {
        struct pool_server *s = bal->pick(&b->c, exclude);

        assert_non_null(s);
        counts[s - b->s]++;
    }
}

static void
test_round_robin_is_smooth_and_weighted(void **state)
{
    const struct pool_balancer *rr = pool_balancer_for(CFG_BALANCE_ROUND_ROBIN);
    static const int smooth[7] = {0, 0, 1, 0, 2, 0, 0}; /* nginx's: a a b a c a a, not aaaaabc */
    struct bal b;
    int counts[3], i;

    (void)state;
    bal_init(&b, 5, 1, 1);
    for (i = 0; i < 14; i++) {
        assert_int_equal(rr->pick(&b.c, NULL) - b.s, smooth[i % 7]);
    }
    count_picks(&b, CFG_BALANCE_ROUND_ROBIN, NULL, 7000, counts);
    assert_int_equal(counts[0], 5000); /* exact shares */
    assert_int_equal(counts[1], 1000);
    assert_int_equal(counts[2], 1000);
}

static void
test_random_follows_weights(void **state)
{
    struct bal b;
    int counts[3];

    (void)state;
    bal_init(&b, 2, 1, 1);
    count_picks(&b, CFG_BALANCE_RANDOM, NULL, 40000, counts);
    assert_in_range(counts[0], 19000, 21000);
    assert_in_range(counts[1], 9000, 11000);
    assert_in_range(counts[2], 9000, 11000);
}

static void
test_least_request_avoids_the_loaded(void **state)
{
    struct bal b;
    int counts[3];

    (void)state;
    bal_init(&b, 1, 1, 1);
    b.s[0].inflight = 100;
    count_picks(&b, CFG_BALANCE_LEAST_REQUEST, NULL, 9000, counts);
    /* two choices: the loaded one wins only when both draws are it (1 in 9) */
    assert_in_range(counts[0], 700, 1300);
    assert_in_range(counts[1], 3500, 4500);
}

static void
test_balancers_skip_excluded_and_backing_off(void **state)
{
    static const enum cfg_balance kinds[] = {CFG_BALANCE_ROUND_ROBIN, CFG_BALANCE_RANDOM,
                                             CFG_BALANCE_LEAST_REQUEST};
    struct bal b;
    int counts[3];
    size_t k;

    (void)state;
    for (k = 0; k < 3; k++) {
        bal_init(&b, 1, 1, 1);
        count_picks(&b, kinds[k], &b.s[1], 300, counts);
        assert_int_equal(counts[1], 0); /* a retry goes elsewhere */
        b.s[2].down_until = UINT64_MAX;
        count_picks(&b, kinds[k], NULL, 300, counts);
        assert_int_equal(counts[2], 0); /* a server backing off is skipped */
        b.s[0].down_until = b.s[1].down_until = UINT64_MAX;
        count_picks(&b, kinds[k], NULL, 300, counts);
        assert_int_equal(counts[0] + counts[1] + counts[2], 300); /* all down: still try */
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_in_order_on_max_connections),
        cmocka_unit_test(test_exclusive_connections_queue_the_rest),
        cmocka_unit_test(test_queue_served_in_arrival_order),
        cmocka_unit_test(test_queue_full_and_queue_timeout),
        cmocka_unit_test(test_read_deadline_fails_the_connection),
        cmocka_unit_test(test_connect_failure_retries_on_another_server),
        cmocka_unit_test(test_cancel_unwritten_request),
        cmocka_unit_test(test_min_idle_and_max_lifetime),
        cmocka_unit_test(test_max_requests_retires_connections),
        cmocka_unit_test(test_cancel_queued_request),
        cmocka_unit_test(test_cancel_from_inside_a_failure_callback),
        cmocka_unit_test(test_hello_answered_before_requests_are_written),
        cmocka_unit_test(test_hello_refused_fails_requests_and_backs_off),
        cmocka_unit_test(test_pin_takes_the_warm_connection_and_returns_it),
        cmocka_unit_test(test_unpin_reset_cleans_then_returns),
        cmocka_unit_test(test_unpin_close_and_the_pin_limit),
        cmocka_unit_test(test_unpin_inside_the_pinned_callback),
        cmocka_unit_test(test_pin_lost_when_the_upstream_closes),
        cmocka_unit_test(test_pin_read_deadline_only_when_asked),
        cmocka_unit_test(test_pin_deadline_ends_with_the_replies),
        cmocka_unit_test(test_pin_bytes_wait_for_the_hello),
        cmocka_unit_test(test_shard_is_stable_and_follows_the_hash_tag),
        cmocka_unit_test(test_shard_requests_go_only_to_their_server),
        cmocka_unit_test(test_shard_backing_off_fails_fast),
        cmocka_unit_test(test_after_goes_on_the_same_connection),
        cmocka_unit_test(test_after_waits_behind_a_queued_request),
        cmocka_unit_test(test_round_robin_is_smooth_and_weighted),
        cmocka_unit_test(test_random_follows_weights),
        cmocka_unit_test(test_least_request_avoids_the_loaded),
        cmocka_unit_test(test_balancers_skip_excluded_and_backing_off),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
