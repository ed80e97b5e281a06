#include "px_server.h"
#include "config/cfg.h"
#include "proxy/px_log.h"

#include "pool/pool_health.h"
#include "pool/pool_io.h"
#include "proxy/px_dns.h"
#include "proxy/px_worker.h"

#include <event2/buffer.h>

#include <event2/event.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct px_server {
    struct event_base *base; /* owned */
    struct cfg *cfg;         /* owned: the running configuration */
    const char *path;
    unsigned generation;
    bool stopping;              /* SIGTERM or SIGINT came, maybe before the loop ran */
    struct event *sig_term;     /* owned */
    struct event *sig_int;      /* owned */
    struct event *sig_hup;      /* owned */
    struct px_worker **workers; /* owned */
    unsigned nworkers;
    atomic_uint *clients;        /* owned: per listener, across workers */
    struct pool_health **health; /* owned: per cluster, NULL when no listener uses it */
    struct px_dns *dns;          /* owned: NULL when no server is given by hostname */
    struct dns_name *names;      /* owned: one per server given by hostname */
    size_t nnames;
};

/* A server given by hostname: its cluster's health and slot. */
struct dns_name {
    struct px_server *srv;
    size_t cluster;
    size_t slot;
    bool answered;
};

#define DNS_START_WAIT_MS 5000 /* longest the start waits for the first answers */

int
px_server_check(const struct cfg *cfg)
{
    int problems = 0;
    size_t i;

#define NOT_YET(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "sluice: %s: ", cfg->file);                                                \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, " is not available in this version yet\n");                                \
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

/* Build every worker before starting any: a bind error stops the start cleanly. */
static int
start_workers(struct px_server *srv)
{
    const struct cfg *cfg = srv->cfg;
    unsigned i, n = worker_count(cfg);

    srv->clients = calloc(cfg->nlisteners + 1, sizeof(*srv->clients));
    srv->workers = calloc(n, sizeof(*srv->workers));
    if (srv->clients == NULL || srv->workers == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        srv->workers[i] = px_worker_new(cfg, i, srv->clients, srv->health);
        if (srv->workers[i] == NULL) {
            return -1;
        }
        srv->nworkers++;
    }
    for (i = 0; i < n; i++) {
        if (px_worker_start(srv->workers[i]) == -1) {
            return -1;
        }
    }
    for (i = 0; i < cfg->nclusters; i++) {
        if (srv->health[i] != NULL && pool_health_start(srv->health[i]) == -1) {
            return -1;
        }
    }
    return 0;
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
    struct pool_health *h = dn->srv->health[dn->cluster];
    const struct cfg_cluster *cc = pool_health_cfg(h);
    struct px_log_ctx ctx = {.cluster = cc->name, .server = cc->servers[dn->slot].address.text};
    char list[512];
    int rc;

    if (n == 0) {
        pool_health_dns_failed(h);
        px_log_warn("dns", &ctx, "lookup of %s failed: %s; %s", cc->servers[dn->slot].address.host,
                    err != NULL ? err : "no address",
                    dn->answered ? "keeping the last answer" : "no address yet, trying again");
        return;
    }
    rc = pool_health_set(h, dn->slot, addrs, n);
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
    dn->answered = true;
}

static void
on_dns_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Watch every server given by hostname; wait (bounded) for the first answers. */
static int
start_dns(struct px_server *srv)
{
    const struct cfg *cfg = srv->cfg;
    struct timeval tv = {DNS_START_WAIT_MS / 1000, 0};
    struct event *wait = NULL;
    size_t i, s, n = 0;

    for (i = 0; i < cfg->nclusters; i++) {
        for (s = 0; srv->health[i] != NULL && s < cfg->clusters[i].nservers; s++) {
            n += cfg->clusters[i].servers[s].address.kind == CFG_ADDR_NAME;
        }
    }
    if (n == 0) {
        return 0;
    }
    srv->names = calloc(n, sizeof(*srv->names));
    srv->dns = px_dns_new(srv->base, cfg);
    if (srv->names == NULL || srv->dns == NULL) {
        return -1;
    }
    for (i = 0; i < cfg->nclusters; i++) {
        const struct cfg_cluster *cc = &cfg->clusters[i];

        for (s = 0; srv->health[i] != NULL && s < cc->nservers; s++) {
            struct dns_name *dn = &srv->names[srv->nnames];

            if (cc->servers[s].address.kind != CFG_ADDR_NAME) {
                continue;
            }
            dn->srv = srv;
            dn->cluster = i;
            dn->slot = s;
            srv->nnames++;
            if (px_dns_watch(srv->dns, cc->servers[s].address.host, cc->servers[s].address.port,
                             cc->resolve_interval_ms, on_dns, dn) == NULL) {
                px_log_error("dns", NULL, "cannot watch %s", cc->servers[s].address.text);
                return -1;
            }
        }
    }
    wait = evtimer_new(srv->base, on_dns_wait, srv->base);
    if (wait == NULL || evtimer_add(wait, &tv) == -1) {
        if (wait != NULL) {
            event_free(wait);
        }
        return -1;
    }
    while (px_dns_pending(srv->dns) > 0 && evtimer_pending(wait, NULL) && !srv->stopping) {
        if (event_base_loop(srv->base, EVLOOP_ONCE) == -1) {
            break;
        }
    }
    event_free(wait);
    if (px_dns_pending(srv->dns) > 0 && !srv->stopping) {
        px_log_warn("dns", NULL,
                    "%zu name%s not answered within %d s; serving without them until they are",
                    px_dns_pending(srv->dns), px_dns_pending(srv->dns) == 1 ? "" : "s",
                    DNS_START_WAIT_MS / 1000);
    }
    return 0;
}

/* A shared health per used cluster, with its servers given by IP address. */
static int
start_health(struct px_server *srv)
{
    const struct cfg *cfg = srv->cfg;
    size_t i, s;

    srv->health = calloc(cfg->nclusters + 1, sizeof(*srv->health));
    if (srv->health == NULL) {
        return -1;
    }
    for (i = 0; i < cfg->nclusters; i++) {
        const struct cfg_cluster *cc = &cfg->clusters[i];

        if (!px_worker_cluster_used(cfg, cc)) {
            continue;
        }
        srv->health[i] =
            pool_health_new(srv->base, cc, px_worker_frame, &cc->codec, &health_ops, srv);
        if (srv->health[i] == NULL) {
            return -1;
        }
        for (s = 0; s < cc->nservers; s++) {
            const struct cfg_addr *a = &cc->servers[s].address;

            if (a->kind != CFG_ADDR_NAME && pool_health_set(srv->health[i], s, &a->sa, 1) == -1) {
                return -1;
            }
        }
    }
    return start_dns(srv);
}

static void
stop_health(struct px_server *srv)
{
    size_t i;

    px_dns_free(srv->dns);
    srv->dns = NULL;
    free(srv->names);
    for (i = 0; srv->health != NULL && i < srv->cfg->nclusters; i++) {
        const struct pool_health_stats *hs;
        struct px_log_ctx ctx = {.cluster = srv->cfg->clusters[i].name};

        if (srv->health[i] == NULL) {
            continue;
        }
        hs = pool_health_stats(srv->health[i]);
        px_log_info("stats", &ctx,
                    "health: checks=%llu checks_failed=%llu downs=%llu ejections=%llu "
                    "ejections_capped=%llu dns_failures=%llu dns_changes=%llu",
                    (unsigned long long)hs->checks, (unsigned long long)hs->checks_failed,
                    (unsigned long long)hs->downs, (unsigned long long)hs->ejections,
                    (unsigned long long)hs->ejections_capped, (unsigned long long)hs->dns_failures,
                    (unsigned long long)hs->dns_changes);
        pool_health_free(srv->health[i]);
    }
    free(srv->health);
    srv->health = NULL;
}

static void
stop_workers(struct px_server *srv)
{
    unsigned i;

    for (i = 0; i < srv->nworkers; i++) {
        px_worker_stop(srv->workers[i]);
    }
    for (i = 0; i < srv->nworkers; i++) {
        px_worker_log_stats(srv->workers[i]);
        px_worker_free(srv->workers[i]);
    }
    free(srv->workers);
    free(srv->clients);
}

static void
log_summary(const struct px_server *srv, const char *what)
{
    const struct cfg *cfg = srv->cfg;

    px_log_info("config", NULL,
                "%s %s (generation %u): %zu listener%s, %zu cluster%s, %zu udp relay%s, "
                "workers %s%u, log level %s",
                what, srv->path, srv->generation, cfg->nlisteners, cfg->nlisteners == 1 ? "" : "s",
                cfg->nclusters, cfg->nclusters == 1 ? "" : "s", cfg->nudp,
                cfg->nudp == 1 ? "" : "s", cfg->workers == 0 ? "auto" : "", cfg->workers,
                cfg_log_level_name(cfg->log.level));
}

static void
on_stop(evutil_socket_t sig, short events, void *arg)
{
    struct px_server *srv = arg;

    (void)events;
    srv->stopping = true;
    px_log_info("server", NULL, "%s received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopexit(srv->base, NULL);
}

static void
on_reload(evutil_socket_t sig, short events, void *arg)
{
    struct px_server *srv = arg;
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *next;
    size_t i, n;

    (void)sig;
    (void)events;
    next = cfg_load_file(srv->path, diag);
    n = cfg_diag_count(diag);
    for (i = 0; i < n; i++) {
        px_log_error("config", NULL, "%s", cfg_diag_message(diag, i));
    }
    cfg_diag_free(diag);
    if (next == NULL) {
        px_log_error("config", NULL,
                     "reload of %s failed with %zu error%s; still running generation %u", srv->path,
                     n, n == 1 ? "" : "s", srv->generation);
        return;
    }
    /*
     * Workers borrow the running config for their whole life, so it stays.
     * Applying listener and cluster changes live is the reload issue's work;
     * until then only the log settings, which are process-wide, take effect.
     */
    px_log_configure(next->log.level, next->log.format);
    px_log_info("config", NULL,
                "reloaded %s: valid; log settings applied, listeners, clusters and workers "
                "keep generation %u until a restart",
                srv->path, srv->generation);
    cfg_free(next);
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

int
px_server_run(struct cfg *cfg, const char *path)
{
    struct px_server srv;
    struct event_config *ecfg = NULL;
    int rc = -1;

    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    srv.path = path;
    srv.generation = 1;
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
    if (srv.sig_term == NULL || srv.sig_int == NULL || srv.sig_hup == NULL) {
        goto out;
    }
    px_log_info("server", NULL, "sluice %s starting (libevent %s, backend %s)", SLUICE_VERSION,
                event_get_version(), event_base_get_method(srv.base));
    log_summary(&srv, "loaded");
    if (start_health(&srv) == -1) {
        px_log_error("server", NULL, "start failed: cannot set up health checking");
        goto out;
    }
    if (srv.stopping) { /* asked to stop while the first DNS answers were awaited */
        rc = 0;
        goto out;
    }
    if (start_workers(&srv) == -1) {
        px_log_error("server", NULL, "start failed");
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
    stop_workers(&srv);
    stop_health(&srv);
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
    cfg_free(srv.cfg);
    return rc;
}
