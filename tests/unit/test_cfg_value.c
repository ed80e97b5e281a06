/*
 * Scalar parsers and printers of config/: durations, sizes, integers, booleans, addresses,
 * hostnames, the printers' round trip, and the edit distance behind "did you mean".
 */
#include "cfg_arena.h"
#include "cfg_value.h"
#include "config/cfg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char DURATION_WHY[] = "expected a duration like 250ms, 2s, 5m, 1h or 1m30s";
static const char SIZE_WHY[] = "expected a size like 512, 64KiB, 1MiB or 1GiB";

struct u64_case {
    const char *s;
    uint64_t want;
};

struct bad_case {
    const char *s;
    const char *why; /* NULL: any reason */
};

/* A deterministic sequence of 64-bit values (splitmix64). */
static uint64_t
next_random(uint64_t *seed)
{
    uint64_t z = (*seed += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- durations ---- */

static void
test_duration_valid(void **state)
{
    static const struct u64_case cases[] = {
        {"0", 0},
        {"0s", 0},
        {"0ms", 0},
        {"1ms", 1},
        {"250ms", 250},
        {"2s", 2000},
        {"5m", 300000},
        {"1h", 3600000},
        {"1d", 86400000},
        {"1m30s", 90000},
        {"1h1m1s1ms", 3661001},
        {"90s", 90000},
        {"1500ms", 1500},
        {"007s", 7000},
        {"2s2s", 4000}, /* parts add up */
        {"213503982334d", 213503982334ull * 86400000ull},
        {"18446744073709551615ms", UINT64_MAX},
        {"18446744073709551s615ms", UINT64_MAX},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        uint64_t ms = 12345;
        const char *why = NULL;

        if (cfg_parse_duration(cases[i].s, &ms, &why) != 0 || ms != cases[i].want) {
            fail_msg("'%s': got %llu (%s), want %llu", cases[i].s, (unsigned long long)ms,
                     why != NULL ? why : "", (unsigned long long)cases[i].want);
        }
    }
}

static void
test_duration_invalid(void **state)
{
    static const struct bad_case cases[] = {
        {"", DURATION_WHY},
        {"s", DURATION_WHY},
        {"ms", DURATION_WHY},
        {"-1s", DURATION_WHY},
        {"+1s", DURATION_WHY},
        {" 1s", DURATION_WHY},
        {"1s ", NULL},
        {"1 s", NULL},
        {"1.5s", NULL},
        {"0x10s", NULL},
        {"10", "a duration needs a unit: ms, s, m, h or d (for example 2s)"},
        {"1m30", "a duration needs a unit: ms, s, m, h or d (for example 2s)"},
        {"10x", "unknown duration unit; expected ms, s, m, h or d"},
        {"10sec", "unknown duration unit; expected ms, s, m, h or d"},
        {"1S", "unknown duration unit; expected ms, s, m, h or d"},
        {"1us", "unknown duration unit; expected ms, s, m, h or d"},
        {"1w", "unknown duration unit; expected ms, s, m, h or d"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        uint64_t ms = 12345;
        const char *why = NULL;

        if (cfg_parse_duration(cases[i].s, &ms, &why) != -1) {
            fail_msg("'%s' parsed as %llu", cases[i].s, (unsigned long long)ms);
        }
        assert_non_null(why);
        if (cases[i].why != NULL && strcmp(why, cases[i].why) != 0) {
            fail_msg("'%s': why '%s', want '%s'", cases[i].s, why, cases[i].why);
        }
    }
}

/* A duration past 2^64-1 ms fails; it never wraps to a small value. */
static void
test_duration_overflow(void **state)
{
    static const struct bad_case cases[] = {
        {"18446744073709551616ms", NULL}, /* the digits alone overflow */
        {"99999999999999999999999s", NULL},
        {"18446744073709552s", "duration too large"},
        {"5124095576031h", "duration too large"},
        {"307445734561826m", "duration too large"},
        {"213503982335d", "duration too large"},
        {"18446744073709551615ms1ms", "duration too large"},
        {"213503982334d1d", "duration too large"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        uint64_t ms = 12345;
        const char *why = NULL;

        if (cfg_parse_duration(cases[i].s, &ms, &why) != -1) {
            fail_msg("'%s' parsed as %llu", cases[i].s, (unsigned long long)ms);
        }
        assert_int_equal(ms, 12345);
        if (cases[i].why != NULL && strcmp(why, cases[i].why) != 0) {
            fail_msg("'%s': why '%s', want '%s'", cases[i].s, why, cases[i].why);
        }
    }
}

/* ---- sizes ---- */

static void
test_size_valid(void **state)
{
    static const struct u64_case cases[] = {
        {"0", 0},
        {"1", 1},
        {"512", 512},
        {"1000", 1000},
        {"0KiB", 0},
        {"1KiB", 1024},
        {"64KiB", 65536},
        {"1MiB", 1048576},
        {"512MiB", 512ull << 20},
        {"2GiB", 2ull << 30},
        {"1TiB", 1ull << 40},
        {"16777215TiB", 16777215ull << 40},
        {"17179869183GiB", 17179869183ull << 30},
        {"18446744073709551615", UINT64_MAX},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        uint64_t bytes = 12345;
        const char *why = NULL;

        if (cfg_parse_size(cases[i].s, &bytes, &why) != 0 || bytes != cases[i].want) {
            fail_msg("'%s': got %llu (%s), want %llu", cases[i].s, (unsigned long long)bytes,
                     why != NULL ? why : "", (unsigned long long)cases[i].want);
        }
    }
}

static void
test_size_invalid(void **state)
{
    static const char AMBIGUOUS[] =
        "ambiguous size unit; expected KiB, MiB or GiB (powers of 1024)";
    static const struct bad_case cases[] = {
        {"", SIZE_WHY},      {"KiB", SIZE_WHY},   {"-1", SIZE_WHY},     {"+1", SIZE_WHY},
        {" 1", SIZE_WHY},    {"1 KiB", SIZE_WHY}, {"1.5MiB", SIZE_WHY}, {"64kib", SIZE_WHY},
        {"64KIB", SIZE_WHY}, {"1B", SIZE_WHY},    {"1PiB", SIZE_WHY},   {"64KB", AMBIGUOUS},
        {"64kb", AMBIGUOUS}, {"64k", AMBIGUOUS},  {"64K", AMBIGUOUS},   {"1M", AMBIGUOUS},
        {"1MB", AMBIGUOUS},  {"1G", AMBIGUOUS},   {"1GB", AMBIGUOUS},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        uint64_t bytes = 12345;
        const char *why = NULL;

        if (cfg_parse_size(cases[i].s, &bytes, &why) != -1) {
            fail_msg("'%s' parsed as %llu", cases[i].s, (unsigned long long)bytes);
        }
        if (why == NULL || strcmp(why, cases[i].why) != 0) {
            fail_msg("'%s': why '%s', want '%s'", cases[i].s, why != NULL ? why : "(null)",
                     cases[i].why);
        }
    }
}

/* A size past 2^64-1 bytes fails; it never wraps or loses its high bits. */
static void
test_size_overflow(void **state)
{
    static const char *const cases[] = {
        "18446744073709551616",    "99999999999999999999999", "16777216TiB",
        "17179869184GiB",          "17592186044416MiB",       "18014398509481984KiB",
        "18446744073709551615KiB",
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        uint64_t bytes = 12345;
        const char *why = NULL;

        if (cfg_parse_size(cases[i], &bytes, &why) != -1) {
            fail_msg("'%s' parsed as %llu", cases[i], (unsigned long long)bytes);
        }
        assert_int_equal(bytes, 12345);
        assert_string_equal(why, "size too large");
    }
}

/* ---- integers and booleans ---- */

static void
test_int_valid(void **state)
{
    static const struct {
        const char *s;
        int64_t want;
    } cases[] = {
        {"0", 0},
        {"-0", 0},
        {"+0", 0},
        {"7", 7},
        {"+5", 5},
        {"-5", -5},
        {"007", 7},
        {"65535", 65535},
        {"-2147483648", INT32_MIN},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        int64_t v = 12345;
        const char *why = NULL;

        if (cfg_parse_int(cases[i].s, &v, &why) != 0 || v != cases[i].want) {
            fail_msg("'%s': got %lld (%s), want %lld", cases[i].s, (long long)v,
                     why != NULL ? why : "", (long long)cases[i].want);
        }
    }
}

static void
test_int_invalid(void **state)
{
    static const struct bad_case cases[] = {
        {"", "expected an integer"},
        {"-", "expected an integer"},
        {"+", "expected an integer"},
        {"--1", "expected an integer"},
        {"1a", "expected an integer"},
        {" 1", "expected an integer"},
        {"1 ", "expected an integer"},
        {"0x10", "expected an integer"},
        {"1.0", "expected an integer"},
        {"1e3", "expected an integer"},
        {"9223372036854775808", "integer out of range"},
        {"-9223372036854775809", "integer out of range"},
        {"18446744073709551615", "integer out of range"},
        {"99999999999999999999", NULL}, /* past 2^64: must fail, not wrap */
        {"-99999999999999999999", NULL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        int64_t v = 12345;
        const char *why = NULL;

        if (cfg_parse_int(cases[i].s, &v, &why) != -1) {
            fail_msg("'%s' parsed as %lld", cases[i].s, (long long)v);
        }
        assert_int_equal(v, 12345);
        assert_non_null(why);
        if (cases[i].why != NULL && strcmp(why, cases[i].why) != 0) {
            fail_msg("'%s': why '%s', want '%s'", cases[i].s, why, cases[i].why);
        }
    }
}

static void
test_bool(void **state)
{
    static const char *const bad[] = {"", "True", "FALSE", "yes", "no", "on", "1", "0", "t"};
    const char *why = NULL;
    bool b = false;
    size_t i;

    (void)state;
    assert_int_equal(cfg_parse_bool("true", &b, &why), 0);
    assert_true(b);
    assert_int_equal(cfg_parse_bool("false", &b, &why), 0);
    assert_false(b);
    for (i = 0; i < N(bad); i++) {
        b = true;
        if (cfg_parse_bool(bad[i], &b, &why) != -1) {
            fail_msg("'%s' parsed as a boolean", bad[i]);
        }
        assert_true(b);
        assert_string_equal(why, "expected true or false");
    }
}

/* ---- addresses ---- */

static void
test_addr_ipv4(void **state)
{
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg_addr a;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.sa;
    const char *why = NULL;

    (void)state;
    assert_int_equal(cfg_parse_addr(arena, "10.1.2.3:6379", false, &a, &why), 0);
    assert_int_equal(a.kind, CFG_ADDR_IPV4);
    assert_string_equal(a.host, "10.1.2.3");
    assert_string_equal(a.text, "10.1.2.3:6379");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.salen, sizeof(struct sockaddr_in));
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(sin->sin_port, htons(6379));
    assert_int_equal(sin->sin_addr.s_addr, htonl(0x0a010203));

    /* The port is printed canonically; the edges of its range. */
    assert_int_equal(cfg_parse_addr(arena, "0.0.0.0:00080", true, &a, &why), 0);
    assert_string_equal(a.text, "0.0.0.0:80");
    assert_int_equal(a.port, 80);
    assert_int_equal(cfg_parse_addr(arena, "127.0.0.1:1", false, &a, &why), 0);
    assert_int_equal(a.port, 1);
    assert_int_equal(cfg_parse_addr(arena, "127.0.0.1:65535", false, &a, &why), 0);
    assert_int_equal(a.port, 65535);
    cfg_arena_free(arena);
}

static void
test_addr_ipv6(void **state)
{
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg_addr a;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.sa;
    struct in6_addr want;
    const char *why = NULL;

    (void)state;
    assert_int_equal(cfg_parse_addr(arena, "[::1]:6379", false, &a, &why), 0);
    assert_int_equal(a.kind, CFG_ADDR_IPV6);
    assert_string_equal(a.host, "::1");
    assert_string_equal(a.text, "[::1]:6379");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.salen, sizeof(struct sockaddr_in6));
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(sin6->sin6_port, htons(6379));
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback, sizeof(struct in6_addr));

    assert_int_equal(cfg_parse_addr(arena, "[2001:db8::a:1]:443", true, &a, &why), 0);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::a:1", &want), 1);
    assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
    assert_string_equal(a.text, "[2001:db8::a:1]:443");

    assert_int_equal(cfg_parse_addr(arena, "[::ffff:10.0.0.1]:80", false, &a, &why), 0);
    assert_int_equal(a.kind, CFG_ADDR_IPV6);
    assert_string_equal(a.host, "::ffff:10.0.0.1");
    cfg_arena_free(arena);
}

static void
test_addr_wildcard(void **state)
{
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg_addr a;
    const char *why = NULL;

    (void)state;
    assert_int_equal(cfg_parse_addr(arena, "*:8080", true, &a, &why), 0);
    assert_int_equal(a.kind, CFG_ADDR_ANY);
    assert_string_equal(a.host, "*");
    assert_string_equal(a.text, "*:8080");
    assert_int_equal(a.port, 8080);
    assert_int_equal(a.salen, 0);

    assert_int_equal(cfg_parse_addr(arena, "*:8080", false, &a, &why), -1);
    assert_string_equal(why, "'*' is for bind addresses; a server needs a host");
    cfg_arena_free(arena);
}

static void
test_addr_hostname(void **state)
{
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg_addr a;
    const char *why = NULL;

    (void)state;
    assert_int_equal(cfg_parse_addr(arena, "redis-1.cache.internal:6379", false, &a, &why), 0);
    assert_int_equal(a.kind, CFG_ADDR_NAME);
    assert_string_equal(a.host, "redis-1.cache.internal");
    assert_string_equal(a.text, "redis-1.cache.internal:6379");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.salen, 0);
    assert_int_equal(cfg_parse_addr(arena, "localhost:80", true, &a, &why), 0);
    assert_int_equal(a.kind, CFG_ADDR_NAME);
    assert_string_equal(a.host, "localhost");
    cfg_arena_free(arena);
}

static void
test_addr_invalid(void **state)
{
    static const char PORT[] = "port must be a number from 1 to 65535";
    static const struct {
        const char *s;
        bool wildcard;
        const char *why;
    } cases[] = {
        {"", false, "missing port; expected host:port"},
        {"127.0.0.1", false, "missing port; expected host:port"},
        {"localhost", true, "missing port; expected host:port"},
        {":80", false, "missing host; expected host:port"},
        {"[]:80", false, "missing host; expected host:port"},
        {"127.0.0.1:", false, PORT},
        {"127.0.0.1:0", false, PORT},
        {"127.0.0.1:65536", false, PORT},
        {"127.0.0.1:70000", true, PORT},
        {"127.0.0.1:99999999999999999999", false, PORT},
        {"127.0.0.1:-1", false, PORT},
        {"127.0.0.1:+80", false, PORT},
        {"127.0.0.1:80x", false, PORT},
        {"127.0.0.1:http", false, PORT},
        {"[::1]:", false, PORT},
        {"[::1]:0", false, PORT},
        {"::1:80", false, "an IPv6 address needs brackets: [::1]:port"},
        {"2001:db8::1:80", true, "an IPv6 address needs brackets: [::1]:port"},
        {"[::1]", false, "expected host:port or [ipv6]:port"},
        {"[::1]", true, "expected host:port, [ipv6]:port or *:port"},
        {"[::1]80", false, "expected host:port or [ipv6]:port"},
        {"[::1:80", false, "expected host:port or [ipv6]:port"},
        {"[127.0.0.1]:80", false, "not a valid IPv6 address inside the brackets"},
        {"[fe80::1%eth0]:80", false, "not a valid IPv6 address inside the brackets"},
        {"[*]:80", true, "not a valid IPv6 address inside the brackets"},
        {"bad_host!:80", false, "not an IPv4 address or a valid hostname"},
        {"-lead.example:80", false, "not an IPv4 address or a valid hostname"},
        {"a..b:80", false, "not an IPv4 address or a valid hostname"},
        {"a b:80", false, "not an IPv4 address or a valid hostname"},
    };
    struct cfg_arena *arena = cfg_arena_new();
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        struct cfg_addr a;
        const char *why = NULL;
        int rc = cfg_parse_addr(arena, cases[i].s, cases[i].wildcard, &a, &why);

        if (rc != -1 || why == NULL || strcmp(why, cases[i].why) != 0) {
            cfg_arena_free(arena);
            fail_msg("'%s': rc %d why '%s', want '%s'", cases[i].s, rc,
                     why != NULL ? why : "(null)", cases[i].why);
        }
    }
    cfg_arena_free(arena);
}

/* A host longer than any DNS name is refused, whatever the reason given. */
static void
test_addr_long_host(void **state)
{
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg_addr a;
    const char *why = NULL;
    char s[400];
    int rc;

    (void)state;
    memset(s, 'a', 300);
    strcpy(s + 300, ":80");
    rc = cfg_parse_addr(arena, s, false, &a, &why);
    cfg_arena_free(arena);
    assert_int_equal(rc, -1);
    assert_non_null(why);
}

/*
 * A mistyped IPv4 address is not a hostname: RFC 1123 2.1 rules out names of the dotted-decimal
 * form, since the top-level label is never all digits.
 */
static void
test_addr_bad_ipv4_is_not_a_hostname(void **state)
{
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg_addr a;
    const char *why = NULL;
    int rc = cfg_parse_addr(arena, "10.0.0.256:6379", false, &a, &why);
    enum cfg_addr_kind kind = a.kind;

    (void)state;
    cfg_arena_free(arena);
    if (rc != -1) {
        fail_msg("10.0.0.256:6379 parsed, as address kind %d", (int)kind);
    }
}

/* ---- hostnames ---- */

static void
test_hostname_valid(void **state)
{
    static const char *const good[] = {
        "a",
        "localhost",
        "redis.internal",
        "a-b.c",
        "xn--bcher-kva.example",
        "a.",        /* absolute */
        "1a.b2.c3d", /* digits */
        "A.EXAMPLE.COM",
    };
    char label63[64], name253[254];
    size_t i;

    (void)state;
    for (i = 0; i < N(good); i++) {
        if (!cfg_valid_hostname(good[i])) {
            fail_msg("'%s' rejected", good[i]);
        }
    }
    memset(label63, 'x', 63);
    label63[63] = '\0';
    assert_true(cfg_valid_hostname(label63));
    /* 253 characters: 3 labels of 63, then 61 more, with 3 dots. */
    snprintf(name253, sizeof(name253), "%s.%s.%s.%.61s", label63, label63, label63, label63);
    assert_int_equal(strlen(name253), 253);
    assert_true(cfg_valid_hostname(name253));
}

static void
test_hostname_invalid(void **state)
{
    static const char *const bad[] = {
        "", ".", "..", ".a", "a..b", "-a", "a.-b", "a-.b", "a b", "a:b", "a/b", "a*", "caf\xc3\xa9",
    };
    char label64[65], name254[256];
    size_t i;

    (void)state;
    for (i = 0; i < N(bad); i++) {
        if (cfg_valid_hostname(bad[i])) {
            fail_msg("'%s' accepted", bad[i]);
        }
    }
    memset(label64, 'x', 64);
    label64[64] = '\0';
    assert_false(cfg_valid_hostname(label64));
    snprintf(name254, sizeof(name254), "%.63s.%.63s.%.63s.%.62s", label64, label64, label64,
             label64);
    assert_int_equal(strlen(name254), 254);
    assert_false(cfg_valid_hostname(name254));
}

/*
 * RFC 952/1123: a label does not end with '-'. "a-.b" is already refused.
 */
static void
test_hostname_trailing_hyphen(void **state)
{
    (void)state;
    assert_false(cfg_valid_hostname("a-.b"));
    if (cfg_valid_hostname("example-")) {
        fail_msg("'example-' accepted");
    }
    if (cfg_valid_hostname("a.b-")) {
        fail_msg("'a.b-' accepted");
    }
}

/* ---- printers ---- */

static void
test_format_duration(void **state)
{
    static const struct u64_case cases[] = {
        {"0s", 0},
        {"1ms", 1},
        {"999ms", 999},
        {"1s", 1000},
        {"1500ms", 1500},
        {"1m", 60000},
        {"90s", 90000},
        {"5m", 300000},
        {"1h", 3600000},
        {"90m", 5400000},
        {"1d", 86400000},
        {"2d", 172800000},
        {"3661001ms", 3661001},
        {"18446744073709551615ms", UINT64_MAX},
    };
    char buf[32];
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        cfg_format_duration(cases[i].want, buf, sizeof(buf));
        if (strcmp(buf, cases[i].s) != 0) {
            fail_msg("%llu: '%s', want '%s'", (unsigned long long)cases[i].want, buf, cases[i].s);
        }
    }
    /* A short buffer truncates and stays terminated. */
    cfg_format_duration(1500, buf, 4);
    assert_string_equal(buf, "150");
}

static void
test_format_size(void **state)
{
    static const struct u64_case cases[] = {
        {"0", 0},
        {"1", 1},
        {"1000", 1000},
        {"1536", 1536},
        {"1KiB", 1024},
        {"3KiB", 3072},
        {"64KiB", 65536},
        {"1MiB", 1048576},
        {"1025KiB", 1025 * 1024},
        {"512MiB", 512ull << 20},
        {"1GiB", 1ull << 30},
        {"1TiB", 1ull << 40},
        {"1024TiB", 1ull << 50},
        {"16777215TiB", 16777215ull << 40},
        {"18446744073709551615", UINT64_MAX},
    };
    char buf[32];
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        cfg_format_size(cases[i].want, buf, sizeof(buf));
        if (strcmp(buf, cases[i].s) != 0) {
            fail_msg("%llu: '%s', want '%s'", (unsigned long long)cases[i].want, buf, cases[i].s);
        }
    }
}

/* What a printer writes, its parser reads back as the same value. */
static void
check_duration_round_trip(uint64_t ms)
{
    char buf[32];
    uint64_t back = ms + 1;
    const char *why = NULL;

    cfg_format_duration(ms, buf, sizeof(buf));
    if (cfg_parse_duration(buf, &back, &why) != 0 || back != ms) {
        fail_msg("%llu printed as '%s' reads back as %llu (%s)", (unsigned long long)ms, buf,
                 (unsigned long long)back, why != NULL ? why : "");
    }
}

static void
check_size_round_trip(uint64_t bytes)
{
    char buf[32];
    uint64_t back = bytes + 1;
    const char *why = NULL;

    cfg_format_size(bytes, buf, sizeof(buf));
    if (cfg_parse_size(buf, &back, &why) != 0 || back != bytes) {
        fail_msg("%llu printed as '%s' reads back as %llu (%s)", (unsigned long long)bytes, buf,
                 (unsigned long long)back, why != NULL ? why : "");
    }
}

static void
test_duration_round_trip(void **state)
{
    static const uint64_t units[] = {1, 1000, 60000, 3600000, 86400000};
    uint64_t seed = 1, v;
    size_t i, u;

    (void)state;
    for (v = 0; v <= 100000; v += 7) {
        check_duration_round_trip(v);
    }
    for (i = 0; i < 64; i++) {
        check_duration_round_trip((uint64_t)1 << i);
        check_duration_round_trip(((uint64_t)1 << i) - 1);
    }
    for (i = 0; i < 20000; i++) {
        uint64_t r = next_random(&seed);

        check_duration_round_trip(r);
        for (u = 0; u < N(units); u++) {
            check_duration_round_trip((r >> (i % 40 + 1)) / units[u] * units[u]);
        }
    }
    check_duration_round_trip(UINT64_MAX);
    check_duration_round_trip(UINT64_MAX / 86400000 * 86400000);
}

static void
test_size_round_trip(void **state)
{
    uint64_t seed = 2, v;
    size_t i, shift;

    (void)state;
    for (v = 0; v <= 100000; v += 3) {
        check_size_round_trip(v);
    }
    for (i = 0; i < 64; i++) {
        check_size_round_trip((uint64_t)1 << i);
        check_size_round_trip(((uint64_t)1 << i) - 1);
        check_size_round_trip(((uint64_t)1 << i) + 1);
    }
    for (i = 0; i < 20000; i++) {
        uint64_t r = next_random(&seed);

        check_size_round_trip(r);
        for (shift = 10; shift <= 40; shift += 10) {
            check_size_round_trip((r >> (i % 50 + 1)) >> shift << shift);
        }
    }
    check_size_round_trip(UINT64_MAX);
    check_size_round_trip(UINT64_MAX >> 40 << 40);
}

/* ---- edit distance ---- */

static void
test_edit_distance(void **state)
{
    static const struct {
        const char *a, *b;
        size_t d;
    } cases[] = {
        {"", "", 0},
        {"a", "", 1},
        {"", "abc", 3},
        {"same", "same", 0},
        {"kitten", "sitting", 3},
        {"flaw", "lawn", 2},
        {"max_client", "max_clients", 1},
        {"round-robin", "round_robin", 1},
        {"lenght", "length", 2},
        {"delimeter", "delimiter", 1},
        {"cach", "cache", 1},
        {"verbose", "debug", 5},
        {"abc", "xyz", 3},
    };
    char a63[64], b63[64], a64[65];
    size_t i;

    (void)state;
    for (i = 0; i < N(cases); i++) {
        size_t ab = cfg_edit_distance(cases[i].a, cases[i].b);
        size_t ba = cfg_edit_distance(cases[i].b, cases[i].a);

        if (ab != cases[i].d || ba != cases[i].d) {
            fail_msg("'%s' '%s': %zu and %zu, want %zu", cases[i].a, cases[i].b, ab, ba,
                     cases[i].d);
        }
    }
    /* Up to 63 characters are measured; longer words are "too far" (SIZE_MAX). */
    memset(a63, 'a', 63);
    a63[63] = '\0';
    memcpy(b63, a63, sizeof(b63));
    b63[62] = 'b';
    assert_int_equal(cfg_edit_distance(a63, b63), 1);
    assert_int_equal(cfg_edit_distance(a63, ""), 63);
    memset(a64, 'a', 64);
    a64[64] = '\0';
    assert_int_equal(cfg_edit_distance(a64, a63), SIZE_MAX);
    assert_int_equal(cfg_edit_distance(a63, a64), SIZE_MAX);
    assert_int_equal(cfg_edit_distance(a64, a64), SIZE_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_valid),
        cmocka_unit_test(test_duration_invalid),
        cmocka_unit_test(test_duration_overflow),
        cmocka_unit_test(test_size_valid),
        cmocka_unit_test(test_size_invalid),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_int_valid),
        cmocka_unit_test(test_int_invalid),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_addr_ipv4),
        cmocka_unit_test(test_addr_ipv6),
        cmocka_unit_test(test_addr_wildcard),
        cmocka_unit_test(test_addr_hostname),
        cmocka_unit_test(test_addr_invalid),
        cmocka_unit_test(test_addr_long_host),
        cmocka_unit_test(test_addr_bad_ipv4_is_not_a_hostname),
        cmocka_unit_test(test_hostname_valid),
        cmocka_unit_test(test_hostname_invalid),
        cmocka_unit_test(test_hostname_trailing_hyphen),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_duration_round_trip),
        cmocka_unit_test(test_size_round_trip),
        cmocka_unit_test(test_edit_distance),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
