#include "cfg_arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16

struct arena_block {
    struct arena_block *next; /* owned */
    size_t used;
    size_t size;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct cfg_arena {
    struct arena_block *head; /* owned: the block being filled, then older ones */
};

void *
cfg_xmalloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);

    if (p == NULL) {
        fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

void *
cfg_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size == 0 ? 1 : size);

    if (p == NULL) {
        fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

struct cfg_arena *
cfg_arena_new(void)
{
    struct cfg_arena *arena = cfg_xmalloc(sizeof(*arena));

    arena->head = NULL;
    return arena;
}

void
cfg_arena_free(struct cfg_arena *arena)
{
    struct arena_block *b, *next;

    if (arena == NULL) {
        return;
    }
    for (b = arena->head; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(arena);
}

void *
cfg_arena_alloc(struct cfg_arena *arena, size_t size)
{
    struct arena_block *b = arena->head;
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    void *p;

    if (need < size) {
        fprintf(stderr, "sluice: allocation of %zu bytes overflows\n", size);
        abort();
    }
    if (b == NULL || b->size - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;

        b = cfg_xmalloc(sizeof(*b) + cap);
        b->used = 0;
        b->size = cap;
        /* A big one-off block goes behind the head so the head keeps filling. */
        if (arena->head != NULL && cap > ARENA_BLOCK) {
            b->next = arena->head->next;
            arena->head->next = b;
        } else {
            b->next = arena->head;
            arena->head = b;
        }
    }
    p = b->data + b->used;
    b->used += need;
    memset(p, 0, need);
    return p;
}

char *
cfg_arena_strndup(struct cfg_arena *arena, const char *s, size_t len)
{
    char *p = cfg_arena_alloc(arena, len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *
cfg_arena_printf(struct cfg_arena *arena, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return cfg_arena_strndup(arena, "", 0);
    }
    p = cfg_arena_alloc(arena, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
