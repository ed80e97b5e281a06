#ifndef PX_SERVER_H
#define PX_SERVER_H

/*
 * The process: the main thread's event loop, signals and configuration
 * generations. SIGTERM and SIGINT stop it; SIGHUP re-reads the file, keeps
 * the running config when the new one has errors (each logged with its
 * position); a valid one has its log settings applied (live reload of
 * listeners and clusters is not built yet).
 */

struct cfg;

/* Report (to stderr) what cfg asks for that this version cannot serve yet; return how much. */
int px_server_check(const struct cfg *cfg);

/* Run until stopped. Takes ownership of cfg. Return 0, or -1 on a runtime failure. */
int px_server_run(struct cfg *cfg, const char *path);

#endif
