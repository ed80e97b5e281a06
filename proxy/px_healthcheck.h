#ifndef PX_HEALTHCHECK_H
#define PX_HEALTHCHECK_H

/*
 * `sluice healthcheck`: GET /healthz on the admin endpoint of a running sluice,
 * for a container's HEALTHCHECK (no curl in the image). A command-line tool,
 * not part of the event loop: blocking sockets, every wait bounded by poll()
 * and one deadline.
 */

#include <stdint.h>
#include <stdio.h>

struct cfg_admin;

/* The default of --timeout: connect, send and the status line, all together. */
#define PX_HEALTHCHECK_TIMEOUT_MS 2000

/*
 * Probe admin->bind (a wildcard bind is asked on loopback) within timeout_ms.
 * 0 when it answered 200; -1 otherwise, after writing one line to err saying
 * why (connection refused, timed out, status N).
 */
int px_healthcheck_run(const struct cfg_admin *admin, uint64_t timeout_ms, FILE *err);

#endif
