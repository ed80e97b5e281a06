#ifndef PX_RESP_H
#define PX_RESP_H

/*
 * Redis behaviour of a resp listener's sessions, on top of the framed
 * session: commands answered by sluice (QUIT, AUTH at sluice), error replies
 * in place of failed requests, clients with connection state pinned to an
 * upstream connection of their own, and keys sharded over a hash cluster
 * with multi-key commands split and their replies joined.
 */

#include "pool/pool.h"

#include <stdbool.h>
#include <stddef.h>

struct cfg_cluster;
struct evbuffer;
struct px_req;
struct px_session;
struct px_resp;

/*
 * One complete request frame of n bytes at the start of s->in, already
 * indexed in the worker's px_cmd when parsed. Return 0 when it was taken, 1
 * when it must wait until the session has nothing in flight (it stays in
 * s->in), -1 when the session closed.
 */
int px_resp_request(struct px_session *s, size_t n, bool parsed);
/* The client sent bytes that are not RESP: an error reply, then close. */
void px_resp_bad_frame(struct px_session *s, const char *why);
/* A request of s failed upstream: its error reply takes its place. */
void px_resp_fail(struct px_session *s, struct px_req *req, int result);
/* req is answered or gone: it is no longer the newest request to its shard. */
void px_resp_forget(struct px_session *s, struct px_req *req);
/*
 * The oldest request of s passed timeouts.request: answer it with an error
 * in its place and orphan it (its reply, if it comes, is dropped). Return 0,
 * or -1 when it cannot be answered alone (on a pinned connection, where
 * replies must stay matched): then the client is closed.
 */
int px_resp_timed_out(struct px_session *s, struct px_req *req);
/* A subscriber waits for messages, not requests: the idle deadline spares it. */
bool px_resp_idle_exempt(const struct px_session *s);
/* The client is going: its pinned connection goes back (reset) or is closed. */
void px_resp_close(struct px_session *s);
void px_resp_free(struct px_resp *r);

/* The pool's callbacks for pinned connections; owner is the session. */
void px_resp_on_pinned(void *owner, struct evbuffer *in, size_t len);
void px_resp_on_pin_lost(void *owner, enum pool_result result);
void px_resp_on_pin_drained(void *owner);

/*
 * Fill h's setup (hello: AUTH and SELECT from the cluster's resp block) and
 * reset (RESET, then the hello again), in *bytes (owned by the caller, to be
 * freed after the pool). Return 0 or -1 (out of memory).
 */
int px_resp_setup(const struct cfg_cluster *c, struct pool_handler *h, char **bytes);

#endif
