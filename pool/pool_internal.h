#ifndef POOL_INTERNAL_H
#define POOL_INTERNAL_H

/* The pool's structures, shared by pool.c and the balancers (private to pool/). */

#include "pool.h"

#include <stdbool.h>
#include <sys/socket.h>

struct event;

TAILQ_HEAD(pool_conn_list, pool_conn);

struct pool_server {
    struct pool_cluster *cluster;
    const struct cfg_server *cfg; /* borrowed */
    struct sockaddr_storage sa;
    socklen_t salen;
    struct pool_conn_list conns; /* pooled connections; leases leave it */
    unsigned nconns;
    unsigned inflight;   /* requests on its connections, for least_request */
    int64_t current;     /* smooth weighted round-robin */
    unsigned fails;      /* connect failures in a row */
    uint64_t down_until; /* ms: no new connections before, unless every server is down */
    struct event *retry; /* owned: reconnect timer for min_idle */
};

struct pool_balancer {
    /* A server for the next request, avoiding exclude when another is usable. */
    struct pool_server *(*pick)(struct pool_cluster *c, const struct pool_server *exclude);
};

struct pool_cluster {
    struct event_base *base;       /* borrowed */
    const struct cfg_cluster *cfg; /* borrowed: outlives the pool */
    struct pool_server *servers;   /* owned */
    size_t nservers;
    const struct pool_balancer *balancer;
    struct pool_handler h;
    struct pool_req_list queue;   /* waiting for a connection, oldest first */
    struct pool_req_list failing; /* off a broken connection, being retried or failed */
    struct event *queue_timer;    /* owned */
    struct pool_stats stats;
    uint64_t rng;
    bool closing;
};

const struct pool_balancer *pool_balancer_for(enum cfg_balance balance);
/* A server is usable when it is not backing off after connect failures. */
bool pool_server_usable(const struct pool_server *s, uint64_t now);
uint64_t pool_now_ms(void);
uint64_t pool_random(struct pool_cluster *c);

#endif
