/*
 * Balancers: smooth weighted round-robin (nginx's), least-request by the
 * power of two choices, and weighted random. Each skips servers that are
 * backing off after connect failures, unless every server is.
 */
#include "pool_internal.h"

#include <stddef.h>

/* Usable servers, or all of them when none is; exclude only when another remains. */
static bool
eligible(struct pool_cluster *c, const struct pool_server *s, const struct pool_server *exclude,
         bool any_usable, uint64_t now)
{
    if (s == exclude && c->nservers > 1) {
        return false;
    }
    return !any_usable || pool_server_usable(s, now);
}

static bool
any_usable(struct pool_cluster *c, const struct pool_server *exclude, uint64_t now)
{
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        if (&c->servers[i] != exclude && pool_server_usable(&c->servers[i], now)) {
            return true;
        }
    }
    return false;
}

static struct pool_server *
pick_round_robin(struct pool_cluster *c, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();
    bool usable = any_usable(c, exclude, now);
    struct pool_server *best = NULL;
    int64_t total = 0;
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        struct pool_server *s = &c->servers[i];

        if (!eligible(c, s, exclude, usable, now)) {
            continue;
        }
        s->current += s->cfg->weight;
        total += s->cfg->weight;
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
pick_weighted(struct pool_cluster *c, const struct pool_server *exclude, uint64_t now, bool usable)
{
    uint64_t total = 0, r;
    size_t i;

    for (i = 0; i < c->nservers; i++) {
        if (eligible(c, &c->servers[i], exclude, usable, now)) {
            total += c->servers[i].cfg->weight;
        }
    }
    if (total == 0) {
        return NULL;
    }
    r = pool_random(c) % total;
    for (i = 0; i < c->nservers; i++) {
        if (!eligible(c, &c->servers[i], exclude, usable, now)) {
            continue;
        }
        if (r < c->servers[i].cfg->weight) {
            return &c->servers[i];
        }
        r -= c->servers[i].cfg->weight;
    }
    return NULL;
}

static struct pool_server *
pick_random(struct pool_cluster *c, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();

    return pick_weighted(c, exclude, now, any_usable(c, exclude, now));
}

/* Two weighted-random candidates; the one with fewer requests in flight per weight wins. */
static struct pool_server *
pick_least_request(struct pool_cluster *c, const struct pool_server *exclude)
{
    uint64_t now = pool_now_ms();
    bool usable = any_usable(c, exclude, now);
    struct pool_server *a = pick_weighted(c, exclude, now, usable);
    struct pool_server *b = pick_weighted(c, exclude, now, usable);

    if (a == NULL || b == NULL) {
        return a != NULL ? a : b;
    }
    return (uint64_t)a->inflight * b->cfg->weight <= (uint64_t)b->inflight * a->cfg->weight ? a : b;
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
    case CFG_BALANCE_HASH: /* refused before pools are built until the hash issue lands */
        break;
    }
    return &round_robin;
}
