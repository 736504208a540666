/*
 * queue_tools.h - `upesi queue list|show ID|delete ID|hold ID|release ID|
 * flush`, answered over the control socket by whichever queue plugin runs
 * (queue_spool, queue_forward), on the files of <spool_dir>:
 *
 *   queue/ID            waiting (queue_forward: "deferred" once tried)
 *   hold/ID             held: nothing delivers it until it is released
 *                       (the host's hold action writes here too)
 *   active/PID/ID       being delivered (queue_forward)
 *   dead/ID             given up (queue_forward)
 *
 * Not a plugin: compiled into libupesi_common.a (see hostmatch.h).
 *
 * Fails: every refusal is one "error: ..." line to the caller (the client
 * exits 1): an unknown subcommand, a malformed or unknown ID, a message
 * being delivered (hold or delete it after the attempt), a rename or
 * unlink that fails (with the reason).
 */
#ifndef UPESI_QUEUE_TOOLS_H
#define UPESI_QUEUE_TOOLS_H

#include "upesi/plugin.h"

typedef struct queue_tools_ops {
    const char *plugin;             /* named in answers */
    /* list: the state of a message in queue/ ("queued" or "deferred"),
     * and more to say after its line (attempts, next try, last error);
     * NULL: "queued", nothing more */
    void (*annotate)(const char *spool, const char *id, const char **state,
                     char *more, size_t morelen);
    /* after a release: make it due now (NULL: nothing to do) */
    void (*released)(const char *spool, const char *id);
    /* after a delete: remove what the plugin keeps beside it */
    void (*deleted)(const char *spool, const char *id);
    /* `queue flush` (NULL: the plugin delivers nothing itself) */
    void (*flush)(const char *args, upesi_control *out, void *arg);
} queue_tools_ops;

/* Register the control command "queue" (call from init, with the
 * plugin's context: log lines carry its name).  ops must stay valid.
 * 0 or api->control_register's negative errno. */
int queue_tools_register(const upesi_api *api, upesi_ctx *ctx,
                         const queue_tools_ops *ops);

/* a queue id: [A-Za-z0-9._-], no leading dot, 1 to 63 bytes */
int queue_tools_id_ok(const char *id);

#endif
