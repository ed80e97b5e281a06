#ifndef PX_LOG_H
#define PX_LOG_H

/*
 * Logging to standard error: one line per event, text or JSON, with a UTC
 * timestamp, level, component, message and the context there is (listener,
 * cluster, server, peer). The level test is a relaxed atomic load in the
 * macro, before any argument is evaluated: a hot-path event whose level is
 * off costs a compare, never a format or a syscall. A line is one write(2),
 * so lines from worker threads never interleave.
 *
 * Warn and error lines are folded (px_log_set_rate_limit): a line whose
 * level, component, text and context (the peer without its port) match one
 * written less than an interval ago is counted instead of written, and one
 * summary line per interval carries the count: "<text> ... 4812 more in the
 * last 10 s". Info and debug lines are never folded.
 */

#include "config/cfg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PX_LOG_LINE_MAX 4096

struct px_log_ctx {
    const char *listener;
    const char *cluster;
    const char *server; /* the address, as the endpoint prints it */
    const char *peer;
    const char *server_name; /* the server's name key, when it has one */
};

extern atomic_int px_log_min_level;

#define px_log_enabled(level)                                                                      \
    ((int)(level) >= atomic_load_explicit(&px_log_min_level, memory_order_relaxed))

#define PX_LOG(level, component, ctx, ...)                                                         \
    do {                                                                                           \
        if (px_log_enabled(level)) {                                                               \
            px_log_write((level), (component), (ctx), __VA_ARGS__);                                \
        }                                                                                          \
    } while (0)

#define px_log_debug(component, ctx, ...) PX_LOG(CFG_LOG_DEBUG, component, ctx, __VA_ARGS__)
#define px_log_info(component, ctx, ...) PX_LOG(CFG_LOG_INFO, component, ctx, __VA_ARGS__)
#define px_log_warn(component, ctx, ...) PX_LOG(CFG_LOG_WARN, component, ctx, __VA_ARGS__)
#define px_log_error(component, ctx, ...) PX_LOG(CFG_LOG_ERROR, component, ctx, __VA_ARGS__)

/* "ip:port" or "[ipv6]:port" of fd's peer into buf, for a log context; "?" if unknown. */
const char *px_log_peer(int fd, char *buf, size_t size);

/* The name key of cluster's server whose endpoint text ("10.0.0.2:6379", or
 * "redis:6379=10.0.0.2" for an address of a hostname) is server; NULL if it has none. */
const char *px_log_server_name(const struct cfg_cluster *cluster, const char *server);

/* Set the level and format; safe to call while other threads log. */
void px_log_configure(enum cfg_log_level level, enum cfg_log_format format);
/* Fold repeated warn and error lines over interval_ms (0: off, the default); any thread. */
void px_log_set_rate_limit(uint64_t interval_ms);
/* Write the summaries of folded lines whose interval is over (all: every one, at exit). Call it
 * about once a second; a summary is also written when its line comes again. */
void px_log_flush(bool all);
/* Write to fd instead of standard error (tests). */
void px_log_set_fd(int fd);

/* Format and write one line; ctx may be NULL. Call through the macros. */
void px_log_write(enum cfg_log_level level, const char *component, const struct px_log_ctx *ctx,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
