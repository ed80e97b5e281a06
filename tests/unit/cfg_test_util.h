#ifndef CFG_TEST_UTIL_H
#define CFG_TEST_UTIL_H

/* Helpers shared by the config loader's test sources, which build one binary: test_cfg. */

#include "config/cfg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define ANY_COUNT SIZE_MAX
#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* listeners[0]: 'a' on 127.0.0.1:7000, codec line, cluster c. Lines 1 to 5. */
#define LISTENER_A                                                                                 \
    "listeners:\n"                                                                                 \
    "  - name: a\n"                                                                                \
    "    bind: 127.0.0.1:7000\n"                                                                   \
    "    codec: line\n"                                                                            \
    "    cluster: c\n"

/* clusters[0]: 'c' with one server. Three lines. */
#define CLUSTER_C                                                                                  \
    "clusters:\n"                                                                                  \
    "  - name: c\n"                                                                                \
    "    servers: [{ address: 127.0.0.1:7001 }]\n"

void print_diag(const struct cfg_diag *diag);
struct cfg *load_named_ok(const char *name, const char *text);
struct cfg *load_ok(const char *text);
bool starts_with(const char *s, const char *prefix);
void check_failed(struct cfg *cfg, struct cfg_diag *diag, size_t count, size_t i,
                  const char *prefix, const char *want);
void expect_error_at(const char *text, size_t count, size_t i, const char *prefix,
                     const char *want);
void expect_error(const char *text, const char *prefix);
void expect_error_has(const char *text, const char *prefix, const char *want);
void expect_errors(const char *text, size_t n, ...);
const char *tmp_dir(void);
void make_file(char *path, size_t size, const char *tag, const char *text);
char *dump_text(const struct cfg *cfg);
struct cfg *load_with_codec(const char *codec);

/* The error cases, in test_cfg_errors.c. */
extern const struct CMUnitTest cfg_error_tests[];
extern const size_t cfg_error_tests_count;

#endif
