/*
 * pool/: dispatch, pipelining, limits, the queue, retries and cancel, with a
 * real event loop and a real upstream on 127.0.0.1 (port 0), no mocks. The
 * upstream echoes newline-terminated lines, or holds them (silent) until told.
 */
#include "config/cfg.h"
#include "pool/pool.h"
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/bufferevent.h>

#define MAX_CONNS 64

/* ---- an upstream in the same loop ---- */

struct upstream {
    struct evconnlistener *listener;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool silent; /* read but never answer */
    int accepted;
    int open;
    int max_open;
    struct bufferevent *conns[MAX_CONNS];
};

static void
up_read(struct bufferevent *bev, void *arg)
{
    struct upstream *up = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (!up->silent) {
        bufferevent_write_buffer(bev, in);
    }
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *up = arg;
    int i;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        for (i = 0; i < MAX_CONNS; i++) {
            if (up->conns[i] == bev) {
                up->conns[i] = NULL;
            }
        }
        up->open--;
        bufferevent_free(bev);
    }
}

static void
up_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    struct upstream *up = arg;
    struct bufferevent *bev =
        bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    int i;

    (void)sa;
    (void)len;
    up->accepted++;
    if (++up->open > up->max_open) {
        up->max_open = up->open;
    }
    for (i = 0; i < MAX_CONNS; i++) {
        if (up->conns[i] == NULL) {
            up->conns[i] = bev;
            break;
        }
    }
    bufferevent_setcb(bev, up_read, NULL, up_event, up);
    bufferevent_enable(bev, EV_READ);
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

    for (i = 0; i < MAX_CONNS; i++) {
        if (up->conns[i] != NULL) {
            bufferevent_free(up->conns[i]);
        }
    }
    evconnlistener_free(up->listener);
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

static void
on_response(struct pool_req *pr, struct evbuffer *in, size_t len)
{
    struct req *r = (struct req *)pr;

    assert_true(len < sizeof(r->reply));
    evbuffer_remove(in, r->reply, len);
    r->reply[len] = '\0';
    r->result = POOL_OK;
    r->order = callbacks++;
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
    return f;
}

static void
teardown_cluster(struct fixture *f, struct pool_cluster *c)
{
    pool_cluster_free(c);
    up_stop(&f->up);
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
    struct timeval tv = {0, ms * 1000};

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
        cmocka_unit_test(test_round_robin_is_smooth_and_weighted),
        cmocka_unit_test(test_random_follows_weights),
        cmocka_unit_test(test_least_request_avoids_the_loaded),
        cmocka_unit_test(test_balancers_skip_excluded_and_backing_off),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
