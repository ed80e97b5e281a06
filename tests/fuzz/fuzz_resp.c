/*
 * libFuzzer target: the resp codec. Input: a mode byte (max_frame 512MiB or
 * 1 or 2 bytes wide, alphabet), max_frame, a count of chunk sizes and the sizes, then the stream.
 * In the token alphabet every stream byte becomes a RESP token (a type byte, a
 * length, "\r\n", a lone CR or LF...), so deep and well-formed values abound.
 *
 * The oracle is a recursive descent over the flat bytes, written from the
 * rules rather than from px_codec_resp.c: each value is told how many values
 * must still follow it in the frame, for the max_frame checks.
 */
#include "tests/fuzz/fuzz_feed.h"

#include "proxy/codec/px_codec.h"
#include "proxy/codec/px_codec_resp.h"
#include "proxy/codec/px_resp_cmd.h"

#include <event2/buffer.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n);

#define LINE_MAX ((size_t)64 << 10)
#define ELEMENTS_MAX ((uint64_t)1 << 20)
#define VALUE_MIN 3

struct ref {
    const uint8_t *buf;
    size_t n;
    uint64_t max;
};

static const char *const tokens[] = {
    "+", "-", ":",  "$", "*",    "_",    ",",        "#",  "(",  "!",       "=",
    "%", "~", "|",  ">", "\r\n", "\r\n", "\r\n",     "\r", "\n", "0",       "1",
    "2", "3", "-1", "x", "ok",   "PING", "\r\n\r\n", "9",  "-",  "1048576",
};

/* The offset of the first eol (1 or 2 bytes) in the line at pos, within the limits. */
static ssize_t
line_end(const struct ref *r, size_t pos, const char *eol, size_t eol_len)
{
    uint64_t window = r->n;
    const uint8_t *hit;

    window = window < pos + LINE_MAX ? window : pos + LINE_MAX;
    window = window < r->max ? window : r->max;
    if (window > pos) {
        hit = memmem(r->buf + pos, window - pos, eol, eol_len);
        if (hit != NULL) {
            return hit - r->buf;
        }
    }
    if (r->n >= r->max || r->n - pos >= LINE_MAX) {
        return PX_ERROR;
    }
    return PX_AGAIN;
}

/*
 * A length in buf[from, to): "-1" (when nullable: -1), any negative number
 * but "-0" when skipped (a frame's own array count, as Redis skips a request
 * "*-10": -1 too), or 1 to 19 digits up to INT64_MAX.
 */
static bool
length(const uint8_t *p, size_t len, bool nullable, bool skipped, int64_t *v)
{
    unsigned __int128 x = 0;
    size_t i;

    if (len == 2 && p[0] == '-' && p[1] == '1') {
        *v = -1;
        return nullable;
    }
    if (skipped && len >= 2 && len <= 19 && p[0] == '-' && p[1] != '0') {
        for (i = 1; i < len; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return false;
            }
        }
        *v = -1;
        return true;
    }
    if (len == 0 || len > 19) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        x = x * 10 + (p[i] - '0');
    }
    if (x > INT64_MAX) {
        return false;
    }
    *v = (int64_t)x;
    return true;
}

/* The end of the value at pos, after which at least `after` more values come; any depth. */
static ssize_t
value(const struct ref *r, size_t pos, uint64_t after)
{
    ssize_t eol;
    size_t end, i;
    uint64_t values;
    int64_t v;
    uint8_t t;

    if (pos >= r->n) {
        return PX_AGAIN;
    }
    t = r->buf[pos];
    if (t == 0 || strchr("+-:_,#($!=*~>%|", t) == NULL) {
        return PX_ERROR;
    }
    if ((eol = line_end(r, pos, "\r\n", 2)) < 0) {
        return eol;
    }
    end = (size_t)eol + 2;
    if (strchr("+-:_,#(", t) != NULL) {
        return (ssize_t)end;
    }
    if (!length(r->buf + pos + 1, (size_t)eol - pos - 1, t == '$' || t == '*', t == '*' && pos == 0,
                &v)) {
        return PX_ERROR;
    }
    if (v == -1) {
        return (ssize_t)end;
    }
    if (strchr("$!=", t) != NULL) {
        uint64_t stop = end + (uint64_t)v + 2;

        if (stop + VALUE_MIN * after > r->max) {
            return PX_ERROR;
        }
        if (stop > r->n) {
            return PX_AGAIN;
        }
        if (r->buf[stop - 2] != '\r' || r->buf[stop - 1] != '\n') {
            return PX_ERROR;
        }
        return (ssize_t)stop;
    }
    if ((uint64_t)v > ELEMENTS_MAX) {
        return PX_ERROR;
    }
    values = t == '%' || t == '|' ? 2 * (uint64_t)v : (uint64_t)v;
    if (end + VALUE_MIN * (values + after + (t == '|')) > r->max) {
        return PX_ERROR;
    }
    for (i = 0; i < values; i++) {
        ssize_t e = value(r, end, after + (t == '|') + values - 1 - i);

        if (e < 0) {
            return e;
        }
        end = (size_t)e;
    }
    return t == '|' ? value(r, end, after) : (ssize_t)end; /* then what it annotates */
}

static ssize_t
oracle(const struct cfg_codec *codec, const uint8_t *buf, size_t n)
{
    struct ref r = {buf, n, codec->max_frame};
    ssize_t eol;

    if (n == 0) {
        return PX_AGAIN;
    }
    if (buf[0] == 0 || strchr("+-:_,#($!=*~>%|", buf[0]) == NULL) {
        eol = line_end(&r, 0, "\n", 1); /* an inline command */
        return eol < 0 ? eol : eol + 1;
    }
    return value(&r, 0, 0);
}

/*
 * The request path frames and indexes a simple request in one pass
 * (px_cmd_frame): whatever it accepts, the framer accepts with the same
 * length, and its arguments tile the frame. Fed in one chunk and in the
 * input's chunks.
 */
static void
check_request_path(const struct cfg_codec *codec, const uint8_t *data, size_t len,
                   const uint8_t *sizes, size_t nsizes)
{
    struct px_cmd cmd = {0};
    int pass;

    for (pass = 0; pass < 2; pass++) {
        struct evbuffer *b = evbuffer_new();
        size_t at = 0, i = 0;
        long m;

        FUZZ_CHECK(b != NULL);
        while (at < len) {
            size_t k = pass == 0 || nsizes == 0 ? len - at : 1 + sizes[i++ % nsizes];

            k = k < len - at ? k : len - at;
            evbuffer_add(b, data + at, k);
            at += k;
        }
        m = px_cmd_frame(&cmd, b, codec->max_frame, PX_RESP_ELEMENTS_MAX);
        if (m > 0) {
            size_t a, end = 0;

            FUZZ_CHECK(oracle(codec, data, len) == m);
            FUZZ_CHECK(cmd.argc > 0);
            for (a = 0; a < cmd.argc; a++) {
                FUZZ_CHECK(cmd.argv[a].hdr >= end && cmd.argv[a].off > cmd.argv[a].hdr);
                end = (size_t)cmd.argv[a].off + cmd.argv[a].len + 2;
                FUZZ_CHECK(memcmp(data + end - 2, "\r\n", 2) == 0);
            }
            FUZZ_CHECK(end == (size_t)m);
        }
        evbuffer_free(b);
    }
    px_cmd_deinit(&cmd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
    struct fuzz_input in = {p, n};
    struct cfg_codec codec = {.type = CFG_CODEC_RESP};
    uint8_t mode = fuzz_byte(&in);
    size_t ntokens = sizeof(tokens) / sizeof(tokens[0]);
    const uint8_t *sizes;
    size_t nsizes, len = 0, i;
    uint8_t *data;

    codec.max_frame = mode & 0x40   ? (uint64_t)512 << 20
                      : mode & 0x20 ? 1 + fuzz_uint(&in, 2)
                                    : 1 + fuzz_uint(&in, 1); /* small: limits are reached */
    nsizes = fuzz_byte(&in) % 16;
    nsizes = nsizes < in.n ? nsizes : in.n;
    sizes = in.p;
    in.p += nsizes;
    in.n -= nsizes;
    if (in.n == 0) {
        return 0;
    }
    data = malloc(in.n * 8);
    FUZZ_CHECK(data != NULL);
    for (i = 0; i < in.n; i++) {
        if (mode & 0x80) {
            const char *t = tokens[in.p[i] % ntokens];

            memcpy(data + len, t, strlen(t));
            len += strlen(t);
        } else {
            data[len++] = in.p[i];
        }
    }
    fuzz_feed(&codec, data, len, sizes, nsizes, oracle);
    check_request_path(&codec, data, len, sizes, nsizes);
    free(data);
    return 0;
}
