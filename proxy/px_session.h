#ifndef PX_SESSION_H
#define PX_SESSION_H

/*
 * A client session of a framing codec (line, length): cuts the client's
 * stream into frames, sends each as a request through the cluster's pool,
 * and writes the responses back strictly in the order of the requests.
 *
 * Deadlines: idle (nothing received and nothing in flight), read (the gap
 * between bytes of a partly received frame), frame (a whole frame from its
 * first byte, plus an allowance per byte received), request (a complete
 * request to its response). A client's FIN ends its requests, not its
 * replies: every whole frame read before it is answered, then it closes.
 * The codecs here have no error reply, so a request that fails or times out
 * closes the client (docs/clients.md); its other requests that
 * were written upstream are left orphaned, their responses read and dropped.
 * Memory per client stays bounded: max_inflight requests, and reading stops
 * while the output is past its high watermark.
 */

#include <stddef.h>
#include <sys/socket.h>

struct evbuffer;
struct pool_req;
struct px_listener;
struct px_session;

/* Serve an accepted client; the session owns fd from here on, even on failure. */
void px_session_start(struct px_listener *l, int fd);
/* End a session now (worker shutdown); it is freed by the worker's reaper. */
void px_session_close(struct px_session *s, const char *why);
void px_session_free(struct px_session *s);

/* The pool's callbacks for a session's requests. */
void px_session_on_response(struct pool_req *pr, struct evbuffer *in, size_t len);
void px_session_on_failure(struct pool_req *pr, int result);

/* A request: the pool's part, its place in the session, and its bytes. */
struct px_req;
struct px_worker;
size_t px_req_size(void);
void px_req_init(struct px_req *req, struct px_worker *w);
void px_req_deinit(struct px_req *req);

#endif
