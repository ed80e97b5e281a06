#ifndef FUZZ_FEED_H
#define FUZZ_FEED_H

/*
 * Shared by the codec fuzzers: codec parameters read from the front of the
 * input, and feeding a codec its stream in chunks while checking every answer
 * against a plain reference implementation (an oracle).
 */

#include "config/cfg.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Abort, which libFuzzer reports as a crash, when cond is false. */
#define FUZZ_CHECK(cond) fuzz_check((cond), #cond, __FILE__, __LINE__)

struct fuzz_input {
    const uint8_t *p;
    size_t n;
};

/* What px_codec_frame() must answer for the n buffered bytes at buf. */
typedef ssize_t (*fuzz_oracle)(const struct cfg_codec *codec, const uint8_t *buf, size_t n);

void fuzz_check(int ok, const char *what, const char *file, int line);

/* The next byte, or 0 once the input is used up. */
uint8_t fuzz_byte(struct fuzz_input *in);

/* An unsigned integer from the next n (<= 8) bytes, big-endian. */
uint64_t fuzz_uint(struct fuzz_input *in, size_t n);

/*
 * Feed data[0..len) to codec in chunks of 1 + sizes[i % nsizes] bytes (one
 * chunk when nsizes is 0), cutting every frame as soon as px_codec_frame()
 * returns one, and check each answer against the oracle. Stops at PX_ERROR.
 */
void fuzz_feed(const struct cfg_codec *codec, const uint8_t *data, size_t len, const uint8_t *sizes,
               size_t nsizes, fuzz_oracle oracle);

#endif
