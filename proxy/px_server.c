#include "px_server.h"
#include "config/cfg.h"
#include "proxy/px_log.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct px_server {
    struct event_base *base; /* owned */
    struct cfg *cfg;         /* owned: the running configuration */
    const char *path;
    unsigned generation;
    struct event *sig_term; /* owned */
    struct event *sig_int;  /* owned */
    struct event *sig_hup;  /* owned */
};

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
    cfg_free(srv->cfg);
    srv->cfg = next;
    srv->generation++;
    px_log_configure(next->log.level, next->log.format);
    log_summary(srv, "reloaded");
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
    if (event_base_dispatch(srv.base) == -1) {
        px_log_error("server", NULL, "event loop failed");
        goto out;
    }
    px_log_info("server", NULL, "stopped");
    rc = 0;
out:
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
