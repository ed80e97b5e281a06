/* px_log: line format (text and JSON), level filtering, escaping, truncation. */
#include "proxy/px_log.h"

#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static int fds[2];

static int
setup(void **state)
{
    (void)state;
    if (pipe(fds) == -1 || fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
        return -1;
    }
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    px_log_set_fd(fds[1]);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    px_log_set_fd(STDERR_FILENO);
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/* Everything written since the last call; "" when nothing was. */
static char *
drain(void)
{
    static char buf[1 << 16];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
assert_matches(const char *s, const char *pattern)
{
    regex_t re;
    int rc;

    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    rc = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    if (rc != 0) {
        fail_msg("'%s' does not match /%s/", s, pattern);
    }
}

static void
test_text_line(void **state)
{
    struct px_log_ctx ctx = {"redis", "cache", "10.0.0.5:6379", "127.0.0.1:50000"};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_warn("pool", &ctx, "connect failed: %s", "refused");
    assert_matches(drain(), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                            "warn  pool: connect failed: refused listener=redis cluster=cache "
                            "server=10\\.0\\.0\\.5:6379 peer=127\\.0\\.0\\.1:50000\n$");
}

static void
test_text_without_context(void **state)
{
    (void)state;
    px_log_configure(CFG_LOG_DEBUG, CFG_LOG_TEXT);
    px_log_debug("config", NULL, "n=%d", 3);
    assert_matches(drain(), "Z debug config: n=3\n$");
}

static void
test_text_partial_context(void **state)
{
    struct px_log_ctx ctx = {.cluster = "c"};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_error("pool", &ctx, "x");
    assert_matches(drain(), "Z error pool: x cluster=c\n$");
}

static void
test_text_control_bytes(void **state)
{
    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_info("t", NULL, "a\nb\rc");
    assert_matches(drain(), "t: a\\?b\\?c\n$");
}

static void
test_json_line(void **state)
{
    struct px_log_ctx ctx = {.listener = "l", .peer = "[::1]:1"};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_JSON);
    px_log_info("session", &ctx, "said \"hi\"\\ and\n\x01");
    assert_matches(drain(), "^\\{\"ts\":\"[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z\",\"level\":\"info\","
                            "\"component\":\"session\",\"listener\":\"l\",\"peer\":\"\\[::1\\]:1\","
                            "\"msg\":\"said \\\\\"hi\\\\\"\\\\\\\\ and\\\\n\\\\u0001\"\\}\n$");
}

static int evaluated;

static int
side_effect(void)
{
    return ++evaluated;
}

static void
test_level_off_costs_nothing(void **state)
{
    (void)state;
    px_log_configure(CFG_LOG_WARN, CFG_LOG_TEXT);
    evaluated = 0;
    px_log_info("hot", NULL, "%d", side_effect());
    px_log_debug("hot", NULL, "%d", side_effect());
    assert_int_equal(evaluated, 0);   /* arguments not even evaluated */
    assert_string_equal(drain(), ""); /* and nothing written */
    px_log_warn("hot", NULL, "%d", side_effect());
    assert_int_equal(evaluated, 1);
    assert_matches(drain(), "warn  hot: 1\n$");
}

static void
test_long_text_truncated(void **state)
{
    static char big[3 * PX_LOG_LINE_MAX];
    char *out;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_info("t", NULL, "%s", big);
    out = drain();
    assert_true(strlen(out) <= PX_LOG_LINE_MAX);
    assert_matches(out, "xxx\\.\\.\\.\n$");
}

static void
test_long_json_stays_valid(void **state)
{
    static char big[2 * PX_LOG_LINE_MAX];
    struct px_log_ctx ctx = {.server = "s"};
    char *out;
    size_t n, i, quotes = 0;

    (void)state;
    /* Quotes escape to two bytes each: the cut must never split "\"". */
    memset(big, '"', sizeof(big) - 1);
    px_log_configure(CFG_LOG_INFO, CFG_LOG_JSON);
    px_log_info("t", &ctx, "%s", big);
    out = drain();
    n = strlen(out);
    assert_true(n <= PX_LOG_LINE_MAX);
    assert_matches(out, "\"server\":\"s\",\"msg\":\"(\\\\\")+\\.\\.\\.\"\\}\n$");
    for (i = 0; i < n; i++) {
        quotes += out[i] == '\\';
    }
    assert_true(quotes > 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_without_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_partial_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_off_costs_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_text_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_json_stays_valid, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
