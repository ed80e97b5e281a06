/*
 * libFuzzer target: the length codec. Input: a mode byte (field size, byte
 * order, how wide adjust and max_frame are), field_offset, adjust, max_frame,
 * a count of chunk sizes and the sizes, then the stream.
 */
#include "tests/fuzz/fuzz_feed.h"

#include "proxy/codec/px_codec.h"

#include <limits.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

static const uint32_t field_sizes[] = {1, 2, 3, 4, 8, 1, 2, 4};

/* Netty's arithmetic in 128 bits, so nothing can overflow here. */
static ssize_t
oracle(const struct cfg_codec *codec, const uint8_t *buf, size_t n)
{
    size_t header = (size_t)codec->field_offset + codec->field_size;
    unsigned __int128 value = 0;
    __int128 total;
    size_t i;

    if (n < header) {
        return PX_AGAIN;
    }
    for (i = 0; i < codec->field_size; i++) {
        size_t k = codec->byte_order == CFG_BIG_ENDIAN ? i : codec->field_size - 1 - i;

        value = value << 8 | buf[codec->field_offset + k];
    }
    total = (__int128)header + (__int128)value + codec->adjust;
    if (value > INT64_MAX || total < (__int128)header || total > (__int128)codec->max_frame ||
        total > SSIZE_MAX) {
        return PX_ERROR;
    }
    return (size_t)total <= n ? (ssize_t)total : PX_AGAIN;
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
    struct fuzz_input in = {p, n};
    struct cfg_codec codec = {.type = CFG_CODEC_LENGTH};
    uint8_t mode = fuzz_byte(&in);
    const uint8_t *sizes;
    size_t nsizes;

    codec.field_size = field_sizes[mode & 7];
    codec.byte_order = mode & 8 ? CFG_LITTLE_ENDIAN : CFG_BIG_ENDIAN;
    codec.field_offset = mode & 16 ? (uint32_t)fuzz_uint(&in, 2) : fuzz_byte(&in) % 16;
    codec.adjust = mode & 32 ? (int64_t)fuzz_uint(&in, 8) : (int8_t)fuzz_byte(&in);
    codec.max_frame = mode & 64 ? fuzz_uint(&in, 8) : fuzz_uint(&in, 2);
    if (codec.max_frame < (uint64_t)codec.field_offset + codec.field_size) {
        codec.max_frame = (uint64_t)codec.field_offset + codec.field_size; /* as the config does */
    }
    nsizes = fuzz_byte(&in) % 16;
    nsizes = nsizes < in.n ? nsizes : in.n;
    sizes = in.p;
    in.p += nsizes;
    in.n -= nsizes;
    fuzz_feed(&codec, in.p, in.n, sizes, nsizes, oracle);
    return 0;
}
