/*
 * Shared server health: endpoints (one per server address), active check
 * results (rise, fall), passive ejection (consecutive failures reported by
 * the workers), the return from ejection, and DNS membership. Every
 * transition happens here, on the main thread; workers read atomics.
 */
#include "pool_health.h"
#include "pool_check.h"
#include "pool_internal.h"
#include "pool_io.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct pool_health {
    struct event_base *base;       /* borrowed: the main thread's */
    const struct cfg_cluster *cfg; /* borrowed */
    pool_frame_fn frame;
    const void *frame_arg;
    struct pool_health_ops ops;
    void *arg;
    pthread_mutex_t lock; /* guards eps and neps against workers' pool_health_endpoints() */
    struct pool_endpoint **eps;
    size_t neps, cap;
    atomic_uint version;
    int wakefd;                /* owned: workers write it when a server crossed its failure limit */
    struct event *wake;        /* owned */
    struct event *eject_timer; /* owned: the next ejection to end */
    struct pool_health_stats stats;
    bool started;
    bool panicking;    /* logged that no server is healthy */
    atomic_uint users; /* pools holding it */
};

static void say(struct pool_health *h, const struct pool_endpoint *ep, bool warn, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static void
say(struct pool_health *h, const struct pool_endpoint *ep, bool warn, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (h->ops.log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    h->ops.log(h->arg, h, ep != NULL ? ep->text : NULL, warn, msg);
}

/* Some endpoint changed: log a panic entered or left, and wake the workers. */
static void
changed(struct pool_health *h)
{
    size_t i, healthy = 0;

    for (i = 0; i < h->neps; i++) {
        healthy += pool_endpoint_fit(h->eps[i]);
    }
    if (healthy == 0 && h->neps > 0 && !h->panicking) {
        h->panicking = true;
        say(h, NULL, true, "no healthy server: %s",
            h->cfg->panic == CFG_PANIC_ROUTE_ALL ? "routing to every server (panic: route_all)"
                                                 : "failing requests at once (panic: fail_fast)");
    } else if (healthy > 0 && h->panicking) {
        h->panicking = false;
        say(h, NULL, false, "healthy servers again: %zu of %zu", healthy, h->neps);
    }
    if (h->ops.changed != NULL) {
        h->ops.changed(h->arg, h);
    }
}

void
pool_endpoint_put(struct pool_endpoint *ep)
{
    if (atomic_fetch_sub(&ep->refs, 1) == 1) {
        free(ep);
    }
}

/* ---- ejection ---- */

static void
arm_eject_timer(struct pool_health *h)
{
    uint64_t now = pool_now_ms(), next = UINT64_MAX;
    struct timeval tv;
    size_t i;

    for (i = 0; i < h->neps; i++) {
        const struct pool_endpoint *ep = h->eps[i];

        if (atomic_load(&ep->ejected) && !ep->await_check && ep->ejected_until < next) {
            next = ep->ejected_until;
        }
    }
    event_del(h->eject_timer);
    if (next == UINT64_MAX) {
        return;
    }
    tv = pool_tv_ms(next > now ? next - now : 0);
    if (event_add(h->eject_timer, &tv) == -1) {
        say(h, NULL, true, "cannot arm the ejection timer; ejected servers stay out");
    }
}

static void
back_from_ejection(struct pool_health *h, struct pool_endpoint *ep, const char *how)
{
    uint64_t now = pool_now_ms();
    size_t i;

    for (i = 0; i < h->neps; i++) {
        h->eps[i]->capped = false; /* room again: a new refusal gets its own line */
    }
    ep->await_check = false;
    ep->returned = now;
    atomic_store(&ep->back, now);
    atomic_store(&ep->fails, 0);
    atomic_store(&ep->ejected, false);
    say(h, ep, false, "server back from ejection%s", how);
}

static void
on_eject_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pool_health *h = arg;
    uint64_t now = pool_now_ms();
    bool any = false;
    size_t i;

    (void)fd;
    (void)what;
    for (i = 0; i < h->neps; i++) {
        struct pool_endpoint *ep = h->eps[i];

        if (!atomic_load(&ep->ejected) || ep->await_check || ep->ejected_until > now) {
            continue;
        }
        if (h->cfg->health.active.enabled) {
            ep->await_check = true; /* twemproxy puts it back blind; we ask a check first */
            say(h, ep, false, "ejection over; back after the next passing check");
        } else {
            back_from_ejection(h, ep, "");
            any = true;
        }
    }
    arm_eject_timer(h);
    if (any) {
        changed(h);
    }
}

static size_t
ejected_now(const struct pool_health *h)
{
    size_t i, n = 0;

    for (i = 0; i < h->neps; i++) {
        n += atomic_load(&h->eps[i]->ejected);
    }
    return n;
}

/* ep's traffic failed consecutive_failures times in a row: eject it, unless too many are out. */
static bool
eject(struct pool_health *h, struct pool_endpoint *ep)
{
    const struct cfg_health_passive *p = &h->cfg->health.passive;
    uint64_t now = pool_now_ms(), ms;
    size_t allowed = h->neps * p->max_ejected_percent / 100;
    unsigned fails = atomic_exchange(&ep->fails, 0), k;

    if (allowed == 0 && p->max_ejected_percent > 0) {
        allowed = 1; /* a cluster of one or two may still eject one */
    }
    if (ejected_now(h) >= allowed) {
        h->stats.ejections_capped++;
        if (!ep->capped) {
            ep->capped = true;
            say(h, ep, true, "server not ejected: max_ejected_percent %u%% reached",
                p->max_ejected_percent);
        }
        return false;
    }
    ep->capped = false;
    if (ep->returned != 0 && now - ep->returned > p->max_eject_ms) {
        ep->ejections = 0; /* well behaved for a while: start over from eject */
    }
    ms = p->eject_ms;
    for (k = 0; k < ep->ejections && ms < p->max_eject_ms; k++) {
        ms *= 2;
    }
    if (ms > p->max_eject_ms) {
        ms = p->max_eject_ms;
    }
    ep->ejections++;
    ep->ejected_until = now + ms;
    ep->await_check = false;
    atomic_store(&ep->ejected, true);
    h->stats.ejections++;
    ep->ejections_total++;
    say(h, ep, true, "server ejected for %llums: %u failures in a row (ejection %u)",
        (unsigned long long)ms, fails, ep->ejections);
    return true;
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct pool_health *h = arg;
    unsigned limit = h->cfg->health.passive.consecutive_failures;
    bool any = false;
    uint64_t n;
    size_t i;

    (void)what;
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN) {
        say(h, NULL, true, "cannot read the health wake-up: %s", strerror(errno));
    }
    for (i = 0; i < h->neps; i++) {
        struct pool_endpoint *ep = h->eps[i];

        if (atomic_load(&ep->fails) >= limit && !atomic_load(&ep->ejected) &&
            !atomic_load(&ep->removed)) {
            any |= eject(h, ep);
        }
    }
    if (any) {
        arm_eject_timer(h);
        changed(h);
    }
}

void
pool_health_failure(struct pool_endpoint *ep)
{
    struct pool_health *h = ep->health;
    const struct cfg_health_passive *p = &h->cfg->health.passive;
    uint64_t one = 1;

    if (!p->enabled) {
        return;
    }
    /* one wake-up per crossing; the main thread resets the count when it acts */
    if (atomic_fetch_add(&ep->fails, 1) + 1 == p->consecutive_failures &&
        write(h->wakefd, &one, sizeof(one)) == -1) {
        atomic_store(&ep->fails, 0); /* cannot happen with an eventfd short of overflow */
    }
}

/* ---- active checks ---- */

static void
on_check(void *arg, bool pass, const char *why)
{
    struct pool_endpoint *ep = arg;
    struct pool_health *h = ep->health;
    const struct cfg_health_active *a = &h->cfg->health.active;
    bool any = false;

    h->stats.checks++;
    if (pass) {
        ep->failed = 0;
        ep->passes++;
        if (atomic_load(&ep->ejected) && ep->await_check) {
            back_from_ejection(h, ep, " after a passing check");
            any = true;
        }
        if (!atomic_load(&ep->up) && ep->passes >= a->rise) {
            atomic_store(&ep->back, pool_now_ms());
            atomic_store(&ep->fails, 0);
            atomic_store(&ep->up, true);
            say(h, ep, false, "server up: %u checks passed in a row", ep->passes);
            any = true;
        }
    } else {
        h->stats.checks_failed++;
        ep->passes = 0;
        ep->failed++;
        if (atomic_load(&ep->up) && ep->failed >= a->fall) {
            atomic_store(&ep->up, false);
            h->stats.downs++;
            say(h, ep, true, "server down: %u checks failed in a row (%s)", ep->failed,
                why != NULL && why[0] != '\0' ? why : "failed");
            any = true;
        }
    }
    if (any) {
        changed(h);
    }
}

static int
start_check(struct pool_health *h, struct pool_endpoint *ep)
{
    char host[POOL_EP_TEXT];
    const struct cfg_addr *a = &ep->cfg->address;

    if (!h->cfg->health.active.enabled) {
        return 0;
    }
    snprintf(host, sizeof(host), "%s", a->kind == CFG_ADDR_NAME ? a->text : ep->text);
    ep->check = pool_check_new(h->base, &h->cfg->health.active, (const struct sockaddr *)&ep->sa,
                               ep->salen, host, h->frame, h->frame_arg, on_check, ep);
    if (ep->check != NULL && pool_check_start(ep->check) == -1) {
        pool_check_free(ep->check);
        ep->check = NULL;
    }
    if (ep->check == NULL) {
        say(h, ep, true, "cannot start active checks");
        return -1;
    }
    return 0;
}

/* ---- endpoints ---- */

static bool
same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b)
{
    return memcmp(a, b, alen) == 0;
}

static socklen_t
addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static struct pool_endpoint *
endpoint_new(struct pool_health *h, size_t slot, const struct sockaddr_storage *ss)
{
    const struct cfg_server *srv = &h->cfg->servers[slot];
    struct pool_endpoint *ep = calloc(1, sizeof(*ep));
    char ip[INET6_ADDRSTRLEN + 2];

    if (ep == NULL) {
        return NULL;
    }
    ep->health = h;
    ep->cfg = srv;
    ep->slot = slot;
    ep->salen = addr_len(ss);
    memcpy(&ep->sa, ss, ep->salen);
    if (srv->address.kind == CFG_ADDR_NAME) {
        (void)pool_addr_text(ss, false, ip, sizeof(ip)); /* "?" if it cannot be printed */
        snprintf(ep->text, sizeof(ep->text), "%s=%s", srv->address.text, ip);
    } else {
        snprintf(ep->text, sizeof(ep->text), "%s", srv->address.text);
    }
    atomic_init(&ep->up, !h->cfg->health.active.enabled ||
                             h->cfg->health.active.initial == CFG_INITIAL_HEALTHY);
    atomic_init(&ep->ejected, false);
    atomic_init(&ep->removed, false);
    atomic_init(&ep->back, 0);
    atomic_init(&ep->fails, 0);
    atomic_init(&ep->refs, 1);
    if (h->started && start_check(h, ep) == -1) {
        free(ep);
        return NULL;
    }
    return ep;
}

static void
endpoint_retire(struct pool_endpoint *ep)
{
    pool_check_free(ep->check);
    ep->check = NULL;
    atomic_store(&ep->removed, true);
    pool_endpoint_put(ep);
}

int
pool_health_set(struct pool_health *h, size_t slot, const struct sockaddr_storage *addrs, size_t n)
{
    struct pool_endpoint **add = NULL, **old = NULL;
    size_t i, j, nadd = 0, nold = 0, keep = 0;
    int rc = 0;

    if (h->cfg->balance == CFG_BALANCE_HASH && n > 1) {
        n = 1; /* a hash shard is one server: its first address */
    }
    add = calloc(n + 1, sizeof(*add));
    old = calloc(h->neps + 1, sizeof(*old));
    if (add == NULL || old == NULL) {
        rc = -1;
        goto out;
    }
    for (i = 0; i < n; i++) {
        bool known = false;

        for (j = 0; j < h->neps && !known; j++) {
            known =
                h->eps[j]->slot == slot && same_addr(&h->eps[j]->sa, h->eps[j]->salen, &addrs[i]);
        }
        for (j = 0; j < nadd && !known; j++) {
            known = same_addr(&add[j]->sa, add[j]->salen, &addrs[i]);
        }
        if (known) {
            continue;
        }
        add[nadd] = endpoint_new(h, slot, &addrs[i]);
        if (add[nadd] == NULL) {
            rc = -1;
            goto out;
        }
        nadd++;
    }
    if (h->neps + nadd > h->cap) {
        size_t cap = (h->neps + nadd) * 2;
        struct pool_endpoint **grown;

        pthread_mutex_lock(&h->lock);
        grown = realloc(h->eps, cap * sizeof(*grown));
        if (grown != NULL) {
            h->eps = grown;
            h->cap = cap;
        }
        pthread_mutex_unlock(&h->lock);
        if (grown == NULL) {
            rc = -1;
            goto out;
        }
    }
    pthread_mutex_lock(&h->lock);
    for (i = 0; i < h->neps; i++) {
        struct pool_endpoint *ep = h->eps[i];
        bool listed = ep->slot != slot || n == 0; /* an empty answer changes nothing */

        for (j = 0; j < n && !listed; j++) {
            listed = same_addr(&ep->sa, ep->salen, &addrs[j]);
        }
        if (listed) {
            h->eps[keep++] = ep;
        } else {
            old[nold++] = ep;
        }
    }
    for (i = 0; i < nadd; i++) {
        h->eps[keep++] = add[i];
    }
    h->neps = keep;
    if (nadd > 0 || nold > 0) {
        atomic_fetch_add(&h->version, 1);
    }
    pthread_mutex_unlock(&h->lock);
    for (i = 0; i < nadd; i++) {
        say(h, add[i], false, "server added");
    }
    for (i = 0; i < nold; i++) {
        say(h, old[i], false, "server removed; its connections drain");
        endpoint_retire(old[i]);
    }
    if (nadd > 0 || nold > 0) {
        rc = 1;
        if (h->cfg->servers[slot].address.kind == CFG_ADDR_NAME && h->started) {
            h->stats.dns_changes++;
        }
        changed(h);
    }
    nadd = 0; /* the list owns them now: nothing for the cleanup below to free */
out:
    for (i = 0; i < nadd; i++) {
        pool_check_free(add[i]->check);
        free(add[i]);
    }
    free(add);
    free(old);
    return rc;
}

struct pool_endpoint **
pool_health_endpoints(struct pool_health *h, size_t *n, unsigned *version)
{
    struct pool_endpoint **copy;
    size_t i;

    pthread_mutex_lock(&h->lock);
    *version = atomic_load(&h->version);
    copy = malloc((h->neps + 1) * sizeof(*copy));
    if (copy != NULL) {
        for (i = 0; i < h->neps; i++) {
            copy[i] = h->eps[i];
            atomic_fetch_add(&copy[i]->refs, 1);
        }
        *n = h->neps;
    }
    pthread_mutex_unlock(&h->lock);
    return copy;
}

unsigned
pool_health_version(struct pool_health *h)
{
    return atomic_load_explicit(&h->version, memory_order_acquire);
}

/* ---- the cluster's health ---- */

struct pool_health *
pool_health_new(struct event_base *base, const struct cfg_cluster *cfg, pool_frame_fn frame,
                const void *frame_arg, const struct pool_health_ops *ops, void *arg)
{
    struct pool_health *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        return NULL;
    }
    h->base = base;
    h->cfg = cfg;
    h->frame = frame;
    h->frame_arg = frame_arg;
    if (ops != NULL) {
        h->ops = *ops;
    }
    h->arg = arg;
    atomic_init(&h->version, 1);
    h->wakefd = -1;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return NULL;
    }
    h->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->wakefd == -1) {
        goto fail;
    }
    h->wake = event_new(base, h->wakefd, EV_READ | EV_PERSIST, on_wake, h);
    h->eject_timer = evtimer_new(base, on_eject_timer, h);
    if (h->wake == NULL || h->eject_timer == NULL || event_add(h->wake, NULL) == -1) {
        goto fail;
    }
    return h;
fail:
    pool_health_free(h);
    return NULL;
}

int
pool_health_start(struct pool_health *h)
{
    size_t i;

    h->started = true;
    for (i = 0; i < h->neps; i++) {
        if (h->eps[i]->check == NULL && start_check(h, h->eps[i]) == -1) {
            return -1;
        }
    }
    return 0;
}

void
pool_health_inherit(struct pool_health *h, const struct pool_health *old)
{
    h->stats = old->stats;
}

void
pool_health_hold(struct pool_health *h)
{
    atomic_fetch_add_explicit(&h->users, 1, memory_order_relaxed);
}

void
pool_health_release(struct pool_health *h)
{
    atomic_fetch_sub_explicit(&h->users, 1, memory_order_release);
}

unsigned
pool_health_users(const struct pool_health *h)
{
    return atomic_load_explicit(&h->users, memory_order_acquire);
}

void
pool_health_free(struct pool_health *h)
{
    size_t i;

    if (h == NULL) {
        return;
    }
    for (i = 0; i < h->neps; i++) {
        pool_check_free(h->eps[i]->check);
        h->eps[i]->check = NULL;
        pool_endpoint_put(h->eps[i]);
    }
    free(h->eps);
    if (h->wake != NULL) {
        event_free(h->wake);
    }
    if (h->eject_timer != NULL) {
        event_free(h->eject_timer);
    }
    if (h->wakefd != -1) {
        close(h->wakefd);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

const struct cfg_cluster *
pool_health_cfg(const struct pool_health *h)
{
    return h->cfg;
}

const struct pool_health_stats *
pool_health_stats(const struct pool_health *h)
{
    return &h->stats;
}

void
pool_health_dns_failed(struct pool_health *h)
{
    h->stats.dns_failures++;
}
