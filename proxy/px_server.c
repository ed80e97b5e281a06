#include "px_server.h"
#include "config/cfg.h"
#include "proxy/px_log.h"

#include "pool/pool.h"
#include "pool/pool_health.h"
#include "pool/pool_io.h"
#include "proxy/px_admin.h"
#include "proxy/px_dns.h"
#include "proxy/px_gen.h"
#include "proxy/px_listener.h"
#include "proxy/px_stats.h"
#include "proxy/px_worker.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#define DNS_START_WAIT_MS 5000 /* longest the start waits for the first answers */
#define COLLECT_MS 1000        /* how often replaced health is looked at for freeing */

/* A listening address: one socket per worker, kept across reloads while some listener binds it. */
struct srv_socket {
    TAILQ_ENTRY(srv_socket) link;
    struct sockaddr_storage ss;
    socklen_t len;
    int *fds;      /* owned: one per worker */
    unsigned used; /* the last generation that listens on it */
    bool fresh;    /* opened for a generation not running yet: closed if it fails */
};

/* A cluster's shared health (main thread), kept across reloads while the cluster is unchanged. */
struct srv_health {
    TAILQ_ENTRY(srv_health) link;
    struct pool_health *h; /* owned */
    struct px_gen *gen;    /* ref: where its cfg_cluster lives */
    bool current;          /* the running generation uses it; else freed once no pool holds it */
};

struct srv_dns;

/* A server given by hostname: its health and slot. */
struct dns_name {
    struct srv_dns *set;   /* borrowed: the set it belongs to */
    struct pool_health *h; /* borrowed */
    size_t slot;
    bool answered;
    bool needed; /* its health is new: a staged generation waits for its first address */
};

/* The DNS watches of one generation: every server given by hostname. */
struct srv_dns {
    struct px_server *srv;  /* borrowed */
    struct px_dns *dns;     /* owned: NULL when no server is given by hostname */
    struct dns_name *names; /* owned */
    size_t nnames;
    size_t waiting; /* needed names not answered yet */
};

/* What the workers are given for one generation; freed once every worker took it. */
struct srv_plan {
    struct px_gen *gen;            /* ref */
    struct px_plan *plans;         /* owned: one per worker */
    int *fds;                      /* owned: [worker][listener] */
    struct px_listener_stats **ls; /* owned: [worker][listener] */
    struct pool_stats **ps;        /* owned: [worker][cluster] */
    atomic_uint **clients;         /* owned: [listener] */
    struct pool_health **health;   /* owned array: [cluster] */
    bool *made;                    /* owned: [cluster], its health is new */
};

TAILQ_HEAD(srv_socket_list, srv_socket);
TAILQ_HEAD(srv_health_list, srv_health);

struct px_server {
    struct event_base *base; /* owned */
    const char *path;
    struct px_gen *gen;          /* ref: the running generation */
    struct pool_health **health; /* owned array (entries borrowed): per cluster of gen */
    struct srv_plan *pending;    /* posted to the workers, not yet taken by all */
    bool reload_again;           /* SIGHUP during a reload: another once it is done */
    unsigned last_number;        /* the newest generation's number */
    struct px_server_counters counters;
    struct px_stats *stats; /* owned */
    struct srv_socket_list sockets;
    struct srv_health_list healths;
    struct srv_dns *dns;        /* owned: the running generation's names */
    struct srv_plan *staged;    /* valid, waiting (bounded) for its new servers' first answers */
    struct srv_dns *staged_dns; /* owned: the staged generation's names */
    struct event *staged_wait;  /* owned: the bound of that wait */
    struct event *staged_go;    /* owned: apply the staged generation (from the loop) */
    struct px_worker **workers; /* owned */
    unsigned nworkers;
    int notifyfd;              /* owned: workers write it (plan taken, drain done) */
    struct event *notify;      /* owned */
    struct event *collect;     /* owned: frees replaced health */
    struct event *sig_term;    /* owned */
    struct event *sig_int;     /* owned */
    struct event *sig_hup;     /* owned */
    struct event *drain_timer; /* owned: the shutdown's drain_timeout */
    struct px_admin *admin;    /* owned */
    bool started;              /* serving: the first generation applied */
    bool stopping;             /* SIGTERM or SIGINT came, maybe before the loop ran */
    bool sockets_closed;
};

int
px_server_check(const struct cfg *cfg, bool log)
{
    int problems = 0;
    size_t i;

#define NOT_YET(...)                                                                               \
    do {                                                                                           \
        char what_[256];                                                                           \
        snprintf(what_, sizeof(what_), __VA_ARGS__);                                               \
        if (log) {                                                                                 \
            px_log_error("config", NULL, "%s: %s is not available in this version yet", cfg->file, \
                         what_);                                                                   \
        } else {                                                                                   \
            fprintf(stderr, "sluice: %s: %s is not available in this version yet\n", cfg->file,    \
                    what_);                                                                        \
        }                                                                                          \
        problems++;                                                                                \
    } while (0)
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];

        if (l->codec.type == CFG_CODEC_HTTP) {
            NOT_YET("listeners[%zu] (%s): codec %s", i, l->name, cfg_codec_name(l->codec.type));
        }
        if (l->tls.enabled) {
            NOT_YET("listeners[%zu] (%s): tls", i, l->name);
        }
    }
    for (i = 0; i < cfg->nclusters; i++) {
        const struct cfg_cluster *c = &cfg->clusters[i];

        if (c->tls.enabled) {
            NOT_YET("clusters[%zu] (%s): tls", i, c->name);
        }
    }
    if (cfg->nudp > 0) {
        NOT_YET("udp[0] (%s): udp relays", cfg->udp[0].name);
    }
#undef NOT_YET
    return problems;
}

static unsigned
worker_count(const struct cfg *cfg)
{
    long n;

    if (cfg->workers > 0) {
        return cfg->workers;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

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
    struct px_log_ctx ctx = {.cluster = pool_health_cfg(h)->name, .server = server};

    (void)arg;
    if (warn) {
        px_log_warn("health", &ctx, "%s", msg);
    } else {
        px_log_info("health", &ctx, "%s", msg);
    }
}

static const struct pool_health_ops health_ops = {on_health_changed, on_health_log};

static void
log_health_stats(const struct pool_health *h)
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

static void
health_free(struct srv_health *sh)
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
            health_free(sh);
            return NULL;
        }
    }
    TAILQ_INSERT_TAIL(&srv->healths, sh, link);
    *made = true;
    return sh;
}

/* Free replaced health that no worker's pool holds any more. */
static void
on_collect(evutil_socket_t fd, short what, void *arg)
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
            health_free(sh);
        } else {
            waiting = true;
        }
    }
    if (waiting) {
        evtimer_add(srv->collect, &tv);
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
    struct px_log_ctx ctx = {.cluster = cc->name, .server = cc->servers[dn->slot].address.text};
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
static int
dns_wait(struct px_server *srv)
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

static void
dns_free(struct srv_dns *sd)
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
static struct srv_dns *
dns_new(struct px_server *srv, const struct cfg *cfg, struct pool_health **health, const bool *made)
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
        dns_free(sd);
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
                dns_free(sd);
                return NULL;
            }
        }
    }
    return sd;
}

/* ---- listening sockets ---- */

static void
socket_free(struct px_server *srv, struct srv_socket *so)
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
        if (so->len == len && memcmp(&so->ss, &ss, len) == 0) {
            for (w = 0; w < srv->nworkers; w++) {
                (void)listen(so->fds[w], (int)lc->backlog); /* a changed backlog applies */
            }
            so->used = number;
            return so;
        }
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
            socket_free(srv, so);
            return NULL;
        }
    }
    TAILQ_INSERT_TAIL(&srv->sockets, so, link);
    return so;
}

/* Close the sockets no generation from older_than on listens on (fresh only: the new ones). */
static void
close_sockets(struct px_server *srv, unsigned older_than, bool fresh)
{
    struct srv_socket *so, *next;

    for (so = TAILQ_FIRST(&srv->sockets); so != NULL; so = next) {
        next = TAILQ_NEXT(so, link);
        if (fresh ? so->fresh : so->used < older_than) {
            TAILQ_REMOVE(&srv->sockets, so, link);
            socket_free(srv, so);
        }
    }
}

/* ---- generations ---- */

static void
plan_free(struct srv_plan *sp)
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
static void
plan_undo(struct px_server *srv, struct px_gen *gen, struct srv_plan *sp)
{
    struct srv_health *sh, *next;

    for (sh = TAILQ_FIRST(&srv->healths); sh != NULL; sh = next) {
        next = TAILQ_NEXT(sh, link);
        if (sh->gen == gen) { /* new: no running pool holds it */
            TAILQ_REMOVE(&srv->healths, sh, link);
            health_free(sh);
        }
    }
    close_sockets(srv, 0, true);
    plan_free(sp);
}

/*
 * Build what the workers need for gen: shared health per used cluster
 * (made[] says which are new), sockets, counters. On failure nothing the
 * running generation uses is touched; new health and sockets are undone.
 */
static struct srv_plan *
plan_new(struct px_server *srv, struct px_gen *gen)
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
        struct px_stats_cluster *e = px_stats_cluster(srv->stats, cfg->clusters[i].name);
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
        struct px_stats_listener *e = px_stats_listener(srv->stats, cfg->listeners[i].name);

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
        plan_undo(srv, gen, sp);
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
static void
switch_to(struct px_server *srv, struct px_gen *gen, struct pool_health **health,
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
            log_health_stats(sh->h);
        }
        sh->current = used;
    }
    if (replaced && !evtimer_pending(srv->collect, NULL)) {
        on_collect(-1, 0, srv);
    }
    dns_free(srv->dns);
    srv->dns = sd;
    free(srv->health);
    srv->health = health;
    px_gen_unref(srv->gen);
    srv->gen = px_gen_ref(gen);
}

static void
log_summary(const struct px_server *srv, const char *what)
{
    const struct cfg *cfg = srv->gen->cfg;
    char workers[16];

    snprintf(workers, sizeof(workers), "%u", cfg->workers);
    px_log_info("config", NULL,
                "%s %s (generation %u): %zu listener%s, %zu cluster%s, %zu udp relay%s, "
                "workers %s, log level %s",
                what, srv->path, srv->gen->number, cfg->nlisteners, cfg->nlisteners == 1 ? "" : "s",
                cfg->nclusters, cfg->nclusters == 1 ? "" : "s", cfg->nudp,
                cfg->nudp == 1 ? "" : "s", cfg->workers == 0 ? "auto" : workers,
                cfg_log_level_name(cfg->log.level));
}

static const struct cfg_listener *
listener_named(const struct cfg *cfg, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->nlisteners; i++) {
        if (strcmp(cfg->listeners[i].name, name) == 0) {
            return &cfg->listeners[i];
        }
    }
    return NULL;
}

static const struct cfg_cluster *
cluster_named(const struct cfg *cfg, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->nclusters; i++) {
        if (strcmp(cfg->clusters[i].name, name) == 0) {
            return &cfg->clusters[i];
        }
    }
    return NULL;
}

/* One line saying what a reload changes: listeners and clusters added (+), removed (-), changed
 * (~). */
static void
log_changes(const struct cfg *old, const struct cfg *cfg, unsigned number)
{
    char text[1024];
    size_t used = 0, i;

#define SAY(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(text + used, sizeof(text) - used, __VA_ARGS__);                          \
        if (k_ > 0 && (size_t)k_ < sizeof(text) - used) {                                          \
            used += (size_t)k_;                                                                    \
        }                                                                                          \
    } while (0)
    text[0] = '\0';
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *was = listener_named(old, cfg->listeners[i].name);

        if (was == NULL || !cfg_listener_same(was, &cfg->listeners[i])) {
            SAY(" %clistener %s", was == NULL ? '+' : '~', cfg->listeners[i].name);
        }
    }
    for (i = 0; i < old->nlisteners; i++) {
        if (listener_named(cfg, old->listeners[i].name) == NULL) {
            SAY(" -listener %s", old->listeners[i].name);
        }
    }
    for (i = 0; i < cfg->nclusters; i++) {
        const struct cfg_cluster *was = cluster_named(old, cfg->clusters[i].name);

        if (was == NULL || !cfg_cluster_same(was, &cfg->clusters[i])) {
            SAY(" %ccluster %s", was == NULL ? '+' : '~', cfg->clusters[i].name);
        }
    }
    for (i = 0; i < old->nclusters; i++) {
        if (cluster_named(cfg, old->clusters[i].name) == NULL) {
            SAY(" -cluster %s", old->clusters[i].name);
        }
    }
#undef SAY
    px_log_info("config", NULL, "generation %u changes:%s", number,
                used > 0 ? text : " none to listeners or clusters");
}

/* ---- reload ---- */

static void reload(struct px_server *srv);

static void
reload_failed(struct px_server *srv, const char *why, size_t errors)
{
    srv->counters.reload_failures++;
    if (errors > 0) {
        px_log_error("config", NULL,
                     "reload of %s failed with %zu error%s; still running generation %u", srv->path,
                     errors, errors == 1 ? "" : "s", srv->gen->number);
    } else {
        px_log_error("config", NULL, "reload of %s failed: %s; still running generation %u",
                     srv->path, why, srv->gen->number);
    }
}

static void commit(struct px_server *srv, struct srv_plan *sp, struct srv_dns *sd);

static void
reload(struct px_server *srv)
{
    struct timeval tv = {DNS_START_WAIT_MS / 1000, 0};
    struct cfg_diag *diag;
    struct cfg *next;
    struct px_gen *gen;
    struct srv_plan *sp;
    struct srv_dns *sd;
    size_t i, n;

    if (srv->pending != NULL || srv->staged != NULL) {
        srv->reload_again = true; /* after the workers took the one in flight */
        return;
    }
    diag = cfg_diag_new();
    next = cfg_load_file(srv->path, diag);
    n = cfg_diag_count(diag);
    for (i = 0; i < n; i++) {
        px_log_error("config", NULL, "%s", cfg_diag_message(diag, i));
    }
    cfg_diag_free(diag);
    if (next == NULL) {
        reload_failed(srv, NULL, n);
        return;
    }
    n = (size_t)px_server_check(next, true);
    if (n > 0) {
        cfg_free(next);
        reload_failed(srv, NULL, n);
        return;
    }
    if (worker_count(next) != srv->nworkers) {
        px_log_warn("config", NULL, "reload: workers %u needs a restart; keeping %u",
                    worker_count(next), srv->nworkers);
    }
    if (strcmp(next->admin.bind.text, srv->gen->cfg->admin.bind.text) != 0) {
        px_log_warn("config", NULL, "reload: admin.bind %s needs a restart; keeping %s",
                    next->admin.bind.text, srv->gen->cfg->admin.bind.text);
    }
    gen = px_gen_new(next, srv->last_number + 1);
    if (gen == NULL) {
        reload_failed(srv, "out of memory", 0);
        return;
    }
    sp = plan_new(srv, gen);
    if (sp == NULL) {
        px_gen_unref(gen);
        reload_failed(srv, "cannot set up its listeners or health checks", 0);
        return;
    }
    sd = dns_new(srv, gen->cfg, sp->health, sp->made);
    if (sd == NULL) {
        plan_undo(srv, gen, sp);
        px_gen_unref(gen);
        reload_failed(srv, "cannot watch its servers given by hostname", 0);
        return;
    }
    srv->last_number = gen->number;
    log_changes(srv->gen->cfg, gen->cfg, gen->number);
    px_gen_unref(gen); /* the plan holds it */
    if (sd->waiting > 0) {
        /* New servers given by hostname have no address yet: their clusters would fail
         * requests until the first answers come. Wait for them (bounded) first. */
        srv->staged = sp;
        srv->staged_dns = sd;
        evtimer_add(srv->staged_wait, &tv);
        px_log_info("config", NULL,
                    "generation %u: waiting up to %d s for the first answers for %zu name%s",
                    sp->gen->number, DNS_START_WAIT_MS / 1000, sd->waiting,
                    sd->waiting == 1 ? "" : "s");
        return;
    }
    commit(srv, sp, sd);
}

/* Post a valid generation to the workers; it is the running one from here on. */
static void
commit(struct px_server *srv, struct srv_plan *sp, struct srv_dns *sd)
{
    struct px_gen *gen = sp->gen;
    unsigned w;

    for (w = 0; w < srv->nworkers; w++) {
        if (px_worker_apply(srv->workers[w], &sp->plans[w]) == -1) {
            px_log_error("config", NULL, "worker %u did not get generation %u", w, gen->number);
        }
    }
    px_log_configure(gen->cfg->log.level, gen->cfg->log.format);
    px_admin_configure(srv->admin, &gen->cfg->admin);
    srv->pending = sp;
    switch_to(srv, gen, sp->health, sd);
    sp->health = NULL; /* the server's now */
    srv->counters.reloads++;
    log_summary(srv, "reloaded");
}

/* The staged generation's names answered, or the wait is over: apply it. */
static void
on_staged(evutil_socket_t fd, short what, void *arg)
{
    struct px_server *srv = arg;
    struct srv_plan *sp = srv->staged;

    (void)fd;
    (void)what;
    if (sp == NULL) {
        return;
    }
    if (srv->staged_dns->waiting > 0) {
        px_log_warn("dns", NULL,
                    "generation %u: %zu name%s not answered within %d s; applying it anyway",
                    sp->gen->number, srv->staged_dns->waiting,
                    srv->staged_dns->waiting == 1 ? "" : "s", DNS_START_WAIT_MS / 1000);
    }
    evtimer_del(srv->staged_wait);
    srv->staged = NULL;
    commit(srv, sp, srv->staged_dns);
    srv->staged_dns = NULL;
}

/* A staged generation that will not run (a shutdown came first). */
static void
staged_drop(struct px_server *srv)
{
    if (srv->staged == NULL) {
        return;
    }
    evtimer_del(srv->staged_wait);
    dns_free(srv->staged_dns);
    srv->staged_dns = NULL;
    plan_undo(srv, srv->staged->gen, srv->staged);
    srv->staged = NULL;
}

/* Every worker took the pending plan: free it, close the sockets no one listens on now. */
static void
reload_done(struct px_server *srv)
{
    unsigned w, number = srv->pending->gen->number, failed = 0;

    for (w = 0; w < srv->nworkers; w++) {
        bool bad;

        if (px_worker_applied(srv->workers[w], &bad) != number) {
            return;
        }
        failed += bad;
    }
    plan_free(srv->pending);
    srv->pending = NULL;
    if (failed > 0) {
        /* Those workers still listen on the old sockets: they close after a later reload. */
        px_log_error("config", NULL,
                     "generation %u: %u worker%s could not apply it and serve the one before",
                     number, failed, failed == 1 ? "" : "s");
    } else {
        close_sockets(srv, number, false);
        px_log_info("config", NULL, "generation %u: every worker serves it", number);
    }
    if (srv->reload_again) {
        srv->reload_again = false;
        reload(srv);
    }
}

/* ---- signals, drain ---- */

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct px_server *srv = arg;
    unsigned w, left = 0;

    (void)fd;
    (void)what;
    for (w = 0; w < srv->nworkers; w++) {
        left += px_worker_clients(srv->workers[w]);
    }
    px_log_warn(
        "server", NULL, "drain_timeout of %llu ms passed with %u client%s left; closing them",
        (unsigned long long)srv->gen->cfg->shutdown.drain_timeout_ms, left, left == 1 ? "" : "s");
    event_base_loopexit(srv->base, NULL);
}

/* Workers wrote the notify fd: a plan taken, or drain progress. */
static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct px_server *srv = arg;
    unsigned w, left = 0;
    uint64_t n;

    (void)what;
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN) {
        px_log_warn("server", NULL, "cannot read the workers' wake-up: %s", strerror(errno));
    }
    if (srv->pending != NULL) {
        reload_done(srv);
    }
    if (!srv->stopping || !srv->started) {
        return;
    }
    for (w = 0; w < srv->nworkers; w++) {
        if (!px_worker_draining(srv->workers[w])) {
            return; /* some worker still watches its listening sockets */
        }
        left += px_worker_clients(srv->workers[w]);
    }
    if (!srv->sockets_closed && srv->pending == NULL) {
        srv->sockets_closed = true;
        close_sockets(srv, UINT32_MAX, false); /* new connections are refused from here on */
    }
    if (left == 0) {
        px_log_info("server", NULL, "drained: every client finished");
        event_base_loopexit(srv->base, NULL);
    }
}

static void
on_stop(evutil_socket_t sig, short events, void *arg)
{
    struct px_server *srv = arg;
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    uint64_t ms = srv->gen->cfg->shutdown.drain_timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    unsigned w;

    (void)events;
    if (srv->stopping) {
        px_log_info("server", NULL, "%s received again, exiting now", name);
        event_base_loopexit(srv->base, NULL);
        return;
    }
    srv->stopping = true;
    staged_drop(srv);
    if (!srv->started) { /* during the start's DNS wait */
        px_log_info("server", NULL, "%s received, stopping", name);
        event_base_loopexit(srv->base, NULL);
        return;
    }
    px_log_info("server", NULL,
                "%s received: no new clients; draining the others for up to %llu ms (again to "
                "exit now)",
                name, (unsigned long long)ms);
    for (w = 0; w < srv->nworkers; w++) {
        if (px_worker_drain(srv->workers[w]) == -1) {
            event_base_loopexit(srv->base, NULL);
            return;
        }
    }
    if (evtimer_add(srv->drain_timer, &tv) == -1) {
        event_base_loopexit(srv->base, NULL);
    }
}

static void
on_reload(evutil_socket_t sig, short events, void *arg)
{
    struct px_server *srv = arg;

    (void)sig;
    (void)events;
    if (srv->stopping || !srv->started) {
        px_log_info("config", NULL, "SIGHUP ignored: %s",
                    srv->stopping ? "shutting down" : "starting");
        return;
    }
    px_log_info("config", NULL, "SIGHUP received: reloading %s", srv->path);
    reload(srv);
}

static struct event *
add_signal(struct px_server *srv, int sig, event_callback_fn fn)
{
    struct event *ev = evsignal_new(srv->base, sig, fn, srv);

    if (ev == NULL || evsignal_add(ev, NULL) == -1) {
        px_log_error("server", NULL, "cannot watch signal %d", sig);
        if (ev != NULL) {
            event_free(ev);
        }
        return NULL;
    }
    return ev;
}

/* ---- for the admin endpoint ---- */

const struct px_gen *
px_server_gen(const struct px_server *srv)
{
    return srv->gen;
}

struct pool_health *
px_server_health(const struct px_server *srv, size_t cluster)
{
    return srv->health != NULL ? srv->health[cluster] : NULL;
}

const struct px_stats *
px_server_stats(const struct px_server *srv)
{
    return srv->stats;
}

const struct px_server_counters *
px_server_counters(const struct px_server *srv)
{
    return &srv->counters;
}

bool
px_server_stopping(const struct px_server *srv)
{
    return srv->stopping;
}

/* ---- start and stop ---- */

/* Build the workers and give them the first generation; nothing runs yet. */
static int
start(struct px_server *srv, struct px_gen *gen)
{
    struct srv_plan *sp;
    struct srv_health *sh;
    struct srv_dns *sd;
    unsigned w;

    srv->nworkers = worker_count(gen->cfg);
    srv->stats = px_stats_new(srv->nworkers);
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    if (srv->stats == NULL || srv->workers == NULL) {
        return -1;
    }
    for (w = 0; w < srv->nworkers; w++) {
        srv->workers[w] = px_worker_new(w, srv->notifyfd);
        if (srv->workers[w] == NULL) {
            return -1;
        }
    }
    sp = plan_new(srv, gen);
    if (sp == NULL) {
        return -1;
    }
    sd = dns_new(srv, gen->cfg, sp->health, NULL);
    if (sd == NULL) {
        plan_free(sp);
        return -1;
    }
    srv->last_number = gen->number;
    switch_to(srv, gen, sp->health, sd);
    sp->health = NULL;
    if (srv->dns->dns != NULL && dns_wait(srv) == -1) {
        plan_free(sp);
        return -1;
    }
    if (srv->stopping) {
        plan_free(sp);
        return 0;
    }
    for (w = 0; w < srv->nworkers; w++) {
        if (px_worker_apply(srv->workers[w], &sp->plans[w]) == -1) {
            plan_free(sp);
            return -1;
        }
    }
    plan_free(sp);
    TAILQ_FOREACH(sh, &srv->healths, link)
    {
        if (pool_health_start(sh->h) == -1) {
            return -1;
        }
    }
    for (w = 0; w < srv->nworkers; w++) {
        if (px_worker_start(srv->workers[w]) == -1) {
            return -1;
        }
    }
    srv->started = true;
    return 0;
}

static void
log_stats(const struct px_server *srv)
{
    const struct px_stats *st = srv->stats;
    size_t i;
    unsigned w;

    for (i = 0; st != NULL && i < st->nlisteners; i++) {
        struct px_log_ctx ctx = {.listener = st->listeners[i]->name};

        for (w = 0; w < srv->nworkers; w++) {
            px_stats_log_listener(&ctx, w, px_stats_listener_block(st->listeners[i], w));
        }
    }
    for (i = 0; st != NULL && i < st->nclusters; i++) {
        struct px_log_ctx ctx = {.cluster = st->clusters[i]->name};

        for (w = 0; w < srv->nworkers; w++) {
            px_stats_log_cluster(&ctx, w, px_stats_cluster_block(st->clusters[i], w));
        }
    }
}

static void
stop(struct px_server *srv)
{
    struct srv_health *sh;
    struct srv_socket *so;
    unsigned w;

    px_admin_free(srv->admin);
    for (w = 0; srv->workers != NULL && w < srv->nworkers; w++) {
        if (srv->workers[w] != NULL) {
            px_worker_stop(srv->workers[w]);
        }
    }
    log_stats(srv);
    for (w = 0; srv->workers != NULL && w < srv->nworkers; w++) {
        px_worker_free(srv->workers[w]);
    }
    free(srv->workers);
    dns_free(srv->dns);
    dns_free(srv->staged_dns);
    plan_free(srv->staged);
    while ((sh = TAILQ_FIRST(&srv->healths)) != NULL) {
        TAILQ_REMOVE(&srv->healths, sh, link);
        log_health_stats(sh->h);
        health_free(sh);
    }
    free(srv->health);
    plan_free(srv->pending);
    while ((so = TAILQ_FIRST(&srv->sockets)) != NULL) {
        TAILQ_REMOVE(&srv->sockets, so, link);
        socket_free(srv, so);
    }
    px_stats_free(srv->stats);
    px_gen_unref(srv->gen);
}

int
px_server_run(struct cfg *cfg, const char *path)
{
    struct px_server srv;
    struct event_config *ecfg = NULL;
    struct px_gen *gen;
    int rc = -1;

    memset(&srv, 0, sizeof(srv));
    TAILQ_INIT(&srv.sockets);
    TAILQ_INIT(&srv.healths);
    srv.path = path;
    srv.notifyfd = -1;
    gen = px_gen_new(cfg, 1);
    if (gen == NULL) {
        px_log_error("server", NULL, "out of memory");
        return -1;
    }
    srv.gen = px_gen_ref(gen);
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        px_log_error("server", NULL, "cannot ignore SIGPIPE");
        goto out;
    }
    ecfg = event_config_new();
    if (ecfg == NULL || event_config_require_features(ecfg, EV_FEATURE_O1) == -1) {
        px_log_error("server", NULL, "cannot configure libevent");
        goto out;
    }
    srv.base = event_base_new_with_config(ecfg);
    if (srv.base == NULL) {
        px_log_error("server", NULL, "cannot create an event base with an O(1) backend (epoll)");
        goto out;
    }
    srv.sig_term = add_signal(&srv, SIGTERM, on_stop);
    srv.sig_int = add_signal(&srv, SIGINT, on_stop);
    srv.sig_hup = add_signal(&srv, SIGHUP, on_reload);
    srv.notifyfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv.sig_term == NULL || srv.sig_int == NULL || srv.sig_hup == NULL || srv.notifyfd == -1 ||
        (srv.notify = event_new(srv.base, srv.notifyfd, EV_READ | EV_PERSIST, on_notify, &srv)) ==
            NULL ||
        event_add(srv.notify, NULL) == -1 ||
        (srv.collect = evtimer_new(srv.base, on_collect, &srv)) == NULL ||
        (srv.staged_wait = evtimer_new(srv.base, on_staged, &srv)) == NULL ||
        (srv.staged_go = event_new(srv.base, -1, 0, on_staged, &srv)) == NULL ||
        (srv.drain_timer = evtimer_new(srv.base, on_drain_timeout, &srv)) == NULL) {
        px_log_error("server", NULL, "cannot set up the main loop");
        goto out;
    }
    px_log_info("server", NULL, "sluice %s starting (libevent %s, backend %s)", SLUICE_VERSION,
                event_get_version(), event_base_get_method(srv.base));
    log_summary(&srv, "loaded");
    srv.admin = px_admin_new(srv.base, &gen->cfg->admin, &srv);
    if (srv.admin == NULL) {
        px_log_error("server", NULL, "start failed: cannot serve the admin endpoint");
        goto out;
    }
    if (start(&srv, gen) == -1) {
        px_log_error("server", NULL, "start failed");
        goto out;
    }
    if (srv.stopping) { /* asked to stop while the first DNS answers were awaited */
        rc = 0;
        goto out;
    }
    px_log_info("server", NULL, "serving with %u worker%s", srv.nworkers,
                srv.nworkers == 1 ? "" : "s");
    if (event_base_dispatch(srv.base) == -1) {
        px_log_error("server", NULL, "event loop failed");
        goto out;
    }
    px_log_info("server", NULL, "stopped");
    rc = 0;
out:
    stop(&srv);
    px_gen_unref(gen);
    if (srv.notify != NULL) {
        event_free(srv.notify);
    }
    if (srv.notifyfd != -1) {
        close(srv.notifyfd);
    }
    if (srv.collect != NULL) {
        event_free(srv.collect);
    }
    if (srv.staged_wait != NULL) {
        event_free(srv.staged_wait);
    }
    if (srv.staged_go != NULL) {
        event_free(srv.staged_go);
    }
    if (srv.drain_timer != NULL) {
        event_free(srv.drain_timer);
    }
    if (srv.sig_term != NULL) {
        event_free(srv.sig_term);
    }
    if (srv.sig_int != NULL) {
        event_free(srv.sig_int);
    }
    if (srv.sig_hup != NULL) {
        event_free(srv.sig_hup);
    }
    if (srv.base != NULL) {
        event_base_free(srv.base);
    }
    if (ecfg != NULL) {
        event_config_free(ecfg);
    }
    return rc;
}
