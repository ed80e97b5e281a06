#include "cfg_test_util.h"

/* ---- helpers ---- */

void
print_diag(const struct cfg_diag *diag)
{
    size_t i;

    for (i = 0; i < cfg_diag_count(diag); i++) {
        print_error("  [%zu] %s\n", i, cfg_diag_message(diag, i));
    }
}

struct cfg *
load_named_ok(const char *name, const char *text)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_buffer(name, text, strlen(text), diag);

    if (cfg == NULL || cfg_diag_count(diag) != 0) {
        print_diag(diag);
        cfg_free(cfg);
        cfg_diag_free(diag);
        fail_msg("expected this to load:\n%s", text);
    }
    cfg_diag_free(diag);
    return cfg;
}

struct cfg *
load_ok(const char *text)
{
    return load_named_ok("t.yaml", text);
}

bool
starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Check a failed load: count messages (unless ANY_COUNT), message i starting with prefix and,
 * when want is not NULL, containing want.
 */
void
check_failed(struct cfg *cfg, struct cfg_diag *diag, size_t count, size_t i, const char *prefix,
             const char *want)
{
    const char *msg;

    if (cfg != NULL) {
        cfg_free(cfg);
        cfg_diag_free(diag);
        fail_msg("loaded; expected an error starting '%s'", prefix);
    }
    msg = cfg_diag_message(diag, i);
    if ((count != ANY_COUNT && cfg_diag_count(diag) != count) || !starts_with(msg, prefix) ||
        (want != NULL && strstr(msg, want) == NULL)) {
        print_diag(diag);
        cfg_diag_free(diag);
        fail_msg("expected %zu message(s), message %zu starting '%s'%s%s%s", count, i, prefix,
                 want != NULL ? " and containing '" : "", want != NULL ? want : "",
                 want != NULL ? "'" : "");
    }
}

void
expect_error_at(const char *text, size_t count, size_t i, const char *prefix, const char *want)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_buffer("t.yaml", text, strlen(text), diag);

    check_failed(cfg, diag, count, i, prefix, want);
    cfg_diag_free(diag);
}

/* Exactly one error, starting with prefix. */
void
expect_error(const char *text, const char *prefix)
{
    expect_error_at(text, 1, 0, prefix, NULL);
}

/* Exactly one error, starting with prefix and containing want. */
void
expect_error_has(const char *text, const char *prefix, const char *want)
{
    expect_error_at(text, 1, 0, prefix, want);
}

/* Exactly n errors, in this order, starting with the n prefixes that follow. */
void
expect_errors(const char *text, size_t n, ...)
{
    va_list ap;
    size_t i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        expect_error_at(text, n, i, va_arg(ap, const char *), NULL);
    }
    va_end(ap);
}

const char *
tmp_dir(void)
{
    const char *dir = getenv("SLUICE_TEST_TMP");

    return dir != NULL && dir[0] != '\0' ? dir : "/tmp";
}

/* Create a readable file under tmp_dir() holding text; its path goes to path. */
void
make_file(char *path, size_t size, const char *tag, const char *text)
{
    int fd;
    ssize_t len = (ssize_t)strlen(text);

    snprintf(path, size, "%s/sluice-test-%s-XXXXXX", tmp_dir(), tag);
    fd = mkstemp(path);
    assert_int_not_equal(fd, -1);
    assert_int_equal(write(fd, text, (size_t)len), len);
    assert_int_equal(close(fd), 0);
}

/* The effective config as text; the caller frees it. */
char *
dump_text(const struct cfg *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(cfg_dump(cfg, f), 0);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

/* A file whose only listener has the codec given as one line of YAML. */
struct cfg *
load_with_codec(const char *codec)
{
    char text[1024];

    snprintf(text, sizeof(text),
             "listeners:\n"
             "  - name: a\n"
             "    bind: 127.0.0.1:7000\n"
             "    codec: %s\n"
             "    cluster: c\n" CLUSTER_C,
             codec);
    return load_ok(text);
}
