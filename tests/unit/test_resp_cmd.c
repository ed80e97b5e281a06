/*
 * px_resp_cmd: the Redis command table (sorted, upper case, found in any
 * case), the parse of a request frame into its arguments (split at every byte,
 * against a guard page, across the 64KiB line between parsing in place and
 * through the evbuffer, and an 8MiB value in references to one 128KiB block),
 * argument access, and key positions as Redis's COMMAND GETKEYS gives them.
 * Inline commands are in test_resp_cmd_inline.c; this binary runs both.
 */
#include "guard_page.h"
#include "resp_cmd_test_util.h"

#include "proxy/codec/px_resp_cmd.h"

#include <event2/buffer.h>

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Declared in px_resp_cmd.c for the tests. */
const struct px_cmd_info *px_cmd_table(size_t *n);

#define MAX_ARGS 64

/* ---- building frames ---- */

/* Append a RESP array of the given arguments to b; return its length. */
static size_t
put_frame(struct evbuffer *b, size_t argc, const char *const *argv, const size_t *lens)
{
    size_t i, n = 0;

    n += (size_t)evbuffer_add_printf(b, "*%zu\r\n", argc);
    for (i = 0; i < argc; i++) {
        n += (size_t)evbuffer_add_printf(b, "$%zu\r\n", lens[i]);
        assert_int_equal(evbuffer_add(b, argv[i], lens[i]), 0);
        assert_int_equal(evbuffer_add(b, "\r\n", 2), 0);
        n += lens[i] + 2;
    }
    return n;
}

/* Split line at single spaces into words (pointing into buf). */
static size_t
split_words(const char *line, char *buf, size_t cap, const char **argv, size_t *lens)
{
    size_t argc = 0;
    char *p, *save = NULL;

    assert_true(strlen(line) < cap);
    strcpy(buf, line);
    for (p = strtok_r(buf, " ", &save); p != NULL; p = strtok_r(NULL, " ", &save)) {
        assert_true(argc < MAX_ARGS);
        argv[argc] = p;
        lens[argc] = strlen(p);
        argc++;
    }
    return argc;
}

/* The args must sit where a frame of these payload lengths puts them, ending at n. */
static void
expect_layout(const struct px_cmd *cmd, size_t argc, const size_t *lens, size_t n)
{
    size_t pos = 1 + rct_digits(argc) + 2, i;

    assert_int_equal(cmd->argc, argc);
    for (i = 0; i < argc; i++) {
        if (cmd->argv[i].hdr != pos || cmd->argv[i].off != pos + 1 + rct_digits(lens[i]) + 2 ||
            cmd->argv[i].len != lens[i]) {
            fail_msg("arg %zu: hdr %u off %u len %u, expected hdr %zu off %zu len %zu", i,
                     cmd->argv[i].hdr, cmd->argv[i].off, cmd->argv[i].len, pos,
                     pos + 1 + rct_digits(lens[i]) + 2, lens[i]);
        }
        pos += rct_bulk_size(lens[i]);
    }
    assert_int_equal(pos, n);
}

/* Every argument must read back as the bytes it was built from. */
static void
expect_args(const struct px_cmd *cmd, size_t argc, const char *const *argv, const size_t *lens)
{
    char buf[256];
    size_t i;

    assert_int_equal(cmd->argc, argc);
    for (i = 0; i < argc; i++) {
        assert_true(lens[i] <= sizeof(buf));
        assert_int_equal(px_cmd_arg(cmd, i, buf, sizeof(buf)), lens[i]);
        assert_memory_equal(buf, argv[i], lens[i]);
    }
}

/* ---- the table ---- */

static void
test_table_sorted_and_upper_case(void **state)
{
    size_t n, i, k, len;
    const struct px_cmd_info *t = px_cmd_table(&n);
    char lower[32];

    (void)state;
    assert_true(n > 100);
    for (i = 0; i < n; i++) {
        assert_non_null(t[i].name);
        len = strlen(t[i].name);
        assert_true(len > 0 && len < sizeof(((struct px_cmd *)0)->name));
        for (k = 0; k < len; k++) {
            if (!isupper((unsigned char)t[i].name[k]) && t[i].name[k] != '_') {
                fail_msg("%s: byte %zu is not an upper case letter or '_'", t[i].name, k);
            }
            lower[k] = (char)tolower((unsigned char)t[i].name[k]);
        }
        if (i > 0 && strcmp(t[i - 1].name, t[i].name) >= 0) {
            fail_msg("table not sorted strictly: %s before %s", t[i - 1].name, t[i].name);
        }
        /* and px_cmd_lookup finds each row by its name, in either case */
        assert_ptr_equal(px_cmd_lookup(t[i].name, len), &t[i]);
        assert_ptr_equal(px_cmd_lookup(lower, len), &t[i]);
        assert_ptr_equal(px_cmd_lookup_upper(t[i].name, len), &t[i]);
    }
}

/* What px_cmd_keys assumes of each row. */
static void
test_table_key_specs_fit(void **state)
{
    size_t n, i;
    const struct px_cmd_info *t = px_cmd_table(&n);

    (void)state;
    for (i = 0; i < n; i++) {
        const struct px_cmd_info *c = &t[i];
        bool range = c->keys == PX_KEYS_RANGE, numkeys = c->keys == PX_KEYS_NUMKEYS;

        if (c->state > PX_ST_REFUSE || c->split > PX_SPLIT_SUM || c->keys > PX_KEYS_ALL ||
            (range && (c->first < 1 || c->step < 1 || (c->last >= 0 && c->last < c->first))) ||
            (numkeys && (c->first < 1 || (c->step != 1 && c->step != 2))) ||
            (c->split != PX_SPLIT_NONE && (!range || c->first != 1 || c->last != -1))) {
            fail_msg("%s: state %u split %u keys %u first %d last %d step %u", c->name, c->state,
                     c->split, c->keys, c->first, c->last, c->step);
        }
    }
}

static void
test_lookup_any_case(void **state)
{
    const struct px_cmd_info *get = px_cmd_lookup(LIT("GET"));

    (void)state;
    assert_non_null(get);
    assert_string_equal(get->name, "GET");
    assert_int_equal(get->keys, PX_KEYS_RANGE);
    assert_int_equal(get->first, 1);
    assert_int_equal(get->last, 1);
    assert_ptr_equal(px_cmd_lookup(LIT("get")), get);
    assert_ptr_equal(px_cmd_lookup(LIT("GeT")), get);
    assert_ptr_equal(px_cmd_lookup(LIT("gET")), get);
    assert_string_equal(px_cmd_lookup(LIT("zUnIoNsToRe"))->name, "ZUNIONSTORE");
    assert_string_equal(px_cmd_lookup(LIT("georadiusbymember_ro"))->name, "GEORADIUSBYMEMBER_RO");
    assert_int_equal(px_cmd_lookup(LIT("xread"))->state, PX_ST_XBLOCK);
    assert_int_equal(px_cmd_lookup(LIT("Multi"))->state, PX_ST_MULTI);
    assert_int_equal(px_cmd_lookup(LIT("mget"))->split, PX_SPLIT_MGET);
}

/* Only commands that read and change nothing may be sent twice after a broken connection. */
static void
test_may_repeat_only_reads(void **state)
{
    static const char *const reads[] = {"GET", "MGET", "HGETALL", "LRANGE", "EXISTS",
                                        "TTL", "SCAN", "PING",    "EVAL_RO"};
    static const char *const others[] = {"SET",   "INCR",   "DEL",    "EVAL",  "BLPOP",
                                         "MULTI", "CLIENT", "GETDEL", "GETEX", "SUBSCRIBE"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        if (!px_cmd_lookup(reads[i], strlen(reads[i]))->may_repeat) {
            fail_msg("%s only reads, yet may not be repeated", reads[i]);
        }
    }
    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if (px_cmd_lookup(others[i], strlen(others[i]))->may_repeat) {
            fail_msg("%s changes something or blocks, yet may be repeated", others[i]);
        }
    }
}

static void
test_lookup_refuses(void **state)
{
    char longname[200];

    (void)state;
    assert_null(px_cmd_lookup(LIT("NOPE")));
    assert_null(px_cmd_lookup(LIT("GE")));
    assert_null(px_cmd_lookup(LIT("GETT")));
    assert_null(px_cmd_lookup(LIT("GET ")));
    assert_null(px_cmd_lookup(LIT("AAAA")));     /* before the first row */
    assert_null(px_cmd_lookup(LIT("ZZZZ")));     /* after the last */
    assert_null(px_cmd_lookup("GET", 0));        /* empty */
    assert_null(px_cmd_lookup(LIT("GET\0")));    /* the NUL is a byte of the name */
    assert_ptr_equal(px_cmd_lookup("GETSET", 3), /* only len bytes count */
                     px_cmd_lookup(LIT("GET")));
    /* 23 bytes fit the lookup's buffer, 24 and more do not */
    assert_null(px_cmd_lookup(LIT("GEORADIUSBYMEMBER_ROXYZ")));
    assert_null(px_cmd_lookup(LIT("GEORADIUSBYMEMBER_ROXYZW")));
    memset(longname, 'A', sizeof(longname));
    memcpy(longname, "GET", 3);
    assert_null(px_cmd_lookup(longname, sizeof(longname)));
    assert_null(px_cmd_lookup(longname, 24));
}

/* ---- parsing ---- */

static void
test_parse_small_frame(void **state)
{
    static const char text[] = "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
    static const struct px_arg want[3] = {{4, 8, 3}, {13, 17, 1}, {20, 24, 5}};
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *why = NULL;
    char buf[8];

    (void)state;
    evbuffer_add(in, LIT(text));
    assert_int_equal(px_cmd_parse(&cmd, in, sizeof(text) - 1, &why), 0);
    assert_int_equal(cmd.argc, 3);
    assert_memory_equal(cmd.argv, want, sizeof(want)); /* the last arg ends at 24 + 5 + 2 = 31 */
    assert_string_equal(cmd.name, "SET");
    assert_int_equal(px_cmd_arg(&cmd, 0, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "set", 3); /* the frame itself is not upper-cased */
    assert_int_equal(px_cmd_arg(&cmd, 2, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "value", 5);
    assert_int_equal(evbuffer_get_length(in), sizeof(text) - 1); /* nothing consumed */
    px_cmd_deinit(&cmd);
    assert_null(cmd.argv);
    evbuffer_free(in);
}

/* Payloads are skipped by their length: CRLF, '$' and '*' inside are data. */
static const char *const tricky_args[] = {
    "mset", "", "a\r\nb", "$3\r\n", "*1\r\n$1\r\nx\r\n", "0123456789", "\0\xff"};
static const size_t tricky_lens[] = {4, 0, 4, 4, 11, 10, 2};
#define TRICKY_ARGC (sizeof(tricky_lens) / sizeof(tricky_lens[0]))

/* The same frame parses the same at every split and at a guard page; what follows it is left. */
static void
test_parse_every_split(void **state)
{
    static const char next[] = "*1\r\n$4\r\nPING\r\n";
    struct evbuffer *b = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *why = NULL;
    struct guarded g;
    uint8_t text[256];
    const uint8_t *data;
    size_t n, k, i;

    (void)state;
    n = put_frame(b, TRICKY_ARGC, tricky_args, tricky_lens);
    assert_true(n + sizeof(next) - 1 <= sizeof(text));
    assert_int_equal(evbuffer_remove(b, text, n), (int)n);
    memcpy(text + n, next, sizeof(next) - 1);

    /* the frame alone, its last byte against the guard page: parsed in place */
    data = guard(text, n, &g);
    evbuffer_add_reference(b, data, n, NULL, NULL);
    assert_int_equal(px_cmd_parse(&cmd, b, n, &why), 0);
    expect_layout(&cmd, TRICKY_ARGC, tricky_lens, n);
    expect_args(&cmd, TRICKY_ARGC, tricky_args, tricky_lens);
    assert_string_equal(cmd.name, "MSET");
    evbuffer_drain(b, evbuffer_get_length(b));
    unguard(&g);

    /* split in two at every byte, then a byte per chain; the next frame follows */
    data = guard(text, n + sizeof(next) - 1, &g);
    for (k = 0; k <= n + 1; k++) {
        if (k == 0) {
            evbuffer_add_reference(b, data, n + sizeof(next) - 1, NULL, NULL);
        } else if (k <= n) {
            evbuffer_add_reference(b, data, k, NULL, NULL);
            evbuffer_add_reference(b, data + k, n + sizeof(next) - 1 - k, NULL, NULL);
        } else {
            for (i = 0; i < n + sizeof(next) - 1; i++) {
                evbuffer_add_reference(b, data + i, 1, NULL, NULL);
            }
        }
        why = NULL;
        if (px_cmd_parse(&cmd, b, n, &why) != 0) {
            fail_msg("split at %zu: %s", k, why);
        }
        expect_layout(&cmd, TRICKY_ARGC, tricky_lens, n);
        expect_args(&cmd, TRICKY_ARGC, tricky_args, tricky_lens);
        assert_string_equal(cmd.name, "MSET");
        assert_int_equal(evbuffer_get_length(b), n + sizeof(next) - 1);
        evbuffer_drain(b, evbuffer_get_length(b));
    }
    unguard(&g);
    px_cmd_deinit(&cmd);
    evbuffer_free(b);
}

struct refused {
    const char *text;
    size_t len; /* the frame length given to px_cmd_parse */
};

static void
test_parse_refuses(void **state)
{
    static const struct refused cases[] = {
        {LIT("*1\r\n:1\r\n")},                             /* an integer, not a bulk string */
        {LIT("+OK\r\n")},                                  /* not an array */
        {LIT("$3\r\nGET\r\n")},                            /* a bulk string, not an array */
        {LIT("*0\r\n")},                                   /* no command */
        {LIT("*-1\r\n")},                                  /* a null array */
        {LIT("*1\r\n$-1\r\n")},                            /* a null bulk string */
        {LIT("*1\r\n*1\r\n$1\r\na\r\n")},                  /* nested */
        {LIT("*2\r\n$3\r\nGET\r\n+k\r\n")},                /* a simple string */
        {LIT("*1\r\n$4\r\nPING\r\nX")},                    /* a trailing byte */
        {LIT("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n")}, /* two frames */
        {LIT("*1\r\n$4\r\nPING\r\n\r\n")},                 /* a trailing CRLF */
        {LIT("*2\r\n$4\r\nPING\r\n")},                     /* an argument short */
        {LIT("*1\r\n$5\r\nPING\r\n")},                     /* a payload past the frame */
        {"*1\r\n$4\r\nPING\r\n", 13},                      /* the frame cut short */
        {LIT("*1\r\n$x\r\nPING\r\n")},                     /* not a length */
        {LIT("*\r\n$4\r\nPING\r\n")},                      /* no count */
        {LIT("*1\r\n")},                                   /* no argument at all */
        {LIT("*1")},                                       /* a header cut short */
    };
    struct px_cmd cmd = {0};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct evbuffer *in = evbuffer_new();
        const char *why = NULL;
        struct guarded g;
        const uint8_t *data = guard(cases[i].text, cases[i].len, &g);

        evbuffer_add_reference(in, data, cases[i].len, NULL, NULL);
        if (px_cmd_parse(&cmd, in, cases[i].len, &why) != -1) {
            fail_msg("case %zu (%.*s) accepted", i, (int)cases[i].len, cases[i].text);
        }
        assert_non_null(why);
        assert_true(why[0] != '\0');
        assert_int_equal(cmd.argc, 0); /* nothing to read by mistake */
        evbuffer_free(in);
        unguard(&g);
    }
    px_cmd_deinit(&cmd);
}

/* cmd->name after parsing "<arg0> k" into cmd, as a string in out. */
static const char *
name_of(struct px_cmd *cmd, const char *arg0, size_t len, char *out)
{
    struct evbuffer *in = evbuffer_new();
    const char *argv[2] = {arg0, "k"}, *why = NULL;
    size_t lens[2] = {len, 1}, n = put_frame(in, 2, argv, lens);
    int r = px_cmd_parse(cmd, in, n, &why);

    evbuffer_free(in);
    assert_int_equal(r, 0);
    assert_int_equal(cmd->argv[0].len, len);
    assert_true(memchr(cmd->name, '\0', sizeof(cmd->name)) != NULL);
    return strcpy(out, cmd->name);
}

/* cmd->name: arg 0 upper-cased when it fits in 23 bytes, "" otherwise; never stale. */
static void
test_parse_name(void **state)
{
    struct px_cmd cmd = {0};
    char *big = malloc(200 << 10), out[sizeof(cmd.name)];

    (void)state;
    assert_non_null(big);
    memset(big, 'g', 200 << 10); /* a 200KiB name makes a frame past 64KiB */
    assert_string_equal(name_of(&cmd, LIT("get"), out), "GET");
    assert_string_equal(name_of(&cmd, LIT("abcdefghijklmnopqrstuvw"), out), /* 23 bytes */
                        "ABCDEFGHIJKLMNOPQRSTUVW");
    assert_string_equal(name_of(&cmd, LIT("abcdefghijklmnopqrstuvwx"), out), ""); /* 24 */
    assert_string_equal(name_of(&cmd, LIT("Client|SetName-1"), out), "CLIENT|SETNAME-1");
    assert_string_equal(name_of(&cmd, LIT(""), out), "");
    assert_string_equal(name_of(&cmd, LIT("ping"), out), "PING");
    assert_string_equal(name_of(&cmd, big, 200 << 10, out), "");
    px_cmd_deinit(&cmd);
    free(big);
}

/* argv grows for a long request and is reused for the next ones. */
static void
test_parse_reuses_argv(void **state)
{
    enum { MANY = 300 };
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *why = NULL, *argv[MANY];
    size_t lens[MANY], n, i, round;
    char words[MANY][8];

    (void)state;
    for (i = 0; i < MANY; i++) {
        lens[i] = (size_t)snprintf(words[i], sizeof(words[i]), "k%zu", i);
        argv[i] = words[i];
    }
    strcpy(words[0], "DEL");
    lens[0] = 3;
    for (round = 0; round < 4; round++) {
        size_t argc = round % 2 == 0 ? 2 : MANY;

        n = put_frame(in, argc, argv, lens);
        assert_int_equal(px_cmd_parse(&cmd, in, n, &why), 0);
        expect_layout(&cmd, argc, lens, n);
        assert_true(cmd.cap >= argc);
        assert_true(px_cmd_arg_is(&cmd, argc - 1, words[argc - 1]));
        assert_false(px_cmd_arg_is(&cmd, argc, "k2")); /* past the end, whatever argv holds */
        evbuffer_drain(in, n);
    }
    px_cmd_deinit(&cmd);
    assert_null(cmd.argv);
    assert_int_equal(cmd.cap, 0);
    px_cmd_deinit(&cmd); /* twice is harmless */
    evbuffer_free(in);
}

/*
 * "GET <v>" of exactly n bytes, in three chains cut inside the headers:
 * parsed in place up to 64KiB, through the evbuffer past it, the same either way.
 */
static void
parse_get_of(size_t n)
{
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *why = NULL;
    size_t vlen = n - 4 - rct_bulk_size(3) - rct_bulk_size(0), pos, i;
    size_t lens[2] = {3, 0};
    char *text = malloc(n), buf[8];
    size_t keys[4];

    assert_non_null(text);
    while (rct_bulk_size(vlen) + 4 + rct_bulk_size(3) > n) {
        vlen--;
    }
    assert_int_equal(4 + rct_bulk_size(3) + rct_bulk_size(vlen), n);
    lens[1] = vlen;
    pos = (size_t)sprintf(text, "*2\r\n$3\r\nGET\r\n$%zu\r\n", vlen);
    for (i = 0; i < vlen; i++) {
        text[pos + i] = "$1\r\n"[i % 4]; /* what a header looks like, were it read */
    }
    memcpy(text + pos, "key:", 4);
    memcpy(text + n - 2, "\r\n", 2);
    evbuffer_add_reference(in, text, 6, NULL, NULL);      /* "*2\r\n$3" */
    evbuffer_add_reference(in, text + 6, 10, NULL, NULL); /* "\r\nGET\r\n" and 3 bytes */
    evbuffer_add_reference(in, text + 16, n - 16, NULL, NULL);
    if (px_cmd_parse(&cmd, in, n, &why) != 0) {
        fail_msg("%zu bytes: %s", n, why);
    }
    expect_layout(&cmd, 2, lens, n);
    assert_string_equal(cmd.name, "GET");
    assert_int_equal(px_cmd_arg(&cmd, 1, buf, 4), vlen);
    assert_memory_equal(buf, "key:", 4);
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("GET")), keys, 4), 1);
    assert_int_equal(keys[0], 1);
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
    free(text);
}

static void
test_parse_at_64kib(void **state)
{
    (void)state;
    parse_get_of(1000);
    parse_get_of(65535);
    parse_get_of(65536);
    parse_get_of(65537);
    parse_get_of(65538);
    parse_get_of(70000);
}

/* Add text by reference in pieces of `piece` bytes, so that headers straddle chains. */
static void
add_pieces(struct evbuffer *b, const char *text, size_t len, size_t piece)
{
    size_t pos;

    for (pos = 0; pos < len; pos += piece) {
        size_t k = len - pos < piece ? len - pos : piece;

        assert_int_equal(evbuffer_add_reference(b, text + pos, k, NULL, NULL), 0);
    }
}

/* SET k <8MiB> EX 10, then PING: the value is 64 references to one 128KiB block. */
static void
test_parse_8mib_value(void **state)
{
    enum { BLOCK = 128 << 10, BLOCKS = 64, VLEN = BLOCK * BLOCKS };
    static const char head[] = "*5\r\n$3\r\nset\r\n$1\r\nk\r\n$8388608\r\n";
    static const char tail[] = "\r\n$2\r\nEX\r\n$2\r\n10\r\n";
    static const char next[] = "*1\r\n$4\r\nPING\r\n";
    const size_t lens[] = {3, 1, VLEN, 2, 2};
    const size_t n = sizeof(head) - 1 + VLEN + sizeof(tail) - 1;
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *why = NULL;
    char *block = malloc(BLOCK), buf[8];
    size_t i, keys[4];

    (void)state;
    assert_non_null(block);
    for (i = 0; i < BLOCK; i++) {
        block[i] = "*1\r\n$2\r\n"[i % 8];
    }
    memcpy(block, "<<", 2);
    add_pieces(in, head, sizeof(head) - 1, 3);
    for (i = 0; i < BLOCKS; i++) {
        assert_int_equal(evbuffer_add_reference(in, block, BLOCK, NULL, NULL), 0);
    }
    add_pieces(in, tail, sizeof(tail) - 1, 3);
    add_pieces(in, next, sizeof(next) - 1, 5);
    assert_int_equal(evbuffer_get_length(in), n + sizeof(next) - 1);

    assert_int_equal(px_cmd_parse(&cmd, in, n, &why), 0);
    expect_layout(&cmd, 5, lens, n);
    assert_string_equal(cmd.name, "SET");
    assert_int_equal(cmd.argv[3].hdr, sizeof(head) - 1 + VLEN + 2);
    assert_int_equal(px_cmd_arg(&cmd, 2, buf, 4), VLEN);
    assert_memory_equal(buf, "<<\r\n", 4);
    assert_true(px_cmd_arg_is(&cmd, 1, "K"));
    assert_true(px_cmd_arg_is(&cmd, 3, "ex"));
    assert_int_equal(px_cmd_arg_int(&cmd, 4), 10);
    assert_int_equal(px_cmd_arg_int(&cmd, 2), -1);
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("SET")), keys, 4), 1);
    assert_int_equal(keys[0], 1);
    /* not copied into one chunk to be parsed; nothing consumed */
    assert_true(evbuffer_get_contiguous_space(in) < n);
    assert_int_equal(evbuffer_get_length(in), n + sizeof(next) - 1);

    evbuffer_drain(in, n); /* and the request after it */
    assert_int_equal(px_cmd_parse(&cmd, in, sizeof(next) - 1, &why), 0);
    assert_int_equal(cmd.argc, 1);
    assert_string_equal(cmd.name, "PING");
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
    free(block);
}

/* MSET of 200KiB values, added in 1000-byte evbuffer_add calls. */
static void
test_parse_mset_200kib_values(void **state)
{
    enum { VLEN = 200 << 10, CHUNK = 1000 };
    struct evbuffer *b = evbuffer_new(), *in = evbuffer_new();
    const char *argv[7] = {"MSet", "k1", NULL, "k2", NULL, "k3", "v3"};
    size_t lens[7] = {4, 2, VLEN, 2, VLEN, 2, 2}, n, pos, keys[8];
    char *v1 = malloc(VLEN), *v2 = malloc(VLEN), *text, buf[8];
    struct px_cmd cmd = {0};
    const char *why = NULL;

    (void)state;
    assert_non_null(v1);
    assert_non_null(v2);
    memset(v1, '$', VLEN);
    memset(v2, '*', VLEN);
    memcpy(v1, "one", 3);
    memcpy(v2, "two", 3);
    argv[2] = v1;
    argv[4] = v2;
    n = put_frame(b, 7, argv, lens);
    text = (char *)evbuffer_pullup(b, -1);
    for (pos = 0; pos < n; pos += CHUNK) {
        assert_int_equal(evbuffer_add(in, text + pos, n - pos < CHUNK ? n - pos : CHUNK), 0);
    }
    assert_int_equal(px_cmd_parse(&cmd, in, n, &why), 0);
    assert_true(evbuffer_get_contiguous_space(in) < n); /* not copied into one chunk */
    expect_layout(&cmd, 7, lens, n);
    assert_string_equal(cmd.name, "MSET");
    assert_int_equal(px_cmd_arg(&cmd, 4, buf, 3), VLEN);
    assert_memory_equal(buf, "two", 3);
    assert_true(px_cmd_arg_is(&cmd, 5, "K3"));
    assert_int_equal(px_cmd_arg(&cmd, 6, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "v3", 2);
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("MSET")), keys, 8), 3);
    assert_memory_equal(keys, ((size_t[]){1, 3, 5}), 3 * sizeof(size_t));
    px_cmd_deinit(&cmd);
    evbuffer_free(b);
    evbuffer_free(in);
    free(v1);
    free(v2);
}

/* ---- arguments ---- */

/* Parse the words of line (single spaces) into cmd, from a fresh buffer in. */
static void
parse_line(struct px_cmd *cmd, struct evbuffer *in, const char *line)
{
    char buf[512];
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS], argc = split_words(line, buf, sizeof(buf), argv, lens), n;
    const char *why = NULL;

    evbuffer_drain(in, evbuffer_get_length(in));
    n = put_frame(in, argc, argv, lens);
    if (px_cmd_parse(cmd, in, n, &why) != 0) {
        fail_msg("%s: %s", line, why);
    }
}

static void
test_arg_copies_up_to_cap(void **state)
{
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    char buf[16];

    (void)state;
    parse_line(&cmd, in, "SET key hello");
    memset(buf, '#', sizeof(buf));
    assert_int_equal(px_cmd_arg(&cmd, 1, buf, 2), 3);
    assert_memory_equal(buf, "ke#", 3);
    assert_int_equal(px_cmd_arg(&cmd, 2, buf, 0), 5);
    assert_memory_equal(buf, "ke#", 3);
    assert_int_equal(px_cmd_arg(&cmd, 2, buf, 5), 5);
    assert_memory_equal(buf, "hello#", 6);
    assert_int_equal(px_cmd_arg(&cmd, 0, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "SET", 3);
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
}

static void
test_arg_is(void **state)
{
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    const char *argv[4] = {"CLIENT", "setName", "", "a\0b"};
    const size_t lens[4] = {6, 7, 0, 3};
    const char *why = NULL;
    size_t n;

    (void)state;
    n = put_frame(in, 4, argv, lens);
    assert_int_equal(px_cmd_parse(&cmd, in, n, &why), 0);
    assert_true(px_cmd_arg_is(&cmd, 0, "client"));
    assert_true(px_cmd_arg_is(&cmd, 1, "SETNAME"));
    assert_true(px_cmd_arg_is(&cmd, 1, "setname"));
    assert_true(px_cmd_arg_is(&cmd, 1, "setName"));
    assert_false(px_cmd_arg_is(&cmd, 1, "SETNAM"));
    assert_false(px_cmd_arg_is(&cmd, 1, "SETNAMES"));
    assert_false(px_cmd_arg_is(&cmd, 1, "GETNAME"));
    assert_true(px_cmd_arg_is(&cmd, 2, ""));
    assert_false(px_cmd_arg_is(&cmd, 2, "x"));
    assert_false(px_cmd_arg_is(&cmd, 3, "a")); /* the NUL is a byte of the arg */
    assert_false(px_cmd_arg_is(&cmd, 4, ""));  /* past the end */
    assert_false(px_cmd_arg_is(&cmd, 100, "CLIENT"));
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
}

static void
test_arg_int(void **state)
{
    static const char *const argv[] = {"X",
                                       "0",
                                       "7",
                                       "0042",
                                       "123456789",
                                       "999999999999999999",
                                       "1000000000000000000",
                                       "-1",
                                       "-0",
                                       "+1",
                                       "1a",
                                       "a1",
                                       "1.5",
                                       "0x10",
                                       "",
                                       " 1",
                                       "99999999999999999999999"};
    static const int64_t want[] = {-1,
                                   0,
                                   7,
                                   -1 /* leading zeros: not a number to Redis either */,
                                   123456789,
                                   999999999999999999, /* 18 digits */
                                   -1 /* 19: too long */,
                                   -1 /* negative */,
                                   -1,
                                   -1,
                                   -1,
                                   -1,
                                   -1,
                                   -1,
                                   -1 /* empty */,
                                   -1,
                                   -1};
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    size_t lens[sizeof(argv) / sizeof(argv[0])], i, n = sizeof(argv) / sizeof(argv[0]);
    const char *why = NULL;

    (void)state;
    for (i = 0; i < n; i++) {
        lens[i] = strlen(argv[i]);
    }
    assert_int_equal(px_cmd_parse(&cmd, in, put_frame(in, n, argv, lens), &why), 0);
    for (i = 0; i < n; i++) {
        if (px_cmd_arg_int(&cmd, i) != want[i]) {
            fail_msg("\"%s\": %lld, expected %lld", argv[i], (long long)px_cmd_arg_int(&cmd, i),
                     (long long)want[i]);
        }
    }
    assert_int_equal(px_cmd_arg_int(&cmd, n), -1); /* past the end */
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
}

/* ---- key positions ---- */

/* The keys of the command in line (single spaces) must be want[0..count), or count -1. */
static void
expect_keys(const char *line, long count, const size_t *want)
{
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    const struct px_cmd_info *info;
    size_t keys[MAX_ARGS], argc;
    long got, i;
    char list[256];
    int o = 0;

    parse_line(&cmd, in, line);
    argc = cmd.argc;
    info = px_cmd_lookup(cmd.name, strlen(cmd.name));
    got = info != NULL ? px_cmd_keys(&cmd, info, keys, MAX_ARGS) : -2;
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
    assert_non_null(info);
    for (i = 0; i < got; i++) {
        assert_true(keys[i] < argc);
        o += snprintf(list + o, sizeof(list) - (size_t)o, " %zu", keys[i]);
    }
    list[o] = '\0';
    if (got != count ||
        (got > 0 && want != NULL && memcmp(keys, want, (size_t)got * sizeof(keys[0])) != 0)) {
        char exp[256];
        int e = 0;

        for (i = 0; i < count; i++) {
            e += snprintf(exp + e, sizeof(exp) - (size_t)e, " %zu", want[i]);
        }
        exp[e] = '\0';
        rct_mismatch("%s: %ld keys [%s ], expected %ld [%s ]", line, got, list, count, exp);
    }
}

#define KEYS_ARE(line, ...)                                                                        \
    expect_keys(line, (long)(sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t)),                    \
                (size_t[]){__VA_ARGS__})
#define NO_KEYS(line) expect_keys(line, 0, NULL)
#define NO_FIT(line) expect_keys(line, -1, NULL)

static void
test_keys_range(void **state)
{
    (void)state;
    KEYS_ARE("GET k", 1);
    KEYS_ARE("get k", 1);
    KEYS_ARE("SET k v EX 10", 1);
    KEYS_ARE("MGET a b c", 1, 2, 3);
    KEYS_ARE("MGET a", 1);
    KEYS_ARE("MSET a 1 b 2 c 3", 1, 3, 5);
    KEYS_ARE("MSET a 1", 1);
    KEYS_ARE("DEL a b", 1, 2);
    KEYS_ARE("BLPOP a b c 0", 1, 2, 3);
    KEYS_ARE("BLPOP a 0", 1);
    KEYS_ARE("BZPOPMIN a b 1.5", 1, 2);
    KEYS_ARE("RENAME a b", 1, 2);
    KEYS_ARE("BLMOVE a b LEFT RIGHT 0", 1, 2);
    KEYS_ARE("BITOP AND d a b", 2, 3, 4);
    KEYS_ARE("OBJECT ENCODING k", 2);
    KEYS_ARE("XINFO STREAM s FULL", 2);
    KEYS_ARE("WATCH a b", 1, 2);
    assert_int_equal(rct_mismatches, 0);
}

static void
test_keys_numkeys(void **state)
{
    (void)state;
    KEYS_ARE("EVAL s 2 a b x y", 3, 4);
    KEYS_ARE("EVAL s 2 a b", 3, 4);
    KEYS_ARE("evalsha f00 1 a", 3);
    NO_KEYS("EVAL s 0");
    NO_KEYS("EVAL s 0 x y");
    KEYS_ARE("FCALL f 1 a x", 3);
    KEYS_ARE("ZUNIONSTORE dest 2 a b", 1, 3, 4);
    KEYS_ARE("ZUNIONSTORE dest 2 a b WEIGHTS 1 2", 1, 3, 4);
    KEYS_ARE("ZINTERSTORE d 1 a", 1, 3);
    KEYS_ARE("ZUNION 2 a b", 2, 3);
    KEYS_ARE("LMPOP 2 a b LEFT", 2, 3);
    KEYS_ARE("SINTERCARD 2 a b LIMIT 1", 2, 3);
    KEYS_ARE("BLMPOP 0 2 a b LEFT", 3, 4);
    KEYS_ARE("BZMPOP 1 1 a MIN", 3);
    assert_int_equal(rct_mismatches, 0);
}

static void
test_keys_streams(void **state)
{
    (void)state;
    KEYS_ARE("XREAD COUNT 2 STREAMS a b 0 0", 4, 5);
    KEYS_ARE("XREAD STREAMS a 0", 2);
    KEYS_ARE("xread block 0 streams a $", 4);
    KEYS_ARE("XREAD STREAMS STREAMS 0", 2); /* a stream named STREAMS */
    KEYS_ARE("XREADGROUP GROUP g c COUNT 1 STREAMS a b > >", 7, 8);
    NO_FIT("XREAD COUNT 2 STREAMS a b 0");
    NO_FIT("XREAD COUNT 2 STREAMS a b c");
    NO_FIT("XREAD STREAMS");
    NO_FIT("XREAD COUNT 2 a 0");
    NO_FIT("XREAD");
    assert_int_equal(rct_mismatches, 0);
}

/*
 * Redis skips the arguments of GROUP, COUNT and BLOCK when it looks for STREAMS
 * (db.c xreadGetKeys): a group or consumer may be named "streams".
 * redis-server 7.0: COMMAND GETKEYS XREADGROUP GROUP streams c STREAMS a 0 -> a.
 */
static void
test_keys_streams_named_option(void **state)
{
    (void)state;
    KEYS_ARE("XREADGROUP GROUP streams c STREAMS a 0", 5);
    KEYS_ARE("XREADGROUP GROUP g streams STREAMS a 0", 5);
    KEYS_ARE("XREADGROUP GROUP g streams STREAMS a b 0 0", 5, 6);
    assert_int_equal(rct_mismatches, 0);
}

/* LCS key1 key2: redis-server 7.0 COMMAND INFO LCS gives keys 1..2, COMMAND GETKEYS a b. */
static void
test_keys_lcs_both(void **state)
{
    (void)state;
    KEYS_ARE("LCS a b", 1, 2);
    assert_int_equal(rct_mismatches, 0);
}

static void
test_keys_too_few_args(void **state)
{
    (void)state;
    NO_FIT("GET");
    NO_FIT("MGET");
    NO_FIT("MSET");
    NO_FIT("RENAME a");
    NO_FIT("BLPOP 0");
    NO_FIT("BLPOP");
    NO_FIT("OBJECT ENCODING");
    NO_FIT("OBJECT");
    NO_FIT("BITOP AND");
    NO_FIT("EVAL s");
    NO_FIT("EVAL s 2 a"); /* numkeys past the args */
    NO_FIT("EVAL s 1");
    NO_FIT("EVAL s x a");  /* numkeys not a number */
    NO_FIT("EVAL s -1 a"); /* nor negative */
    NO_FIT("ZUNIONSTORE d");
    NO_FIT("ZUNIONSTORE d 3 a b");
    NO_FIT("LMPOP");
    assert_int_equal(rct_mismatches, 0);
}

static void
test_keys_none(void **state)
{
    (void)state;
    NO_KEYS("KEYS *");
    NO_KEYS("KEYS");
    NO_KEYS("FLUSHALL");
    NO_KEYS("SCAN 0");
    NO_KEYS("PING");
    NO_KEYS("ECHO hi");
    NO_KEYS("AUTH pw");
    NO_KEYS("MULTI");
    assert_int_equal(rct_mismatches, 0);
}

/* keys holds at most max: the count is of the keys stored. */
static void
test_keys_up_to_max(void **state)
{
    struct evbuffer *in = evbuffer_new();
    struct px_cmd cmd = {0};
    size_t keys[4] = {0, 0, 99, 99};

    (void)state;
    parse_line(&cmd, in, "MGET a b c d");
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("MGET")), keys, 2), 2);
    assert_int_equal(keys[0], 1);
    assert_int_equal(keys[1], 2);
    assert_int_equal(keys[2], 99);
    parse_line(&cmd, in, "ZUNIONSTORE d 2 a b");
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("ZUNIONSTORE")), keys, 2), 2);
    assert_int_equal(keys[0], 1);
    assert_int_equal(keys[1], 3);
    assert_int_equal(keys[2], 99);
    parse_line(&cmd, in, "XREAD STREAMS a b c 0 0 0");
    assert_int_equal(px_cmd_keys(&cmd, px_cmd_lookup(LIT("XREAD")), keys, 1), 1);
    assert_int_equal(keys[0], 2);
    assert_int_equal(keys[1], 3);
    px_cmd_deinit(&cmd);
    evbuffer_free(in);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_sorted_and_upper_case),
        cmocka_unit_test(test_table_key_specs_fit),
        cmocka_unit_test(test_lookup_any_case),
        cmocka_unit_test(test_may_repeat_only_reads),
        cmocka_unit_test(test_lookup_refuses),
        cmocka_unit_test(test_parse_small_frame),
        cmocka_unit_test(test_parse_every_split),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_parse_reuses_argv),
        cmocka_unit_test(test_parse_at_64kib),
        cmocka_unit_test(test_parse_8mib_value),
        cmocka_unit_test(test_parse_mset_200kib_values),
        cmocka_unit_test(test_arg_copies_up_to_cap),
        cmocka_unit_test(test_arg_is),
        cmocka_unit_test(test_arg_int),
        CASES(test_keys_range),
        CASES(test_keys_numkeys),
        CASES(test_keys_streams),
        CASES(test_keys_streams_named_option),
        CASES(test_keys_lcs_both),
        CASES(test_keys_too_few_args),
        CASES(test_keys_none),
        cmocka_unit_test(test_keys_up_to_max),
    };
    int failed =
        cmocka_run_group_tests_name("table, parsing, arguments and keys", tests, NULL, NULL);

    return failed + _cmocka_run_group_tests("inline commands", resp_cmd_inline_tests,
                                            resp_cmd_inline_tests_count, NULL, NULL);
}
