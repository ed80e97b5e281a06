#ifndef POOL_CHECK_H
#define POOL_CHECK_H

/*
 * Active health checks of one server: on a connection of their own (never
 * a pooled one), on the main thread's event base, every interval varied by
 * up to 10% either way. A check is a connect (tcp), a connect plus bytes
 * written and a reply framed by the cluster's codec and matched by prefix or
 * regular expression (send/expect), or an HTTP GET whose status must fall in
 * a range (http). Each check ends within timeout and reports pass or fail.
 */

#include "pool.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct pool_check;

/* One check's outcome; why says what failed ("connect: Connection refused", "timeout", ...). */
typedef void (*pool_check_done_fn)(void *arg, bool pass, const char *why);

/*
 * A checker for the server at sa (cfg->port, when set, replaces its port).
 * host is the Host header of an http check ("name:port"). frame and
 * frame_arg frame a send/expect reply. NULL on failure (out of memory, a bad
 * regular expression).
 */
struct pool_check *pool_check_new(struct event_base *base, const struct cfg_health_active *cfg,
                                  const struct sockaddr *sa, socklen_t salen, const char *host,
                                  pool_frame_fn frame, const void *frame_arg,
                                  pool_check_done_fn done, void *arg);
/* Run the first check after a random delay of up to 10% of interval, then every interval. */
int pool_check_start(struct pool_check *ck);
/* Stop (a check under way is abandoned without a report) and free. */
void pool_check_free(struct pool_check *ck);

#endif
