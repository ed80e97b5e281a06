#ifndef PX_SESSION_INTERNAL_H
#define PX_SESSION_INTERNAL_H

/*
 * The framed session's structures, shared by px_session.c and the codec
 * behaviour that extends it (px_resp.c for Redis): private to proxy/.
 */

#include "pool/pool.h"
#include "proxy/codec/px_codec.h"
#include "proxy/px_worker.h"

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#define READ_CHUNK 16384
#define OUT_HIGH (1u << 20) /* stop reading a client whose replies pile up past this */
#define OUT_LOW (256u << 10)

struct px_resp;

/* The coarse clock deadlines are kept in (ms); a duration as libevent takes it. */
static inline uint64_t
px_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline struct timeval
px_tv_ms(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    return tv;
}

/* Bytes in a buffer made on first use (NULL until then): an idle client costs little. */
static inline size_t
px_buf_len(const struct evbuffer *b)
{
    return b != NULL ? evbuffer_get_length(b) : 0;
}

struct px_req {
    struct pool_req pr;       /* first: the pool hands it back */
    TAILQ_ENTRY(px_req) link; /* the session's requests, or a parent's fragments */
    struct px_session *s;     /* borrowed; NULL once orphaned */
    struct px_worker *w;      /* borrowed: whose cache it returns to */
    struct evbuffer *buf;     /* owned: the request, then its response */
    struct px_req *follower;  /* borrowed: the next request whose pr.after is this one */
    struct px_req *parent;    /* borrowed: the request this is a fragment of (split commands) */
    void *aux;                /* owned: codec data (a split command's key order) */
    uint64_t t0;              /* ms: when the request was complete; PX_NO_DEADLINE: exempt */
    uint32_t nfrags;          /* fragments not yet answered */
    uint32_t charged;         /* bytes of it counted in the buffer budget until answered */
    uint8_t kind;             /* codec's: what the reply does (px_resp.c) */
    bool done;
};

#define PX_NO_DEADLINE (UINT64_MAX / 2)

TAILQ_HEAD(px_req_list, px_req);

enum rev_mode {
    REV_NONE,
    REV_IDLE, /* between frames: the idle deadline (which ignores a client waiting for replies) */
    REV_PARTIAL, /* part of a frame received: the read deadline */
};

struct px_session {
    struct px_client head;
    struct px_listener *l; /* borrowed */
    struct px_worker *w;   /* borrowed */
    int fd;                /* owned */
    struct event rev;
    struct event *wev;    /* owned, made on the first reply */
    struct event *timer;  /* owned, made on the first request: the request deadline */
    struct event *cev;    /* owned, resp: watches for the client closing while not read */
    uint64_t timer_due;   /* ms: when the pending timer fires */
    struct evbuffer *in;  /* owned */
    struct evbuffer *out; /* owned, made on the first reply */
    struct px_frame_state fst;
    struct px_req_list reqs; /* every request not yet answered to the client, in order */
    unsigned ninflight;
    uint8_t rev_mode;
    bool paused; /* not reading: too much in flight or too much output */
    bool eof;    /* no more reading: the client half-closed (or we finish); whole frames in
                    `in` are still cut and answered */
    bool closing;
    bool hup;             /* the client's FIN was seen (read, or EV_CLOSED while not reading) */
    bool cut;             /* process() cut a frame since the last read */
    bool starved;         /* not reading: over the process-wide buffer budget */
    uint64_t frame_t0;    /* ms: when the partial frame at the end of `in` began; 0: none */
    uint64_t last_rd;     /* ms: the last read that left a partial frame */
    uint64_t starved_t0;  /* ms: when reading stopped for the budget */
    size_t held;          /* bytes of `in` counted in the budget (px_budget.c) */
    size_t sent;          /* bytes of its unanswered requests counted there (px_req.charged) */
    struct event *bev;    /* owned, made when first starved: polls the budget */
    bool flush_queued;    /* wev activated for this turn: one write for the batch */
    struct px_req *last;  /* borrowed: the newest unanswered request (pool_req.after) */
    struct px_resp *resp; /* owned: Redis state, made on the first resp request */
};

/* Helpers of px_session.c for codec behaviour. */
void px_req_release(struct px_req *req);
/* A new request of s, last in its order, in flight until done. */
struct px_req *px_session_req_new(struct px_session *s);
/*
 * The pool for a new request whose predecessor is in *slot: the listener's,
 * unless the predecessor is still unanswered in another (a reload moved the
 * listener to a new pool): then that one, so one client's requests to a
 * server keep their order. The client moves once it has caught up.
 */
struct pool_cluster *px_session_pool(const struct px_session *s, struct px_req *const *slot);
/* Order req after the request in *slot (same server, same connection), then put it there. */
void px_session_chain(struct px_session *s, struct px_req *req, struct px_req **slot);
/* Forget req as the predecessor (pool_req.after) of another request. */
void px_req_unlink_after(struct px_req *req);
int px_session_ensure_out(struct px_session *s);
void px_session_deliver(struct px_session *s, bool moved);
void px_session_arm_timer(struct px_session *s);
/* Read the client, with the deadline of its state, or stop reading it (paused, starved, eof). */
void px_session_arm_read(struct px_session *s);
/* Stop reading; close once every reply is written. */
void px_session_finish(struct px_session *s);

#endif
