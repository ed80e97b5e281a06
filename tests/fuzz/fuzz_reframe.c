/*
 * libFuzzer target: re-framing between line and length. Input: two codec
 * descriptions, then a stream whose first frame under the first codec is
 * re-framed into the second; the result is checked byte for byte against a
 * reference, and must be exactly one frame of the second codec.
 */
#include "tests/fuzz/fuzz_feed.h"

#include "proxy/codec/px_codec.h"

#include <event2/buffer.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

#define OUT_MAX 4096 /* max_frame stays below it */

static const uint32_t field_sizes[] = {1, 2, 3, 4, 8, 1, 2, 4};

/* A line or length codec; delimiters from a small alphabet so that they overlap. */
static void
read_codec(struct fuzz_input *in, struct cfg_codec *c, char *delimiter)
{
    uint8_t mode = fuzz_byte(in);
    size_t i, least;

    memset(c, 0, sizeof(*c));
    if (mode & 1) {
        c->type = CFG_CODEC_LINE;
        c->delimiter.ptr = delimiter;
        c->delimiter.len = 1 + (mode >> 1) % 4;
        for (i = 0; i < c->delimiter.len; i++) {
            delimiter[i] = "\r\nab"[fuzz_byte(in) % 4];
        }
        least = c->delimiter.len;
    } else {
        c->type = CFG_CODEC_LENGTH;
        c->field_size = field_sizes[(mode >> 1) & 7];
        c->byte_order = mode & 16 ? CFG_LITTLE_ENDIAN : CFG_BIG_ENDIAN;
        c->field_offset = (mode >> 5) % 4;
        c->adjust = (int8_t)fuzz_byte(in);
        least = c->field_offset + c->field_size;
    }
    c->max_frame = fuzz_uint(in, 2) % 1024;
    c->max_frame = c->max_frame < least ? least : c->max_frame;
}

static bool
same_framing(const struct cfg_codec *a, const struct cfg_codec *b)
{
    if (a->type == CFG_CODEC_LINE) {
        return b->type == CFG_CODEC_LINE && a->delimiter.len == b->delimiter.len &&
               memcmp(a->delimiter.ptr, b->delimiter.ptr, a->delimiter.len) == 0;
    }
    return b->type == CFG_CODEC_LENGTH && a->field_offset == b->field_offset &&
           a->field_size == b->field_size && a->byte_order == b->byte_order &&
           a->adjust == b->adjust;
}

/* The frame to codec to makes of payload p[0..n) into want; its length, or 0 if none may. */
static size_t
reference(const struct cfg_codec *to, const uint8_t *p, size_t n, uint8_t *want)
{
    size_t header = to->field_offset + to->field_size, i;
    const uint8_t *hit;
    int64_t v = (int64_t)n - to->adjust;

    if (to->type == CFG_CODEC_LINE) {
        if (n + to->delimiter.len > to->max_frame) {
            return 0;
        }
        memcpy(want, p, n);
        memcpy(want + n, to->delimiter.ptr, to->delimiter.len);
        hit = memmem(want, n + to->delimiter.len, to->delimiter.ptr, to->delimiter.len);
        return hit == want + n ? n + to->delimiter.len : 0;
    }
    if (header + n > to->max_frame || v < 0 ||
        (to->field_size < 8 && (uint64_t)v >> (8 * to->field_size) != 0)) {
        return 0;
    }
    memset(want, 0, header);
    for (i = 0; i < to->field_size; i++) {
        size_t k = to->byte_order == CFG_BIG_ENDIAN ? to->field_size - 1 - i : i;

        want[to->field_offset + k] = (uint8_t)((uint64_t)v >> (8 * i));
    }
    memcpy(want + header, p, n);
    return header + n;
}

/* Re-frame the frame f[0..n) and compare with the reference. */
static void
check(const struct cfg_codec *from, const struct cfg_codec *to, const uint8_t *f, size_t n)
{
    static uint8_t want[OUT_MAX], got[OUT_MAX];
    struct evbuffer *frame = evbuffer_new(), *out = evbuffer_new();
    size_t skip = from->type == CFG_CODEC_LENGTH ? from->field_offset + from->field_size : 0;
    size_t trail = from->type == CFG_CODEC_LINE ? from->delimiter.len : 0;
    size_t wantlen, len;
    const char *why = NULL;
    int rc;

    FUZZ_CHECK(frame != NULL && out != NULL && n >= skip + trail && n < OUT_MAX);
    if (same_framing(from, to)) {
        memcpy(want, f, n);
        wantlen = n <= to->max_frame ? n : 0;
    } else {
        wantlen = reference(to, f + skip, n - skip - trail, want);
    }
    FUZZ_CHECK(evbuffer_add_reference(frame, f, n, NULL, NULL) == 0);
    rc = px_codec_reframe(from, to, frame, out, &why);
    len = evbuffer_get_length(out);
    FUZZ_CHECK(evbuffer_get_length(frame) == 0);
    FUZZ_CHECK(rc == (wantlen > 0 ? 0 : -1) && (rc == 0 || why != NULL));
    FUZZ_CHECK(len == wantlen && evbuffer_copyout(out, got, len) == (ev_ssize_t)len);
    FUZZ_CHECK(memcmp(got, want, len) == 0);
    if (rc == 0) {
        struct px_frame_state st = {0};

        FUZZ_CHECK(px_codec_frame(to, out, &st, &why) == (ssize_t)len);
    }
    evbuffer_free(frame);
    evbuffer_free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
    struct fuzz_input in = {p, n};
    struct cfg_codec from, to;
    char dfrom[8], dto[8];
    struct evbuffer *buf = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;
    ssize_t r;

    FUZZ_CHECK(buf != NULL);
    read_codec(&in, &from, dfrom);
    read_codec(&in, &to, dto);
    FUZZ_CHECK(evbuffer_add_reference(buf, in.p, in.n, NULL, NULL) == 0);
    r = px_codec_frame(&from, buf, &st, &why);
    if (r > 0) {
        check(&from, &to, in.p, (size_t)r);
    }
    evbuffer_free(buf);
    return 0;
}
