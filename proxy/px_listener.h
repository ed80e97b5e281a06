#ifndef PX_LISTENER_H
#define PX_LISTENER_H

/*
 * A listening socket of one worker (SO_REUSEPORT: every worker binds its own)
 * and its accept loop. Accepting never spins: on EMFILE, ENFILE, ENOBUFS or
 * ENOMEM it pauses briefly, counts, and logs at most once a second. Past
 * max_clients a new connection is closed at once and counted.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

struct cfg_listener;
struct px_log_ctx;
struct pool_cluster;
struct px_listener;
struct px_listener_stats;
struct px_worker;
struct sockaddr_storage;

/* Where cfg binds, resolved. -1 after logging why. */
int px_listener_addr(const struct cfg_listener *cfg, struct sockaddr_storage *ss, socklen_t *len);
/*
 * Whether addr is free: bind a socket there without SO_REUSEPORT and close it.
 * Every worker's socket binds with SO_REUSEPORT, which would let a second
 * process (another sluice) share the address and take part of its
 * connections; probing first makes that an error. -1 with errno set
 * (EADDRINUSE: some other socket holds it; one bound but not listening with
 * SO_REUSEADDR goes unseen). Call it only for an address no socket of this
 * process overlaps (the same address and port, or a wildcard of the family on
 * that port): such a socket would fail it.
 */
int px_listener_probe(const struct cfg_listener *cfg, const struct sockaddr_storage *addr,
                      socklen_t addrlen);
/* A listening socket on addr (SO_REUSEPORT: one per worker). -1 with errno set. */
int px_listener_open(const struct cfg_listener *cfg, const struct sockaddr_storage *addr,
                     socklen_t addrlen);

/*
 * Accept on fd (borrowed: the server owns listening sockets, and a reload
 * hands a socket from one listener to the next). clients counts this
 * listener's clients across all workers, for max_clients; stats is the
 * worker's block for the listener's name. NULL on failure.
 */
struct px_listener *px_listener_new(struct px_worker *w, const struct cfg_listener *cfg, int fd,
                                    struct pool_cluster *pool, atomic_uint *clients,
                                    struct px_listener_stats *stats);
int px_listener_enable(struct px_listener *l);
/*
 * A reload replaced it: stop watching its socket now. Its clients go on;
 * when the last one ends the worker hears px_worker_listener_drained().
 */
void px_listener_retire(struct px_listener *l);
/*
 * A reload gave the cluster a new pool its clients can use: their next
 * requests go there (each client once its requests in the old one are
 * answered).
 */
void px_listener_set_pool(struct px_listener *l, struct pool_cluster *pool);
/*
 * How many times px_listener_set_pool() moved it: a client that saw another
 * number must follow. (An old pool is freed once idle and its address may
 * come back for a new one, so pointers cannot tell.)
 */
unsigned px_listener_gen(const struct px_listener *l);
/* Clients (sessions and relays) alive now. */
unsigned px_listener_clients(const struct px_listener *l);
void px_listener_free(struct px_listener *l);

const struct cfg_listener *px_listener_cfg(const struct px_listener *l);
struct px_listener_stats *px_listener_stats(struct px_listener *l);
struct pool_cluster *px_listener_pool(const struct px_listener *l);
struct px_worker *px_listener_worker(const struct px_listener *l);
/* Whether frames change framing between the listener and its cluster. */
bool px_listener_reframes(const struct px_listener *l);
#define PX_PEER_LEN 64

/* The log context of a client of this listener on fd; peer (PX_PEER_LEN bytes) holds its address.
 */
void px_listener_log_ctx(const struct px_listener *l, int fd, struct px_log_ctx *ctx, char *peer);

/* A client session of this listener ended. */
void px_listener_client_gone(struct px_listener *l);

#endif
