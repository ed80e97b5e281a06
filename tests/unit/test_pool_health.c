/*
 * pool/pool_health.c and pool/pool_sync.c: endpoints from addresses (DNS
 * membership), passive ejection (doubling, max_eject, max_ejected_percent,
 * the return), and a worker's pool catching up with the shared health (idle
 * connections closed when a server goes down, warm ones opened when it comes
 * back, fail_fast, draining a removed server). Real loop, real upstreams on
 * 127.0.0.1; active checks themselves are in test_pool_check.c.
 */
#include "pool_test_util.h"

#include "pool/pool_health.h"
#include "pool/pool_internal.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char logged[32][256];
static int nlogged;
static int nchanged;

static void
on_changed(void *arg, struct pool_health *h)
{
    (void)arg;
    (void)h;
    nchanged++;
}

static void
on_log(void *arg, const struct pool_health *h, const char *server, bool warn, const char *msg)
{
    (void)arg;
    (void)h;
    (void)warn;
    if (nlogged < 32) {
        snprintf(logged[nlogged++], sizeof(logged[0]), "%s: %s", server != NULL ? server : "-",
                 msg);
    }
}

static const struct pool_health_ops ops = {on_changed, on_log};

static bool
was_logged(const char *needle)
{
    int i;

    for (i = 0; i < nlogged; i++) {
        if (strstr(logged[i], needle) != NULL) {
            return true;
        }
    }
    return false;
}

static struct sockaddr_storage
ip4(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    return ss;
}

struct hfix {
    struct event_base *base;
    struct cfg_server servers[3];
    struct cfg_cluster cfg;
    struct pool_health *h;
};

static void
hfix_init(struct hfix *f, size_t nservers)
{
    size_t i;

    memset(f, 0, sizeof(*f));
    nlogged = 0;
    nchanged = 0;
    f->base = event_base_new();
    assert_non_null(f->base);
    for (i = 0; i < 3; i++) {
        f->servers[i].weight = 1;
        f->servers[i].address.kind = CFG_ADDR_IPV4;
        f->servers[i].address.text = "s";
    }
    f->cfg.name = "c";
    f->cfg.servers = f->servers;
    f->cfg.nservers = nservers;
    f->cfg.health.passive.enabled = true;
    f->cfg.health.passive.consecutive_failures = 3;
    f->cfg.health.passive.eject_ms = 100;
    f->cfg.health.passive.max_eject_ms = 300;
    f->cfg.health.passive.max_ejected_percent = 50;
}

static void
hfix_new(struct hfix *f)
{
    f->h = pool_health_new(f->base, &f->cfg, NULL, NULL, &ops, NULL);
    assert_non_null(f->h);
}

static void
hfix_free(struct hfix *f)
{
    pool_health_free(f->h);
    event_base_free(f->base);
}

static void
run_ms(struct event_base *base, int ms)
{
    pt_run_for(base, ms);
}

static struct pool_endpoint **
snapshot(struct pool_health *h, size_t *n)
{
    unsigned version;
    struct pool_endpoint **eps = pool_health_endpoints(h, n, &version);

    assert_non_null(eps);
    return eps;
}

static void
put_all(struct pool_endpoint **eps, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        pool_endpoint_put(eps[i]);
    }
    free(eps);
}

static void
test_addresses_become_endpoints_and_leave(void **state)
{
    struct sockaddr_storage a[3] = {ip4("127.0.0.2", 7000), ip4("127.0.0.3", 7000),
                                    ip4("127.0.0.4", 7000)};
    struct pool_endpoint **eps, *kept;
    struct hfix f;
    unsigned v0;
    size_t n;

    (void)state;
    hfix_init(&f, 1);
    f.servers[0].address.kind = CFG_ADDR_NAME;
    f.servers[0].address.text = "svc:7000";
    hfix_new(&f);
    v0 = pool_health_version(f.h);
    assert_int_equal(pool_health_set(f.h, 0, a, 2), 1);
    assert_int_not_equal(pool_health_version(f.h), v0);
    eps = snapshot(f.h, &n);
    assert_int_equal(n, 2); /* a name with two addresses: two servers */
    assert_string_equal(eps[0]->text, "svc:7000=127.0.0.2");
    kept = eps[1];
    assert_true(pool_endpoint_fit(kept));
    assert_int_equal(pool_health_set(f.h, 0, a, 2), 0);     /* the same answer changes nothing */
    assert_int_equal(pool_health_set(f.h, 0, NULL, 0), 0);  /* nor does an empty one */
    assert_int_equal(pool_health_set(f.h, 0, &a[1], 2), 1); /* .2 leaves, .4 comes */
    assert_true(atomic_load(&eps[0]->removed));             /* still readable: we hold it */
    assert_false(atomic_load(&kept->removed));
    assert_true(was_logged("svc:7000=127.0.0.2: server removed"));
    assert_true(was_logged("svc:7000=127.0.0.4: server added"));
    put_all(eps, n);
    eps = snapshot(f.h, &n);
    assert_int_equal(n, 2);
    assert_ptr_equal(eps[0], kept); /* an address that stays keeps its endpoint */
    put_all(eps, n);
    hfix_free(&f);
}

static void
test_hash_shard_takes_one_address(void **state)
{
    struct sockaddr_storage a[2] = {ip4("127.0.0.2", 7000), ip4("127.0.0.3", 7000)};
    struct pool_endpoint **eps;
    struct hfix f;
    size_t n;

    (void)state;
    hfix_init(&f, 1);
    f.cfg.balance = CFG_BALANCE_HASH;
    hfix_new(&f);
    assert_int_equal(pool_health_set(f.h, 0, a, 2), 1);
    eps = snapshot(f.h, &n);
    assert_int_equal(n, 1); /* a shard is one server */
    put_all(eps, n);
    hfix_free(&f);
}

static void
fail_times(struct pool_endpoint *ep, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        pool_health_failure(ep);
    }
}

static void
test_ejection_doubles_and_returns(void **state)
{
    struct sockaddr_storage a[3] = {ip4("127.0.0.2", 7000), ip4("127.0.0.3", 7000),
                                    ip4("127.0.0.4", 7000)};
    struct pool_endpoint **eps;
    struct hfix f;
    size_t n, i;

    (void)state;
    hfix_init(&f, 3);
    hfix_new(&f);
    for (i = 0; i < 3; i++) {
        assert_int_equal(pool_health_set(f.h, i, &a[i], 1), 1);
    }
    eps = snapshot(f.h, &n);
    assert_int_equal(n, 3);
    fail_times(eps[0], 2);
    pool_health_success(eps[0]); /* a success breaks the run */
    fail_times(eps[0], 2);
    run_ms(f.base, 20);
    assert_false(atomic_load(&eps[0]->ejected));
    nchanged = 0;
    fail_times(eps[0], 1);
    run_ms(f.base, 20);
    assert_true(atomic_load(&eps[0]->ejected));
    assert_false(pool_endpoint_fit(eps[0]));
    assert_true(nchanged > 0); /* the workers are told */
    assert_true(was_logged("server ejected for 100ms: 3 failures in a row (ejection 1)"));
    fail_times(eps[1], 3); /* 50% of 3 servers: one may be out at a time */
    run_ms(f.base, 20);
    assert_false(atomic_load(&eps[1]->ejected));
    assert_true(was_logged("server not ejected: max_ejected_percent 50% reached"));
    assert_int_equal(pool_health_stats(f.h)->ejections_capped, 1);
    run_ms(f.base, 120); /* no active checks: back when the time is up */
    assert_false(atomic_load(&eps[0]->ejected));
    assert_true(atomic_load(&eps[0]->back) > 0); /* slow start runs from here */
    assert_true(was_logged("server back from ejection"));
    fail_times(eps[0], 3);
    run_ms(f.base, 20);
    assert_true(was_logged("server ejected for 200ms: 3 failures in a row (ejection 2)"));
    run_ms(f.base, 220);
    fail_times(eps[0], 3);
    run_ms(f.base, 20);
    assert_true(was_logged("server ejected for 300ms")); /* capped at max_eject */
    assert_int_equal(pool_health_stats(f.h)->ejections, 3);
    put_all(eps, n);
    hfix_free(&f);
}

static void
test_ejected_waits_for_a_passing_check(void **state)
{
    struct sockaddr_storage a[2];
    struct pool_endpoint **eps;
    struct upstream up;
    struct hfix f;
    size_t n;

    (void)state;
    hfix_init(&f, 2);
    memset(&up, 0, sizeof(up));
    pt_up_start(f.base, &up);
    a[0] = up.addr;
    a[1] = ip4("127.0.0.3", 7000);
    f.cfg.health.active.enabled = true; /* a connect check, every 100ms */
    f.cfg.health.active.interval_ms = 100;
    f.cfg.health.active.timeout_ms = 50;
    f.cfg.health.active.rise = 1;
    f.cfg.health.active.fall = 100;
    hfix_new(&f);
    assert_int_equal(pool_health_set(f.h, 0, &a[0], 1), 1);
    assert_int_equal(pool_health_set(f.h, 1, &a[1], 1), 1);
    assert_int_equal(pool_health_start(f.h), 0);
    eps = snapshot(f.h, &n);
    fail_times(eps[0], 3);
    run_ms(f.base, 130); /* ejected for 100ms, then waits for its next check */
    assert_true(was_logged("ejection over; back after the next passing check"));
    run_ms(f.base, 150);
    assert_false(atomic_load(&eps[0]->ejected));
    assert_true(was_logged("server back from ejection after a passing check"));
    put_all(eps, n);
    pool_health_free(f.h);
    f.h = NULL;
    pt_up_stop(&up);
    event_base_free(f.base);
}

/* ---- a worker's pool against the shared health ---- */

static void
test_pool_follows_down_and_up(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 100, 1000);
    struct pool_cluster *c;
    struct pool_server *s;
    struct req r;

    (void)state;
    f->cfg.pool.min_idle = 1;
    c = pt_cluster_new(f, &pt_handler);
    s = c->servers[0];
    pool_cluster_start(c);
    RUN_UNTIL(f->base, f->up.open == 1 && TAILQ_FIRST(&s->conns)->state == CONN_READY, 2000);
    assert_int_equal(pool_cluster_conns(c), 1);

    atomic_store(&s->ep->up, false); /* the main thread's checks took it down */
    pool_cluster_sync(c);
    assert_int_equal(pool_cluster_conns(c), 0); /* its idle connection closed at once */
    pt_req_init(&r, "x\n");
    assert_int_equal(pt_submit(c, &r), POOL_UNHEALTHY); /* fail_fast: at once */
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_UNHEALTHY], 1);
    pt_run_for(f->base, 50);
    assert_int_equal(pool_cluster_conns(c), 0); /* and no warm connection to a down server */
    pt_free_reqs(&r, 1);

    atomic_store(&s->ep->up, true); /* back; this worker has not caught up yet */
    pt_req_init(&r, "y\n");
    assert_int_equal(pt_submit(c, &r), POOL_OK); /* waits for the warm-up instead of failing */
    assert_int_equal(r.pr.state, POOL_REQ_QUEUED);
    pool_cluster_sync(c);
    assert_true(s->warming);
    assert_false(pool_server_healthy(s, pool_now_ms())); /* no traffic until it is warm */
    assert_int_equal(pool_cluster_conns(c), 1);
    assert_int_equal(r.pr.state, POOL_REQ_QUEUED);
    RUN_UNTIL(f->base, !s->warming, 2000);
    assert_false(s->warming);
    pt_run_until_done(f->base, &r, 1);
    assert_int_equal(r.result, POOL_OK);
    assert_int_equal(f->up.accepted, 2); /* the warm connection took it */
    pt_free_reqs(&r, 1);
    pt_teardown_cluster(f, c);
}

static void
test_removed_server_drains(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 100, 1000);
    struct pool_cluster *c;
    struct pool_server *old;
    struct req r[2];
    int i;

    (void)state;
    c = pt_cluster_new(f, &pt_handler);
    old = c->servers[0];
    f->up.silent = true; /* the first request stays in flight */
    pt_req_init(&r[0], "a\n");
    assert_int_equal(pt_submit(c, &r[0]), POOL_OK);
    RUN_UNTIL(f->base, f->up.lines == 1, 2000);
    pt_up_start(f->base, &f->up2);
    assert_int_equal(pool_health_set(f->health[0], 0, &f->up2.addr, 1), 1); /* DNS moved it */
    pool_cluster_sync(c);
    assert_int_equal(c->nservers, 1);
    assert_ptr_not_equal(c->servers[0], old);
    assert_true(old->gone); /* draining: its request is still in flight */
    pt_req_init(&r[1], "b\n");
    assert_int_equal(pt_submit(c, &r[1]), POOL_OK); /* new traffic goes to the new address */
    RUN_UNTIL(f->base, r[1].result != -1, 2000);
    assert_int_equal(r[1].result, POOL_OK);
    assert_int_equal(f->up2.lines, 1);
    for (i = 0; i < f->up.accepted; i++) {
        pt_up_send(&f->up, i, "a\n"); /* the old server answers: its request completes */
    }
    RUN_UNTIL(f->base, r[0].result != -1, 2000);
    assert_int_equal(r[0].result, POOL_OK);
    assert_true(TAILQ_EMPTY(&c->draining)); /* and then it is freed */
    pt_free_reqs(r, 2);
    pt_teardown_cluster(f, c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses_become_endpoints_and_leave),
        cmocka_unit_test(test_hash_shard_takes_one_address),
        cmocka_unit_test(test_ejection_doubles_and_returns),
        cmocka_unit_test(test_ejected_waits_for_a_passing_check),
        cmocka_unit_test(test_pool_follows_down_and_up),
        cmocka_unit_test(test_removed_server_drains),
    };

    return cmocka_run_group_tests_name("shared health and the pools that follow it", tests, NULL,
                                       NULL);
}
