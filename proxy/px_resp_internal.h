#ifndef PX_RESP_INTERNAL_H
#define PX_RESP_INTERNAL_H

/* Shared by px_resp.c and px_resp_shard.c (private to proxy/). */

#include "pool/pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_req;
struct px_session;

#define MAX_KEYS_STACK 64

/* What a request's reply does (px_req.kind). */
enum kind {
    K_PLAIN,
    K_MULTI,   /* a transaction starts, once its +OK comes */
    K_WATCH,   /* keys are watched, once its +OK comes */
    K_PERM,    /* state until the client leaves (SELECT, AUTH, HELLO, CLIENT SETNAME...) */
    K_EXEC,    /* EXEC, DISCARD: the transaction and WATCH end */
    K_UNWATCH, /* WATCH ends */
    K_BLOCK,   /* a blocking command */
    K_RESET,   /* every state ends; the connection needs its hello again */
    K_STREAM,  /* from its turn on, frames flow without requests */
    K_MGET,    /* split parents: how the fragments' replies join */
    K_MSET,
    K_SUM,
};

struct px_resp {
    unsigned gen;                  /* px_listener_gen() of the pool whose servers last[] follows */
    struct pool_conn *pin;         /* borrowed from the pool while pinned */
    struct pool_cluster *pin_pool; /* borrowed: pin's pool (kept alive while pinned) */
    struct pool_req_list pinq;     /* requests waiting on pin, oldest first (by pr.link) */
    unsigned npinq;
    unsigned nblocking; /* of them, blocking commands: no read deadline */
    unsigned hidden;    /* replies to our own hello after the client's RESET, still to come */
    unsigned skip;      /* of them, due next: dropped */
    bool stream;        /* frames go straight to the client */
    bool perm;          /* state that lasts until the client leaves */
    bool multi;
    bool watch;
    bool authed;
    size_t nlast;
    struct px_req *last[]; /* per shard: the newest unanswered request (pool_req.after) */
};

/* Drop the first n bytes of s->in: the frame just handled. */
void px_resp_consume(struct px_session *s, size_t n);
/* Answer the frame of n bytes with "-<fmt...>" made here, counted as rejected. */
void px_resp_local_error(struct px_session *s, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* req's reply becomes "-ERR sluice: <the pool result's cause>". */
void px_resp_error_into(struct px_req *req, int result);
/* Where the newest unanswered request to a shard is kept (pool_req.after). */
struct px_req **px_resp_slot(struct px_session *s, uint32_t shard);
/* Send the frame of n bytes on a shared connection (of shard, when not 0). */
void px_resp_submit(struct px_session *s, size_t n, uint32_t shard, enum kind kind);

#endif
