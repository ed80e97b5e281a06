#ifndef CFG_CHECK_H
#define CFG_CHECK_H

/*
 * Checks across keys (private to config/): unique names, cluster references,
 * bind conflicts, codec compatibility, and settings that contradict each
 * other. Runs on a model that may be partly loaded (keys with errors stay
 * unset), so one run reports everything; root gives positions.
 */

struct cfg;
struct cfg_diag;
struct cfg_node;

void cfg_check(struct cfg *cfg, const struct cfg_node *root, struct cfg_diag *diag);

#endif
