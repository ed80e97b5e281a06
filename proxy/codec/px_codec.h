#ifndef PX_CODEC_H
#define PX_CODEC_H

/*
 * Codecs find frame boundaries in a byte stream. They own nothing and never
 * remove or copy payload: px_codec_frame() only says how long the first frame
 * in the buffer is, and the caller moves that many bytes with
 * evbuffer_remove_buffer(). A frame that would exceed max_frame is rejected as
 * soon as its header (or, for line, the bytes buffered so far) says so.
 */

#include "config/cfg.h"

#include <stdint.h>
#include <sys/types.h>

struct evbuffer;

#define PX_ERROR (-1) /* the stream is malformed: close the connection */
#define PX_AGAIN (-2) /* no complete frame yet: read more */

/* Per-connection decoder state; zero it for a new stream and after each frame. */
struct px_frame_state {
    /* line: bytes already searched for the delimiter; resp: least bytes the frame needs */
    size_t scanned;
    uint32_t at;   /* resp: where the next value of the frame starts (0: parse from the start) */
    uint32_t owed; /* resp: values the frame still needs there */
};

/*
 * The length in bytes (> 0) of the complete frame at the start of in,
 * PX_AGAIN, or PX_ERROR with *why pointing at a constant reason. raw has no
 * frames: it returns every buffered byte (PX_AGAIN when there is none).
 * line fails once max_frame bytes are buffered with no delimiter ending
 * within them (no later line could fit), and resumes its search where the
 * last call stopped; it zeroes st itself when it returns a frame. length
 * fails as soon as the header is buffered if value + adjust is negative or
 * overflows, or the frame would exceed max_frame. resp frames one RESP2/RESP3
 * value, nested, or an inline command line (px_codec_resp.c says how). http is
 * not implemented yet: it always fails.
 */
ssize_t px_codec_frame(const struct cfg_codec *codec, struct evbuffer *in,
                       struct px_frame_state *st, const char **why);

/*
 * Re-frame one whole frame of codec from (its bytes in frame, which is
 * drained) as a frame of codec to, appended to out. line and length re-frame
 * into each other: the payload is the line without its delimiter, or what
 * follows the length field. Return 0, or -1 with *why (a line payload that
 * contains the delimiter, a payload too long for the length field or for
 * to->max_frame).
 *
 * Codecs with the same framing (type, delimiter, length field layout) move the
 * bytes unchanged, still within to->max_frame for line and length; line to
 * line with another delimiter and length to length with another layout are
 * re-framed through the payload. A line payload is refused if the delimiter
 * would occur in payload + delimiter before its end ("ab\r\n" + "\r\n\r\n").
 * Other pairs fail ("cannot re-frame"). Nothing is appended on failure.
 */
int px_codec_reframe(const struct cfg_codec *from, const struct cfg_codec *to,
                     struct evbuffer *frame, struct evbuffer *out, const char **why);

#endif
