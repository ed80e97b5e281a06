/*
 * sluice: command line, configuration, process lifecycle.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.
 */
#include "config/cfg.h"
#include "config/cfg_value.h"
#include "proxy/px_healthcheck.h"
#include "proxy/px_log.h"
#include "proxy/px_server.h"

#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define EXIT_RUNTIME 1
#define EXIT_CONFIG 2

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: sluice [-c FILE] [-t] [--version] [-h]\n"
            "       sluice healthcheck [-c FILE] [--timeout DURATION]\n"
            "\n"
            "  -c, --config FILE  configuration file (default: %s,\n"
            "                     else %s)\n"
            "  -t, --test         check the configuration, print it with every default filled\n"
            "                     in, and exit 0 (valid) or 2 (invalid)\n"
            "      --reference    print the configuration reference (markdown) and exit\n"
            "  -V, --version      print the versions of sluice and its libraries and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "healthcheck: GET /healthz on the admin.bind of FILE (a wildcard bind on loopback)\n"
            "and exit 0 when it answers 200, else 1 saying why; for a container's HEALTHCHECK.\n"
            "      --timeout DURATION  for connecting and the answer together (default: 2s)\n"
            "\n"
            "exit status: 0 ok, 1 runtime failure, 2 bad configuration or usage\n",
            SLUICE_INSTALLED_CONFIG, SLUICE_SOURCE_CONFIG);
}

static void
version(void)
{
    printf("sluice %s\n", SLUICE_VERSION);
    printf("libevent %s\n", event_get_version());
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libyaml %s\n", yaml_get_version_string());
}

static const char *
default_config(void)
{
    return access(SLUICE_INSTALLED_CONFIG, F_OK) == 0 ? SLUICE_INSTALLED_CONFIG
                                                      : SLUICE_SOURCE_CONFIG;
}

/* Load and report; NULL when the file has errors (already printed). */
static struct cfg *
load(const char *path)
{
    struct cfg_diag *diag = cfg_diag_new();
    struct cfg *cfg = cfg_load_file(path, diag);
    size_t i, n = cfg_diag_count(diag);

    for (i = 0; i < n; i++) {
        fprintf(stderr, "%s\n", cfg_diag_message(diag, i));
    }
    if (cfg == NULL) {
        fprintf(stderr, "sluice: %s: configuration has %zu error%s\n", path, n, n == 1 ? "" : "s");
    }
    cfg_diag_free(diag);
    return cfg;
}

/*
 * After the options: nothing may be left; load *path (the default when NULL,
 * then set). NULL after saying why: exit 2.
 */
static struct cfg *
load_rest(int argc, char **argv, const char **path, const char *who)
{
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", who, argv[optind]);
        usage(stderr);
        return NULL;
    }
    if (*path == NULL) {
        *path = default_config();
    }
    return load(*path);
}

/* sluice healthcheck [-c FILE] [--timeout DURATION]; argv[0] is "healthcheck". */
static int
healthcheck_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *why;
    uint64_t timeout_ms = PX_HEALTHCHECK_TIMEOUT_MS;
    struct cfg *cfg;
    int c, rc;

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'T':
            if (cfg_parse_duration(optarg, &timeout_ms, &why) == -1) {
                fprintf(stderr, "sluice healthcheck: --timeout %s: %s\n", optarg, why);
                return EXIT_CONFIG;
            }
            if (timeout_ms == 0) {
                fprintf(stderr, "sluice healthcheck: --timeout must be more than 0\n");
                return EXIT_CONFIG;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    cfg = load_rest(argc, argv, &path, "sluice healthcheck");
    if (cfg == NULL) {
        return EXIT_CONFIG;
    }
    rc = px_healthcheck_run(&cfg->admin, timeout_ms, stderr) == 0 ? 0 : EXIT_RUNTIME;
    cfg_free(cfg);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {"reference", no_argument, NULL, 'R'},    {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool test = false;
    struct cfg *cfg;
    int c, rc;

    if (argc > 1 && strcmp(argv[1], "healthcheck") == 0) {
        return healthcheck_main(argc - 1, argv + 1);
    }
    while ((c = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'V':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case 'R':
            return cfg_reference(stdout) == 0 ? 0 : EXIT_RUNTIME;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    cfg = load_rest(argc, argv, &path, "sluice");
    if (cfg == NULL) {
        return EXIT_CONFIG;
    }
    if (px_server_check(cfg, false) > 0) {
        cfg_free(cfg);
        return EXIT_CONFIG;
    }
    if (test) {
        rc = cfg_dump(cfg, stdout) == 0 && fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
        fprintf(stderr, "sluice: %s: configuration ok\n", path);
        cfg_free(cfg);
        return rc;
    }
    px_log_configure(cfg->log.level, cfg->log.format);
    px_log_set_rate_limit(cfg->log.rate_limit_ms);
    /* Buffers come and go with every frame: keep a worker heap's top instead of giving it back
     * and growing it again (an mprotect per cycle). Best effort: a failure only costs syscalls. */
    (void)mallopt(M_TOP_PAD, 4 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 16 << 20);
    rc = px_server_run(cfg, path) == 0 ? 0 : EXIT_RUNTIME;
    return rc;
}
