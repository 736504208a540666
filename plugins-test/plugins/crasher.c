/*
 * crasher.c - a test plugin that crashes its worker on purpose, for the
 * fault tests (plugins-test/e2e/faults.t): the supervisor must restart the
 * dead worker while the other workers go on serving.
 *
 * Triggers (rcpt hook): RCPT TO:<crash@...> dereferences a null pointer
 * (SIGSEGV); RCPT TO:<abort@...> calls abort() (SIGABRT).  Any other
 * recipient gets CONT.  The plugin first puts SIGSEGV back to its default
 * action, so that a sanitizer build dies of the signal as a plain build
 * does, instead of printing a report the tests would take for a host bug.
 *
 * Never list it in a real configuration.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"

static const upesi_api *api;

static upesi_verdict crasher_rcpt(upesi_call *call)
{
    const char *rcpt = api->address(call);
    if (rcpt == NULL)
        return UPESI_CONT;
    if (!strncasecmp(rcpt, "crash@", 6)) {
        api->log(call, UPESI_LOG_NOTICE, "crasher: segfaulting on purpose");
        signal(SIGSEGV, SIG_DFL);
        volatile int *null = NULL;
        *null = 42;
    }
    if (!strncasecmp(rcpt, "abort@", 6)) {
        api->log(call, UPESI_LOG_NOTICE, "crasher: aborting on purpose");
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    return UPESI_CONT;
}

static int crasher_init(const upesi_api *host, upesi_plugin_ref *self,
                        char *err, size_t errlen)
{
    (void)self;
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
