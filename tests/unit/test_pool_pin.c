/*
 * pool/: connection setup (hello), pinned connections, shards and one owner's
 * ordering (pool_req.after), on the fixture in pool_test_util.c. Run by
 * test_pool.c's main, in the one test_pool binary.
 */
#include "pool_test_util.h"

#include "pool/pool_hash.h"
#include "pool/pool_internal.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- connection setup (hello) ---- */

static void
test_hello_answered_before_requests_are_written(void **state)
{
    static const char *const texts[3] = {"a\n", "b\n", "c\n"};
    struct fixture *f = pt_setup_cluster(1, 8, 10, 1000);
    struct pool_handler h = pt_handler;
    struct pool_cluster *c;
    struct req reqs[4];
    int i;

    (void)state;
    h.hello = pt_hello_auth;
    h.hello_len = strlen(pt_hello_auth);
    h.hello_replies = 1;
    h.reply_ok = pt_reply_accept;
    pt_setup_replies = 0;
    c = pt_cluster_new(f, &h);
    f->up.silent = true; /* holds the setup's answer until told */
    for (i = 0; i < 2; i++) {
        pt_req_init(&reqs[i], texts[i]);
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
        assert_int_equal(reqs[i].pr.state, POOL_REQ_ASSIGNED); /* its connection is connecting */
    }
    pt_run_for(f->base, 100);
    assert_int_equal(f->up.accepted, 1);
    assert_string_equal(f->up.conns[0].seen, "AUTH x\n");
    pt_req_init(&reqs[2], texts[2]); /* connected now, the hello's reply still due */
    assert_int_equal(pt_submit(c, &reqs[2]), POOL_OK);
    assert_int_equal(reqs[2].pr.state, POOL_REQ_ASSIGNED);
    pt_run_for(f->base, 50);
    /* connected and the hello sent, but nothing else while its reply is due */
    assert_string_equal(f->up.conns[0].seen, "AUTH x\n");
    assert_int_equal(pt_setup_replies, 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, -1);
    }
    pt_up_send(&f->up, 0, "+OK\n");
    f->up.silent = false;
    pt_run_until_done(f->base, reqs, 3);
    assert_int_equal(pt_setup_replies, 1);
    /* reply_ok() judged the setup reply, which no request got */
    assert_string_equal(pt_setup_reply, "+OK\n");
    for (i = 0; i < 3; i++) {
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, texts[i]);
        assert_int_equal(reqs[i].order, i);
    }
    assert_string_equal(f->up.conns[0].seen, "AUTH x\na\nb\nc\n");
    pt_req_init(&reqs[3], "d\n"); /* on the ready connection: no second hello */
    assert_int_equal(pt_submit(c, &reqs[3]), POOL_OK);
    pt_run_until_done(f->base, &reqs[3], 1);
    assert_string_equal(reqs[3].reply, "d\n");
    assert_string_equal(f->up.conns[0].seen, "AUTH x\na\nb\nc\nd\n");
    assert_int_equal(f->up.accepted, 1);
    assert_int_equal(pt_setup_replies, 1);
    pt_free_reqs(reqs, 4);
    pt_teardown_cluster(f, c);
}

static void
test_hello_refused_fails_requests_and_backs_off(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 8, 10, 1000);
    struct pool_handler h = pt_handler;
    struct pool_cluster *c;
    struct req reqs[2];
    int i;

    (void)state;
    h.hello = pt_hello_auth;
    h.hello_len = strlen(pt_hello_auth);
    h.hello_replies = 1;
    h.reply_ok = pt_reply_reject; /* a wrong password: the echoed hello is refused */
    pt_setup_replies = 0;
    f->cfg.pool.min_idle = 1; /* the pool keeps trying to stay warm */
    c = pt_cluster_new(f, &h);
    pool_cluster_start(c);
    for (i = 0; i < 2; i++) {
        pt_req_init(&reqs[i], "r\n");
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_for(f->base, 1000);
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
    assert_int_equal(pt_setup_replies, f->up.accepted);
    for (i = 0; i < f->up.accepted; i++) {
        assert_string_equal(f->up.conns[i].seen, "AUTH x\n"); /* no request on a refused one */
    }
    assert_int_equal(pool_cluster_stats(c)->connect_failures, f->up.accepted);
    pt_free_reqs(reqs, 2);
    pt_teardown_cluster(f, c);
}

/* ---- pinned connections ---- */

static void
test_pin_takes_the_warm_connection_and_returns_it(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 1, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner o;
    struct req reqs[2];
    int i;

    (void)state;
    f->cfg.pool.min_idle = 1;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    pool_cluster_start(c);
    pt_run_for(f->base, 100);
    assert_int_equal(f->up.accepted, 1);
    pt_owner_init(&o);
    pt_pin(c, &o);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(pool_cluster_stats(c)->pins, 1);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 1); /* a new warm one, connecting */
    pt_pin_send(&o, "p1\np2\np3\n", 3);
    RUN_UNTIL(f->base, o.frames == 3, 1000);
    assert_int_equal(o.frames, 3);
    assert_string_equal(o.got, "p1\np2\np3\n"); /* every frame, in order, to its owner */
    assert_int_equal(o.lost, 0);
    assert_int_equal(f->up.accepted, 2); /* the replacement; none for the pin */
    assert_int_equal(f->up.open, 2);
    assert_string_equal(f->up.conns[0].seen, "p1\np2\np3\n"); /* the pin is the warm one */
    assert_int_equal(f->up.conns[1].nseen, 0);
    pool_unpin(o.conn, POOL_UNPIN_RETURN);
    pt_run_for(f->base, 50);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 2);
    assert_int_equal(pool_cluster_stats(c)->conns_closed, 0);
    assert_non_null(f->up.conns[0].bev);
    /* max_pipeline 1: two requests take both connections, and open none */
    pt_req_init(&reqs[0], "x\n");
    pt_req_init(&reqs[1], "y\n");
    for (i = 0; i < 2; i++) {
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_until_done(f->base, reqs, 2);
    assert_string_equal(reqs[0].reply, "x\n");
    assert_string_equal(reqs[1].reply, "y\n");
    assert_int_equal(f->up.accepted, 2);
    assert_true(f->up.conns[0].nseen > strlen("p1\np2\np3\n")); /* served on the returned one */
    assert_int_equal(o.frames, 3); /* nothing to the owner after pool_unpin() */
    pt_free_reqs(reqs, 2);
    pt_teardown_cluster(f, c);
}

static void
test_unpin_reset_cleans_then_returns(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner o;
    struct req r;

    (void)state;
    h.reset = "RESET\n";
    h.reset_len = 6;
    h.reset_replies = 1;
    h.reply_ok = pt_reply_accept;
    pt_setup_replies = 0;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    pt_owner_init(&o);
    pt_pin(c, &o); /* none idle: a new connection */
    pt_pin_send(&o, "MULTI\n", 1);
    RUN_UNTIL(f->base, o.frames == 1, 1000);
    assert_string_equal(o.got, "MULTI\n");
    pool_unpin(o.conn, POOL_UNPIN_RESET);
    RUN_UNTIL(f->base, pool_cluster_stats(c)->unpin_resets == 1, 1000);
    assert_int_equal(pool_cluster_stats(c)->unpin_resets, 1);
    assert_string_equal(f->up.conns[0].seen, "MULTI\nRESET\n");
    assert_int_equal(pt_setup_replies, 1);
    assert_string_equal(pt_setup_reply, "RESET\n"); /* the reset's reply, judged, not the owner's */
    assert_int_equal(o.frames, 1);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 1);
    assert_non_null(f->up.conns[0].bev); /* still open */
    pt_req_init(&r, "after\n");
    assert_int_equal(pt_submit(c, &r), POOL_OK);
    pt_run_until_done(f->base, &r, 1);
    assert_string_equal(r.reply, "after\n");
    assert_int_equal(f->up.accepted, 1); /* served on the reset connection */
    assert_string_equal(f->up.conns[0].seen, "MULTI\nRESET\nafter\n");
    pt_free_reqs(&r, 1);
    pt_teardown_cluster(f, c);
}

static void
test_unpin_close_and_the_pin_limit(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner a, b, x;
    enum pool_result why = POOL_OK;
    int ia;

    (void)state;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    pt_owner_init(&a);
    pt_owner_init(&b);
    pt_owner_init(&x);
    pt_pin(c, &a);
    pt_pin(c, &b);
    assert_ptr_not_equal(a.conn, b.conn);
    assert_null(pool_pin(c, 0, &x, &why)); /* max_pinned per server */
    assert_int_equal(why, POOL_PIN_LIMIT);
    pt_pin_send(&a, "a1\n", 1);
    pt_pin_send(&b, "b1\nb2\n", 2);
    RUN_UNTIL(f->base, a.frames == 1 && b.frames == 2, 1000);
    assert_string_equal(a.got, "a1\n"); /* each owner its own frames */
    assert_string_equal(b.got, "b1\nb2\n");
    ia = pt_up_find(&f->up, "a1\n");
    assert_true(ia >= 0);
    pool_unpin(a.conn, POOL_UNPIN_CLOSE);
    RUN_UNTIL(f->base, f->up.conns[ia].eof, 1000);
    assert_true(f->up.conns[ia].eof); /* the upstream saw it close */
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(pool_cluster_stats(c)->conns_closed, 1);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 0); /* not given to the pool */
    assert_int_equal(a.lost, 0);
    pt_pin(c, &x); /* its place is free again */
    assert_int_equal(pool_cluster_stats(c)->pinned, 2);
    pool_unpin(b.conn, POOL_UNPIN_CLOSE);
    pool_unpin(x.conn, POOL_UNPIN_CLOSE);
    pt_run_for(f->base, 50);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(f->up.open, 0);
    assert_int_equal(a.lost + b.lost + x.lost, 0);
    pt_teardown_cluster(f, c);
}

static void
test_unpin_inside_the_pinned_callback(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner *o;
    struct req r;
    int i;

    (void)state;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    /* RETURN from inside pinned(), then the owner is freed there and then */
    o = malloc(sizeof(*o));
    pt_owner_init(o);
    o->unpin_in_cb = POOL_UNPIN_RETURN;
    o->free_in_cb = true;
    pt_pin(c, o);
    pt_pin_send(o, "u1\n", 1);
    RUN_UNTIL(f->base, pt_pinned_frames == 1, 1000);
    assert_int_equal(pt_pinned_frames, 1);
    pt_run_for(f->base, 50);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(pool_cluster_stats(c)->conns_active, 1); /* back in the pool */
    pt_req_init(&r, "s\n");
    assert_int_equal(pt_submit(c, &r), POOL_OK);
    pt_run_until_done(f->base, &r, 1);
    assert_string_equal(r.reply, "s\n");
    assert_int_equal(f->up.accepted, 1);
    pt_free_reqs(&r, 1);
    /* CLOSE from inside pinned() with a second frame read in the same turn */
    o = malloc(sizeof(*o));
    pt_owner_init(o);
    o->unpin_in_cb = POOL_UNPIN_CLOSE;
    o->free_in_cb = true;
    pt_pin(c, o);
    pt_pin_send(o, "v1\nv2\n", 1); /* owes one: lets go after the first */
    RUN_UNTIL(f->base, pt_pinned_frames == 2, 1000);
    assert_int_equal(pt_pinned_frames, 2);
    RUN_UNTIL(f->base, f->up.conns[0].eof, 1000);
    assert_true(f->up.conns[0].eof); /* closed: v2 was still on it */
    assert_string_equal(f->up.conns[0].seen, "u1\ns\nv1\nv2\n");
    assert_int_equal(pt_pinned_frames, 2); /* v2 went to nobody (its owner is freed) */
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    for (i = 0; i < 3; i++) { /* and the pool goes on */
        pt_req_init(&r, "t\n");
        assert_int_equal(pt_submit(c, &r), POOL_OK);
        pt_run_until_done(f->base, &r, 1);
        assert_string_equal(r.reply, "t\n");
        pt_free_reqs(&r, 1);
    }
    pt_teardown_cluster(f, c);
}

static void
test_pin_lost_when_the_upstream_closes(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner a, b;
    int ia, ib;

    (void)state;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    pt_owner_init(&a);
    pt_owner_init(&b);
    pt_pin(c, &a);
    pt_pin(c, &b);
    pt_pin_send(&b, "b1\n", 1);
    RUN_UNTIL(f->base, b.frames == 1, 1000);
    assert_int_equal(b.frames, 1); /* b owes nothing now: idle */
    f->up.silent = true;
    pt_pin_send(&a, "a1\n", 1); /* a waits for a reply */
    ia = -1;
    RUN_UNTIL(f->base, (ia = pt_up_find(&f->up, "a1\n")) >= 0, 1000);
    ib = pt_up_find(&f->up, "b1\n");
    assert_true(ia >= 0 && ib >= 0);
    pt_up_close(&f->up.conns[ia]);
    RUN_UNTIL(f->base, a.lost > 0, 1000);
    assert_int_equal(a.lost, 1); /* the owner is told, with its own pointer */
    assert_int_equal(a.lost_result, POOL_UPSTREAM_ERROR);
    pt_up_close(&f->up.conns[ib]);
    RUN_UNTIL(f->base, b.lost > 0, 1000);
    assert_int_equal(b.lost, 1); /* idle or not, the connection is gone */
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    assert_int_equal(a.frames + b.frames, 1);
    pt_teardown_cluster(f, c);
}

static void
test_pin_read_deadline_only_when_asked(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner o, p;
    uint64_t t0;
    int ip;

    (void)state;
    f->cfg.timeouts.read_ms = 300;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    f->up.silent = true;
    pt_owner_init(&o);
    pt_pin(c, &o);
    t0 = pt_now_ms();
    pt_pin_send(&o, "w\n", 1); /* deadline on, armed once connected */
    RUN_UNTIL(f->base, o.lost > 0, 1000);
    assert_int_equal(o.lost, 1);
    assert_int_equal(o.lost_result, POOL_TIMEOUT);
    assert_in_range(o.lost_ms - t0, 250, 700);
    assert_int_equal(pool_cluster_stats(c)->pinned, 0);
    pt_owner_init(&p);
    p.deadline = false; /* a blocking command: waits as long as it takes */
    pt_pin(c, &p);
    pt_pin_send(&p, "blpop\n", 1);
    pt_run_for(f->base, 600);
    assert_int_equal(p.lost, 0);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    ip = pt_up_find(&f->up, "blpop\n");
    assert_true(ip >= 0);
    assert_false(f->up.conns[ip].eof);
    pt_up_send(&f->up, ip, "late\n"); /* and its reply still comes */
    RUN_UNTIL(f->base, p.frames == 1, 1000);
    assert_string_equal(p.got, "late\n");
    pool_unpin(p.conn, POOL_UNPIN_CLOSE);
    pt_run_for(f->base, 20);
    pt_teardown_cluster(f, c);
}

static void
test_pin_deadline_ends_with_the_replies(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner o;
    struct req r;
    int io;

    (void)state;
    f->cfg.timeouts.read_ms = 200;
    f->cfg.pool.idle_timeout_ms = 10000;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    pt_owner_init(&o);
    pt_pin(c, &o); /* none idle: a new connection */
    /* one shared connection stays open: more than min_idle, as under load */
    pt_req_init(&r, "s\n");
    assert_int_equal(pt_submit(c, &r), POOL_OK);
    pt_run_until_done(f->base, &r, 1);
    assert_int_equal(r.result, POOL_OK);
    assert_int_equal(pool_cluster_conns(c), 1);
    pt_pin_send(&o, "GET\n", 1); /* deadline on while the reply is owed */
    RUN_UNTIL(f->base, o.frames == 1, 1000);
    assert_int_equal(o.frames, 1);
    io = pt_up_find(&f->up, "GET\n");
    assert_true(io >= 0);
    pt_run_for(f->base, 500); /* answered, the owner idles (in a transaction) past read_ms */
    assert_false(f->up.conns[io].eof);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(o.lost, 0);
    o.deadline = false; /* then a blocking command */
    f->up.silent = true;
    pt_pin_send(&o, "BLPOP\n", 1);
    pt_run_for(f->base, 500);
    assert_false(f->up.conns[io].eof);
    assert_int_equal(pool_cluster_stats(c)->pinned, 1);
    assert_int_equal(o.lost, 0);
    pt_up_send(&f->up, io, "v\n");
    RUN_UNTIL(f->base, o.frames == 2, 1000);
    assert_string_equal(o.got, "GET\nv\n");
    pool_unpin(o.conn, POOL_UNPIN_CLOSE);
    pt_run_for(f->base, 20);
    pt_free_reqs(&r, 1);
    pt_teardown_cluster(f, c);
}

static void
test_pin_bytes_wait_for_the_hello(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 8, 10, 1000);
    struct pool_handler h = pt_pin_handler();
    struct pool_cluster *c;
    struct owner o;

    (void)state;
    h.hello = pt_hello_auth;
    h.hello_len = strlen(pt_hello_auth);
    h.hello_replies = 1;
    h.reply_ok = pt_reply_accept;
    pt_setup_replies = 0;
    f->cfg.pool.max_pinned = 2;
    c = pt_cluster_new(f, &h);
    f->up.silent = true;
    pt_owner_init(&o);
    pt_pin(c, &o); /* a new connection: it needs its hello */
    pt_pin_send(&o, "P\n", 1);
    pt_run_for(f->base, 100);
    assert_int_equal(f->up.accepted, 1);
    /* "written once connected, after the setup" (pool_pin_write) */
    assert_string_equal(f->up.conns[0].seen, "AUTH x\n");
    pt_up_send(&f->up, 0, "+OK\n");
    f->up.silent = false;
    RUN_UNTIL(f->base, o.frames == 1, 1000);
    assert_string_equal(pt_setup_reply, "+OK\n");
    assert_string_equal(o.got, "P\n"); /* the owner gets its reply, not the hello's */
    assert_string_equal(f->up.conns[0].seen, "AUTH x\nP\n");
    pool_unpin(o.conn, POOL_UNPIN_CLOSE);
    pt_run_for(f->base, 20);
    pt_teardown_cluster(f, c);
}

/* ---- shards ---- */

static void
test_shard_is_stable_and_follows_the_hash_tag(void **state)
{
    struct fixture *f = pt_setup_shards(2, 8);
    struct pool_hash_server hs[2] = {{"s1", 1}, {"s2", 1}};
    struct pool_hash_ring *ring = pool_hash_ring_new(POOL_HASH_KETAMA, hs, 2, NULL);
    struct pool_cluster *c, *untagged, *rr;
    char key[32], k2[32], k3[32];
    int counts[3] = {0, 0, 0}, split = 0, untagged_split = 0, i;

    (void)state;
    assert_non_null(ring);
    c = pt_cluster_new(f, &pt_handler);
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
    untagged = pt_cluster_new(f, &pt_handler);
    for (i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "a{u%d}", i);
        snprintf(k2, sizeof(k2), "b{u%d}", i);
        untagged_split += pool_cluster_shard(untagged, key, strlen(key)) !=
                          pool_cluster_shard(untagged, k2, strlen(k2));
    }
    assert_true(untagged_split > 0); /* with no hash_tag the braces are just bytes */
    f->cfg.balance = CFG_BALANCE_ROUND_ROBIN;
    rr = pt_cluster_new(f, &pt_handler);
    assert_int_equal(pool_cluster_shard(rr, "{u1}a", 5), 0); /* not balanced by hash */
    pool_cluster_free(rr);
    pool_cluster_free(untagged);
    pool_hash_ring_free(ring);
    pt_teardown_cluster(f, c);
}

static void
test_shard_requests_go_only_to_their_server(void **state)
{
    struct fixture *f = pt_setup_shards(2, 8);
    struct pool_handler h = pt_handler;
    struct pool_cluster *c;
    struct req reqs[10];
    char text[16];
    uint32_t s1, s2;
    int i;

    (void)state;
    h.hello = pt_hello_auth; /* requests wait for its reply: a hang-up leaves them unwritten */
    h.hello_len = strlen(pt_hello_auth);
    h.hello_replies = 1;
    h.reply_ok = pt_reply_accept;
    f->up2.hangup = 1; /* server 2's first connection hangs up on its hello */
    c = pt_cluster_new(f, &h);
    s1 = pt_shard_on(c, 1);
    s2 = pt_shard_on(c, 2);
    for (i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "t%d\n", i);
        pt_req_init(&reqs[i], text);
        reqs[i].pr.shard = i < 5 ? s2 : s1;
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_until_done(f->base, reqs, 10);
    for (i = 0; i < 10; i++) {
        char want[16];

        snprintf(want, sizeof(want), "%d:t%d\n", i < 5 ? 2 : 1, i);
        if (i < 5) { /* server 2 backs off after that hang-up: they fail, never go elsewhere */
            assert_int_equal(reqs[i].result, POOL_UPSTREAM_ERROR);
            continue;
        }
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, want);
    }
    assert_int_equal(pool_cluster_stats(c)->retries, 5);
    assert_int_equal(f->up2.accepted, 1);
    assert_string_equal(f->up2.conns[0].seen, "AUTH x\n");
    pt_run_for(f->base, 150); /* past the 100 ms backoff: server 2 is tried again */
    pt_free_reqs(reqs, 5);
    for (i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "t%d\n", i);
        pt_req_init(&reqs[i], text);
        reqs[i].pr.shard = s2;
        assert_int_equal(pt_submit(c, &reqs[i]), POOL_OK);
    }
    pt_run_until_done(f->base, reqs, 5);
    for (i = 0; i < 5; i++) {
        char want[16];

        snprintf(want, sizeof(want), "2:t%d\n", i);
        assert_int_equal(reqs[i].result, POOL_OK);
        assert_string_equal(reqs[i].reply, want);
    }
    assert_int_equal(f->up2.accepted, 2);
    assert_string_equal(f->up2.conns[1].seen, "AUTH x\nt0\nt1\nt2\nt3\nt4\n");
    assert_int_equal(f->up.accepted, 1);
    assert_string_equal(f->up.conns[0].seen, "AUTH x\nt5\nt6\nt7\nt8\nt9\n");
    pt_free_reqs(reqs, 10);
    pt_teardown_cluster(f, c);
}

static void
test_shard_backing_off_fails_fast(void **state)
{
    struct fixture *f = pt_setup_shards(2, 8);
    struct sockaddr_in dead;
    struct pool_cluster *c;
    struct req reqs[4];
    int i;

    (void)state;
    pt_refused_addr(&dead);
    memcpy(&f->addrs[1], &dead, sizeof(dead)); /* server 2 refuses connections */
    f->lens[1] = sizeof(dead);
    c = pt_cluster_new(f, &pt_handler);
    for (i = 0; i < 4; i++) {
        pt_req_init(&reqs[i], "x\n");
        reqs[i].pr.shard = pt_shard_on(c, i == 2 ? 1 : 2);
    }
    assert_int_equal(pt_submit(c, &reqs[0]), POOL_OK); /* not backing off yet: it is tried */
    pt_run_until_done(f->base, reqs, 1);
    /* its retry finds the server backing off: it fails at once, never elsewhere */
    assert_int_equal(reqs[0].result, POOL_CONNECT_FAILED);
    assert_int_equal(pool_cluster_stats(c)->connect_failures, 1);
    assert_int_equal(f->up.accepted, 0);
    /* backing off now: refused at once, bytes taken, no callback */
    assert_int_equal(pt_submit(c, &reqs[1]), POOL_CONNECT_FAILED);
    assert_int_equal(evbuffer_get_length(reqs[1].buf), 0);
    assert_int_equal(pool_cluster_stats(c)->failed[POOL_CONNECT_FAILED], 2);
    assert_int_equal(pool_cluster_stats(c)->connect_failures, 1); /* no connect tried */
    /* the other shard is fine */
    assert_int_equal(pt_submit(c, &reqs[2]), POOL_OK);
    pt_run_until_done(f->base, &reqs[2], 1);
    assert_string_equal(reqs[2].reply, "1:x\n");
    assert_int_equal(reqs[1].result, -1);
    pt_run_for(f->base, 300); /* past the backoff (200 ms after the second failure) */
    assert_int_equal(pt_submit(c, &reqs[3]), POOL_OK); /* tried again */
    pt_run_until_done(f->base, &reqs[3], 1);
    assert_int_equal(reqs[3].result, POOL_CONNECT_FAILED);
    assert_int_equal(reqs[1].result, -1);
    pt_free_reqs(reqs, 4);
    pt_teardown_cluster(f, c);
}

/* ---- one owner's order: pool_req.after ---- */

static void
test_after_goes_on_the_same_connection(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 64, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[5]; /* A P Q B C */
    struct req *a = &reqs[0], *p = &reqs[1], *q = &reqs[2], *b = &reqs[3], *x = &reqs[4];
    int ia, ip;

    (void)state;
    f->cfg.pool.min_idle = 2;
    c = pt_cluster_new(f, &pt_handler);
    pool_cluster_start(c);
    pt_run_for(f->base, 100);
    assert_int_equal(f->up.open, 2);
    pt_req_init(a, "A\n");
    pt_req_init(p, "P\n");
    pt_req_init(q, "Q\n");
    pt_req_init(b, "B\n");
    pt_req_init(x, "C\n");
    assert_int_equal(pt_submit(c, a), POOL_OK);
    assert_int_equal(pt_submit(c, p), POOL_OK);
    assert_int_equal(pt_submit(c, q), POOL_OK);
    assert_non_null(a->pr.conn);
    assert_ptr_not_equal(a->pr.conn, p->pr.conn);
    assert_ptr_equal(q->pr.conn, a->pr.conn); /* A's connection: 2 in flight, P's: 1 */
    b->pr.after = &a->pr;                     /* the same owner's next, A unanswered */
    assert_int_equal(pt_submit(c, b), POOL_OK);
    assert_ptr_equal(b->pr.conn, a->pr.conn);   /* not the less loaded one */
    assert_int_equal(pt_submit(c, x), POOL_OK); /* without after: the less loaded one */
    assert_ptr_equal(x->pr.conn, p->pr.conn);
    pt_run_until_done(f->base, reqs, 5);
    assert_string_equal(a->reply, "A\n");
    assert_string_equal(b->reply, "B\n");
    assert_true(a->order < b->order);
    ia = pt_up_find(&f->up, "A\n");
    ip = pt_up_find(&f->up, "P\n");
    assert_true(ia >= 0 && ip >= 0);
    assert_string_equal(f->up.conns[ia].seen, "A\nQ\nB\n");
    assert_string_equal(f->up.conns[ip].seen, "P\nC\n");
    assert_int_equal(f->up.accepted, 2);
    pt_free_reqs(reqs, 5);
    pt_teardown_cluster(f, c);
}

/* max_pipeline holds for one owner's pipeline too: B waits for room behind A, not beside it. */
static void
test_after_respects_max_pipeline(void **state)
{
    struct fixture *f = pt_setup_cluster(2, 1, 10, 1000);
    struct pool_cluster *c;
    struct req reqs[3]; /* A P B */
    struct req *a = &reqs[0], *p = &reqs[1], *b = &reqs[2];

    (void)state;
    f->cfg.pool.min_idle = 2;
    c = pt_cluster_new(f, &pt_handler);
    pool_cluster_start(c);
    pt_run_for(f->base, 100);
    pt_req_init(a, "A\n");
    pt_req_init(p, "P\n");
    pt_req_init(b, "B\n");
    assert_int_equal(pt_submit(c, a), POOL_OK);
    assert_int_equal(pt_submit(c, p), POOL_OK);
    b->pr.after = &a->pr;
    assert_int_equal(pt_submit(c, b), POOL_OK);
    assert_int_equal(b->pr.state, POOL_REQ_QUEUED); /* A's connection is full: B waits */
    assert_null(b->pr.conn);
    pt_run_until_done(f->base, reqs, 3);
    assert_string_equal(a->reply, "A\n");
    assert_string_equal(b->reply, "B\n");
    assert_true(a->order < b->order);
    assert_int_equal(f->up.accepted, 2);
    pt_free_reqs(reqs, 3);
    pt_teardown_cluster(f, c);
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
    conn = TAILQ_FIRST(&hook_cluster->servers[0]->conns);
    assert_non_null(conn);
    hook_room = hook_cluster->cfg->pool.max_pipeline - conn->nfifo;
    assert_int_equal(pt_submit(hook_cluster, hook_next), POOL_OK);
    hook_next_state = hook_next->pr.state;
}

static void
test_after_waits_behind_a_queued_request(void **state)
{
    struct fixture *f = pt_setup_cluster(1, 1, 10, 2000);
    struct pool_cluster *c = pt_cluster_new(f, &pt_handler);
    struct req reqs[3]; /* X, A, B */

    (void)state;
    pt_req_init(&reqs[0], "X\n");
    pt_req_init(&reqs[1], "A\n");
    pt_req_init(&reqs[2], "B\n");
    assert_int_equal(pt_submit(c, &reqs[0]), POOL_OK); /* the only connection's only slot */
    assert_int_equal(pt_submit(c, &reqs[1]), POOL_OK);
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
    pt_response_hook = submit_next_in_response;
    pt_run_until_done(f->base, reqs, 3);
    pt_response_hook = NULL;
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
    pt_free_reqs(reqs, 3);
    pt_teardown_cluster(f, c);
}

const struct CMUnitTest pool_pin_tests[] = {
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
    cmocka_unit_test(test_after_respects_max_pipeline),
    cmocka_unit_test(test_after_waits_behind_a_queued_request),
};
const size_t pool_pin_tests_count = sizeof(pool_pin_tests) / sizeof(pool_pin_tests[0]);
