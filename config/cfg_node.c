#include "cfg_node.h"
#include "cfg_arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define NODE_MAX_DEPTH 64

struct anchor {
    const char *name;
    struct cfg_node *node;
    struct anchor *next;
};

struct frame {
    struct cfg_node *node;
    struct cfg_item *tail;
    struct cfg_node *pending_key; /* mapping: a key waiting for its value */
    const char *anchor;           /* registered when the collection ends */
};

struct builder {
    struct cfg_arena *arena;
    struct anchor *anchors;
    struct frame stack[NODE_MAX_DEPTH];
    int depth;
    struct cfg_node *root;
    struct cfg_node_error *err;
};

static void set_error(struct cfg_node_error *err, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_error(struct cfg_node_error *err, yaml_mark_t mark, const char *fmt, ...)
{
    va_list ap;

    err->line = (unsigned)mark.line + 1;
    err->col = (unsigned)mark.column + 1;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

static struct cfg_node *
new_node(struct builder *b, enum cfg_node_type type, yaml_mark_t mark)
{
    struct cfg_node *n = cfg_arena_alloc(b->arena, sizeof(*n));

    n->type = type;
    n->line = (unsigned)mark.line + 1;
    n->col = (unsigned)mark.column + 1;
    return n;
}

static void
add_anchor(struct builder *b, const char *name, struct cfg_node *node)
{
    struct anchor *a;

    if (name == NULL) {
        return;
    }
    a = cfg_arena_alloc(b->arena, sizeof(*a));
    a->name = name;
    a->node = node;
    a->next = b->anchors;
    b->anchors = a;
}

/* Attach a finished node to the collection on top of the stack, or make it the root. */
static void
attach(struct builder *b, struct cfg_node *node)
{
    struct frame *f;
    struct cfg_item *item;

    if (b->depth == 0) {
        b->root = node;
        return;
    }
    f = &b->stack[b->depth - 1];
    if (f->node->type == CFG_NODE_MAP && f->pending_key == NULL) {
        f->pending_key = node;
        return;
    }
    item = cfg_arena_alloc(b->arena, sizeof(*item));
    item->key = f->pending_key;
    item->val = node;
    f->pending_key = NULL;
    if (f->tail == NULL) {
        f->node->items = item;
    } else {
        f->tail->next = item;
    }
    f->tail = item;
    f->node->nitems++;
}

static const char *
dup_anchor(struct builder *b, const yaml_char_t *anchor)
{
    return anchor == NULL
               ? NULL
               : cfg_arena_strndup(b->arena, (const char *)anchor, strlen((const char *)anchor));
}

/* Handle one event; return 0 to go on, 1 at the end of the stream, -1 on error. */
static int
on_event(struct builder *b, const yaml_event_t *ev)
{
    struct cfg_node *n;
    struct anchor *a;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (b->root != NULL) {
            set_error(b->err, ev->start_mark,
                      "a second YAML document; expected one document per file");
            return -1;
        }
        return 0;
    case YAML_SCALAR_EVENT:
        n = new_node(b, CFG_NODE_SCALAR, ev->start_mark);
        n->str = cfg_arena_strndup(b->arena, (const char *)ev->data.scalar.value,
                                   ev->data.scalar.length);
        n->len = ev->data.scalar.length;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        add_anchor(b, dup_anchor(b, ev->data.scalar.anchor), n);
        attach(b, n);
        return 0;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (b->depth == NODE_MAX_DEPTH) {
            set_error(b->err, ev->start_mark, "nesting deeper than %d levels", NODE_MAX_DEPTH);
            return -1;
        }
        n = new_node(b, ev->type == YAML_MAPPING_START_EVENT ? CFG_NODE_MAP : CFG_NODE_SEQ,
                     ev->start_mark);
        b->stack[b->depth].node = n;
        b->stack[b->depth].tail = NULL;
        b->stack[b->depth].pending_key = NULL;
        b->stack[b->depth].anchor =
            dup_anchor(b, ev->type == YAML_MAPPING_START_EVENT ? ev->data.mapping_start.anchor
                                                               : ev->data.sequence_start.anchor);
        b->depth++;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        b->depth--;
        n = b->stack[b->depth].node;
        /* Registered only now: an alias inside its own anchor is an error, not a loop. */
        add_anchor(b, b->stack[b->depth].anchor, n);
        attach(b, n);
        return 0;
    case YAML_ALIAS_EVENT:
        for (a = b->anchors; a != NULL; a = a->next) {
            if (strcmp(a->name, (const char *)ev->data.alias.anchor) == 0) {
                break;
            }
        }
        if (a == NULL) {
            set_error(b->err, ev->start_mark, "alias *%s names no anchor defined before it",
                      (const char *)ev->data.alias.anchor);
            return -1;
        }
        attach(b, a->node);
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    default:
        return 0;
    }
}

struct cfg_node *
cfg_node_parse(struct cfg_arena *arena, const char *buf, size_t len, struct cfg_node_error *err)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct builder b;
    int rc = 0;

    memset(&b, 0, sizeof(b));
    b.arena = arena;
    b.err = err;
    if (!yaml_parser_initialize(&parser)) {
        yaml_mark_t start = {0, 0, 0};

        set_error(err, start, "cannot initialise the YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    while (rc == 0) {
        if (!yaml_parser_parse(&parser, &ev)) {
            char ctx[128] = "";

            if (parser.context != NULL) {
                snprintf(ctx, sizeof(ctx), " (%s at line %zu, column %zu)", parser.context,
                         parser.context_mark.line + 1, parser.context_mark.column + 1);
            }
            err->line = (unsigned)parser.problem_mark.line + 1;
            err->col = (unsigned)parser.problem_mark.column + 1;
            snprintf(err->msg, sizeof(err->msg), "YAML syntax error: %s%s",
                     parser.problem != NULL ? parser.problem : "malformed input", ctx);
            rc = -1;
            break;
        }
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc < 0) {
        return NULL;
    }
    if (b.root == NULL || cfg_node_is_null(b.root)) {
        yaml_mark_t start = {0, 0, 0};

        return new_node(&b, CFG_NODE_MAP, start);
    }
    return b.root;
}

const struct cfg_node *
cfg_node_get(const struct cfg_node *map, const char *key)
{
    const struct cfg_item *it;

    if (map == NULL || map->type != CFG_NODE_MAP) {
        return NULL;
    }
    for (it = map->items; it != NULL; it = it->next) {
        if (it->key->type == CFG_NODE_SCALAR && strcmp(it->key->str, key) == 0) {
            return it->val;
        }
    }
    return NULL;
}

bool
cfg_node_is_null(const struct cfg_node *node)
{
    return node->type == CFG_NODE_SCALAR && node->plain &&
           (node->len == 0 || strcmp(node->str, "~") == 0 || strcmp(node->str, "null") == 0);
}

const char *
cfg_node_kind(const struct cfg_node *node)
{
    switch (node->type) {
    case CFG_NODE_MAP:
        return "a mapping";
    case CFG_NODE_SEQ:
        return "a sequence";
    case CFG_NODE_SCALAR:
        break;
    }
    return cfg_node_is_null(node) ? "null" : "a scalar";
}
