/*
 * px_codec resp: frame boundaries of RESP2/RESP3 streams and inline commands,
 * each stream fed one byte at a time, split in two at every byte and coalesced
 * at random (fixed seed), its last byte against a guard page; the errors and
 * the byte at which each is reported; the limits (max_frame, element count,
 * line length), and nesting as deep as max_frame allows; and a large bulk string arriving in small
 * reads, which must not be parsed again on every read.
 *
 * Most cases are rows of two tables (streams, answers); each row runs as a
 * cmocka test of its own, named after the row.
 */
#include "proxy/codec/px_codec.h"

#include <event2/buffer.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec_test_util.h"

#define MiB ((uint64_t)1 << 20)

#define RESP(max)                                                                                  \
    {                                                                                              \
        .type = CFG_CODEC_RESP, .max_frame = (max)                                                 \
    }
#define RESP_DEFAULT RESP(512 * MiB) /* cfg_schema.c's default */

/* ---- streams: the input and the frames it must be cut into ---- */

/* Add text n times. */
static void
add_times(struct stream *s, const char *text, size_t n)
{
    while (n-- > 0) {
        add_bytes(s, text, strlen(text));
    }
}

/* ---- input at a guard page: reading past its end faults ---- */

/* ---- ways to split an input ---- */

/* ---- feeding the codec ---- */

/* ---- table 1: streams, cut the same under every split ---- */

#define TOO_LONG "frame longer than max_frame"
#define LINE_TOO_LONG "resp line longer than 64KiB"
#define BAD_LENGTH "resp length is not a number"
#define NEGATIVE "resp length is negative"
#define OVERFLOWS "resp length overflows"
#define TOO_MANY "resp aggregate has more than 1048576 elements"
#define BAD_TYPE "unknown resp type byte"
#define NO_CRLF "resp bulk payload not followed by CRLF"

/* Only "\r\n" ends a line: a lone CR or LF belongs to it. Content is not judged. */
static const struct stream_case resp_simple_lines = {
    RESP_DEFAULT,
    {B("+OK\r\n"), B("-ERR unknown command 'foo'\r\n"), B("+\r\n"), B("+a\rb\nc\r\n"),
     B("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")},
    .tail = B("+PONG\r"),
};

static const struct stream_case resp_integers = {
    RESP_DEFAULT,
    {B(":0\r\n"), B(":42\r\n"), B(":-7\r\n"), B(":9223372036854775807\r\n"),
     B(":-9223372036854775808\r\n")},
    .tail = B(":1"),
};

static const struct stream_case resp3_scalars = {
    RESP_DEFAULT,
    {B("_\r\n"), B("#t\r\n"), B("#f\r\n"), B(",1.23\r\n"), B(",inf\r\n"), B(",-inf\r\n"),
     B(",nan\r\n"), B(",10\r\n"), B("(3492890328409238509324850943850943825024385\r\n"),
     B("(-3\r\n")},
    .tail = B("_\r"),
};

static const struct stream_case resp_bulk_strings = {
    RESP_DEFAULT,
    {B("$3\r\nfoo\r\n"), B("$0\r\n\r\n"), B("$-1\r\n"), B("$6\r\nfoobar\r\n"),
     B("$8\r\na\r\nb\n\r\r\n\r\n"), /* CRLFs inside are payload */
     B("$4\r\n\0\xff$*\r\n"), B("$2\r\n\r\n\r\n")},
    .tail = B("$10\r\nabcde"),
};

static const struct stream_case resp3_bulk_errors_and_verbatim = {
    RESP_DEFAULT,
    {B("!21\r\nSYNTAX invalid syntax\r\n"), B("=15\r\ntxt:Some string\r\n"), B("!0\r\n\r\n"),
     B("=4\r\nmkd:\r\n")},
    .tail = B("=15\r\ntxt:Some"),
};

static const struct stream_case resp_arrays = {
    RESP_DEFAULT,
    {B("*2\r\n$3\r\nfoo\r\n:42\r\n"), B("*0\r\n"), B("*-1\r\n"), B("*3\r\n:1\r\n:2\r\n:3\r\n"),
     B("*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n$5\r\nhello\r\n"), B("*1\r\n$-1\r\n"),
     B("*3\r\n$3\r\nfoo\r\n$-1\r\n$3\r\nbar\r\n")},
    .tail = B("*2\r\n:1\r\n"),
};

static const struct stream_case resp_nested_arrays = {
    RESP_DEFAULT,
    {B("*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n"), B("*2\r\n*0\r\n*-1\r\n"),
     B("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
     B("*3\r\n*1\r\n*0\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n_\r\n")},
    .tail = B("*2\r\n*2\r\n:1\r\n:2\r\n"),
};

static const struct stream_case redis_requests_pipelined = {
    RESP_DEFAULT,
    {B("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), B("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"),
     B("*1\r\n$4\r\nPING\r\n"), B("*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"),
     B("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")},
    .tail = B("*2\r\n$3\r\nGET\r\n$3\r\nke"),
};

/* what redis-server answers the requests above, RESP2 then RESP3 */
static const struct stream_case redis_replies_pipelined = {
    RESP_DEFAULT,
    {B("+OK\r\n"), B("$5\r\nvalue\r\n"), B("+PONG\r\n"), B("*3\r\n$-1\r\n$1\r\n1\r\n$-1\r\n"),
     B("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n"
       "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
       "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"),
     B(":1\r\n"), B("_\r\n")},
    .tail = B("$5\r\nval"),
};

static const struct stream_case resp3_maps = {
    RESP_DEFAULT,
    {B("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"), B("%0\r\n"),
     B("%1\r\n$1\r\nk\r\n%1\r\n$1\r\nj\r\n*2\r\n:1\r\n:2\r\n"),
     B("%1\r\n*2\r\n:1\r\n:2\r\n~1\r\n#t\r\n")},
    .tail = B("%2\r\n+first\r\n:1\r\n+second\r\n"), /* a key without its value */
};

static const struct stream_case resp3_sets = {
    RESP_DEFAULT,
    {B("~5\r\n+orange\r\n+apple\r\n#t\r\n:100\r\n:999\r\n"), B("~0\r\n"),
     B("~2\r\n~1\r\n_\r\n%0\r\n")},
    .tail = B("~1\r\n"),
};

/* the attribute and the value it annotates make one frame (RESP3 spec's examples) */
static const struct stream_case resp3_attributes = {
    RESP_DEFAULT,
    {B("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
       "*2\r\n:2039123\r\n:9543892\r\n"),
     B("*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n"), B("|0\r\n+OK\r\n"),
     B("|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n+v\r\n"), B("*1\r\n|1\r\n+x\r\n+y\r\n*1\r\n:5\r\n"),
     B("|1\r\n|1\r\n+k\r\n+v\r\n+annotated key\r\n:7\r\n$1\r\nx\r\n")},
    .tail = B("|1\r\n+key\r\n+value\r\n"), /* the annotated value is still to come */
};

static const struct stream_case resp3_pushes = {
    RESP_DEFAULT,
    {B(">3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n"), B("+OK\r\n"),
     B(">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
     B(">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n"), B(":1\r\n"),
     B(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")},
    .tail = B(">3\r\n$7\r\nmessage\r\n"),
};

/* Redis skips a request whose count is 0 or negative ("*-10"): each is a frame of its own */
static const struct stream_case resp_requests_counted_negative = {
    RESP_DEFAULT,
    {B("*-10\r\n"), B("*1\r\n$4\r\nPING\r\n"), B("*-1\r\n"), B("*0\r\n"),
     B("*-922337203685477580\r\n"), B("*-2\r\n")},
    .tail = B("*-3"),
};

/* a line up to "\n", CR or not; an empty line is a frame too */
static const struct stream_case resp_inline_commands = {
    RESP_DEFAULT,
    {B("PING\r\n"), B("SET k v\n"), B("\r\n"), B("\n"), B("GET k\r\n"), B("EXISTS a\rb\n"),
     B("*1\r\n$4\r\nPING\r\n"), B("ECHO \"+$*\"\r\n")},
    .tail = B("EXISTS k"),
};

static const struct stream_case resp_everything_pipelined = {
    RESP_DEFAULT,
    {B("PING\n"), B("+PONG\r\n"), B("*1\r\n$4\r\nPING\r\n"), B("-ERR x\r\n"), B(":5\r\n"),
     B("$1\r\n\n\r\n"), B("*-1\r\n"), B("_\r\n"), B(",.5\r\n"), B("#f\r\n"), B("(1\r\n"),
     B("!1\r\nE\r\n"), B("=5\r\ntxt:x\r\n"), B("%1\r\n:1\r\n~1\r\n>1\r\n:2\r\n"),
     B("|1\r\n:1\r\n:2\r\n*0\r\n"), B(">1\r\n|0\r\n_\r\n")},
    .tail = B("\r"),
};

/* max_frame 32: frames of exactly 32, then a bulk that can only end past it */
static const struct stream_case resp_exactly_max_frame = {
    RESP(32),
    {B("$25\r\n0123456789012345678901234\r\n"), B("+01234567890123456789012345678\r\n"),
     B("*2\r\n$8\r\nabcdefgh\r\n$8\r\nabcdefgh\r\n"),
     B("*9\r\n_\r\n_\r\n_\r\n_\r\n_\r\n_\r\n_\r\n_\r\n:1\r\n")},
    .tail = B("$26\r\n"),
    .error = TOO_LONG,
};

static const struct stream_case resp_bad_type_nested_after_frames = {
    RESP_DEFAULT,
    {B("+OK\r\n"), B("*1\r\n:1\r\n")},
    .tail = B("*2\r\n:1\r\nPING\r\n"),
    .error = BAD_TYPE,
};

static const struct stream_case resp_no_crlf_after_frames = {
    RESP_DEFAULT,
    {B("$3\r\nfoo\r\n")},
    .tail = B("$3\r\nfoobar\r\n"),
    .error = NO_CRLF,
};

static const struct stream_case resp_bad_length_after_frames = {
    RESP_DEFAULT,
    {B("*0\r\n")},
    .tail = B("*1\r\n$3x\r\nfoo\r\n"),
    .error = BAD_LENGTH,
};

/* ---- streams built in code ---- */

/* 1,000 arrays deep, as an EVAL can return: no depth limit, only max_frame. */
static void
test_resp_nested_1000_arrays(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct stream s = {0};

    (void)state;
    add_times(&s, "*1\r\n", 1000);
    add_frame(&s, LIT("_\r\n"));
    add_times(&s, "*1\r\n", 20);
    check_splits(&c, &s);
}

/* 750 levels of sets, pushes and maps (whose keys are values too). */
static void
test_resp_nested_750_resp3(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct stream s = {0};

    (void)state;
    add_times(&s, "~1\r\n>1\r\n%1\r\n+k\r\n", 250);
    add_frame(&s, LIT(":1\r\n"));
    add_times(&s, "%1\r\n", 20);
    check_splits(&c, &s);
}

/* Attributes open and close on the way down: each leaves its slot to the value it annotates. */
static void
test_resp_nested_attributes(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct stream s = {0};

    (void)state;
    add_times(&s, "*1\r\n|1\r\n+a\r\n+b\r\n", 100);
    add_frame(&s, LIT("+x\r\n"));
    add_times(&s, "|1\r\n", 150); /* attributes of attributes */
    add_times(&s, "+a\r\n+b\r\n", 150);
    add_bytes(&s, LIT("|0\r\n"));
    add_frame(&s, LIT(":1\r\n"));
    add_times(&s, "|1\r\n", 10);
    check_splits(&c, &s);
}

/* Depth costs bytes: 15 levels and a value fit in 64, a 16th level cannot. */
static void
test_resp_nesting_bounded_by_max_frame(void **state)
{
    struct cfg_codec c = RESP(64);
    struct stream s = {0};

    (void)state;
    add_times(&s, "*1\r\n", 15);
    add_frame(&s, LIT("_\r\n"));
    add_times(&s, "*1\r\n", 16);
    s.error = TOO_LONG;
    check_splits(&c, &s);
}

static void
test_resp_many_small_frames(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct stream s = {0};
    size_t i;

    (void)state;
    for (i = 0; i < MAX_FRAMES - 1; i++) {
        add_frame(&s, LIT(":1\r\n"));
    }
    add_bytes(&s, LIT(":"));
    check_splits(&c, &s);
}

static void
test_resp_wide_array(void **state)
{
    struct cfg_codec c = RESP(1024);
    struct stream s = {0};

    (void)state;
    add_bytes(&s, LIT("*200\r\n"));
    add_times(&s, ":1\r\n", 199);
    add_frame(&s, LIT("_\r\n"));    /* 6 + 199 * 4 + 3 = 805 */
    add_bytes(&s, LIT("*340\r\n")); /* 6 + 340 * 3 = 1026: cannot fit */
    s.error = TOO_LONG;
    check_splits(&c, &s);
}

/* ---- table 2: answers to input fed one byte at a time ---- */

#define ERR(max, text, at, reason)                                                                 \
    {                                                                                              \
        RESP(max), B(text), PX_ERROR, at, reason                                                   \
    }
#define AGAIN(max, text)                                                                           \
    {                                                                                              \
        RESP(max), B(text), PX_AGAIN, sizeof(text) - 1, NULL                                       \
    }

/* 7 + 1018 + 2 = 1027 > 1024: rejected with only the header buffered */
static const struct answer_case bulk_too_long_from_header = ERR(1024, "$1018\r\nxxxx", 7, TOO_LONG);
static const struct answer_case bulk_fits_max_frame = AGAIN(1024, "$1015\r\nxxxx");
/* 12 + 512MiB + 2 */
static const struct answer_case bulk_over_512mib = ERR(512 * MiB, "$536870912\r\n", 12, TOO_LONG);
/* 12 + 536870898 + 2 = 512MiB exactly */
static const struct answer_case bulk_of_512mib = AGAIN(512 * MiB, "$536870898\r\n");
/* the two other values of the array need 3 bytes each: 9 + 50 + 2 + 6 = 67 */
static const struct answer_case bulk_too_long_with_siblings =
    ERR(64, "*3\r\n$50\r\nabc", 9, TOO_LONG);
static const struct answer_case bulk_fits_with_siblings = AGAIN(64, "*3\r\n$47\r\nabc");
static const struct answer_case verbatim_too_long = ERR(64, "=60\r\ntxt:", 5, TOO_LONG);
static const struct answer_case array_too_many_elements =
    ERR(512 * MiB, "*1048577\r\n", 10, TOO_MANY);
static const struct answer_case array_most_elements = AGAIN(512 * MiB, "*1048576\r\n:1\r\n");
static const struct answer_case map_too_many_entries = ERR(512 * MiB, "%1048577\r\n", 10, TOO_MANY);
static const struct answer_case set_too_many_elements =
    ERR(512 * MiB, "*1\r\n~2000000\r\n", 14, TOO_MANY);
/* 10 + 3 * 1048576 bytes at least */
static const struct answer_case array_too_long_for_max_frame =
    ERR(1 * MiB, "*1048576\r\n", 10, TOO_LONG);
static const struct answer_case push_too_long_for_max_frame = ERR(64, ">20\r\n", 5, TOO_LONG);
static const struct answer_case map_counts_pairs = ERR(64, "%10\r\n", 5, TOO_LONG);
static const struct answer_case map_pairs_fit = AGAIN(64, "%9\r\n");
static const struct answer_case line_too_long_for_max_frame =
    ERR(16, "+0123456789abcdef\r\n", 16, TOO_LONG);
static const struct answer_case inline_too_long_for_max_frame =
    ERR(16, "GET 0123456789ab\n", 16, TOO_LONG);
static const struct answer_case bulk_length_letters = ERR(1024, "$abc\r\n", 6, BAD_LENGTH);
static const struct answer_case bulk_length_empty = ERR(1024, "$\r\n", 3, BAD_LENGTH);
static const struct answer_case bulk_length_plus = ERR(1024, "$+5\r\nhello\r\n", 5, BAD_LENGTH);
static const struct answer_case bulk_length_space = ERR(1024, "$5 \r\nhello\r\n", 5, BAD_LENGTH);
static const struct answer_case bulk_length_minus_alone = ERR(1024, "$-\r\n", 4, BAD_LENGTH);
static const struct answer_case bulk_length_minus_minus = ERR(1024, "$--1\r\n", 6, BAD_LENGTH);
static const struct answer_case bulk_length_minus_2 = ERR(1024, "$-2\r\n", 5, NEGATIVE);
static const struct answer_case bulk_length_minus_0 = ERR(1024, "$-0\r\n", 5, NEGATIVE);
/* only a frame's own count may be any negative number (a request Redis skips) */
static const struct answer_case array_length_minus_2 = ERR(1024, "*1\r\n*-2\r\n", 9, NEGATIVE);
static const struct answer_case array_length_minus_0 = ERR(1024, "*-0\r\n", 5, NEGATIVE);
static const struct answer_case array_length_minus_alone = ERR(1024, "*-\r\n", 4, BAD_LENGTH);
static const struct answer_case map_null_refused = ERR(1024, "%-1\r\n", 5, NEGATIVE);
static const struct answer_case set_null_refused = ERR(1024, "~-1\r\n", 5, NEGATIVE);
static const struct answer_case push_null_refused = ERR(1024, ">-1\r\n", 5, NEGATIVE);
static const struct answer_case attribute_null_refused = ERR(1024, "|-1\r\n", 5, NEGATIVE);
static const struct answer_case bulk_error_null_refused = ERR(1024, "!-1\r\n", 5, NEGATIVE);
static const struct answer_case verbatim_null_refused = ERR(1024, "=-1\r\n", 5, NEGATIVE);
/* 20 digits: more than INT64_MAX can have */
static const struct answer_case bulk_length_20_digits =
    ERR(512 * MiB, "$00000000000000000005\r\n", 23, OVERFLOWS);
static const struct answer_case bulk_length_int64_max_plus_1 =
    ERR(512 * MiB, "$9223372036854775808\r\n", 22, OVERFLOWS);
static const struct answer_case bulk_length_int64_max =
    ERR(512 * MiB, "$9223372036854775807\r\n", 22, TOO_LONG);
static const struct answer_case array_length_huge =
    ERR(512 * MiB, "*99999999999999999999999\r\n", 26, OVERFLOWS);
static const struct answer_case nested_bad_length = ERR(1024, "*1\r\n$1x\r\nx\r\n", 9, BAD_LENGTH);
static const struct answer_case payload_without_crlf = ERR(1024, "$3\r\nfooXY", 9, NO_CRLF);
static const struct answer_case payload_then_cr_only = ERR(1024, "$3\r\nfoo\rX", 9, NO_CRLF);
static const struct answer_case payload_then_lf_cr = ERR(1024, "$3\r\nfoo\n\r", 9, NO_CRLF);
static const struct answer_case payload_one_too_long = ERR(1024, "$3\r\nfoob\r\n", 9, NO_CRLF);
static const struct answer_case empty_payload_without_crlf = ERR(1024, "$0\r\nab", 6, NO_CRLF);
static const struct answer_case nested_payload_without_crlf =
    ERR(1024, "*2\r\n$1\r\nab\r\n", 11, NO_CRLF);
static const struct answer_case bad_type_in_array = ERR(1024, "*2\r\n:1\r\n?1\r\n", 9, BAD_TYPE);
static const struct answer_case inline_inside_array = ERR(1024, "*1\r\nPING\r\n", 5, BAD_TYPE);
static const struct answer_case crlf_inside_array = ERR(1024, "*1\r\n\r\n", 5, BAD_TYPE);
static const struct answer_case bad_type_in_map_value = ERR(1024, "%1\r\n+k\r\nv\r\n", 9, BAD_TYPE);
static const struct answer_case bad_type_after_attribute = ERR(1024, "|0\r\n@\r\n", 5, BAD_TYPE);
/* "\n" alone does not end a header line */
static const struct answer_case header_needs_crlf = AGAIN(1024, "+OK\n:1\n$3\n");
static const struct answer_case array_frame_at_last_byte = {
    RESP(1024), B("*2\r\n$3\r\nfoo\r\n:42\r\n+next"), 18, 18, NULL};
static const struct answer_case attribute_frame_at_last_byte = {
    RESP(1024), B("|1\r\n+a\r\n+b\r\n:1\r\n"), 16, 16, NULL};

/* ---- answers checked in code ---- */

/*
 * text + n filler bytes + end: the answer to all but its last byte (which must
 * be PX_AGAIN), and to all of it. A 64KiB line fed a byte at a time would walk
 * 64Ki chains per call.
 */
static ssize_t
long_line(const struct cfg_codec *c, const char *text, size_t n, const char *end, size_t upto,
          const char **why)
{
    size_t len = strlen(text) + n + strlen(end);
    struct px_frame_state st = {0};
    char *p = malloc(len);
    ssize_t r;

    assert_non_null(p);
    assert_true(upto <= len);
    memcpy(p, text, strlen(text));
    memset(p + strlen(text), 'a', n);
    memcpy(p + strlen(text) + n, end, strlen(end));
    assert_int_equal(at_once(c, p, upto - 1, &st, why), PX_AGAIN);
    r = at_once(c, p, upto, &st, why);
    free(p);
    return r;
}

static void
test_resp_header_of_64kib(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    const char *why = NULL;

    (void)state;
    assert_int_equal(long_line(&c, "+", 65533, "\r\n", 65536, &why), 65536);
    /* "-" and 65535 more bytes: no "\r\n" can end within 64KiB */
    assert_int_equal(long_line(&c, "-", 65534, "\r\n", 65536, &why), PX_ERROR);
    assert_string_equal(why, LINE_TOO_LONG);
    /* counted from the nested type byte */
    assert_int_equal(long_line(&c, "*1\r\n+", 65533, "\r\n", 4 + 65536, &why), 4 + 65536);
    assert_int_equal(long_line(&c, "*1\r\n+", 65534, "\r\n", 4 + 65536, &why), PX_ERROR);
    assert_string_equal(why, LINE_TOO_LONG);
}

static void
test_resp_inline_of_64kib(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    const char *why = NULL;

    (void)state;
    assert_int_equal(long_line(&c, "SET k ", 65529, "\n", 65536, &why), 65536);
    assert_int_equal(long_line(&c, "SET k ", 65529, "\r\n", 65536, &why), PX_ERROR);
    assert_string_equal(why, LINE_TOO_LONG);
}

static void
test_resp_empty_buffer_is_again(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct evbuffer *in = evbuffer_new();
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_AGAIN);
    assert_null(why);
    evbuffer_free(in);
}

/* The frame is the first value however many follow in the same buffer. */
static void
test_resp_first_of_many_at_once(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(at_once(&c, LIT("*1\r\n:1\r\n*1\r\n:2\r\n"), &st, &why), 8);
    assert_int_equal(at_once(&c, LIT("PING\nPING\n"), &st, &why), 5);
    assert_int_equal(at_once(&c, LIT("$-1\r\n$-1\r\n"), &st, &why), 5);
}

/* A bulk header says how much must arrive; below that the buffer is not read at all. */
static void
test_resp_bound_skips_reading(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct px_frame_state st = {0};
    const char *why = NULL;
    struct evbuffer *in = evbuffer_new();
    static char garbage[100];

    (void)state;
    assert_int_equal(at_once(&c, LIT("*2\r\n$100\r\nabc"), &st, &why), PX_AGAIN);
    assert_int_equal(st.scanned, 10 + 100 + 2);
    memset(garbage, '?', sizeof(garbage)); /* an error, were it read */
    evbuffer_add(in, garbage, sizeof(garbage));
    assert_int_equal(px_codec_frame(&c, in, &st, &why), PX_AGAIN);
    assert_null(why);
    evbuffer_free(in);
}

/* The bound from the first bulk string, then from the second. */
static void
test_resp_bound_per_bulk(void **state)
{
    struct cfg_codec c = RESP_DEFAULT;
    struct px_frame_state st = {0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(at_once(&c, LIT("*2\r\n$3\r\nfo"), &st, &why), PX_AGAIN);
    assert_int_equal(st.scanned, 13);
    assert_int_equal(at_once(&c, LIT("*2\r\n$3\r\nfoo\r\n$4\r\nb"), &st, &why), PX_AGAIN);
    assert_int_equal(st.scanned, 23);
    assert_int_equal(at_once(&c, LIT("*2\r\n$3\r\nfoo\r\n$4\r\nbarz\r\n"), &st, &why), 23);
    assert_int_equal(st.scanned, 0);
}

/* An 8MiB value in 4KiB reads: every read but the last is answered from st->scanned. */
static void
test_resp_8mib_bulk_in_4kib_reads(void **state)
{
    enum { PIECE = 4096, PAYLOAD = 8 << 20 };
    static const char header[] = "*2\r\n$8388608\r\n";
    size_t hlen = sizeof(header) - 1, len = hlen + PAYLOAD + 6, pos, calls = 0;
    struct cfg_codec c = RESP_DEFAULT;
    struct px_frame_state st = {0};
    struct evbuffer *in = evbuffer_new();
    const char *why = NULL;
    uint8_t *data = malloc(len);
    ssize_t r = PX_AGAIN;
    clock_t start;

    (void)state;
    assert_non_null(in);
    assert_non_null(data);
    memcpy(data, header, hlen);
    memset(data + hlen, '$', PAYLOAD); /* "$" everywhere: any scan of it would go wrong */
    memcpy(data + hlen + PAYLOAD, "\r\n:1\r\n", 6); /* and the array's second value */
    start = clock();
    for (pos = 0; pos < len && r == PX_AGAIN; pos += PIECE) {
        size_t n = len - pos < PIECE ? len - pos : PIECE;

        assert_int_equal(evbuffer_add_reference(in, data + pos, n, NULL, NULL), 0);
        r = px_codec_frame(&c, in, &st, &why);
        calls++;
        if (r == PX_AGAIN && pos >= PIECE) {
            assert_int_equal(st.scanned, hlen + PAYLOAD + 2);
        }
    }
    assert_int_equal(r, (ssize_t)len);
    assert_int_equal(calls, (len + PIECE - 1) / PIECE);
    assert_int_equal(st.scanned, 0);
    /* one parse per read would be 2049 walks of up to 2049 chains: still fast; the bound
     * keeps it to two. Loose: an order of magnitude above what sanitizers need. */
    assert_true((double)(clock() - start) / CLOCKS_PER_SEC < 2.0);
    evbuffer_free(in);
    free(data);
}

/* A reply of many small values read in 1KiB pieces still comes out whole. */
static void
test_resp_large_array_in_pieces(void **state)
{
    enum { N = 20000, PIECE = 1024 };
    struct cfg_codec c = RESP_DEFAULT;
    struct px_frame_state st = {0};
    struct evbuffer *in = evbuffer_new();
    const char *why = NULL;
    size_t len = 0, pos, i;
    char *data = malloc(16 + N * 9);
    ssize_t r = PX_AGAIN;

    (void)state;
    assert_non_null(data);
    len += (size_t)sprintf(data, "*%d\r\n", N);
    for (i = 0; i < N; i++) {
        memcpy(data + len, "$3\r\nabc\r\n", 9);
        len += 9;
    }
    for (pos = 0; pos < len && r == PX_AGAIN; pos += PIECE) {
        size_t n = len - pos < PIECE ? len - pos : PIECE;

        evbuffer_add(in, data + pos, n);
        r = px_codec_frame(&c, in, &st, &why);
    }
    assert_int_equal(r, (ssize_t)len);
    evbuffer_free(in);
    free(data);
}

#define ROW(fn, row)                                                                               \
    {                                                                                              \
#row, fn, NULL, NULL, (void *)&row                                                         \
    }
#define STREAM(row) ROW(test_stream, row)
#define ANSWER(row) ROW(test_answer, row)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        STREAM(resp_simple_lines),
        STREAM(resp_integers),
        STREAM(resp3_scalars),
        STREAM(resp_bulk_strings),
        STREAM(resp3_bulk_errors_and_verbatim),
        STREAM(resp_arrays),
        STREAM(resp_nested_arrays),
        STREAM(resp_requests_counted_negative),
        STREAM(redis_requests_pipelined),
        STREAM(redis_replies_pipelined),
        STREAM(resp3_maps),
        STREAM(resp3_sets),
        STREAM(resp3_attributes),
        STREAM(resp3_pushes),
        STREAM(resp_inline_commands),
        STREAM(resp_everything_pipelined),
        STREAM(resp_exactly_max_frame),
        STREAM(resp_bad_type_nested_after_frames),
        STREAM(resp_no_crlf_after_frames),
        STREAM(resp_bad_length_after_frames),
        cmocka_unit_test(test_resp_nested_1000_arrays),
        cmocka_unit_test(test_resp_nested_750_resp3),
        cmocka_unit_test(test_resp_nested_attributes),
        cmocka_unit_test(test_resp_nesting_bounded_by_max_frame),
        cmocka_unit_test(test_resp_many_small_frames),
        cmocka_unit_test(test_resp_wide_array),
        ANSWER(bulk_too_long_from_header),
        ANSWER(bulk_fits_max_frame),
        ANSWER(bulk_over_512mib),
        ANSWER(bulk_of_512mib),
        ANSWER(bulk_too_long_with_siblings),
        ANSWER(bulk_fits_with_siblings),
        ANSWER(verbatim_too_long),
        ANSWER(array_too_many_elements),
        ANSWER(array_most_elements),
        ANSWER(map_too_many_entries),
        ANSWER(set_too_many_elements),
        ANSWER(array_too_long_for_max_frame),
        ANSWER(push_too_long_for_max_frame),
        ANSWER(map_counts_pairs),
        ANSWER(map_pairs_fit),
        ANSWER(line_too_long_for_max_frame),
        ANSWER(inline_too_long_for_max_frame),
        ANSWER(bulk_length_letters),
        ANSWER(bulk_length_empty),
        ANSWER(bulk_length_plus),
        ANSWER(bulk_length_space),
        ANSWER(bulk_length_minus_alone),
        ANSWER(bulk_length_minus_minus),
        ANSWER(bulk_length_minus_2),
        ANSWER(bulk_length_minus_0),
        ANSWER(array_length_minus_2),
        ANSWER(array_length_minus_0),
        ANSWER(array_length_minus_alone),
        ANSWER(map_null_refused),
        ANSWER(set_null_refused),
        ANSWER(push_null_refused),
        ANSWER(attribute_null_refused),
        ANSWER(bulk_error_null_refused),
        ANSWER(verbatim_null_refused),
        ANSWER(bulk_length_20_digits),
        ANSWER(bulk_length_int64_max_plus_1),
        ANSWER(bulk_length_int64_max),
        ANSWER(array_length_huge),
        ANSWER(nested_bad_length),
        ANSWER(payload_without_crlf),
        ANSWER(payload_then_cr_only),
        ANSWER(payload_then_lf_cr),
        ANSWER(payload_one_too_long),
        ANSWER(empty_payload_without_crlf),
        ANSWER(nested_payload_without_crlf),
        ANSWER(bad_type_in_array),
        ANSWER(inline_inside_array),
        ANSWER(crlf_inside_array),
        ANSWER(bad_type_in_map_value),
        ANSWER(bad_type_after_attribute),
        ANSWER(header_needs_crlf),
        ANSWER(array_frame_at_last_byte),
        ANSWER(attribute_frame_at_last_byte),
        cmocka_unit_test(test_resp_header_of_64kib),
        cmocka_unit_test(test_resp_inline_of_64kib),
        cmocka_unit_test(test_resp_empty_buffer_is_again),
        cmocka_unit_test(test_resp_first_of_many_at_once),
        cmocka_unit_test(test_resp_bound_skips_reading),
        cmocka_unit_test(test_resp_bound_per_bulk),
        cmocka_unit_test(test_resp_8mib_bulk_in_4kib_reads),
        cmocka_unit_test(test_resp_large_array_in_pieces),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
