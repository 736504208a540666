/*
 * hooks.c - run a hook's plugin chain (see hooks.h).
 *
 * A plugin may call resume from inside its own handler (an answer that was
 * already cached, say) and then return PENDING: in_handler catches that, and
 * the chain goes on as if the handler had returned the verdict directly, so
 * the chain never recurses into itself.
 *
 * Fails: a plugin that misses its deadline gets DENYSOFT 451 4.3.0 for the
 * client and a CRIT log line naming plugin and hook; nothing else here can
 * fail except allocation, which is answered as a temporary failure too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "log.h"
#include "simulate.h"
#include "stats.h"

static const char *const hook_names[UPESI_HOOK_COUNT] = {
    [UPESI_HOOK_CONNECT] = "connect", [UPESI_HOOK_HELO] = "helo",
    [UPESI_HOOK_MAIL] = "mail", [UPESI_HOOK_RCPT] = "rcpt",
    [UPESI_HOOK_DATA] = "data", [UPESI_HOOK_DATA_POST] = "data_post",
    [UPESI_HOOK_QUEUE] = "queue", [UPESI_HOOK_RESET] = "reset",
    [UPESI_HOOK_DISCONNECT] = "disconnect",
    [UPESI_HOOK_UNRECOGNIZED] = "unrecognized", [UPESI_HOOK_VRFY] = "vrfy",
    [UPESI_HOOK_AUTH] = "auth",
};

const char *up_hook_name(upesi_hook hook)
{
    return (unsigned)hook < UPESI_HOOK_COUNT ? hook_names[hook] : "?";
}

const char *up_verdict_name(upesi_verdict v)
{
    static const char *const names[] = { "CONT", "OK", "DENY", "DENYSOFT",
                                         "DENYDISCONNECT",
                                         "DENYSOFTDISCONNECT", "PENDING" };
    return (unsigned)v < sizeof names / sizeof *names ? names[v] : "?";
}

static int hook_is_notification(upesi_hook hook)
{
    return hook == UPESI_HOOK_RESET || hook == UPESI_HOOK_DISCONNECT;
}

static void call_free(struct upesi_call *call)
{
    free(call->text);
    free(call);
}

static void cancel_call(struct upesi_call *call)
{
    if (call->cancel_fn) {
        upesi_cancel_fn fn = call->cancel_fn;
        call->cancel_fn = NULL;
        call->session = NULL;
        fn(call, call->cancel_arg);
        call_free(call);
    } else {
        /* the plugin still holds the pointer: keep it until its resume */
        call->session = NULL;
    }
}

/* Count a plugin's decision: SMTP.Plugin.<name>.<hook>.<VERDICT> */
static void count_decision(const struct upesi_call *call, upesi_verdict v)
{
    char name[160];
    snprintf(name, sizeof name, "SMTP.Plugin.%s.%s.%s", call->plugin,
             up_hook_name(call->hook), up_verdict_name(v));
    up_stats_add(name, 1);
}

static void chain_finish(up_session *s, upesi_verdict v,
                         struct upesi_call *call)
{
    up_reply reply = { 0 };
    if (call) {
        reply.code = call->code;
        reply.enhanced = call->enhanced[0] ? call->enhanced : NULL;
        reply.text = call->text;
        reply.plugin = call->plugin;
    }
    up_hook_done done = s->hook_done;
    s->hook_done = NULL;
    s->busy = 0;
    done(s, v, &reply);
    if (call)
        call_free(call);
}

/* A handler's final verdict for call: go on (0), or the chain ended (1).
 * After 1 the session may already be running another chain, started by the
 * done callback: the caller must not touch the chain state again. */
static int chain_verdict(up_session *s, struct upesi_call *call,
                         upesi_verdict v)
{
    if (v != UPESI_CONT && v != UPESI_PENDING)
        count_decision(call, v);
    if (up_simulating() && v >= UPESI_CONT && v < UPESI_PENDING) {
        char code[24] = "";
        if (call->code)
            snprintf(code, sizeof code, " %d", call->code);
        up_simulate_trace("%s: %s -> %s%s%s%s%s%s", up_hook_name(call->hook),
                          call->plugin, up_verdict_name(v), code,
                          call->enhanced[0] ? " " : "", call->enhanced,
                          call->text ? " " : "",
                          call->text ? call->text : "");
    }
    if (v == UPESI_PENDING) {
        /* notification hooks cannot wait: give up on the call now */
        up_log(s->id, UPESI_LOG_WARNING, "plugin %s returned PENDING from "
               "%s, which cannot wait; cancelled", call->plugin,
               up_hook_name(call->hook));
        cancel_call(call);
        return 0;
    }
    if (v > UPESI_PENDING || v < UPESI_CONT) {
        up_log(s->id, UPESI_LOG_ERR, "plugin %s returned an unknown verdict "
               "%d from %s; taken as DENYSOFT", call->plugin, (int)v,
               up_hook_name(call->hook));
        v = UPESI_DENYSOFT;
        free(call->text);
        call->text = NULL;
        call->code = 0;
    }
    if (v == UPESI_CONT || hook_is_notification(s->hook)) {
        call_free(call);
        return 0;
    }
    chain_finish(s, v, call);
    return 1;
}

static void on_hook_timeout(uv_timer_t *timer)
{
    up_session *s = timer->data;
    struct upesi_call *call = s->pending;
    if (call == NULL)
        return;
    s->pending = NULL;
    up_log(s->id, UPESI_LOG_CRIT, "plugin %s did not answer %s within %gs; "
           "temporary failure", call->plugin, up_hook_name(call->hook),
           s->cfg->plugin_timeout);
    up_stats_add("SMTP.Plugin.Timeouts", 1);
    up_simulate_trace("%s: %s -> no answer within plugin_timeout (451 "
                      "4.3.0)", up_hook_name(call->hook), call->plugin);
    const char *plugin = call->plugin;
    cancel_call(call);
    up_reply reply = { 451, "4.3.0", "Temporary plugin failure, try again "
                       "later", plugin };
    up_hook_done done = s->hook_done;
    s->hook_done = NULL;
    s->busy = 0;
    done(s, UPESI_DENYSOFT, &reply);
}

/* -bh: the queue hook is reported, not run; a queue plugin's OK is
 * assumed (without one, the chain ends CONT: 451, as in a real server) */
static int simulated_queue(up_session *s)
{
    const up_config *cfg = s->cfg;
    const char *queue = NULL;
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (cfg->plugins[i].mod->desc->hooks[UPESI_HOOK_QUEUE]) {
            up_simulate_trace("queue: %s -> not run (-bh: nothing is "
                              "queued)", cfg->plugins[i].mod->name);
            if (queue == NULL)
                queue = cfg->plugins[i].mod->name;
        }
    up_reply reply = { 250, "2.0.0", "Ok: not queued (session simulation)",
                       queue };
    up_hook_done done = s->hook_done;
    s->hook_done = NULL;
    s->busy = 0;
    if (queue == NULL)
        up_simulate_trace("queue: no plugin has a queue hook (a server "
                          "answers 451)");
    done(s, queue ? UPESI_OK : UPESI_CONT, &reply);
    return 1;
}

static void chain_step(up_session *s)
{
    const up_config *cfg = s->cfg;
    if (s->hook == UPESI_HOOK_QUEUE && s->hook_next == 0 && up_simulating()
        && simulated_queue(s))
        return;
    while (s->hook_next < cfg->n_plugins) {
        const up_plugin_inst *inst = &cfg->plugins[s->hook_next++];
        upesi_hook_fn fn = inst->mod->desc->hooks[s->hook];
        if (fn == NULL)
            continue;
        struct upesi_call *call = calloc(1, sizeof *call);
        if (call == NULL) {
            up_reply reply = { 451, "4.3.0", "Out of memory", NULL };
            up_hook_done done = s->hook_done;
            s->hook_done = NULL;
            s->busy = 0;
            done(s, UPESI_DENYSOFT, &reply);
            return;
        }
        call->session = s;
        call->ctx = inst->mod;
        call->plugin = inst->mod->name;
        call->settings = inst->settings;
        call->hook = s->hook;
        call->in_handler = 1;
        upesi_verdict v = fn(call);
        call->in_handler = 0;
        if (v == UPESI_PENDING && call->resumed)
            v = call->resumed_verdict;
        if (v == UPESI_PENDING && !hook_is_notification(s->hook)) {
            s->pending = call;
            uv_timer_start(&s->hook_timer, on_hook_timeout,
                           (uint64_t)(cfg->plugin_timeout * 1000), 0);
            return;
        }
        if (chain_verdict(s, call, v))
            return;
    }
    chain_finish(s, UPESI_CONT, NULL);
}

void up_hook_run(up_session *s, upesi_hook hook, up_hook_done done)
{
    s->hook = hook;
    s->hook_next = 0;
    s->hook_done = done;
    s->busy = 1;
    chain_step(s);
}

void up_hook_resume(struct upesi_call *call, upesi_verdict v)
{
    if (call->in_handler) {
        call->resumed = 1;
        call->resumed_verdict = v;
        return;
    }
    up_session *s = call->session;
    if (s == NULL) {            /* abandoned: the late answer is ignored */
        call_free(call);
        return;
    }
    if (s->pending != call)     /* a second resume: ignore */
        return;
    s->pending = NULL;
    uv_timer_stop(&s->hook_timer);
    if (v == UPESI_PENDING)
        v = UPESI_DENYSOFT;
    if (!chain_verdict(s, call, v))
        chain_step(s);
}

void up_hook_cancel(up_session *s)
{
    struct upesi_call *call = s->pending;
    if (call == NULL)
        return;
    s->pending = NULL;
    uv_timer_stop(&s->hook_timer);
    s->hook_done = NULL;
    s->busy = 0;
    cancel_call(call);
}
