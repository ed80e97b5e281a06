/*
 * libFuzzer target: the line codec. Input: a mode byte (delimiter length,
 * alphabet), the delimiter, max_frame (2 bytes), a count of chunk sizes and
 * the sizes, then the stream. In the narrow alphabet every stream byte becomes
 * a delimiter byte or 'x', so partial and overlapping delimiters abound.
 */
#include "tests/fuzz/fuzz_feed.h"

#include "proxy/codec/px_codec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

/* The first line ending within max_frame; else an error once none can. */
static ssize_t
oracle(const struct cfg_codec *codec, const uint8_t *buf, size_t n)
{
    size_t dlen = codec->delimiter.len;
    size_t limit = n < codec->max_frame ? n : codec->max_frame;
    const uint8_t *hit = memmem(buf, limit, codec->delimiter.ptr, dlen);

    if (hit != NULL) {
        return hit - buf + (ssize_t)dlen;
    }
    return n >= codec->max_frame ? PX_ERROR : PX_AGAIN;
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
    struct fuzz_input in = {p, n};
    struct cfg_codec codec = {.type = CFG_CODEC_LINE};
    uint8_t mode = fuzz_byte(&in);
    char delimiter[8];
    const uint8_t *sizes;
    size_t dlen = 1 + mode % 8, nsizes, i;
    uint8_t *data;

    for (i = 0; i < dlen; i++) {
        delimiter[i] = (char)fuzz_byte(&in);
    }
    codec.delimiter.ptr = delimiter;
    codec.delimiter.len = dlen;
    codec.max_frame = dlen + fuzz_uint(&in, 2) % 1024; /* the config keeps it >= dlen */
    nsizes = fuzz_byte(&in) % 16;
    nsizes = nsizes < in.n ? nsizes : in.n;
    sizes = in.p;
    in.p += nsizes;
    in.n -= nsizes;
    if (in.n == 0) {
        return 0;
    }
    data = malloc(in.n);
    FUZZ_CHECK(data != NULL);
    for (i = 0; i < in.n; i++) {
        uint8_t b = in.p[i];

        data[i] = !(mode & 0x80) ? b : b % (dlen + 1) == dlen ? 'x' : (uint8_t)delimiter[b % dlen];
    }
    fuzz_feed(&codec, data, in.n, sizes, nsizes, oracle);
    free(data);
    return 0;
}
