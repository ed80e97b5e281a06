#ifndef CFG_NODE_H
#define CFG_NODE_H

/*
 * The YAML document as a tree that keeps every node's position (private to
 * config/). Aliases point at their anchor's node, so the tree may be a DAG;
 * every node lives in the arena it was parsed into.
 */

#include <stdbool.h>
#include <stddef.h>

struct cfg_arena;

enum cfg_node_type {
    CFG_NODE_SCALAR,
    CFG_NODE_MAP,
    CFG_NODE_SEQ,
};

struct cfg_item {
    struct cfg_node *key; /* borrowed; NULL in a sequence */
    struct cfg_node *val; /* borrowed */
    struct cfg_item *next;
};

struct cfg_node {
    enum cfg_node_type type;
    unsigned line;   /* 1-based */
    unsigned col;    /* 1-based */
    const char *str; /* scalar text, NUL-terminated, escapes already applied */
    size_t len;
    bool plain;             /* scalar written without quotes */
    struct cfg_item *items; /* map entries or sequence elements, in file order */
    size_t nitems;
};

struct cfg_node_error {
    unsigned line;
    unsigned col;
    char msg[256];
};

/* Parse one YAML document. An empty document is an empty mapping at 1:1. */
struct cfg_node *cfg_node_parse(struct cfg_arena *arena, const char *buf, size_t len,
                                struct cfg_node_error *err);

/* The value of key in a mapping, or NULL. */
const struct cfg_node *cfg_node_get(const struct cfg_node *map, const char *key);

/* A null scalar: empty and plain, "~", or "null". */
bool cfg_node_is_null(const struct cfg_node *node);

/* "a mapping", "a sequence", "null" or "a scalar", for messages. */
const char *cfg_node_kind(const struct cfg_node *node);

#endif
