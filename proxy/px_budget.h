#ifndef PX_BUDGET_H
#define PX_BUDGET_H

/*
 * The process-wide budget for client bytes held in partly received frames
 * (buffers.max), shared by every worker through atomics. A session reports
 * what its input buffer holds in 64 KiB steps, never per read: clients with
 * small frames never touch the shared counter. Past the budget, the sessions
 * holding more than an even share stop being read until there is room, but
 * one at a time goes on to finish its frame, so held frames always complete;
 * a frame that cannot fit fails its client (resp: -ERR, then close).
 */

#include <stddef.h>
#include <stdint.h>

/* Buffers and requests under this size are not counted. */
#define PX_BUDGET_STEP ((size_t)64 << 10)

struct cfg;
struct px_req;
struct px_session;

/* From the main thread: buffers.max of cfg (0: a quarter of memory or of the cgroup's limit). */
void px_budget_set(const struct cfg *cfg);
uint64_t px_budget_max(void);
/* Bytes counted now, for /metrics. */
int64_t px_budget_used(void);

/* Count what s->in holds now, in steps (nothing while it stays under a step). */
void px_budget_account(struct px_session *s);
/* s finished a frame while holding: another holder may take its turn. */
void px_budget_frame_done(struct px_session *s);
/* After s->in grew past a step: stop s or fail it if over the budget. -1 if it stopped or closed.
 */
int px_budget_check(struct px_session *s);
/*
 * req (of s, may be NULL) carries a whole frame of n bytes upstream: it
 * counts until it is answered or gone (px_budget_uncharge), as its bytes may
 * wait in an upstream connection's buffer meanwhile.
 */
void px_budget_charge(struct px_session *s, struct px_req *req, size_t n);
void px_budget_uncharge(struct px_req *req);
/*
 * req leaves its session while still charged (its reply will be read and
 * dropped): its session stops counting it, the process counts it until
 * px_budget_uncharge. Sets req->s to NULL.
 */
void px_budget_orphan(struct px_req *req);

#endif
