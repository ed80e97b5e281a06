#ifndef POOL_HEALTH_H
#define POOL_HEALTH_H

/*
 * Which servers of a cluster are fit for traffic, shared by the main thread
 * and every worker's pool of that cluster.
 *
 * A cluster's servers are endpoints: one per configured server with an IP
 * address, one per address of a server given by hostname (DNS). An
 * endpoint's address never changes; a name whose addresses change gets new
 * endpoints, and the ones that disappear are marked removed and drain.
 *
 * The main thread owns every transition: active checks (rise, fall), passive
 * ejection (consecutive failures reported by the workers' traffic; eject,
 * doubling to max_eject; max_ejected_percent), the return from ejection
 * (after a passing check when active checks run), DNS changes. Workers read
 * an endpoint's state through atomics on their data path, report failures
 * and successes through atomics, and are told of every transition by the
 * changed() callback, which the main thread turns into a wake-up of each
 * worker (pool_cluster_sync()). Membership (the endpoint list) is read under
 * a mutex, only while syncing, never per request.
 */

#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct event;
struct event_base;
struct pool_check;
struct pool_health;

#define POOL_EP_TEXT 96

struct pool_endpoint {
    /* fixed at creation */
    struct pool_health *health;   /* borrowed */
    const struct cfg_server *cfg; /* borrowed */
    size_t slot;                  /* index of cfg in the cluster's servers */
    struct sockaddr_storage sa;
    socklen_t salen;
    char text[POOL_EP_TEXT]; /* "10.0.0.2:6379", or "redis:6379=10.0.0.2" for a name */
    /* written by the main thread, read by workers */
    atomic_bool up;            /* active checks (or no active checks): up */
    atomic_bool ejected;       /* passive ejection, until it returns */
    atomic_bool removed;       /* DNS dropped it: no new traffic, drain */
    atomic_uint_fast64_t back; /* ms (pool_now_ms) it last came back; slow start runs from it */
    /* written by workers, read by the main thread */
    atomic_uint fails; /* failures in a row seen by traffic */
    atomic_uint refs;  /* the health's list, plus one per worker's server */
    /* main thread only */
    unsigned passes;    /* active checks passed in a row */
    unsigned failed;    /* active checks failed in a row */
    unsigned ejections; /* in a row: the next ejection lasts longer */
    uint64_t ejections_total;
    uint64_t ejected_until;
    uint64_t returned; /* ms it last returned from ejection */
    bool await_check;  /* ejection over; returns on the next passing check */
    bool capped;       /* logged that max_ejected_percent kept it in */
    struct pool_check *check;
};

/* Called on the main thread. */
struct pool_health_ops {
    /* After any endpoint changed (state or membership): wake the workers. */
    void (*changed)(void *arg, struct pool_health *h);
    /* A transition worth a log line; server may be NULL (the whole cluster). */
    void (*log)(void *arg, const struct pool_health *h, const char *server, bool warn,
                const char *msg);
};

/* Counters (main thread), for the stats line and the admin endpoint. */
struct pool_health_stats {
    uint64_t checks;
    uint64_t checks_failed;
    uint64_t downs; /* up to down by active checks */
    uint64_t ejections;
    uint64_t ejections_capped; /* kept in by max_ejected_percent */
    uint64_t dns_failures;     /* lookups that failed; the last answer stays */
    uint64_t dns_changes;      /* answers that changed a name's addresses */
};

/*
 * A cluster's health, on the main thread's base. frame/frame_arg frame
 * send/expect check replies. NULL on failure.
 */
struct pool_health *pool_health_new(struct event_base *base, const struct cfg_cluster *cfg,
                                    pool_frame_fn frame, const void *frame_arg,
                                    const struct pool_health_ops *ops, void *arg);
/*
 * The addresses of configured server slot (n may be 0: not resolved yet):
 * new ones become endpoints, missing ones are removed. Return 1 if anything
 * changed, 0 if not, -1 on failure (out of memory: nothing changed).
 */
int pool_health_set(struct pool_health *h, size_t slot, const struct sockaddr_storage *addrs,
                    size_t n);
/* Start active checks; before this, endpoints take their initial state. */
int pool_health_start(struct pool_health *h);
void pool_health_free(struct pool_health *h);

const struct cfg_cluster *pool_health_cfg(const struct pool_health *h);
const struct pool_health_stats *pool_health_stats(const struct pool_health *h);
/* Carry the counters of the health h replaces (a reload changed its cluster). */
void pool_health_inherit(struct pool_health *h, const struct pool_health *old);
/*
 * Pools using h, from any thread: the main thread frees h only once a reload
 * has replaced it and no worker's pool holds it any more.
 */
void pool_health_hold(struct pool_health *h);
void pool_health_release(struct pool_health *h);
unsigned pool_health_users(const struct pool_health *h);
void pool_health_dns_failed(struct pool_health *h);

/* Workers: what traffic saw. Lock-free; the main thread acts on a threshold crossed. */
void pool_health_failure(struct pool_endpoint *ep);
static inline void
pool_health_success(struct pool_endpoint *ep)
{
    if (atomic_load_explicit(&ep->fails, memory_order_relaxed) != 0) {
        atomic_store_explicit(&ep->fails, 0, memory_order_relaxed);
    }
}

/* Fit for new traffic: up, not ejected, not removed. */
static inline bool
pool_endpoint_fit(const struct pool_endpoint *ep)
{
    return atomic_load_explicit(&ep->up, memory_order_relaxed) &&
           !atomic_load_explicit(&ep->ejected, memory_order_relaxed) &&
           !atomic_load_explicit(&ep->removed, memory_order_relaxed);
}

/*
 * Workers, while syncing: the current endpoints, each with a reference taken
 * (give it back with pool_endpoint_put). *n is set; free the array with free().
 * The version changes whenever the membership does.
 */
struct pool_endpoint **pool_health_endpoints(struct pool_health *h, size_t *n, unsigned *version);
unsigned pool_health_version(struct pool_health *h);
void pool_endpoint_put(struct pool_endpoint *ep);

#endif
