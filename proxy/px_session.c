#include "px_session.h"
#include "px_session_internal.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "pool/pool_io.h"
#include "proxy/codec/px_codec.h"
#include "proxy/codec/px_codec_resp.h"
#include "proxy/codec/px_resp_cmd.h"
#include "proxy/px_budget.h"
#include "proxy/px_listener.h"
#include "proxy/px_resp.h"
#include "proxy/px_resp_shard.h"
#include "proxy/px_log.h"
#include "proxy/px_worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

static void on_client_read(evutil_socket_t fd, short what, void *arg);
static void on_client_write(evutil_socket_t fd, short what, void *arg);
static void on_request_timer(evutil_socket_t fd, short what, void *arg);

/* Drop what s->in holds (nothing more of it will be answered). */
static void
drop_input(struct px_session *s)
{
    if (s->in != NULL) {
        evbuffer_drain(s->in, evbuffer_get_length(s->in));
    }
    s->frame_t0 = 0;
    px_budget_account(s);
}

/* ---- requests ---- */

size_t
px_req_size(void)
{
    return sizeof(struct px_req);
}

void
px_req_init(struct px_req *req, struct px_worker *w)
{
    memset(req, 0, sizeof(*req));
    req->w = w;
    req->buf = evbuffer_new();
    if (req->buf == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        abort();
    }
}

void
px_req_deinit(struct px_req *req)
{
    evbuffer_free(req->buf);
}

void
px_req_unlink_after(struct px_req *req)
{
    if (req->follower != NULL) {
        req->follower->pr.after = NULL;
        req->follower = NULL;
    }
    if (req->pr.after != NULL) {
        struct px_req *prev = (struct px_req *)req->pr.after;

        if (prev->follower == req) {
            prev->follower = NULL;
        }
        req->pr.after = NULL;
    }
    if (req->s != NULL) {
        if (req->s->last == req) {
            req->s->last = NULL;
        }
        if (req->s->resp != NULL) {
            px_resp_forget(req->s, req);
        }
    }
}

void
px_req_release(struct px_req *req)
{
    if (req->charged != 0) {
        px_budget_uncharge(req);
    }
    px_req_unlink_after(req);
    evbuffer_drain(req->buf, evbuffer_get_length(req->buf));
    free(req->aux);
    req->aux = NULL;
    req->parent = NULL;
    req->nfrags = 0;
    req->kind = 0;
    req->s = NULL;
    req->done = false;
    memset(&req->pr, 0, sizeof(req->pr));
    px_worker_req_put(req->w, req);
}

struct px_req *
px_session_req_new(struct px_session *s)
{
    struct px_req *req = px_worker_req_get(s->w);

    req->s = s;
    req->t0 = px_now_ms();
    req->pr.frame = req->buf;
    TAILQ_INSERT_TAIL(&s->reqs, req, link);
    s->ninflight++;
    return req;
}

/* ---- closing ---- */

void
px_session_close(struct px_session *s, const char *why)
{
    struct px_req *req;

    if (s->closing) {
        return;
    }
    s->closing = true;
    if (why != NULL) {
        struct px_log_ctx ctx;
        char peer[PX_PEER_LEN];

        px_listener_log_ctx(s->l, s->fd, &ctx, peer);
        px_log_debug("session", &ctx, "closed: %s", why);
    }
    event_del(&s->rev);
    if (s->wev != NULL) {
        event_del(s->wev);
    }
    if (s->timer != NULL) {
        event_del(s->timer);
    }
    if (s->cev != NULL) {
        event_del(s->cev);
    }
    if (s->bev != NULL) {
        event_del(s->bev);
    }
    drop_input(s);
    px_budget_frame_done(s); /* whatever it held: a turn over the budget never outlives it */
    if (s->resp != NULL) {
        px_resp_close(s); /* its pinned connection goes back first */
    }
    while ((req = TAILQ_FIRST(&s->reqs)) != NULL) {
        TAILQ_REMOVE(&s->reqs, req, link);
        if (req->aux != NULL) {
            px_resp_drop_fragments(req);
        }
        if (req->done || pool_cancel(&req->pr) == 0) {
            px_req_release(req);
        } else {
            px_budget_orphan(req); /* orphaned: its response is read and dropped */
        }
    }
    close(s->fd);
    s->fd = -1;
    px_listener_client_gone(s->l);
    px_worker_reap(s->w, &s->head);
}

static void
client_close(struct px_client *c, const char *why)
{
    px_session_close(px_container_of(c, struct px_session, head), why);
}

/*
 * As a half-close: no more reading; the whole frames already read are still
 * cut and answered (a partial one is dropped), then the session ends.
 */
static void
client_drain(struct px_client *c)
{
    struct px_session *s = px_container_of(c, struct px_session, head);

    if (s->closing) {
        return;
    }
    s->eof = true;
    if (s->ninflight == 0 && px_buf_len(s->out) == 0 && px_buf_len(s->in) == 0) {
        px_session_close(s, "shutting down");
        return;
    }
    px_session_arm_read(s);
    if (px_buf_len(s->in) > 0 && !s->paused) {
        event_active(&s->rev, EV_READ, 0); /* cut what is whole; reading is over */
    }
}

static void
client_free(struct px_client *c)
{
    px_session_free(px_container_of(c, struct px_session, head));
}

void
px_session_free(struct px_session *s)
{
    if (s->wev != NULL) {
        event_free(s->wev);
    }
    if (s->timer != NULL) {
        event_free(s->timer);
    }
    if (s->cev != NULL) {
        event_free(s->cev);
    }
    if (s->bev != NULL) {
        event_free(s->bev);
    }
    if (s->in != NULL) {
        evbuffer_free(s->in);
    }
    if (s->out != NULL) {
        evbuffer_free(s->out);
    }
    px_resp_free(s->resp);
    free(s);
}

/* ---- deadlines ---- */

/* Whether s waits for something with no deadline of its own: a blocking command, a stream. */
static bool
waits_unbounded(const struct px_session *s)
{
    const struct px_req *req;

    if (s->resp == NULL) {
        return false;
    }
    if (px_resp_idle_exempt(s)) {
        return true;
    }
    TAILQ_FOREACH(req, &s->reqs, link)
    {
        if (req->t0 == PX_NO_DEADLINE) {
            return true;
        }
    }
    return false;
}

/*
 * The client sent a FIN while it was not read. A client that leaves while
 * blocked is dropped, as Redis does; otherwise it may be a half-close, whose
 * requests are read and answered once reading resumes.
 */
static void
on_client_closed(evutil_socket_t fd, short what, void *arg)
{
    struct px_session *s = arg;

    (void)fd;
    (void)what;
    if (s->closing) {
        return;
    }
    if (waits_unbounded(s)) {
        px_session_close(s, "client closed");
        return;
    }
    s->hup = true;
    event_del(s->cev); /* level-triggered: it would fire again */
}

static void
watch_close(struct px_session *s)
{
    if (s->cev == NULL) {
        s->cev =
            event_new(px_worker_base(s->w), s->fd, EV_CLOSED | EV_PERSIST, on_client_closed, s);
        if (s->cev == NULL) {
            return; /* then it is noticed when reading resumes */
        }
    }
    (void)event_add(s->cev, NULL);
}

void
px_session_arm_read(struct px_session *s)
{
    const struct cfg_listener *cfg = px_listener_cfg(s->l);
    enum rev_mode mode = REV_IDLE;
    uint64_t ms = cfg->timeouts.idle_ms;
    struct timeval tv;

    if (s->paused || s->starved || s->eof || s->closing) {
        if (s->rev_mode != REV_NONE) {
            /* not when already off: event_del() would cancel an event_active() to come */
            event_del(&s->rev);
            s->rev_mode = REV_NONE;
        }
        if (s->resp != NULL && !s->closing && !s->hup) {
            watch_close(s); /* Redis drops a client that leaves: even one not being read */
        }
        return;
    }
    if (s->cev != NULL) {
        event_del(s->cev);
    }
    if (px_buf_len(s->in) > 0) {
        uint64_t frame = cfg->timeouts.frame_ms;

        mode = REV_PARTIAL;
        ms = cfg->timeouts.read_ms;
        if (frame > 0 && (ms == 0 || frame < ms)) {
            ms = frame; /* on_timeout() tells the two deadlines apart */
        }
    }
    if (mode == s->rev_mode) {
        return; /* EV_PERSIST restarts the same deadline on every read: no re-arm per request */
    }
    tv = px_tv_ms(ms);
    if (ms == 0 && s->rev_mode != REV_NONE) {
        event_del(&s->rev); /* event_add() with no timeout keeps one already armed */
    }
    if (event_add(&s->rev, ms > 0 ? &tv : NULL) == -1) {
        px_session_close(s, "cannot arm the read event");
        return;
    }
    s->rev_mode = (uint8_t)mode;
}

/*
 * The request deadline of the oldest unanswered request. Armed lazily: a
 * reply does not re-arm it; when it fires it looks at whoever is oldest then
 * and waits again for that one if needed, so a steady stream of requests
 * costs one timer event per request deadline, not one per request.
 */
void
px_session_arm_timer(struct px_session *s)
{
    uint64_t limit = px_listener_cfg(s->l)->timeouts.request_ms, now, due;
    struct px_req *head = TAILQ_FIRST(&s->reqs);
    struct timeval tv;

    if (limit == 0 || s->closing || head == NULL || head->t0 == PX_NO_DEADLINE) {
        return; /* a blocking command waits as long as it asked; the next is armed after it */
    }
    due = head->t0 + limit;
    if (s->timer == NULL) {
        s->timer = evtimer_new(px_worker_base(s->w), on_request_timer, s);
        if (s->timer == NULL) {
            px_session_close(s, "cannot create the request timer");
            return;
        }
    } else if (event_pending(s->timer, EV_TIMEOUT, NULL) && s->timer_due <= due) {
        return;
    }
    now = px_now_ms();
    tv = px_tv_ms(due > now ? due - now : 0);
    event_add(s->timer, &tv);
    s->timer_due = due;
}

/* ---- writing to the client ---- */

/*
 * Write what is buffered. While output stays pending the write event carries
 * a deadline (timeouts.request) that only progress renews: a client that
 * does not read its replies is cut off, not buffered for.
 */
static void
flush(struct px_session *s)
{
    uint64_t limit = px_listener_cfg(s->l)->timeouts.request_ms;
    struct timeval tv = px_tv_ms(limit);
    bool progress = false;

    while (evbuffer_get_length(s->out) > 0) {
        int n = evbuffer_write(s->out, s->fd);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            px_session_close(s, strerror(errno));
            return;
        }
        progress = true;
    }
    if (evbuffer_get_length(s->out) > 0) {
        if ((progress || !event_pending(s->wev, EV_WRITE, NULL)) &&
            event_add(s->wev, limit > 0 ? &tv : NULL) == -1) {
            px_session_close(s, "cannot arm the write event");
        }
        return;
    }
    event_del(s->wev);
    if (s->eof && s->ninflight == 0 && px_buf_len(s->in) == 0) {
        px_session_close(s, "client finished");
    }
}

static bool
writable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0;
}

static void
on_client_write(evutil_socket_t fd, short what, void *arg)
{
    struct px_session *s = arg;

    (void)fd;
    s->flush_queued = false;
    if (s->closing) {
        return;
    }
    if ((what & EV_TIMEOUT) && !writable_now(s->fd)) { /* a late loop reports it over room */
        struct px_log_ctx ctx;
        char peer[PX_PEER_LEN];

        px_listener_log_ctx(s->l, s->fd, &ctx, peer);
        POOL_STAT_INC(px_listener_stats(s->l)->write_timeouts);
        px_log_info("session", &ctx, "client does not read its replies; closing it");
        px_session_close(s, NULL);
        return;
    }
    flush(s);
    if (!s->closing && s->paused && px_buf_len(s->out) <= OUT_LOW &&
        s->ninflight < px_listener_cfg(s->l)->max_inflight) {
        s->paused = false;
        event_active(&s->rev, EV_READ, 0); /* frames may be waiting in s->in */
    }
}

int
px_session_ensure_out(struct px_session *s)
{
    if (s->out == NULL) {
        s->out = evbuffer_new();
        s->wev = event_new(px_worker_base(s->w), s->fd, EV_WRITE, on_client_write, s);
        if (s->out == NULL || s->wev == NULL) {
            px_session_close(s, "out of memory");
            return -1;
        }
    }
    return 0;
}

/*
 * Move answered requests, in order, to the output (moved: one already went
 * straight there); the write happens once this turn of the loop is done.
 */
void
px_session_deliver(struct px_session *s, bool moved)
{
    struct px_listener_stats *st = px_listener_stats(s->l);
    struct px_req *req;

    if (px_session_ensure_out(s) == -1) {
        return;
    }
    while ((req = TAILQ_FIRST(&s->reqs)) != NULL && req->done) {
        TAILQ_REMOVE(&s->reqs, req, link);
        POOL_STAT_INC(st->frames_out);
        POOL_STAT_ADD(st->bytes_out, evbuffer_get_length(req->buf));
        evbuffer_add_buffer(s->out, req->buf);
        s->ninflight--;
        px_req_release(req);
        moved = true;
    }
    if (!moved) {
        return;
    }
    if (req != NULL && s->timer != NULL) {
        px_session_arm_timer(s); /* the new oldest, if the old one had no deadline */
    }
    if (!s->flush_queued) {
        s->flush_queued = true;
        event_active(s->wev, EV_WRITE, 0);
    }
    if (s->paused && s->ninflight < px_listener_cfg(s->l)->max_inflight &&
        evbuffer_get_length(s->out) <= OUT_HIGH) {
        s->paused = false;
        event_active(&s->rev, EV_READ, 0);
    } else if (!s->paused) {
        px_session_arm_read(s);
    }
}

/* ---- pool callbacks ---- */

void
px_session_on_response(struct pool_req *pr, struct evbuffer *in, size_t len)
{
    struct px_req *req = (struct px_req *)pr;
    struct px_session *s = req->s;
    const struct cfg_listener *cfg;

    if (s == NULL) {
        evbuffer_drain(in, len); /* orphaned: keep the upstream stream in sync, drop it */
        px_req_release(req);
        return;
    }
    px_req_unlink_after(req);
    if (req->parent != NULL) {
        px_resp_fragment(req, in, len);
        return;
    }
    cfg = px_listener_cfg(s->l);
    if (px_session_ensure_out(s) == -1) {
        evbuffer_drain(in, len); /* never leave a reply for the next request on the connection */
        return;
    }
    if (px_listener_reframes(s->l)) {
        struct evbuffer *scratch = px_worker_scratch(s->w);
        const char *why;

        evbuffer_remove_buffer(in, scratch, len);
        if (px_codec_reframe(&cfg->cluster->codec, &cfg->codec, scratch, req->buf, &why) == -1) {
            evbuffer_drain(scratch, evbuffer_get_length(scratch));
            POOL_STAT_INC(px_listener_stats(s->l)->upstream_failures);
            px_session_close(s, why);
            return;
        }
    } else if (req == TAILQ_FIRST(&s->reqs)) {
        struct px_listener_stats *st = px_listener_stats(s->l);

        /* the oldest unanswered: straight to the client, no copy of its own */
        evbuffer_remove_buffer(in, s->out, len);
        TAILQ_REMOVE(&s->reqs, req, link);
        POOL_STAT_INC(st->frames_out);
        POOL_STAT_ADD(st->bytes_out, len);
        s->ninflight--;
        px_req_release(req);
        px_session_deliver(s, true);
        return;
    } else {
        evbuffer_remove_buffer(in, req->buf, len); /* held until those before it are answered */
    }
    req->done = true;
    px_session_deliver(s, false);
}

void
px_session_on_failure(struct pool_req *pr, int result)
{
    struct px_req *req = (struct px_req *)pr;
    struct px_session *s = req->s;
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];

    if (s == NULL) {
        px_req_release(req);
        return;
    }
    px_req_unlink_after(req);
    POOL_STAT_INC(px_listener_stats(s->l)->upstream_failures);
    if (s->resp != NULL) {
        px_resp_fail(s, req, result); /* an error reply in its place */
        return;
    }
    px_listener_log_ctx(s->l, s->fd, &ctx, peer);
    px_log_warn("session", &ctx, "request failed (%s); closing the client: %s has no error reply",
                pool_result_str[result], cfg_codec_name(px_listener_cfg(s->l)->codec.type));
    px_session_close(s, NULL);
}

void
px_session_finish(struct px_session *s)
{
    s->eof = true;
    drop_input(s);
    px_session_arm_read(s);
    if (s->ninflight == 0 && px_buf_len(s->out) == 0) {
        px_session_close(s, "finished");
    } else if (s->out != NULL && !s->flush_queued) {
        s->flush_queued = true;
        event_active(s->wev, EV_WRITE, 0);
    }
}

/* ---- reading from the client ---- */

static bool
chainable(const struct px_req *prev)
{
    return prev != NULL && prev->follower == NULL &&
           (prev->pr.state == POOL_REQ_QUEUED || prev->pr.state == POOL_REQ_ASSIGNED ||
            prev->pr.state == POOL_REQ_SENT);
}

struct pool_cluster *
px_session_pool(const struct px_session *s, struct px_req *const *slot)
{
    const struct px_req *prev = *slot;

    if (chainable(prev) && prev->pr.cluster != NULL) {
        return prev->pr.cluster;
    }
    return px_listener_pool(s->l);
}

void
px_session_chain(struct px_session *s, struct px_req *req, struct px_req **slot)
{
    struct px_req *prev = *slot;

    (void)s;
    if (chainable(prev)) {
        req->pr.after = &prev->pr;
        prev->follower = req;
    }
    *slot = req;
}

/* Turn one complete frame of n bytes into a request. Return -1 if the session closed. */
static int
submit(struct px_session *s, size_t n)
{
    const struct cfg_listener *cfg = px_listener_cfg(s->l);
    struct px_req *req = px_worker_req_get(s->w);
    struct evbuffer *src =
        s->in; /* the pool takes the frame from here, without a copy of its own */
    struct pool_cluster *pool;
    enum pool_result rc;
    const char *why;

    if (px_listener_reframes(s->l)) {
        struct evbuffer *scratch = px_worker_scratch(s->w);

        evbuffer_remove_buffer(s->in, scratch, n);
        if (px_codec_reframe(&cfg->codec, &cfg->cluster->codec, scratch, req->buf, &why) == -1) {
            evbuffer_drain(scratch, evbuffer_get_length(scratch));
            px_req_release(req);
            POOL_STAT_INC(px_listener_stats(s->l)->bad_frames);
            px_session_close(s, why);
            return -1;
        }
        src = req->buf;
        n = evbuffer_get_length(req->buf);
    }
    memset(&s->fst, 0, sizeof(s->fst));
    req->s = s;
    req->t0 = px_now_ms();
    req->pr.frame = req->buf;
    TAILQ_INSERT_TAIL(&s->reqs, req, link);
    s->ninflight++;
    pool = px_session_pool(s, &s->last);
    px_session_chain(s, req, &s->last);
    POOL_STAT_INC(px_listener_stats(s->l)->frames_in);
    if (n >= PX_BUDGET_STEP) {
        px_budget_charge(s, req, n);
    }
    rc = pool_submit(pool, &req->pr, src, n);
    if (rc != POOL_OK) {
        struct px_log_ctx ctx;
        char peer[PX_PEER_LEN];

        px_listener_log_ctx(s->l, s->fd, &ctx, peer);
        px_log_warn("session", &ctx,
                    "request failed (%s); closing the client: %s has no error reply",
                    pool_result_str[rc], cfg_codec_name(px_listener_cfg(s->l)->codec.type));
        POOL_STAT_INC(px_listener_stats(s->l)->upstream_failures);
        px_session_close(s, NULL);
        return -1;
    }
    px_session_arm_timer(s);
    return 0;
}

/*
 * Charge the request a resp frame of n bytes just became, if it went
 * upstream: the newest request, when it is new (not before) and not already
 * answered (locally, or failed at once).
 */
static void
charge_new(struct px_session *s, struct px_req *before, size_t n)
{
    struct px_req *req = TAILQ_LAST(&s->reqs, px_req_list);

    if (req != NULL && req != before && !req->done) {
        px_budget_charge(s, req, n);
    }
}

/* Cut and submit every complete frame while the client may have more in flight. */
static void
process(struct px_session *s)
{
    const struct cfg_listener *cfg = px_listener_cfg(s->l);

    while (s->ninflight < cfg->max_inflight && px_buf_len(s->in) > 0) {
        const char *why = NULL;
        ssize_t n = 0;

        if (cfg->codec.type == CFG_CODEC_RESP && s->fst.scanned == 0) {
            /* framed and indexed in one pass when it is simple and in one chunk */
            n = px_cmd_frame(px_worker_cmd(s->w), s->in, cfg->codec.max_frame,
                             PX_RESP_ELEMENTS_MAX);
        }
        if (n > 0) {
            struct px_req *before = TAILQ_LAST(&s->reqs, px_req_list);
            int rc = px_resp_request(s, (size_t)n, true);

            s->cut = true;
            if (rc == -1 || s->closing) {
                return;
            }
            if (rc == 0 && (size_t)n >= PX_BUDGET_STEP) {
                charge_new(s, before, (size_t)n);
            }
            if (rc == 1) {
                s->paused = true;
                px_session_arm_read(s);
                return;
            }
            if (s->paused) {
                break;
            }
            continue;
        }
        n = px_codec_frame(&cfg->codec, s->in, &s->fst, &why);

        if (n == PX_AGAIN) {
            break;
        }
        if (n < 0) {
            struct px_log_ctx ctx;
            char peer[PX_PEER_LEN];

            px_listener_log_ctx(s->l, s->fd, &ctx, peer);
            px_log_info("session", &ctx, "closing the client: %s", why);
            POOL_STAT_INC(px_listener_stats(s->l)->bad_frames);
            if (cfg->codec.type == CFG_CODEC_RESP) {
                px_resp_bad_frame(s, why); /* an error reply, then close */
            } else {
                px_session_close(s, NULL);
            }
            return;
        }
        if (cfg->codec.type == CFG_CODEC_RESP) {
            struct px_req *before = TAILQ_LAST(&s->reqs, px_req_list);
            int rc = px_resp_request(s, (size_t)n, false);

            s->cut = true;
            if (rc == -1 || s->closing) {
                return;
            }
            if (rc == 0 && (size_t)n >= PX_BUDGET_STEP) {
                charge_new(s, before, (size_t)n);
            }
            if (rc == 1) { /* waits until what is in flight is answered */
                s->paused = true;
                px_session_arm_read(s);
                return;
            }
            if (s->paused) {
                break;
            }
            continue;
        }
        s->cut = true;
        if (submit(s, (size_t)n) == -1 || s->closing) {
            return;
        }
    }
    if (s->ninflight >= cfg->max_inflight || px_buf_len(s->out) > OUT_HIGH) {
        s->paused = true;
    }
    px_session_arm_read(s);
}

/* Whether the partial frame at the end of s->in is past its deadline (timeouts.frame, min_rate). */
static bool
frame_late(const struct px_session *s, uint64_t now)
{
    const struct cfg_listener_timeouts *to = &px_listener_cfg(s->l)->timeouts;
    uint64_t allowed = to->frame_ms;

    if (to->frame_ms == 0 || s->frame_t0 == 0 || now <= s->frame_t0) {
        return false;
    }
    if (to->min_rate > 0) {
        allowed += (uint64_t)px_buf_len(s->in) * 1000 / to->min_rate;
    }
    return now - s->frame_t0 > allowed;
}

static void
frame_timeout(struct px_session *s, uint64_t now)
{
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];

    px_listener_log_ctx(s->l, s->fd, &ctx, peer);
    POOL_STAT_INC(px_listener_stats(s->l)->frame_timeouts);
    px_log_info("session", &ctx,
                "frame timeout: %zu bytes of a frame in %llu ms (timeouts.frame, min_rate); "
                "closing the client",
                px_buf_len(s->in), (unsigned long long)(now - s->frame_t0));
    px_session_close(s, NULL);
}

/*
 * The read event's deadline passed with a partial frame. It is armed with
 * the shorter of timeouts.read and timeouts.frame, and EV_PERSIST restarts it
 * on every read: whichever deadline passed, if any, is found here, and the
 * event waits again for the nearer one otherwise.
 */
static bool
partial_timed_out(struct px_session *s)
{
    const struct cfg_listener_timeouts *to = &px_listener_cfg(s->l)->timeouts;
    uint64_t now = px_now_ms(), quiet = now - s->last_rd, next = UINT64_MAX;
    struct timeval tv;

    if (frame_late(s, now)) {
        frame_timeout(s, now);
        return true;
    }
    if (to->read_ms > 0 && (quiet >= to->read_ms || s->last_rd == 0)) {
        return false; /* a read timeout */
    }
    if (to->read_ms > 0) {
        next = to->read_ms - quiet;
    }
    if (to->frame_ms > 0 && s->frame_t0 != 0) {
        uint64_t due = s->frame_t0 + to->frame_ms +
                       (to->min_rate > 0 ? (uint64_t)px_buf_len(s->in) * 1000 / to->min_rate : 0);

        if (due - now < next) {
            next = due - now;
        }
    }
    tv = px_tv_ms(next > 0 && next != UINT64_MAX ? next : 1);
    if (event_add(&s->rev, &tv) == -1) {
        px_session_close(s, "cannot arm the read event");
    }
    return true;
}

static void
on_timeout(struct px_session *s, bool request_timer)
{
    struct px_listener_stats *st = px_listener_stats(s->l);
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];

    if (!request_timer && s->rev_mode == REV_PARTIAL && partial_timed_out(s)) {
        return;
    }
    px_listener_log_ctx(s->l, s->fd, &ctx, peer);
    if (request_timer) {
        struct px_req *head = TAILQ_FIRST(&s->reqs);

        if (head == NULL || head->done ||
            px_now_ms() < head->t0 + px_listener_cfg(s->l)->timeouts.request_ms) {
            px_session_arm_timer(s);
            return;
        }
        POOL_STAT_INC(st->request_timeouts);
        if (s->resp != NULL && px_resp_timed_out(s, head) == 0) {
            px_log_info("session", &ctx, "request timeout; answered with an error");
            px_session_arm_timer(s); /* for the next oldest */
            return;
        }
        px_log_info("session", &ctx, "request timeout; closing the client");
    } else if (s->rev_mode == REV_PARTIAL) {
        POOL_STAT_INC(st->read_timeouts);
        px_log_info("session", &ctx, "read timeout with a partial frame; closing the client");
    } else if (s->rev_mode == REV_IDLE && s->ninflight == 0 &&
               (s->resp == NULL || !px_resp_idle_exempt(s))) {
        POOL_STAT_INC(st->idle_timeouts);
        px_log_debug("session", &ctx, "idle timeout");
    } else {
        return; /* waiting for replies is not idle; the request deadline watches that */
    }
    px_session_close(s, NULL);
}

static void
on_request_timer(evutil_socket_t fd, short what, void *arg)
{
    struct px_session *s = arg;

    (void)fd;
    (void)what;
    if (!s->closing) {
        on_timeout(s, true);
    }
}

/* After a read: the client's FIN, the partial frame's deadline, the budget. */
static void
after_read(struct px_session *s)
{
    size_t len = px_buf_len(s->in);

    if (s->eof) {
        if (len > 0 && !s->paused) {
            /* Whole frames were all cut; what is left is a frame that will never end. */
            struct px_log_ctx ctx;
            char peer[PX_PEER_LEN];

            px_listener_log_ctx(s->l, s->fd, &ctx, peer);
            POOL_STAT_INC(px_listener_stats(s->l)->partial_drops);
            px_log_info("session", &ctx,
                        "client half-closed with a partial frame; %zu bytes dropped", len);
            drop_input(s);
        }
        px_budget_account(s);
        if (px_buf_len(s->in) == 0 && s->ninflight == 0 && px_buf_len(s->out) == 0) {
            px_session_close(s, "client closed");
        }
        return;
    }
    if (len == 0 || s->paused) {
        s->frame_t0 = 0; /* nothing partial, or whole frames waiting: no frame deadline */
    } else {
        uint64_t now = px_now_ms();

        if (s->cut || s->frame_t0 == 0) {
            s->frame_t0 = now; /* a new frame began in this read */
        } else if (frame_late(s, now)) {
            frame_timeout(s, now);
            return;
        }
        s->last_rd = now;
    }
    if (s->cut && s->held != 0) {
        px_budget_frame_done(s); /* another holder's turn */
    }
    s->cut = false;
    if (len != s->held) {
        px_budget_account(s);
        if (s->held > 0 && !s->starved && px_budget_check(s) == -1) {
            return;
        }
    }
}

static void
on_client_read(evutil_socket_t fd, short what, void *arg)
{
    struct px_session *s = arg;
    ssize_t n;

    if (s->closing) {
        return;
    }
    if (s->in == NULL && (s->in = evbuffer_new()) == NULL) {
        px_session_close(s, "out of memory");
        return;
    }
    if (s->eof || s->starved) {
        n = -1; /* only cut what was read: the client finished, or the budget is full */
        errno = EAGAIN;
        what &= ~EV_TIMEOUT;
    } else {
        /* On a deadline, look before acting: a late loop turn reports it over waiting bytes. */
        n = pool_io_read(s->in, fd, READ_CHUNK);
    }
    if (n > 0) {
        POOL_STAT_ADD(px_listener_stats(s->l)->bytes_in, (uint64_t)n);
    } else if (n == 0 && waits_unbounded(s)) {
        px_session_close(s, "client closed"); /* as Redis: a client that leaves is unblocked */
        return;
    } else if (n == 0) {
        s->eof = true; /* half-close: answer every whole frame sent, then close */
        s->hup = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        px_session_close(s, strerror(errno));
        return;
    } else if (what & EV_TIMEOUT) {
        on_timeout(s, false);
        return;
    }
    process(s);
    if (!s->closing) {
        after_read(s);
    }
}

void
px_session_start(struct px_listener *l, int fd)
{
    struct px_worker *w = px_listener_worker(l);
    struct px_session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        close(fd);
        px_listener_client_gone(l);
        return;
    }
    s->l = l;
    s->w = w;
    s->fd = fd;
    TAILQ_INIT(&s->reqs);
    if (event_assign(&s->rev, px_worker_base(w), fd, EV_READ | EV_PERSIST, on_client_read, s) ==
        -1) {
        close(fd);
        px_listener_client_gone(l);
        px_session_free(s);
        return;
    }
    s->head.close = client_close;
    s->head.drain = client_drain;
    s->head.free = client_free;
    px_worker_add_client(w, &s->head);
    px_session_arm_read(s);
}
