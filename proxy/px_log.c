#include "px_log.h"
#include "pool/pool_io.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

atomic_int px_log_min_level = CFG_LOG_INFO;
static atomic_int log_format = CFG_LOG_TEXT;
static atomic_int log_fd = STDERR_FILENO;

/*
 * Folding: a warn or error line whose level, component, text and context
 * (the peer without its port, so that one client host's connections are one
 * peer) were written less than an interval ago is counted, not written. One
 * summary line per interval reports the count: when the next such line comes
 * after the interval, or from px_log_flush(). The table is small and fixed;
 * a key that finds no room takes the slot of the oldest key of its probe
 * run, whose count is reported first.
 */
#define FOLD_SLOTS 256
#define FOLD_PROBES 8
#define FOLD_FIELD 96 /* bytes kept of each context field */
#define FOLD_TEXT 256 /* bytes kept of the text, for the summary line */

struct fold {
    uint64_t hash; /* 0: free */
    uint64_t start_ms;
    uint64_t count; /* lines not written since start_ms */
    enum cfg_log_level level;
    char component[24];
    char fields[5][FOLD_FIELD]; /* listener, cluster, server, peer host, server_name */
    bool set[5];
    char text[FOLD_TEXT];
};

static _Atomic uint64_t fold_interval_ms; /* 0: off */
static pthread_mutex_t fold_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fold folds[FOLD_SLOTS]; /* under fold_lock */

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

const char *
px_log_server_name(const struct cfg_cluster *cluster, const char *server)
{
    size_t i, n;

    for (i = 0; server != NULL && i < cluster->nservers; i++) {
        const struct cfg_server *s = &cluster->servers[i];

        n = strlen(s->address.text);
        if (s->name != NULL && strncmp(server, s->address.text, n) == 0 &&
            (server[n] == '\0' || server[n] == '=')) {
            return s->name;
        }
    }
    return NULL;
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
        put_field(l, json, "server_name", ctx->server_name);
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

/* Format and write one line of msg. */
static void
emit(enum cfg_log_level level, const char *component, const struct px_log_ctx *ctx, const char *msg)
{
    static const char *const names[] = {[CFG_LOG_DEBUG] = "debug",
                                        [CFG_LOG_INFO] = "info",
                                        [CFG_LOG_WARN] = "warn",
                                        [CFG_LOG_ERROR] = "error"};
    bool json = atomic_load_explicit(&log_format, memory_order_relaxed) == CFG_LOG_JSON;
    char ts[40];
    struct timespec now;
    struct tm tm;
    struct line l;
    size_t n;

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

/* ---- folding ---- */

void
px_log_set_rate_limit(uint64_t interval_ms)
{
    atomic_store_explicit(&fold_interval_ms, interval_ms, memory_order_relaxed);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
hash_str(uint64_t h, const char *s)
{
    if (s == NULL) {
        return (h ^ 1) * 0x100000001b3ULL; /* unset differs from "" */
    }
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    }
    return (h ^ 0xff) * 0x100000001b3ULL; /* a separator: "ab","c" differs from "a","bc" */
}

/* Copy s into out, cut to size - 1 bytes. */
static void
copy_cut(char *out, size_t size, const char *s)
{
    size_t n = strnlen(s, size - 1);

    memcpy(out, s, n);
    out[n] = '\0';
}

/* The host part of "ip:port", "[ipv6]:port" or "host:port"; other text as it is. */
static void
peer_host(const char *peer, char *out, size_t size)
{
    const char *colon = strrchr(peer, ':');
    size_t n = strlen(peer);

    if (peer[0] == '[') {
        const char *end = strchr(peer, ']');

        n = end != NULL ? (size_t)(end - peer) + 1 : n;
    } else if (colon != NULL && strchr(peer, ':') == colon) {
        n = (size_t)(colon - peer);
    }
    copy_cut(out, n + 1 < size ? n + 1 : size, peer);
}

/* The key's context, kept in a slot for its summary line. */
static void
fold_fill(struct fold *f, enum cfg_log_level level, const char *component,
          const struct px_log_ctx *ctx, const char *peer, const char *msg)
{
    const char *v[5] = {NULL, NULL, NULL, peer, NULL};
    int i;

    if (ctx != NULL) {
        v[0] = ctx->listener;
        v[1] = ctx->cluster;
        v[2] = ctx->server;
        v[4] = ctx->server_name;
    }
    f->level = level;
    copy_cut(f->component, sizeof(f->component), component);
    for (i = 0; i < 5; i++) {
        f->set[i] = v[i] != NULL;
        copy_cut(f->fields[i], sizeof(f->fields[i]), v[i] != NULL ? v[i] : "");
    }
    copy_cut(f->text, sizeof(f->text), msg);
}

/* Write the summary of a copy of a slot (taken under the lock, written outside it). */
static void
fold_report(const struct fold *f, uint64_t now)
{
    struct px_log_ctx ctx = {
        .listener = f->set[0] ? f->fields[0] : NULL,
        .cluster = f->set[1] ? f->fields[1] : NULL,
        .server = f->set[2] ? f->fields[2] : NULL,
        .peer = f->set[3] ? f->fields[3] : NULL,
        .server_name = f->set[4] ? f->fields[4] : NULL,
    };
    char msg[FOLD_TEXT + 96];
    uint64_t ms = now - f->start_ms;

    if (ms < 1000) {
        snprintf(msg, sizeof(msg), "%s ... %llu more in the last %llu ms", f->text,
                 (unsigned long long)f->count, (unsigned long long)ms);
    } else {
        snprintf(msg, sizeof(msg), "%s ... %llu more in the last %llu s", f->text,
                 (unsigned long long)f->count, (unsigned long long)(ms + 500) / 1000);
    }
    emit(f->level, f->component, &ctx, msg);
}

/*
 * Whether a line is written (true) or only counted (false). *summary gets a
 * copy of a slot whose count must be reported first (summary->count > 0).
 */
static bool
fold_admit(enum cfg_log_level level, const char *component, const struct px_log_ctx *ctx,
           const char *msg, uint64_t interval, struct fold *summary)
{
    char peer[FOLD_FIELD];
    const char *peerp = NULL;
    uint64_t h = 0xcbf29ce484222325ULL, now;
    struct fold *f, *victim = NULL;
    int rank, vrank = 3;
    size_t i;
    bool write = true;

    summary->count = 0;
    if (ctx != NULL && ctx->peer != NULL) {
        peer_host(ctx->peer, peer, sizeof(peer));
        peerp = peer;
    }
    h = (h ^ (uint64_t)level) * 0x100000001b3ULL;
    h = hash_str(h, component);
    h = hash_str(h, ctx != NULL ? ctx->listener : NULL);
    h = hash_str(h, ctx != NULL ? ctx->cluster : NULL);
    h = hash_str(h, ctx != NULL ? ctx->server : NULL);
    h = hash_str(h, peerp);
    h = hash_str(h, ctx != NULL ? ctx->server_name : NULL);
    h = hash_str(h, msg);
    h = h != 0 ? h : 1;
    pthread_mutex_lock(&fold_lock);
    now = now_ms(); /* under the lock: no slot starts after it */
    for (i = 0; i < FOLD_PROBES; i++) {
        f = &folds[(h + i) % FOLD_SLOTS];
        if (f->hash == h) {
            if (now - f->start_ms < interval) {
                f->count++;
                write = false;
            } else { /* a new interval: report the last one's count, start counting again */
                *summary = *f;
                f->start_ms = now;
                f->count = 0;
            }
            goto out;
        }
        rank = f->hash == 0 ? 0 : f->count == 0 && now - f->start_ms >= interval ? 1 : 2;
        if (victim == NULL || rank < vrank ||
            (rank == 2 && vrank == 2 && f->start_ms < victim->start_ms)) {
            victim = f;
            vrank = rank;
        }
    }
    if (vrank == 2 && victim->count > 0) { /* no room: the oldest key reports and goes */
        *summary = *victim;
    }
    victim->hash = h;
    victim->start_ms = now;
    victim->count = 0;
    fold_fill(victim, level, component, ctx, peerp, msg);
out:
    pthread_mutex_unlock(&fold_lock);
    return write;
}

void
px_log_flush(bool all)
{
    uint64_t interval = atomic_load_explicit(&fold_interval_ms, memory_order_relaxed);
    size_t i;

    for (i = 0; i < FOLD_SLOTS; i++) {
        struct fold copy;
        uint64_t now;

        copy.count = 0;
        pthread_mutex_lock(&fold_lock);
        now = now_ms(); /* under the lock: no slot starts after it */
        if (folds[i].hash != 0 && (all || now - folds[i].start_ms >= interval)) {
            copy = folds[i];
            /* a key with a count stays folded for one more interval; the others go */
            folds[i].hash = copy.count > 0 && !all ? folds[i].hash : 0;
            folds[i].start_ms = now;
            folds[i].count = 0;
        }
        pthread_mutex_unlock(&fold_lock);
        if (copy.count > 0) {
            fold_report(&copy, now);
        }
    }
}

void
px_log_write(enum cfg_log_level level, const char *component, const struct px_log_ctx *ctx,
             const char *fmt, ...)
{
    uint64_t interval = atomic_load_explicit(&fold_interval_ms, memory_order_relaxed);
    char msg[PX_LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (interval > 0 && level >= CFG_LOG_WARN) {
        struct fold summary;
        bool write = fold_admit(level, component, ctx, msg, interval, &summary);

        if (summary.count > 0) {
            fold_report(&summary, now_ms());
        }
        if (!write) {
            return;
        }
    }
    emit(level, component, ctx, msg);
}
