#ifndef POOL_HASH_H
#define POOL_HASH_H

/*
 * twemproxy-compatible key placement: its hash functions (hashkit), its
 * distributions (ketama, modula, random) and its hash_tag rule, so a pool
 * moved from nutcracker keeps every key on the same server. Pure: no I/O,
 * no globals, no logging.
 */

#include <stddef.h>
#include <stdint.h>

/* twemproxy's hash: names, in nc_hashkit.h's order. */
enum pool_hash_fn {
    POOL_HASH_ONE_AT_A_TIME,
    POOL_HASH_MD5,
    POOL_HASH_CRC16,
    POOL_HASH_CRC32,
    POOL_HASH_CRC32A,
    POOL_HASH_FNV1_64,
    POOL_HASH_FNV1A_64,
    POOL_HASH_FNV1_32,
    POOL_HASH_FNV1A_32,
    POOL_HASH_HSIEH,
    POOL_HASH_MURMUR,
    POOL_HASH_JENKINS,
    POOL_HASH_NFN
};

/* twemproxy's distribution: names. */
enum pool_hash_dist { POOL_HASH_KETAMA, POOL_HASH_MODULA, POOL_HASH_RANDOM, POOL_HASH_NDIST };

typedef uint32_t (*pool_hash_fn_t)(const char *key, size_t len);

extern const char *const pool_hash_fn_names[POOL_HASH_NFN];
extern const char *const pool_hash_dist_names[POOL_HASH_NDIST];

/* 0 and *out set when name is one of the names above, else -1. */
int pool_hash_fn_parse(const char *name, enum pool_hash_fn *out);
int pool_hash_dist_parse(const char *name, enum pool_hash_dist *out);
pool_hash_fn_t pool_hash_fn_get(enum pool_hash_fn fn);

/*
 * Key hash as twemproxy's server_pool_hash: 0 for an empty key. Bytes >= 0x80
 * are sign-extended where twemproxy reads them through a signed char, as
 * nutcracker does on amd64 and i386, on every platform.
 */
uint32_t pool_hash_key(enum pool_hash_fn fn, const char *key, size_t len);

uint32_t pool_hash_one_at_a_time(const char *key, size_t len);
uint32_t pool_hash_md5(const char *key, size_t len);
uint32_t pool_hash_crc16(const char *key, size_t len);
uint32_t pool_hash_crc32(const char *key, size_t len);
uint32_t pool_hash_crc32a(const char *key, size_t len);
uint32_t pool_hash_fnv1_64(const char *key, size_t len);
uint32_t pool_hash_fnv1a_64(const char *key, size_t len);
uint32_t pool_hash_fnv1_32(const char *key, size_t len);
uint32_t pool_hash_fnv1a_32(const char *key, size_t len);
uint32_t pool_hash_hsieh(const char *key, size_t len);
uint32_t pool_hash_murmur(const char *key, size_t len);
uint32_t pool_hash_jenkins(const char *key, size_t len);

/* The 16-byte MD5 digest (RFC 1321) of data, used by md5 and ketama. */
void pool_hash_md5_digest(const void *data, size_t len, uint8_t out[16]);

/*
 * hash_tag: the part of key between the first tag[0] and the next tag[1]
 * after it, when both exist and it is not empty; else the whole key. tag is
 * NULL or "" for none, else exactly two characters. Returns the part's length
 * and points *part into key.
 */
size_t pool_hash_tag(const char *tag, const char *key, size_t len, const char **part);

/*
 * A server as twemproxy hashes it. name is its config name when it has one,
 * else "host:port" as written in the config, or "host" alone when the port is
 * 11211 (see pool_hash_server_name).
 */
struct pool_hash_server {
    const char *name; /* borrowed: needed only during pool_hash_ring_new */
    uint32_t weight;  /* > 0 */
};

/* The name twemproxy gives an unnamed server; 0, or -1 when it does not fit. */
int pool_hash_server_name(char *buf, size_t size, const char *host, const char *port);

struct pool_hash_ring;

/*
 * The servers' continuum, as twemproxy builds it with every server live. NULL
 * with *errstr set (when errstr is not NULL) on bad input or no memory.
 */
struct pool_hash_ring *pool_hash_ring_new(enum pool_hash_dist dist,
                                          const struct pool_hash_server *servers, size_t n,
                                          const char **errstr);
void pool_hash_ring_free(struct pool_hash_ring *r);

/* Index of the server for hash. For random, pass a random number as hash. */
size_t pool_hash_ring_pick(const struct pool_hash_ring *r, uint32_t hash);

/* Points on the continuum (ketama: 160 per server at equal weights). */
size_t pool_hash_ring_points(const struct pool_hash_ring *r);

#endif
