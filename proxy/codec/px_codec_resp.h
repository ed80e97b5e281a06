#ifndef PX_CODEC_RESP_H
#define PX_CODEC_RESP_H

/*
 * Private to proxy/codec/: the resp codec behind px_codec_frame(). The length
 * of the first whole RESP2/RESP3 value (or inline command line) in in,
 * PX_AGAIN or PX_ERROR with *why. st->scanned is a lower bound on the bytes
 * the frame needs; it is zeroed when a frame is returned.
 */

#include <stdint.h>
#include <sys/types.h>

/* Most elements an aggregate header may announce (shared with px_cmd_frame()). */
#define PX_RESP_ELEMENTS_MAX ((uint64_t)1 << 20)

struct cfg_codec;
struct evbuffer;
struct px_frame_state;

ssize_t px_resp_frame(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
                      const char **why);

#endif
