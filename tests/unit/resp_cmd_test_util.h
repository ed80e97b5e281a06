#ifndef RESP_CMD_TEST_UTIL_H
#define RESP_CMD_TEST_UTIL_H

/*
 * Helpers shared by the RESP command tests' sources, which build one binary:
 * test_resp_cmd. The size of a bulk string, and cases checked one by one:
 * each mismatch printed, the test failed at its end.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* A literal's bytes, without the NUL a string literal ends in. */
#define LIT(s) s, sizeof(s) - 1

size_t rct_digits(size_t v);
/* Bytes of "$<len>\r\n<payload>\r\n". */
size_t rct_bulk_size(size_t len);

extern unsigned rct_mismatches;
/* A test's setup: no mismatches yet. */
int rct_no_mismatches(void **state);
/* A test that collects mismatches, then asserts there were none. */
#define CASES(f) cmocka_unit_test_setup(f, rct_no_mismatches)
/* Print one, and count it. */
void rct_mismatch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The inline command cases, in test_resp_cmd_inline.c. */
extern const struct CMUnitTest resp_cmd_inline_tests[];
extern const size_t resp_cmd_inline_tests_count;

#endif
