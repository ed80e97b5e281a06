#ifndef CODEC_TEST_UTIL_H
#define CODEC_TEST_UTIL_H

/*
 * The stream harness shared by the codec tests (test_codec, test_codec_resp):
 * a stream and the frames it must be cut into, fed one byte at a time, split
 * in two at every byte and coalesced at random (fixed seed), its last byte
 * against a PROT_NONE guard page.
 */

#include "guard_page.h"
#include "proxy/codec/px_codec.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#define MAX_INPUT 4096
#define MAX_FRAMES 64
#define RANDOM_RUNS 2000

/* A literal's bytes, without the NUL a string literal ends in. */
#define B(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
#define LIT(s) s, sizeof(s) - 1

struct bytes {
    const char *p;
    size_t n;
};

struct stream {
    uint8_t bytes[MAX_INPUT];
    size_t len;
    size_t frames[MAX_FRAMES]; /* lengths of the whole frames it starts with */
    size_t nframes;
    size_t framed;     /* bytes in those frames */
    const char *error; /* NULL, or why the bytes after those frames are rejected */
};

struct outcome {
    size_t frames[MAX_FRAMES];
    size_t nframes;
    size_t rest;       /* bytes still buffered at the end */
    const char *error; /* why of the PX_ERROR that stopped the stream */
};

struct stream_case {
    struct cfg_codec codec;
    struct bytes frames[16]; /* the whole frames, up to the first with p == NULL */
    struct bytes tail;       /* bytes after them that complete no frame */
    const char *error;       /* NULL: the tail stays buffered; else it is rejected so */
};

void add_bytes(struct stream *s, const void *p, size_t n);
void end_frame(struct stream *s);
void add_frame(struct stream *s, const void *p, size_t n);
uint64_t next_random(uint64_t *x);
size_t splitting(size_t len, size_t round, size_t *ends, uint64_t *seed);
void cut(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
         const uint8_t *data, struct outcome *o);
void feed(const struct cfg_codec *codec, const uint8_t *data, const size_t *ends, size_t n,
          struct outcome *o);
void expect(const struct outcome *o, const struct stream *s, size_t round);
void check_splits(const struct cfg_codec *codec, const struct stream *s);
ssize_t trickle(const struct cfg_codec *codec, const void *p, size_t n, size_t *fed,
                const char **why);
ssize_t at_once(const struct cfg_codec *codec, const void *p, size_t n, struct px_frame_state *st,
                const char **why);
void test_stream(void **state);

/* An answer to input fed one byte at a time: what, and at which byte. */
struct answer_case {
    struct cfg_codec codec;
    struct bytes in;
    ssize_t answer;  /* the first one that is not PX_AGAIN, or PX_AGAIN */
    size_t fed;      /* bytes fed when it came */
    const char *why; /* with PX_ERROR */
};

void test_answer(void **state);

#endif
