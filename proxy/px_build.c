/*
 * What the main thread builds a configuration generation from: listening
 * sockets (kept across reloads per address), shared health (kept per
 * unchanged cluster), DNS watches, and the plans the workers are given.
 */
#include "px_server_internal.h"
#include "config/cfg.h"
#include "pool/pool_health.h"
#include "pool/pool_io.h"
#include "proxy/px_dns.h"
#include "proxy/px_gen.h"
#include "proxy/px_listener.h"
#include "proxy/px_log.h"
#include "proxy/px_stats.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- health ---- */

static void
on_health_changed(void *arg, struct pool_health *h)
{
    struct px_server *srv = arg;
    unsigned i;

    (void)h;
    for (i = 0; i < srv->nworkers; i++) {
        px_worker_poke(srv->workers[i]);
    }
}

static void
on_health_log(void *arg, const struct pool_health *h, const char *server, bool warn,
              const char *msg)
{
    struct px_log_ctx ctx = {.cluster = pool_health_cfg(h)->name,
                             .server = server,
                             .server_name = px_log_server_name(pool_health_cfg(h), server)};

    (void)arg;
    if (warn) {
        px_log_warn("health", &ctx, "%s", msg);
    } else {
        px_log_info("health", &ctx, "%s", msg);
    }
}

static const struct pool_health_ops health_ops = {on_health_changed, on_health_log};

void
px_build_health_log(const struct pool_health *h)
{
    const struct pool_health_stats *hs = pool_health_stats(h);
    struct px_log_ctx ctx = {.cluster = pool_health_cfg(h)->name};

    px_log_info("stats", &ctx,
                "health: checks=%llu checks_failed=%llu downs=%llu ejections=%llu "
                "ejections_capped=%llu dns_failures=%llu dns_changes=%llu",
                (unsigned long long)hs->checks, (unsigned long long)hs->checks_failed,
                (unsigned long long)hs->downs, (unsigned long long)hs->ejections,
                (unsigned long long)hs->ejections_capped, (unsigned long long)hs->dns_failures,
                (unsigned long long)hs->dns_changes);
}

void
px_build_health_free(struct srv_health *sh)
{
    pool_health_free(sh->h);
    px_gen_unref(sh->gen);
    free(sh);
}

/*
 * The shared health of cluster cc of generation gen: the running one when
 * the cluster did not change, else a new one (with the old one's counters).
 */
static struct srv_health *
health_for(struct px_server *srv, struct px_gen *gen, const struct cfg_cluster *cc, bool *made)
{
    struct srv_health *sh, *old = NULL;
    size_t s;

    *made = false;
    TAILQ_FOREACH(sh, &srv->healths, link)
    {
        const struct cfg_cluster *hc = pool_health_cfg(sh->h);

        if (sh->current && strcmp(hc->name, cc->name) == 0) {
            if (cfg_cluster_same(hc, cc)) {
                return sh;
            }
            old = sh;
        }
    }
    sh = calloc(1, sizeof(*sh));
    if (sh == NULL) {
        return NULL;
    }
    sh->h = pool_health_new(srv->base, cc, px_worker_frame, &cc->codec, &health_ops, srv);
    if (sh->h == NULL) {
        free(sh);
        return NULL;
    }
    sh->gen = px_gen_ref(gen);
    if (old != NULL) {
        pool_health_inherit(sh->h, old->h);
    }
    for (s = 0; s < cc->nservers; s++) {
        const struct cfg_addr *a = &cc->servers[s].address;

        if (a->kind != CFG_ADDR_NAME && pool_health_set(sh->h, s, &a->sa, 1) == -1) {
            px_build_health_free(sh);
            return NULL;
        }
    }
    TAILQ_INSERT_TAIL(&srv->healths, sh, link);
    *made = true;
    return sh;
}

/* Free replaced health that no worker's pool holds any more. */
void
px_build_on_collect(evutil_socket_t fd, short what, void *arg)
{
    struct px_server *srv = arg;
    struct srv_health *sh, *next;
    bool waiting = false;
    struct timeval tv = {COLLECT_MS / 1000, (COLLECT_MS % 1000) * 1000};

    (void)fd;
    (void)what;
    for (sh = TAILQ_FIRST(&srv->healths); sh != NULL; sh = next) {
        next = TAILQ_NEXT(sh, link);
        if (sh->current) {
            continue;
        }
        if (pool_health_users(sh->h) == 0) {
            TAILQ_REMOVE(&srv->healths, sh, link);
            px_build_health_free(sh);
        } else {
            waiting = true;
        }
    }
    if (waiting && evtimer_add(srv->collect, &tv) == -1) {
        px_log_warn("server", NULL, "cannot arm the timer that frees replaced health checks");
    }
}

/* ---- DNS ---- */

static void
addr_list(char *buf, size_t size, const struct sockaddr_storage *addrs, size_t n)
{
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; i < n && used < size; i++) {
        char ip[INET6_ADDRSTRLEN + 2];
        int k;

        (void)pool_addr_text(&addrs[i], false, ip, sizeof(ip)); /* "?" if it cannot be printed */
        k = snprintf(buf + used, size - used, "%s%s", i > 0 ? ", " : "", ip);
        if (k < 0) {
            break;
        }
        used += (size_t)k;
    }
}

static void
on_dns(void *arg, const struct sockaddr_storage *addrs, size_t n, const char *err)
{
    struct dns_name *dn = arg;
    struct px_server *srv = dn->set->srv;
    const struct cfg_cluster *cc = pool_health_cfg(dn->h);
    struct px_log_ctx ctx = {.cluster = cc->name,
                             .server = cc->servers[dn->slot].address.text,
                             .server_name = cc->servers[dn->slot].name};
    char list[512];
    int rc;

    if (n == 0) {
        pool_health_dns_failed(dn->h);
        px_log_warn("dns", &ctx, "lookup of %s failed: %s; %s", cc->servers[dn->slot].address.host,
                    err != NULL ? err : "no address",
                    dn->answered ? "keeping the last answer" : "no address yet, trying again");
        return;
    }
    rc = pool_health_set(dn->h, dn->slot, addrs, n);
    if (rc == -1) {
        px_log_error("dns", &ctx, "out of memory applying the answer for %s",
                     cc->servers[dn->slot].address.host);
        return;
    }
    if (rc == 1 || !dn->answered) {
        addr_list(list, sizeof(list), addrs, n);
        px_log_info("dns", &ctx, "%s resolved to %zu address%s: %s",
                    cc->servers[dn->slot].address.host, n, n == 1 ? "" : "es", list);
    }
    if (!dn->answered && dn->needed) {
        dn->set->waiting--;
    }
    dn->answered = true;
    if (dn->set == srv->staged_dns && dn->set->waiting == 0) {
        event_active(srv->staged_go, EV_TIMEOUT, 0); /* not under the resolver's callback */
    }
}

static void
on_dns_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Wait (bounded) for the first answers; at start only, before the workers serve. */
int
px_build_dns_wait(struct px_server *srv)
{
    struct timeval tv = {DNS_START_WAIT_MS / 1000, 0};
    struct event *wait = evtimer_new(srv->base, on_dns_wait, srv->base);

    if (wait == NULL || evtimer_add(wait, &tv) == -1) {
        if (wait != NULL) {
            event_free(wait);
        }
        return -1;
    }
    while (px_dns_pending(srv->dns->dns) > 0 && evtimer_pending(wait, NULL) && !srv->stopping) {
        if (event_base_loop(srv->base, EVLOOP_ONCE) == -1) {
            break;
        }
    }
    event_free(wait);
    if (px_dns_pending(srv->dns->dns) > 0 && !srv->stopping) {
        px_log_warn("dns", NULL,
                    "%zu name%s not answered within %d s; serving without them until they are",
                    px_dns_pending(srv->dns->dns), px_dns_pending(srv->dns->dns) == 1 ? "" : "s",
                    DNS_START_WAIT_MS / 1000);
    }
    return 0;
}

void
px_build_dns_free(struct srv_dns *sd)
{
    if (sd == NULL) {
        return;
    }
    px_dns_free(sd->dns);
    free(sd->names);
    free(sd);
}

/*
 * Watch every server given by hostname of cfg (health: per cluster; made: which
 * health is new, NULL for all). NULL on failure.
 */
struct srv_dns *
px_build_dns_new(struct px_server *srv, const struct cfg *cfg, struct pool_health **health,
                 const bool *made)
{
    struct srv_dns *sd = calloc(1, sizeof(*sd));
    size_t i, s, n = 0;

    if (sd == NULL) {
        return NULL;
    }
    sd->srv = srv;
    for (i = 0; i < cfg->nclusters; i++) {
        for (s = 0; health[i] != NULL && s < cfg->clusters[i].nservers; s++) {
            n += cfg->clusters[i].servers[s].address.kind == CFG_ADDR_NAME;
        }
    }
    if (n == 0) {
        return sd;
    }
    sd->names = calloc(n, sizeof(*sd->names));
    sd->dns = px_dns_new(srv->base, cfg);
    if (sd->names == NULL || sd->dns == NULL) {
        px_build_dns_free(sd);
        return NULL;
    }
    for (i = 0; i < cfg->nclusters; i++) {
        /* The health's own cluster: it may be an older generation's, equal to this one. */
        const struct cfg_cluster *cc = health[i] != NULL ? pool_health_cfg(health[i]) : NULL;

        for (s = 0; cc != NULL && s < cc->nservers; s++) {
            struct dns_name *dn = &sd->names[sd->nnames];

            if (cc->servers[s].address.kind != CFG_ADDR_NAME) {
                continue;
            }
            dn->set = sd;
            dn->h = health[i];
            dn->slot = s;
            dn->needed = made == NULL || made[i];
            sd->waiting += dn->needed;
            sd->nnames++;
            if (px_dns_watch(sd->dns, cc->servers[s].address.host, cc->servers[s].address.port,
                             cc->resolve_interval_ms, on_dns, dn) == NULL) {
                px_log_error("dns", NULL, "cannot watch %s", cc->servers[s].address.text);
                px_build_dns_free(sd);
                return NULL;
            }
        }
    }
    return sd;
}

/* ---- listening sockets ---- */

void
px_build_socket_free(struct px_server *srv, struct srv_socket *so)
{
    unsigned w;

    for (w = 0; w < srv->nworkers; w++) {
        if (so->fds[w] != -1) {
            close(so->fds[w]);
        }
    }
    free(so->fds);
    free(so);
}

static in_port_t
port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                    : ((const struct sockaddr_in6 *)ss)->sin6_port;
}

/* Whether ss is its family's wildcard address (0.0.0.0 or ::). */
static bool
is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    }
    return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)a)->sin6_addr,
                              &((const struct sockaddr_in6 *)b)->sin6_addr);
}

/*
 * Whether a socket of ours would make the probe of ss fail: one on the same
 * port whose address is ss's, or the wildcard of ss's family, or one that ss
 * is the wildcard of (a reload moving a listener from 127.0.0.1:P to
 * 0.0.0.0:P); :: of a listener bound to any address takes IPv4 too. Only
 * then is the probe skipped (the listeners' overlap is the config check's):
 * another address on the same port, 127.0.0.2:P beside our 127.0.0.1:P, is
 * probed like any other.
 */
static bool
holds_addr(const struct px_server *srv, const struct sockaddr_storage *ss)
{
    const struct srv_socket *so;

    TAILQ_FOREACH(so, &srv->sockets, link)
    {
        if (port_of(&so->ss) != port_of(ss)) {
            continue;
        }
        if (so->ss.ss_family == ss->ss_family &&
            (same_addr(&so->ss, ss) || is_wildcard(&so->ss) || is_wildcard(ss))) {
            return true;
        }
        if ((so->ss.ss_family == AF_INET6 && is_wildcard(&so->ss)) ||
            (ss->ss_family == AF_INET6 && is_wildcard(ss))) { /* dual stack: IPv4 as well */
            return true;
        }
    }
    return false;
}

/*
 * The sockets listener lc of generation number binds, one per worker: the
 * running ones when the address did not change (so no connection is refused
 * across a reload), else new ones. NULL after logging why.
 */
static struct srv_socket *
socket_for(struct px_server *srv, const struct cfg_listener *lc, unsigned number)
{
    struct px_log_ctx ctx = {.listener = lc->name};
    struct sockaddr_storage ss;
    struct srv_socket *so;
    socklen_t len;
    unsigned w;

    if (px_listener_addr(lc, &ss, &len) == -1) {
        return NULL;
    }
    TAILQ_FOREACH(so, &srv->sockets, link)
    {
        if (so->len == len && memcmp(&so->ss, &ss, len) == 0 && so->used == number) {
            px_log_error("listener", &ctx, "%s is an address another listener binds too",
                         lc->bind.text);
            return NULL;
        }
        if (so->len == len && memcmp(&so->ss, &ss, len) == 0) {
            for (w = 0; w < srv->nworkers; w++) {
                (void)listen(so->fds[w], (int)lc->backlog); /* a changed backlog applies */
            }
            so->used = number;
            return so;
        }
    }
    if (!holds_addr(srv, &ss) && px_listener_probe(lc, &ss, len) == -1) {
        int err = errno;

        px_log_error("listener", &ctx, "cannot listen on %s: %s%s", lc->bind.text, strerror(err),
                     err == EADDRINUSE ? " (another process holds that address; sluice does not "
                                         "share a listening address)"
                                       : "");
        return NULL;
    }
    so = calloc(1, sizeof(*so));
    if (so == NULL || (so->fds = malloc(srv->nworkers * sizeof(*so->fds))) == NULL) {
        free(so);
        return NULL;
    }
    so->ss = ss;
    so->len = len;
    so->used = number;
    so->fresh = true;
    for (w = 0; w < srv->nworkers; w++) {
        so->fds[w] = -1;
    }
    for (w = 0; w < srv->nworkers; w++) {
        so->fds[w] = px_listener_open(lc, &ss, len);
        if (so->fds[w] == -1) {
            px_log_error("listener", &ctx, "cannot listen on %s: %s", lc->bind.text,
                         strerror(errno));
            px_build_socket_free(srv, so);
            return NULL;
        }
    }
    TAILQ_INSERT_TAIL(&srv->sockets, so, link);
    return so;
}

/* Close the sockets no generation from older_than on listens on (fresh only: the new ones). */
void
px_build_close_sockets(struct px_server *srv, unsigned older_than, bool fresh)
{
    struct srv_socket *so, *next;

    for (so = TAILQ_FIRST(&srv->sockets); so != NULL; so = next) {
        next = TAILQ_NEXT(so, link);
        if (fresh ? so->fresh : so->used < older_than) {
            TAILQ_REMOVE(&srv->sockets, so, link);
            px_build_socket_free(srv, so);
        }
    }
}

/* ---- generations ---- */

void
px_build_plan_free(struct srv_plan *sp)
{
    if (sp == NULL) {
        return;
    }
    px_gen_unref(sp->gen);
    free(sp->plans);
    free(sp->fds);
    free(sp->ls);
    free(sp->ps);
    free(sp->clients);
    free(sp->health);
    free(sp->made);
    free(sp);
}

/* Undo a generation that will not run: its new health and sockets go (the running one's stay). */
void
px_build_plan_undo(struct px_server *srv, struct px_gen *gen, struct srv_plan *sp)
{
    struct srv_health *sh, *next;
    struct srv_socket *so;

    for (sh = TAILQ_FIRST(&srv->healths); sh != NULL; sh = next) {
        next = TAILQ_NEXT(sh, link);
        if (sh->gen == gen) { /* new: no running pool holds it */
            TAILQ_REMOVE(&srv->healths, sh, link);
            px_build_health_free(sh);
        }
    }
    px_build_close_sockets(srv, 0, true);
    TAILQ_FOREACH(so, &srv->sockets, link)
    {
        if (so->used == gen->number && srv->gen != gen) {
            so->used = srv->gen->number; /* claimed for gen: the running one's again */
        }
    }
    px_build_plan_free(sp);
}

/*
 * Build what the workers need for gen: shared health per used cluster
 * (made[] says which are new), sockets, counters. On failure nothing the
 * running generation uses is touched; new health and sockets are undone.
 */
struct srv_plan *
px_build_plan_new(struct px_server *srv, struct px_gen *gen)
{
    const struct cfg *cfg = gen->cfg;
    size_t nl = cfg->nlisteners, nc = cfg->nclusters, i;
    struct srv_plan *sp = calloc(1, sizeof(*sp));
    struct srv_socket *so;
    bool ok = sp != NULL;
    unsigned w;

    if (ok) {
        sp->gen = px_gen_ref(gen);
        sp->plans = calloc(srv->nworkers, sizeof(*sp->plans));
        sp->fds = calloc(srv->nworkers * nl + 1, sizeof(*sp->fds));
        sp->ls = calloc(srv->nworkers * nl + 1, sizeof(*sp->ls));
        sp->ps = calloc(srv->nworkers * nc + 1, sizeof(*sp->ps));
        sp->clients = calloc(nl + 1, sizeof(*sp->clients));
        sp->health = calloc(nc + 1, sizeof(*sp->health));
        sp->made = calloc(nc + 1, sizeof(*sp->made));
        ok = sp->plans != NULL && sp->fds != NULL && sp->ls != NULL && sp->ps != NULL &&
             sp->clients != NULL && sp->health != NULL && sp->made != NULL;
    }
    for (i = 0; ok && i < nc; i++) {
        struct px_stats_entry *e = px_stats_cluster(srv->stats, cfg->clusters[i].name);
        struct srv_health *sh;
        bool made;

        ok = e != NULL;
        for (w = 0; ok && w < srv->nworkers; w++) {
            sp->ps[w * nc + i] = px_stats_cluster_block(e, w);
        }
        if (ok && px_worker_cluster_used(cfg, &cfg->clusters[i])) {
            sh = health_for(srv, gen, &cfg->clusters[i], &made);
            ok = sh != NULL;
            if (ok) {
                sp->health[i] = sh->h;
                sp->made[i] = made;
                if (made) {
                    sh->current = true; /* provisionally: undone below on failure */
                    ok = !srv->started || pool_health_start(sh->h) == 0;
                }
            }
        }
    }
    for (i = 0; ok && i < nl; i++) {
        struct px_stats_entry *e = px_stats_listener(srv->stats, cfg->listeners[i].name);

        so = e != NULL ? socket_for(srv, &cfg->listeners[i], gen->number) : NULL;
        ok = so != NULL;
        for (w = 0; ok && w < srv->nworkers; w++) {
            sp->fds[w * nl + i] = so->fds[w];
            sp->ls[w * nl + i] = px_stats_listener_block(e, w);
        }
        if (ok) {
            sp->clients[i] = &e->clients;
        }
    }
    if (!ok) {
        px_build_plan_undo(srv, gen, sp);
        return NULL;
    }
    for (w = 0; w < srv->nworkers; w++) {
        struct px_plan *p = &sp->plans[w];

        p->gen = gen;
        p->fds = &sp->fds[w * nl];
        p->clients = sp->clients;
        p->lstats = &sp->ls[w * nl];
        p->pstats = &sp->ps[w * nc];
        p->health = sp->health;
    }
    return sp;
}

/* gen is running now: health not in it is replaced, DNS follows its names (sd). */
void
px_build_switch(struct px_server *srv, struct px_gen *gen, struct pool_health **health,
                struct srv_dns *sd)
{
    struct srv_health *sh;
    struct srv_socket *so;
    size_t i;
    bool replaced = false;

    TAILQ_FOREACH(so, &srv->sockets, link)
    {
        so->fresh = false; /* opened for gen: kept */
    }
    TAILQ_FOREACH(sh, &srv->healths, link)
    {
        bool used = false;

        for (i = 0; i < gen->cfg->nclusters; i++) {
            used = used || health[i] == sh->h;
        }
        if (sh->current && !used) {
            replaced = true;
            px_build_health_log(sh->h);
        }
        sh->current = used;
    }
    if (replaced && !evtimer_pending(srv->collect, NULL)) {
        px_build_on_collect(-1, 0, srv);
    }
    px_build_dns_free(srv->dns);
    srv->dns = sd;
    free(srv->health);
    srv->health = health;
    px_gen_unref(srv->gen);
    srv->gen = px_gen_ref(gen);
}
