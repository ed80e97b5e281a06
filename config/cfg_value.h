#ifndef CFG_VALUE_H
#define CFG_VALUE_H

/*
 * Scalar value parsers and printers (private to config/). Each parser returns
 * 0, or -1 and points *why at a constant saying what was expected.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_arena;
struct cfg_addr;

/* "250ms", "2s", "5m", "1h", "1m30s"; "0" alone is zero. Result in milliseconds. */
int cfg_parse_duration(const char *s, uint64_t *ms, const char **why);
/* "512", "64KiB", "1MiB", "2GiB". */
int cfg_parse_size(const char *s, uint64_t *bytes, const char **why);
/* A decimal integer with an optional sign. */
int cfg_parse_int(const char *s, int64_t *out, const char **why);
/* "true" or "false". */
int cfg_parse_bool(const char *s, bool *out, const char **why);

/*
 * "host:port", "[v6]:port" or, when wildcard is true, "*:port". Hostnames are
 * kept as names; IP literals are parsed into out->sa.
 */
int cfg_parse_addr(struct cfg_arena *arena, const char *s, bool wildcard, struct cfg_addr *out,
                   const char **why);

/*
 * A DNS hostname: labels of letters, digits, '-' (not first or last) and '_'
 * (compose and container names use it), at most 253 characters, the last
 * label not all digits.
 */
bool cfg_valid_hostname(const char *s);

/* The shortest exact spelling: 300000 -> "5m", 1500 -> "1500ms", 0 -> "0s". */
void cfg_format_duration(uint64_t ms, char *buf, size_t size);
/* The largest exact unit: 1048576 -> "1MiB", 1000 -> "1000". */
void cfg_format_size(uint64_t bytes, char *buf, size_t size);

/* Levenshtein distance, for "did you mean". */
size_t cfg_edit_distance(const char *a, const char *b);

#endif
