/*
 * Codecs: where the first frame in a buffer ends (raw, line, length; resp is
 * in px_codec_resp.c), and re-framing one frame's payload between line and
 * length.
 *
 * Nothing here copies payload. line searches the buffer in place, length
 * copies out only its length field, and re-framing moves payload between
 * evbuffers; only a length header is built in memory.
 */
#include "proxy/codec/px_codec.h"

#include "proxy/codec/px_codec_resp.h"

#include <event2/buffer.h>

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define DELIMITER_MAX 8 /* bytes, as cfg_schema.c documents */
#define FIELD_MAX 8     /* bytes in the widest length field */

enum reason {
    R_UNKNOWN_CODEC,
    R_NOT_IMPLEMENTED,
    R_BAD_DELIMITER,
    R_BAD_FIELD_SIZE,
    R_LINE_TOO_LONG,
    R_FRAME_TOO_LONG,
    R_NEGATIVE_LENGTH,
    R_LENGTH_OVERFLOW,
    R_SHORT_FRAME,
    R_DELIMITER_IN_PAYLOAD,
    R_FIELD_TOO_SMALL,
    R_CANNOT_REFRAME,
    R_BUFFER,
};

static const char *const reasons[] = {
    [R_UNKNOWN_CODEC] = "unknown codec",
    [R_NOT_IMPLEMENTED] = "codec not implemented",
    [R_BAD_DELIMITER] = "delimiter must be 1 to 8 bytes",
    [R_BAD_FIELD_SIZE] = "length field must be 1, 2, 3, 4 or 8 bytes",
    [R_LINE_TOO_LONG] = "line longer than max_frame",
    [R_FRAME_TOO_LONG] = "frame longer than max_frame",
    [R_NEGATIVE_LENGTH] = "negative frame length",
    [R_LENGTH_OVERFLOW] = "frame length overflows",
    [R_SHORT_FRAME] = "frame shorter than its header",
    [R_DELIMITER_IN_PAYLOAD] = "payload contains the delimiter",
    [R_FIELD_TOO_SMALL] = "payload too long for the length field",
    [R_CANNOT_REFRAME] = "cannot re-frame",
    [R_BUFFER] = "evbuffer operation failed",
};

/* Set *why and return PX_ERROR, which is also px_codec_reframe()'s -1. */
static int
fail(const char **why, enum reason r)
{
    *why = reasons[r];
    return PX_ERROR;
}

static bool
valid_delimiter(const struct cfg_codec *codec)
{
    return codec->delimiter.len >= 1 && codec->delimiter.len <= DELIMITER_MAX;
}

static bool
valid_field_size(const struct cfg_codec *codec)
{
    uint32_t n = codec->field_size;

    return n == 1 || n == 2 || n == 3 || n == 4 || n == 8;
}

static uint64_t
decode_uint(const uint8_t *p, size_t n, enum cfg_byte_order order)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v = v << 8 | p[order == CFG_BIG_ENDIAN ? i : n - 1 - i];
    }
    return v;
}

static void
encode_uint(uint8_t *p, size_t n, enum cfg_byte_order order, uint64_t v)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[order == CFG_BIG_ENDIAN ? n - 1 - i : i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Where in [from, to) the delimiter first fits whole: its offset, or -1. */
static ssize_t
find_delimiter(const struct cfg_codec *codec, struct evbuffer *buf, size_t from, size_t to)
{
    struct evbuffer_ptr start, end, hit;

    if (from + codec->delimiter.len > to ||
        evbuffer_ptr_set(buf, &start, from, EVBUFFER_PTR_SET) == -1 ||
        evbuffer_ptr_set(buf, &end, to, EVBUFFER_PTR_SET) == -1) {
        return -1;
    }
    hit = evbuffer_search_range(buf, codec->delimiter.ptr, codec->delimiter.len, &start, &end);
    return hit.pos;
}

/*
 * line: up to and including the first delimiter. st->scanned bytes were
 * searched before, so only the last delimiter.len - 1 of them are searched
 * again (a delimiter split across reads); and no further than max_frame,
 * where a line could still end.
 */
static ssize_t
frame_line(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
           const char **why)
{
    size_t len = evbuffer_get_length(in);
    size_t limit = len < codec->max_frame ? len : (size_t)codec->max_frame;
    size_t from = st->scanned <= len ? st->scanned : 0;
    size_t keep = codec->delimiter.len - 1;
    ssize_t at;

    if (!valid_delimiter(codec)) {
        return fail(why, R_BAD_DELIMITER);
    }
    at = find_delimiter(codec, in, from > keep ? from - keep : 0, limit);
    if (at != -1) {
        st->scanned = 0;
        return at + (ssize_t)codec->delimiter.len;
    }
    if (len >= codec->max_frame) {
        return fail(why, R_LINE_TOO_LONG); /* any line ending later would be longer */
    }
    st->scanned = len;
    return PX_AGAIN;
}

/* field_offset + field_size + value + adjust, checked for sign, overflow and max_frame. */
static ssize_t
length_total(const struct cfg_codec *codec, uint64_t value, const char **why)
{
    uint64_t header = (uint64_t)codec->field_offset + codec->field_size;
    uint64_t total;
    int64_t body;

    if (value > INT64_MAX || (codec->adjust > 0 && (int64_t)value > INT64_MAX - codec->adjust)) {
        return fail(why, R_LENGTH_OVERFLOW);
    }
    body = (int64_t)value + codec->adjust;
    if (body < 0) {
        return fail(why, R_NEGATIVE_LENGTH); /* the frame would end inside its header */
    }
    total = header + (uint64_t)body; /* header < 2^33 and body <= INT64_MAX: no wrap */
    if (total > codec->max_frame || total > SSIZE_MAX) {
        return fail(why, R_FRAME_TOO_LONG);
    }
    return (ssize_t)total;
}

/* length: decide from the header alone, copying out just the length field. */
static ssize_t
frame_length(const struct cfg_codec *codec, struct evbuffer *in, const char **why)
{
    size_t len = evbuffer_get_length(in);
    size_t need = (size_t)codec->field_offset + codec->field_size;
    uint8_t field[FIELD_MAX];
    const uint8_t *p = field;
    struct evbuffer_iovec first;
    struct evbuffer_ptr at;
    ssize_t total;

    if (!valid_field_size(codec)) {
        return fail(why, R_BAD_FIELD_SIZE);
    }
    if (len < need) {
        return PX_AGAIN;
    }
    if (evbuffer_peek(in, -1, NULL, &first, 1) >= 1 && first.iov_len >= need) {
        p = (const uint8_t *)first.iov_base + codec->field_offset; /* the common case: in place */
    } else if (evbuffer_ptr_set(in, &at, codec->field_offset, EVBUFFER_PTR_SET) == -1 ||
               evbuffer_copyout_from(in, &at, field, codec->field_size) != codec->field_size) {
        return fail(why, R_BUFFER);
    }
    total = length_total(codec, decode_uint(p, codec->field_size, codec->byte_order), why);
    if (total < 0 || (size_t)total <= len) {
        return total;
    }
    return PX_AGAIN;
}

ssize_t
px_codec_frame(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
               const char **why)
{
    size_t len;

    switch (codec->type) {
    case CFG_CODEC_RAW:
        len = evbuffer_get_length(in);
        return len > 0 ? (ssize_t)len : PX_AGAIN;
    case CFG_CODEC_LINE:
        return frame_line(codec, in, st, why);
    case CFG_CODEC_LENGTH:
        return frame_length(codec, in, why);
    case CFG_CODEC_RESP:
        return px_resp_frame(codec, in, st, why);
    case CFG_CODEC_HTTP:
        return fail(why, R_NOT_IMPLEMENTED);
    }
    return fail(why, R_UNKNOWN_CODEC);
}

/* ---- re-framing ---- */

/* Whether frames of a are already frames of b. */
static bool
same_framing(const struct cfg_codec *a, const struct cfg_codec *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case CFG_CODEC_LINE:
        return a->delimiter.len == b->delimiter.len &&
               (a->delimiter.len == 0 ||
                memcmp(a->delimiter.ptr, b->delimiter.ptr, a->delimiter.len) == 0);
    case CFG_CODEC_LENGTH:
        return a->field_offset == b->field_offset && a->field_size == b->field_size &&
               a->byte_order == b->byte_order && a->adjust == b->adjust;
    default:
        return true;
    }
}

static bool
has_payload(const struct cfg_codec *codec)
{
    return codec->type == CFG_CODEC_LINE || codec->type == CFG_CODEC_LENGTH;
}

/* Frames of the same framing move as they are, within to's max_frame when it has one. */
static int
move_frame(const struct cfg_codec *to, struct evbuffer *frame, struct evbuffer *out,
           const char **why)
{
    if (has_payload(to) && evbuffer_get_length(frame) > to->max_frame) {
        return fail(why, R_FRAME_TOO_LONG);
    }
    if (evbuffer_add_buffer(out, frame) == -1) {
        return fail(why, R_BUFFER);
    }
    return 0;
}

/* Drain what precedes the payload of a whole frame; *plen: the payload's length. */
static int
strip(const struct cfg_codec *from, struct evbuffer *frame, size_t *plen, const char **why)
{
    size_t len = evbuffer_get_length(frame);
    size_t header = 0, trailer = 0;

    if (from->type == CFG_CODEC_LINE) {
        trailer = from->delimiter.len; /* left in place, drained with the rest */
    } else {
        header = (size_t)from->field_offset + from->field_size;
    }
    if (len < header + trailer) {
        return fail(why, R_SHORT_FRAME);
    }
    if (evbuffer_drain(frame, header) == -1) {
        return fail(why, R_BUFFER);
    }
    *plen = len - header - trailer;
    return 0;
}

/* Move the first n bytes of frame to out. */
static int
move(struct evbuffer *frame, struct evbuffer *out, size_t n, const char **why)
{
    if (n > INT_MAX) {
        return fail(why, R_FRAME_TOO_LONG); /* evbuffer_remove_buffer() returns an int */
    }
    if (n > 0 && evbuffer_remove_buffer(frame, out, n) != (int)n) {
        return fail(why, R_BUFFER);
    }
    return 0;
}

/*
 * Fail unless the delimiter occurs in payload + delimiter only at its end: not
 * in the payload, nor across the seam ("abc\r\n" + "\r\n\r\n" ends early).
 */
static int
check_payload(const struct cfg_codec *to, struct evbuffer *frame, size_t plen, const char **why)
{
    const char *d = to->delimiter.ptr;
    size_t dlen = to->delimiter.len;
    size_t k = plen < dlen - 1 ? plen : dlen - 1; /* payload bytes a seam match can start in */
    char seam[2 * DELIMITER_MAX];
    struct evbuffer_ptr at;
    size_t i;

    if (find_delimiter(to, frame, 0, plen) != -1) {
        return fail(why, R_DELIMITER_IN_PAYLOAD);
    }
    if (evbuffer_ptr_set(frame, &at, plen - k, EVBUFFER_PTR_SET) == -1 ||
        evbuffer_copyout_from(frame, &at, seam, k) != (ev_ssize_t)k) {
        return fail(why, R_BUFFER);
    }
    memcpy(seam + k, d, dlen);
    for (i = 0; i < k; i++) {
        if (memcmp(seam + i, d, dlen) == 0) {
            return fail(why, R_DELIMITER_IN_PAYLOAD);
        }
    }
    return 0;
}

/* out += payload + delimiter, the payload being the first plen bytes of frame. */
static int
emit_line(const struct cfg_codec *to, struct evbuffer *frame, size_t plen, struct evbuffer *out,
          const char **why)
{
    if (!valid_delimiter(to)) {
        return fail(why, R_BAD_DELIMITER);
    }
    if (plen > to->max_frame || to->max_frame - plen < to->delimiter.len) {
        return fail(why, R_FRAME_TOO_LONG);
    }
    if (check_payload(to, frame, plen, why) == -1) {
        return -1;
    }
    if (move(frame, out, plen, why) == -1) {
        return -1;
    }
    if (evbuffer_add(out, to->delimiter.ptr, to->delimiter.len) == -1) {
        return fail(why, R_BUFFER);
    }
    return 0;
}

/* The value a length field holds for a payload of plen bytes, or -1 with *why. */
static int
field_value(const struct cfg_codec *to, size_t plen, uint64_t *value, const char **why)
{
    uint64_t total = (uint64_t)to->field_offset + to->field_size + plen;
    int64_t v;

    if (plen > INT_MAX || total > to->max_frame) {
        return fail(why, R_FRAME_TOO_LONG); /* checked before anything is appended */
    }
    if (to->adjust < 0 && (int64_t)plen > INT64_MAX + to->adjust) {
        return fail(why, R_LENGTH_OVERFLOW);
    }
    v = (int64_t)plen - to->adjust;
    if (v < 0) {
        return fail(why, R_NEGATIVE_LENGTH);
    }
    if (to->field_size < FIELD_MAX && (uint64_t)v >> (8 * to->field_size) != 0) {
        return fail(why, R_FIELD_TOO_SMALL);
    }
    *value = (uint64_t)v;
    return 0;
}

/* out += field_offset zero bytes, the length field, then the first plen bytes of frame. */
static int
emit_length(const struct cfg_codec *to, struct evbuffer *frame, size_t plen, struct evbuffer *out,
            const char **why)
{
    size_t header = (size_t)to->field_offset + to->field_size;
    struct evbuffer_iovec v;
    uint64_t value;

    if (!valid_field_size(to)) {
        return fail(why, R_BAD_FIELD_SIZE);
    }
    if (field_value(to, plen, &value, why) == -1) {
        return -1;
    }
    if (evbuffer_reserve_space(out, (ev_ssize_t)header, &v, 1) != 1) {
        return fail(why, R_BUFFER);
    }
    memset(v.iov_base, 0, header);
    encode_uint((uint8_t *)v.iov_base + to->field_offset, to->field_size, to->byte_order, value);
    v.iov_len = header;
    if (evbuffer_commit_space(out, &v, 1) == -1) {
        return fail(why, R_BUFFER);
    }
    return move(frame, out, plen, why);
}

int
px_codec_reframe(const struct cfg_codec *from, const struct cfg_codec *to, struct evbuffer *frame,
                 struct evbuffer *out, const char **why)
{
    size_t plen;
    int rc;

    if (same_framing(from, to)) {
        rc = move_frame(to, frame, out, why);
    } else if (!has_payload(from) || !has_payload(to)) {
        rc = fail(why, R_CANNOT_REFRAME);
    } else if ((rc = strip(from, frame, &plen, why)) == 0) {
        rc = to->type == CFG_CODEC_LINE ? emit_line(to, frame, plen, out, why)
                                        : emit_length(to, frame, plen, out, why);
    }
    evbuffer_drain(frame, evbuffer_get_length(frame));
    return rc;
}
