/* The pool tests' shared fixture: see pool_test_util.h. */
#include "pool_test_util.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- an upstream in the same loop ---- */

void
pt_up_close(struct up_conn *uc)
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
            pt_up_close(uc);
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
        pt_up_close(uc);
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

void
pt_up_start(struct event_base *base, struct upstream *up)
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

void
pt_up_stop(struct upstream *up)
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
void
pt_up_send(struct upstream *up, int i, const char *text)
{
    assert_non_null(up->conns[i].bev);
    bufferevent_write(up->conns[i].bev, text, strlen(text));
}

/* The connection whose lines began with first, or -1. */
int
pt_up_find(const struct upstream *up, const char *first)
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

int pt_callbacks;
void (*pt_response_hook)(struct req *r); /* called after each response is recorded */

static void
on_response(struct pool_req *pr, struct evbuffer *in, size_t len)
{
    struct req *r = (struct req *)pr;

    assert_true(len < sizeof(r->reply));
    evbuffer_remove(in, r->reply, len);
    r->reply[len] = '\0';
    r->result = POOL_OK;
    r->order = pt_callbacks++;
    if (pt_response_hook != NULL) {
        pt_response_hook(r);
    }
}

struct pool_req *pt_cancel_in_failure; /* a request the next failure callback withdraws */
int pt_cancel_in_failure_rc;

static void
on_failure(struct pool_req *pr, enum pool_result result)
{
    struct req *r = (struct req *)pr;

    r->result = (int)result;
    r->order = pt_callbacks++;
    if (pt_cancel_in_failure != NULL) { /* as a session does when it closes on a failure */
        pt_cancel_in_failure_rc = pool_cancel(pt_cancel_in_failure);
        pt_cancel_in_failure = NULL;
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

const struct pool_handler pt_handler = {
    .response = on_response,
    .failure = on_failure,
    .leased = on_leased,
    .frame = frame_line,
};

struct fixture *
pt_setup_cluster(unsigned max_conns, unsigned max_pipeline, unsigned queue_max,
                 uint64_t queue_timeout_ms)
{
    struct fixture *f = calloc(1, sizeof(*f));

    f->base = event_base_new();
    pt_up_start(f->base, &f->up);
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
    pt_callbacks = 0;
    pt_response_hook = NULL;
    return f;
}

struct pool_cluster *
pt_cluster_new(struct fixture *f, const struct pool_handler *h)
{
    struct pool_health *health = pool_health_new(f->base, &f->cfg, NULL, NULL, NULL, NULL);
    size_t i;

    assert_non_null(health);
    assert_true(f->nhealth < sizeof(f->health) / sizeof(f->health[0]));
    f->health[f->nhealth++] = health;
    for (i = 0; i < f->cfg.nservers; i++) {
        assert_true(pool_health_set(health, i, &f->addrs[i], 1) >= 0);
    }
    return pool_cluster_new(f->base, &f->cfg, health, h, NULL);
}

void
pt_teardown_cluster(struct fixture *f, struct pool_cluster *c)
{
    size_t i;

    pool_cluster_free(c);
    for (i = 0; i < f->nhealth; i++) {
        pool_health_free(f->health[i]);
    }
    pt_up_stop(&f->up);
    pt_up_stop(&f->up2);
    event_base_free(f->base);
    free(f);
}

void
pt_req_init(struct req *r, const char *text)
{
    memset(r, 0, sizeof(*r));
    r->buf = evbuffer_new();
    evbuffer_add(r->buf, text, strlen(text));
    r->pr.frame = r->buf;
    r->result = -1;
}

/* Submit r's own bytes (the caller's buffer is the request's). */
enum pool_result
pt_submit(struct pool_cluster *c, struct req *r)
{
    return pool_submit(c, &r->pr, r->buf, evbuffer_get_length(r->buf));
}

/* Run the loop until every request is answered or 3 seconds pass. */
void
pt_run_until_done(struct event_base *base, struct req *reqs, int n)
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

void
pt_run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

void
pt_free_reqs(struct req *reqs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        evbuffer_free(reqs[i].buf);
    }
}

/* A loopback address whose port was just free: connecting to it is refused. */
void
pt_refused_addr(struct sockaddr_in *dead)
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

/* ---- helpers for setup, pins, shards ---- */

uint64_t
pt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop in 10 ms steps until cond holds or ms pass. */
const char pt_hello_auth[] = "AUTH x\n";
char pt_setup_reply[64]; /* the last setup reply reply_ok() was shown */
int pt_setup_replies;    /* how many it was shown */

static void
note_setup_reply(struct evbuffer *in, size_t len)
{
    assert_true(len < sizeof(pt_setup_reply));
    assert_true(evbuffer_get_length(in) >= len);
    evbuffer_copyout(in, pt_setup_reply, len);
    pt_setup_reply[len] = '\0';
    pt_setup_replies++;
}

int
pt_reply_accept(const void *arg, struct evbuffer *in, size_t len)
{
    (void)arg;
    note_setup_reply(in, len);
    return 0;
}

int
pt_reply_reject(const void *arg, struct evbuffer *in, size_t len)
{
    (void)arg;
    note_setup_reply(in, len);
    return -1;
}

/* A pinned connection's owner, as a client session with connection state. */
int pt_pinned_frames; /* frames to any owner, also those freed since */

void
pt_owner_init(struct owner *o)
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
    pt_pinned_frames++;
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
    o->lost_ms = pt_now_ms();
    o->conn = NULL;
}

struct pool_handler
pt_pin_handler(void)
{
    struct pool_handler h = pt_handler;

    h.pinned = on_pinned;
    h.pin_lost = on_pin_lost;
    pt_pinned_frames = 0;
    return h;
}

void
pt_pin(struct pool_cluster *c, struct owner *o)
{
    enum pool_result why = POOL_OK;

    o->conn = pool_pin(c, 0, o, &why);
    assert_non_null(o->conn);
}

/* Write text on o's pinned connection, owing replies more, as a session does. */
void
pt_pin_send(struct owner *o, const char *text, unsigned replies)
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
struct fixture *
pt_setup_shards(unsigned max_conns, unsigned max_pipeline)
{
    struct fixture *f = pt_setup_cluster(max_conns, max_pipeline, 100, 1000);

    pt_up_start(f->base, &f->up2);
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
uint32_t
pt_shard_on(struct pool_cluster *c, uint32_t want)
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
