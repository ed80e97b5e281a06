/*
 * sluice healthcheck: one GET /healthz on the admin endpoint. Non-blocking
 * connect, then send and receive with poll(), all against one deadline.
 */
#include "proxy/px_healthcheck.h"
#include "config/cfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX 8192
#define STATUS_LINE_MAX 256
#define PEER_MAX (INET6_ADDRSTRLEN + 16)

/* Why a probe failed: the first words of the line printed. */
enum hc_why {
    HC_OK,
    HC_RESOLVE,
    HC_SOCKET,
    HC_CONNECT,
    HC_TIMEOUT,
    HC_POLL,
    HC_REQUEST,
    HC_SEND,
    HC_RECV,
    HC_CLOSED,
    HC_MALFORMED,
    HC_STATUS,
};

static const char *const hc_why_text[] = {
    [HC_OK] = "healthy",
    [HC_RESOLVE] = "cannot resolve the admin address",
    [HC_SOCKET] = "cannot create a socket",
    [HC_CONNECT] = "cannot connect",
    [HC_TIMEOUT] = "timed out",
    [HC_POLL] = "poll failed",
    [HC_REQUEST] = "request too long",
    [HC_SEND] = "cannot send the request",
    [HC_RECV] = "cannot read the answer",
    [HC_CLOSED] = "connection closed before a status line",
    [HC_MALFORMED] = "not an HTTP status line",
    [HC_STATUS] = "unhealthy: GET /healthz answered",
};

struct probe {
    int fd; /* owned; -1 when closed */
    int64_t deadline_ms;
    uint64_t timeout_ms;
    const char *stage; /* what a timeout interrupted: "connecting", "sending", "reading" */
    enum hc_why why;
    int err;             /* errno (or EAI_* for HC_RESOLVE) behind why; 0 when none */
    int status;          /* the HTTP status, for HC_STATUS */
    char peer[PEER_MAX]; /* "127.0.0.1:9901", "[::1]:9901", "admin.local:9901" */
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
left_ms(const struct probe *p)
{
    int64_t left = p->deadline_ms - now_ms();

    if (left <= 0) {
        return 0;
    }
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* Wait until p->fd has one of events or the deadline passes: 0, or -1 with p->why set. */
static int
wait_fd(struct probe *p, short events)
{
    struct pollfd pfd = {.fd = p->fd, .events = events};
    int n;

    for (;;) {
        n = poll(&pfd, 1, left_ms(p));
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1) {
            p->why = HC_POLL;
            p->err = errno;
            return -1;
        }
        if (n == 0) {
            p->why = HC_TIMEOUT;
            return -1;
        }
        return 0;
    }
}

/* "127.0.0.1:9901" or "[::1]:9901" into p->peer. */
static void
format_peer(struct probe *p, const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL) {
            snprintf(host, sizeof(host), "?");
        }
        snprintf(p->peer, sizeof(p->peer), "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL) {
            snprintf(host, sizeof(host), "?");
        }
        snprintf(p->peer, sizeof(p->peer), "%s:%u", host, ntohs(sin->sin_port));
    }
}

/*
 * The address to ask for admin.bind: a wildcard ("*", 0.0.0.0, [::]) accepts
 * on loopback too, so ask there. 0, or -1 for a name (resolve it instead).
 */
static int
literal_target(const struct cfg_addr *bind, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    switch (bind->kind) {
    case CFG_ADDR_ANY: {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(bind->port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof(*sin);
        return 0;
    }
    case CFG_ADDR_IPV4: {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        memcpy(ss, &bind->sa, sizeof(*sin));
        if (sin->sin_addr.s_addr == htonl(INADDR_ANY)) {
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
        *len = sizeof(*sin);
        return 0;
    }
    case CFG_ADDR_IPV6: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        memcpy(ss, &bind->sa, sizeof(*sin6));
        if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)) {
            sin6->sin6_addr = in6addr_loopback;
        }
        *len = sizeof(*sin6);
        return 0;
    }
    case CFG_ADDR_NAME:
        break;
    }
    return -1;
}

/* Connect p->fd to sa before the deadline: 0, or -1 with p->why set and p->fd closed. */
static int
connect_to(struct probe *p, const struct sockaddr *sa, socklen_t len)
{
    socklen_t errlen = sizeof(p->err);

    p->stage = "connecting";
    p->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        p->why = HC_SOCKET;
        p->err = errno;
        return -1;
    }
    if (connect(p->fd, sa, len) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS) {
        p->why = HC_CONNECT;
        p->err = errno;
        goto fail;
    }
    if (wait_fd(p, POLLOUT) == -1) {
        goto fail;
    }
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &p->err, &errlen) == -1) {
        p->err = errno;
    }
    if (p->err != 0) {
        p->why = HC_CONNECT;
        goto fail;
    }
    return 0;

fail:
    (void)close(p->fd);
    p->fd = -1;
    return -1;
}

/* Connect to admin.bind, trying each address of a name in turn. */
static int
connect_admin(struct probe *p, const struct cfg_addr *bind)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t len;
    char port[8];
    int rc;

    if (literal_target(bind, &ss, &len) == 0) {
        format_peer(p, (const struct sockaddr *)&ss);
        return connect_to(p, (const struct sockaddr *)&ss, len);
    }
    /* A name: the system resolver, bounded by its own timeouts (resolv.conf), not ours. */
    snprintf(p->peer, sizeof(p->peer), "%s", bind->text);
    snprintf(port, sizeof(port), "%u", bind->port);
    rc = getaddrinfo(bind->host, port, &hints, &res);
    if (rc != 0) {
        p->why = HC_RESOLVE;
        p->err = rc;
        return -1;
    }
    rc = -1;
    for (ai = res; ai != NULL && rc == -1; ai = ai->ai_next) {
        rc = connect_to(p, ai->ai_addr, ai->ai_addrlen);
        if (rc == -1 && p->why == HC_TIMEOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    return rc;
}

/*
 * The request, into buf: its length, or -1 when it does not fit. Headers go
 * here (an Authorization line, when the admin endpoint asks for one).
 */
static int
build_request(char *buf, size_t size, const char *host, const struct cfg_bytes *token)
{
    int n = snprintf(buf, size,
                     "GET /healthz HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: sluice-healthcheck\r\n"
                     "%s%.*s%s"
                     "Connection: close\r\n"
                     "\r\n",
                     host, token->ptr != NULL ? "Authorization: Bearer " : "",
                     token->ptr != NULL ? (int)token->len : 0, token->ptr != NULL ? token->ptr : "",
                     token->ptr != NULL ? "\r\n" : "");

    return n < 0 || (size_t)n >= size ? -1 : n;
}

static int
send_all(struct probe *p, const char *buf, size_t len)
{
    ssize_t n;

    p->stage = "sending";
    while (len > 0) {
        n = send(p->fd, buf, len, MSG_NOSIGNAL);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_fd(p, POLLOUT) == -1) {
                return -1;
            }
            continue;
        }
        if (n == -1) {
            p->why = HC_SEND;
            p->err = errno;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read until the end of the first line (or EOF, or STATUS_LINE_MAX bytes): its length. */
static int
read_status_line(struct probe *p, char *buf, size_t size)
{
    size_t have = 0;
    ssize_t n;

    p->stage = "reading";
    while (have < size - 1 && memchr(buf, '\n', have) == NULL) {
        n = recv(p->fd, buf + have, size - 1 - have, 0);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_fd(p, POLLIN) == -1) {
                return -1;
            }
            continue;
        }
        if (n == -1) {
            p->why = HC_RECV;
            p->err = errno;
            return -1;
        }
        if (n == 0) {
            break;
        }
        have += (size_t)n;
    }
    buf[have] = '\0';
    if (have == 0) {
        p->why = HC_CLOSED;
        return -1;
    }
    return (int)have;
}

/* "HTTP/1.x NNN ...": NNN, or -1. */
static int
parse_status(const char *line)
{
    if (strncmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' || line[8] != ' ') {
        return -1;
    }
    if (line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' || line[11] < '0' ||
        line[11] > '9') {
        return -1;
    }
    if (line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
        return -1;
    }
    return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

static int
probe(struct probe *p, const struct cfg_admin *admin)
{
    char req[REQUEST_MAX], line[STATUS_LINE_MAX];
    int len;

    if (connect_admin(p, &admin->bind) == -1) {
        return -1;
    }
    len = build_request(req, sizeof(req), p->peer, &admin->token);
    if (len == -1) {
        p->why = HC_REQUEST;
        return -1;
    }
    if (send_all(p, req, (size_t)len) == -1 || read_status_line(p, line, sizeof(line)) == -1) {
        return -1;
    }
    p->status = parse_status(line);
    if (p->status == -1) {
        p->why = HC_MALFORMED;
        return -1;
    }
    if (p->status != 200) {
        p->why = HC_STATUS;
        return -1;
    }
    return 0;
}

static void
report(const struct probe *p, FILE *err)
{
    const char *what = hc_why_text[p->why];

    switch (p->why) {
    case HC_OK:
        return;
    case HC_TIMEOUT:
        fprintf(err, "sluice healthcheck: %s: %s after %llums while %s\n", p->peer, what,
                (unsigned long long)p->timeout_ms, p->stage);
        return;
    case HC_RESOLVE:
        fprintf(err, "sluice healthcheck: %s: %s: %s\n", p->peer, what, gai_strerror(p->err));
        return;
    case HC_STATUS:
        fprintf(err, "sluice healthcheck: %s: %s %d\n", p->peer, what, p->status);
        return;
    case HC_REQUEST:
    case HC_CLOSED:
    case HC_MALFORMED:
        fprintf(err, "sluice healthcheck: %s: %s\n", p->peer, what);
        return;
    case HC_SOCKET:
    case HC_CONNECT:
    case HC_POLL:
    case HC_SEND:
    case HC_RECV:
        break;
    }
    fprintf(err, "sluice healthcheck: %s: %s: %s\n", p->peer, what, strerror(p->err));
}

int
px_healthcheck_run(const struct cfg_admin *admin, uint64_t timeout_ms, FILE *err)
{
    struct probe p = {.fd = -1, .timeout_ms = timeout_ms, .stage = "starting", .why = HC_OK};
    int rc;

    p.deadline_ms = now_ms() + (int64_t)(timeout_ms > INT32_MAX ? INT32_MAX : timeout_ms);
    rc = probe(&p, admin);
    if (p.fd != -1) {
        (void)close(p.fd);
    }
    report(&p, err);
    return rc;
}
