#include "guard_page.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

const uint8_t *
guard(const void *src, size_t len, struct guarded *g)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = len == 0 ? page : (len + page - 1) / page * page;
    uint8_t *p;

    g->size = body + page;
    p = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memcpy(p + body - len, src, len);
    assert_int_equal(mprotect(p, body, PROT_READ), 0); /* parsers write nothing either */
    assert_int_equal(mprotect(p + body, page, PROT_NONE), 0);
    g->map = p;
    return p + body - len;
}

void
unguard(struct guarded *g)
{
    munmap(g->map, g->size);
}
