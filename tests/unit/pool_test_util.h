#ifndef POOL_TEST_UTIL_H
#define POOL_TEST_UTIL_H

/*
 * The fixture shared by the pool's test sources, which build one binary:
 * test_pool. A real event loop with real upstreams on 127.0.0.1 (port 0), no
 * mocks. An upstream echoes newline-terminated lines (with a prefix naming
 * it), or holds them (silent) until told, and records every line each
 * connection read. The pool's owner records each request's answer; a pinned
 * connection's owner records every frame it is given.
 */

#include "config/cfg.h"
#include "pool/pool.h"
#include "pool/pool_health.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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

void pt_up_close(struct up_conn *uc);
void pt_up_start(struct event_base *base, struct upstream *up);
void pt_up_stop(struct upstream *up);
/* Answer on connection i as the upstream, whatever it read. */
void pt_up_send(struct upstream *up, int i, const char *text);
/* The connection whose lines began with first, or -1. */
int pt_up_find(const struct upstream *up, const char *first);

/* ---- the pool's owner ---- */

struct req {
    struct pool_req pr; /* first */
    struct evbuffer *buf;
    int result; /* -1 until answered */
    char reply[64];
    int order; /* when the callback came */
};

extern int pt_callbacks;                        /* callbacks so far: each one's req.order */
extern void (*pt_response_hook)(struct req *r); /* called after each response is recorded */
extern struct pool_req *pt_cancel_in_failure;   /* a request the next failure withdraws */
extern int pt_cancel_in_failure_rc;             /* what pool_cancel() returned for it */
extern const struct pool_handler pt_handler;    /* records into struct req; frames lines */

struct fixture {
    struct event_base *base;
    struct upstream up;
    struct upstream up2; /* the second server, when a test starts it */
    struct cfg_server servers[2];
    struct cfg_cluster cfg;
    struct sockaddr_storage addrs[2];
    socklen_t lens[2];
    struct pool_health *health[4]; /* one per cluster made, freed by the teardown */
    size_t nhealth;
};

/* A pool of f->cfg over f->addrs (a shared health of its own, no checks). */
struct pool_cluster *pt_cluster_new(struct fixture *f, const struct pool_handler *h);

struct fixture *pt_setup_cluster(unsigned max_conns, unsigned max_pipeline, unsigned queue_max,
                                 uint64_t queue_timeout_ms);
void pt_teardown_cluster(struct fixture *f, struct pool_cluster *c);
void pt_req_init(struct req *r, const char *text);
/* Submit r's own bytes (the caller's buffer is the request's). */
enum pool_result pt_submit(struct pool_cluster *c, struct req *r);
/* Run the loop until every request is answered or 3 seconds pass. */
void pt_run_until_done(struct event_base *base, struct req *reqs, int n);
void pt_run_for(struct event_base *base, int ms);
void pt_free_reqs(struct req *reqs, int n);
/* A loopback address whose port was just free: connecting to it is refused. */
void pt_refused_addr(struct sockaddr_in *dead);

/* ---- helpers for setup, pins, shards ---- */

uint64_t pt_now_ms(void);

/* Run the loop in 10 ms steps until cond holds or ms pass. */
#define RUN_UNTIL(base, cond, ms)                                                                  \
    do {                                                                                           \
        uint64_t until_ = pt_now_ms() + (ms);                                                      \
        while (!(cond) && pt_now_ms() < until_) {                                                  \
            pt_run_for((base), 10);                                                                \
        }                                                                                          \
    } while (0)

extern const char pt_hello_auth[]; /* "AUTH x\n" */
extern char pt_setup_reply[64];    /* the last setup reply reply_ok() was shown */
extern int pt_setup_replies;       /* how many it was shown */

int pt_reply_accept(const void *arg, struct evbuffer *in, size_t len);
int pt_reply_reject(const void *arg, struct evbuffer *in, size_t len);

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

extern int pt_pinned_frames; /* frames to any owner, also those freed since */

void pt_owner_init(struct owner *o);
/* pt_handler, with pinned() and pin_lost() recording into struct owner. */
struct pool_handler pt_pin_handler(void);
void pt_pin(struct pool_cluster *c, struct owner *o);
/* Write text on o's pinned connection, owing replies more, as a session does. */
void pt_pin_send(struct owner *o, const char *text, unsigned replies);
/*
 * Two servers, each its own upstream: balance hash (ketama, fnv1a_64, named
 * servers, hash_tag "{}"). Server 1 prefixes its replies with "1:", server 2
 * with "2:".
 */
struct fixture *pt_setup_shards(unsigned max_conns, unsigned max_pipeline);
/* pool_cluster_shard() of a key it places on server want (1-based), as a session sets it. */
uint32_t pt_shard_on(struct pool_cluster *c, uint32_t want);

/* The setup, pin, shard and ordering cases, in test_pool_pin.c. */
extern const struct CMUnitTest pool_pin_tests[];
extern const size_t pool_pin_tests_count;

#endif
