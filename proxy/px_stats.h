#ifndef PX_STATS_H
#define PX_STATS_H

/*
 * The counters' home: one block per worker for each listener name and each
 * cluster name ever configured. Blocks outlive the objects that write them,
 * so a reload that rebuilds a listener or a pool of the same name goes on
 * counting where the old one stopped, and the admin endpoint sums the
 * workers' blocks at scrape time. Names are added on the main thread only
 * (start, reload) and never removed; a worker writes only its own block.
 */

#include <stdatomic.h>
#include <stddef.h>

struct pool_stats;
struct px_listener_stats;

/* A listener's or a cluster's counters: one block per worker. */
struct px_stats_entry {
    char *name;          /* owned */
    atomic_uint clients; /* a listener's clients across workers, for max_clients */
    void *block;         /* owned: per worker, struct px_listener_stats or struct pool_stats */
};

struct px_stats {
    unsigned nworkers;
    struct px_stats_entry **listeners; /* owned */
    size_t nlisteners;
    struct px_stats_entry **clusters; /* owned */
    size_t nclusters;
};

struct px_stats *px_stats_new(unsigned nworkers);
void px_stats_free(struct px_stats *st);
/* The entry for a name, added if new. NULL when out of memory. */
struct px_stats_entry *px_stats_listener(struct px_stats *st, const char *name);
struct px_stats_entry *px_stats_cluster(struct px_stats *st, const char *name);
/* The entry for a name in a list (st->listeners or st->clusters), or NULL. */
const struct px_stats_entry *px_stats_find(struct px_stats_entry *const *list, size_t n,
                                           const char *name);
/* Worker w's block of an entry. */
struct px_listener_stats *px_stats_listener_block(const struct px_stats_entry *e, unsigned w);
struct pool_stats *px_stats_cluster_block(const struct px_stats_entry *e, unsigned w);
/* Sums over the workers' blocks, into a plain copy (read with relaxed loads). */
void px_stats_listener_sum(const struct px_stats_entry *e, unsigned nworkers,
                           struct px_listener_stats *sum);
void px_stats_cluster_sum(const struct px_stats_entry *e, unsigned nworkers,
                          struct pool_stats *sum);

/* The stop's stats lines of worker w's block, in the form the tests read. */
struct px_log_ctx;
void px_stats_log_listener(const struct px_log_ctx *ctx, unsigned w,
                           const struct px_listener_stats *st);
void px_stats_log_cluster(const struct px_log_ctx *ctx, unsigned w, const struct pool_stats *ps);

#endif
