/*
 * px_codec: frame boundaries of raw, line and length, each stream fed one byte
 * at a time, split in two at every byte and coalesced at random (fixed seed),
 * its last byte against a guard page; the errors; re-framing line <-> length.
 */
#include "proxy/codec/px_codec.h"

#include <event2/buffer.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_INPUT 4096
#define MAX_FRAMES 64
#define RANDOM_RUNS 2000

/* A literal's bytes, without the NUL a string literal ends in. */
#define LIT(s) s, sizeof(s) - 1

/* ---- codecs ---- */

static struct cfg_codec
line(const char *delimiter, uint64_t max_frame)
{
    struct cfg_codec c = {.type = CFG_CODEC_LINE, .max_frame = max_frame};

    c.delimiter.ptr = (char *)delimiter;
    c.delimiter.len = strlen(delimiter);
    return c;
}

static struct cfg_codec
length(uint32_t offset, uint32_t size, enum cfg_byte_order order, int64_t adjust,
       uint64_t max_frame)
{
    struct cfg_codec c = {
        .type = CFG_CODEC_LENGTH,
        .max_frame = max_frame,
        .field_offset = offset,
        .field_size = size,
        .byte_order = order,
        .adjust = adjust,
    };

    return c;
}

static struct cfg_codec
plain(enum cfg_codec_type type)
{
    struct cfg_codec c = {.type = type, .max_frame = 1 << 20};

    return c;
}

/* ---- streams: the input and the frames it must be cut into ---- */

struct stream {
    uint8_t bytes[MAX_INPUT];
    size_t len;
    size_t frames[MAX_FRAMES]; /* lengths of the whole frames it starts with */
    size_t nframes;
    size_t framed;     /* bytes in those frames */
    const char *error; /* NULL, or why the bytes after those frames are rejected */
};

static void
add_bytes(struct stream *s, const void *p, size_t n)
{
    assert_true(s->len + n <= MAX_INPUT);
    memcpy(s->bytes + s->len, p, n);
    s->len += n;
}

/* The bytes added since the last frame are a whole frame. */
static void
end_frame(struct stream *s)
{
    assert_true(s->nframes < MAX_FRAMES);
    s->frames[s->nframes++] = s->len - s->framed;
    s->framed = s->len;
}

static void
add_frame(struct stream *s, const void *p, size_t n)
{
    add_bytes(s, p, n);
    end_frame(s);
}

/* Append bytes that complete no frame: they stay buffered, or are rejected with error. */
static void
add_tail(struct stream *s, const void *p, size_t n, const char *error)
{
    add_bytes(s, p, n);
    s->error = error;
}

static void
add_repeated(struct stream *s, int byte, size_t n)
{
    assert_true(s->len + n <= MAX_INPUT);
    memset(s->bytes + s->len, byte, n);
    s->len += n;
}

/* ---- input at a guard page: reading past its end faults ---- */

struct guarded {
    uint8_t *map;
    size_t size;
};

static const uint8_t *
guard(const void *src, size_t len, struct guarded *g)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = len == 0 ? page : (len + page - 1) / page * page;
    uint8_t *p;

    g->size = body + page;
    p = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memcpy(p + body - len, src, len);
    assert_int_equal(mprotect(p, body, PROT_READ), 0); /* codecs write nothing either */
    assert_int_equal(mprotect(p + body, page, PROT_NONE), 0);
    g->map = p;
    return p + body - len;
}

static void
unguard(struct guarded *g)
{
    munmap(g->map, g->size);
}

/* ---- ways to split an input ---- */

static uint64_t
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
static size_t
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

/* ---- feeding a codec ---- */

struct outcome {
    size_t frames[MAX_FRAMES];
    size_t nframes;
    size_t rest;       /* bytes still buffered at the end */
    const char *error; /* why of the PX_ERROR that stopped the stream */
};

/* Cut every complete frame off in, checking it against the input at data. */
static void
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
        assert_int_equal(evbuffer_remove_buffer(in, frame, (size_t)n), n);
        assert_int_equal(evbuffer_remove(frame, copy, (size_t)n), n);
        assert_memory_equal(copy, data + consumed, (size_t)n);
        consumed += (size_t)n;
        o->frames[o->nframes++] = (size_t)n;
    }
    evbuffer_free(frame);
}

/* Feed data in chunks ending at ends[0..n), framing after each; stop at an error. */
static void
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

static void
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
static void
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

/* Feed bytes one at a time and return the first result that is not PX_AGAIN. */
static ssize_t
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

/* ---- raw ---- */

static void
test_raw_returns_what_is_buffered(void **state)
{
    static const char text[] = "raw bytes have no frames\r\n\0 at all";
    static size_t ends[MAX_INPUT];
    struct cfg_codec c = plain(CFG_CODEC_RAW);
    uint64_t seed = 1;
    struct guarded g;
    const uint8_t *data = guard(text, sizeof(text), &g);
    struct outcome o;
    size_t round, n, i;

    (void)state;
    for (round = 0; (n = splitting(sizeof(text), round, ends, &seed)) > 0; round++) {
        feed(&c, data, ends, n, &o);
        assert_int_equal(o.nframes, n); /* one frame per read, all of it */
        for (i = 0; i < n; i++) {
            assert_int_equal(o.frames[i], ends[i] - (i ? ends[i - 1] : 0));
        }
        assert_int_equal(o.rest, 0);
    }
    unguard(&g);
}

static void
test_raw_empty_is_again(void **state)
{
    struct cfg_codec c = plain(CFG_CODEC_RAW);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_AGAIN);
    assert_null(why);
    evbuffer_free(in);
}

/* ---- line ---- */

static void
test_line_lf(void **state)
{
    struct cfg_codec c = line("\n", 64);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("GET /index.html\n"));
    add_frame(&s, LIT("\n"));
    add_frame(&s, LIT("PING\r\n"));
    add_frame(&s, LIT("set k 0 0 5\n"));
    add_frame(&s, LIT("x\0y\n"));
    add_tail(&s, LIT("no newline yet"), NULL);
    check_splits(&c, &s);
}

static void
test_line_crlf(void **state)
{
    struct cfg_codec c = line("\r\n", 64);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("+OK\r\n"));
    add_frame(&s, LIT("a\rb\nc\r\n")); /* lone CR and LF are payload */
    add_frame(&s, LIT("\r\n"));
    add_frame(&s, LIT("\r\r\n"));
    add_frame(&s, LIT("\n\r\n"));
    add_tail(&s, LIT("partial\r"), NULL);
    check_splits(&c, &s);
}

static void
test_line_long_delimiter_overlaps(void **state)
{
    struct cfg_codec c = line("\r\n\r\n", 128);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    add_frame(&s, LIT("\r\n\r\n"));
    add_frame(&s, LIT("x\r\n\r\r\n\r\n"));
    add_frame(&s, LIT("\r\r\r\n\n\r\n\r\n"));
    add_tail(&s, LIT("y\r\n\r"), NULL);
    check_splits(&c, &s);
}

static void
test_line_self_overlapping_delimiter(void **state)
{
    struct cfg_codec c = line("aab", 32);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("aaab"));
    add_frame(&s, LIT("xaaaaab"));
    add_frame(&s, LIT("aab"));
    add_frame(&s, LIT("abaab"));
    add_tail(&s, LIT("aaaa"), NULL);
    check_splits(&c, &s);
}

static void
test_line_exactly_max_frame(void **state)
{
    struct cfg_codec c = line("\r\n", 8);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("123456\r\n"));
    add_frame(&s, LIT("\r\n"));
    add_frame(&s, LIT("abcdef\r\n"));
    add_tail(&s, LIT("abcdef\r"), NULL); /* 7 bytes: "\n" would still fit */
    check_splits(&c, &s);
}

static void
test_line_too_long_after_frames(void **state)
{
    struct cfg_codec c = line("\n", 16);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("ok\n"));
    add_frame(&s, LIT("fifteen bytes!\n"));
    add_frame(&s, LIT("sixteen  bytes!\n"));
    add_tail(&s, LIT("this line has no end in sight"), "line longer than max_frame");
    check_splits(&c, &s);
}

static void
test_line_too_long_not_before(void **state)
{
    static const char text[] = "0123456789abcdefXYZ";
    struct cfg_codec c = line("\n", 16);
    const char *why = NULL;
    size_t fed;

    (void)state;
    /* 15 bytes and no delimiter: a 16th could still be "\n". */
    assert_int_equal(trickle(&c, text, 15, &fed, &why), PX_AGAIN);
    assert_int_equal(fed, 15);
    assert_null(why);
    assert_int_equal(trickle(&c, LIT("0123456789abcde\n"), &fed, &why), 16);
    /* With the 16th byte no line can end within max_frame. */
    assert_int_equal(trickle(&c, text, sizeof(text) - 1, &fed, &why), PX_ERROR);
    assert_int_equal(fed, 16);
    assert_string_equal(why, "line longer than max_frame");
}

static void
test_line_delimiter_split_at_max_frame(void **state)
{
    struct cfg_codec c = line("\r\n", 8);
    const char *why = NULL;
    size_t fed;

    (void)state;
    assert_int_equal(trickle(&c, LIT("123456\r\n"), &fed, &why), 8);
    assert_int_equal(trickle(&c, LIT("1234567\r\n"), &fed, &why), PX_ERROR);
    assert_int_equal(fed, 8); /* "1234567\r": the "\n" would make 9 */
    assert_string_equal(why, "line longer than max_frame");
}

static void
test_line_delimiter_past_max_frame_in_one_read(void **state)
{
    struct cfg_codec c = line("\n", 8);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    evbuffer_add(in, LIT("12345678\nok\n"));
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_ERROR);
    assert_string_equal(why, "line longer than max_frame");
    evbuffer_free(in);
}

static void
test_line_long_frame_then_short_ones(void **state)
{
    struct cfg_codec c = line("\n", 4096);
    struct stream s = {0};

    (void)state;
    add_repeated(&s, 'x', 1000);
    add_frame(&s, LIT("\n"));
    add_frame(&s, LIT("a\n"));
    add_tail(&s, LIT("b"), NULL);
    check_splits(&c, &s);
}

static void
test_line_resumes_where_it_stopped(void **state)
{
    struct cfg_codec c = line("\r\n", 1024);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;
    int i;

    (void)state;
    for (i = 0; i < 100; i++) {
        evbuffer_add(in, "abcdefgh", 8);
        assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_AGAIN);
        assert_int_equal(st.scanned, 8 * (i + 1)); /* nothing is searched twice */
    }
    evbuffer_add(in, "\r", 1);
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_AGAIN);
    evbuffer_add(in, "\nnext", 5);
    assert_int_equal(px_codec_frame(&c, in, &st, &why), 802);
    assert_int_equal(st.scanned, 0);
    evbuffer_free(in);
}

static void
test_line_bad_delimiter(void **state)
{
    struct cfg_codec c = line("", 64);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    evbuffer_add(in, "x\n", 2);
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_ERROR);
    assert_string_equal(why, "delimiter must be 1 to 8 bytes");
    evbuffer_free(in);
}

/* ---- length: real protocols ---- */

static void
test_length_dns_over_tcp(void **state)
{
    struct cfg_codec c = length(0, 2, CFG_BIG_ENDIAN, 0, 65537);
    struct stream s = {0};

    (void)state;
    /* example.com A query, then its answer (93.184.216.34), RFC 1035 4.2.2 */
    add_frame(&s, LIT("\x00\x1d"
                      "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                      "\x07"
                      "example"
                      "\x03"
                      "com\x00\x00\x01\x00\x01"));
    add_frame(&s, LIT("\x00\x2d"
                      "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
                      "\x07"
                      "example"
                      "\x03"
                      "com\x00\x00\x01\x00\x01"
                      "\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd8\x22"));
    add_tail(&s, LIT("\x00\x1d\x56\x78"), NULL);
    check_splits(&c, &s);
}

static void
test_length_thrift_framed(void **state)
{
    struct cfg_codec c = length(0, 4, CFG_BIG_ENDIAN, 0, 16 << 20);
    struct stream s = {0};

    (void)state;
    /* TBinaryProtocol strict: version|CALL, "ping", seqid 0, STOP */
    add_frame(&s, LIT("\x00\x00\x00\x11"
                      "\x80\x01\x00\x01\x00\x00\x00\x04"
                      "ping"
                      "\x00\x00\x00\x00\x00"));
    /* add(1, 2): two i32 fields */
    add_frame(&s, LIT("\x00\x00\x00\x1e"
                      "\x80\x01\x00\x01\x00\x00\x00\x03"
                      "add"
                      "\x00\x00\x00\x01"
                      "\x08\x00\x01\x00\x00\x00\x01"
                      "\x08\x00\x02\x00\x00\x00\x02"
                      "\x00"));
    /* the reply to ping */
    add_frame(&s, LIT("\x00\x00\x00\x11"
                      "\x80\x01\x00\x02\x00\x00\x00\x04"
                      "ping"
                      "\x00\x00\x00\x00\x00"));
    add_tail(&s, LIT("\x00\x00"), NULL);
    check_splits(&c, &s);
}

static void
test_length_memcached_binary(void **state)
{
    /* body length at offset 8 counts what follows the 24-byte header: 12 + v + 12 */
    struct cfg_codec c = length(8, 4, CFG_BIG_ENDIAN, 12, 1 << 20);
    struct stream s = {0};

    (void)state;
    /* get "Hello" and its response "World" with flags 0xdeadbeef (protocol_binary.txt) */
    add_frame(&s, LIT("\x80\x00\x00\x05\x00\x00\x00\x00"
                      "\x00\x00\x00\x05"
                      "\x00\x00\x00\x00"
                      "\x00\x00\x00\x00\x00\x00\x00\x00"
                      "Hello"));
    add_frame(&s, LIT("\x81\x00\x00\x00\x04\x00\x00\x00"
                      "\x00\x00\x00\x09"
                      "\x00\x00\x00\x00"
                      "\x00\x00\x00\x00\x00\x00\x00\x01"
                      "\xde\xad\xbe\xef"
                      "World"));
    /* noop: header only */
    add_frame(&s, LIT("\x80\x0a\x00\x00\x00\x00\x00\x00"
                      "\x00\x00\x00\x00"
                      "\x00\x00\x00\x07"
                      "\x00\x00\x00\x00\x00\x00\x00\x00"));
    add_tail(&s, LIT("\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00"), NULL);
    check_splits(&c, &s);
}

static void
test_length_mysql_packets(void **state)
{
    /* 3-byte little-endian payload length, then a sequence id byte */
    struct cfg_codec c = length(0, 3, CFG_LITTLE_ENDIAN, 1, 1 << 24);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x09\x00\x00\x00\x03"
                      "SELECT 1"));
    add_frame(&s, LIT("\x01\x00\x00\x00\x0e"));
    add_frame(&s, LIT("\x05\x00\x00\x01"
                      "\x02\x03\x04\x05\x06"));
    add_tail(&s, LIT("\x09\x00"), NULL);
    check_splits(&c, &s);
}

/* ---- length: the LengthFieldBasedFrameDecoder examples (without stripping) ---- */

/* Netty's frames: a header, then the 12 bytes "HELLO, WORLD". */
static void
netty_frame(struct stream *s, const void *header, size_t n)
{
    add_bytes(s, header, n);
    add_bytes(s, LIT("HELLO, WORLD"));
    end_frame(s);
}

static void
test_length_netty_offset0_size2(void **state)
{
    struct cfg_codec c = length(0, 2, CFG_BIG_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    netty_frame(&s, LIT("\x00\x0c"));
    netty_frame(&s, LIT("\x00\x0c"));
    add_tail(&s,
             LIT("\x00\x0c"
                 "HELLO"),
             NULL);
    check_splits(&c, &s);
}

static void
test_length_netty_length_counts_header(void **state)
{
    struct cfg_codec c = length(0, 2, CFG_BIG_ENDIAN, -2, 1024);
    struct stream s = {0};

    (void)state;
    netty_frame(&s, LIT("\x00\x0e"));
    add_frame(&s, LIT("\x00\x02")); /* header only */
    netty_frame(&s, LIT("\x00\x0e"));
    add_tail(&s, LIT("\x00"), NULL);
    check_splits(&c, &s);
}

static void
test_length_netty_header_before_field(void **state)
{
    struct cfg_codec c = length(2, 3, CFG_BIG_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    netty_frame(&s, LIT("\xca\xfe\x00\x00\x0c"));
    netty_frame(&s, LIT("\xca\xfe\x00\x00\x0c"));
    add_tail(&s, LIT("\xca\xfe\x00\x00"), NULL);
    check_splits(&c, &s);
}

static void
test_length_netty_header_after_field(void **state)
{
    struct cfg_codec c = length(0, 3, CFG_BIG_ENDIAN, 2, 1024);
    struct stream s = {0};

    (void)state;
    netty_frame(&s, LIT("\x00\x00\x0c\xca\xfe"));
    netty_frame(&s, LIT("\x00\x00\x0c\xca\xfe"));
    add_tail(&s, LIT("\x00\x00\x0c\xca"), NULL);
    check_splits(&c, &s);
}

static void
test_length_netty_headers_both_sides(void **state)
{
    struct cfg_codec c = length(1, 2, CFG_BIG_ENDIAN, 1, 1024);
    struct stream s = {0};

    (void)state;
    netty_frame(&s, LIT("\xca\x00\x0c\xfe"));
    netty_frame(&s, LIT("\xca\x00\x0c\xfe"));
    add_tail(&s, LIT("\xca\x00"), NULL);
    check_splits(&c, &s);
}

static void
test_length_netty_negative_adjust(void **state)
{
    /* the field holds the whole message's length: 16 = 1 + 2 + 1 + 12 */
    struct cfg_codec c = length(1, 2, CFG_BIG_ENDIAN, -3, 1024);
    struct stream s = {0};

    (void)state;
    netty_frame(&s, LIT("\xca\x00\x10\xfe"));
    netty_frame(&s, LIT("\xca\x00\x10\xfe"));
    add_frame(&s, LIT("\xca\x00\x03")); /* 3 - 3 = 0 bytes after the field */
    add_tail(&s, LIT("\xca\x00\x10\xfe"), NULL);
    check_splits(&c, &s);
}

/* ---- length: field sizes and byte orders ---- */

static void
test_length_size1(void **state)
{
    static uint8_t big[256];
    struct cfg_codec c = length(0, 1, CFG_BIG_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    big[0] = 0xff;
    memset(big + 1, 'z', 255);
    add_frame(&s, LIT("\x03"
                      "abc"));
    add_frame(&s, LIT("\x00"));
    add_frame(&s, big, sizeof(big)); /* the largest value a byte holds */
    add_tail(&s,
             LIT("\x05"
                 "ab"),
             NULL);
    check_splits(&c, &s);
}

static void
test_length_size2_little(void **state)
{
    static uint8_t big[2 + 0x102];
    struct cfg_codec c = length(0, 2, CFG_LITTLE_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    big[0] = 0x02; /* 0x0102: the byte order matters */
    big[1] = 0x01;
    memset(big + 2, 'q', sizeof(big) - 2);
    add_frame(&s, LIT("\x05\x00"
                      "hello"));
    add_frame(&s, big, sizeof(big));
    add_tail(&s, LIT("\x05"), NULL);
    check_splits(&c, &s);
}

static void
test_length_size3_big_with_offset(void **state)
{
    struct cfg_codec c = length(1, 3, CFG_BIG_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x17\x00\x00\x04"
                      "abcd"));
    add_frame(&s, LIT("\x17\x00\x00\x00"));
    add_tail(&s,
             LIT("\x17\x00\x00\x04"
                 "abc"),
             NULL);
    check_splits(&c, &s);
}

static void
test_length_size4_little(void **state)
{
    struct cfg_codec c = length(0, 4, CFG_LITTLE_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x06\x00\x00\x00"
                      "sluice"));
    add_frame(&s, LIT("\x00\x00\x00\x00"));
    add_frame(&s, LIT("\x01\x00\x00\x00"
                      "!"));
    add_tail(&s, LIT("\x06\x00\x00"), NULL);
    check_splits(&c, &s);
}

static void
test_length_size8_big(void **state)
{
    struct cfg_codec c = length(0, 8, CFG_BIG_ENDIAN, 0, 1024);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x00\x00\x00\x00\x00\x00\x00\x05"
                      "hello"));
    add_frame(&s, LIT("\x00\x00\x00\x00\x00\x00\x00\x00"));
    add_frame(&s, LIT("\x00\x00\x00\x00\x00\x00\x00\x01"
                      "x"));
    add_tail(&s,
             LIT("\x00\x00\x00\x00\x00\x00\x00\x09"
                 "partial"),
             NULL);
    check_splits(&c, &s);
}

static void
test_length_size8_little_with_offset(void **state)
{
    struct cfg_codec c = length(2, 8, CFG_LITTLE_ENDIAN, -10, 1024);
    struct stream s = {0};

    (void)state;
    /* the field holds the frame's total length */
    add_frame(&s, LIT("\xab\xcd\x0f\x00\x00\x00\x00\x00\x00\x00"
                      "world"));
    add_frame(&s, LIT("\xab\xcd\x0a\x00\x00\x00\x00\x00\x00\x00"));
    add_tail(&s, LIT("\xab\xcd\x0f\x00\x00\x00\x00\x00\x00"), NULL);
    check_splits(&c, &s);
}

/* ---- length: errors ---- */

static void
test_length_too_long_from_header_alone(void **state)
{
    struct cfg_codec c = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);
    const char *why = NULL;
    size_t fed;

    (void)state;
    /* 4 + 0x3fd = 1025 bytes announced: rejected with just the 4 header bytes */
    assert_int_equal(trickle(&c,
                             LIT("\x00\x00\x03\xfd"
                                 "more"),
                             &fed, &why),
                     PX_ERROR);
    assert_int_equal(fed, 4);
    assert_string_equal(why, "frame longer than max_frame");
}

static void
test_length_exactly_max_frame(void **state)
{
    static uint8_t frame[1024 + 1];
    struct cfg_codec c = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);
    const char *why = NULL;
    size_t fed;

    (void)state;
    memcpy(frame, "\x00\x00\x03\xfc", 4); /* 4 + 1020 = 1024 */
    memset(frame + 4, 'm', sizeof(frame) - 4);
    assert_int_equal(trickle(&c, frame, sizeof(frame), &fed, &why), 1024);
    assert_int_equal(fed, 1024);
}

static void
test_length_too_long_memcached(void **state)
{
    struct cfg_codec c = length(8, 4, CFG_BIG_ENDIAN, 12, 1 << 20);
    const char *why = NULL;
    size_t fed;

    (void)state;
    /* a 1MiB body: known at byte 12, long before the 24-byte header ends */
    assert_int_equal(trickle(&c,
                             LIT("\x80\x01\x00\x05\x08\x00\x00\x00"
                                 "\x00\x10\x00\x00"
                                 "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
                             &fed, &why),
                     PX_ERROR);
    assert_int_equal(fed, 12);
    assert_string_equal(why, "frame longer than max_frame");
}

static void
test_length_error_after_frames(void **state)
{
    struct cfg_codec c = length(0, 2, CFG_BIG_ENDIAN, 0, 64);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x00\x02"
                      "ok"));
    add_frame(&s, LIT("\x00\x00"));
    add_tail(&s,
             LIT("\x00\x3f"
                 "the rest never matters"),
             "frame longer than max_frame");
    check_splits(&c, &s);
}

static void
test_length_negative(void **state)
{
    struct cfg_codec c = length(1, 2, CFG_BIG_ENDIAN, -3, 1024);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\xca\x00\x03"));
    add_tail(&s, LIT("\xca\x00\x02\xfe"), "negative frame length"); /* 2 - 3 < 0 */
    check_splits(&c, &s);
}

static void
test_length_negative_min_adjust(void **state)
{
    struct cfg_codec c = length(0, 8, CFG_BIG_ENDIAN, INT64_MIN, 1024);
    const char *why = NULL;
    size_t fed;

    (void)state;
    assert_int_equal(trickle(&c, LIT("\x7f\xff\xff\xff\xff\xff\xff\xff"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "negative frame length");
}

static void
test_length_overflow_8_bytes(void **state)
{
    struct cfg_codec c = length(0, 8, CFG_BIG_ENDIAN, 0, 1024);
    struct cfg_codec plus = length(0, 8, CFG_BIG_ENDIAN, 1, 1024);
    struct cfg_codec minus = length(0, 8, CFG_LITTLE_ENDIAN, -16, 1024);
    const char *why = NULL;
    size_t fed;

    (void)state;
    assert_int_equal(trickle(&c, LIT("\xff\xff\xff\xff\xff\xff\xff\xff"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "frame length overflows");
    assert_int_equal(trickle(&c, LIT("\x80\x00\x00\x00\x00\x00\x00\x00"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "frame length overflows");
    assert_int_equal(trickle(&plus, LIT("\x7f\xff\xff\xff\xff\xff\xff\xff"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "frame length overflows");
    /* no overflow, just too long */
    assert_int_equal(trickle(&c, LIT("\x7f\xff\xff\xff\xff\xff\xff\xff"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "frame longer than max_frame");
    assert_int_equal(trickle(&minus, LIT("\xff\xff\xff\xff\xff\xff\xff\x7f"), &fed, &why),
                     PX_ERROR);
    assert_string_equal(why, "frame longer than max_frame");
}

static void
test_length_bad_field_size(void **state)
{
    struct cfg_codec c = length(0, 5, CFG_BIG_ENDIAN, 0, 1024);
    const char *why = NULL;
    size_t fed;

    (void)state;
    assert_int_equal(trickle(&c,
                             LIT("\x00\x00\x00\x00\x01"
                                 "x"),
                             &fed, &why),
                     PX_ERROR);
    assert_string_equal(why, "length field must be 1, 2, 3, 4 or 8 bytes");
}

static void
test_resp_and_http_not_implemented(void **state)
{
    struct cfg_codec resp = plain(CFG_CODEC_RESP);
    struct cfg_codec http = plain(CFG_CODEC_HTTP);
    const char *why = NULL;
    size_t fed;

    (void)state;
    assert_int_equal(trickle(&resp, LIT("+OK\r\n"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "codec not implemented");
    why = NULL;
    assert_int_equal(trickle(&http, LIT("GET / HTTP/1.1\r\n\r\n"), &fed, &why), PX_ERROR);
    assert_string_equal(why, "codec not implemented");
}

/* ---- re-framing ---- */

struct reframed {
    uint8_t bytes[MAX_INPUT];
    size_t len;
    const char *why;
};

/* Re-frame the frame p[0..n) from one codec to another; return px_codec_reframe()'s value. */
static int
reframe(const struct cfg_codec *from, const struct cfg_codec *to, const void *p, size_t n,
        struct reframed *r)
{
    struct guarded g;
    const uint8_t *data = guard(p, n, &g);
    struct evbuffer *frame = evbuffer_new();
    struct evbuffer *out = evbuffer_new();
    int rc;

    assert_non_null(frame);
    assert_non_null(out);
    evbuffer_add(out, "<", 1); /* output is appended to what is there */
    assert_int_equal(evbuffer_add_reference(frame, data, n, NULL, NULL), 0);
    r->why = NULL;
    rc = px_codec_reframe(from, to, frame, out, &r->why);
    assert_int_equal(evbuffer_get_length(frame), 0); /* drained either way */
    assert_int_equal(evbuffer_remove(out, r->bytes, 1), 1);
    r->len = evbuffer_get_length(out);
    assert_true(r->len <= MAX_INPUT);
    assert_int_equal(evbuffer_remove(out, r->bytes, r->len), (int)r->len);
    if (rc == -1) {
        assert_non_null(r->why);
        assert_int_equal(r->len, 0); /* nothing written on failure */
    }
    evbuffer_free(frame);
    evbuffer_free(out);
    unguard(&g);
    return rc;
}

/* The re-framed bytes must be exactly one frame of the codec they were re-framed to. */
static void
assert_one_frame(const struct cfg_codec *to, const struct reframed *r)
{
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    evbuffer_add(in, r->bytes, r->len);
    assert_int_equal(px_codec_frame(to, in, &st, &why), (ssize_t)r->len);
    evbuffer_free(in);
}

static void
expect_reframed(const struct cfg_codec *from, const struct cfg_codec *to, const void *p, size_t n,
                const void *want, size_t wantlen)
{
    struct reframed r;

    assert_int_equal(reframe(from, to, p, n, &r), 0);
    assert_int_equal(r.len, wantlen);
    assert_memory_equal(r.bytes, want, wantlen);
    assert_one_frame(to, &r);
}

static void
expect_refused(const struct cfg_codec *from, const struct cfg_codec *to, const void *p, size_t n,
               const char *why)
{
    struct reframed r;

    assert_int_equal(reframe(from, to, p, n, &r), -1);
    assert_string_equal(r.why, why);
}

static void
test_reframe_line_to_thrift(void **state)
{
    struct cfg_codec from = line("\n", 64);
    struct cfg_codec to = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);

    (void)state;
    expect_reframed(&from, &to, LIT("ping\n"),
                    LIT("\x00\x00\x00\x04"
                        "ping"));
}

static void
test_reframe_crlf_to_length_with_offset(void **state)
{
    struct cfg_codec from = line("\r\n", 64);
    struct cfg_codec to = length(2, 2, CFG_LITTLE_ENDIAN, -4, 1024);

    (void)state;
    /* the field counts the whole frame: 2 + 2 + 3 */
    expect_reframed(&from, &to, LIT("abc\r\n"),
                    LIT("\x00\x00\x07\x00"
                        "abc"));
}

static void
test_reframe_dns_to_line(void **state)
{
    struct cfg_codec from = length(0, 2, CFG_BIG_ENDIAN, 0, 1024);
    struct cfg_codec to = line("\n", 64);

    (void)state;
    expect_reframed(&from, &to,
                    LIT("\x00\x05"
                        "hello"),
                    LIT("hello\n"));
}

static void
test_reframe_memcached_to_line(void **state)
{
    struct cfg_codec from = length(8, 4, CFG_BIG_ENDIAN, 12, 1024);
    struct cfg_codec to = line("\r\n", 64);

    (void)state;
    /* what follows the length field: opaque, cas, key */
    expect_reframed(&from, &to,
                    LIT("\x80\x00\x00\x05\x00\x00\x00\x00"
                        "\x00\x00\x00\x05"
                        "OPAQCAS-CAS-"
                        "Hello"),
                    LIT("OPAQCAS-CAS-Hello\r\n"));
}

static void
test_reframe_round_trip(void **state)
{
    struct cfg_codec a = line("\r\n", 64);
    struct cfg_codec b = length(3, 8, CFG_LITTLE_ENDIAN, 5, 1024);
    struct reframed r, back;

    (void)state;
    assert_int_equal(reframe(&a, &b, LIT("set k 0 0 1\r\n"), &r), 0);
    assert_int_equal(r.len, 3 + 8 + 11);
    assert_memory_equal(r.bytes, "\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00", 11);
    assert_one_frame(&b, &r);
    assert_int_equal(reframe(&b, &a, r.bytes, r.len, &back), 0);
    assert_int_equal(back.len, 13);
    assert_memory_equal(back.bytes, "set k 0 0 1\r\n", 13);
}

static void
test_reframe_empty_payload(void **state)
{
    struct cfg_codec a = line("\n", 64);
    struct cfg_codec b = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);

    (void)state;
    expect_reframed(&a, &b, LIT("\n"), LIT("\x00\x00\x00\x00"));
    expect_reframed(&b, &a, LIT("\x00\x00\x00\x00"), LIT("\n"));
}

static void
test_reframe_field_too_small(void **state)
{
    static char text[257];
    struct cfg_codec from = line("\n", 1024);
    struct cfg_codec to = length(0, 1, CFG_BIG_ENDIAN, 0, 1024);
    struct reframed r;

    (void)state;
    memset(text, 'p', sizeof(text));
    text[255] = '\n';
    assert_int_equal(reframe(&from, &to, text, 256, &r), 0); /* 255 fits in a byte */
    assert_int_equal(r.len, 256);
    assert_int_equal(r.bytes[0], 0xff);
    text[255] = 'p';
    text[256] = '\n';
    expect_refused(&from, &to, text, sizeof(text), "payload too long for the length field");
}

static void
test_reframe_negative_length(void **state)
{
    struct cfg_codec from = line("\n", 64);
    struct cfg_codec to = length(0, 2, CFG_BIG_ENDIAN, 10, 1024);

    (void)state;
    /* 3 bytes of payload cannot be announced as 3 - 10 */
    expect_refused(&from, &to, LIT("abc\n"), "negative frame length");
    expect_reframed(&from, &to, LIT("0123456789\n"),
                    LIT("\x00\x00"
                        "0123456789"));
}

static void
test_reframe_length_too_long_for_max_frame(void **state)
{
    struct cfg_codec from = line("\n", 64);
    struct cfg_codec to = length(1, 2, CFG_BIG_ENDIAN, 0, 8);

    (void)state;
    expect_reframed(&from, &to, LIT("abcde\n"),
                    LIT("\x00\x00\x05"
                        "abcde")); /* 8 */
    expect_refused(&from, &to, LIT("abcdef\n"), "frame longer than max_frame");
}

static void
test_reframe_line_too_long_for_max_frame(void **state)
{
    struct cfg_codec from = length(0, 1, CFG_BIG_ENDIAN, 0, 64);
    struct cfg_codec to = line("\r\n", 8);

    (void)state;
    expect_reframed(&from, &to,
                    LIT("\x06"
                        "abcdef"),
                    LIT("abcdef\r\n"));
    expect_refused(&from, &to,
                   LIT("\x07"
                       "abcdefg"),
                   "frame longer than max_frame");
}

static void
test_reframe_delimiter_in_payload(void **state)
{
    struct cfg_codec from = length(0, 2, CFG_BIG_ENDIAN, 0, 1024);
    struct cfg_codec lf = line("\n", 64);
    struct cfg_codec crlf = line("\r\n", 64);

    (void)state;
    expect_refused(&from, &lf,
                   LIT("\x00\x07"
                       "two\nfor"),
                   "payload contains the delimiter");
    expect_refused(&from, &lf, LIT("\x00\x01\n"), "payload contains the delimiter");
    expect_refused(&from, &crlf,
                   LIT("\x00\x04"
                       "a\r\nb"),
                   "payload contains the delimiter");
    expect_reframed(&from, &crlf,
                    LIT("\x00\x04"
                        "a\n\rb"),
                    LIT("a\n\rb\r\n"));
    expect_reframed(&from, &crlf,
                    LIT("\x00\x02"
                        "a\r"),
                    LIT("a\r\r\n"));
}

static void
test_reframe_delimiter_across_the_seam(void **state)
{
    struct cfg_codec from = length(0, 1, CFG_BIG_ENDIAN, 0, 1024);
    struct cfg_codec http = line("\r\n\r\n", 64);
    struct cfg_codec aba = line("aba", 64);

    (void)state;
    /* "abc\r\n" + "\r\n\r\n" would end two bytes early */
    expect_refused(&from, &http,
                   LIT("\x05"
                       "abc\r\n"),
                   "payload contains the delimiter");
    expect_reframed(&from, &http,
                    LIT("\x04"
                        "abc\r"),
                    LIT("abc\r\r\n\r\n"));
    expect_refused(&from, &aba,
                   LIT("\x03"
                       "xab"),
                   "payload contains the delimiter");
    expect_refused(&from, &aba,
                   LIT("\x02"
                       "ab"),
                   "payload contains the delimiter");
    expect_reframed(&from, &aba,
                    LIT("\x01"
                        "a"),
                    LIT("aaba"));
    expect_reframed(&from, &aba,
                    LIT("\x02"
                        "bb"),
                    LIT("bbaba"));
}

static void
test_reframe_line_to_line(void **state)
{
    struct cfg_codec lf = line("\n", 64);
    struct cfg_codec crlf = line("\r\n", 64);

    (void)state;
    expect_reframed(&lf, &crlf, LIT("abc\n"), LIT("abc\r\n"));
    expect_reframed(&crlf, &lf, LIT("abc\r\n"), LIT("abc\n"));
    expect_refused(&crlf, &lf, LIT("a\nb\r\n"), "payload contains the delimiter");
}

static void
test_reframe_length_to_length(void **state)
{
    struct cfg_codec dns = length(0, 2, CFG_BIG_ENDIAN, 0, 1024);
    struct cfg_codec le = length(1, 4, CFG_LITTLE_ENDIAN, -5, 1024);

    (void)state;
    expect_reframed(&dns, &le,
                    LIT("\x00\x03"
                        "xyz"),
                    LIT("\x00\x08\x00\x00\x00"
                        "xyz"));
}

static void
test_reframe_same_framing_moves_bytes(void **state)
{
    struct cfg_codec lf = line("\n", 64);
    struct cfg_codec lf_small = line("\n", 2);
    struct cfg_codec raw = plain(CFG_CODEC_RAW);
    struct cfg_codec resp = plain(CFG_CODEC_RESP);
    struct cfg_codec thrift = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);
    struct reframed r;

    (void)state;
    /* same framing: the bytes move as they are, even past the other max_frame */
    assert_int_equal(reframe(&lf, &lf_small, LIT("a\nb\n"), &r), 0);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.bytes, "a\nb\n", 4);
    assert_int_equal(reframe(&raw, &raw, LIT("anything"), &r), 0);
    assert_int_equal(r.len, 8);
    assert_int_equal(reframe(&resp, &resp, LIT("+OK\r\n"), &r), 0);
    assert_int_equal(r.len, 5);
    expect_reframed(&thrift, &thrift,
                    LIT("\x00\x00\x00\x01"
                        "!"),
                    LIT("\x00\x00\x00\x01"
                        "!"));
}

static void
test_reframe_other_pairs_refused(void **state)
{
    struct cfg_codec lf = line("\n", 64);
    struct cfg_codec raw = plain(CFG_CODEC_RAW);
    struct cfg_codec resp = plain(CFG_CODEC_RESP);
    struct cfg_codec http = plain(CFG_CODEC_HTTP);
    struct cfg_codec thrift = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);

    (void)state;
    expect_refused(&raw, &lf, LIT("abc"), "cannot re-frame");
    expect_refused(&lf, &raw, LIT("abc\n"), "cannot re-frame");
    expect_refused(&thrift, &resp, LIT("\x00\x00\x00\x00"), "cannot re-frame");
    expect_refused(&http, &thrift, LIT("GET / HTTP/1.0\r\n\r\n"), "cannot re-frame");
}

static void
test_reframe_short_frame(void **state)
{
    struct cfg_codec thrift = length(0, 4, CFG_BIG_ENDIAN, 0, 1024);
    struct cfg_codec crlf = line("\r\n", 64);

    (void)state;
    expect_refused(&thrift, &crlf, LIT("\x00\x00"), "frame shorter than its header");
    expect_refused(&crlf, &thrift, LIT("\n"), "frame shorter than its header");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_returns_what_is_buffered),
        cmocka_unit_test(test_raw_empty_is_again),
        cmocka_unit_test(test_line_lf),
        cmocka_unit_test(test_line_crlf),
        cmocka_unit_test(test_line_long_delimiter_overlaps),
        cmocka_unit_test(test_line_self_overlapping_delimiter),
        cmocka_unit_test(test_line_exactly_max_frame),
        cmocka_unit_test(test_line_too_long_after_frames),
        cmocka_unit_test(test_line_too_long_not_before),
        cmocka_unit_test(test_line_delimiter_split_at_max_frame),
        cmocka_unit_test(test_line_delimiter_past_max_frame_in_one_read),
        cmocka_unit_test(test_line_long_frame_then_short_ones),
        cmocka_unit_test(test_line_resumes_where_it_stopped),
        cmocka_unit_test(test_line_bad_delimiter),
        cmocka_unit_test(test_length_dns_over_tcp),
        cmocka_unit_test(test_length_thrift_framed),
        cmocka_unit_test(test_length_memcached_binary),
        cmocka_unit_test(test_length_mysql_packets),
        cmocka_unit_test(test_length_netty_offset0_size2),
        cmocka_unit_test(test_length_netty_length_counts_header),
        cmocka_unit_test(test_length_netty_header_before_field),
        cmocka_unit_test(test_length_netty_header_after_field),
        cmocka_unit_test(test_length_netty_headers_both_sides),
        cmocka_unit_test(test_length_netty_negative_adjust),
        cmocka_unit_test(test_length_size1),
        cmocka_unit_test(test_length_size2_little),
        cmocka_unit_test(test_length_size3_big_with_offset),
        cmocka_unit_test(test_length_size4_little),
        cmocka_unit_test(test_length_size8_big),
        cmocka_unit_test(test_length_size8_little_with_offset),
        cmocka_unit_test(test_length_too_long_from_header_alone),
        cmocka_unit_test(test_length_exactly_max_frame),
        cmocka_unit_test(test_length_too_long_memcached),
        cmocka_unit_test(test_length_error_after_frames),
        cmocka_unit_test(test_length_negative),
        cmocka_unit_test(test_length_negative_min_adjust),
        cmocka_unit_test(test_length_overflow_8_bytes),
        cmocka_unit_test(test_length_bad_field_size),
        cmocka_unit_test(test_resp_and_http_not_implemented),
        cmocka_unit_test(test_reframe_line_to_thrift),
        cmocka_unit_test(test_reframe_crlf_to_length_with_offset),
        cmocka_unit_test(test_reframe_dns_to_line),
        cmocka_unit_test(test_reframe_memcached_to_line),
        cmocka_unit_test(test_reframe_round_trip),
        cmocka_unit_test(test_reframe_empty_payload),
        cmocka_unit_test(test_reframe_field_too_small),
        cmocka_unit_test(test_reframe_negative_length),
        cmocka_unit_test(test_reframe_length_too_long_for_max_frame),
        cmocka_unit_test(test_reframe_line_too_long_for_max_frame),
        cmocka_unit_test(test_reframe_delimiter_in_payload),
        cmocka_unit_test(test_reframe_delimiter_across_the_seam),
        cmocka_unit_test(test_reframe_line_to_line),
        cmocka_unit_test(test_reframe_length_to_length),
        cmocka_unit_test(test_reframe_same_framing_moves_bytes),
        cmocka_unit_test(test_reframe_other_pairs_refused),
        cmocka_unit_test(test_reframe_short_frame),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
