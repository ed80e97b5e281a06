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
struct px_worker;
struct px_listener;
struct px_req;
struct px_session;

/* Per-listener counters of one worker; only that worker writes them. */
struct px_listener_stats {
    uint64_t accepted;
    uint64_t active;
    uint64_t rejected;      /* past max_clients */
    uint64_t accept_errors; /* EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting paused */
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t bad_frames; /* oversize or malformed: the client was closed */
    uint64_t idle_timeouts;
    uint64_t read_timeouts;
    uint64_t request_timeouts;
    uint64_t write_timeouts;    /* a client that did not read its replies */
    uint64_t upstream_failures; /* requests that failed upstream (closed, or an error reply) */
    uint64_t rejected_commands; /* resp: refused by sluice (not allowed, not shardable, auth) */
};

/* The head of a client session or relay, embedded in it: how the worker ends and frees it. */
struct px_client {
    TAILQ_ENTRY(px_client) link; /* the worker's live list, then its reap list */
    void (*close)(struct px_client *c, const char *why);
    void (*free)(struct px_client *c);
};

#define px_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * Build a worker: create its pools, bind its listeners. NULL after logging why.
 * clients[i] counts listener i's clients across workers (max_clients);
 * health[i] is cluster i's shared health (NULL for a cluster no listener uses).
 */
struct px_worker *px_worker_new(const struct cfg *cfg, unsigned id, atomic_uint *clients,
                                struct pool_health **health);
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

/* Log a worker's counters (at stop, and for tests). */
void px_worker_log_stats(const struct px_worker *w);

/* For sessions: the worker's base, pool of a cluster, request cache and reaper. */
struct event_base *px_worker_base(struct px_worker *w);
struct pool_cluster *px_worker_pool(struct px_worker *w, const char *cluster);
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
