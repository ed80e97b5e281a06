/*
 * Balancers: smooth weighted round-robin (nginx's), least-request by the
 * power of two choices, and weighted random. Each picks among the healthy
 * servers that are not backing off after connect failures; else among the
 * healthy ones; else, in a route_all panic, among all; else none (fail_fast).
 * Weights follow slow start.
 */
#include "pool_internal.h"

#include <stddef.h>

enum tier {
    TIER_USABLE,  /* healthy and not backing off */
    TIER_HEALTHY, /* healthy */
    TIER_ANY,     /* nothing is healthy and panic is route_all */
    TIER_NONE,
};

static enum tier
best_tier(struct pool_cluster *c, const struct pool_server *exclude, uint64_t now)
{
    bool healthy = false;
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        const struct pool_server *s = c->servers[i];

        if (!pool_server_healthy(s, now)) {
            continue;
        }
        if (s != exclude && pool_server_usable(s, now)) {
            return TIER_USABLE;
        }
        healthy = true;
    }
    if (healthy) {
        return TIER_HEALTHY;
    }
    return c->cfg->panic == CFG_PANIC_ROUTE_ALL ? TIER_ANY : TIER_NONE;
}

/* exclude only when another remains. */
static bool
eligible(struct pool_cluster *c, const struct pool_server *s, const struct pool_server *exclude,
         enum tier tier, uint64_t now)
{
    if (s == exclude && c->nservers > 1) {
        return false;
    }
    switch (tier) {
    case TIER_USABLE:
        return pool_server_healthy(s, now) && pool_server_usable(s, now);
    case TIER_HEALTHY:
        return pool_server_healthy(s, now);
    case TIER_ANY:
        return true;
    case TIER_NONE:
        break;
    }
    return false;
}

static struct pool_server *
pick_round_robin(struct pool_cluster *c, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();
    enum tier tier = best_tier(c, exclude, now);
    struct pool_server *best = NULL;
    int64_t total = 0;
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        struct pool_server *s = c->servers[i];
        int64_t w;

        if (!eligible(c, s, exclude, tier, now)) {
            continue;
        }
        w = (int64_t)pool_server_weight(s, now);
        s->current += w;
        total += w;
        if (best == NULL || s->current > best->current) {
            best = s;
        }
    }
    if (best != NULL) {
        best->current -= total;
    }
    return best;
}

static struct pool_server *
pick_weighted(struct pool_cluster *c, const struct pool_server *exclude, uint64_t now,
              enum tier tier)
{
    uint64_t total = 0, r;
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        if (eligible(c, c->servers[i], exclude, tier, now)) {
            total += pool_server_weight(c->servers[i], now);
        }
    }
    if (total == 0) {
        return NULL;
    }
    r = pool_random(c) % total;
    for (i = 0; i < c->nservers; i++) {
        uint64_t w;

        if (!eligible(c, c->servers[i], exclude, tier, now)) {
            continue;
        }
        w = pool_server_weight(c->servers[i], now);
        if (r < w) {
            return c->servers[i];
        }
        r -= w;
    }
    return NULL;
}

static struct pool_server *
pick_random(struct pool_cluster *c, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();

    return pick_weighted(c, exclude, now, best_tier(c, exclude, now));
}

/* Two weighted-random candidates; the one with fewer requests in flight per weight wins. */
static struct pool_server *
pick_least_request(struct pool_cluster *c, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();
    enum tier tier = best_tier(c, exclude, now);
    struct pool_server *a = pick_weighted(c, exclude, now, tier);
    struct pool_server *b = pick_weighted(c, exclude, now, tier);

    if (a == NULL || b == NULL) {
        return a != NULL ? a : b;
    }
    return (uint64_t)a->inflight * pool_server_weight(b, now) <=
                   (uint64_t)b->inflight * pool_server_weight(a, now)
               ? a
               : b;
}

const struct pool_balancer *
pool_balancer_for(enum cfg_balance balance)
{
    static const struct pool_balancer round_robin = {pick_round_robin};
    static const struct pool_balancer least_request = {pick_least_request};
    static const struct pool_balancer random = {pick_random};

    switch (balance) {
    case CFG_BALANCE_LEAST_REQUEST:
        return &least_request;
    case CFG_BALANCE_RANDOM:
        return &random;
    case CFG_BALANCE_ROUND_ROBIN:
    case CFG_BALANCE_HASH: /* keys pick their server; round robin serves leases and pins */
        break;
    }
    return &round_robin;
}
