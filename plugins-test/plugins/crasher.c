/*
 * crasher.c - a test plugin that crashes its worker on purpose, for the
 * fault tests (plugins-test/e2e/faults.t): the supervisor must restart the
 * dead worker while the other workers go on serving.
 *
 * Triggers (rcpt hook): RCPT TO:<crash@...> dereferences a null pointer
 * (SIGSEGV); RCPT TO:<abort@...> calls abort() (SIGABRT).  Any other
 * recipient gets CONT.  The plugin first puts SIGSEGV back to its default
 * action and keeps UBSan off the store, so that a sanitizer build dies of
 * the signal as a plain build does, instead of printing a report the tests
 * would take for a host bug.
 *
 * Never list it in a real configuration.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *crasher_ctx;

/* A real invalid store; UBSan would catch it and exit instead, so the
 * check is off here (the process must die of the signal). */
__attribute__((no_sanitize("undefined"), noinline))
static void crasher_segfault(void)
{
    signal(SIGSEGV, SIG_DFL);
    volatile int *null = NULL;
    *null = 42;
    raise(SIGSEGV);             /* in case the store did not fault */
}

static upesi_verdict crasher_rcpt(upesi_call *call)
{
    const char *rcpt = api->address(call);
    if (rcpt == NULL)
        return UPESI_CONT;
    if (!strncasecmp(rcpt, "crash@", 6)) {
        api->log_call(call, UPESI_LOG_NOTICE, "segfaulting on purpose");
        crasher_segfault();
    }
    if (!strncasecmp(rcpt, "abort@", 6)) {
        api->log_call(call, UPESI_LOG_NOTICE, "aborting on purpose");
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    return UPESI_CONT;
}

static int crasher_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                        size_t errlen)
{
    crasher_ctx = ctx;
    (void)err;
    (void)errlen;
    api = host;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "crasher",
    .version = "1.0",
    .init = crasher_init,
    .hooks = {
        [UPESI_HOOK_RCPT] = crasher_rcpt,
    },
};
