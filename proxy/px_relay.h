#ifndef PX_RELAY_H
#define PX_RELAY_H

/*
 * A raw session: no framing. The client gets one upstream connection for its
 * whole life (warm from the pool when one is idle; it never goes back), and
 * bytes flow both ways. A FIN from one side becomes shutdown(SHUT_WR) on the
 * other once its bytes are written, and the other direction keeps flowing.
 */

#include <sys/socket.h>

struct pool_req;
struct px_listener;
struct px_relay;

/* Serve an accepted client; the relay owns fd from here on, even on failure. */
void px_relay_start(struct px_listener *l, int fd);
void px_relay_close(struct px_relay *r, const char *why);
void px_relay_free(struct px_relay *r);

/* The pool's callbacks for the relay's lease. */
void px_relay_on_leased(struct pool_req *pr, int fd);
void px_relay_on_failure(struct pool_req *pr, int result);

#endif
