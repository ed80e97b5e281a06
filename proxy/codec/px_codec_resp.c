/*
 * resp: where the first RESP2/RESP3 value, or inline command, in a buffer ends.
 *
 * A call resumes where the last one stopped: st keeps where the next value
 * starts and how many values the frame still needs there (st->at, st->owed),
 * and st->scanned, the least number of bytes the frame needs, learnt from a
 * bulk header whose payload has not all arrived. Below it the buffer is not
 * read at all, so a large value arriving in small reads costs one parse per
 * header, not one per read, and a deep or wide one is read once in all. Header lines are searched
 * in place and copied out only as far as a length needs; bulk payloads are skipped by their length.
 *
 * Nesting needs no stack: the frame is whole when the count of values it
 * still owes reaches zero. An aggregate of n values pays for its own slot and
 * owes n more; an attribute (|) of n pairs owes 2n more and leaves its slot
 * to the value it annotates; any other value pays for its slot. So a reply
 * may nest as deep as Redis makes it (an EVAL returning a 1,000-level table)
 * within max_frame, and the parse state stays a few words whatever the depth.
 *
 * A request's count may be negative where a reply's may not: Redis skips a
 * top-level "*-10\r\n" (any count <= 0) sent by a client, so at the start of
 * the frame every negative array count is a frame of its own, as "*-1\r\n" is
 * (px_resp_request() then skips it). Deeper in, only "-1" means null.
 */
#include "proxy/codec/px_codec_resp.h"

#include "proxy/codec/px_codec.h"

#include <event2/buffer.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Longest header line, type byte to "\r\n" included, and longest inline command (Redis's too). */
#define RESP_LINE_MAX ((size_t)64 << 10)
/*
 * Most elements an aggregate header may announce (a map or attribute: entries).
 * Redis refused larger multibulk counts up to 6.2 and its clients never send
 * them; it also keeps the count of values still owed far from overflowing.
 */
#define ELEMENTS_MAX PX_RESP_ELEMENTS_MAX
#define VALUE_MIN 3   /* bytes in the shortest value, such as "_\r\n" */
#define DIGITS_MAX 19 /* as many as INT64_MAX has: 19 digits cannot wrap a uint64_t */

enum reason {
    R_FRAME_TOO_LONG,
    R_LINE_TOO_LONG,
    R_BAD_LENGTH,
    R_NEGATIVE_LENGTH,
    R_LENGTH_OVERFLOW,
    R_TOO_MANY_ELEMENTS,
    R_BAD_TYPE,
    R_NO_CRLF,
    R_BUFFER,
};

static const char *const reasons[] = {
    [R_FRAME_TOO_LONG] = "frame longer than max_frame",
    [R_LINE_TOO_LONG] = "resp line longer than 64KiB",
    [R_BAD_LENGTH] = "resp length is not a number",
    [R_NEGATIVE_LENGTH] = "resp length is negative",
    [R_LENGTH_OVERFLOW] = "resp length overflows",
    [R_TOO_MANY_ELEMENTS] = "resp aggregate has more than 1048576 elements",
    [R_BAD_TYPE] = "unknown resp type byte",
    [R_NO_CRLF] = "resp bulk payload not followed by CRLF",
    [R_BUFFER] = "evbuffer operation failed",
};

/* One parse of the buffer, from its start. */
struct parse {
    struct evbuffer *in;    /* borrowed */
    struct evbuffer_ptr at; /* the next byte to read */
    size_t len;             /* bytes buffered */
    uint64_t max;           /* max_frame */
    uint64_t owed;          /* values the frame still needs, the one being read included */
    size_t start;           /* where the value being read starts */
    uint64_t start_owed;    /* owed there */
};

enum kind {
    K_NONE,      /* not a RESP type byte */
    K_LINE,      /* + - : _ , # ( : a single line */
    K_BULK,      /* $ ! = : a length, the payload, "\r\n" */
    K_AGGREGATE, /* * ~ > : n values */
    K_PAIRS,     /* % : n pairs of values */
    K_ATTRIBUTE, /* | : n pairs, then the value they annotate */
};

static int
fail(const char **why, enum reason r)
{
    *why = reasons[r];
    return PX_ERROR;
}

static enum kind
kind_of(uint8_t type)
{
    switch (type) {
    case '+':
    case '-':
    case ':':
    case '_':
    case ',':
    case '#':
    case '(':
        return K_LINE;
    case '$':
    case '!':
    case '=':
        return K_BULK;
    case '*':
    case '~':
    case '>':
        return K_AGGREGATE;
    case '%':
        return K_PAIRS;
    case '|':
        return K_ATTRIBUTE;
    default:
        return K_NONE;
    }
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/*
 * Find eol (1 or 2 bytes) ending the line that starts at p->at, within
 * RESP_LINE_MAX bytes of it and within max_frame; *hit: where it starts.
 */
static int
find_eol(struct parse *p, const char *eol, size_t eol_len, struct evbuffer_ptr *hit,
         const char **why)
{
    size_t from = (size_t)p->at.pos;
    uint64_t window = min_u64(min_u64(p->len, from + RESP_LINE_MAX), p->max);
    struct evbuffer_ptr end = p->at;

    if (window >= from + eol_len) {
        if (evbuffer_ptr_set(p->in, &end, window - from, EVBUFFER_PTR_ADD) == -1) {
            return fail(why, R_BUFFER);
        }
        *hit = evbuffer_search_range(p->in, eol, eol_len, &p->at, &end);
        if (hit->pos != -1) {
            return 0;
        }
    }
    if (p->len >= p->max) {
        return fail(why, R_FRAME_TOO_LONG); /* a line ending later would not fit */
    }
    if (p->len - from >= RESP_LINE_MAX) {
        return fail(why, R_LINE_TOO_LONG);
    }
    return PX_AGAIN;
}

/* Move p->at n bytes on; they are buffered. */
static int
skip(struct parse *p, size_t n, const char **why)
{
    if (evbuffer_ptr_set(p->in, &p->at, n, EVBUFFER_PTR_ADD) == -1) {
        return fail(why, R_BUFFER);
    }
    return 0;
}

/* Which negative lengths a header may have. */
enum sign {
    S_NONE,    /* digits alone */
    S_NULL,    /* or "-1": null */
    S_SKIPPED, /* or any negative number (no "-0"), read as null: a request's count */
};

/*
 * The decimal length in the header line from p->at (its type byte) to the
 * "\r\n" at eol: digits alone, or a negative number as sign allows (*n = -1).
 */
static int
read_length(struct parse *p, const struct evbuffer_ptr *eol, enum sign sign, int64_t *n,
            const char **why)
{
    char text[DIGITS_MAX + 1];
    size_t len = (size_t)(eol->pos - p->at.pos - 1);
    size_t copy = len < sizeof(text) ? len : sizeof(text);
    struct evbuffer_ptr digits = p->at;
    uint64_t v = 0;
    size_t i;

    if (evbuffer_ptr_set(p->in, &digits, 1, EVBUFFER_PTR_ADD) == -1 ||
        evbuffer_copyout_from(p->in, &digits, text, copy) != (ev_ssize_t)copy) {
        return fail(why, R_BUFFER);
    }
    if (len == 2 && text[0] == '-' && text[1] == '1') {
        *n = -1;
        return sign != S_NONE ? 0 : fail(why, R_NEGATIVE_LENGTH);
    }
    if (len == 0) {
        return fail(why, R_BAD_LENGTH);
    }
    for (i = 0; i < copy; i++) {
        if (text[i] == '-' && i == 0 && copy > 1) {
            continue; /* judged by the digits that follow */
        }
        if (text[i] < '0' || text[i] > '9') {
            return fail(why, R_BAD_LENGTH);
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (len > DIGITS_MAX || v > INT64_MAX) { /* longer than what was copied, or past INT64_MAX */
        return fail(why, R_LENGTH_OVERFLOW);
    }
    if (text[0] == '-') {
        *n = -1;
        return sign == S_SKIPPED && text[1] != '0' ? 0 : fail(why, R_NEGATIVE_LENGTH);
    }
    *n = (int64_t)v;
    return 0;
}

/* The value being read is whole. Return 1 when it ends the frame. */
static int
complete(struct parse *p)
{
    return --p->owed == 0;
}

/* $ ! = : skip the n-byte payload at p->at by its length, then its "\r\n". */
static int
read_bulk(struct parse *p, struct px_frame_state *st, int64_t n, const char **why)
{
    uint64_t end = (uint64_t)p->at.pos + (uint64_t)n + 2;
    char crlf[2];

    if (end + VALUE_MIN * (p->owed - 1) > p->max) {
        return fail(why, R_FRAME_TOO_LONG);
    }
    if (end > p->len) {
        st->scanned = (size_t)end; /* nothing before it is read again */
        return PX_AGAIN;
    }
    if (skip(p, (size_t)n, why) == -1 || evbuffer_copyout_from(p->in, &p->at, crlf, 2) != 2 ||
        skip(p, 2, why) == -1) {
        return fail(why, R_BUFFER);
    }
    if (crlf[0] != '\r' || crlf[1] != '\n') {
        return fail(why, R_NO_CRLF);
    }
    return complete(p);
}

/* * ~ > % | : open a level for the n values announced, or complete an empty one. */
static int
open_aggregate(struct parse *p, enum kind kind, int64_t n, const char **why)
{
    uint64_t values, owed;

    if ((uint64_t)n > ELEMENTS_MAX) {
        return fail(why, R_TOO_MANY_ELEMENTS);
    }
    values = kind == K_AGGREGATE ? (uint64_t)n : 2 * (uint64_t)n;
    owed = kind == K_ATTRIBUTE ? p->owed + values : p->owed - 1 + values; /* an attribute adds */
    if ((uint64_t)p->at.pos + VALUE_MIN * owed > p->max) {
        return fail(why, R_FRAME_TOO_LONG); /* even if every value is as short as can be */
    }
    p->owed = owed; /* an empty attribute annotates the next value: the slot stays open */
    return owed == 0;
}

/* Read one value's header (and a bulk payload). Return 1 when the frame is whole. */
static int
read_value(struct parse *p, struct px_frame_state *st, const char **why)
{
    struct evbuffer_ptr eol;
    uint8_t type;
    enum kind kind;
    int64_t n = 0;
    int rc;

    p->start = (size_t)p->at.pos;
    p->start_owed = p->owed;
    if ((size_t)p->at.pos >= p->len) {
        return PX_AGAIN;
    }
    if (evbuffer_copyout_from(p->in, &p->at, &type, 1) != 1) {
        return fail(why, R_BUFFER);
    }
    kind = kind_of(type);
    if (kind == K_NONE) {
        return fail(why, R_BAD_TYPE);
    }
    if ((rc = find_eol(p, "\r\n", 2, &eol, why)) != 0) {
        return rc;
    }
    if (kind != K_LINE) {
        enum sign sign = type == '*' && p->at.pos == 0 ? S_SKIPPED : S_NONE;

        if (sign == S_NONE && (type == '$' || type == '*')) {
            sign = S_NULL;
        }
        if (read_length(p, &eol, sign, &n, why) == -1) {
            return PX_ERROR;
        }
    }
    p->at = eol;
    if (skip(p, 2, why) == -1) {
        return PX_ERROR;
    }
    if (kind == K_LINE || n == -1) {
        return complete(p); /* a null bulk string or array too */
    }
    if (kind == K_BULK) {
        return read_bulk(p, st, n, why);
    }
    return open_aggregate(p, kind, n, why);
}

/*
 * The common case in place: a whole frame within the buffer's first chunk,
 * parsed from a pointer. It applies every rule of the parse above and gives
 * up (returns 0) wherever that one would fail, wait or look further, so
 * either both accept a frame with the same length or the full parse decides.
 */
static size_t
fast_frame(const uint8_t *b, size_t len, uint64_t max)
{
    uint64_t owed = 1;
    size_t at = 0;

    while (at < len) {
        uint8_t type = b[at];
        enum kind kind = kind_of(type);
        uint64_t window = min_u64(min_u64(len, at + RESP_LINE_MAX), max);
        const uint8_t *cr;
        size_t eol, digits, i;
        int64_t n = 0;

        if (kind == K_NONE || window < at + 3) {
            return 0;
        }
        cr = memchr(b + at + 1, '\r', (size_t)window - at - 1);
        if (cr == NULL || (size_t)(cr - b) + 2 > window || cr[1] != '\n') {
            return 0;
        }
        eol = (size_t)(cr - b);
        if (kind != K_LINE) {
            digits = eol - at - 1;
            if (digits == 2 && b[at + 1] == '-' && b[at + 2] == '1' &&
                (type == '$' || type == '*')) {
                n = -1;
            } else {
                if (digits == 0 || digits > 18) {
                    return 0;
                }
                for (i = at + 1; i < eol; i++) {
                    if (b[i] < '0' || b[i] > '9') {
                        return 0;
                    }
                    n = n * 10 + (b[i] - '0');
                }
            }
        }
        at = eol + 2;
        if (kind == K_BULK && n >= 0) {
            uint64_t end = (uint64_t)at + (uint64_t)n + 2;

            if (end + VALUE_MIN * (owed - 1) > max || end > len || b[end - 2] != '\r' ||
                b[end - 1] != '\n') {
                return 0;
            }
            at = (size_t)end;
        } else if (kind != K_LINE && n > 0) { /* an aggregate that opens a level */
            uint64_t values = kind == K_AGGREGATE ? (uint64_t)n : 2 * (uint64_t)n;

            if ((uint64_t)n > ELEMENTS_MAX) {
                return 0;
            }
            owed = kind == K_ATTRIBUTE ? owed + values : owed - 1 + values;
            if ((uint64_t)at + VALUE_MIN * owed > max) {
                return 0;
            }
            continue;
        } else if (kind == K_ATTRIBUTE && n == 0) {
            if ((uint64_t)at + VALUE_MIN * owed > max) {
                return 0;
            }
            continue; /* annotates nothing: the slot is still open */
        } else if (kind != K_LINE && kind != K_BULK && n == 0 &&
                   (uint64_t)at + VALUE_MIN * (owed - 1) > max) {
            return 0;
        }
        if (--owed == 0) { /* a whole value: was it the last one owed? */
            return at;
        }
    }
    return 0;
}

/* An inline command: the line up to and including "\n". */
static ssize_t
read_inline(struct parse *p, struct px_frame_state *st, const char **why)
{
    struct evbuffer_ptr eol;
    int rc = find_eol(p, "\n", 1, &eol, why);

    if (rc != 0) {
        return rc;
    }
    st->scanned = 0;
    return (ssize_t)eol.pos + 1;
}

ssize_t
px_resp_frame(const struct cfg_codec *codec, struct evbuffer *in, struct px_frame_state *st,
              const char **why)
{
    size_t len = evbuffer_get_length(in);
    struct evbuffer_iovec first_chunk;
    struct parse p;
    uint8_t first;
    size_t n;
    int rc;

    if (len == 0 || len < st->scanned) {
        return PX_AGAIN;
    }
    if (st->at > len) {
        memset(st, 0, sizeof(*st)); /* not this buffer's: parse it from its start */
    }
    if (st->at == 0 && evbuffer_peek(in, -1, NULL, &first_chunk, 1) >= 1 &&
        (n = fast_frame(first_chunk.iov_base, first_chunk.iov_len, codec->max_frame)) > 0) {
        st->scanned = 0;
        return (ssize_t)n; /* before the full parse's state is even set up */
    }
    memset(&p, 0, sizeof(p));
    p.in = in;
    p.len = len;
    p.max = codec->max_frame;
    if (st->at > 0) { /* a value of the frame starts there, owing st->owed */
        if (evbuffer_ptr_set(in, &p.at, st->at, EVBUFFER_PTR_SET) == -1) {
            return fail(why, R_BUFFER);
        }
        p.owed = st->owed;
    } else {
        if (evbuffer_ptr_set(in, &p.at, 0, EVBUFFER_PTR_SET) == -1 ||
            evbuffer_copyout(in, &first, 1) != 1) {
            return fail(why, R_BUFFER);
        }
        if (kind_of(first) == K_NONE) {
            return read_inline(&p, st, why);
        }
        p.owed = 1;
    }
    while ((rc = read_value(&p, st, why)) == 0) {
    }
    if (rc == PX_AGAIN && p.start > 0 && p.start <= UINT32_MAX && p.start_owed <= UINT32_MAX) {
        st->at = (uint32_t)p.start; /* the values before it are not read again */
        st->owed = (uint32_t)p.start_owed;
    }
    if (rc < 0) {
        return rc;
    }
    memset(st, 0, sizeof(*st));
    return (ssize_t)p.at.pos;
}
