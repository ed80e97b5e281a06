#include "px_budget.h"
#include "px_session_internal.h"
#include "config/cfg.h"
#include "pool/pool.h"
#include "proxy/px_listener.h"
#include "proxy/px_log.h"
#include "proxy/px_session.h"
#include "proxy/px_worker.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---- the shared count ---- */

static _Atomic uint64_t budget_max = UINT64_MAX;
static _Atomic int64_t budget_used;
static _Atomic unsigned budget_holders;
static _Atomic(const void *) budget_token; /* who may go on over the budget */

/* A cgroup's memory limit in bytes, from the file at path; 0: none or unreadable. */
static uint64_t
cgroup_limit(const char *path)
{
    char text[32] = "";
    FILE *f = fopen(path, "r");
    unsigned long long v;
    char *end;

    if (f == NULL) {
        return 0;
    }
    if (fgets(text, sizeof(text), f) == NULL) {
        text[0] = '\0';
    }
    fclose(f);
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || end == text) {
        return 0; /* "max": no limit */
    }
    return (uint64_t)v;
}

void
px_budget_set(const struct cfg *cfg)
{
    uint64_t max = cfg->buffers.max;

    if (max == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        uint64_t mem = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 4ull << 30;
        uint64_t lim = cgroup_limit("/sys/fs/cgroup/memory.max");

        if (lim == 0) {
            lim = cgroup_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        }
        if (lim != 0 && lim < mem) {
            mem = lim;
        }
        max = mem / 4;
    }
    atomic_store_explicit(&budget_max, max, memory_order_relaxed);
}

uint64_t
px_budget_max(void)
{
    return atomic_load_explicit(&budget_max, memory_order_relaxed);
}

int64_t
px_budget_used(void)
{
    return atomic_load_explicit(&budget_used, memory_order_relaxed);
}

/* Sessions holding bytes now (at least 1, asked by one that does). */
static unsigned
holders(void)
{
    unsigned n = atomic_load_explicit(&budget_holders, memory_order_relaxed);

    return n > 0 ? n : 1;
}

/* delta bytes, and dn (+1, -1) as a session starts or stops holding any. */
static void
add(int64_t delta, int dn)
{
    atomic_fetch_add_explicit(&budget_used, delta, memory_order_relaxed);
    if (dn != 0) {
        atomic_fetch_add_explicit(&budget_holders, (unsigned)dn, memory_order_relaxed);
    }
}

/*
 * Over the budget, one holder at a time (owner: its session) may go on
 * reading until its frame is whole, so that held frames always finish: true
 * if owner has that turn now (taken if free).
 */
static bool
claim(const void *owner)
{
    const void *none = NULL;

    return atomic_compare_exchange_strong(&budget_token, &none, owner) || none == owner;
}

static void
release(const void *owner)
{
    const void *mine = owner;

    /* a load first: the common case (not the holder) writes nothing shared */
    if (atomic_load_explicit(&budget_token, memory_order_relaxed) == owner) {
        (void)atomic_compare_exchange_strong(&budget_token, &mine, NULL);
    }
}

/* ---- a session's share ---- */

/*
 * What s->in holds counts in the process-wide budget (buffers.max) once it
 * reaches BUDGET_STEP, and is reported again only when it moved by a step
 * (or to nothing): frames smaller than a step cost no shared write at all.
 */
#define BUDGET_STEP PX_BUDGET_STEP
#define BUDGET_POLL_MS 20
#define BUDGET_WAIT_MS 5000 /* longest wait for room when timeouts.frame is 0 */

void
px_budget_account(struct px_session *s)
{
    size_t len = px_buf_len(s->in);
    size_t want = len >= BUDGET_STEP ? len : 0;

    if (want == 0) {
        release(s); /* its frame is whole or gone: the next may go on (even if nothing was
                       counted: it may have claimed the turn with its frames all cut) */
        if (s->starved) {
            /* stopped for what it no longer holds: it reads again, nothing to reject */
            s->starved = false;
            if (s->bev != NULL) {
                event_del(s->bev);
            }
            px_session_arm_read(s);
        }
    }
    if (want == s->held || (want != 0 && s->held != 0 && want < s->held + BUDGET_STEP &&
                            s->held < want + BUDGET_STEP)) {
        return;
    }
    add((int64_t)want - (int64_t)s->held, (want != 0) - (s->held != 0));
    s->held = want;
}

void
px_budget_frame_done(struct px_session *s)
{
    release(s);
}

/*
 * Whether s may take the turn to go on over the budget: only to finish a
 * frame it holds and is reading (not paused for its replies or a blocking
 * command), and with nothing of its own still charged upstream.
 */
static bool
may_claim(struct px_session *s)
{
    return s->sent == 0 && s->held > 0 && !s->paused && claim(s);
}

/*
 * Fail s for the budget: a resp client gets an error reply in the place of
 * the frame (after the replies it is owed), the others are closed.
 */
static void
budget_reject(struct px_session *s, const char *why)
{
    struct px_log_ctx ctx;
    char peer[PX_PEER_LEN];

    px_listener_log_ctx(s->l, s->fd, &ctx, peer);
    POOL_STAT_INC(px_listener_stats(s->l)->budget_rejections);
    px_log_info("session", &ctx,
                "%s (%zu bytes of a frame held, buffers.max %llu); closing the client", why,
                px_buf_len(s->in), (unsigned long long)px_budget_max());
    if (px_listener_cfg(s->l)->codec.type == CFG_CODEC_RESP) {
        struct px_req *req = px_session_req_new(s);

        evbuffer_add_printf(req->buf, "-ERR sluice: %s\r\n", why);
        req->done = true;
        if (px_session_ensure_out(s) == 0) {
            px_session_deliver(s, false);
            px_session_finish(s);
        }
        return;
    }
    px_session_close(s, NULL);
}

/*
 * The stop ran from starved_t0 to now: the frame deadline does not run
 * meanwhile (only the part after the frame began counts, never past now),
 * and the stop counts from now on.
 */
static void
stop_clock(struct px_session *s, uint64_t now)
{
    if (s->frame_t0 != 0) {
        uint64_t from = s->frame_t0 > s->starved_t0 ? s->frame_t0 : s->starved_t0;

        s->frame_t0 += now > from ? now - from : 0;
        if (s->frame_t0 > now) {
            s->frame_t0 = now;
        }
    }
    s->starved_t0 = now;
}

static void
on_budget_poll(evutil_socket_t fd, short what, void *arg)
{
    struct px_session *s = arg;
    uint64_t max = px_budget_max(), wait = px_listener_cfg(s->l)->timeouts.frame_ms;
    uint64_t now = px_now_ms();
    struct timeval tv = px_tv_ms(BUDGET_POLL_MS);

    (void)fd;
    (void)what;
    if (s->closing || !s->starved) {
        return;
    }
    /* room again (it stops again if that is gone), or its turn to finish over the budget */
    if (px_budget_used() <= (int64_t)(max - max / 8) || may_claim(s)) {
        stop_clock(s, now);
        s->starved = false;
        px_session_arm_read(s);
        if (!s->closing && !s->paused) {
            event_active(&s->rev, EV_READ, 0);
        }
        return;
    }
    if (s->paused) {
        stop_clock(s, now); /* waiting for its replies, not for room: the wait starts after */
    } else if (now - s->starved_t0 > (wait > 0 ? wait : BUDGET_WAIT_MS)) {
        s->starved = false;
        budget_reject(s, "no room for the request in the buffer budget");
        return;
    }
    if (event_add(s->bev, &tv) == -1) {
        px_session_close(s, "cannot arm the budget timer");
    }
}

/*
 * Over the budget, the clients holding more than an even share of it stop
 * being read until it has room again, but one (claim) that
 * goes on to finish its frame; a frame known not to fit in the whole budget
 * fails at once. Return -1 if the session closed or stopped.
 */
int
px_budget_check(struct px_session *s)
{
    uint64_t max = px_budget_max();
    struct timeval tv = px_tv_ms(BUDGET_POLL_MS);

    if (px_budget_used() <= (int64_t)max) {
        return 0;
    }
    if (px_listener_cfg(s->l)->codec.type == CFG_CODEC_RESP && s->fst.scanned > max) {
        budget_reject(s, "request larger than the buffer budget");
        return -1;
    }
    if (s->held + s->sent <= max / holders() || may_claim(s)) {
        return 0; /* not among the largest, or its turn to finish over the budget */
    }
    if (s->bev == NULL) {
        s->bev = evtimer_new(px_worker_base(s->w), on_budget_poll, s);
        if (s->bev == NULL) {
            px_session_close(s, "cannot create the budget timer");
            return -1;
        }
    }
    POOL_STAT_INC(px_listener_stats(s->l)->budget_stops);
    s->starved = true;
    s->starved_t0 = px_now_ms();
    px_session_arm_read(s);
    if (event_add(s->bev, &tv) == -1) {
        px_session_close(s, "cannot arm the budget timer");
    }
    return -1;
}

void
px_budget_charge(struct px_session *s, struct px_req *req, size_t n)
{
    if (req == NULL || req->charged != 0 || n < BUDGET_STEP) {
        return;
    }
    add((int64_t)n, 0);
    req->charged = (uint32_t)n;
    s->sent += n;
}

void
px_budget_uncharge(struct px_req *req)
{
    add(-(int64_t)req->charged, 0);
    if (req->s != NULL) {
        req->s->sent -= req->charged;
    }
    req->charged = 0;
}

void
px_budget_orphan(struct px_req *req)
{
    if (req->s != NULL && req->charged != 0) {
        req->s->sent -= req->charged; /* the process still counts it until it is released */
    }
    req->s = NULL;
}
