#ifndef PX_RESP_SHARD_H
#define PX_RESP_SHARD_H

/* Redis keys over a hash cluster (px_resp_shard.c says how). */

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct px_cmd;
struct px_cmd_info;
struct px_req;
struct px_session;

/* Route a request on a sharded cluster. Return 0 (it was taken or answered). */
int px_resp_route_sharded(struct px_session *s, const struct px_cmd *cmd,
                          const struct px_cmd_info *info, size_t n);
/* The shard (pool_req.shard) of key argument i. */
uint32_t px_resp_shard_of(struct px_session *s, const struct px_cmd *cmd, size_t i);
/* The reply to a fragment of a split command (the first len bytes of in). */
void px_resp_fragment(struct px_req *frag, struct evbuffer *in, size_t len);
/* A fragment has its reply in its buf (an error made here, or the server's). */
void px_resp_fragment_done(struct px_req *frag);
/* The same, for an error made here as it failed upstream (px_resp_error_into). */
void px_resp_fragment_failed(struct px_req *frag);
/* At close: withdraw a split command's fragments (orphaning those in flight). */
void px_resp_drop_fragments(struct px_req *parent);

#endif
