/*
 * px_codec: frame boundaries of raw, line and length, each stream fed one byte
 * at a time, split in two at every byte and coalesced at random (fixed seed),
 * its last byte against a guard page; the errors, and the byte at which each
 * is reported; re-framing line <-> length.
 *
 * Most cases are rows of three tables (streams, answers, re-framings); each
 * row runs as a cmocka test of its own, named after the row.
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

#include "codec_test_util.h"

#define LINE(d, max)                                                                               \
    {                                                                                              \
        .type = CFG_CODEC_LINE, .max_frame = (max), .delimiter = {(char *)(d), sizeof(d) - 1 }     \
    }
#define LENGTH(off, size, order, adj, max)                                                         \
    {                                                                                              \
        .type = CFG_CODEC_LENGTH, .max_frame = (max), .field_offset = (off), .field_size = (size), \
        .byte_order = CFG_##order##_ENDIAN, .adjust = (adj)                                        \
    }
#define PLAIN(t)                                                                                   \
    {                                                                                              \
        .type = CFG_CODEC_##t, .max_frame = 1 << 20                                                \
    }
#define THRIFT LENGTH(0, 4, BIG, 0, 1024)

/* ---- streams: the input and the frames it must be cut into ---- */

static void
add_repeated(struct stream *s, int byte, size_t n)
{
    assert_true(s->len + n <= MAX_INPUT);
    memset(s->bytes + s->len, byte, n);
    s->len += n;
}

/* ---- input at a guard page: reading past its end faults ---- */

/* ---- ways to split an input ---- */

/* ---- feeding a codec ---- */

/* ---- table 1: streams, cut the same under every split ---- */

static const struct stream_case line_lf = {
    LINE("\n", 64),
    {B("GET /index.html\n"), B("\n"), B("PING\r\n"), B("set k 0 0 5\n"), B("x\0y\n")},
    .tail = B("no newline yet"),
};

static const struct stream_case line_crlf = {
    LINE("\r\n", 64),
    {B("+OK\r\n"), B("a\rb\nc\r\n"), B("\r\n"), B("\r\r\n"), B("\n\r\n")}, /* lone CR, LF */
    .tail = B("partial\r"),
};

static const struct stream_case line_long_delimiter_overlaps = {
    LINE("\r\n\r\n", 128),
    {B("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), B("\r\n\r\n"), B("x\r\n\r\r\n\r\n"),
     B("\r\r\r\n\n\r\n\r\n")},
    .tail = B("y\r\n\r"),
};

static const struct stream_case line_self_overlapping_delimiter = {
    LINE("aab", 32),
    {B("aaab"), B("xaaaaab"), B("aab"), B("abaab")},
    .tail = B("aaaa"),
};

static const struct stream_case line_exactly_max_frame = {
    LINE("\r\n", 8),
    {B("123456\r\n"), B("\r\n"), B("sluice\r\n")},
    .tail = B("abcdef\r"), /* 7 bytes: a "\n" would still fit */
};

static const struct stream_case line_too_long_after_frames = {
    LINE("\n", 16),
    {B("ok\n"), B("fifteen bytes!\n"), B("sixteen  bytes!\n")},
    .tail = B("this line has no end in sight"),
    .error = "line longer than max_frame",
};

/* example.com A and its answer (93.184.216.34), RFC 1035 4.2.2 */
static const struct stream_case length_dns_over_tcp = {
    LENGTH(0, 2, BIG, 0, 65537),
    {B("\x00\x1d"
       "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
       "\x07"
       "example\x03"
       "com\x00\x00\x01\x00\x01"),
     B("\x00\x2d"
       "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
       "\x07"
       "example\x03"
       "com\x00\x00\x01\x00\x01"
       "\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd8\x22")},
    .tail = B("\x00\x1d\x56\x78"),
};

/* TBinaryProtocol strict: ping, add(1, 2), the reply to ping */
static const struct stream_case length_thrift_framed = {
    LENGTH(0, 4, BIG, 0, 16 << 20),
    {B("\x00\x00\x00\x11\x80\x01\x00\x01\x00\x00\x00\x04ping\x00\x00\x00\x00\x00"),
     B("\x00\x00\x00\x1e\x80\x01\x00\x01\x00\x00\x00\x03"
       "add\x00\x00\x00\x01\x08\x00\x01\x00\x00\x00\x01\x08\x00\x02\x00\x00\x00\x02\x00"),
     B("\x00\x00\x00\x11\x80\x01\x00\x02\x00\x00\x00\x04ping\x00\x00\x00\x00\x00")},
    .tail = B("\x00\x00"),
};

/*
 * get "Hello", its response "World" with flags 0xdeadbeef (protocol_binary.txt),
 * a noop. The body length at offset 8 counts what follows the 24-byte header:
 * 8 + 4 + value + 12 = 24 + value.
 */
static const struct stream_case length_memcached_binary = {
    LENGTH(8, 4, BIG, 12, 1 << 20),
    {B("\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00"
       "\x00\x00\x00\x00\x00\x00\x00\x00Hello"),
     B("\x81\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00"
       "\x00\x00\x00\x00\x00\x00\x00\x01\xde\xad\xbe\xefWorld"),
     B("\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07"
       "\x00\x00\x00\x00\x00\x00\x00\x00")},
    .tail = B("\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00"),
};

/* 3-byte little-endian payload length, then a sequence id byte */
static const struct stream_case length_mysql_packets = {
    LENGTH(0, 3, LITTLE, 1, 1 << 24),
    {B("\x09\x00\x00\x00\x03SELECT 1"), B("\x01\x00\x00\x00\x0e"),
     B("\x05\x00\x00\x01\x02\x03\x04\x05\x06")},
    .tail = B("\x09\x00"),
};

/* Netty's LengthFieldBasedFrameDecoder examples, without stripping */
static const struct stream_case netty_offset0_size2 = {
    LENGTH(0, 2, BIG, 0, 1024),
    {B("\x00\x0cHELLO, WORLD"), B("\x00\x0cHELLO, WORLD")},
    .tail = B("\x00\x0cHELLO"),
};

static const struct stream_case netty_length_counts_header = {
    LENGTH(0, 2, BIG, -2, 1024),
    {B("\x00\x0eHELLO, WORLD"), B("\x00\x02"), /* the header alone */
     B("\x00\x0eHELLO, WORLD")},
    .tail = B("\x00"),
};

static const struct stream_case netty_header_before_field = {
    LENGTH(2, 3, BIG, 0, 1024),
    {B("\xca\xfe\x00\x00\x0cHELLO, WORLD"), B("\xca\xfe\x00\x00\x0cHELLO, WORLD")},
    .tail = B("\xca\xfe\x00\x00"),
};

static const struct stream_case netty_header_after_field = {
    LENGTH(0, 3, BIG, 2, 1024),
    {B("\x00\x00\x0c\xca\xfeHELLO, WORLD"), B("\x00\x00\x0c\xca\xfeHELLO, WORLD")},
    .tail = B("\x00\x00\x0c\xca"),
};

static const struct stream_case netty_headers_both_sides = {
    LENGTH(1, 2, BIG, 1, 1024),
    {B("\xca\x00\x0c\xfeHELLO, WORLD"), B("\xca\x00\x0c\xfeHELLO, WORLD")},
    .tail = B("\xca\x00"),
};

/* the field holds the whole message's length: 16 = 1 + 2 + 1 + 12 */
static const struct stream_case netty_negative_adjust = {
    LENGTH(1, 2, BIG, -3, 1024),
    {B("\xca\x00\x10\xfeHELLO, WORLD"), B("\xca\x00\x03"), /* 3 - 3: nothing after the field */
     B("\xca\x00\x10\xfeHELLO, WORLD")},
    .tail = B("\xca\x00\x10\xfe"),
};

static const struct stream_case length_size3_big_with_offset = {
    LENGTH(1, 3, BIG, 0, 1024),
    {B("\x17\x00\x00\x04wxyz"), B("\x17\x00\x00\x00")},
    .tail = B("\x17\x00\x00\x04wxy"),
};

static const struct stream_case length_size4_little = {
    LENGTH(0, 4, LITTLE, 0, 1024),
    {B("\x06\x00\x00\x00sluice"), B("\x00\x00\x00\x00"), B("\x01\x00\x00\x00!")},
    .tail = B("\x06\x00\x00"),
};

static const struct stream_case length_size8_big = {
    LENGTH(0, 8, BIG, 0, 1024),
    {B("\x00\x00\x00\x00\x00\x00\x00\x05hello"), B("\x00\x00\x00\x00\x00\x00\x00\x00"),
     B("\x00\x00\x00\x00\x00\x00\x00\x01x")},
    .tail = B("\x00\x00\x00\x00\x00\x00\x00\x09partial"),
};

/* the field holds the frame's total length */
static const struct stream_case length_size8_little_with_offset = {
    LENGTH(2, 8, LITTLE, -10, 1024),
    {B("\xab\xcd\x0f\x00\x00\x00\x00\x00\x00\x00world"),
     B("\xab\xcd\x0a\x00\x00\x00\x00\x00\x00\x00")},
    .tail = B("\xab\xcd\x0f\x00\x00\x00\x00\x00\x00"),
};

static const struct stream_case length_too_long_after_frames = {
    LENGTH(0, 2, BIG, 0, 64),
    {B("\x00\x02ok"), B("\x00\x00")},
    .tail = B("\x00\x3fthe rest never matters"),
    .error = "frame longer than max_frame",
};

static const struct stream_case length_negative_after_frames = {
    LENGTH(1, 2, BIG, -3, 1024),
    {B("\xca\x00\x03")},
    .tail = B("\xca\x00\x02\xfe"), /* 2 - 3 < 0 */
    .error = "negative frame length",
};

/* ---- streams built in code ---- */

static void
test_line_long_frame_then_short_ones(void **state)
{
    struct cfg_codec c = LINE("\n", 4096);
    struct stream s = {0};

    (void)state;
    add_repeated(&s, 'x', 1000);
    add_frame(&s, LIT("\n"));
    add_frame(&s, LIT("a\n"));
    add_bytes(&s, LIT("b"));
    check_splits(&c, &s);
}

static void
test_length_size1_largest_value(void **state)
{
    struct cfg_codec c = LENGTH(0, 1, BIG, 0, 1024);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x03xyz"));
    add_frame(&s, LIT("\x00"));
    add_bytes(&s, LIT("\xff"));
    add_repeated(&s, 'z', 255);
    end_frame(&s);
    add_bytes(&s, LIT("\x05xy"));
    check_splits(&c, &s);
}

static void
test_length_size2_little_order_matters(void **state)
{
    struct cfg_codec c = LENGTH(0, 2, LITTLE, 0, 1024);
    struct stream s = {0};

    (void)state;
    add_frame(&s, LIT("\x05\x00hello"));
    add_bytes(&s, LIT("\x02\x01")); /* 0x0102, not 0x0201 */
    add_repeated(&s, 'q', 0x102);
    end_frame(&s);
    add_bytes(&s, LIT("\x05"));
    check_splits(&c, &s);
}

static void
test_raw_returns_what_is_buffered(void **state)
{
    static const char text[] = "raw bytes have no frames\r\n\0 at all";
    static size_t ends[MAX_INPUT];
    struct cfg_codec c = PLAIN(RAW);
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
    struct cfg_codec c = PLAIN(RAW);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_AGAIN);
    assert_null(why);
    evbuffer_free(in);
}

/* ---- table 2: answers to input fed one byte at a time ---- */

#define TOO_LONG_LINE "line longer than max_frame"
#define TOO_LONG "frame longer than max_frame"
#define OVERFLOWS "frame length overflows"

/* 15 bytes and no delimiter: a 16th could still be "\n" */
static const struct answer_case line_not_too_long_before_max_frame = {
    LINE("\n", 16), B("0123456789abcde"), PX_AGAIN, 15, NULL};
static const struct answer_case line_of_max_frame = {LINE("\n", 16), B("0123456789abcde\n"), 16, 16,
                                                     NULL};
/* with the 16th byte no line can end within max_frame */
static const struct answer_case line_too_long_at_max_frame = {
    LINE("\n", 16), B("0123456789abcdefXYZ"), PX_ERROR, 16, TOO_LONG_LINE};
static const struct answer_case line_crlf_of_max_frame = {LINE("\r\n", 8), B("123456\r\n"), 8, 8,
                                                          NULL};
/* "1234567\r": the "\n" would make 9 */
static const struct answer_case line_crlf_split_at_max_frame = {LINE("\r\n", 8), B("1234567\r\n"),
                                                                PX_ERROR, 8, TOO_LONG_LINE};
static const struct answer_case line_empty_delimiter = {LINE("", 64), B("x\n"), PX_ERROR, 1,
                                                        "delimiter must be 1 to 8 bytes"};
/* 4 + 0x3fd = 1025 announced: rejected with the 4 header bytes alone */
static const struct answer_case length_too_long_from_header_alone = {
    THRIFT, B("\x00\x00\x03\xfdmore"), PX_ERROR, 4, TOO_LONG};
/* a 1MiB body: known at byte 12, before the 24-byte header ends */
static const struct answer_case length_too_long_memcached = {
    LENGTH(8, 4, BIG, 12, 1 << 20),
    B("\x80\x01\x00\x05\x08\x00\x00\x00\x00\x10\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
    PX_ERROR, 12, TOO_LONG};
static const struct answer_case length_negative_min_adjust = {LENGTH(0, 8, BIG, INT64_MIN, 1024),
                                                              B("\x7f\xff\xff\xff\xff\xff\xff\xff"),
                                                              PX_ERROR, 8, "negative frame length"};
static const struct answer_case length_overflow_all_ones = {
    LENGTH(0, 8, BIG, 0, 1024), B("\xff\xff\xff\xff\xff\xff\xff\xff"), PX_ERROR, 8, OVERFLOWS};
static const struct answer_case length_overflow_top_bit = {
    LENGTH(0, 8, BIG, 0, 1024), B("\x80\x00\x00\x00\x00\x00\x00\x00"), PX_ERROR, 8, OVERFLOWS};
static const struct answer_case length_overflow_adjust = {
    LENGTH(0, 8, BIG, 1, 1024), B("\x7f\xff\xff\xff\xff\xff\xff\xff"), PX_ERROR, 8, OVERFLOWS};
static const struct answer_case length_int64_max_too_long = {
    LENGTH(0, 8, BIG, 0, 1024), B("\x7f\xff\xff\xff\xff\xff\xff\xff"), PX_ERROR, 8, TOO_LONG};
static const struct answer_case length_little_too_long = {
    LENGTH(0, 8, LITTLE, -16, 1024), B("\xff\xff\xff\xff\xff\xff\xff\x7f"), PX_ERROR, 8, TOO_LONG};
static const struct answer_case length_bad_field_size = {
    LENGTH(0, 5, BIG, 0, 1024), B("\x00\x00\x00\x00\x01x"), PX_ERROR, 1,
    "length field must be 1, 2, 3, 4 or 8 bytes"};
/* resp frames now (test_codec_resp.c has its cases): a whole simple string, once it ends */
static const struct answer_case resp_simple_string = {PLAIN(RESP), B("+OK\r\n"), 5, 5, NULL};
static const struct answer_case http_not_implemented = {PLAIN(HTTP), B("GET / HTTP/1.1\r\n\r\n"),
                                                        PX_ERROR, 1, "codec not implemented"};

/* ---- answers checked in code ---- */

static void
test_length_exactly_max_frame(void **state)
{
    static uint8_t frame[1024 + 1];
    struct cfg_codec c = THRIFT;
    const char *why = NULL;
    size_t fed;

    (void)state;
    memcpy(frame, "\x00\x00\x03\xfc", 4); /* 4 + 1020 = 1024 */
    memset(frame + 4, 'm', sizeof(frame) - 4);
    assert_int_equal(trickle(&c, frame, sizeof(frame), &fed, &why), 1024);
    assert_int_equal(fed, 1024);
}

static void
test_line_delimiter_past_max_frame_in_one_read(void **state)
{
    struct cfg_codec c = LINE("\n", 8);
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    evbuffer_add(in, LIT("12345678\nok\n"));
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_ERROR);
    assert_string_equal(why, TOO_LONG_LINE);
    evbuffer_free(in);
}

static void
test_line_resumes_where_it_stopped(void **state)
{
    struct cfg_codec c = LINE("\r\n", 1024);
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

/* Re-framed bytes must be exactly one frame of the codec they were re-framed to. */
static void
assert_one_frame(const struct cfg_codec *to, const struct reframed *r)
{
    struct px_frame_state st = {0};
    const char *why = NULL;
    struct evbuffer *in;

    if (to->type == CFG_CODEC_HTTP) {
        return; /* not implemented yet */
    }
    in = evbuffer_new();
    assert_non_null(in);
    evbuffer_add(in, r->bytes, r->len);
    assert_int_equal(px_codec_frame(to, in, &st, &why), (ssize_t)r->len);
    evbuffer_free(in);
}

/* ---- table 3: re-framings ---- */

struct reframe_case {
    struct cfg_codec from, to;
    struct bytes in;   /* one whole frame of from */
    struct bytes want; /* p == NULL: refused, with why */
    const char *why;
};

static void
test_reframe(void **state)
{
    const struct reframe_case *c = *state;
    struct reframed r;

    if (c->want.p == NULL) {
        assert_int_equal(reframe(&c->from, &c->to, c->in.p, c->in.n, &r), -1);
        assert_string_equal(r.why, c->why);
        return;
    }
    assert_int_equal(reframe(&c->from, &c->to, c->in.p, c->in.n, &r), 0);
    assert_int_equal(r.len, c->want.n);
    assert_memory_equal(r.bytes, c->want.p, c->want.n);
    assert_one_frame(&c->to, &r);
}

#define IN_PAYLOAD "payload contains the delimiter"
#define CANNOT "cannot re-frame"
#define SHORT "frame shorter than its header"

static const struct reframe_case line_to_thrift = {LINE("\n", 64), THRIFT, B("ping\n"),
                                                   .want = B("\x00\x00\x00\x04ping")};
/* the field counts the whole frame: 2 + 2 + 3 */
static const struct reframe_case crlf_to_length_with_offset = {
    LINE("\r\n", 64), LENGTH(2, 2, LITTLE, -4, 1024), B("xyz\r\n"),
    .want = B("\x00\x00\x07\x00xyz")};
static const struct reframe_case dns_to_line = {LENGTH(0, 2, BIG, 0, 1024), LINE("\n", 64),
                                                B("\x00\x05hello"), .want = B("hello\n")};
/* what follows the length field: opaque, cas, key */
static const struct reframe_case memcached_to_line = {
    LENGTH(8, 4, BIG, 12, 1024), LINE("\r\n", 64),
    B("\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05OPAQCAS-CAS-Hello"),
    .want = B("OPAQCAS-CAS-Hello\r\n")};
static const struct reframe_case empty_line_to_length = {LINE("\n", 64), THRIFT, B("\n"),
                                                         .want = B("\x00\x00\x00\x00")};
static const struct reframe_case empty_length_to_line = {THRIFT, LINE("\n", 64),
                                                         B("\x00\x00\x00\x00"), .want = B("\n")};
/* 3 bytes of payload cannot be announced as 3 - 10 */
static const struct reframe_case negative_length = {LINE("\n", 64), LENGTH(0, 2, BIG, 10, 1024),
                                                    B("abc\n"), .why = "negative frame length"};
static const struct reframe_case zero_length = {LINE("\n", 64), LENGTH(0, 2, BIG, 10, 1024),
                                                B("ten bytes!\n"), .want = B("\x00\x00ten bytes!")};
static const struct reframe_case length_of_max_frame = {
    LINE("\n", 64), LENGTH(1, 2, BIG, 0, 8), B("hello\n"), .want = B("\x00\x00\x05hello")};
static const struct reframe_case length_over_max_frame = {LINE("\n", 64), LENGTH(1, 2, BIG, 0, 8),
                                                          B("hello!\n"), .why = TOO_LONG};
static const struct reframe_case line_of_max_frame_from_length = {
    LENGTH(0, 1, BIG, 0, 64), LINE("\r\n", 8), B("\x06sluice"), .want = B("sluice\r\n")};
static const struct reframe_case line_over_max_frame_from_length = {
    LENGTH(0, 1, BIG, 0, 64), LINE("\r\n", 8), B("\x07sluices"), .why = TOO_LONG};
static const struct reframe_case lf_in_payload = {THRIFT, LINE("\n", 64),
                                                  B("\x00\x00\x00\x07two\nfor"), .why = IN_PAYLOAD};
static const struct reframe_case lf_is_payload = {THRIFT, LINE("\n", 64), B("\x00\x00\x00\x01\n"),
                                                  .why = IN_PAYLOAD};
static const struct reframe_case crlf_in_payload = {THRIFT, LINE("\r\n", 64),
                                                    B("\x00\x00\x00\x04x\r\ny"), .why = IN_PAYLOAD};
static const struct reframe_case lf_cr_not_crlf = {
    THRIFT, LINE("\r\n", 64), B("\x00\x00\x00\x04x\n\ry"), .want = B("x\n\ry\r\n")};
static const struct reframe_case cr_before_crlf = {THRIFT, LINE("\r\n", 64),
                                                   B("\x00\x00\x00\x02x\r"), .want = B("x\r\r\n")};
/* "xyz\r\n" + "\r\n\r\n" would end two bytes early */
static const struct reframe_case seam_crlfcrlf = {LENGTH(0, 1, BIG, 0, 64), LINE("\r\n\r\n", 64),
                                                  B("\x05xyz\r\n"), .why = IN_PAYLOAD};
static const struct reframe_case no_seam_crlfcrlf = {LENGTH(0, 1, BIG, 0, 64), LINE("\r\n\r\n", 64),
                                                     B("\x04xyz\r"), .want = B("xyz\r\r\n\r\n")};
static const struct reframe_case seam_xyx = {LENGTH(0, 1, BIG, 0, 64), LINE("xyx", 64),
                                             B("\x03wxy"), .why = IN_PAYLOAD};
static const struct reframe_case seam_xyx_whole_payload = {
    LENGTH(0, 1, BIG, 0, 64), LINE("xyx", 64), B("\x02xy"), .why = IN_PAYLOAD};
static const struct reframe_case no_seam_xyx = {LENGTH(0, 1, BIG, 0, 64), LINE("xyx", 64),
                                                B("\x01x"), .want = B("xxyx")};
static const struct reframe_case lf_to_crlf = {LINE("\n", 64), LINE("\r\n", 64), B("abc\n"),
                                               .want = B("abc\r\n")};
static const struct reframe_case crlf_to_lf = {LINE("\r\n", 64), LINE("\n", 64), B("abc\r\n"),
                                               .want = B("abc\n")};
static const struct reframe_case crlf_to_lf_refused = {LINE("\r\n", 64), LINE("\n", 64),
                                                       B("a\nb\r\n"), .why = IN_PAYLOAD};
static const struct reframe_case length_to_length = {
    LENGTH(0, 2, BIG, 0, 1024), LENGTH(1, 4, LITTLE, -5, 1024), B("\x00\x03xyz"),
    .want = B("\x00\x08\x00\x00\x00xyz")};
/* same framing: the bytes move as they are, within the other max_frame */
static const struct reframe_case same_line = {LINE("\n", 64), LINE("\n", 2), B("a\n"),
                                              .want = B("a\n")};
static const struct reframe_case same_line_too_long = {LINE("\n", 64), LINE("\n", 2), B("ab\n"),
                                                       .why = TOO_LONG};
static const struct reframe_case same_length = {THRIFT, THRIFT, B("\x00\x00\x00\x01!"),
                                                .want = B("\x00\x00\x00\x01!")};
static const struct reframe_case same_raw = {PLAIN(RAW), PLAIN(RAW), B("any\0thing"),
                                             .want = B("any\0thing")};
static const struct reframe_case same_resp = {PLAIN(RESP), PLAIN(RESP), B("+OK\r\n"),
                                              .want = B("+OK\r\n")};
static const struct reframe_case raw_to_line = {PLAIN(RAW), LINE("\n", 64), B("abc"),
                                                .why = CANNOT};
static const struct reframe_case line_to_raw = {LINE("\n", 64), PLAIN(RAW), B("abc\n"),
                                                .why = CANNOT};
static const struct reframe_case length_to_resp = {THRIFT, PLAIN(RESP), B("\x00\x00\x00\x00"),
                                                   .why = CANNOT};
static const struct reframe_case http_to_length = {PLAIN(HTTP), THRIFT, B("GET / HTTP/1.0\r\n\r\n"),
                                                   .why = CANNOT};
static const struct reframe_case short_length_frame = {THRIFT, LINE("\r\n", 64), B("\x00\x00"),
                                                       .why = SHORT};
static const struct reframe_case short_line_frame = {LINE("\r\n", 64), THRIFT, B("\n"),
                                                     .why = SHORT};

/* ---- re-framings checked in code ---- */

static void
test_reframe_round_trip(void **state)
{
    struct cfg_codec a = LINE("\r\n", 64);
    struct cfg_codec b = LENGTH(3, 8, LITTLE, 5, 1024);
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
test_reframe_field_too_small(void **state)
{
    static char text[257];
    struct cfg_codec from = LINE("\n", 1024);
    struct cfg_codec to = LENGTH(0, 1, BIG, 0, 1024);
    struct reframed r;

    (void)state;
    memset(text, 'p', sizeof(text));
    text[255] = '\n';
    assert_int_equal(reframe(&from, &to, text, 256, &r), 0); /* 255 fits in a byte */
    assert_int_equal(r.len, 256);
    assert_int_equal(r.bytes[0], 0xff);
    text[255] = 'p';
    text[256] = '\n';
    assert_int_equal(reframe(&from, &to, text, sizeof(text), &r), -1);
    assert_string_equal(r.why, "payload too long for the length field");
}

#define ROW(fn, row)                                                                               \
    {                                                                                              \
#row, fn, NULL, NULL, (void *)&row                                                         \
    }
#define STREAM(row) ROW(test_stream, row)
#define ANSWER(row) ROW(test_answer, row)
#define REFRAME(row) ROW(test_reframe, row)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        STREAM(line_lf),
        STREAM(line_crlf),
        STREAM(line_long_delimiter_overlaps),
        STREAM(line_self_overlapping_delimiter),
        STREAM(line_exactly_max_frame),
        STREAM(line_too_long_after_frames),
        STREAM(length_dns_over_tcp),
        STREAM(length_thrift_framed),
        STREAM(length_memcached_binary),
        STREAM(length_mysql_packets),
        STREAM(netty_offset0_size2),
        STREAM(netty_length_counts_header),
        STREAM(netty_header_before_field),
        STREAM(netty_header_after_field),
        STREAM(netty_headers_both_sides),
        STREAM(netty_negative_adjust),
        STREAM(length_size3_big_with_offset),
        STREAM(length_size4_little),
        STREAM(length_size8_big),
        STREAM(length_size8_little_with_offset),
        STREAM(length_too_long_after_frames),
        STREAM(length_negative_after_frames),
        cmocka_unit_test(test_line_long_frame_then_short_ones),
        cmocka_unit_test(test_length_size1_largest_value),
        cmocka_unit_test(test_length_size2_little_order_matters),
        cmocka_unit_test(test_raw_returns_what_is_buffered),
        cmocka_unit_test(test_raw_empty_is_again),
        ANSWER(line_not_too_long_before_max_frame),
        ANSWER(line_of_max_frame),
        ANSWER(line_too_long_at_max_frame),
        ANSWER(line_crlf_of_max_frame),
        ANSWER(line_crlf_split_at_max_frame),
        ANSWER(line_empty_delimiter),
        ANSWER(length_too_long_from_header_alone),
        ANSWER(length_too_long_memcached),
        ANSWER(length_negative_min_adjust),
        ANSWER(length_overflow_all_ones),
        ANSWER(length_overflow_top_bit),
        ANSWER(length_overflow_adjust),
        ANSWER(length_int64_max_too_long),
        ANSWER(length_little_too_long),
        ANSWER(length_bad_field_size),
        ANSWER(resp_simple_string),
        ANSWER(http_not_implemented),
        cmocka_unit_test(test_length_exactly_max_frame),
        cmocka_unit_test(test_line_delimiter_past_max_frame_in_one_read),
        cmocka_unit_test(test_line_resumes_where_it_stopped),
        REFRAME(line_to_thrift),
        REFRAME(crlf_to_length_with_offset),
        REFRAME(dns_to_line),
        REFRAME(memcached_to_line),
        REFRAME(empty_line_to_length),
        REFRAME(empty_length_to_line),
        REFRAME(negative_length),
        REFRAME(zero_length),
        REFRAME(length_of_max_frame),
        REFRAME(length_over_max_frame),
        REFRAME(line_of_max_frame_from_length),
        REFRAME(line_over_max_frame_from_length),
        REFRAME(lf_in_payload),
        REFRAME(lf_is_payload),
        REFRAME(crlf_in_payload),
        REFRAME(lf_cr_not_crlf),
        REFRAME(cr_before_crlf),
        REFRAME(seam_crlfcrlf),
        REFRAME(no_seam_crlfcrlf),
        REFRAME(seam_xyx),
        REFRAME(seam_xyx_whole_payload),
        REFRAME(no_seam_xyx),
        REFRAME(lf_to_crlf),
        REFRAME(crlf_to_lf),
        REFRAME(crlf_to_lf_refused),
        REFRAME(length_to_length),
        REFRAME(same_line),
        REFRAME(same_line_too_long),
        REFRAME(same_length),
        REFRAME(same_raw),
        REFRAME(same_resp),
        REFRAME(raw_to_line),
        REFRAME(line_to_raw),
        REFRAME(length_to_resp),
        REFRAME(http_to_length),
        REFRAME(short_length_frame),
        REFRAME(short_line_frame),
        cmocka_unit_test(test_reframe_round_trip),
        cmocka_unit_test(test_reframe_field_too_small),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
