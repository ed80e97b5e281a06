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
 * written on a connection with room (in flight < max_pipeline), else on a new
 * connection (up to max_connections), else waits in the cluster's queue.
 * Each connection's in-flight FIFO is the only truth about which response
 * belongs to whom: when the connection breaks, every request on it fails, and
 * it is never reused. Requests never written are re-dispatched (retries).
 *
 * Callbacks are never made from inside pool_submit(), pool_lease() or
 * pool_cancel(), only from the event loop; after a request's one callback the
 * pool holds no reference to it.
 */

#include "config/cfg.h"

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct event_base;
struct evbuffer;
struct pool_cluster;
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
    POOL_RESULT_MAX,
};

extern const char *const pool_result_str[POOL_RESULT_MAX];

/* Per-cluster, per-worker counters; only the owning worker writes them. */
struct pool_stats {
    uint64_t conns_opened;
    uint64_t conns_closed;
    uint64_t conns_active;
    uint64_t connect_failures;
    uint64_t requests;
    uint64_t responses;
    uint64_t failed[POOL_RESULT_MAX];
    uint64_t retries;
    uint64_t queued;
    uint64_t queue_depth;
    uint64_t leases;
    uint64_t max_conns_seen; /* most connections open at once, per server */
};

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
    uint64_t queued_ms;
    uint16_t tries;
    uint8_t state;     /* enum pool_req_state */
    uint8_t exclusive; /* a lease: wants a whole connection */
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
#define POOL_FRAME_STATE_SIZE 16 /* bytes of per-connection decoder state, zeroed per frame */

enum pool_event {
    POOL_EV_CONNECT_FAILED,
    POOL_EV_CONN_LOST, /* closed with requests on it */
    POOL_EV_SERVER_UP, /* first connection after failures */
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
    pool_frame_fn frame;
    const void *frame_arg; /* borrowed */
    void *arg;             /* for event() */
};

/* Create a cluster's pool for one worker; servers must have IP addresses (resolved). */
struct pool_cluster *pool_cluster_new(struct event_base *base, const struct cfg_cluster *cfg,
                                      const struct sockaddr_storage *addrs,
                                      const socklen_t *addrlens, const struct pool_handler *h);
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

const struct pool_stats *pool_cluster_stats(const struct pool_cluster *c);
const char *pool_cluster_name(const struct pool_cluster *c);
/* Connections open now to each server, for tests and status. */
unsigned pool_cluster_conns(const struct pool_cluster *c);

#endif
