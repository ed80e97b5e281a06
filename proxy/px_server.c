#include "px_server.h"
#include "config/cfg.h"
#include "proxy/px_log.h"

#include "proxy/px_worker.h"

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
    struct event *sig_term;     /* owned */
    struct event *sig_int;      /* owned */
    struct event *sig_hup;      /* owned */
    struct px_worker **workers; /* owned */
    unsigned nworkers;
    atomic_uint *clients; /* owned: per listener, across workers */
};

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
        srv->workers[i] = px_worker_new(cfg, i, srv->clients);
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
    return 0;
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
