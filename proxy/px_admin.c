#include "px_admin.h"
#include "config/cfg.h"
#include "config/cfg_arena.h"
#include "pool/pool.h"
#include "pool/pool_health.h"
#include "proxy/px_budget.h"
#include "proxy/px_gen.h"
#include "proxy/px_log.h"
#include "proxy/px_server.h"
#include "proxy/px_stats.h"
#include "proxy/px_worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TIMEOUT_S 10      /* a client that sends nothing for this long is closed */
#define ADMIN_MAX_HEADERS 16384 /* bytes of request line and headers */
#define ADMIN_MAX_BODY 4096     /* nothing here takes a body */
#define ACCEPT_PAUSE_MS 100     /* after EMFILE and friends, as the data listeners do */

/*
 * An admin connection as sluice tracks it, for admin.max_connections and
 * admin.request_timeout. libevent 2.1's evhttp has neither (2.2 adds
 * evhttp_set_max_connections) and tells nothing of a new connection before
 * its request is whole; what it does call is the bufferevent callback
 * (evhttp_set_bevcb), before the connection exists. So the bufferevent is
 * made here and held by a reference, and a moment later (an activated event,
 * run in the same loop pass, before any byte is read) its callback argument,
 * which evhttp sets to its evhttp_connection, gives the connection: then the
 * close callback, the cap and the deadline are set.
 *
 * The deadline runs from the accept, then from each reply written, and is
 * not re-armed by bytes. When it passes with a request begun (a byte of it
 * read: the input buffer's callback tells) and not yet answered, that request
 * timed out; with none begun the connection is merely idle (a scraper keeping
 * its connection between scrapes) and is closed quietly, not counted.
 */
struct admin_conn {
    struct px_admin *a;              /* borrowed */
    struct bufferevent *bev;         /* borrowed: evhttp's; a reference of ours until attached */
    struct evhttp_connection *evcon; /* borrowed: NULL until attached */
    struct event *timer;             /* owned: attach at once, then the deadline */
    struct evbuffer_cb_entry *input; /* on bev's input buffer: a request begins; NULL once gone */
    bool begun;                      /* bytes came since the accept or the last reply */
    bool over;                       /* past max_connections: closed when attached */
    bool closing;                    /* we free evcon: its close callback leaves us alone */
    TAILQ_ENTRY(admin_conn) link;
};

struct px_admin {
    struct evhttp *http;         /* owned */
    const struct px_server *srv; /* borrowed */
    char *token;                 /* owned: NULL when none is asked */
    size_t token_len;
    struct evconnlistener *lev; /* borrowed: evhttp's */
    struct event *pause;        /* owned: accepting again after an accept error */
    struct event *tick;         /* owned: once a second, the log's summaries */
    time_t last_error_log;
    uint32_t max_connections;
    struct timeval deadline;
    TAILQ_HEAD(, admin_conn) conns; /* owned */
    unsigned nconns;                /* those not over the cap */
    uint64_t accept_errors, refused, timeouts;
    LIST_ENTRY(px_admin) link; /* in admins */
};

/* Every admin endpoint, for the listener's error callback: evconnlistener passes it the
 * argument of its accept callback, which evhttp_bind_listener set to the evhttp. Main thread. */
static LIST_HEAD(, px_admin) admins = LIST_HEAD_INITIALIZER(admins);

/* ---- replies ---- */

static void
reply(struct evhttp_request *req, int code, const char *reason, const char *type,
      struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    (void)evhttp_add_header(h, "Content-Type", type);
    (void)evhttp_add_header(h, "Cache-Control", "no-store");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[24];

        /* libevent 2.1 would write the body after a HEAD's headers: say its length only. */
        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
        (void)evhttp_add_header(h, "Content-Length", len);
        evhttp_send_reply(req, code, reason, NULL);
        return;
    }
    evhttp_send_reply(req, code, reason, body);
}

/* A short plain reply: the status and no detail. */
static void
reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    (void)evbuffer_add_printf(body, "%s\n", text);
    reply(req, code, reason, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

/* ---- /metrics ---- */

/* A label value: backslash, double quote and newline escaped (the exposition format). */
static void
label(struct evbuffer *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            (void)evbuffer_add_printf(b, "\\%c", *s);
        } else if (*s == '\n') {
            (void)evbuffer_add(b, "\\n", 2);
        } else {
            (void)evbuffer_add(b, s, 1);
        }
    }
}

static void
family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    (void)evbuffer_add_printf(b, "# HELP sluice_%s %s\n# TYPE sluice_%s %s\n", name, help, name,
                              type);
}

/* One sample: sluice_NAME{KEY="value"[,KEY2="value2"]} v */
static void
sample(struct evbuffer *b, const char *name, const char *key, const char *value, const char *key2,
       const char *value2, unsigned long long v)
{
    (void)evbuffer_add_printf(b, "sluice_%s{%s=\"", name, key);
    label(b, value);
    if (key2 != NULL) {
        (void)evbuffer_add_printf(b, "\",%s=\"", key2);
        label(b, value2);
    }
    (void)evbuffer_add_printf(b, "\"} %llu\n", v);
}

#define V(x) (unsigned long long)POOL_STAT_GET(x)

/* A listener counter family: one sample per listener name, summed over workers. */
static void
listener_family(struct evbuffer *b, const struct px_stats *st, struct px_listener_stats *sums,
                const char *name, const char *type, const char *help, size_t off)
{
    size_t i;

    family(b, name, type, help);
    for (i = 0; i < st->nlisteners; i++) {
        const _Atomic uint64_t *f = (const void *)((const char *)&sums[i] + off);

        sample(b, name, "listener", st->listeners[i]->name, NULL, NULL, V(*f));
    }
}

static void
cluster_family(struct evbuffer *b, const struct px_stats *st, struct pool_stats *sums,
               const char *name, const char *type, const char *help, size_t off)
{
    size_t i;

    family(b, name, type, help);
    for (i = 0; i < st->nclusters; i++) {
        const _Atomic uint64_t *f = (const void *)((const char *)&sums[i] + off);

        sample(b, name, "cluster", st->clusters[i]->name, NULL, NULL, V(*f));
    }
}

#define LF(name, type, help, field)                                                                \
    listener_family(b, st, ls, name, type, help, offsetof(struct px_listener_stats, field))
#define CF(name, type, help, field)                                                                \
    cluster_family(b, st, ps, name, type, help, offsetof(struct pool_stats, field))

static void
metrics_listeners(struct evbuffer *b, const struct px_stats *st, struct px_listener_stats *ls)
{
    size_t i;

    LF("client_connections_accepted_total", "counter", "Client connections accepted.", accepted);
    LF("client_connections_active", "gauge", "Client connections open now.", active);
    LF("client_connections_rejected_total", "counter",
       "Client connections closed at once: past max_clients.", rejected);
    LF("accept_errors_total", "counter",
       "accept() failures that paused accepting (out of descriptors or memory).", accept_errors);
    LF("frames_in_total", "counter", "Request frames read from clients.", frames_in);
    LF("frames_out_total", "counter", "Reply frames written to clients.", frames_out);
    LF("bytes_in_total", "counter", "Bytes read from clients.", bytes_in);
    LF("bytes_out_total", "counter", "Bytes written to clients.", bytes_out);
    LF("bad_frames_total", "counter",
       "Oversize or malformed client frames; each closed its client.", bad_frames);
    LF("client_upstream_failures_total", "counter",
       "Client requests that failed upstream (the client got an error reply or was closed).",
       upstream_failures);
    LF("rejected_commands_total", "counter",
       "resp: commands refused by sluice (not allowed, not shardable, authentication).",
       rejected_commands);
    family(b, "client_timeouts_total", "counter",
           "Client deadlines that expired, by kind: idle, read (partial frame), request, write, "
           "frame.");
    for (i = 0; i < st->nlisteners; i++) {
        const char *n = st->listeners[i]->name;

        sample(b, "client_timeouts_total", "listener", n, "kind", "idle", V(ls[i].idle_timeouts));
        sample(b, "client_timeouts_total", "listener", n, "kind", "read", V(ls[i].read_timeouts));
        sample(b, "client_timeouts_total", "listener", n, "kind", "request",
               V(ls[i].request_timeouts));
        sample(b, "client_timeouts_total", "listener", n, "kind", "write", V(ls[i].write_timeouts));
        sample(b, "client_timeouts_total", "listener", n, "kind", "frame", V(ls[i].frame_timeouts));
    }
    LF("client_partial_frames_dropped_total", "counter",
       "Clients that half-closed in the middle of a frame; the partial frame was dropped.",
       partial_drops);
    LF("client_budget_stops_total", "counter",
       "Times a client stopped being read because buffers.max was reached.", budget_stops);
    LF("client_budget_rejections_total", "counter",
       "Clients failed because their frame could not fit within buffers.max.", budget_rejections);
    family(b, "client_buffered_bytes", "gauge",
           "Client bytes held in partly received frames, counted in steps of 64 KiB.");
    (void)evbuffer_add_printf(b, "sluice_client_buffered_bytes %lld\n",
                              (long long)px_budget_used());
    family(b, "client_buffer_limit_bytes", "gauge", "buffers.max in effect.");
    (void)evbuffer_add_printf(b, "sluice_client_buffer_limit_bytes %llu\n",
                              (unsigned long long)px_budget_max());
}

/* Request outcomes by result: the pool's results grouped into the labels /metrics documents. */
static void
metrics_results(struct evbuffer *b, const struct px_stats *st, struct pool_stats *ps)
{
    size_t i;

    family(b, "requests_total", "counter",
           "Requests by result: ok (answered), timeout (upstream read or write deadline), "
           "upstream_error (connection failed, closed, or unframeable reply), rejected (queue "
           "full, queue timeout, pin limit, refused setup), unhealthy (no healthy server), "
           "canceled (the client left before it was sent), shutdown.");
    for (i = 0; i < st->nclusters; i++) {
        const char *n = st->clusters[i]->name;
        const struct pool_stats *p = &ps[i];

        sample(b, "requests_total", "cluster", n, "result", "ok", V(p->responses));
        sample(b, "requests_total", "cluster", n, "result", "timeout", V(p->failed[POOL_TIMEOUT]));
        sample(b, "requests_total", "cluster", n, "result", "upstream_error",
               V(p->failed[POOL_CONNECT_FAILED]) + V(p->failed[POOL_UPSTREAM_ERROR]) +
                   V(p->failed[POOL_MALFORMED]));
        sample(b, "requests_total", "cluster", n, "result", "rejected",
               V(p->failed[POOL_QUEUE_FULL]) + V(p->failed[POOL_QUEUE_TIMEOUT]) +
                   V(p->failed[POOL_PIN_LIMIT]) + V(p->failed[POOL_REFUSED]));
        sample(b, "requests_total", "cluster", n, "result", "unhealthy",
               V(p->failed[POOL_UNHEALTHY]));
        sample(b, "requests_total", "cluster", n, "result", "canceled", V(p->canceled));
        sample(b, "requests_total", "cluster", n, "result", "shutdown",
               V(p->failed[POOL_SHUTDOWN]));
    }
}

static void
metrics_latency(struct evbuffer *b, const struct px_stats *st, struct pool_stats *ps)
{
    size_t i, k;

    family(b, "request_duration_seconds", "histogram",
           "Time from a request's submission to the pool to its response, answered requests "
           "only (pinned connections not included).");
    for (i = 0; i < st->nclusters; i++) {
        unsigned long long total = 0;

        for (k = 0; k <= POOL_LATENCY_BUCKETS; k++) {
            char le[32];

            total += V(ps[i].latency[k]);
            if (k < POOL_LATENCY_BUCKETS) {
                snprintf(le, sizeof(le), "%g", (double)pool_latency_us[k] / 1e6);
            } else {
                snprintf(le, sizeof(le), "+Inf");
            }
            sample(b, "request_duration_seconds_bucket", "cluster", st->clusters[i]->name, "le", le,
                   total);
        }
        (void)evbuffer_add_printf(b, "sluice_request_duration_seconds_sum{cluster=\"");
        label(b, st->clusters[i]->name);
        (void)evbuffer_add_printf(b, "\"} %.6f\n", (double)V(ps[i].latency_sum_us) / 1e6);
        sample(b, "request_duration_seconds_count", "cluster", st->clusters[i]->name, NULL, NULL,
               total);
    }
}

static void
metrics_clusters(struct evbuffer *b, const struct px_stats *st, struct pool_stats *ps)
{
    CF("requests_submitted_total", "counter", "Requests handed to the cluster's pool.", requests);
    CF("request_retries_total", "counter", "Requests sent again after a failure before writing.",
       retries);
    CF("upstream_connections_opened_total", "counter", "Upstream connections opened.",
       conns_opened);
    CF("upstream_connections_closed_total", "counter", "Upstream connections closed.",
       conns_closed);
    CF("upstream_connections_active", "gauge",
       "Pooled upstream connections open now (connecting included).", conns_active);
    CF("upstream_connections_idle", "gauge", "Pooled upstream connections with nothing in flight.",
       conns_idle);
    CF("upstream_connections_pinned", "gauge",
       "Upstream connections pinned to one client now (resp MULTI, SUBSCRIBE, blocking).", pinned);
    CF("upstream_connect_failures_total", "counter", "Upstream connects that failed.",
       connect_failures);
    CF("upstream_stalls_total", "counter",
       "Requests placed elsewhere than on a connection whose oldest request waited past "
       "pool.stall (head-of-line blocked).",
       stalls);
    CF("request_repeats_total", "counter",
       "Read-only requests sent again after the connection they were written on broke.", repeats);
    CF("upstream_connects_deferred_total", "counter",
       "Connections a request did not open because its server backs off after connect "
       "failures (it failed fast or went elsewhere).",
       connects_deferred);
    CF("queue_depth", "gauge", "Requests waiting for an upstream connection now.", queue_depth);
    CF("queued_total", "counter", "Requests that had to wait for an upstream connection.", queued);
    CF("queue_timeouts_total", "counter", "Requests that waited past pool.queue.timeout.",
       failed[POOL_QUEUE_TIMEOUT]);
    metrics_results(b, st, ps);
    metrics_latency(b, st, ps);
}

/* A per-server sample: server is the address; server_name, the name key when it has one. */
static void
server_sample(struct evbuffer *b, const char *name, const char *cluster,
              const struct pool_endpoint *ep, unsigned long long v)
{
    (void)evbuffer_add_printf(b, "sluice_%s{cluster=\"", name);
    label(b, cluster);
    (void)evbuffer_add_printf(b, "\",server=\"");
    label(b, ep->text);
    if (ep->cfg->name != NULL) {
        (void)evbuffer_add_printf(b, "\",server_name=\"");
        label(b, ep->cfg->name);
    }
    (void)evbuffer_add_printf(b, "\"} %llu\n", v);
}

/* Health per server of the running generation, and per cluster counters. */
static void
metrics_health(struct evbuffer *b, const struct px_server *srv)
{
    const struct cfg *cfg = px_server_gen(srv)->cfg;
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"server_up", "gauge",
         "1 when the server is fit for traffic: up, not ejected, not removed."},
        {"server_ejected", "gauge", "1 while passive health checking has the server ejected."},
        {"server_ejections_total", "counter", "Times the server was ejected."},
        {"health_checks_total", "counter", "Active health checks run."},
        {"health_checks_failed_total", "counter", "Active health checks that failed."},
        {"ejections_total", "counter", "Ejections in the cluster."},
    };
    size_t f, i, k;

    for (f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (i = 0; i < cfg->nclusters; i++) {
            struct pool_health *h = px_server_health(srv, i);
            const struct pool_health_stats *hs;
            struct pool_endpoint **eps;
            size_t n = 0;
            unsigned version;

            if (h == NULL) {
                continue;
            }
            hs = pool_health_stats(h);
            if (f == 3 || f == 4 || f == 5) {
                sample(b, fams[f].name, "cluster", cfg->clusters[i].name, NULL, NULL,
                       (unsigned long long)(f == 3   ? hs->checks
                                            : f == 4 ? hs->checks_failed
                                                     : hs->ejections));
                continue;
            }
            eps = pool_health_endpoints(h, &n, &version);
            for (k = 0; k < n; k++) {
                const struct pool_endpoint *ep = eps[k];
                unsigned long long v = f == 0   ? pool_endpoint_fit(ep)
                                       : f == 1 ? atomic_load(&ep->ejected)
                                                : ep->ejections_total;

                server_sample(b, fams[f].name, cfg->clusters[i].name, ep, v);
                pool_endpoint_put(eps[k]);
            }
            free(eps);
        }
    }
}

static void
metrics_admin(struct evbuffer *b, const struct px_admin *a)
{
    family(b, "admin_connections_active", "gauge", "Admin connections open now.");
    (void)evbuffer_add_printf(b, "sluice_admin_connections_active %u\n", a->nconns);
    family(b, "admin_connections_refused_total", "counter",
           "Admin connections closed at once: past admin.max_connections.");
    (void)evbuffer_add_printf(b, "sluice_admin_connections_refused_total %llu\n",
                              (unsigned long long)a->refused);
    family(b, "admin_request_timeouts_total", "counter",
           "Admin connections closed at admin.request_timeout.");
    (void)evbuffer_add_printf(b, "sluice_admin_request_timeouts_total %llu\n",
                              (unsigned long long)a->timeouts);
    family(b, "admin_accept_errors_total", "counter",
           "Admin accept() failures that paused accepting (out of descriptors or memory).");
    (void)evbuffer_add_printf(b, "sluice_admin_accept_errors_total %llu\n",
                              (unsigned long long)a->accept_errors);
}

static void
metrics(struct px_admin *a, struct evbuffer *b)
{
    const struct px_stats *st = px_server_stats(a->srv);
    const struct px_server_counters *sc = px_server_counters(a->srv);
    const struct px_gen *gen = px_server_gen(a->srv);
    struct px_listener_stats *ls = calloc(st->nlisteners + 1, sizeof(*ls));
    struct pool_stats *ps = calloc(st->nclusters + 1, sizeof(*ps));
    size_t i;

    if (ls == NULL || ps == NULL) {
        free(ls);
        free(ps);
        return;
    }
    for (i = 0; i < st->nlisteners; i++) {
        px_stats_listener_sum(st->listeners[i], st->nworkers, &ls[i]);
    }
    for (i = 0; i < st->nclusters; i++) {
        px_stats_cluster_sum(st->clusters[i], st->nworkers, &ps[i]);
    }
    family(b, "info", "gauge", "Always 1; the version is a label.");
    sample(b, "info", "version", SLUICE_VERSION, NULL, NULL, 1);
    family(b, "config_generation", "gauge", "The configuration generation running (1 at start).");
    (void)evbuffer_add_printf(b, "sluice_config_generation %u\n", gen->number);
    family(b, "config_reloads_total", "counter", "Reloads (SIGHUP) applied.");
    (void)evbuffer_add_printf(b, "sluice_config_reloads_total %llu\n",
                              (unsigned long long)sc->reloads);
    family(b, "config_reload_failures_total", "counter",
           "Reloads refused (the old configuration kept running).");
    (void)evbuffer_add_printf(b, "sluice_config_reload_failures_total %llu\n",
                              (unsigned long long)sc->reload_failures);
    family(b, "workers", "gauge", "Worker threads.");
    (void)evbuffer_add_printf(b, "sluice_workers %u\n", st->nworkers);
    family(b, "draining", "gauge", "1 once SIGTERM or SIGINT began the drain.");
    (void)evbuffer_add_printf(b, "sluice_draining %d\n", px_server_stopping(a->srv) ? 1 : 0);
    metrics_listeners(b, st, ls);
    metrics_clusters(b, st, ps);
    metrics_health(b, a->srv);
    metrics_admin(b, a);
    free(ls);
    free(ps);
}

/* ---- /status ---- */

static void
json_string(struct evbuffer *b, const char *s)
{
    (void)evbuffer_add(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            (void)evbuffer_add_printf(b, "\\%c", c);
        } else if (c < 0x20) {
            (void)evbuffer_add_printf(b, "\\u%04x", c);
        } else {
            (void)evbuffer_add(b, s, 1);
        }
    }
    (void)evbuffer_add(b, "\"", 1);
}

/* The servers (addresses) a cluster has now. */
static size_t
health_count(struct pool_health *h)
{
    struct pool_endpoint **eps;
    size_t n = 0, k;
    unsigned version;

    eps = pool_health_endpoints(h, &n, &version);
    for (k = 0; k < n; k++) {
        pool_endpoint_put(eps[k]);
    }
    free(eps);
    return n;
}

static void
status_servers(struct evbuffer *b, struct pool_health *h)
{
    struct pool_endpoint **eps;
    size_t n = 0, k;
    unsigned version;

    eps = pool_health_endpoints(h, &n, &version);
    (void)evbuffer_add_printf(b, "\"servers\":[");
    for (k = 0; k < n; k++) {
        const struct pool_endpoint *ep = eps[k];

        (void)evbuffer_add_printf(b, "%s{\"address\":", k > 0 ? "," : "");
        json_string(b, ep->text);
        (void)evbuffer_add_printf(b, ",\"name\":");
        if (ep->cfg->name != NULL) {
            json_string(b, ep->cfg->name);
        } else {
            (void)evbuffer_add_printf(b, "null");
        }
        (void)evbuffer_add_printf(b, ",\"configured\":");
        json_string(b, ep->cfg->address.text);
        (void)evbuffer_add_printf(
            b,
            ",\"fit\":%s,\"up\":%s,\"ejected\":%s,\"removed\":%s,\"ejections\":%llu,"
            "\"failures_in_a_row\":%u}",
            pool_endpoint_fit(ep) ? "true" : "false", atomic_load(&ep->up) ? "true" : "false",
            atomic_load(&ep->ejected) ? "true" : "false",
            atomic_load(&ep->removed) ? "true" : "false", (unsigned long long)ep->ejections_total,
            atomic_load(&ep->fails));
        pool_endpoint_put(eps[k]);
    }
    free(eps);
    (void)evbuffer_add_printf(b, "]");
}

static void
status(struct px_admin *a, struct evbuffer *b)
{
    const struct px_gen *gen = px_server_gen(a->srv);
    const struct px_stats *st = px_server_stats(a->srv);
    const struct px_server_counters *sc = px_server_counters(a->srv);
    const struct cfg *cfg = gen->cfg;
    size_t i;

    (void)evbuffer_add_printf(b, "{\"version\":");
    json_string(b, SLUICE_VERSION);
    (void)evbuffer_add_printf(b, ",\"config\":");
    json_string(b, cfg->file);
    (void)evbuffer_add_printf(
        b,
        ",\"generation\":%u,\"reloads\":%llu,\"reload_failures\":%llu,\"workers\":%u,"
        "\"draining\":%s,\"listeners\":[",
        gen->number, (unsigned long long)sc->reloads, (unsigned long long)sc->reload_failures,
        st->nworkers, px_server_stopping(a->srv) ? "true" : "false");
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        const struct px_stats_entry *e = px_stats_find(st->listeners, st->nlisteners, l->name);
        struct px_listener_stats sum;

        memset(&sum, 0, sizeof(sum));
        if (e != NULL) {
            px_stats_listener_sum(e, st->nworkers, &sum);
        }
        (void)evbuffer_add_printf(b, "%s{\"name\":", i > 0 ? "," : "");
        json_string(b, l->name);
        (void)evbuffer_add_printf(b, ",\"bind\":");
        json_string(b, l->bind.text);
        (void)evbuffer_add_printf(b,
                                  ",\"codec\":\"%s\",\"cluster\":", cfg_codec_name(l->codec.type));
        json_string(b, l->cluster_name);
        (void)evbuffer_add_printf(b, ",\"clients\":%llu,\"accepted\":%llu}", V(sum.active),
                                  V(sum.accepted));
    }
    (void)evbuffer_add_printf(b, "],\"clusters\":[");
    for (i = 0; i < cfg->nclusters; i++) {
        const struct cfg_cluster *c = &cfg->clusters[i];
        const struct px_stats_entry *e = px_stats_find(st->clusters, st->nclusters, c->name);
        struct pool_health *h = px_server_health(a->srv, i);
        struct pool_stats sum;
        size_t nservers;

        memset(&sum, 0, sizeof(sum));
        if (e != NULL) {
            px_stats_cluster_sum(e, st->nworkers, &sum);
        }
        (void)evbuffer_add_printf(b, "%s{\"name\":", i > 0 ? "," : "");
        json_string(b, c->name);
        /* Occupancy is summed over servers and workers: beside it, the limits summed the same
         * way, and the configured ones (per server, per worker) under their own key. */
        nservers = h != NULL ? health_count(h) : 0;
        (void)evbuffer_add_printf(
            b,
            ",\"balance\":\"%s\",\"used\":%s,\"pool\":{\"connections\":%llu,\"idle\":%llu,"
            "\"pinned\":%llu,\"queued\":%llu,\"servers\":%zu,\"workers\":%u,"
            "\"max_connections_total\":%llu,\"max_pinned_total\":%llu,"
            "\"per_server_per_worker\":{\"max_connections\":%u,\"min_idle\":%u,"
            "\"max_pipeline\":%u,\"max_pinned\":%u}},",
            cfg_balance_name(c->balance), h != NULL ? "true" : "false", V(sum.conns_active),
            V(sum.conns_idle), V(sum.pinned), V(sum.queue_depth), nservers, st->nworkers,
            (unsigned long long)c->pool.max_connections * nservers * st->nworkers,
            (unsigned long long)c->pool.max_pinned * nservers * st->nworkers,
            c->pool.max_connections, c->pool.min_idle, c->pool.max_pipeline, c->pool.max_pinned);
        if (h != NULL) {
            status_servers(b, h);
        } else {
            (void)evbuffer_add_printf(b, "\"servers\":[]");
        }
        (void)evbuffer_add_printf(b, "}");
    }
    (void)evbuffer_add_printf(b, "]}\n");
}

/* ---- /readyz ---- */

static bool
cluster_fit(struct pool_health *h)
{
    struct pool_endpoint **eps;
    size_t n = 0, k;
    unsigned version;
    bool fit = false;

    eps = pool_health_endpoints(h, &n, &version);
    for (k = 0; k < n; k++) {
        fit = fit || pool_endpoint_fit(eps[k]);
        pool_endpoint_put(eps[k]);
    }
    free(eps);
    return fit;
}

/* NULL when ready, else why not (for the operator: behind the token if one is set). */
static const char *
not_ready(struct px_admin *a, char *why, size_t size)
{
    const struct cfg *cfg = px_server_gen(a->srv)->cfg;
    size_t i;

    if (px_server_stopping(a->srv)) {
        return "draining";
    }
    if (!px_server_started(a->srv)) {
        return "starting";
    }
    for (i = 0; i < cfg->nlisteners; i++) {
        const struct cfg_cluster *c = cfg->listeners[i].cluster;
        struct pool_health *h = px_server_health(a->srv, (size_t)(c - cfg->clusters));

        if (h == NULL) {
            return "starting";
        }
        if (!cluster_fit(h)) {
            snprintf(why, size, "cluster %s has no server fit for traffic", c->name);
            return why;
        }
    }
    return NULL;
}

/* ---- connections: the cap, the deadline, accept errors ---- */

/* The input buffer's callback goes before the bufferevent does. */
static void
conn_unwatch(struct admin_conn *c)
{
    if (c->input != NULL) {
        (void)evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input);
        c->input = NULL;
    }
}

static void
conn_free(struct admin_conn *c)
{
    struct px_admin *a = c->a;

    TAILQ_REMOVE(&a->conns, c, link);
    if (!c->over) {
        a->nconns--;
    }
    conn_unwatch(c);
    if (c->evcon == NULL && c->bev != NULL) { /* never attached: our reference goes */
        bufferevent_decref(c->bev);
    }
    event_free(c->timer);
    free(c);
}

static void
on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct admin_conn *c = arg;

    (void)evcon;
    if (!c->closing) {
        conn_free(c); /* the bufferevent is freed after this callback */
    }
}

/* Close it now (through evhttp, which frees its request and bufferevent). */
static void
conn_kill(struct admin_conn *c)
{
    c->closing = true;
    conn_unwatch(c);
    evhttp_connection_free(c->evcon);
    conn_free(c);
}

static void
conn_log(struct admin_conn *c, const char *what)
{
    struct px_log_ctx ctx = {0};
    char peer[64];
    char *host = NULL;
    ev_uint16_t port = 0;

    evhttp_connection_get_peer(c->evcon, &host, &port);
    snprintf(peer, sizeof(peer), "%s:%u", host != NULL ? host : "?", (unsigned)port);
    ctx.peer = peer;
    px_log_warn("admin", &ctx, "%s; closing the connection", what);
}

static void
conn_attach(struct admin_conn *c)
{
    struct px_admin *a = c->a;
    bufferevent_data_cb readcb = NULL;
    void *arg = NULL;

    bufferevent_getcb(c->bev, &readcb, NULL, NULL, &arg);
    if (readcb == NULL || arg == NULL ||
        evhttp_connection_get_bufferevent(arg) != c->bev) { /* evhttp gave it up already */
        conn_free(c);
        return;
    }
    c->evcon = arg;
    bufferevent_decref(c->bev); /* evhttp's own reference remains */
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    if (c->over) {
        a->refused++;
        conn_log(c, "admin.max_connections reached");
        conn_kill(c);
        return;
    }
    if (evtimer_add(c->timer, &a->deadline) == -1) {
        conn_kill(c);
    }
}

static void
on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct admin_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->evcon == NULL) {
        conn_attach(c);
        return;
    }
    if (!c->begun) { /* idle between requests: not a request that timed out */
        conn_kill(c);
        return;
    }
    c->a->timeouts++;
    conn_log(c, "request not complete within admin.request_timeout");
    conn_kill(c);
}

/* Bytes read into the connection's input buffer: a request has begun. */
static void
on_conn_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct admin_conn *c = arg;

    (void)buf;
    if (info->n_added > 0) {
        c->begun = true;
    }
}

/* A reply is written: the deadline starts again, for the next request or the idle time before
 * it (bytes of a pipelined one may be read already). */
static void
on_reply_done(struct evhttp_request *req, void *arg)
{
    struct admin_conn *c = arg;

    (void)req;
    c->begun = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
    /* Cannot fail for a timer that exists; if it did, evhttp's idle timeout still holds. */
    (void)evtimer_add(c->timer, &c->a->deadline);
}

/* evhttp's bufferevent for a new connection: see struct admin_conn. */
static struct bufferevent *
on_new_conn(struct event_base *base, void *arg)
{
    struct px_admin *a = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct admin_conn *c;

    if (bev == NULL) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->timer = evtimer_new(base, on_conn_timer, c)) == NULL ||
        (c->input = evbuffer_add_cb(bufferevent_get_input(bev), on_conn_input, c)) == NULL) {
        if (c != NULL && c->timer != NULL) {
            event_free(c->timer);
        }
        free(c);
        return bev; /* out of memory: served untracked, evhttp's idle timeout still holds */
    }
    c->a = a;
    c->bev = bev;
    c->over = a->nconns >= a->max_connections;
    if (!c->over) {
        a->nconns++;
    }
    bufferevent_incref(bev);
    TAILQ_INSERT_TAIL(&a->conns, c, link);
    event_active(c->timer, EV_TIMEOUT, 1);
    return bev;
}

/* The connection a request came on; NULL if untracked. */
static struct admin_conn *
conn_of(struct px_admin *a, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct admin_conn *c;

    TAILQ_FOREACH(c, &a->conns, link)
    {
        if (evcon != NULL && c->evcon == evcon) {
            return c;
        }
    }
    return NULL;
}

static void
on_pause_end(evutil_socket_t fd, short what, void *arg)
{
    struct px_admin *a = arg;

    (void)fd;
    (void)what;
    (void)evconnlistener_enable(a->lev);
}

/* Out of descriptors or memory: stop accepting for a moment rather than spin (evconnlistener
 * would otherwise try again at once, and log each try). */
static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct px_admin *a;
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    int err = EVUTIL_SOCKET_ERROR();
    time_t now = time(NULL);

    LIST_FOREACH(a, &admins, link)
    {
        if (a->http == arg) {
            break;
        }
    }
    if (a == NULL) { /* not ours: cannot happen */
        return;
    }
    a->accept_errors++;
    if (now != a->last_error_log) {
        a->last_error_log = now;
        px_log_error("admin", NULL, "accept failed: %s; pausing accepts for %d ms (%llu so far)",
                     strerror(err), ACCEPT_PAUSE_MS, (unsigned long long)a->accept_errors);
    }
    (void)evconnlistener_disable(lev);
    if (evtimer_add(a->pause, &tv) == -1) {
        (void)evconnlistener_enable(lev);
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    px_log_flush(false);
}

/* ---- requests ---- */

static bool
authorized(const struct px_admin *a, struct evhttp_request *req)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    unsigned char diff = 0;
    size_t i, len;

    if (a->token == NULL) {
        return true;
    }
    if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0) { /* the scheme is case-insensitive */
        return false;
    }
    v += 7;
    len = strlen(v);
    if (len != a->token_len) {
        return false;
    }
    for (i = 0; i < len; i++) { /* in constant time */
        diff |= (unsigned char)(v[i] ^ a->token[i]);
    }
    return diff == 0;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
    struct px_admin *a = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *body;
    struct admin_conn *c = conn_of(a, req);
    char why[256];
    const char *nr;

    if (c != NULL) { /* its deadline runs until the reply is written */
        evhttp_request_set_on_complete_cb(req, on_reply_done, c);
    }
    if (!authorized(a, req)) {
        (void)evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                                "Bearer realm=\"sluice\"");
        reply_text(req, 401, "Unauthorized", "unauthorized");
        return;
    }
    if (path == NULL || (strcmp(path, "/metrics") != 0 && strcmp(path, "/healthz") != 0 &&
                         strcmp(path, "/readyz") != 0 && strcmp(path, "/status") != 0)) {
        reply_text(req, 404, "Not Found", "not found");
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        (void)evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(req, 405, "Method Not Allowed", "method not allowed");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        reply_text(req, 200, "OK", "ok");
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        nr = not_ready(a, why, sizeof(why));
        if (nr != NULL) {
            reply_text(req, 503, "Service Unavailable", nr);
        } else {
            reply_text(req, 200, "OK", "ready");
        }
        return;
    }
    body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        metrics(a, body);
        reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    } else {
        status(a, body);
        reply(req, 200, "OK", "application/json", body);
    }
    evbuffer_free(body);
}

/* ---- setup ---- */

static int
admin_socket(const struct cfg_addr *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = addr->salen;
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    if (addr->kind == CFG_ADDR_IPV4 || addr->kind == CFG_ADDR_IPV6) {
        ss = addr->sa;
    } else if (addr->kind == CFG_ADDR_ANY) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons(addr->port);
        len = sizeof(*sin);
    } else {
        struct addrinfo hints, *res = NULL;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(addr->host, NULL, &hints, &res) != 0 || res == NULL) {
            errno = EADDRNOTAVAIL;
            return -1;
        }
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        len = res->ai_addrlen;
        freeaddrinfo(res);
        if (ss.ss_family == AF_INET) {
            ((struct sockaddr_in *)&ss)->sin_port = htons(addr->port);
        } else {
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(addr->port);
        }
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (const struct sockaddr *)&ss, len) == -1 || listen(fd, 64) == -1) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

struct px_admin *
px_admin_new(struct event_base *base, const struct cfg_admin *cfg, const struct px_server *srv)
{
    struct px_admin *a = calloc(1, sizeof(*a));
    struct evhttp_bound_socket *bound;
    struct timeval second = {1, 0};
    int fd;

    if (a == NULL) {
        return NULL;
    }
    a->srv = srv;
    TAILQ_INIT(&a->conns);
    a->http = evhttp_new(base);
    a->pause = evtimer_new(base, on_pause_end, a);
    a->tick = event_new(base, -1, EV_PERSIST, on_tick, a);
    if (a->http == NULL || a->pause == NULL || a->tick == NULL ||
        event_add(a->tick, &second) == -1) {
        px_admin_free(a);
        return NULL;
    }
    fd = admin_socket(&cfg->bind);
    if (fd == -1) {
        px_log_error("admin", NULL, "cannot listen on %s: %s", cfg->bind.text, strerror(errno));
        px_admin_free(a);
        return NULL;
    }
    bound = evhttp_accept_socket_with_handle(a->http, fd);
    if (bound == NULL) {
        close(fd);
        px_admin_free(a);
        return NULL;
    }
    a->lev = evhttp_bound_socket_get_listener(bound);
    LIST_INSERT_HEAD(&admins, a, link);
    evconnlistener_set_error_cb(a->lev, on_accept_error);
    evhttp_set_bevcb(a->http, on_new_conn, a);
    evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
    evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_gencb(a->http, on_request, a);
    px_admin_configure(a, cfg);
    px_log_info("admin", NULL, "serving /metrics /healthz /readyz /status on %s%s", cfg->bind.text,
                a->token != NULL ? " (bearer token required)" : "");
    return a;
}

void
px_admin_configure(struct px_admin *a, const struct cfg_admin *cfg)
{
    if (a == NULL) {
        return;
    }
    free(a->token);
    a->token = NULL;
    a->token_len = 0;
    if (cfg->token.ptr != NULL) {
        a->token = cfg_xmalloc(cfg->token.len + 1);
        memcpy(a->token, cfg->token.ptr, cfg->token.len);
        a->token[cfg->token.len] = '\0';
        a->token_len = cfg->token.len;
    }
    a->max_connections = cfg->max_connections;
    a->deadline.tv_sec = (time_t)(cfg->request_timeout_ms / 1000);
    a->deadline.tv_usec = (suseconds_t)(cfg->request_timeout_ms % 1000 * 1000);
}

void
px_admin_free(struct px_admin *a)
{
    struct admin_conn *c;

    if (a == NULL) {
        return;
    }
    if (a->lev != NULL) {
        LIST_REMOVE(a, link);
    }
    if (a->http != NULL) {
        evhttp_free(a->http); /* each tracked connection's close callback frees it */
    }
    while ((c = TAILQ_FIRST(&a->conns)) != NULL) { /* not attached yet */
        conn_free(c);
    }
    if (a->pause != NULL) {
        event_free(a->pause);
    }
    if (a->tick != NULL) {
        event_free(a->tick);
    }
    free(a->token);
    free(a);
}
