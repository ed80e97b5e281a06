/*
 * pool/: dispatch, pipelining, limits, the queue, retries and cancel, and the
 * balancers, with a real event loop and real upstreams on 127.0.0.1 (port 0),
 * no mocks (the fixture is in pool_test_util.c). Connection setup (hello),
 * pinned connections, shards and one owner's ordering are in test_pool_pin.c;
 * this binary runs both.
 */
#include "pool_test_util.h"

#include "pool/pool_internal.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tests ---- */

static void
test_pipelined_in_order_on_max_connections(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 64, 100, 1000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[100];
    char text[32];
    int i;

    struct evbuffer *stream = evbuffer_new();

    (void)state;
    for (i = 0; i < 100; i++) { /* one client stream, cut into frames, as a session does */
        snprintf(text, sizeof(text), "r%d\n", i);
        evbuffer_add(stream, text, strlen(text));
        pt_req_init(&reqs[i], "");
    }
    for (i = 0; i < 100; i++) {
        snprintf(text, sizeof(text), "r%d\n", i);
        assert_int_equal(pool_submit(c, &reqs[i].pr, stream, strlen(text)), POOL_OK);
    }
    assert_int_equal(evbuffer_get_length(stream), 0); /* the pool took every byte */
    evbuffer_free(stream);
    pt_run_until_done(f->base, reqs, 100);
    for (i = 0; i < 100; i++) {
        snprintf(text, sizeof(text), "r%d\n", i);
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, text); /* each response to its own request */
    }
    assert_int_equal(f->up.max_open, 2); /* 100 requests, 64 per connection: two connections */
    assert_int_equal(pool_cluster_stats(c)->max_conns_seen, 2);
    pt_free_reqs(reqs, 100);
    pt_teardown_cluster(f, c);
}

static uint64_t
latency_count(const struct pool_stats *st)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i <= POOL_LATENCY_BUCKETS; i++) {
        n += POOL_STAT_GET(st->latency[i]);
    }
    return n;
}

/* Two pools, one after the other, count into one block (a reload): counters run on, gauges
 * come back to zero when a pool goes, every answer is in the latency histogram. */
static void
test_counters_shared_by_successive_pools(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 64, 100, 1000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler); /* makes the shared health */
    struct pool_cluster *a, *b;
    struct pool_stats st;
    struct req reqs[20];
    char text[32];
    int i;

    (void)state;
    memset(&st, 0, sizeof(st));
    a = pool_cluster_new(f->base, &f->cfg, f->health[0], &pt_handler, &st);
    assert_non_null(a);
    for (i = 0; i < 20; i++) {
        snprintf(text, sizeof(text), "q%d\n", i);
        pt_req_init(&reqs[i], text);
        assert_int_equal(pt_submit(i < 10 ? a : c, &reqs[i]), POOL_OK);
    }
    pt_run_until_done(f->base, reqs, 20);
    assert_int_equal(POOL_STAT_GET(st.requests), 10); /* c counts in its own block */
    assert_int_equal(POOL_STAT_GET(st.responses), 10);
    assert_int_equal(latency_count(&st), 10);
    assert_int_equal(POOL_STAT_GET(st.conns_active), 1);
    assert_int_equal(POOL_STAT_GET(st.conns_idle), 1); /* answered: nothing in flight */
    assert_int_equal(latency_count(pool_cluster_stats(c)), 10);
    pool_cluster_free(a);
    assert_int_equal(POOL_STAT_GET(st.conns_active), 0);
    assert_int_equal(POOL_STAT_GET(st.conns_idle), 0);
    assert_int_equal(POOL_STAT_GET(st.conns_closed), POOL_STAT_GET(st.conns_opened));
    pt_free_reqs(reqs, 20);

    b = pool_cluster_new(f->base, &f->cfg, f->health[0], &pt_handler, &st);
    assert_non_null(b);
    for (i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "r%d\n", i);
        pt_req_init(&reqs[i], text);
        assert_int_equal(pt_submit(b, &reqs[i]), POOL_OK);
    }
    assert_int_equal(POOL_STAT_GET(st.conns_idle), 0); /* connecting, then busy */
    pt_run_until_done(f->base, reqs, 10);
    assert_int_equal(POOL_STAT_GET(st.requests), 20);
    assert_int_equal(POOL_STAT_GET(st.responses), 20);
    assert_int_equal(latency_count(&st), 20);
    assert_true(POOL_STAT_GET(st.latency_sum_us) > 0);
    pool_cluster_free(b);
    assert_int_equal(POOL_STAT_GET(st.conns_active), 0);
    pt_free_reqs(reqs, 10);
    pt_teardown_cluster(f, c);
}

static void
test_exclusive_connections_queue_the_rest(void **state)
{
    struct fixture *f = pt_setup_cluster(3, 1, 100, 2000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[10];
    int i;

    (void)state;
    for (i = 0; i < 10; i++) {
        pt_req_init(&reqs[i], "x\n");
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    assert_int_equal(pool_cluster_stats(c)->queue_depth, 7); /* three on connections */
    pt_run_until_done(f->base, reqs, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(reqs[i].result, POOL_OK);
    }
    assert_int_equal(f->up.max_open, 3);
    pt_free_reqs(reqs, 10);
    pt_teardown_cluster(f, c);
}

static void
test_queue_served_in_arrival_order(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 1, 100, 2000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[10];
    char text[16];
    int i;

    (void)state;
    for (i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "n%d\n", i);
        pt_req_init(&reqs[i], text);
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_until_done(f->base, reqs, 10);
    for (i = 0; i < 10; i++) { /* one connection, one at a time: strictly in arrival order */
        snprintf(text, sizeof(text), "n%d\n", i);
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, text);
        assert_int_equal(reqs[i].order, i);
    }
    assert_int_equal(f->up.accepted, 1);
    pt_free_reqs(reqs, 10);
    pt_teardown_cluster(f, c);
}

static void
test_queue_full_and_queue_timeout(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 1, 2, 200);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[4];
    int i;

    (void)state;
    f->up.silent = true;
    f->cfg.timeouts.read_ms = 5000;
    for (i = 0; i < 4; i++) {
        pt_req_init(&reqs[i], "q\n");
    }
    assert_int_equal(pt_submit(c, &reqs[0]), POOL_OK); /* on the connection */
    assert_int_equal(pt_submit(c, &reqs[1]), POOL_OK); /* queued */
    assert_int_equal(pt_submit(c, &reqs[2]), POOL_OK); /* queued */
    assert_int_equal(pt_submit(c, &reqs[3]), POOL_QUEUE_FULL);
    pt_run_for(f->base, 400);
    assert_int_equal(reqs[1].result, POOL_QUEUE_TIMEOUT);
    assert_int_equal(reqs[2].result, POOL_QUEUE_TIMEOUT);
    assert_int_equal(reqs[0].result, -1); /* still waiting on its silent upstream */
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_QUEUE_TIMEOUT], 2);
    assert_int_equal(pool_cancel(&reqs[0].pr), -1); /* written: its callback will still come */
    pool_cluster_free(c);
    assert_int_equal(reqs[0].result, POOL_SHUTDOWN);
    pt_teardown_cluster(f, NULL);
    pt_free_reqs(reqs, 4);
}

static void
test_read_deadline_fails_the_connection(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 8, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[3];
    int i;

    (void)state;
    f->cfg.timeouts.read_ms = 300;
    c = pt_cluster_new(f, &pt_handler);
    f->up.silent = true;
    for (i = 0; i < 3; i++) {
        pt_req_init(&reqs[i], "s\n");
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_for(f->base, 200);
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, -1);
    }
    pt_run_for(f->base, 250); /* 450 ms in: the 300 ms deadline has passed */
    /* the oldest timed out; those behind it were lost with the connection */
    assert_int_equal(reqs[0].result, POOL_TIMEOUT);
    for (i = 1; i < 3; i++) {
        assert_int_equal(reqs[i].result, POOL_UPSTREAM_ERROR);
    }
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_TIMEOUT], 1);
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_UPSTREAM_ERROR], 2);
    assert_int_equal(pool_cluster_conns(c), 0);
    pt_free_reqs(reqs, 3);
    pt_teardown_cluster(f, c);
}

static void
test_connect_failure_retries_on_another_server(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 8, 10, 1000);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    struct req r;

    (void)state;
    pt_refused_addr(&dead);
    memcpy(&f->addrs[1], &f->addrs[0], sizeof(f->addrs[0]));
    f->lens[1] = f->lens[0];
    memcpy(&f->addrs[0], &dead, sizeof(dead));
    f->lens[0] = sizeof(dead);
    f->servers[1] = f->servers[0];
    f->cfg.nservers = 2;
    c = pt_cluster_new(f, &pt_handler);
    pt_req_init(&r, "hello\n");
    assert_int_equal(pt_submit(c, &r), POOL_OK); /* round robin starts on the dead one */
    pt_run_until_done(f->base, &r, 1);
    assert_int_equal(r.result, POOL_OK);
    assert_string_equal(r.reply, "hello\n");
    assert_int_equal(pool_cluster_stats(c)->retries, 1);
    assert_int_equal(pool_cluster_stats(c)->connect_failures, 1);
    pt_free_reqs(&r, 1);
    pt_teardown_cluster(f, c);
}

static void
test_cancel_unwritten_request(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 8, 10, 1000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[2];

    (void)state;
    pt_req_init(&reqs[0], "a\n");
    pt_req_init(&reqs[1], "b\n");
    assert_int_equal(pt_submit(c, &reqs[0]), POOL_OK);
    assert_int_equal(pt_submit(c, &reqs[1]), POOL_OK);
    /* the connection is still connecting: nothing was written, so cancel withdraws it */
    assert_int_equal(pool_cancel(&reqs[0].pr), 0);
    pt_run_until_done(f->base, &reqs[1], 1);
    assert_int_equal(reqs[1].result, POOL_OK);
    assert_string_equal(reqs[1].reply, "b\n");
    assert_int_equal(reqs[0].result, -1); /* no callback for a withdrawn request */
    assert_int_equal(pt_callbacks, 1);
    pt_free_reqs(reqs, 2);
    pt_teardown_cluster(f, c);
}

static void
test_min_idle_and_max_lifetime(void **state)
{
    struct fixture *f = pt_setup_cluster(4, 8, 10, 1000);
    struct pool_cluster *c;

    (void)state;
    f->cfg.pool.min_idle = 2;
    f->cfg.pool.max_lifetime_ms = 200;
    c = pt_cluster_new(f, &pt_handler);
    pool_cluster_start(c);
    pt_run_for(f->base, 100);
    assert_int_equal(f->up.open, 2); /* warm before any request */
    pt_run_for(f->base, 500);
    assert_int_equal(f->up.open, 2);
    assert_true(f->up.accepted >= 4); /* rotated at least once */
    pt_teardown_cluster(f, c);
}

static void
test_max_requests_retires_connections(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 1, 100, 2000);
    struct pool_cluster *c;
    struct req reqs[6];
    int i;

    (void)state;
    f->cfg.pool.max_requests = 2;
    c = pt_cluster_new(f, &pt_handler);
    for (i = 0; i < 6; i++) {
        pt_req_init(&reqs[i], "m\n");
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_until_done(f->base, reqs, 6);
    for (i = 0; i < 6; i++) {
        assert_int_equal(reqs[i].result, POOL_OK); /* rotation loses nothing */
    }
    assert_int_equal(f->up.accepted, 3); /* two requests per connection */
    pt_free_reqs(reqs, 6);
    pt_teardown_cluster(f, c);
}

static void
test_cancel_queued_request(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 1, 10, 2000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[3];
    int i;

    (void)state;
    for (i = 0; i < 3; i++) {
        pt_req_init(&reqs[i], "q\n");
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    assert_int_equal(pool_cluster_stats(c)->queue_depth, 2);
    assert_int_equal(pool_cancel(&reqs[1].pr), 0); /* queued: withdrawn at once */
    assert_int_equal(pool_cluster_stats(c)->queue_depth, 1);
    pt_run_until_done(f->base, reqs, 1);
    pt_run_until_done(f->base, &reqs[2], 1);
    assert_int_equal(reqs[0].result, POOL_OK);
    assert_int_equal(reqs[2].result, POOL_OK);
    assert_int_equal(reqs[1].result, -1); /* never called back */
    assert_int_equal(pt_callbacks, 2);
    pt_free_reqs(reqs, 3);
    pt_teardown_cluster(f, c);
}

static void
test_cancel_from_inside_a_failure_callback(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 8, 10, 2000);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    struct req reqs[3];
    int i;

    (void)state;
    pt_refused_addr(&dead);
    memcpy(&f->addrs[0], &dead, sizeof(dead));
    f->lens[0] = sizeof(dead);
    f->cfg.retries = 0;
    c = pt_cluster_new(f, &pt_handler);
    for (i = 0; i < 3; i++) { /* all three wait on the one connecting connection */
        pt_req_init(&reqs[i], "x\n");
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_cancel_in_failure = &reqs[1].pr; /* the first failure withdraws the second request */
    pt_run_for(f->base, 300);
    assert_int_equal(reqs[0].result, POOL_CONNECT_FAILED);
    assert_int_equal(pt_cancel_in_failure_rc, 0);
    assert_int_equal(reqs[1].result, -1); /* withdrawn from the failing list: no callback */
    assert_int_equal(reqs[2].result, POOL_CONNECT_FAILED);
    assert_int_equal(pt_callbacks, 2);
    pt_free_reqs(reqs, 3);
    pt_teardown_cluster(f, c);
}

/* ---- balancers, on a cluster with servers but no connections ---- */

struct bal {
    struct pool_cluster c;
    struct cfg_cluster ccfg;
    struct pool_server s[3];
    struct pool_server *ptr[3];
    struct pool_endpoint ep[3];
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
        atomic_init(&b->ep[i].up, true);
        b->s[i].cluster = &b->c;
        b->s[i].cfg = &b->cfg[i];
        b->s[i].ep = &b->ep[i];
        b->s[i].fit = true;
        b->ptr[i] = &b->s[i];
    }
    b->c.cfg = &b->ccfg;
    b->c.servers = b->ptr;
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

static void
test_balancers_follow_health_and_panic(void **state)
{
    static const enum cfg_balance kinds[] = {CFG_BALANCE_ROUND_ROBIN, CFG_BALANCE_RANDOM,
                                             CFG_BALANCE_LEAST_REQUEST};
    struct bal b;
    int counts[3];
    size_t k;

    (void)state;
    for (k = 0; k < 3; k++) {
        const struct pool_balancer *bal = pool_balancer_for(kinds[k]);

        bal_init(&b, 1, 1, 1);
        atomic_store(&b.ep[0].up, false);     /* down by its checks */
        atomic_store(&b.ep[1].ejected, true); /* ejected by traffic */
        b.s[2].down_until = UINT64_MAX;       /* only backing off: still healthy */
        count_picks(&b, kinds[k], NULL, 300, counts);
        assert_int_equal(counts[2], 300);
        atomic_store(&b.ep[2].removed, true); /* nothing healthy: fail_fast picks none */
        assert_null(bal->pick(&b.c, NULL));
        assert_true(pool_cluster_failing_fast(&b.c, pool_now_ms()));
        b.ccfg.panic = CFG_PANIC_ROUTE_ALL; /* route_all: every server */
        assert_false(pool_cluster_failing_fast(&b.c, pool_now_ms()));
        count_picks(&b, kinds[k], NULL, 300, counts);
        assert_true(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
        atomic_store(&b.ep[1].ejected, false); /* one healthy again: only it */
        count_picks(&b, kinds[k], NULL, 300, counts);
        assert_int_equal(counts[1], 300);
        b.ccfg.panic = CFG_PANIC_FAIL_FAST;
        b.s[1].warming = true; /* warming up its connections: not yet */
        b.s[1].warm_until = UINT64_MAX;
        assert_null(bal->pick(&b.c, NULL));
        b.s[1].warm_until = pool_now_ms(); /* warmed up, or out of time */
        count_picks(&b, kinds[k], NULL, 300, counts);
        assert_int_equal(counts[1], 300);
    }
}

static void
test_slow_start_ramps_the_weight(void **state)
{
    uint64_t now = pool_now_ms();
    struct bal b;
    int counts[3];

    (void)state;
    bal_init(&b, 1, 1, 1);
    b.ccfg.slow_start_ms = 10000;
    atomic_store(&b.ep[0].back, now); /* just back: 10% of its weight */
    assert_int_equal(pool_server_weight(&b.s[0], now), 10);
    assert_int_equal(pool_server_weight(&b.s[0], now + 5000), 50);
    assert_int_equal(pool_server_weight(&b.s[0], now + 10000), 100);
    assert_int_equal(pool_server_weight(&b.s[1], now), 100); /* never away: full weight */
    count_picks(&b, CFG_BALANCE_ROUND_ROBIN, NULL, 2100, counts);
    assert_in_range(counts[0], 90, 150);     /* 10 of 210 while the clock barely moves */
    atomic_store(&b.ep[0].back, now - 5000); /* half way */
    count_picks(&b, CFG_BALANCE_RANDOM, NULL, 25000, counts);
    assert_in_range(counts[0], 4500, 5600); /* 50 of 250 */
}

/* A connection whose oldest request waits past pool.stall takes no one else's requests. */
static void
test_stalled_connection_takes_no_new_requests(void **state)
{
    struct fixture *f = pt_setup_cluster(4, 8, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[3];
    int i;

    (void)state;
    f->cfg.pool.stall_ms = 5;
    c = pt_cluster_new(f, &pt_handler);
    f->up.silent = true; /* nothing is answered: the first request stalls its connection */
    pt_req_init(&reqs[0], "slow\n");
    assert_int_equal(pt_submit(c, &reqs[0]), POOL_OK);
    pt_run_for(f->base, 30);
    pt_req_init(&reqs[1], "fast\n");
    assert_int_equal(pt_submit(c, &reqs[1]), POOL_OK);
    pt_req_init(&reqs[2], "next\n"); /* the new connection is not stalled: it takes this one */
    assert_int_equal(pt_submit(c, &reqs[2]), POOL_OK);
    pt_run_for(f->base, 30);
    assert_int_equal(f->up.accepted, 2);
    assert_int_equal(pt_up_find(&f->up, "slow\n"), 0);
    assert_int_equal(pt_up_find(&f->up, "fast\n"), 1);
    assert_string_equal(f->up.conns[1].seen, "fast\nnext\n");
    assert_int_equal(pool_cluster_stats(c)->stalls, 2);
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, -1);
    }
    pt_teardown_cluster(f, c);
    pt_free_reqs(reqs, 3);
}

/* Every connection stalled and no more may open: the least loaded stalled one rather than none. */
static void
test_stalled_connections_still_serve_at_max_connections(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 8, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[2];

    (void)state;
    f->cfg.pool.stall_ms = 5;
    c = pt_cluster_new(f, &pt_handler);
    f->up.silent = true;
    pt_req_init(&reqs[0], "slow\n");
    assert_int_equal(pt_submit(c, &reqs[0]), POOL_OK);
    pt_run_for(f->base, 30);
    pt_req_init(&reqs[1], "fast\n");
    assert_int_equal(pt_submit(c, &reqs[1]), POOL_OK);
    pt_run_for(f->base, 30);
    assert_int_equal(f->up.accepted, 1);
    assert_string_equal(f->up.conns[0].seen, "slow\nfast\n");
    assert_int_equal(pool_cluster_stats(c)->queued, 0);
    pt_teardown_cluster(f, c);
    pt_free_reqs(reqs, 2);
}

/*
 * A read deadline: the head fails as a timeout; behind it, a request that
 * may be repeated is sent again on a new connection, the other is lost.
 */
static void
test_read_deadline_repeats_what_may_be_repeated(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[3];
    int i;

    (void)state;
    f->cfg.timeouts.read_ms = 300;
    c = pt_cluster_new(f, &pt_handler);
    f->up.silent = true;
    pt_req_init(&reqs[0], "a\n");
    pt_req_init(&reqs[1], "b\n");
    pt_req_init(&reqs[2], "c\n");
    reqs[1].pr.may_repeat = 1;
    for (i = 0; i < 3; i++) {
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_for(f->base, 100);
    assert_string_equal(f->up.conns[0].seen, "a\nb\nc\n");
    f->up.silent = false; /* answers from now on: too late for what the first connection read */
    pt_run_until_done(f->base, reqs, 3);
    assert_int_equal(reqs[0].result, POOL_TIMEOUT);
    assert_int_equal(reqs[1].result, POOL_OK);
    assert_string_equal(reqs[1].reply, "b\n");
    assert_int_equal(reqs[2].result, POOL_UPSTREAM_ERROR);
    assert_int_equal(f->up.accepted, 2);
    assert_string_equal(f->up.conns[1].seen, "b\n");
    assert_int_equal(pool_cluster_stats(c)->repeats, 1);
    assert_int_equal(evbuffer_get_length(reqs[1].buf), 0); /* the kept bytes are gone */
    pt_teardown_cluster(f, c);
    pt_free_reqs(reqs, 3);
}

/* A refusing server is backed off under load too: requests fail fast, few connects are made. */
static void
test_backoff_holds_under_load(void **state)
{
    struct fixture *f = pt_setup_cluster(4, 8, 10, 1000);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    uint64_t until;
    int n = 0, fast = 0;

    (void)state;
    pt_refused_addr(&dead);
    memcpy(&f->addrs[0], &dead, sizeof(dead));
    f->lens[0] = sizeof(dead);
    c = pt_cluster_new(f, &pt_handler);
    until = pt_now_ms() + 1500;
    while (pt_now_ms() < until) {
        struct req r;

        pt_req_init(&r, "x\n");
        if (pt_submit(c, &r) == POOL_CONNECT_FAILED) {
            fast++;
        } else {
            pt_run_until_done(f->base, &r, 1);
            assert_int_equal(r.result, POOL_CONNECT_FAILED);
        }
        pt_free_reqs(&r, 1);
        pt_run_for(f->base, 2);
        n++;
    }
    /* failures at 0, 0.1, 0.3, 0.7 s and the probe at 1.5 s at the latest */
    assert_in_range(pool_cluster_stats(c)->connect_failures, 3, 6);
    assert_true(fast > n / 2);
    assert_true(pool_cluster_stats(c)->connects_deferred > 0);
    pt_teardown_cluster(f, c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_in_order_on_max_connections),
        cmocka_unit_test(test_stalled_connection_takes_no_new_requests),
        cmocka_unit_test(test_stalled_connections_still_serve_at_max_connections),
        cmocka_unit_test(test_read_deadline_repeats_what_may_be_repeated),
        cmocka_unit_test(test_backoff_holds_under_load),
        cmocka_unit_test(test_counters_shared_by_successive_pools),
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
        cmocka_unit_test(test_balancers_follow_health_and_panic),
        cmocka_unit_test(test_slow_start_ramps_the_weight),
    };
    int failed = cmocka_run_group_tests_name("dispatch, queue and balancers", tests, NULL, NULL);

    return failed + _cmocka_run_group_tests("setup, pins, shards and order", pool_pin_tests,
                                            pool_pin_tests_count, NULL, NULL);
}
