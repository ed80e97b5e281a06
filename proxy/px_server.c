#include "px_server.h"
#include "config/cfg.h"
#include "proxy/px_log.h"

#include "pool/pool_health.h"
#include "proxy/px_admin.h"
#include "proxy/px_dns.h"
#include "proxy/px_gen.h"
#include "proxy/px_server_internal.h"
#include "proxy/px_stats.h"

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

int
px_server_check(const struct cfg *cfg, bool log)
{
    size_t i;

    for (i = 0; i < cfg->nunbuilt; i++) {
        if (log) {
            px_log_error("config", NULL, "%s", cfg->unbuilt[i]);
        } else {
            fprintf(stderr, "%s\n", cfg->unbuilt[i]);
        }
    }
    if (!log && cfg->nunbuilt > 0) {
        fprintf(stderr,
                "sluice: %s: configuration asks for %zu feature%s this version does not have\n",
                cfg->file, cfg->nunbuilt, cfg->nunbuilt == 1 ? "" : "s");
    }
    return (int)cfg->nunbuilt;
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

static void
log_summary(const struct px_server *srv, const char *what)
{
    const struct cfg *cfg = srv->gen->cfg;
    char workers[64];

    /* A reload cannot change the number of workers: say what runs, not what the file asks. */
    if (srv->nworkers > 0 && worker_count(cfg) != srv->nworkers) {
        snprintf(workers, sizeof(workers), "%u (the file's %u needs a restart)", srv->nworkers,
                 worker_count(cfg));
    } else if (cfg->workers == 0) {
        snprintf(workers, sizeof(workers), "auto");
    } else {
        snprintf(workers, sizeof(workers), "%u", cfg->workers);
    }
    px_log_info("config", NULL,
                "%s %s (generation %u): %zu listener%s, %zu cluster%s, %zu udp relay%s, "
                "workers %s, log level %s",
                what, srv->path, srv->gen->number, cfg->nlisteners, cfg->nlisteners == 1 ? "" : "s",
                cfg->nclusters, cfg->nclusters == 1 ? "" : "s", cfg->nudp,
                cfg->nudp == 1 ? "" : "s", workers, cfg_log_level_name(cfg->log.level));
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
    sp = px_build_plan_new(srv, gen);
    if (sp == NULL) {
        px_gen_unref(gen);
        reload_failed(srv, "cannot set up its listeners or health checks", 0);
        return;
    }
    sd = px_build_dns_new(srv, gen->cfg, sp->health, sp->made);
    if (sd == NULL) {
        px_build_plan_undo(srv, gen, sp);
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
        if (evtimer_add(srv->staged_wait, &tv) == -1) {
            event_active(srv->staged_go, EV_TIMEOUT, 0); /* no bound: apply now */
        }
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
    px_log_set_rate_limit(gen->cfg->log.rate_limit_ms);
    px_admin_configure(srv->admin, &gen->cfg->admin);
    srv->pending = sp;
    px_build_switch(srv, gen, sp->health, sd);
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
    px_build_dns_free(srv->staged_dns);
    srv->staged_dns = NULL;
    px_build_plan_undo(srv, srv->staged->gen, srv->staged);
    srv->staged = NULL;
}

/* Every worker took the pending plan: free it, close the sockets no one listens on now. */
static void
reload_done(struct px_server *srv)
{
    unsigned w, number = srv->pending->gen->number;

    for (w = 0; w < srv->nworkers; w++) {
        if (px_worker_applied(srv->workers[w]) != number) {
            return;
        }
    }
    px_build_plan_free(srv->pending);
    srv->pending = NULL;
    px_build_close_sockets(srv, number, false);
    px_log_info("config", NULL, "generation %u: every worker serves it", number);
    if (srv->reload_again && !srv->stopping) {
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
        px_build_close_sockets(srv, UINT32_MAX,
                               false); /* new connections are refused from here on */
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
    if (srv->stopping) {
        px_log_info("config", NULL, "SIGHUP ignored: shutting down");
        return;
    }
    if (!srv->started) {
        px_log_info("config", NULL, "SIGHUP received while starting: reloading once serving");
        srv->reload_again = true;
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

bool
px_server_started(const struct px_server *srv)
{
    return srv->started;
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
    sp = px_build_plan_new(srv, gen);
    if (sp == NULL) {
        return -1;
    }
    sd = px_build_dns_new(srv, gen->cfg, sp->health, NULL);
    if (sd == NULL) {
        px_build_plan_free(sp);
        return -1;
    }
    srv->last_number = gen->number;
    px_build_switch(srv, gen, sp->health, sd);
    sp->health = NULL;
    if (srv->dns->dns != NULL && px_build_dns_wait(srv) == -1) {
        px_build_plan_free(sp);
        return -1;
    }
    if (srv->stopping) {
        px_build_plan_free(sp);
        return 0;
    }
    for (w = 0; w < srv->nworkers; w++) {
        if (px_worker_apply(srv->workers[w], &sp->plans[w]) == -1) {
            px_build_plan_free(sp);
            return -1;
        }
    }
    px_build_plan_free(sp);
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

    if (!srv->started) { /* a start that failed served nothing: no all-zero lines */
        return;
    }
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
    px_build_dns_free(srv->dns);
    px_build_dns_free(srv->staged_dns);
    px_build_plan_free(srv->staged);
    while ((sh = TAILQ_FIRST(&srv->healths)) != NULL) {
        TAILQ_REMOVE(&srv->healths, sh, link);
        if (srv->started) {
            px_build_health_log(sh->h);
        }
        px_build_health_free(sh);
    }
    free(srv->health);
    px_build_plan_free(srv->pending);
    while ((so = TAILQ_FIRST(&srv->sockets)) != NULL) {
        TAILQ_REMOVE(&srv->sockets, so, link);
        px_build_socket_free(srv, so);
    }
    px_stats_free(srv->stats);
    px_gen_unref(srv->gen);
    /* Last, once the workers are gone: lines folded while they drained and stopped (a pooled
     * connection lost per upstream connection) get their summaries too. */
    px_log_flush(true);
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
        (srv.collect = evtimer_new(srv.base, px_build_on_collect, &srv)) == NULL ||
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
    if (srv.reload_again) { /* a SIGHUP came during the start */
        srv.reload_again = false;
        reload(&srv);
    }
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
