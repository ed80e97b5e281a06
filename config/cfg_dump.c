/*
 * Printing from the key table: the effective config as YAML (sluice -t) and
 * the configuration reference as markdown (docs/configuration.md).
 */
#include "cfg.h"
#include "cfg_schema.h"
#include "cfg_value.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    FILE *f;
    bool dash; /* the next line opens a list element */
};

static const char *
enum_name(const struct cfg_enum *e, int value)
{
    for (; e->name != NULL; e++) {
        if (e->value == value) {
            return e->name;
        }
    }
    return "?";
}

const char *
cfg_codec_name(enum cfg_codec_type type)
{
    return enum_name(cfg_codec_enum, (int)type);
}

const char *
cfg_hash_fn_name(enum cfg_hash_fn fn)
{
    return enum_name(cfg_hash_enum, (int)fn);
}

const char *
cfg_distribution_name(enum cfg_distribution dist)
{
    return enum_name(cfg_distribution_enum, (int)dist);
}

bool
cfg_codec_equal(const struct cfg_codec *a, const struct cfg_codec *b)
{
    return a->type == b->type && a->max_frame == b->max_frame &&
           a->delimiter.len == b->delimiter.len &&
           (a->delimiter.len == 0 ||
            memcmp(a->delimiter.ptr, b->delimiter.ptr, a->delimiter.len) == 0) &&
           a->field_offset == b->field_offset && a->field_size == b->field_size &&
           a->byte_order == b->byte_order && a->adjust == b->adjust;
}

const char *
cfg_balance_name(enum cfg_balance balance)
{
    static const char *const names[] = {
        [CFG_BALANCE_ROUND_ROBIN] = "round_robin",
        [CFG_BALANCE_LEAST_REQUEST] = "least_request",
        [CFG_BALANCE_RANDOM] = "random",
        [CFG_BALANCE_HASH] = "hash",
    };

    return (size_t)balance < sizeof(names) / sizeof(names[0]) ? names[balance] : "?";
}

const char *
cfg_log_level_name(enum cfg_log_level level)
{
    static const char *const names[] = {
        [CFG_LOG_DEBUG] = "debug",
        [CFG_LOG_INFO] = "info",
        [CFG_LOG_WARN] = "warn",
        [CFG_LOG_ERROR] = "error",
    };

    return (size_t)level < sizeof(names) / sizeof(names[0]) ? names[level] : "?";
}

static bool
plain_safe(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || !(isalnum((unsigned char)s[0]) || s[0] == '/' || s[0] == '_') ||
        s[len - 1] == ':') {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char)s[i]) && strchr("_./:-", s[i]) == NULL) {
            return false;
        }
    }
    return strcmp(s, "true") != 0 && strcmp(s, "false") != 0 && strcmp(s, "null") != 0;
}

/* A YAML scalar that loads back to exactly these bytes. */
static void
put_string(FILE *f, const char *s, size_t len, bool force_quotes)
{
    size_t i;

    if (!force_quotes && plain_safe(s, len)) {
        fwrite(s, 1, len, f);
        return;
    }
    fputc('"', f);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\0':
            fputs("\\0", f);
            break;
        default:
            /* \xNN is a code point in YAML: only below 0x80 is it the same byte. The
             * loader gave us valid UTF-8, so bytes from 0x80 up go out as they are. */
            if (c < 0x20 || c == 0x7f) {
                fprintf(f, "\\x%02x", c);
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

static void
key_line(struct out *o, int indent, const char *key)
{
    if (o->dash) {
        fprintf(o->f, "%*s- %s:", indent - 2, "", key);
        o->dash = false;
    } else {
        fprintf(o->f, "%*s%s:", indent, "", key);
    }
}

static void dump_map(struct out *o, const struct cfg_table *t, const void *base, unsigned mask,
                     int indent);

/* Write " value\n" for a scalar key; return false if the key is unset and must be skipped. */
static bool
scalar_text(const struct cfg_key *k, const void *p, char *buf, size_t size, const char **str,
            size_t *len, bool *quote)
{
    *str = buf;
    *quote = false;
    switch (k->kind) {
    case CFG_K_U32:
        snprintf(buf, size, "%u", *(const uint32_t *)p);
        break;
    case CFG_K_U64:
        snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case CFG_K_I64:
        snprintf(buf, size, "%lld", (long long)*(const int64_t *)p);
        break;
    case CFG_K_DURATION:
        cfg_format_duration(*(const uint64_t *)p, buf, size);
        break;
    case CFG_K_SIZE:
        cfg_format_size(*(const uint64_t *)p, buf, size);
        break;
    case CFG_K_BOOL:
        snprintf(buf, size, "%s", *(const bool *)p ? "true" : "false");
        break;
    case CFG_K_ENUM:
        snprintf(buf, size, "%s", enum_name(k->enums, *(const int *)p));
        break;
    case CFG_K_WORKERS:
        if (*(const uint32_t *)p == 0) {
            snprintf(buf, size, "auto");
        } else {
            snprintf(buf, size, "%u", *(const uint32_t *)p);
        }
        break;
    case CFG_K_NAME:
    case CFG_K_HOSTNAME:
    case CFG_K_PATH:
        *str = *(char *const *)p;
        if (*str == NULL) {
            return false;
        }
        *len = strlen(*str);
        return true;
    case CFG_K_BYTES:
        *str = ((const struct cfg_bytes *)p)->ptr;
        *len = ((const struct cfg_bytes *)p)->len;
        *quote = true;
        return *str != NULL;
    case CFG_K_BIND:
    case CFG_K_ADDRESS:
        *str = ((const struct cfg_addr *)p)->text;
        if (*str == NULL) {
            return false;
        }
        *len = strlen(*str);
        return true;
    case CFG_K_CODEC:
    case CFG_K_BLOCK:
    case CFG_K_OPTIONAL:
    case CFG_K_LIST:
        return false;
    }
    *len = strlen(buf);
    return true;
}

/* A block whose keys are all unset optional blocks prints nothing but {}. */
static bool
block_empty(const struct cfg_table *t, const void *base)
{
    size_t i;

    for (i = 0; i < t->nkeys; i++) {
        const struct cfg_key *k = &t->keys[i];

        if (k->kind != CFG_K_OPTIONAL || *(const bool *)((const char *)base + k->off)) {
            return false;
        }
    }
    return true;
}

static void
dump_key(struct out *o, const struct cfg_key *k, const void *base, int indent)
{
    const void *p = (const char *)base + k->off;
    char buf[64];
    const char *str;
    size_t len, i, n;
    bool quote;

    if ((k->flags & CFG_F_HASH_ONLY) &&
        ((const struct cfg_cluster *)base)->balance != CFG_BALANCE_HASH) {
        return; /* loading it back would be an error: it means nothing here */
    }
    switch (k->kind) {
    case CFG_K_CODEC: {
        const struct cfg_codec *c = p;

        if (!c->set) {
            return; /* a cluster no listener uses keeps no codec of its own */
        }
        key_line(o, indent, k->name);
        fputc('\n', o->f);
        dump_map(o, &cfg_codec_table, c, CFG_CODEC_BIT(c->type), indent + 2);
        return;
    }
    case CFG_K_OPTIONAL:
        if (!*(const bool *)p) {
            return;
        }
        /* fall through */
    case CFG_K_BLOCK:
        key_line(o, indent, k->name);
        if (block_empty(k->sub, p)) {
            fputs(" {}\n", o->f);
            return;
        }
        fputc('\n', o->f);
        dump_map(o, k->sub, p, 0, indent + 2);
        return;
    case CFG_K_LIST:
        n = *(const size_t *)((const char *)base + k->count_off);
        key_line(o, indent, k->name);
        if (n == 0) {
            fputs(" []\n", o->f);
            return;
        }
        fputc('\n', o->f);
        for (i = 0; i < n; i++) {
            o->dash = true;
            dump_map(o, k->sub, *(char *const *)p + i * k->elem_size, 0, indent + 4);
        }
        return;
    default:
        break;
    }
    if (!scalar_text(k, p, buf, sizeof(buf), &str, &len, &quote)) {
        return;
    }
    key_line(o, indent, k->name);
    fputc(' ', o->f);
    put_string(o->f, str, len, quote);
    fputc('\n', o->f);
}

static void
dump_map(struct out *o, const struct cfg_table *t, const void *base, unsigned mask, int indent)
{
    size_t i;

    for (i = 0; i < t->nkeys; i++) {
        if (t->keys[i].codecs == 0 || (t->keys[i].codecs & mask) != 0) {
            dump_key(o, &t->keys[i], base, indent);
        }
    }
}

int
cfg_dump(const struct cfg *cfg, FILE *out)
{
    struct out o = {out, false};

    fprintf(out, "# effective configuration of %s\n", cfg->file);
    dump_map(&o, &cfg_root_table, cfg, 0, 0);
    return ferror(out) ? -1 : 0;
}

/* ---- comparing sections, for a reload ---- */

static const struct cfg_table *
root_list(const char *key)
{
    size_t i;

    for (i = 0; i < cfg_root_table.nkeys; i++) {
        if (strcmp(cfg_root_table.keys[i].name, key) == 0) {
            return cfg_root_table.keys[i].sub;
        }
    }
    return NULL;
}

/* base's section as the dump writes it (malloc'd), or NULL when out of memory. */
static char *
dump_text(const struct cfg_table *t, const void *base, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    struct out o = {f, false};

    if (f == NULL) {
        return NULL;
    }
    dump_map(&o, t, base, 0, 0);
    if (ferror(f)) {
        fclose(f);
        free(text);
        return NULL;
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static bool
bytes_equal(const struct cfg_bytes *a, const struct cfg_bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static bool
same(const char *list, const void *a, const void *b)
{
    const struct cfg_table *t = root_list(list);
    size_t alen = 0, blen = 0;
    char *at = t != NULL ? dump_text(t, a, &alen) : NULL;
    char *bt = t != NULL ? dump_text(t, b, &blen) : NULL;
    bool eq = at != NULL && bt != NULL && alen == blen && memcmp(at, bt, alen) == 0;

    free(at);
    free(bt);
    return eq;
}

bool
cfg_cluster_same(const struct cfg_cluster *a, const struct cfg_cluster *b)
{
    return same("clusters", a, b) && bytes_equal(&a->resp.password, &b->resp.password);
}

bool
cfg_listener_same(const struct cfg_listener *a, const struct cfg_listener *b)
{
    return same("listeners", a, b) && bytes_equal(&a->resp.auth.password, &b->resp.auth.password);
}

/* ---- the reference ---- */

static void
type_text(const struct cfg_key *k, char *buf, size_t size)
{
    char a[32], b[32];
    size_t used;
    const struct cfg_enum *e;

    switch (k->kind) {
    case CFG_K_U32:
    case CFG_K_U64:
    case CFG_K_I64:
        if (k->max == INT64_MAX) {
            snprintf(buf, size, "integer, %lld or more", (long long)k->min);
        } else {
            snprintf(buf, size, "integer, %lld to %lld", (long long)k->min, (long long)k->max);
        }
        return;
    case CFG_K_DURATION:
        cfg_format_duration((uint64_t)k->min, a, sizeof(a));
        snprintf(buf, size, k->min == 0 ? "duration" : "duration, at least %s",
                 k->min == 1 ? "1ms" : a);
        return;
    case CFG_K_SIZE:
        cfg_format_size((uint64_t)k->min, a, sizeof(a));
        cfg_format_size((uint64_t)k->max, b, sizeof(b));
        snprintf(buf, size, "size, %s to %s", a, b);
        return;
    case CFG_K_BOOL:
        snprintf(buf, size, "boolean");
        return;
    case CFG_K_ENUM:
        used = (size_t)snprintf(buf, size, "one of ");
        for (e = k->enums; e->name != NULL && used < size; e++) {
            used += (size_t)snprintf(buf + used, size - used, "%s`%s`", e == k->enums ? "" : ", ",
                                     e->name);
        }
        return;
    case CFG_K_NAME:
        snprintf(buf, size, "name");
        return;
    case CFG_K_HOSTNAME:
        snprintf(buf, size, "DNS name");
        return;
    case CFG_K_BYTES:
        snprintf(buf, size, "string (bytes)");
        return;
    case CFG_K_BIND:
        snprintf(buf, size, "bind address");
        return;
    case CFG_K_ADDRESS:
        snprintf(buf, size, "address");
        return;
    case CFG_K_PATH:
        snprintf(buf, size, "file path");
        return;
    case CFG_K_WORKERS:
        snprintf(buf, size, "`auto` or integer, %lld to %lld", (long long)k->min,
                 (long long)k->max);
        return;
    case CFG_K_CODEC:
        snprintf(buf, size, "codec");
        return;
    case CFG_K_BLOCK:
        snprintf(buf, size, "mapping");
        return;
    case CFG_K_OPTIONAL:
        snprintf(buf, size, "mapping, optional");
        return;
    case CFG_K_LIST:
        snprintf(buf, size, "list of mappings");
        return;
    }
}

static void
ref_table(FILE *out, const struct cfg_table *t)
{
    size_t i;

    fprintf(out, "\n## `%s`\n\n", t->path[0] != '\0' ? t->path : "(top level)");
    fprintf(out, "| key | type | default | meaning |\n|---|---|---|---|\n");
    for (i = 0; i < t->nkeys; i++) {
        const struct cfg_key *k = &t->keys[i];
        char type[256];

        type_text(k, type, sizeof(type));
        fprintf(out, "| `%s` | %s | ", k->name, type);
        if (k->flags & CFG_F_REQUIRED) {
            fputs("**required**", out);
        } else if (k->def != NULL) {
            fputc('`', out);
            put_string(out, k->def, strlen(k->def), k->kind == CFG_K_BYTES);
            fputc('`', out);
        } else if (k->kind == CFG_K_BLOCK) {
            fprintf(out, "see `%s`", k->sub->path);
        } else if (k->kind == CFG_K_LIST) {
            fputs("`[]`", out);
        } else {
            fputs("unset", out);
        }
        fputs(" | ", out);
        if (k->codecs != 0) {
            const struct cfg_enum *e;
            bool first = true;

            fputs("*(", out);
            for (e = cfg_codec_enum; e->name != NULL; e++) {
                if (k->codecs & CFG_CODEC_BIT(e->value)) {
                    fprintf(out, "%s%s", first ? "" : ", ", e->name);
                    first = false;
                }
            }
            fputs(")* ", out);
        }
        fprintf(out, "%s |\n", k->doc);
    }
    for (i = 0; i < t->nkeys; i++) {
        if (t->keys[i].sub != NULL) {
            ref_table(out, t->keys[i].sub);
        }
    }
}

int
cfg_reference(FILE *out)
{
    fputs("# Configuration reference\n\n"
          "<!-- Generated from config/cfg_schema.c by `sluice --reference`; "
          "a test fails when this file and the code disagree. -->\n\n"
          "sluice reads one YAML file (`sluice -c FILE`; `sluice -t -c FILE` checks it and "
          "prints the effective configuration with every default filled in). Unknown keys, "
          "duplicate keys, wrong types and out-of-range values are errors, each reported as "
          "`FILE:LINE:COLUMN: path.to.key: problem`, all of them in one run; a bad file exits "
          "with status 2.\n\n"
          "Value types:\n\n"
          "- **duration**: a number and a unit, `ms`, `s`, `m`, `h` or `d`, which may be "
          "combined (`250ms`, `2s`, `5m`, `1m30s`); `0` alone means zero. Where the meaning says "
          "\"0 disables\", `0` turns the deadline off.\n"
          "- **size**: bytes, with an optional `KiB`, `MiB`, `GiB` or `TiB` (powers of 1024): "
          "`512`, `64KiB`, `1MiB`.\n"
          "- **address**: `host:port` or `[ipv6]:port`; a hostname is kept as a name and "
          "resolved later. A **bind address** may also be `*:port` (every local address).\n"
          "- **name**: 1 to 63 letters, digits, `_`, `-` or `.`.\n"
          "- **string (bytes)**: in double quotes, YAML escapes give any ASCII byte, NUL "
          "included: `\"PING\\r\\n\"`, `\"\\x00\\x01\"`; other characters are UTF-8 "
          "(`\"\\xff\"` is U+00FF, two bytes).\n"
          "- **file path**: must be readable; a relative path is taken from the config file's "
          "folder.\n"
          "- **codec**: a codec name (`codec: line`), or a mapping with `type` and that codec's "
          "parameters (`codec: { type: length, field_size: 2 }`); see `codec` below.\n",
          out);
    ref_table(out, &cfg_root_table);
    ref_table(out, &cfg_codec_table); /* shared by listeners[] and clusters[] */
    return ferror(out) ? -1 : 0;
}
