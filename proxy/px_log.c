#include "px_log.h"
#include "pool/pool_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

atomic_int px_log_min_level = CFG_LOG_INFO;
static atomic_int log_format = CFG_LOG_TEXT;
static atomic_int log_fd = STDERR_FILENO;

struct line {
    char buf[PX_LOG_LINE_MAX];
    size_t len;
    bool full; /* something was cut: nothing more is appended */
};

const char *
px_log_peer(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (fd == -1 || getpeername(fd, (struct sockaddr *)&ss, &len) == -1) {
        snprintf(buf, size, "?");
        return buf;
    }
    (void)pool_addr_text(&ss, true, buf, size); /* "?" if it cannot be printed */
    return buf;
}

void
px_log_configure(enum cfg_log_level level, enum cfg_log_format format)
{
    atomic_store_explicit(&px_log_min_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

void
px_log_set_fd(int fd)
{
    atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

/* Room for the closing "...\n" or "}\n" is kept back, so appends stop short of it. */
#define LINE_ROOM (PX_LOG_LINE_MAX - 8)

/* Append n bytes, or none: a chunk that does not fit is dropped whole, never split. */
static void
put(struct line *l, const char *s, size_t n)
{
    if (l->full || l->len + n > LINE_ROOM) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
puts_raw(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void
put_json(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* Text lines stay one line: control bytes become '?'; a long text is cut, not dropped. */
static void
put_text(struct line *l, const char *s)
{
    size_t start = l->len, n = strlen(s), i;

    if (!l->full && l->len + n > LINE_ROOM) {
        n = LINE_ROOM - l->len;
        put(l, s, n);
        l->full = true;
    } else {
        put(l, s, n);
    }
    for (i = start; i < l->len; i++) {
        if ((unsigned char)l->buf[i] < 0x20) {
            l->buf[i] = '?';
        }
    }
}

static void
put_field(struct line *l, bool json, const char *key, const char *value)
{
    if (value == NULL) {
        return;
    }
    if (json) {
        puts_raw(l, ",\"");
        puts_raw(l, key);
        puts_raw(l, "\":\"");
        put_json(l, value);
        puts_raw(l, "\"");
    } else {
        puts_raw(l, " ");
        puts_raw(l, key);
        puts_raw(l, "=");
        put_text(l, value);
    }
}

static void
put_context(struct line *l, bool json, const struct px_log_ctx *ctx)
{
    if (ctx != NULL) {
        put_field(l, json, "listener", ctx->listener);
        put_field(l, json, "cluster", ctx->cluster);
        put_field(l, json, "server", ctx->server);
        put_field(l, json, "peer", ctx->peer);
    }
}

static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            return; /* nowhere left to report a logging failure */
        }
        p += w;
        n -= (size_t)w;
    }
}

void
px_log_write(enum cfg_log_level level, const char *component, const struct px_log_ctx *ctx,
             const char *fmt, ...)
{
    static const char *const names[] = {[CFG_LOG_DEBUG] = "debug",
                                        [CFG_LOG_INFO] = "info",
                                        [CFG_LOG_WARN] = "warn",
                                        [CFG_LOG_ERROR] = "error"};
    bool json = atomic_load_explicit(&log_format, memory_order_relaxed) == CFG_LOG_JSON;
    char msg[PX_LOG_LINE_MAX], ts[40];
    struct timespec now;
    struct tm tm;
    struct line l;
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now.tv_nsec / 1000000));
    l.len = 0;
    l.full = false;
    if (json) {
        /* Context before msg: only msg, last, can be cut, and the line stays valid JSON. */
        puts_raw(&l, "{\"ts\":\"");
        puts_raw(&l, ts);
        puts_raw(&l, "\",\"level\":\"");
        puts_raw(&l, names[level]);
        puts_raw(&l, "\",\"component\":\"");
        put_json(&l, component);
        puts_raw(&l, "\"");
        put_context(&l, true, ctx);
        puts_raw(&l, ",\"msg\":\"");
        put_json(&l, msg);
        if (l.full) {
            memcpy(l.buf + l.len, "...", 3);
            l.len += 3;
        }
        memcpy(l.buf + l.len, "\"}", 2);
        l.len += 2;
    } else {
        char head[80];

        snprintf(head, sizeof(head), "%s %-5s %s: ", ts, names[level], component);
        puts_raw(&l, head);
        put_text(&l, msg);
        put_context(&l, false, ctx);
        if (l.full) {
            memcpy(l.buf + l.len, "...", 3);
            l.len += 3;
        }
    }
    l.buf[l.len++] = '\n';
    write_all(atomic_load_explicit(&log_fd, memory_order_relaxed), l.buf, l.len);
}
