#ifndef PX_ADMIN_H
#define PX_ADMIN_H

/*
 * The admin endpoint: HTTP on admin.bind, served by libevent's evhttp on the
 * main thread's base.
 *
 *   GET /metrics  Prometheus text exposition; workers' counters summed now
 *   GET /healthz  200 while the process runs
 *   GET /readyz   200 when serving and every listener's cluster has a
 *                 server fit for traffic; 503 starting, draining or not
 *   GET /status   JSON: generation, listeners, clusters, servers, pools
 *
 * HEAD works as GET. Other methods get 405, other paths 404. With
 * admin.token_file, a request without "Authorization: Bearer <token>" gets
 * 401 whatever its path. Error replies say no more than their status.
 */

struct cfg_admin;
struct event_base;
struct px_admin;
struct px_server;

/* Listen on cfg->bind; NULL after logging why. srv is read at each request. */
struct px_admin *px_admin_new(struct event_base *base, const struct cfg_admin *cfg,
                              const struct px_server *srv);
/* A reload: take the token of cfg (the address needs a restart). */
void px_admin_configure(struct px_admin *a, const struct cfg_admin *cfg);
void px_admin_free(struct px_admin *a);

#endif
