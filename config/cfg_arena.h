#ifndef CFG_ARENA_H
#define CFG_ARENA_H

#include <stddef.h>

/*
 * A bump allocator: a config and everything in it live in one arena and die
 * together, so no error path in the loader can leak. Allocation aborts on OOM.
 */
struct cfg_arena;

struct cfg_arena *cfg_arena_new(void);
void cfg_arena_free(struct cfg_arena *arena);
void *cfg_arena_alloc(struct cfg_arena *arena, size_t size); /* zeroed */
char *cfg_arena_strndup(struct cfg_arena *arena, const char *s, size_t len);
char *cfg_arena_printf(struct cfg_arena *arena, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The one OOM policy of config/: report and abort. */
void *cfg_xmalloc(size_t size);
void *cfg_xrealloc(void *ptr, size_t size);

#endif
