/* px_log: line format (text and JSON), level filtering, escaping, truncation, and the folding
 * of repeated lines (log.rate_limit). */
#include "proxy/px_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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
    px_log_flush(true); /* forget folded keys: the next test starts afresh */
    px_log_set_rate_limit(0);
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
    struct px_log_ctx ctx = {"redis", "cache", "10.0.0.5:6379", "127.0.0.1:50000", NULL};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_warn("pool", &ctx, "connect failed: %s", "refused");
    assert_matches(drain(), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                            "warn  pool: connect failed: refused listener=redis cluster=cache "
                            "server=10\\.0\\.0\\.5:6379 peer=127\\.0\\.0\\.1:50000\n$");
}

static void
test_text_server_name(void **state)
{
    struct px_log_ctx ctx = {.cluster = "c", .server = "10.0.0.5:6379", .server_name = "shard1"};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_warn("health", &ctx, "server down");
    assert_matches(drain(),
                   "server down cluster=c server=10\\.0\\.0\\.5:6379 server_name=shard1\n$");
}

static void
test_server_name_lookup(void **state)
{
    struct cfg_server servers[3] = {
        {.address = {.text = "10.0.0.1:6379"}, .name = "a"},
        {.address = {.text = "10.0.0.1:63790"}},
        {.address = {.text = "redis:6379"}, .name = "b"},
    };
    struct cfg_cluster c = {.name = "c", .servers = servers, .nservers = 3};

    (void)state;
    assert_string_equal(px_log_server_name(&c, "10.0.0.1:6379"), "a");
    assert_null(px_log_server_name(&c, "10.0.0.1:63790")); /* a prefix is not a match */
    assert_string_equal(px_log_server_name(&c, "redis:6379=10.0.0.9"), "b");
    assert_null(px_log_server_name(&c, "10.0.0.2:6379"));
    assert_null(px_log_server_name(&c, NULL));
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

/* ---- folding ---- */

static int
count_lines(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1) {
    }
}

static void
test_fold_repeats_into_one_summary(void **state)
{
    char peer[32];
    char *out;
    int i;

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_set_rate_limit(200);
    for (i = 0; i < 100; i++) { /* one client host, a new port each time */
        struct px_log_ctx ctx = {.listener = "l", .peer = peer};

        snprintf(peer, sizeof(peer), "127.0.0.1:%d", 40000 + i);
        px_log_warn("session", &ctx, "request failed (%s); closing the client", "refused");
    }
    out = drain();
    assert_int_equal(count_lines(out), 1); /* the first, with its own peer */
    assert_matches(out, "warn  session: request failed \\(refused\\); closing the client "
                        "listener=l peer=127\\.0\\.0\\.1:40000\n$");
    px_log_flush(false); /* the interval is not over: nothing yet */
    assert_string_equal(drain(), "");
    sleep_ms(250);
    px_log_flush(false);
    out = drain();
    assert_int_equal(count_lines(out), 1);
    assert_matches(out, "warn  session: request failed \\(refused\\); closing the client \\.\\.\\. "
                        "99 more in the last 2[0-9]{2} ms listener=l peer=127\\.0\\.0\\.1\n$");
    px_log_flush(false); /* reported once */
    assert_string_equal(drain(), "");
}

static void
test_fold_summary_when_it_comes_again(void **state)
{
    struct px_log_ctx ctx = {.cluster = "c", .server = "10.0.0.5:6379"};
    char *out;
    int i;

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_set_rate_limit(100);
    for (i = 0; i < 5; i++) {
        px_log_warn("pool", &ctx, "connect failed: %s", "refused");
    }
    assert_int_equal(count_lines(drain()), 1);
    sleep_ms(150);
    px_log_warn("pool", &ctx, "connect failed: %s", "refused");
    out = drain(); /* the last interval's count, then the line that opens the next one */
    assert_int_equal(count_lines(out), 2);
    assert_matches(out, "^[^\n]*warn  pool: connect failed: refused \\.\\.\\. 4 more in the last "
                        "1[0-9]{2} ms cluster=c server=10\\.0\\.0\\.5:6379\n"
                        "[^\n]*warn  pool: connect failed: refused cluster=c "
                        "server=10\\.0\\.0\\.5:6379\n$");
    px_log_warn("pool", &ctx, "connect failed: %s", "refused"); /* folded again */
    assert_string_equal(drain(), "");
}

static void
test_fold_keys(void **state)
{
    struct px_log_ctx a = {.peer = "10.0.0.1:1000"}, a2 = {.peer = "10.0.0.1:2000"};
    struct px_log_ctx b = {.peer = "10.0.0.2:1000"}, v6 = {.peer = "[::1]:1000"};
    struct px_log_ctx v6b = {.peer = "[::1]:2000"}, s = {.server = "10.0.0.1:1000"};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_set_rate_limit(10000);
    px_log_warn("session", &a, "reset");
    px_log_warn("session", &a2, "reset"); /* the same host */
    px_log_warn("session", &b, "reset");  /* another host */
    px_log_warn("session", &v6, "reset");
    px_log_warn("session", &v6b, "reset");
    px_log_warn("session", &s, "reset");   /* a server is not a peer */
    px_log_warn("session", &a, "timeout"); /* another text */
    px_log_warn("relay", &a, "reset");     /* another component */
    px_log_error("session", &a, "reset");  /* another level */
    px_log_warn("session", NULL, "reset"); /* no context */
    px_log_warn("session", NULL, "reset"); /* folded */
    assert_int_equal(count_lines(drain()), 8);
    px_log_info("session", &a, "reset"); /* info is never folded */
    px_log_info("session", &a, "reset");
    assert_int_equal(count_lines(drain()), 2);
    px_log_flush(true);
    assert_int_equal(count_lines(drain()), 3); /* a2, v6b and the second without context */
}

static void
test_fold_off(void **state)
{
    int i;

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_set_rate_limit(0);
    for (i = 0; i < 10; i++) {
        px_log_warn("pool", NULL, "connect failed");
    }
    assert_int_equal(count_lines(drain()), 10);
}

static void
test_fold_json_summary(void **state)
{
    struct px_log_ctx ctx = {.peer = "127.0.0.1:1"};

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_JSON);
    px_log_set_rate_limit(10000);
    px_log_warn("session", &ctx, "reset");
    px_log_warn("session", &ctx, "reset");
    px_log_warn("session", &ctx, "reset");
    assert_int_equal(count_lines(drain()), 1);
    px_log_flush(true);
    assert_matches(drain(),
                   "\"level\":\"warn\",\"component\":\"session\",\"peer\":\"127\\.0\\.0\\.1\","
                   "\"msg\":\"reset \\.\\.\\. 2 more in the last [0-9]+ ms\"\\}\n$");
}

#define THREADS 4
#define PER_THREAD 2000

static void *
flood(void *arg)
{
    struct px_log_ctx ctx = {.listener = "l", .peer = "127.0.0.1:9"};
    int i;

    (void)arg;
    for (i = 0; i < PER_THREAD; i++) {
        px_log_warn("session", &ctx, "reset");
    }
    return NULL;
}

static void
test_fold_threads(void **state)
{
    pthread_t t[THREADS];
    char *out;
    int i;

    (void)state;
    px_log_configure(CFG_LOG_INFO, CFG_LOG_TEXT);
    px_log_set_rate_limit(10000);
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, flood, NULL), 0);
    }
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(count_lines(drain()), 1);
    px_log_flush(true);
    out = drain();
    assert_int_equal(count_lines(out), 1);
    assert_matches(out, " reset \\.\\.\\. 7999 more in the last ");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_server_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_name_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_without_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_partial_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_off_costs_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_text_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_json_stays_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_repeats_into_one_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_summary_when_it_comes_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_json_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_threads, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
