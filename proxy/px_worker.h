#ifndef PX_WORKER_H
#define PX_WORKER_H

/*
 * A worker: one thread with its own event base, listener sockets
 * (SO_REUSEPORT) and upstream pools. Nothing on the data path is shared
 * between workers, so nothing there takes a lock.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct cfg;
struct cfg_cluster;
struct cfg_listener;
struct event_base;
struct evbuffer;
struct pool_cluster;
struct pool_health;
struct pool_stats;
struct px_gen;
struct px_worker;
struct px_listener;
struct px_req;
struct px_session;

/*
 * Per-listener counters of one worker; only that worker writes them (pool/pool_stat.h).
 * Successive listeners of one name in a worker (reloads) share the block.
 */
struct px_listener_stats {
    _Atomic uint64_t accepted;
    _Atomic uint64_t active;
    _Atomic uint64_t rejected;      /* past max_clients */
    _Atomic uint64_t accept_errors; /* EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting paused */
    _Atomic uint64_t frames_in;
    _Atomic uint64_t frames_out;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t bad_frames; /* oversize or malformed: the client was closed */
    _Atomic uint64_t idle_timeouts;
    _Atomic uint64_t read_timeouts;
    _Atomic uint64_t request_timeouts;
    _Atomic uint64_t write_timeouts; /* a client that did not read its replies */
    _Atomic uint64_t
        upstream_failures; /* requests that failed upstream (closed, or an error reply) */
    _Atomic uint64_t
        rejected_commands; /* resp: refused by sluice (not allowed, not shardable, auth) */
    _Atomic uint64_t frame_timeouts;    /* a frame not whole within timeouts.frame (+ min_rate) */
    _Atomic uint64_t partial_drops;     /* half-closed with a partial frame, which was dropped */
    _Atomic uint64_t budget_stops;      /* reading stopped: buffers.max reached */
    _Atomic uint64_t budget_rejections; /* failed: its frame could not fit within buffers.max */
};

/* The head of a client session or relay, embedded in it: how the worker ends and frees it. */
struct px_client {
    TAILQ_ENTRY(px_client) link; /* the worker's live list, then its reap list */
    void (*close)(struct px_client *c, const char *why);
    /* Shutting down: take no new request, answer those sent, then close (now, when idle). */
    void (*drain)(struct px_client *c);
    void (*free)(struct px_client *c);
};

#define px_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * A worker's share of a configuration generation, built by the main thread.
 * Arrays are indexed like the generation's cfg; the main thread keeps them
 * until the worker reported the plan taken.
 */
struct px_plan {
    struct px_gen *gen;                /* borrowed: the worker takes references */
    const int *fds;                    /* per listener: this worker's listening socket */
    atomic_uint **clients;             /* per listener: its clients across workers (max_clients) */
    struct px_listener_stats **lstats; /* per listener: this worker's counters */
    struct pool_stats **pstats;        /* per cluster: this worker's counters */
    struct pool_health **health; /* per cluster: shared health, NULL when no listener uses it */
};

/*
 * An empty worker; notifyfd (an eventfd, borrowed) is written when it has
 * taken a posted plan and when a drain has closed its last client. NULL on failure.
 */
struct px_worker *px_worker_new(unsigned id, int notifyfd);
/*
 * Serve plan p (which must outlive the call, or until px_worker_applied()
 * reports it). Before px_worker_start() it is applied at once: 0 or -1;
 * after, it is posted to the thread: -1 only if that failed.
 */
int px_worker_apply(struct px_worker *w, const struct px_plan *p);
/* The generation of the last plan the thread took (and applied, unless it was draining). */
unsigned px_worker_applied(const struct px_worker *w);
/* Stop accepting and close every client at its next frame boundary. */
int px_worker_drain(struct px_worker *w);
/* Whether a drain has stopped it watching its listening sockets (they may be closed now). */
bool px_worker_draining(const struct px_worker *w);
/* Clients (sessions and relays) alive, from any thread. */
unsigned px_worker_clients(const struct px_worker *w);
/* From the main thread: a server's health changed; the worker's pools catch up. */
void px_worker_poke(struct px_worker *w);
/* Pools are built for the clusters that listeners use (udp relays come later). */
bool px_worker_cluster_used(const struct cfg *cfg, const struct cfg_cluster *c);
/* The codecs' framer as the pool calls it (arg: the struct cfg_codec). */
ssize_t px_worker_frame(const void *arg, struct evbuffer *in, void *state, const char **why);
/* Run it on a thread of its own. Return 0 or -1. */
int px_worker_start(struct px_worker *w);
/* Ask it to stop, from any thread, and wait for it. */
void px_worker_stop(struct px_worker *w);
void px_worker_free(struct px_worker *w);

/* A retired listener's last client ended: the worker frees it after the current callbacks. */
void px_worker_listener_drained(struct px_worker *w, struct px_listener *l);

/* For sessions: the worker's base, request cache and reaper. */
struct event_base *px_worker_base(struct px_worker *w);
struct evbuffer *px_worker_scratch(struct px_worker *w);
/* A resp request's argument index, reused from request to request. */
struct px_cmd *px_worker_cmd(struct px_worker *w);
struct px_req *px_worker_req_get(struct px_worker *w);
struct px_cmd;
void px_worker_req_put(struct px_worker *w, struct px_req *req);
/* A new client: the worker closes it at shutdown. */
void px_worker_add_client(struct px_worker *w, struct px_client *c);
/* Free a closed client after the current callbacks return (never under one still using it). */
void px_worker_reap(struct px_worker *w, struct px_client *c);
unsigned px_worker_id(const struct px_worker *w);

#endif
