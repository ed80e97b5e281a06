#ifndef POOL_H
#define POOL_H

/*
 * Upstream connection pools: one pool_cluster per configured cluster per
 * worker, each with its servers, their connections, a balancer and a wait
 * queue. The pool owns the life of upstream connections (connect, warm,
 * pipeline, idle, retire, reconnect) and never parses bytes: it finds the end
 * of a response through the framer its creator gives it.
 *
 * A request (struct pool_req, embedded in the caller's own request) is
 * written on a connection with room (in flight < max_pipeline) that is not
 * head-of-line blocked (pool.stall), else on a new connection (up to
 * max_connections, unless the server backs off after connect failures), else
 * waits in the cluster's queue. Each connection's in-flight FIFO is the only
 * truth about which response belongs to whom: when the connection breaks, it
 * is never reused; its oldest request fails with the cause, the others
 * written as lost (POOL_UPSTREAM_ERROR) unless they may be repeated. Requests
 * never written are re-dispatched (retries). docs/pooling.md has the rules.
 *
 * Callbacks are never made from inside pool_submit(), pool_lease() or
 * pool_cancel(), only from the event loop; after a request's one callback the
 * pool holds no reference to it.
 */

#include "config/cfg.h"

#include "pool/pool_stat.h"

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct event_base;
struct evbuffer;
struct pool_cluster;
struct pool_health;
struct pool_server;
struct pool_conn;

enum pool_result {
    POOL_OK,
    POOL_CONNECT_FAILED, /* no connection could be opened (after retries) */
    POOL_UPSTREAM_ERROR, /* the connection closed or reset with the request on it */
    POOL_TIMEOUT,        /* the upstream read or write deadline expired */
    POOL_MALFORMED,      /* the upstream sent bytes the codec cannot frame */
    POOL_QUEUE_FULL,
    POOL_QUEUE_TIMEOUT,
    POOL_SHUTDOWN,
    POOL_REFUSED,   /* the upstream refused the connection's setup (a wrong password) */
    POOL_PIN_LIMIT, /* max_pinned connections are pinned already */
    POOL_UNHEALTHY, /* no healthy server (panic fail_fast) */
    POOL_RESULT_MAX,
};

extern const char *const pool_result_str[POOL_RESULT_MAX];

/*
 * Per-cluster, per-worker counters; only the owning worker writes them (pool_stat.h).
 * The block may be shared by successive pools of the same cluster in one worker
 * (a reload), so counters run on and gauges add up.
 */
#define POOL_LATENCY_BUCKETS 16
extern const uint64_t pool_latency_us[POOL_LATENCY_BUCKETS];
struct pool_stats {
    _Atomic uint64_t conns_opened;
    _Atomic uint64_t conns_closed;
    _Atomic uint64_t conns_active; /* open now, connecting included (shared, not pinned) */
    _Atomic uint64_t conns_idle;   /* open now with nothing in flight */
    _Atomic uint64_t connect_failures;
    _Atomic uint64_t requests;
    _Atomic uint64_t responses;
    _Atomic uint64_t failed[POOL_RESULT_MAX];
    _Atomic uint64_t retries;
    _Atomic uint64_t canceled; /* withdrawn before they were written (their client left) */
    _Atomic uint64_t queued;
    _Atomic uint64_t queue_depth;
    _Atomic uint64_t leases;
    _Atomic uint64_t pins;           /* connections pinned to a client */
    _Atomic uint64_t pinned;         /* pinned now */
    _Atomic uint64_t unpin_resets;   /* pinned connections cleaned and returned to the pool */
    _Atomic uint64_t max_conns_seen; /* most connections open at once, per server */
    _Atomic uint64_t stalls;         /* dispatches that passed over a stalled connection */
    _Atomic uint64_t repeats;        /* written requests sent again after their connection broke */
    _Atomic uint64_t connects_deferred; /* connections not opened: the server backs off */
    /* Responses by time from submit to response: latency[i] counts those at or under
     * pool_latency_us[i] and over the bound before (the last: over every bound). */
    _Atomic uint64_t latency[POOL_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
};

/* A request that may be repeated keeps a copy of its bytes here when they fit, else in frame. */
#define POOL_KEEP_INLINE 48

enum pool_req_state {
    POOL_REQ_NEW,
    POOL_REQ_QUEUED,   /* in the cluster queue */
    POOL_REQ_ASSIGNED, /* in a connecting connection's FIFO, bytes still in frame */
    POOL_REQ_SENT,     /* bytes handed to the connection: a response or a failure will come */
    POOL_REQ_FAILING,  /* its connection broke; its failure callback is coming */
};

struct pool_req {
    TAILQ_ENTRY(pool_req) link;   /* the queue or a connection's FIFO */
    struct evbuffer *frame;       /* borrowed: the bytes to write, drained when sent */
    struct pool_cluster *cluster; /* borrowed: set by pool_submit() and pool_lease() */
    struct pool_conn *conn;       /* borrowed: where it is, NULL while queued */
    struct pool_server *last;     /* borrowed: the server last tried */
    /*
     * Set by the owner before pool_submit(): its previous request to the same
     * server while that one is unanswered (borrowed; the owner clears it when
     * that one is answered). This one then goes on the same connection, or
     * waits behind it in the queue, so one client's requests to a server keep
     * their order. One submitted to another pool (a reload moved the owner
     * to a new one) is ignored.
     */
    struct pool_req *after;
    uint32_t shard; /* set by the owner: pool_cluster_shard()'s value for its key; 0: any server */
    uint64_t since_ms;  /* when it queued, or when it was put on its connection (pool_now_ms) */
    uint64_t submit_us; /* pool_submit() time, for the latency histogram */
    uint16_t tries;
    uint8_t state;     /* enum pool_req_state */
    uint8_t exclusive; /* a lease: wants a whole connection */
    /*
     * Set by the owner before pool_submit(): the protocol says the request
     * may be sent twice (a read-only command). Written behind another request
     * on a connection that then breaks, it is sent again once on another one
     * instead of failing; a copy of its bytes is kept meanwhile.
     */
    uint8_t may_repeat;
    uint8_t kept;     /* pool: where a copy of the bytes written is (enum in pool_internal.h) */
    uint8_t repeated; /* pool: sent again once already */
    uint8_t keep_len; /* pool: bytes in keep */
    char keep[POOL_KEEP_INLINE];
};

TAILQ_HEAD(pool_req_list, pool_req);

/*
 * How the pool finds a response's end: implemented by proxy/codec/. Returns
 * the length of the complete frame at the start of in (> 0), POOL_FRAME_AGAIN,
 * or POOL_FRAME_ERROR with *why set.
 */
typedef ssize_t (*pool_frame_fn)(const void *arg, struct evbuffer *in, void *state,
                                 const char **why);
#define POOL_FRAME_ERROR (-1)
#define POOL_FRAME_AGAIN (-2)
#define POOL_FRAME_STATE_SIZE 16
#define POOL_SETUP_SKIP 1 /* bytes of per-connection decoder state, zeroed per frame */

enum pool_event {
    POOL_EV_CONNECT_FAILED,
    POOL_EV_CONN_LOST, /* closed with requests on it */
    POOL_EV_SERVER_UP, /* first connection after failures */
};

/*
 * A pinned connection: a whole upstream connection lent to one owner (a
 * client with connection state), kept framed by the pool, given back with
 * pool_unpin(). The owner matches replies to its requests itself: every
 * frame goes to pinned(), in order.
 */
enum pool_unpin_mode {
    POOL_UNPIN_CLOSE,  /* close it */
    POOL_UNPIN_RETURN, /* nothing lingers on it: back to the pool as is */
    POOL_UNPIN_RESET,  /* send the handler's reset (and hello) first; close if that fails */
};

struct pool_handler {
    /* The response to req is the first len bytes of in: the callee removes exactly those. */
    void (*response)(struct pool_req *req, struct evbuffer *in, size_t len);
    void (*failure)(struct pool_req *req, enum pool_result result);
    /* A lease: req now owns the connected socket fd. */
    void (*leased)(struct pool_req *req, int fd);
    /* Something worth a log line happened; detail may be NULL. */
    void (*event)(void *arg, const struct pool_cluster *c, const char *server, enum pool_event ev,
                  const char *detail);
    /* A frame on a pinned connection; the callee removes exactly len bytes of in. */
    void (*pinned)(void *owner, struct evbuffer *in, size_t len);
    /* A pinned connection broke: it is gone (the owner must forget it). */
    void (*pin_lost)(void *owner, enum pool_result result);
    /* A backlogged pinned connection has written everything (pool_pin_backlogged). */
    void (*pin_drained)(void *owner);
    pool_frame_fn frame;
    const void *frame_arg; /* borrowed */
    /*
     * Optional setup written first on every new connection (a login, a
     * database), answered by hello_replies frames that reply_ok() must accept
     * before requests are written. reset (reset_replies frames) cleans a
     * pinned connection for POOL_UNPIN_RESET; it ends with the hello again.
     */
    const void *hello; /* borrowed */
    size_t hello_len;
    unsigned hello_replies;
    const void *reset; /* borrowed */
    size_t reset_len;
    unsigned reset_replies;
    /*
     * The setup reply of len bytes at the start of in: 0 a success, -1 a
     * refusal, POOL_SETUP_SKIP not a reply at all (a RESP3 push): skipped.
     */
    int (*reply_ok)(const void *frame_arg, struct evbuffer *in, size_t len);
    void *arg; /* for event() */
};

/*
 * Create a cluster's pool for one worker, its servers the endpoints of the
 * cluster's shared health (pool_health.h) as they are now. Its counters go to
 * stats (borrowed; NULL: a block of its own).
 */
struct pool_cluster *pool_cluster_new(struct event_base *base, const struct cfg_cluster *cfg,
                                      struct pool_health *health, const struct pool_handler *h,
                                      struct pool_stats *stats);
/*
 * Catch up with the shared health, on the worker's thread, after the main
 * thread said something changed: servers added (DNS) get pools, removed ones
 * drain; a server gone unfit has its idle connections closed and takes no new
 * requests (those in flight finish or fail on their own deadlines); one back
 * opens its min_idle connections before it takes traffic again. With no
 * healthy server and panic fail_fast, the queued requests fail.
 */
void pool_cluster_sync(struct pool_cluster *c);
/* Open the warm connections (min_idle per server). */
void pool_cluster_start(struct pool_cluster *c);
/*
 * Close everything; requests still queued or in flight fail with POOL_SHUTDOWN.
 * Leases still connecting must be withdrawn first (pool_cancel): their
 * connections are not the pool's any more.
 */
void pool_cluster_free(struct pool_cluster *c);

/*
 * Dispatch req, whose bytes are the first len of src; the pool removes them
 * from src: straight into a connection's output when the request is written
 * at once, else into req->frame (src may be req->frame itself). Return
 * POOL_OK, or POOL_QUEUE_FULL (the bytes are gone from src all the same).
 */
enum pool_result pool_submit(struct pool_cluster *c, struct pool_req *req, struct evbuffer *src,
                             size_t len);

/*
 * Take a whole connection for a raw session: warm from the pool when one is
 * idle (*fd set, return 1), else connecting (return 0; leased() or failure()
 * follows). The connection leaves the pool for good.
 */
int pool_lease(struct pool_cluster *c, struct pool_req *req, int *fd);

/*
 * Withdraw a request its owner no longer wants. Return 0 when it was never
 * written (it is gone, no callback will come), -1 when it was: its response
 * or failure callback still comes and the owner must keep it until then.
 */
int pool_cancel(struct pool_req *req);

/*
 * The server a key belongs to under balance hash (hash_tag, hash and
 * distribution as twemproxy places it), as the value for pool_req.shard:
 * equal values are the same server, 1 + its index. 0 when the cluster does
 * not balance by hash.
 */
uint32_t pool_cluster_shard(struct pool_cluster *c, const char *key, size_t len);
size_t pool_cluster_nservers(const struct pool_cluster *c);

/*
 * Pin a connection to owner: an idle warm one of the shard's server (or
 * the balancer's pick when shard is 0), else a new one. NULL with *why set
 * (POOL_PIN_LIMIT, POOL_CONNECT_FAILED, POOL_UNHEALTHY) when there is none. Bytes written
 * before it is connected wait in it; a failure comes as pin_lost().
 */
struct pool_conn *pool_pin(struct pool_cluster *c, uint32_t shard, void *owner,
                           enum pool_result *why);
/* Move the first len bytes of src onto the pinned connection. */
void pool_pin_write(struct pool_conn *conn, struct evbuffer *src, size_t len);
/*
 * Count a request its owner wrote on a pinned connection of c: the pool
 * cannot tell its reply from a message there, so the owner says when it was
 * sent, and once how it ended: POOL_OK (answered), a failure, or
 * POOL_RESULT_MAX when its client left first (counted as canceled).
 */
void pool_pin_count_sent(struct pool_cluster *c);
void pool_pin_count_done(struct pool_cluster *c, int result);
/*
 * Write the handler's hello (login, db) again, after the owner's own RESET;
 * return how many replies it brings, which the owner must skip.
 */
unsigned pool_pin_rehello(struct pool_conn *conn);
/*
 * Whether more than high bytes wait to be written to the server; if so,
 * pin_drained() comes once they are all written.
 */
bool pool_pin_backlogged(struct pool_conn *conn, size_t high);
/*
 * How many replies the owner waits for, and whether the read deadline
 * watches them (not for a blocking command, nor for a subscriber).
 */
void pool_pin_expect(struct pool_conn *conn, unsigned replies, bool deadline);
/* Give the connection back; no callback comes for it after this. */
void pool_unpin(struct pool_conn *conn, enum pool_unpin_mode mode);

const struct pool_stats *pool_cluster_stats(const struct pool_cluster *c);
const char *pool_cluster_name(const struct pool_cluster *c);
const struct cfg_cluster *pool_cluster_cfg(const struct pool_cluster *c);
/*
 * Nothing of an owner's on it: no request queued, in flight (orphans
 * included) or being leased, no connection pinned. A pool a reload replaced
 * is freed once it is.
 */
bool pool_cluster_idle(const struct pool_cluster *c);
/* Shared connections open now (connecting included), over every server. */
unsigned pool_cluster_conns(const struct pool_cluster *c);

#endif
