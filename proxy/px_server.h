#ifndef PX_SERVER_H
#define PX_SERVER_H

/*
 * The process: the main thread's event loop, signals, configuration
 * generations, listening sockets, shared health and the admin endpoint.
 *
 * SIGHUP re-reads the file. With errors, each is logged with its position
 * and the running generation stays. Otherwise the next generation is built
 * and posted to the workers: unchanged listening addresses keep their
 * sockets, unchanged clusters keep their health and warm pools, changed
 * ones get new ones while the old drain; connected clients move to a
 * changed cluster's new pool when nothing they read from it changed, and
 * keep the listener settings they were accepted with.
 *
 * SIGTERM or SIGINT drains: the listening sockets close, each client gets
 * the replies to what it sent and is closed at that frame boundary, and the
 * process exits once none is left or after shutdown.drain_timeout. A
 * second signal exits at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct pool_health;
struct px_gen;
struct px_server;
struct px_stats;

struct px_server_counters {
    uint64_t reloads;         /* applied */
    uint64_t reload_failures; /* refused: the old generation kept running */
};

/* What cfg asks for that this version cannot serve yet, reported (stderr, or logged); how much. */
int px_server_check(const struct cfg *cfg, bool log);

/* Run until stopped. Takes ownership of cfg. Return 0, or -1 on a runtime failure. */
int px_server_run(struct cfg *cfg, const char *path);

/* For the admin endpoint, on the main thread. */
const struct px_gen *px_server_gen(const struct px_server *srv);
/* The shared health of the running generation's cluster i; NULL when no listener uses it. */
struct pool_health *px_server_health(const struct px_server *srv, size_t cluster);
const struct px_stats *px_server_stats(const struct px_server *srv);
const struct px_server_counters *px_server_counters(const struct px_server *srv);
bool px_server_stopping(const struct px_server *srv);
/* The workers serve (the start's DNS wait is over). */
bool px_server_started(const struct px_server *srv);

#endif
