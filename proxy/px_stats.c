#include "px_stats.h"
#include "pool/pool.h"
#include "proxy/px_log.h"
#include "proxy/px_worker.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE 64 /* workers' blocks start on separate cache lines: no false sharing */

/* Both blocks are plain arrays of counters, so a sum can walk them field by field. */
_Static_assert(sizeof(struct px_listener_stats) % sizeof(uint64_t) == 0, "listener stats layout");
_Static_assert(sizeof(struct pool_stats) % sizeof(uint64_t) == 0, "pool stats layout");

static size_t
stride(size_t size)
{
    return (size + LINE - 1) / LINE * LINE;
}

static void *
blocks(unsigned nworkers, size_t size)
{
    size_t n = stride(size) * (nworkers > 0 ? nworkers : 1);
    void *p = aligned_alloc(LINE, n);

    if (p != NULL) {
        memset(p, 0, n);
    }
    return p;
}

static void
sum_blocks(const void *base, unsigned nworkers, size_t size, void *out)
{
    size_t i, n = size / sizeof(uint64_t);
    unsigned w;

    memset(out, 0, size);
    for (w = 0; w < nworkers; w++) {
        const _Atomic uint64_t *in = (const void *)((const char *)base + w * stride(size));
        _Atomic uint64_t *o = out;

        for (i = 0; i < n; i++) {
            POOL_STAT_ADD(o[i], POOL_STAT_GET(in[i]));
        }
    }
}

struct px_stats *
px_stats_new(unsigned nworkers)
{
    struct px_stats *st = calloc(1, sizeof(*st));

    if (st != NULL) {
        st->nworkers = nworkers;
    }
    return st;
}

static void
entries_free(struct px_stats_entry **list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(list[i]->name);
        free(list[i]->block);
        free(list[i]);
    }
    free(list);
}

void
px_stats_free(struct px_stats *st)
{
    if (st == NULL) {
        return;
    }
    entries_free(st->listeners, st->nlisteners);
    entries_free(st->clusters, st->nclusters);
    free(st);
}

const struct px_stats_entry *
px_stats_find(struct px_stats_entry *const *list, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i]->name, name) == 0) {
            return list[i];
        }
    }
    return NULL;
}

/* The entry for name in *list, added (with blocks of size bytes) if new. */
static struct px_stats_entry *
entry(struct px_stats *st, struct px_stats_entry ***list, size_t *n, const char *name, size_t size)
{
    struct px_stats_entry **grown, *e = (struct px_stats_entry *)px_stats_find(*list, *n, name);

    if (e != NULL) {
        return e;
    }
    grown = realloc(*list, (*n + 1) * sizeof(*grown));
    if (grown == NULL) {
        return NULL;
    }
    *list = grown;
    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->name = strdup(name)) == NULL ||
        (e->block = blocks(st->nworkers, size)) == NULL) {
        if (e != NULL) {
            free(e->name);
        }
        free(e);
        return NULL;
    }
    atomic_init(&e->clients, 0);
    (*list)[(*n)++] = e;
    return e;
}

struct px_stats_entry *
px_stats_listener(struct px_stats *st, const char *name)
{
    return entry(st, &st->listeners, &st->nlisteners, name, sizeof(struct px_listener_stats));
}

struct px_stats_entry *
px_stats_cluster(struct px_stats *st, const char *name)
{
    return entry(st, &st->clusters, &st->nclusters, name, sizeof(struct pool_stats));
}

struct px_listener_stats *
px_stats_listener_block(const struct px_stats_entry *e, unsigned w)
{
    return (void *)((char *)e->block + w * stride(sizeof(struct px_listener_stats)));
}

struct pool_stats *
px_stats_cluster_block(const struct px_stats_entry *e, unsigned w)
{
    return (void *)((char *)e->block + w * stride(sizeof(struct pool_stats)));
}

void
px_stats_listener_sum(const struct px_stats_entry *e, unsigned nworkers,
                      struct px_listener_stats *sum)
{
    sum_blocks(e->block, nworkers, sizeof(*sum), sum);
}

void
px_stats_cluster_sum(const struct px_stats_entry *e, unsigned nworkers, struct pool_stats *sum)
{
    unsigned w;

    sum_blocks(e->block, nworkers, sizeof(*sum), sum);
    POOL_STAT_SET(sum->max_conns_seen, 0); /* a most, not a total */
    for (w = 0; w < nworkers; w++) {
        uint64_t v = POOL_STAT_GET(px_stats_cluster_block(e, w)->max_conns_seen);

        if (v > POOL_STAT_GET(sum->max_conns_seen)) {
            POOL_STAT_SET(sum->max_conns_seen, v);
        }
    }
}

#define V(x) (unsigned long long)POOL_STAT_GET(x)

void
px_stats_log_listener(const struct px_log_ctx *ctx, unsigned w, const struct px_listener_stats *st)
{
    px_log_info("stats", ctx,
                "worker %u: accepted=%llu rejected=%llu accept_errors=%llu frames_in=%llu "
                "frames_out=%llu bytes_in=%llu bytes_out=%llu bad_frames=%llu "
                "idle_timeouts=%llu read_timeouts=%llu request_timeouts=%llu "
                "write_timeouts=%llu upstream_failures=%llu rejected_commands=%llu "
                "frame_timeouts=%llu partial_drops=%llu budget_stops=%llu budget_rejections=%llu",
                w, V(st->accepted), V(st->rejected), V(st->accept_errors), V(st->frames_in),
                V(st->frames_out), V(st->bytes_in), V(st->bytes_out), V(st->bad_frames),
                V(st->idle_timeouts), V(st->read_timeouts), V(st->request_timeouts),
                V(st->write_timeouts), V(st->upstream_failures), V(st->rejected_commands),
                V(st->frame_timeouts), V(st->partial_drops), V(st->budget_stops),
                V(st->budget_rejections));
}

void
px_stats_log_cluster(const struct px_log_ctx *ctx, unsigned w, const struct pool_stats *ps)
{
    px_log_info("stats", ctx,
                "worker %u: conns_opened=%llu conns_max=%llu connect_failures=%llu "
                "requests=%llu responses=%llu retries=%llu queued=%llu leases=%llu "
                "canceled=%llu pins=%llu unpin_resets=%llu failed_upstream=%llu "
                "failed_timeout=%llu failed_queue=%llu failed_unhealthy=%llu",
                w, V(ps->conns_opened), V(ps->max_conns_seen), V(ps->connect_failures),
                V(ps->requests), V(ps->responses), V(ps->retries), V(ps->queued), V(ps->leases),
                V(ps->canceled), V(ps->pins), V(ps->unpin_resets),
                V(ps->failed[POOL_UPSTREAM_ERROR]) + V(ps->failed[POOL_MALFORMED]) +
                    V(ps->failed[POOL_CONNECT_FAILED]) + V(ps->failed[POOL_REFUSED]),
                V(ps->failed[POOL_TIMEOUT]),
                V(ps->failed[POOL_QUEUE_FULL]) + V(ps->failed[POOL_QUEUE_TIMEOUT]),
                V(ps->failed[POOL_UNHEALTHY]));
}
