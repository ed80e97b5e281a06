#include "cfg_value.h"
#include "cfg.h"
#include "cfg_arena.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DURATION_WHY[] = "expected a duration like 250ms, 2s, 5m, 1h or 1m30s";
static const char SIZE_WHY[] = "expected a size like 512, 64KiB, 1MiB or 1GiB";

/* Read decimal digits; return the number of digits, or -1 on overflow. */
static int
read_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    int n = 0;

    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
        s++;
        n++;
    }
    *sp = s;
    *out = v;
    return n;
}

int
cfg_parse_duration(const char *s, uint64_t *ms, const char **why)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    uint64_t total = 0;

    *why = DURATION_WHY;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    if (*s == '\0') {
        return -1;
    }
    while (*s != '\0') {
        uint64_t v;
        size_t i, ulen = 0;
        int n = read_digits(&s, &v);

        if (n < 0) {
            *why = "duration too large";
            return -1;
        }
        if (n == 0) {
            return -1;
        }
        if (*s == '.') {
            *why = "a duration takes whole numbers; write 1500ms, not 1.5s";
            return -1;
        }
        while (isalpha((unsigned char)s[ulen])) {
            ulen++;
        }
        if (ulen == 0) {
            *why = "a duration needs a unit: ms, s, m, h or d (for example 2s)";
            return -1;
        }
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strlen(units[i].unit) == ulen && strncmp(s, units[i].unit, ulen) == 0) {
                break;
            }
        }
        if (i == sizeof(units) / sizeof(units[0])) {
            *why = "unknown duration unit; expected ms, s, m, h or d";
            return -1;
        }
        if (v > (UINT64_MAX - total) / units[i].ms) {
            *why = "duration too large";
            return -1;
        }
        total += v * units[i].ms;
        s += ulen;
    }
    *ms = total;
    return 0;
}

int
cfg_parse_size(const char *s, uint64_t *bytes, const char **why)
{
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    uint64_t v;
    size_t i;
    int n;

    *why = SIZE_WHY;
    n = read_digits(&s, &v);
    if (n == 0) {
        return -1;
    }
    if (n < 0) {
        *why = "size too large";
        return -1;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].unit) == 0) {
            break;
        }
    }
    if (i == sizeof(units) / sizeof(units[0])) {
        if (strcasecmp(s, "k") == 0 || strcasecmp(s, "kb") == 0 || strcasecmp(s, "m") == 0 ||
            strcasecmp(s, "mb") == 0 || strcasecmp(s, "g") == 0 || strcasecmp(s, "gb") == 0) {
            *why = "ambiguous size unit; expected KiB, MiB or GiB (powers of 1024)";
        }
        return -1;
    }
    if (units[i].shift > 0 && v > (UINT64_MAX >> units[i].shift)) {
        *why = "size too large";
        return -1;
    }
    *bytes = v << units[i].shift;
    return 0;
}

int
cfg_parse_int(const char *s, int64_t *out, const char **why)
{
    bool neg = false;
    uint64_t v;
    int n;

    *why = "expected an integer";
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    n = read_digits(&s, &v);
    if (n < 0) {
        *why = "integer out of range";
        return -1;
    }
    if (n == 0 || *s != '\0') {
        return -1;
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
        *why = "integer out of range";
        return -1;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int
cfg_parse_bool(const char *s, bool *out, const char **why)
{
    *why = "expected true or false";
    if (strcmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

bool
cfg_valid_hostname(const char *s)
{
    size_t len = strlen(s), label = 0;
    bool digits_only = true; /* of the current label */
    const char *p;

    if (len == 0 || len > 253) {
        return false;
    }
    for (p = s; *p != '\0'; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-') {
                return false;
            }
            label = 0;
            digits_only = true;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            return false;
        }
        if (*p == '-' && label == 0) {
            return false;
        }
        if (!isdigit((unsigned char)*p)) {
            digits_only = false;
        }
        if (++label > 63) {
            return false;
        }
    }
    if (label == 0) { /* a trailing dot: an absolute name; judge the label before it */
        return len > 1;
    }
    /* RFC 1123 2.1: a top-level label is never all digits, so 10.0.0.256 is a typo, not a name */
    return p[-1] != '-' && !digits_only;
}

static int
parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    int n = read_digits(&s, &v);

    if (n <= 0 || *s != '\0' || v == 0 || v > 65535) {
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

int
cfg_parse_addr(struct cfg_arena *arena, const char *s, bool wildcard, struct cfg_addr *out,
               const char **why)
{
    const char *colon, *host, *port;
    size_t hlen;
    char buf[256];

    *why = wildcard ? "expected host:port, [ipv6]:port or *:port"
                    : "expected host:port or [ipv6]:port";
    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');

        if (end == NULL || end[1] != ':') {
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(end - host);
        port = end + 2;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            *why = "missing port; expected host:port";
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            *why = "an IPv6 address needs brackets: [::1]:port";
            return -1;
        }
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hlen == 0) {
        *why = "missing host; expected host:port";
        return -1;
    }
    if (hlen >= sizeof(buf)) {
        *why = "host name too long";
        return -1;
    }
    if (parse_port(port, &out->port) == -1) {
        *why = "port must be a number from 1 to 65535";
        return -1;
    }
    memcpy(buf, host, hlen);
    buf[hlen] = '\0';
    if (s[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;

        if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1) {
            *why = "not a valid IPv6 address inside the brackets";
            return -1;
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(out->port);
        out->salen = sizeof(*sin6);
        out->kind = CFG_ADDR_IPV6;
        /* the canonical spelling, so [0::1] and [::1] compare equal */
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
        hlen = strlen(buf);
        out->text = cfg_arena_printf(arena, "[%s]:%u", buf, out->port);
    } else if (strcmp(buf, "*") == 0) {
        if (!wildcard) {
            *why = "'*' is for bind addresses; a server needs a host";
            return -1;
        }
        out->kind = CFG_ADDR_ANY;
        out->text = cfg_arena_printf(arena, "*:%u", out->port);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;

        if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
            inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
            hlen = strlen(buf);
            sin->sin_family = AF_INET;
            sin->sin_port = htons(out->port);
            out->salen = sizeof(*sin);
            out->kind = CFG_ADDR_IPV4;
        } else if (cfg_valid_hostname(buf)) {
            out->kind = CFG_ADDR_NAME;
        } else {
            *why = "not an IPv4 address or a valid hostname";
            return -1;
        }
        out->text = cfg_arena_printf(arena, "%s:%u", buf, out->port);
    }
    out->host = cfg_arena_strndup(arena, buf, hlen);
    return 0;
}

void
cfg_format_duration(uint64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    size_t i;

    if (ms == 0) {
        snprintf(buf, size, "0s");
        return;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, size, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(buf, size, "%llums", (unsigned long long)ms);
}

void
cfg_format_size(uint64_t bytes, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}};
    size_t i;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t unit = (uint64_t)1 << units[i].shift;

        if (bytes != 0 && bytes % unit == 0) {
            snprintf(buf, size, "%llu%s", (unsigned long long)(bytes >> units[i].shift),
                     units[i].unit);
            return;
        }
    }
    snprintf(buf, size, "%llu", (unsigned long long)bytes);
}

size_t
cfg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t row[64];

    if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64) {
        return (size_t)-1;
    }
    for (j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);

            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
