#include "codec_test_util.h"

#include <event2/buffer.h>
#include <string.h>
#include <unistd.h>

void
add_bytes(struct stream *s, const void *p, size_t n)
{
    assert_true(s->len + n <= MAX_INPUT);
    memcpy(s->bytes + s->len, p, n);
    s->len += n;
}

/* The bytes added since the last frame are a whole frame. */
void
end_frame(struct stream *s)
{
    assert_true(s->nframes < MAX_FRAMES);
    s->frames[s->nframes++] = s->len - s->framed;
    s->framed = s->len;
}

void
add_frame(struct stream *s, const void *p, size_t n)
{
    add_bytes(s, p, n);
    end_frame(s);
}

uint64_t
next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/*
 * Fill ends with where the chunks of the given round end and return their
 * number, or 0 after the last round. Round 0 feeds one byte at a time, rounds
 * 1..len split once at that byte (len: one chunk), then RANDOM_RUNS rounds
 * coalesce at random, each with its own largest chunk.
 */
size_t
splitting(size_t len, size_t round, size_t *ends, uint64_t *seed)
{
    size_t n = 0, pos = 0, most;

    if (round == 0) {
        for (pos = 1; pos <= len; pos++) {
            ends[n++] = pos;
        }
        return n;
    }
    if (round <= len) {
        ends[n++] = round;
        if (round < len) {
            ends[n++] = len;
        }
        return n;
    }
    if (round > len + RANDOM_RUNS) {
        return 0;
    }
    most = 1 + next_random(seed) % len;
    while (pos < len) {
        pos += 1 + next_random(seed) % most;
        ends[n++] = pos < len ? pos : len;
    }
    return n;
}

/* Cut every complete frame off in, checking it against the input at data. */
void
cut(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
    const uint8_t *data, struct outcome *o)
{
    static uint8_t copy[MAX_INPUT];
    struct evbuffer *frame = evbuffer_new();
    size_t consumed = 0, i;

    assert_non_null(frame);
    for (i = 0; i < o->nframes; i++) {
        consumed += o->frames[i];
    }
    for (;;) {
        const char *why = NULL;
        size_t buffered = evbuffer_get_length(in);
        ssize_t n = px_codec_frame(codec, in, st, &why);

        if (n == PX_AGAIN) {
            break;
        }
        if (n == PX_ERROR) {
            assert_non_null(why);
            o->error = why;
            break;
        }
        assert_true(n > 0 && (size_t)n <= buffered && o->nframes < MAX_FRAMES);
        assert_int_equal(st->scanned, 0);
        assert_int_equal(evbuffer_remove_buffer(in, frame, (size_t)n), n);
        assert_int_equal(evbuffer_remove(frame, copy, (size_t)n), n);
        assert_memory_equal(copy, data + consumed, (size_t)n);
        consumed += (size_t)n;
        o->frames[o->nframes++] = (size_t)n;
        memset(st, 0, sizeof(*st)); /* as the session does after each frame */
    }
    evbuffer_free(frame);
}

/* Feed data in chunks ending at ends[0..n), framing after each; stop at an error. */
void
feed(const struct cfg_codec *codec, const uint8_t *data, const size_t *ends, size_t n,
     struct outcome *o)
{
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    size_t i, pos = 0;

    assert_non_null(in);
    memset(o, 0, sizeof(*o));
    for (i = 0; i < n && o->error == NULL; i++) {
        assert_int_equal(evbuffer_add_reference(in, data + pos, ends[i] - pos, NULL, NULL), 0);
        pos = ends[i];
        cut(codec, in, &st, data, o);
    }
    o->rest = evbuffer_get_length(in);
    evbuffer_free(in);
}

void
expect(const struct outcome *o, const struct stream *s, size_t round)
{
    if (o->nframes != s->nframes ||
        memcmp(o->frames, s->frames, s->nframes * sizeof(s->frames[0])) != 0) {
        fail_msg("round %zu: %zu frames, expected %zu", round, o->nframes, s->nframes);
    }
    if (s->error == NULL && (o->error != NULL || o->rest != s->len - s->framed)) {
        fail_msg("round %zu: error '%s', %zu bytes left, expected %zu", round,
                 o->error ? o->error : "", o->rest, s->len - s->framed);
    }
    if (s->error != NULL && (o->error == NULL || strcmp(o->error, s->error) != 0)) {
        fail_msg("round %zu: error '%s', expected '%s'", round, o->error ? o->error : "(none)",
                 s->error);
    }
}

/* The stream must be cut the same way however its bytes arrive. */
void
check_splits(const struct cfg_codec *codec, const struct stream *s)
{
    static size_t ends[MAX_INPUT];
    uint64_t seed = 0x9e3779b97f4a7c15u;
    struct guarded g;
    const uint8_t *data = guard(s->bytes, s->len, &g);
    struct outcome o;
    size_t round, n;

    assert_true(s->len > 0);
    for (round = 0; (n = splitting(s->len, round, ends, &seed)) > 0; round++) {
        feed(codec, data, ends, n, &o);
        expect(&o, s, round);
    }
    unguard(&g);
}

/* Feed bytes one at a time and return the first answer that is not PX_AGAIN. */
ssize_t
trickle(const struct cfg_codec *codec, const void *p, size_t n, size_t *fed, const char **why)
{
    struct guarded g;
    const uint8_t *data = guard(p, n, &g);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    ssize_t r = PX_AGAIN;

    assert_non_null(in);
    for (*fed = 0; *fed < n && r == PX_AGAIN;) {
        assert_int_equal(evbuffer_add_reference(in, data + *fed, 1, NULL, NULL), 0);
        ++*fed;
        r = px_codec_frame(codec, in, &st, why);
    }
    evbuffer_free(in);
    unguard(&g);
    return r;
}

/* The answer to all of p[0..n) given at once, against a guard page. */
ssize_t
at_once(const struct cfg_codec *codec, const void *p, size_t n, struct px_frame_state *st,
        const char **why)
{
    struct guarded g;
    const uint8_t *data = guard(p, n, &g);
    struct evbuffer *in = evbuffer_new();
    ssize_t r;

    assert_non_null(in);
    assert_int_equal(evbuffer_add_reference(in, data, n, NULL, NULL), 0);
    r = px_codec_frame(codec, in, st, why);
    evbuffer_free(in);
    unguard(&g);
    return r;
}

void
test_stream(void **state)
{
    const struct stream_case *c = *state;
    struct stream s = {0};
    size_t i;

    for (i = 0; i < 16 && c->frames[i].p != NULL; i++) {
        add_frame(&s, c->frames[i].p, c->frames[i].n);
    }
    add_bytes(&s, c->tail.p, c->tail.n);
    s.error = c->error;
    check_splits(&c->codec, &s);
}

void
test_answer(void **state)
{
    const struct answer_case *c = *state;
    const char *why = NULL;
    size_t fed;

    assert_int_equal(trickle(&c->codec, c->in.p, c->in.n, &fed, &why), c->answer);
    assert_int_equal(fed, c->fed);
    if (c->why != NULL) {
        assert_string_equal(why, c->why);
    } else {
        assert_null(why);
    }
}
