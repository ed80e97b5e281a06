/*
 * px_resp_cmd: inline commands turned into RESP arrays in place (split as
 * Redis's sdssplitargs splits them, since sluice forwards what Redis would
 * have read), and a converted line parsed. Run by test_resp_cmd.c's main, in
 * the one test_resp_cmd binary.
 */
#include "resp_cmd_test_util.h"

#include "proxy/codec/px_resp_cmd.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* p[0..n) with CR, LF, TAB, quotes, backslashes and other bytes escaped, into out. */
static const char *
shown(const void *p, size_t n, char *out, size_t cap)
{
    const unsigned char *b = p;
    size_t i, o = 0;

    for (i = 0; i < n && o + 5 < cap; i++) {
        const char *esc = b[i] == '\r'   ? "\\r"
                          : b[i] == '\n' ? "\\n"
                          : b[i] == '\t' ? "\\t"
                          : b[i] == '"'  ? "\\\""
                          : b[i] == '\\' ? "\\\\"
                                         : NULL;

        if (esc != NULL) {
            o += (size_t)snprintf(out + o, cap - o, "%s", esc);
        } else if (b[i] < 0x20 || b[i] >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[i]);
        } else {
            out[o++] = (char)b[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- inline commands ---- */

#define AFTER "*1\r\n$4\r\nPING\r\n" /* the next request, already read: left as it was */

/*
 * Turn the first `line_len` bytes of the buffer holding text (the line, then
 * AFTER) into a frame: the answer must be want, the buffer frame then AFTER.
 */
static void
expect_inline(const char *text, size_t line_len, long want, const char *frame)
{
    struct evbuffer *in = evbuffer_new(), *scratch = evbuffer_new();
    size_t len = strlen(text), flen = frame != NULL ? strlen(frame) : 0, olen;
    const char *why = NULL;
    char *out, a[512], b[512], c[512];
    long got;

    assert_true(line_len <= len);
    evbuffer_add(in, text, len);
    evbuffer_add(in, LIT(AFTER));
    evbuffer_add(scratch, LIT("left over from before")); /* drained, not sent */
    got = px_cmd_from_inline(in, line_len, scratch, &why);
    olen = evbuffer_get_length(in);
    out = malloc(olen + 1);
    assert_non_null(out);
    evbuffer_remove(in, out, olen);
    evbuffer_free(scratch);
    evbuffer_free(in);
    if (want < 0 && got != -1) {
        rct_mismatch("%s: %ld, a frame (%s), expected -1", shown(text, line_len, a, sizeof(a)), got,
                     shown(out, got > 0 ? (size_t)got : 0, b, sizeof(b)));
    } else if (want < 0 && (why == NULL || why[0] == '\0')) {
        rct_mismatch("%s: -1 without a reason", shown(text, line_len, a, sizeof(a)));
    } else if (want >= 0 && (got != want || olen < flen || memcmp(out, frame, flen) != 0)) {
        rct_mismatch("%s: %ld (%s), expected %ld (%s)", shown(text, line_len, a, sizeof(a)), got,
                     got < 0 ? why : shown(out, (size_t)(got > 0 ? got : 0), b, sizeof(b)), want,
                     shown(frame, flen, c, sizeof(c)));
    } else if (want >= 0 && (olen != flen + len - line_len + sizeof(AFTER) - 1 ||
                             memcmp(out + flen, text + line_len, len - line_len) != 0 ||
                             memcmp(out + flen + len - line_len, AFTER, sizeof(AFTER) - 1) != 0)) {
        rct_mismatch("%s: the bytes after the line changed", shown(text, line_len, a, sizeof(a)));
    }
    free(out);
}

#define INLINE(line, frame) expect_inline(line, strlen(line), (long)strlen(frame), frame)
#define INLINE_EMPTY(line) expect_inline(line, strlen(line), 0, "")
#define INLINE_BAD(line) expect_inline(line, strlen(line), -1, NULL)

static void
test_inline_words(void **state)
{
    (void)state;
    INLINE("SET a b\r\n", "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n");
    INLINE("SET a b\n", "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n");
    INLINE("PING\r\n", "*1\r\n$4\r\nPING\r\n");
    INLINE("PING", "*1\r\n$4\r\nPING\r\n"); /* no line end within n */
    INLINE("get some-key\r\n", "*2\r\n$3\r\nget\r\n$8\r\nsome-key\r\n");
    INLINE("SET k a\\b\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\\b\r\n"); /* unquoted: as is */
    /* only n bytes are the line: the rest of the buffer is left as it was */
    expect_inline("GET k\r\nGET j\r\n", 7, (long)strlen("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
                  "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    assert_int_equal(rct_mismatches, 0);
}

static void
test_inline_blanks(void **state)
{
    (void)state;
    INLINE("  SET\t\ta   \t b  \r\n", "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n");
    INLINE("\tPING\t\n", "*1\r\n$4\r\nPING\r\n");
    INLINE("ECHO      x\r\n", "*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n");
    assert_int_equal(rct_mismatches, 0);
}

static void
test_inline_empty_line_removed(void **state)
{
    (void)state;
    INLINE_EMPTY("\r\n");
    INLINE_EMPTY("\n");
    INLINE_EMPTY("   \t \r\n");
    INLINE_EMPTY("\r\r\n");
    assert_int_equal(rct_mismatches, 0);
}

static void
test_inline_quotes(void **state)
{
    (void)state;
    INLINE("SET \"a b\" 'c d'\r\n", "*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$3\r\nc d\r\n");
    INLINE("ECHO \"\"\r\n", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n");
    INLINE("ECHO ''\r\n", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n");
    INLINE("ECHO '\"'\r\n", "*2\r\n$4\r\nECHO\r\n$1\r\n\"\r\n");
    INLINE("ECHO \"it's\"\r\n", "*2\r\n$4\r\nECHO\r\n$4\r\nit's\r\n");
    INLINE("ECHO \"a\tb  c\"\r\n", "*2\r\n$4\r\nECHO\r\n$6\r\na\tb  c\r\n");
    INLINE("ECHO '\\n'\r\n", "*2\r\n$4\r\nECHO\r\n$2\r\n\\n\r\n"); /* no escapes in '' */
    assert_int_equal(rct_mismatches, 0);
}

/* \" and \\ inside double quotes, and any other escaped byte, as redis-server reads them. */
static void
test_inline_escapes(void **state)
{
    (void)state;
    INLINE("SET k \"a\\\"b\\\\c\"\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\"b\\c\r\n");
    INLINE("ECHO \"\\q\"\r\n", "*2\r\n$4\r\nECHO\r\n$1\r\nq\r\n");
    INLINE("ECHO \"\\'\"\r\n", "*2\r\n$4\r\nECHO\r\n$1\r\n'\r\n");
    INLINE("ECHO \"\\ \"\r\n", "*2\r\n$4\r\nECHO\r\n$1\r\n \r\n");
    assert_int_equal(rct_mismatches, 0);
}

/*
 * The escapes redis-cli writes (sdscatrepr) and redis-server reads
 * (sdssplitargs): \n \r \t \b \a and \xHH. redis-server 7.0 given the inline
 * SET k1 "a\nb\x41\tc" stores the 6 bytes a, LF, b, A, TAB, c.
 */
static void
test_inline_control_escapes(void **state)
{
    (void)state;
    INLINE("ECHO \"a\\nb\\x41\\tc\"\r\n", "*2\r\n$4\r\nECHO\r\n$6\r\na\nbA\tc\r\n");
    INLINE("ECHO \"\\r\\b\\a\\x01\\xfF\"\r\n", "*2\r\n$4\r\nECHO\r\n$5\r\n\r\b\a\x01\xff\r\n");
    INLINE("ECHO \"\\x4g\"\r\n", "*2\r\n$4\r\nECHO\r\n$3\r\nx4g\r\n"); /* not hex: as \x */
    assert_int_equal(rct_mismatches, 0);
}

/* redis-server 7.0 given SET k2 'it\'s' stores it's. */
static void
test_inline_single_quote_escape(void **state)
{
    (void)state;
    INLINE("SET k 'it\\'s'\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nit's\r\n");
    assert_int_equal(rct_mismatches, 0);
}

/*
 * A closing quote must end the word; a quote inside a word opens a quoted
 * part of it; CR separates words like a space. redis-server 7.0: SET k3 "a"b
 * is "unbalanced quotes in request"; SET k4 foo"bar baz" stores "foobar baz";
 * EXISTS a<CR>b<LF> counts two keys.
 */
static void
test_inline_word_bounds(void **state)
{
    (void)state;
    INLINE_BAD("SET k \"a\"b\r\n");
    INLINE_BAD("SET k 'a'b\r\n");
    INLINE("SET k foo\"bar baz\"\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nfoobar baz\r\n");
    INLINE("EXISTS a\rb\n", "*3\r\n$6\r\nEXISTS\r\n$1\r\na\r\n$1\r\nb\r\n");
    assert_int_equal(rct_mismatches, 0);
}

static void
test_inline_unbalanced(void **state)
{
    (void)state;
    INLINE_BAD("SET \"a b\r\n");
    INLINE_BAD("SET 'a b\r\n");
    INLINE_BAD("SET k \"a\\\"\r\n"); /* the closing quote escaped */
    INLINE_BAD("\"\r\n");
    INLINE_BAD("ECHO \"a\" \"b\r\n");
    assert_int_equal(rct_mismatches, 0);
}

/* A converted line parses into its words; a 60000-byte word is one argument. */
static void
test_inline_then_parse(void **state)
{
    enum { WORD = 60000 };
    struct evbuffer *in = evbuffer_new(), *scratch = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *why = NULL;
    char *line = malloc(WORD + 16), buf[8];
    size_t keys[4];
    long n;

    (void)state;
    assert_non_null(line);
    memcpy(line, "append k ", 9);
    memset(line + 9, 'v', WORD);
    memcpy(line + 9 + WORD, " \r\n", 3);
    evbuffer_add(in, line, 9 + WORD + 3);
    n = px_cmd_from_inline(in, 9 + WORD + 3, scratch, &why);
    assert_int_equal(n, 4 + rct_bulk_size(6) + rct_bulk_size(1) + rct_bulk_size(WORD));
    assert_int_equal(evbuffer_get_length(in), (size_t)n);
    assert_int_equal(px_cmd_parse(&cmd, in, (size_t)n, &why), 0);
    assert_int_equal(cmd.argc, 3);
    assert_string_equal(cmd.name, "APPEND");
    assert_int_equal(px_cmd_arg(&cmd, 2, buf, 2), WORD);
    assert_memory_equal(buf, "vv", 2);
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("APPEND")), keys, 4), 1);
    assert_int_equal(keys[0], 1);
    px_cmd_deinit(&cmd);
    evbuffer_free(scratch);
    evbuffer_free(in);
    free(line);
}

const struct CMUnitTest resp_cmd_inline_tests[] = {
    CASES(test_inline_words),
    CASES(test_inline_blanks),
    CASES(test_inline_empty_line_removed),
    CASES(test_inline_quotes),
    CASES(test_inline_escapes),
    CASES(test_inline_control_escapes),
    CASES(test_inline_single_quote_escape),
    CASES(test_inline_word_bounds),
    CASES(test_inline_unbalanced),
    cmocka_unit_test(test_inline_then_parse),
};
const size_t resp_cmd_inline_tests_count =
    sizeof(resp_cmd_inline_tests) / sizeof(resp_cmd_inline_tests[0]);
