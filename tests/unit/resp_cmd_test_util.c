/* Helpers shared by the RESP command tests: see resp_cmd_test_util.h. */
#include "resp_cmd_test_util.h"

#include <stdio.h>

/* ---- building frames ---- */

size_t
rct_digits(size_t v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Bytes of "$<len>\r\n<payload>\r\n". */
size_t
rct_bulk_size(size_t len)
{
    return 1 + rct_digits(len) + 2 + len + 2;
}

/* ---- cases checked one by one: each mismatch printed, the test failed at its end ---- */

unsigned rct_mismatches;

int
rct_no_mismatches(void **state)
{
    (void)state;
    rct_mismatches = 0;
    return 0;
}

void
rct_mismatch(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    print_error("MISMATCH: %s\n", msg);
    rct_mismatches++;
}
