/*
 * twemproxy-compatible hashing and distribution, written from the facts of
 * twemproxy's src/hashkit (constants, byte order, truncations, quirks), so
 * that sluice and nutcracker place every key on the same server.
 */
#include "pool_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KETAMA_POINTS_PER_SERVER 160
#define KETAMA_POINTS_PER_HASH 4
#define KETAMA_MAX_HOSTLEN 273 /* twemproxy's buffer for "name-N" */
#define DEFAULT_PORT "11211"   /* libmemcached: no port in the name */

const char *const pool_hash_fn_names[POOL_HASH_NFN] = {
    [POOL_HASH_ONE_AT_A_TIME] = "one_at_a_time",
    [POOL_HASH_MD5] = "md5",
    [POOL_HASH_CRC16] = "crc16",
    [POOL_HASH_CRC32] = "crc32",
    [POOL_HASH_CRC32A] = "crc32a",
    [POOL_HASH_FNV1_64] = "fnv1_64",
    [POOL_HASH_FNV1A_64] = "fnv1a_64",
    [POOL_HASH_FNV1_32] = "fnv1_32",
    [POOL_HASH_FNV1A_32] = "fnv1a_32",
    [POOL_HASH_HSIEH] = "hsieh",
    [POOL_HASH_MURMUR] = "murmur",
    [POOL_HASH_JENKINS] = "jenkins",
};

const char *const pool_hash_dist_names[POOL_HASH_NDIST] = {
    [POOL_HASH_KETAMA] = "ketama",
    [POOL_HASH_MODULA] = "modula",
    [POOL_HASH_RANDOM] = "random",
};

static const pool_hash_fn_t fns[POOL_HASH_NFN] = {
    [POOL_HASH_ONE_AT_A_TIME] = pool_hash_one_at_a_time,
    [POOL_HASH_MD5] = pool_hash_md5,
    [POOL_HASH_CRC16] = pool_hash_crc16,
    [POOL_HASH_CRC32] = pool_hash_crc32,
    [POOL_HASH_CRC32A] = pool_hash_crc32a,
    [POOL_HASH_FNV1_64] = pool_hash_fnv1_64,
    [POOL_HASH_FNV1A_64] = pool_hash_fnv1a_64,
    [POOL_HASH_FNV1_32] = pool_hash_fnv1_32,
    [POOL_HASH_FNV1A_32] = pool_hash_fnv1a_32,
    [POOL_HASH_HSIEH] = pool_hash_hsieh,
    [POOL_HASH_MURMUR] = pool_hash_murmur,
    [POOL_HASH_JENKINS] = pool_hash_jenkins,
};

struct point {
    uint32_t value;
    uint32_t index; /* server */
    uint32_t seq;   /* insertion order, for equal values */
};

struct pool_hash_ring {
    enum pool_hash_dist dist;
    size_t npoints;
    struct point points[]; /* ketama: sorted by value; modula, random: by slot */
};

int
pool_hash_fn_parse(const char *name, enum pool_hash_fn *out)
{
    int i;

    for (i = 0; i < POOL_HASH_NFN; i++) {
        if (strcmp(name, pool_hash_fn_names[i]) == 0) {
            *out = (enum pool_hash_fn)i;
            return 0;
        }
    }
    return -1;
}

int
pool_hash_dist_parse(const char *name, enum pool_hash_dist *out)
{
    int i;

    for (i = 0; i < POOL_HASH_NDIST; i++) {
        if (strcmp(name, pool_hash_dist_names[i]) == 0) {
            *out = (enum pool_hash_dist)i;
            return 0;
        }
    }
    return -1;
}

pool_hash_fn_t
pool_hash_fn_get(enum pool_hash_fn fn)
{
    return (unsigned)fn < POOL_HASH_NFN ? fns[fn] : NULL;
}

uint32_t
pool_hash_key(enum pool_hash_fn fn, const char *key, size_t len)
{
    if (len == 0) {
        return 0;
    }
    return fns[fn](key, len);
}

/* ---- byte helpers: twemproxy reads some bytes through a signed char ---- */

static uint32_t
sx32(char c)
{
    return (uint32_t)(int32_t)(signed char)c;
}

static uint64_t
sx64(char c)
{
    return (uint64_t)(int64_t)(signed char)c;
}

static uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t
le16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;

    return (uint32_t)u[0] | (uint32_t)u[1] << 8;
}

static uint32_t
rotl(uint32_t x, int k)
{
    return (x << k) | (x >> (32 - k));
}

/* ---- FNV: the 64-bit ones as twemproxy truncates them ---- */

uint32_t
pool_hash_fnv1_64(const char *key, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    size_t i;

    for (i = 0; i < len; i++) {
        h *= UINT64_C(0x100000001b3);
        h ^= sx64(key[i]);
    }
    return (uint32_t)h;
}

/* twemproxy truncates basis and prime to 32 bits first: 32-bit arithmetic. */
uint32_t
pool_hash_fnv1a_64(const char *key, size_t len)
{
    uint32_t h = UINT32_C(0x84222325);
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= sx32(key[i]);
        h *= UINT32_C(0x1b3);
    }
    return h;
}

uint32_t
pool_hash_fnv1_32(const char *key, size_t len)
{
    uint32_t h = UINT32_C(2166136261);
    size_t i;

    for (i = 0; i < len; i++) {
        h *= UINT32_C(16777619);
        h ^= sx32(key[i]);
    }
    return h;
}

uint32_t
pool_hash_fnv1a_32(const char *key, size_t len)
{
    uint32_t h = UINT32_C(2166136261);
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= sx32(key[i]);
        h *= UINT32_C(16777619);
    }
    return h;
}

/* ---- one_at_a_time (Bob Jenkins), hsieh (SuperFastHash) ---- */

uint32_t
pool_hash_one_at_a_time(const char *key, size_t len)
{
    uint32_t h = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        h += sx32(key[i]);
        h += h << 10;
        h ^= h >> 6;
    }
    h += h << 3;
    h ^= h >> 11;
    h += h << 15;
    return h;
}

static uint32_t
hsieh_tail(uint32_t h, const char *key, size_t rem)
{
    switch (rem) {
    case 3:
        h += le16(key);
        h ^= h << 16;
        h ^= sx32(key[2]) << 18;
        h += h >> 11;
        break;
    case 2:
        h += le16(key);
        h ^= h << 11;
        h += h >> 17;
        break;
    case 1:
        h += (unsigned char)key[0];
        h ^= h << 10;
        h += h >> 1;
        break;
    default:
        break;
    }
    return h;
}

uint32_t
pool_hash_hsieh(const char *key, size_t len)
{
    uint32_t h = 0;
    size_t n;

    if (key == NULL || len == 0) {
        return 0;
    }
    for (n = len >> 2; n > 0; n--) {
        h += le16(key);
        h = (h << 16) ^ ((le16(key + 2) << 11) ^ h);
        key += 4;
        h += h >> 11;
    }
    h = hsieh_tail(h, key, len & 3);
    h ^= h << 3;
    h += h >> 5;
    h ^= h << 4;
    h += h >> 17;
    h ^= h << 25;
    h += h >> 6;
    return h;
}

/* ---- murmur: MurmurHash2, seed 0xdeadbeef * length, little-endian words ---- */

uint32_t
pool_hash_murmur(const char *key, size_t len)
{
    const uint32_t m = UINT32_C(0x5bd1e995);
    const unsigned char *p = (const unsigned char *)key;
    uint32_t h = (UINT32_C(0xdeadbeef) * (uint32_t)len) ^ (uint32_t)len;

    for (; len >= 4; len -= 4, p += 4) {
        uint32_t k = le32(p) * m;

        k ^= k >> 24;
        k *= m;
        h = (h * m) ^ k;
    }
    if (len > 0) {
        if (len == 3) {
            h ^= (uint32_t)p[2] << 16;
        }
        if (len >= 2) {
            h ^= (uint32_t)p[1] << 8;
        }
        h ^= p[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* ---- jenkins: lookup3 hashlittle, initval 13 ---- */

static void
jenkins_mix(uint32_t *a, uint32_t *b, uint32_t *c)
{
    *a -= *c, *a ^= rotl(*c, 4), *c += *b;
    *b -= *a, *b ^= rotl(*a, 6), *a += *c;
    *c -= *b, *c ^= rotl(*b, 8), *b += *a;
    *a -= *c, *a ^= rotl(*c, 16), *c += *b;
    *b -= *a, *b ^= rotl(*a, 19), *a += *c;
    *c -= *b, *c ^= rotl(*b, 4), *b += *a;
}

static uint32_t
jenkins_final(uint32_t a, uint32_t b, uint32_t c)
{
    c ^= b, c -= rotl(b, 14);
    a ^= c, a -= rotl(c, 11);
    b ^= a, b -= rotl(a, 25);
    c ^= b, c -= rotl(b, 16);
    a ^= c, a -= rotl(c, 4);
    b ^= a, b -= rotl(a, 14);
    c ^= b, c -= rotl(b, 24);
    return c;
}

uint32_t
pool_hash_jenkins(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    unsigned char last[12] = {0};
    uint32_t a, b, c;

    a = b = c = UINT32_C(0xdeadbeef) + (uint32_t)len + 13;
    for (; len > 12; len -= 12, p += 12) {
        a += le32(p);
        b += le32(p + 4);
        c += le32(p + 8);
        jenkins_mix(&a, &b, &c);
    }
    if (len == 0) {
        return c;
    }
    memcpy(last, p, len); /* zero bytes add nothing: same as the byte switch */
    a += le32(last);
    b += le32(last + 4);
    c += le32(last + 8);
    return jenkins_final(a, b, c);
}

/* ---- CRCs, bit by bit: no tables to get wrong ---- */

static uint32_t
crc32_byte(uint32_t crc, unsigned char byte)
{
    int k;

    crc ^= byte;
    for (k = 0; k < 8; k++) {
        crc = (crc >> 1) ^ (UINT32_C(0xedb88320) & (0u - (crc & 1)));
    }
    return crc;
}

/* libmemcached's: bits 16..30 of the standard CRC-32. */
uint32_t
pool_hash_crc32(const char *key, size_t len)
{
    return (pool_hash_crc32a(key, len) >> 16) & 0x7fff;
}

uint32_t
pool_hash_crc32a(const char *key, size_t len)
{
    uint32_t crc = UINT32_MAX;
    size_t i;

    for (i = 0; i < len; i++) {
        crc = crc32_byte(crc, (unsigned char)key[i]);
    }
    return ~crc;
}

/* CRC-16/XMODEM table entry: polynomial 0x1021, not reflected. */
static uint32_t
crc16_entry(uint32_t i)
{
    uint32_t t = i << 8;
    int k;

    for (k = 0; k < 8; k++) {
        t = (t & 0x8000) ? (t << 1) ^ 0x1021 : t << 1;
    }
    return t & 0xffff;
}

/* XMODEM in the low 16 bits; twemproxy never masks the register, so keep its high bits. */
uint32_t
pool_hash_crc16(const char *key, size_t len)
{
    uint32_t crc = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        crc = (crc << 8) ^ crc16_entry(((crc >> 8) ^ (unsigned char)key[i]) & 0xff);
    }
    return crc;
}

/* ---- MD5 (RFC 1321) ---- */

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const int md5_r[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

static void
md5_block(uint32_t st[4], const unsigned char *blk)
{
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    int i;

    for (i = 0; i < 64; i++) {
        uint32_t f;
        int g;

        if (i < 16) {
            f = (b & c) | (~b & d), g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d, g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d), g = (7 * i) % 16;
        }
        f += a + md5_k[i] + le32(blk + 4 * g);
        a = d, d = c, c = b;
        b += rotl(f, md5_r[(i / 16) * 4 + i % 4]);
    }
    st[0] += a, st[1] += b, st[2] += c, st[3] += d;
}

void
pool_hash_md5_digest(const void *data, size_t len, uint8_t out[16])
{
    uint32_t st[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const unsigned char *p = data;
    unsigned char tail[128] = {0};
    uint64_t bits = (uint64_t)len * 8;
    size_t i, rest, ntail;

    for (; len >= 64; len -= 64, p += 64) {
        md5_block(st, p);
    }
    rest = len;
    memcpy(tail, p, rest);
    tail[rest] = 0x80;
    ntail = rest < 56 ? 64 : 128;
    for (i = 0; i < 8; i++) {
        tail[ntail - 8 + i] = (unsigned char)(bits >> (8 * i));
    }
    md5_block(st, tail);
    if (ntail == 128) {
        md5_block(st, tail + 64);
    }
    for (i = 0; i < 16; i++) {
        out[i] = (uint8_t)(st[i / 4] >> (8 * (i % 4)));
    }
}

/* The digest's first four bytes, little-endian. */
uint32_t
pool_hash_md5(const char *key, size_t len)
{
    uint8_t d[16];

    pool_hash_md5_digest(key, len, d);
    return le32(d);
}

/* ---- hash_tag ---- */

size_t
pool_hash_tag(const char *tag, const char *key, size_t len, const char **part)
{
    const char *open, *close;

    *part = key;
    if (tag == NULL || tag[0] == '\0' || tag[1] == '\0') {
        return len;
    }
    open = memchr(key, tag[0], len);
    if (open == NULL) {
        return len;
    }
    close = memchr(open + 1, tag[1], len - (size_t)(open + 1 - key));
    if (close == NULL || close - open <= 1) {
        return len;
    }
    *part = open + 1;
    return (size_t)(close - open - 1);
}

/* ---- distributions ---- */

int
pool_hash_server_name(char *buf, size_t size, const char *host, const char *port)
{
    int n;

    if (strcmp(port, DEFAULT_PORT) == 0) {
        n = snprintf(buf, size, "%s", host);
    } else {
        n = snprintf(buf, size, "%s:%s", host, port);
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* twemproxy's order of servers: by name length, then bytes (conf_server_name_cmp). */
static int
name_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la != lb) {
        return la < lb ? -1 : 1;
    }
    return memcmp(a, b, la);
}

/* Server indexes in twemproxy's order: -1 on a duplicate name, as twemproxy rejects. */
static int
name_order(const struct pool_hash_server *s, size_t n, uint32_t *order)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        uint32_t cur = (uint32_t)i;

        for (j = i; j > 0 && name_cmp(s[order[j - 1]].name, s[cur].name) > 0; j--) {
            order[j] = order[j - 1];
        }
        order[j] = cur;
    }
    for (i = 1; i < n; i++) {
        if (name_cmp(s[order[i - 1]].name, s[order[i]].name) == 0) {
            return -1;
        }
    }
    return 0;
}

/* twemproxy's float arithmetic, kept as is: it decides the point count. */
static uint32_t
ketama_points(uint32_t weight, uint32_t total, uint32_t nlive)
{
    float pct = (float)weight / (float)total;
    float pts = pct * KETAMA_POINTS_PER_SERVER / 4 * (float)nlive;

    /* floorf of a non-negative float: truncation */
    return (uint32_t)(float)(pts + 0.0000000001) * 4;
}

static int
point_cmp(const void *x, const void *y)
{
    const struct point *p = x, *q = y;

    if (p->value != q->value) {
        return p->value < q->value ? -1 : 1;
    }
    /* glibc's qsort (a merge sort up to 2.36) keeps equal values in insertion order */
    return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* Points for one server: md5("name-N") gives four little-endian words. */
static size_t
ketama_server(struct point *pt, const char *name, uint32_t index, uint32_t npoints)
{
    uint32_t i, x;
    size_t n = 0;

    for (i = 0; i < npoints / KETAMA_POINTS_PER_HASH; i++) {
        char host[KETAMA_MAX_HOSTLEN];
        uint8_t d[16];
        int len = snprintf(host, sizeof(host), "%s-%u", name, (unsigned)i);

        if (len < 0) {
            len = 0;
        } else if (len >= KETAMA_MAX_HOSTLEN) {
            len = KETAMA_MAX_HOSTLEN - 1; /* twemproxy truncates too */
        }
        pool_hash_md5_digest(host, (size_t)len, d);
        for (x = 0; x < KETAMA_POINTS_PER_HASH; x++) {
            pt[n].value = le32(d + 4 * x);
            pt[n++].index = index;
        }
    }
    return n;
}

static size_t
ring_size(enum pool_hash_dist dist, const struct pool_hash_server *s, size_t n, uint64_t total)
{
    size_t i, size = 0;

    switch (dist) {
    case POOL_HASH_KETAMA:
        for (i = 0; i < n; i++) {
            size += ketama_points(s[i].weight, (uint32_t)total, (uint32_t)n);
        }
        return size;
    case POOL_HASH_MODULA:
        return (size_t)total;
    default:
        return n;
    }
}

static const char *
ring_check(enum pool_hash_dist dist, const struct pool_hash_server *s, size_t n, uint64_t *total)
{
    size_t i;

    if ((unsigned)dist >= POOL_HASH_NDIST) {
        return "unknown distribution";
    }
    if (n == 0 || n > UINT32_MAX) {
        return "no servers";
    }
    *total = 0;
    for (i = 0; i < n; i++) {
        if (s[i].weight == 0) {
            return "zero weight";
        }
        if (s[i].name == NULL || s[i].name[0] == '\0') {
            return "server without a name";
        }
        *total += s[i].weight;
    }
    if (*total > UINT32_MAX || (dist == POOL_HASH_MODULA && *total > (1u << 24))) {
        return "total weight too large";
    }
    return NULL;
}

/* Servers in twemproxy's order: it decides modula's slots and ketama's ties. */
static void
ring_fill(struct pool_hash_ring *r, const struct pool_hash_server *servers, const uint32_t *order,
          size_t n, uint64_t total)
{
    size_t k = 0, j;
    uint32_t w, i;

    for (j = 0; j < n; j++) {
        const struct pool_hash_server *s = &servers[order[j]];

        i = order[j];

        switch (r->dist) {
        case POOL_HASH_KETAMA:
            w = ketama_points(s->weight, (uint32_t)total, (uint32_t)n);
            k += ketama_server(r->points + k, s->name, i, w);
            break;
        case POOL_HASH_MODULA:
            for (w = 0; w < s->weight; w++) {
                r->points[k++] = (struct point){.index = i};
            }
            break;
        default: /* random ignores weights, as twemproxy does */
            r->points[k++] = (struct point){.index = i};
            break;
        }
    }
    r->npoints = k;
    for (j = 0; j < k; j++) {
        r->points[j].seq = (uint32_t)j;
    }
    if (r->dist == POOL_HASH_KETAMA) {
        qsort(r->points, r->npoints, sizeof(r->points[0]), point_cmp);
    }
}

struct pool_hash_ring *
pool_hash_ring_new(enum pool_hash_dist dist, const struct pool_hash_server *servers, size_t n,
                   const char **errstr)
{
    struct pool_hash_ring *r = NULL;
    uint32_t *order = NULL;
    const char *why;
    uint64_t total = 0;
    size_t size = 0;

    why = ring_check(dist, servers, n, &total);
    if (why != NULL) {
        goto done;
    }
    size = ring_size(dist, servers, n, total);
    order = malloc(n * sizeof(*order));
    r = malloc(sizeof(*r) + size * sizeof(r->points[0]));
    if (order == NULL || r == NULL) {
        why = "out of memory";
    } else if (name_order(servers, n, order) != 0) {
        why = "duplicate server name";
    } else if (size == 0) {
        why = "no points on the continuum";
    } else {
        r->dist = dist;
        ring_fill(r, servers, order, n, total);
    }
done:
    free(order);
    if (why != NULL) {
        free(r);
        r = NULL;
        if (errstr != NULL) {
            *errstr = why;
        }
    }
    return r;
}

void
pool_hash_ring_free(struct pool_hash_ring *r)
{
    free(r);
}

size_t
pool_hash_ring_points(const struct pool_hash_ring *r)
{
    return r->npoints;
}

/* First point at or after hash, wrapping to the first. */
static size_t
ketama_find(const struct pool_hash_ring *r, uint32_t hash)
{
    size_t lo = 0, hi = r->npoints;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (r->points[mid].value < hash) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == r->npoints ? 0 : lo;
}

size_t
pool_hash_ring_pick(const struct pool_hash_ring *r, uint32_t hash)
{
    if (r->dist == POOL_HASH_KETAMA) {
        return r->points[ketama_find(r, hash)].index;
    }
    return r->points[hash % r->npoints].index;
}
