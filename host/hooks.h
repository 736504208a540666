/*
 * hooks.h - running a hook's plugin chain for a session (DESIGN.md 3).
 *
 * Plugins run in conf/plugins order.  CONT goes on to the next; any other
 * verdict ends the chain and goes to the session's done callback with the
 * plugin's reply.  PENDING waits for api->resume under a plugin_timeout
 * deadline; a call the host gives up on (deadline, disconnect) is cancelled:
 * the plugin's cancel callback runs, or, without one, the call is kept
 * detached until the plugin's late resume frees it.  reset and disconnect
 * run every plugin and ignore verdicts; PENDING there is cancelled at once.
 */
#ifndef UPESI_HOOKS_H
#define UPESI_HOOKS_H

#include "session.h"

struct upesi_call {
    up_session *session;        /* NULL once the host gave up on the call */
    upesi_ctx *ctx;             /* the plugin's (lives for the process)   */
    const char *plugin;         /* its name                               */
    void *settings;
    upesi_hook hook;
    int in_handler;
    int resumed;
    upesi_verdict resumed_verdict;
    int code;
    char enhanced[16];
    char *text;
    upesi_cancel_fn cancel_fn;
    void *cancel_arg;
};

/* Run `hook` for s; done is called exactly once (maybe before return). */
void up_hook_run(up_session *s, upesi_hook hook, up_hook_done done);
/* The session goes away: cancel the pending call, if any. */
void up_hook_cancel(up_session *s);
/* Called by api->resume. */
void up_hook_resume(struct upesi_call *call, upesi_verdict v);

const char *up_hook_name(upesi_hook hook);
const char *up_verdict_name(upesi_verdict v);

#endif
