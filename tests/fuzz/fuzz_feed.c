/* Shared by the codec fuzzers: input parameters, chunked feeding, invariants. */
#include "tests/fuzz/fuzz_feed.h"

#include "proxy/codec/px_codec.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>

void
fuzz_check(int ok, const char *what, const char *file, int line)
{
    if (!ok) {
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
        abort();
    }
}

uint8_t
fuzz_byte(struct fuzz_input *in)
{
    if (in->n == 0) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

uint64_t
fuzz_uint(struct fuzz_input *in, size_t n)
{
    uint64_t v = 0;

    while (n-- > 0) {
        v = v << 8 | fuzz_byte(in);
    }
    return v;
}

/* Cut every complete frame off in; return the last answer (PX_AGAIN or PX_ERROR). */
static ssize_t
cut(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
    const uint8_t *data, size_t *consumed, fuzz_oracle oracle)
{
    struct evbuffer *frame = evbuffer_new();
    ssize_t r;

    FUZZ_CHECK(frame != NULL);
    for (;;) {
        size_t n = evbuffer_get_length(in);
        const char *why = NULL;

        r = px_codec_frame(codec, in, st, &why);
        FUZZ_CHECK(r == oracle(codec, data + *consumed, n));
        if (r < 0) {
            FUZZ_CHECK(r == PX_AGAIN || why != NULL);
            break;
        }
        FUZZ_CHECK(r > 0 && (size_t)r <= n);
        FUZZ_CHECK(codec->type == CFG_CODEC_RAW || (uint64_t)r <= codec->max_frame);
        FUZZ_CHECK(evbuffer_remove_buffer(in, frame, (size_t)r) == r);
        FUZZ_CHECK(evbuffer_drain(frame, (size_t)r) == 0);
        *consumed += (size_t)r;
    }
    evbuffer_free(frame);
    return r;
}

void
fuzz_feed(const struct cfg_codec *codec, const uint8_t *data, size_t len, const uint8_t *sizes,
          size_t nsizes, fuzz_oracle oracle)
{
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    size_t fed = 0, consumed = 0, i = 0;

    FUZZ_CHECK(in != NULL);
    while (fed < len) {
        size_t n = nsizes > 0 ? 1 + (size_t)sizes[i++ % nsizes] : len;

        n = n < len - fed ? n : len - fed;
        /* By reference: ASan sees a read past data's end. */
        FUZZ_CHECK(evbuffer_add_reference(in, data + fed, n, NULL, NULL) == 0);
        fed += n;
        if (cut(codec, in, &st, data, &consumed, oracle) == PX_ERROR) {
            break; /* never called again after an error */
        }
    }
    FUZZ_CHECK(consumed + evbuffer_get_length(in) == fed);
    evbuffer_free(in);
}
