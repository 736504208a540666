/*
 * store_failure.h - what a plugin does when a store call fails (the store
 * is down, slow or full): its `store_failure = accept | tempfail` setting,
 * shared by every plugin that uses the store (lua, greylist, limit, karma,
 * bayes; docs/store.md).
 *
 * Not a plugin: part of the static library of plugins/common/ that
 * every plugin links (lua.so too).
 *
 * accept    (the default) the plugin goes on as if the key were absent:
 *           mail flows while the store is down
 * tempfail  the hook answers 451 4.3.0: the client retries later, and
 *           nothing is decided without the state
 *
 * Either way the failure is logged (WARNING, at most one line a minute
 * per worker and plugin, with how many failed since the last line) and
 * counted in the plugin's counter ("Lua.Store.Failures").  The host
 * counts every failed call in SMTP.Store.Errors / SMTP.Store.Timeouts
 * besides.
 */
#ifndef UPESI_STORE_FAILURE_H
#define UPESI_STORE_FAILURE_H

#include <stddef.h>

#include "upesi/plugin.h"

enum { STORE_FAILURE_ACCEPT = 0, STORE_FAILURE_TEMPFAIL = 1 };

/* "accept" or "tempfail" into *policy; else -1 with "store_failure:
 * 'X' is not accept or tempfail" in err. */
int store_failure_parse(const char *value, int *policy, char *err,
                        size_t errlen);

/* A store call of the plugin failed with status (a negative errno).
 * stat is the plugin's counter of them ("Lua.Store.Failures"; the
 * full name, so that docs/statistics.md's check finds it in the code).  Returns
 * UPESI_CONT for accept; for tempfail sets the reply (451 4.3.0) on call
 * (when call is not NULL) and returns UPESI_DENYSOFT.  ctx is the
 * plugin's; the log line names call's session when there is a call. */
upesi_verdict store_failure_note(const upesi_api *api, upesi_ctx *ctx,
                                 upesi_call *call, int policy, int status,
                                 const char *stat, const char *what);

#endif
