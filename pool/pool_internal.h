#ifndef POOL_INTERNAL_H
#define POOL_INTERNAL_H

/* The pool's structures, shared by pool.c and the balancers (private to pool/). */

#include "pool.h"
#include "pool_health.h"

#include <event2/event_struct.h>
#include <stdbool.h>
#include <sys/socket.h>

struct pool_hash_ring;

TAILQ_HEAD(pool_conn_list, pool_conn);

enum conn_state {
    CONN_CONNECTING,
    CONN_HELLO, /* connected, its setup (hello or reset) not yet answered */
    CONN_READY,
    CONN_RETIRING, /* takes no new requests; closes when its FIFO drains */
};

enum conn_kind {
    CONN_SHARED, /* in server->conns: pipelined requests */
    CONN_LEASE,  /* connecting for a raw lease; in no list */
    CONN_PINNED, /* in server->pinned: one owner's, or being reset for the pool */
};

enum rev_mode {
    REV_OFF,
    REV_RESPONSE, /* a response is pending: the read deadline */
    REV_IDLE,     /* nothing pending: idle_timeout and max_lifetime (none when pinned) */
};

struct pool_conn {
    TAILQ_ENTRY(pool_conn) link;
    struct pool_server *server; /* borrowed */
    int fd;                     /* owned */
    uint8_t state;              /* enum conn_state */
    uint8_t rev_mode;           /* enum rev_mode */
    uint8_t kind;               /* enum conn_kind */
    uint8_t release;            /* pinned: enum pool_unpin_mode + 1 once the owner let go */
    bool flush_queued;          /* wev activated for this turn: one write for the batch */
    bool broken;                /* an event could not be armed: fail it from the loop */
    bool expect_deadline;       /* pinned: the read deadline watches the owner's replies */
    bool notify_drain;          /* pinned: the owner waits for pin_drained() */
    bool idle_counted;          /* counted in stats->conns_idle */
    bool looked_quiet;          /* pool_conn_quiet() found no reply bytes in its socket */
    bool spare;                 /* opened past stalled ones: used only when no other can be */
    int connect_errno;          /* an immediate connect() failure, reported from wev */
    unsigned init_left;         /* setup replies still to come (CONN_HELLO) */
    unsigned expect;            /* pinned: replies the owner waits for */
    void *owner;                /* pinned: borrowed, NULL once released */
    struct event rev;
    struct event wev;
    struct evbuffer *in;   /* owned */
    struct evbuffer *out;  /* owned */
    struct evbuffer *held; /* owned: a pin's bytes written before its setup was answered */
    struct pool_req_list fifo;
    unsigned nfifo;
    uint64_t born;
    uint64_t nreq;
    uint64_t looked_ms; /* when pool_conn_quiet() last looked at its socket */
    _Alignas(8) unsigned char fstate[POOL_FRAME_STATE_SIZE]; /* the codec's struct: aligned */
};

struct pool_server {
    struct pool_cluster *cluster;
    const struct cfg_server *cfg;  /* borrowed */
    struct pool_endpoint *ep;      /* a reference: address and shared health */
    TAILQ_ENTRY(pool_server) link; /* the cluster's draining list, once gone */
    struct pool_conn_list conns;   /* pooled connections; leases leave it */
    unsigned nconns;
    struct pool_conn_list pinned; /* pinned connections */
    unsigned npinned;
    unsigned inflight;    /* requests on its connections, for least_request */
    int64_t current;      /* smooth weighted round-robin */
    unsigned fails;       /* connect failures in a row */
    uint64_t down_until;  /* ms: no new connections before, unless every server is down */
    uint64_t probe_at;    /* ms: while down, a request may open one connection from then on */
    uint32_t lat_us;      /* typical response time: a moving average one slow reply barely moves */
    uint32_t stall_ms;    /* pool.stall, or about 4 x lat_us when longer; 0: no guard */
    uint32_t stall_floor; /* pool.stall */
    struct event *retry;  /* owned: reconnect timer for min_idle */
    bool fit;             /* its endpoint's health as this worker last acted on it */
    bool warming;         /* back from down: no traffic until min_idle are ready (or warm_until) */
    bool gone;            /* DNS dropped it: draining, freed when its last connection closes */
    uint64_t warm_until;
};

TAILQ_HEAD(pool_server_list, pool_server);

struct pool_balancer {
    /* A server for the next request, avoiding exclude when another is usable. */
    struct pool_server *(*pick)(struct pool_cluster *c, const struct pool_server *exclude);
};

struct pool_cluster {
    struct event_base *base;       /* borrowed */
    const struct cfg_cluster *cfg; /* borrowed: outlives the pool */
    struct pool_health *health;    /* borrowed: shared with the other workers */
    unsigned health_version;       /* the endpoint list last synced */
    struct pool_server **servers;  /* owned: one per endpoint that is not gone */
    size_t nservers, cap;
    struct pool_server **slots;       /* balance hash: per configured server, its server or NULL */
    struct pool_server_list draining; /* gone, with connections still open */
    const struct pool_balancer *balancer;
    struct pool_handler h;
    struct pool_req_list queue;   /* waiting for a connection, oldest first */
    struct pool_req_list failing; /* off a broken connection, being retried or failed */
    struct event *queue_timer;    /* owned */
    struct pool_stats own;        /* the counters when the owner keeps none */
    struct pool_stats *stats;     /* borrowed from the owner, or own */
    size_t nqueued;               /* requests in queue */
    struct pool_hash_ring *ring;  /* owned: balance hash */
    uint64_t rng;
    bool closing;
};

const struct pool_balancer *pool_balancer_for(enum cfg_balance balance);
/* A server is usable when it is not backing off after connect failures. */
bool pool_server_usable(const struct pool_server *s, uint64_t now);
/*
 * While a server backs off (up to 10 s), requests that want it may still
 * open one connection per POOL_PROBE_MS: a server that came back is found
 * within about that, whatever the backoff has grown to.
 */
#define POOL_PROBE_MS 1000
/* A request may open a connection to s now: not backing off, or a probe is due. */
bool pool_server_dialable(const struct pool_server *s, uint64_t now);
/*
 * Open a connection to s for a request (not for min_idle, which waits out
 * the whole backoff): NULL when s backs off and its probe is not due, or
 * when no connection can be opened.
 */
struct pool_conn *pool_server_dial(struct pool_server *s, enum conn_kind kind, uint64_t now);
/* Healthy: fit by the shared health, not gone, not warming up. */
bool pool_server_healthy(const struct pool_server *s, uint64_t now);
/* Its weight now, times 100: slow start ramps it from 10% over the window. */
uint64_t pool_server_weight(const struct pool_server *s, uint64_t now);
/* Out of the rotation for this worker (down, ejected, removed): its idle connections close. */
static inline bool
pool_server_out(const struct pool_server *s)
{
    return s->gone || !s->fit;
}
/* Back and warming up its connections: it takes traffic soon, so requests for it wait. */
bool pool_server_coming(const struct pool_server *s);
/* Whether requests may go to s at all (healthy, or every server in a route_all panic). */
bool pool_server_takes(struct pool_cluster *c, const struct pool_server *s, uint64_t now);
/* Requests for s may go to it now (it takes them) or wait for it (it is coming back). */
static inline bool
pool_server_wanted(struct pool_cluster *c, const struct pool_server *s, uint64_t now)
{
    return s != NULL && (pool_server_takes(c, s, now) || pool_server_coming(s));
}
/* No healthy (or warming) server and panic fail_fast: requests fail at once. */
bool pool_cluster_failing_fast(struct pool_cluster *c, uint64_t now);
uint64_t pool_now_ms(void);
uint64_t pool_now_us(void);
uint64_t pool_random(struct pool_cluster *c);

/*
 * Head-of-line blocked: the oldest request on conn has waited for its
 * response past its server's stall_ms (pool.stall, or 4 x its typical
 * response time). O(1): the FIFO's head and a coarse clock.
 */
static inline bool
pool_conn_stalled(const struct pool_conn *conn, uint64_t now)
{
    uint64_t stall = conn->server->stall_ms;

    return stall > 0 && conn->nfifo > 0 && conn->state == CONN_READY &&
           now - TAILQ_FIRST(&conn->fifo)->since_ms > stall;
}

/*
 * For a stalled connection: no reply bytes wait in its socket, so the
 * upstream, not this worker, is late. One ioctl, at most once per ms.
 */
bool pool_conn_quiet(struct pool_conn *conn, uint64_t now);

/* Where a request that may be repeated keeps its bytes (pool_req.kept). */
enum keep {
    KEEP_NONE,
    KEEP_INLINE, /* in pool_req.keep */
    KEEP_FRAME,  /* in pool_req.frame */
};
/* Forget the kept copy (the request was answered or failed). */
void pool_req_unkeep(struct pool_req *req);
/* Put the kept copy back in frame, to be written again. Return -1 if it cannot. */
int pool_req_restore(struct pool_req *req);

/* Connection plumbing shared by pool.c, pool_dispatch.c and pool_pin.c. */
struct timeval pool_tv_ms(uint64_t ms);
/* Remove its events, then close its descriptor (unless -1: handed away), then free it. */
void pool_conn_free(struct pool_conn *conn);
/* Max lifetime or max requests reached: the connection retires. */
bool pool_conn_expired(const struct pool_conn *conn, uint64_t now);
/*
 * Put req on conn. Its bytes are the first len of src, or req->frame when
 * src is NULL; a connection not yet set up keeps them in req->frame.
 */
void pool_conn_assign(struct pool_conn *conn, struct pool_req *req, struct evbuffer *src,
                      size_t len);
struct pool_conn *pool_conn_open(struct pool_server *s, enum conn_kind kind);
void pool_conn_detach(struct pool_conn *conn);
void pool_conn_close(struct pool_conn *conn);
int pool_conn_flush(struct pool_conn *conn);
/* Write what conn->out holds once this turn of the loop is done: one write for the batch. */
void pool_conn_queue_flush(struct pool_conn *conn);
void pool_conn_rev_arm(struct pool_conn *conn);
void pool_conn_fail(struct pool_conn *conn, enum pool_result result, const char *detail);
/* Open, answered, idle and not due to retire: can be lent out. */
bool pool_conn_idle(const struct pool_conn *conn, uint64_t now);
/* Start the setup (hello or reset) on a connected connection, or finish at once without one. */
void pool_conn_setup(struct pool_conn *conn, const void *bytes, size_t len, unsigned replies);
/* Keep min_idle connections open; a gone server with nothing left is freed here. */
void pool_maintain(struct pool_server *s);
void pool_on_retry(evutil_socket_t fd, short what, void *arg);
void pool_drain_queue(struct pool_cluster *c, struct pool_conn *room);
/* pool_dispatch.c: the queue and retries, for the connections' side. */
void pool_dequeue(struct pool_cluster *c, struct pool_req *req);
void pool_on_queue_timer(evutil_socket_t fd, short what, void *arg);
/* Place a request never written again (elsewhere when it can), or fail it. */
void pool_retry_or_fail(struct pool_cluster *c, struct pool_req *req, enum pool_result result);
void pool_server_failed(struct pool_server *s);
/* A connect failed: queued requests whose every server backs off, with nothing open, fail now. */
void pool_queue_backoff(struct pool_cluster *c, enum pool_result result);
/* Send a written request again after its connection broke (may_repeat), or fail it. */
void pool_repeat_or_fail(struct pool_cluster *c, struct pool_req *req);

/* pool_sync.c: servers from the shared health, their health as this worker sees it. */
int pool_servers_sync(struct pool_cluster *c); /* -1 out of memory: try again at the next sync */
void pool_server_free(struct pool_server *s);
/* A gone server with no connections left: freed. */
void pool_server_reap(struct pool_server *s);
/* Enough warm connections are ready: a returning server takes traffic again. */
void pool_server_warmed(struct pool_server *s);

/* pool_pin.c: a pinned connection's frame, its setup finished, its release. */
void pool_pin_frame(struct pool_conn *conn, size_t len);
int pool_pin_setup_done(struct pool_conn *conn); /* -1 if conn failed */
void pool_pin_release(struct pool_conn *conn);

#endif
