#ifndef CFG_SCHEMA_H
#define CFG_SCHEMA_H

/*
 * The key table (private to config/): every key sluice accepts, with its type,
 * where it lands in the model, its default, its range and its documentation.
 * The loader, the effective-config dump and docs/configuration.md are all
 * driven by it, so a key added here is parsed, defaulted, printed and
 * documented in one step.
 */

#include <stddef.h>
#include <stdint.h>

enum cfg_kind {
    CFG_K_U32,      /* uint32_t */
    CFG_K_U64,      /* uint64_t */
    CFG_K_I64,      /* int64_t */
    CFG_K_DURATION, /* uint64_t milliseconds */
    CFG_K_SIZE,     /* uint64_t bytes */
    CFG_K_BOOL,     /* bool */
    CFG_K_ENUM,     /* an enum, by name through enums */
    CFG_K_NAME,     /* char *: letters, digits, '_', '-', '.'; 1 to 63 characters */
    CFG_K_HOSTNAME, /* char *: a DNS name */
    CFG_K_BYTES,    /* struct cfg_bytes: any bytes, escapes in double quotes */
    CFG_K_BIND,     /* struct cfg_addr: host:port, [v6]:port or *:port */
    CFG_K_ADDRESS,  /* struct cfg_addr: host:port or [v6]:port */
    CFG_K_PATH,     /* char *: a readable file, relative to the config file's folder */
    CFG_K_WORKERS,  /* uint32_t: "auto" (0) or a count */
    CFG_K_CODEC,    /* struct cfg_codec: a codec name, or a mapping with type and parameters */
    CFG_K_BLOCK,    /* an embedded struct described by sub */
    CFG_K_OPTIONAL, /* an embedded struct whose first member is `bool enabled`: on when present */
    CFG_K_LIST,     /* a sequence of sub structs: pointer at off, size_t count at count_off */
};

#define CFG_F_REQUIRED 0x1u
#define CFG_F_HASH_ONLY                                                                            \
    0x2u /* a struct cfg_cluster key that means something only with balance hash */

#define CFG_F_SCALAR_ELEM                                                                          \
    0x4u /* a list whose elements may be written as the value of their first key */

struct cfg_enum {
    const char *name;
    int value;
};

struct cfg_table;

struct cfg_key {
    const char *name;
    enum cfg_kind kind;
    size_t off;
    const char *def; /* default, as the scalar's value; NULL: none */
    int64_t min;     /* integers, durations (ms), sizes (bytes); lists: fewest elements */
    int64_t max;
    unsigned flags;
    unsigned codecs; /* codec keys: a bit per enum cfg_codec_type it applies to; 0: all */
    const struct cfg_enum *enums;
    const struct cfg_table *sub;
    size_t count_off;
    size_t elem_size;
    const char *doc;
};

struct cfg_table {
    const char *path; /* for the reference: "listeners[]", "clusters[].pool" */
    const struct cfg_key *keys;
    size_t nkeys;
};

extern const struct cfg_table cfg_root_table;
extern const struct cfg_table cfg_codec_table;
extern const struct cfg_enum cfg_codec_enum[];
extern const struct cfg_enum cfg_hash_enum[];
extern const struct cfg_enum cfg_distribution_enum[];

#define CFG_CODEC_BIT(t) (1u << (t))

#endif
