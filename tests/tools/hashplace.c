/*
 * hashplace: sluice's key placement for tests against twemproxy. Keys come
 * one a line on stdin (raw bytes, no newlines inside); one answer a line out.
 *
 *   hashplace place DIST HASH TAG NAME:WEIGHT...  server index per key
 *   hashplace hash HASH                           the key's hash, decimal
 *
 * TAG is a two-character hash_tag such as "{}", or "-" for none.
 */
#include "pool/pool_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
usage(void)
{
    fprintf(stderr, "usage: hashplace place DIST HASH TAG NAME:WEIGHT...\n"
                    "       hashplace hash HASH\n");
    return 2;
}

/* "name:weight", split at the last colon; the name is cut in place. */
static int
parse_server(char *arg, struct pool_hash_server *s)
{
    char *colon = strrchr(arg, ':'), *end;
    unsigned long w;

    if (colon == NULL) {
        return -1;
    }
    w = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || w == 0 || w > UINT32_MAX) {
        return -1;
    }
    *colon = '\0';
    s->name = arg;
    s->weight = (uint32_t)w;
    return 0;
}

static size_t
chomp(char *line, ssize_t n)
{
    if (n > 0 && line[n - 1] == '\n') {
        n--;
    }
    return (size_t)n;
}

static int
run_hash(enum pool_hash_fn fn)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) != -1) {
        printf("%u\n", (unsigned)pool_hash_key(fn, line, chomp(line, n)));
    }
    free(line);
    return 0;
}

static int
run_place(const struct pool_hash_ring *r, enum pool_hash_fn fn, const char *tag)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) != -1) {
        const char *part;
        size_t len = pool_hash_tag(tag, line, chomp(line, n), &part);

        printf("%zu\n", pool_hash_ring_pick(r, pool_hash_key(fn, part, len)));
    }
    free(line);
    return 0;
}

static int
place(int argc, char **argv)
{
    struct pool_hash_server *servers;
    struct pool_hash_ring *r = NULL;
    enum pool_hash_dist dist;
    enum pool_hash_fn fn;
    const char *tag = strcmp(argv[4], "-") == 0 ? NULL : argv[4], *why = "bad server";
    size_t i, n = (size_t)(argc - 5);
    int rc = 1;

    if (pool_hash_dist_parse(argv[2], &dist) != 0 || pool_hash_fn_parse(argv[3], &fn) != 0) {
        return usage();
    }
    servers = calloc(n, sizeof(*servers));
    if (servers == NULL) {
        return 1;
    }
    for (i = 0; i < n; i++) {
        if (parse_server(argv[5 + i], &servers[i]) != 0) {
            goto done;
        }
    }
    r = pool_hash_ring_new(dist, servers, n, &why);
    if (r != NULL) {
        rc = run_place(r, fn, tag);
    }
done:
    if (rc != 0) {
        fprintf(stderr, "hashplace: %s\n", why);
    }
    pool_hash_ring_free(r);
    free(servers);
    return rc;
}

int
main(int argc, char **argv)
{
    enum pool_hash_fn fn;

    if (argc == 3 && strcmp(argv[1], "hash") == 0) {
        if (pool_hash_fn_parse(argv[2], &fn) != 0) {
            return usage();
        }
        return run_hash(fn);
    }
    if (argc >= 6 && strcmp(argv[1], "place") == 0) {
        return place(argc, argv);
    }
    return usage();
}
