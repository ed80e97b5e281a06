/*
 * The loader: YAML tree + key table -> typed model. Every error is recorded
 * with its position and the walk goes on, so one run reports them all.
 */
#include "cfg.h"
#include "cfg_arena.h"
#include "cfg_check.h"
#include "cfg_diag.h"
#include "cfg_node.h"
#include "cfg_schema.h"
#include "cfg_value.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_LEN 256
#define TABLE_MAX 32 /* keys in one table */
#define FILE_MAX (16u << 20)

struct ld {
    struct cfg_arena *arena; /* borrowed: the config's */
    struct cfg_diag *diag;   /* borrowed */
    const char *file;
    const char *dir; /* folder of the file, for relative paths */
};

static void err_at(struct ld *ld, const struct cfg_node *node, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void
err_at(struct ld *ld, const struct cfg_node *node, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cfg_diag_add(ld->diag, ld->file, node->line, node->col, path, "%s", what);
}

/* path.key into buf (PATH_LEN bytes); a path too deep to print ends in "..." */
static const char *
join(char *buf, const char *path, const char *key)
{
    int n = snprintf(buf, PATH_LEN, "%s%s%s", path, path[0] != '\0' ? "." : "", key);

    if (n < 0 || n >= PATH_LEN) {
        memcpy(buf + PATH_LEN - 4, "...", 4);
    }
    return buf;
}

/* "did you mean" over a set of names: the closest within two edits, or NULL. */
static const char *
closest(const char *word, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3, i;

    for (i = 0; i < n; i++) {
        size_t d = cfg_edit_distance(word, names[i]);

        if (d < best_d && d < strlen(word)) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

static void
enum_list(const struct cfg_enum *e, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (; e->name != NULL && used < size; e++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used > 0 ? ", " : "", e->name);
    }
}

static bool
key_applies(const struct cfg_key *k, unsigned mask)
{
    return k->codecs == 0 || (k->codecs & mask) != 0;
}

static bool
valid_name(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++, n++) {
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') {
            return false;
        }
    }
    return n >= 1 && n <= 63;
}

/*
 * Store the scalar s (len bytes) into dst as the key's kind. Return 0, or -1
 * with a message in why.
 */
static int
set_scalar(struct ld *ld, const struct cfg_key *k, const char *s, size_t len, void *dst, char *why,
           size_t whylen)
{
    const char *w = NULL;
    uint64_t u = 0;
    int64_t i = 0;
    char a[32], b[32];

    if (k->kind != CFG_K_BYTES && strlen(s) != len) {
        snprintf(why, whylen, "a NUL byte inside the value");
        return -1;
    }
    switch (k->kind) {
    case CFG_K_U32:
    case CFG_K_U64:
    case CFG_K_I64:
        if (cfg_parse_int(s, &i, &w) == -1) {
            break;
        }
        if (i < k->min || i > k->max) {
            snprintf(why, whylen, "%lld is out of range; expected %lld to %lld", (long long)i,
                     (long long)k->min, (long long)k->max);
            return -1;
        }
        if (k->kind == CFG_K_U32) {
            *(uint32_t *)dst = (uint32_t)i;
        } else if (k->kind == CFG_K_U64) {
            *(uint64_t *)dst = (uint64_t)i;
        } else {
            *(int64_t *)dst = i;
        }
        return 0;
    case CFG_K_DURATION:
    case CFG_K_SIZE:
        if ((k->kind == CFG_K_DURATION ? cfg_parse_duration(s, &u, &w)
                                       : cfg_parse_size(s, &u, &w)) == -1) {
            break;
        }
        if (u < (uint64_t)k->min || u > (uint64_t)k->max) {
            if (k->kind == CFG_K_DURATION && u > (uint64_t)k->max) {
                snprintf(why, whylen, "duration too large");
            } else if (k->kind == CFG_K_DURATION) {
                cfg_format_duration((uint64_t)k->min, a, sizeof(a));
                snprintf(why, whylen, "must be at least %s%s", k->min == 1 ? "1ms" : a,
                         u == 0 ? " (0 is not allowed here)" : "");
            } else {
                cfg_format_size((uint64_t)k->min, a, sizeof(a));
                cfg_format_size((uint64_t)k->max, b, sizeof(b));
                snprintf(why, whylen, "%s is out of range; expected %s to %s", s, a, b);
            }
            return -1;
        }
        *(uint64_t *)dst = u;
        return 0;
    case CFG_K_BOOL:
        if (cfg_parse_bool(s, (bool *)dst, &w) == -1) {
            break;
        }
        return 0;
    case CFG_K_ENUM: {
        const struct cfg_enum *e;
        const char *names[16];
        size_t n = 0;
        char list[256];

        for (e = k->enums; e->name != NULL; e++) {
            if (strcmp(e->name, s) == 0) {
                *(int *)dst = e->value;
                return 0;
            }
            if (n < 16) {
                names[n++] = e->name;
            }
        }
        enum_list(k->enums, list, sizeof(list));
        w = closest(s, names, n);
        if (w != NULL) {
            snprintf(why, whylen, "unknown value '%s'; did you mean '%s'? expected one of: %s", s,
                     w, list);
        } else {
            snprintf(why, whylen, "unknown value '%s'; expected one of: %s", s, list);
        }
        return -1;
    }
    case CFG_K_NAME:
        if (!valid_name(s)) {
            snprintf(why, whylen,
                     "'%s' is not a valid name; expected 1 to 63 letters, digits, '_', '-' or '.'",
                     s);
            return -1;
        }
        *(char **)dst = cfg_arena_strndup(ld->arena, s, len);
        return 0;
    case CFG_K_HOSTNAME:
        if (!cfg_valid_hostname(s)) {
            snprintf(why, whylen, "'%s' is not a valid DNS name", s);
            return -1;
        }
        *(char **)dst = cfg_arena_strndup(ld->arena, s, len);
        return 0;
    case CFG_K_BYTES: {
        struct cfg_bytes *bytes = dst;

        bytes->ptr = cfg_arena_strndup(ld->arena, s, len);
        bytes->len = len;
        return 0;
    }
    case CFG_K_BIND:
    case CFG_K_ADDRESS:
        if (cfg_parse_addr(ld->arena, s, k->kind == CFG_K_BIND, dst, &w) == -1) {
            break;
        }
        return 0;
    case CFG_K_PATH: {
        struct stat st;
        char *path;

        if (len == 0) {
            snprintf(why, whylen, "expected a file path");
            return -1;
        }
        path = s[0] == '/' ? cfg_arena_strndup(ld->arena, s, len)
                           : cfg_arena_printf(ld->arena, "%s/%s", ld->dir, s);
        if (access(path, R_OK) == -1) {
            snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
            return -1;
        }
        if (stat(path, &st) == -1 || !S_ISREG(st.st_mode)) {
            snprintf(why, whylen, "'%s' is not a regular file", path);
            return -1;
        }
        *(char **)dst = path;
        return 0;
    }
    case CFG_K_WORKERS:
        if (strcmp(s, "auto") == 0) {
            *(uint32_t *)dst = 0;
            return 0;
        }
        if (cfg_parse_int(s, &i, &w) == -1 || i < k->min || i > k->max) {
            snprintf(why, whylen, "expected auto or a number from %lld to %lld", (long long)k->min,
                     (long long)k->max);
            return -1;
        }
        *(uint32_t *)dst = (uint32_t)i;
        return 0;
    case CFG_K_CODEC:
    case CFG_K_BLOCK:
    case CFG_K_OPTIONAL:
    case CFG_K_LIST:
        break;
    }
    snprintf(why, whylen, "%s", w != NULL ? w : "unexpected value");
    return -1;
}

/* Fill every key of the table that applies under mask with its default. */
static void
apply_defaults(struct ld *ld, const struct cfg_table *t, void *base, unsigned mask)
{
    size_t i;
    char why[256];

    for (i = 0; i < t->nkeys; i++) {
        const struct cfg_key *k = &t->keys[i];

        if (!key_applies(k, mask)) {
            continue;
        }
        if (k->kind == CFG_K_BLOCK) {
            apply_defaults(ld, k->sub, (char *)base + k->off, 0);
        } else if (k->def != NULL && set_scalar(ld, k, k->def, strlen(k->def),
                                                (char *)base + k->off, why, sizeof(why)) == -1) {
            fprintf(stderr, "sluice: bad built-in default for %s.%s: %s\n", t->path, k->name, why);
            abort();
        }
    }
}

static void load_map(struct ld *ld, const struct cfg_table *t, const struct cfg_node *node,
                     const char *path, void *base, unsigned mask);

static void load_value(struct ld *ld, const struct cfg_key *k, const struct cfg_node *node,
                       const char *path, void *base);

static bool
want_scalar(struct ld *ld, const struct cfg_node *node, const char *path)
{
    if (node->type != CFG_NODE_SCALAR) {
        err_at(ld, node, path, "expected a value, got %s", cfg_node_kind(node));
        return false;
    }
    if (cfg_node_is_null(node)) {
        err_at(ld, node, path, "missing value");
        return false;
    }
    return true;
}

static void
load_list(struct ld *ld, const struct cfg_key *k, const struct cfg_node *node, const char *path,
          void *base)
{
    const struct cfg_item *it;
    char *elems;
    size_t i = 0;

    if (node->type != CFG_NODE_SEQ) {
        err_at(ld, node, path, "expected a sequence, got %s", cfg_node_kind(node));
        return;
    }
    if ((int64_t)node->nitems < k->min) {
        err_at(ld, node, path, "empty list; expected at least %lld %s", (long long)k->min,
               k->min == 1 ? "entry" : "entries");
        return;
    }
    elems = node->nitems > 0 ? cfg_arena_alloc(ld->arena, node->nitems * k->elem_size) : NULL;
    for (it = node->items; it != NULL; it = it->next, i++) {
        char ipath[PATH_LEN];
        int n = snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);

        if (n < 0 || (size_t)n >= sizeof(ipath)) {
            memcpy(ipath + sizeof(ipath) - 4, "...", 4);
        }
        if ((k->flags & CFG_F_SCALAR_ELEM) && it->val->type == CFG_NODE_SCALAR) {
            /* "- 127.0.0.1:53" is short for "- {address: 127.0.0.1:53}" */
            apply_defaults(ld, k->sub, elems + i * k->elem_size, 0);
            load_value(ld, &k->sub->keys[0], it->val, ipath, elems + i * k->elem_size);
        } else {
            load_map(ld, k->sub, it->val, ipath, elems + i * k->elem_size, 0);
        }
    }
    *(void **)((char *)base + k->off) = elems;
    *(size_t *)((char *)base + k->count_off) = node->nitems;
}

static const struct cfg_node *
child_or(const struct cfg_node *map, const char *key)
{
    const struct cfg_node *n = cfg_node_get(map, key);

    return n != NULL ? n : map;
}

/* Checks that need several of a codec's parameters at once. */
static void
check_codec(struct ld *ld, const struct cfg_node *node, const char *path, struct cfg_codec *c)
{
    char kpath[PATH_LEN];

    if (c->type == CFG_CODEC_LINE && (c->delimiter.len == 0 || c->delimiter.len > 8)) {
        err_at(ld, child_or(node, "delimiter"), join(kpath, path, "delimiter"),
               "a delimiter of %zu bytes; expected 1 to 8 bytes", c->delimiter.len);
    } else if (c->type == CFG_CODEC_LINE && c->max_frame < c->delimiter.len) {
        err_at(ld, child_or(node, "max_frame"), join(kpath, path, "max_frame"),
               "max_frame %llu is shorter than the delimiter; no line could fit",
               (unsigned long long)c->max_frame);
    }
    if (c->type != CFG_CODEC_LENGTH) {
        return;
    }
    if (c->field_size != 1 && c->field_size != 2 && c->field_size != 3 && c->field_size != 4 &&
        c->field_size != 8) {
        err_at(ld, child_or(node, "field_size"), join(kpath, path, "field_size"),
               "%u is not a field size; expected 1, 2, 3, 4 or 8", c->field_size);
    } else if ((uint64_t)c->field_offset + c->field_size > c->max_frame) {
        err_at(ld, child_or(node, "max_frame"), join(kpath, path, "max_frame"),
               "max_frame %llu is smaller than the length field's end (%u); no frame could fit",
               (unsigned long long)c->max_frame, c->field_offset + c->field_size);
    }
}

static void
load_codec(struct ld *ld, const struct cfg_node *node, const char *path, struct cfg_codec *c)
{
    const struct cfg_key *type_key = &cfg_codec_table.keys[0];
    const struct cfg_node *tn = node;
    const char *tpath = path;
    char why[256], buf[PATH_LEN];
    int type;

    if (node->type == CFG_NODE_MAP) {
        tpath = join(buf, path, "type");
        tn = cfg_node_get(node, "type");
        if (tn == NULL) {
            err_at(ld, node, tpath, "missing required key 'type'");
            return;
        }
    } else if (node->type != CFG_NODE_SCALAR || cfg_node_is_null(node)) {
        err_at(ld, node, path, "expected a codec name or a mapping with a type, got %s",
               cfg_node_kind(node));
        return;
    }
    if (!want_scalar(ld, tn, tpath)) {
        return;
    }
    if (set_scalar(ld, type_key, tn->str, tn->len, &type, why, sizeof(why)) == -1) {
        err_at(ld, tn, tpath, "%s", why);
        return;
    }
    c->type = (enum cfg_codec_type)type;
    c->set = true;
    if (node->type == CFG_NODE_MAP) {
        load_map(ld, &cfg_codec_table, node, path, c, CFG_CODEC_BIT(c->type));
    } else {
        apply_defaults(ld, &cfg_codec_table, c, CFG_CODEC_BIT(c->type));
    }
    check_codec(ld, node, path, c);
}

static void
load_value(struct ld *ld, const struct cfg_key *k, const struct cfg_node *node, const char *path,
           void *base)
{
    void *dst = (char *)base + k->off;
    char why[512];

    switch (k->kind) {
    case CFG_K_CODEC:
        load_codec(ld, node, path, dst);
        return;
    case CFG_K_BLOCK:
        load_map(ld, k->sub, node, path, dst, 0);
        return;
    case CFG_K_OPTIONAL:
        if (node->type != CFG_NODE_MAP) {
            err_at(ld, node, path, "expected a mapping, got %s", cfg_node_kind(node));
            return;
        }
        *(bool *)dst = true;
        load_map(ld, k->sub, node, path, dst, 0);
        return;
    case CFG_K_LIST:
        load_list(ld, k, node, path, base);
        return;
    default:
        break;
    }
    if (!want_scalar(ld, node, path)) {
        return;
    }
    if (set_scalar(ld, k, node->str, node->len, dst, why, sizeof(why)) == -1) {
        err_at(ld, node, path, "%s", why);
    }
}

/* Index of the key named name that applies under mask; -1 if none, -2 if only under another. */
static int
find_key(const struct cfg_table *t, const char *name, unsigned mask)
{
    size_t i;
    int other = -1;

    for (i = 0; i < t->nkeys; i++) {
        if (strcmp(t->keys[i].name, name) == 0) {
            if (key_applies(&t->keys[i], mask)) {
                return (int)i;
            }
            other = -2;
        }
    }
    return other;
}

static void
unknown_key(struct ld *ld, const struct cfg_table *t, const struct cfg_node *key, const char *path,
            unsigned mask, bool other_codec)
{
    const char *names[TABLE_MAX];
    char list[512];
    size_t i, n = 0, used = 0;
    const char *near;

    list[0] = '\0';
    for (i = 0; i < t->nkeys; i++) {
        if (key_applies(&t->keys[i], mask) && (n == 0 || strcmp(names[n - 1], t->keys[i].name))) {
            names[n++] = t->keys[i].name;
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", n > 1 ? ", " : "",
                                     t->keys[i].name);
        }
    }
    if (other_codec) {
        const struct cfg_enum *e = cfg_codec_enum;

        while (e->name != NULL && CFG_CODEC_BIT(e->value) != mask) {
            e++;
        }
        err_at(ld, key, path, "'%s' is not a parameter of the %s codec; it takes: %s", key->str,
               e->name != NULL ? e->name : "?", list);
        return;
    }
    near = closest(key->str, names, n);
    if (near != NULL) {
        err_at(ld, key, path, "unknown key '%s'; did you mean '%s'?", key->str, near);
    } else {
        err_at(ld, key, path, "unknown key '%s'; expected one of: %s", key->str, list);
    }
}

static void
load_map(struct ld *ld, const struct cfg_table *t, const struct cfg_node *node, const char *path,
         void *base, unsigned mask)
{
    const struct cfg_node *seen[TABLE_MAX] = {NULL};
    const struct cfg_item *it;
    char kpath[PATH_LEN];
    size_t i;

    apply_defaults(ld, t, base, mask);
    if (node->type != CFG_NODE_MAP) {
        err_at(ld, node, path, "expected a mapping, got %s", cfg_node_kind(node));
        return;
    }
    for (it = node->items; it != NULL; it = it->next) {
        int idx;

        if (it->key->type != CFG_NODE_SCALAR) {
            err_at(ld, it->key, path, "a key must be a plain name, not %s", cfg_node_kind(it->key));
            continue;
        }
        join(kpath, path, it->key->str);
        idx = find_key(t, it->key->str, mask);
        if (idx < 0) {
            unknown_key(ld, t, it->key, kpath, mask, idx == -2);
            continue;
        }
        if (seen[idx] != NULL) {
            err_at(ld, it->key, kpath, "duplicate key; first given at line %u", seen[idx]->line);
            continue;
        }
        seen[idx] = it->key;
        load_value(ld, &t->keys[idx], it->val, kpath, base);
    }
    for (i = 0; i < t->nkeys; i++) {
        if ((t->keys[i].flags & CFG_F_REQUIRED) && seen[i] == NULL &&
            key_applies(&t->keys[i], mask)) {
            err_at(ld, node, join(kpath, path, t->keys[i].name), "missing required key '%s'",
                   t->keys[i].name);
        }
    }
}

static struct cfg *
load_tree(const char *name, const char *buf, size_t len, struct cfg_diag *diag)
{
    struct cfg_arena *tree_arena = cfg_arena_new();
    struct cfg_arena *arena = cfg_arena_new();
    struct cfg *cfg = cfg_arena_alloc(arena, sizeof(*cfg));
    struct cfg_node_error nerr;
    const struct cfg_node *root;
    const char *slash;
    struct ld ld;

    cfg->arena = arena;
    cfg->file = cfg_arena_strndup(arena, name, strlen(name));
    slash = strrchr(name, '/');
    ld.arena = arena;
    ld.diag = diag;
    ld.file = cfg->file;
    ld.dir = slash == NULL ? "." : cfg_arena_strndup(arena, name, (size_t)(slash - name));
    if (slash == name) {
        ld.dir = "/";
    }
    root = cfg_node_parse(tree_arena, buf, len, &nerr);
    if (root == NULL) {
        cfg_diag_add(diag, ld.file, nerr.line, nerr.col, NULL, "%s", nerr.msg);
    } else {
        load_map(&ld, &cfg_root_table, root, "", cfg, 0);
        cfg_check(cfg, root, diag);
    }
    cfg_arena_free(tree_arena);
    cfg_diag_finish(diag);
    if (cfg_diag_count(diag) > 0) {
        cfg_free(cfg);
        return NULL;
    }
    return cfg;
}

struct cfg *
cfg_load_buffer(const char *name, const char *buf, size_t len, struct cfg_diag *diag)
{
    cfg_diag_clear(diag);
    return load_tree(name, buf, len, diag);
}

struct cfg *
cfg_load_file(const char *path, struct cfg_diag *diag)
{
    FILE *f;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    struct cfg *cfg = NULL;

    cfg_diag_clear(diag);
    f = fopen(path, "rb");
    if (f == NULL) {
        cfg_diag_add(diag, path, 1, 1, NULL, "cannot open: %s", strerror(errno));
        goto out;
    }
    do {
        if (cap - len < 4096) {
            cap = cap == 0 ? 8192 : cap * 2;
            buf = cfg_xrealloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0 && len <= FILE_MAX);
    if (ferror(f)) {
        cfg_diag_add(diag, path, 1, 1, NULL, "cannot read: %s", strerror(errno));
        goto out;
    }
    if (len > FILE_MAX) {
        cfg_diag_add(diag, path, 1, 1, NULL, "file larger than %u MiB", FILE_MAX >> 20);
        goto out;
    }
    cfg = load_tree(path, buf, len, diag);
out:
    cfg_diag_finish(diag);
    if (f != NULL) {
        fclose(f);
    }
    free(buf);
    return cfg;
}

void
cfg_free(struct cfg *cfg)
{
    if (cfg != NULL) {
        cfg_arena_free(cfg->arena);
    }
}
