#ifndef PX_SERVER_INTERNAL_H
#define PX_SERVER_INTERNAL_H

/*
 * The main thread's state, shared by px_server.c (signals, reload, drain,
 * start and stop) and px_build.c (what a generation is built from:
 * listening sockets, shared health, DNS watches, the workers' plans).
 * Private to proxy/; everything here runs on the main thread.
 */

#include "proxy/px_server.h"
#include "proxy/px_worker.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct cfg;
struct cfg_cluster;
struct px_admin;
struct px_dns;

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

/* ---- px_build.c ---- */

/* Log a health's counters (at stop, and when a reload replaces it). */
void px_build_health_log(const struct pool_health *h);
void px_build_health_free(struct srv_health *sh);
/* The collect timer: frees replaced health no worker's pool holds any more. */
void px_build_on_collect(evutil_socket_t fd, short what, void *arg);

/*
 * Watch every server given by hostname of cfg (health: per cluster; made:
 * which health is new, NULL for all). NULL on failure.
 */
struct srv_dns *px_build_dns_new(struct px_server *srv, const struct cfg *cfg,
                                 struct pool_health **health, const bool *made);
void px_build_dns_free(struct srv_dns *sd);
/* At start: wait (bounded) for the first answers, before the workers serve. */
int px_build_dns_wait(struct px_server *srv);

void px_build_socket_free(struct px_server *srv, struct srv_socket *so);
/* Close the sockets no generation from older_than on listens on (fresh: only the new ones). */
void px_build_close_sockets(struct px_server *srv, unsigned older_than, bool fresh);

/*
 * Build what the workers need for gen: shared health per used cluster,
 * sockets, counters. NULL on failure, with nothing the running generation
 * uses touched.
 */
struct srv_plan *px_build_plan_new(struct px_server *srv, struct px_gen *gen);
/* Undo a generation that will not run: its new health and sockets go. */
void px_build_plan_undo(struct px_server *srv, struct px_gen *gen, struct srv_plan *sp);
void px_build_plan_free(struct srv_plan *sp);
/* gen is running now: health not in it is replaced, DNS follows its names (sd, taken). */
void px_build_switch(struct px_server *srv, struct px_gen *gen, struct pool_health **health,
                     struct srv_dns *sd);

#endif
