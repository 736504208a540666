/*
 * tester.c - a test plugin whose decisions come from its ini file, so the
 * end-to-end tests can drive every verdict, reply, delay and note of the
 * hook dispatch through the real host.
 *
 * tester.ini has one section per hook ([connect], [helo], [mail], [rcpt],
 * [data], [data_post], [queue], [vrfy], [unrecognized], [auth]) with:
 *   match    = text       act only when the address/argument contains it
 *   verdict  = DENY        CONT OK DENY DENYSOFT DENYDISCONNECT
 *                          DENYSOFTDISCONNECT
 *   code     = 550         reply code (0 = the hook's default)
 *   enhanced = 5.7.1
 *   text     = reply text  ("%s" is not expanded)
 *   delay_ms = 100         answer through PENDING + resume after this long
 *   cancel   = 1           register a cancel callback (else a late resume)
 *   note     = key=value   set a transaction note
 *   show_note = key        put that note's value in the reply text
 *   header   = Name: value add a header (data_post)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"

static const upesi_api *api;
static upesi_ctx *tester_ctx;

typedef struct hook_rule {
    int set;
    char match[128];
    upesi_verdict verdict;
    int code;
    char enhanced[16];
    char text[256];
    unsigned delay_ms;
    int cancel;
    char note[128];
    char show_note[64];
    char header[256];
} hook_rule;

typedef struct tester_settings {
    hook_rule rules[UPESI_HOOK_COUNT];
} tester_settings;

static void *tester_config_new(void)
{
    return calloc(1, sizeof(tester_settings));
}

static int parse_verdict(const char *v, upesi_verdict *out)
{
    static const char *const names[] = { "CONT", "OK", "DENY", "DENYSOFT",
                                         "DENYDISCONNECT",
                                         "DENYSOFTDISCONNECT" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcasecmp(v, names[i])) {
            *out = (upesi_verdict)i;
            return 0;
        }
    return -1;
}

static int tester_config_set(void *config, const char *section,
                             const char *key, const char *value, char *err,
                             size_t errlen)
{
    tester_settings *t = config;
    int hook = api->hook_find(section);
    hook_rule *r = hook >= 0 && hook < UPESI_HOOK_COUNT ? &t->rules[hook]
                                                        : NULL;
    if (r == NULL) {
        snprintf(err, errlen, "unknown section [%s]", section);
        return -1;
    }
    r->set = 1;
    if (!strcmp(key, "match"))
        snprintf(r->match, sizeof r->match, "%s", value);
    else if (!strcmp(key, "verdict")) {
        if (parse_verdict(value, &r->verdict) != 0) {
            snprintf(err, errlen, "unknown verdict '%s'", value);
            return -1;
        }
    } else if (!strcmp(key, "code"))
        r->code = atoi(value);
    else if (!strcmp(key, "enhanced"))
        snprintf(r->enhanced, sizeof r->enhanced, "%s", value);
    else if (!strcmp(key, "text"))
        snprintf(r->text, sizeof r->text, "%s", value);
    else if (!strcmp(key, "delay_ms"))
        r->delay_ms = (unsigned)atoi(value);
    else if (!strcmp(key, "cancel"))
        r->cancel = atoi(value);
    else if (!strcmp(key, "note"))
        snprintf(r->note, sizeof r->note, "%s", value);
    else if (!strcmp(key, "show_note"))
        snprintf(r->show_note, sizeof r->show_note, "%s", value);
    else if (!strcmp(key, "header"))
        snprintf(r->header, sizeof r->header, "%s", value);
    else {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -1;
    }
    return 0;
}

static void tester_config_free(void *config)
{
    free(config);
}

/* -- delayed answers */

typedef struct delayed {
    upesi_call *call;
    upesi_timer *timer;
    upesi_verdict verdict;
} delayed;

static void delayed_fire(void *arg)
{
    delayed *d = arg;
    api->resume(d->call, d->verdict); /* harmless if the host gave up */
    free(d);
}

static void delayed_cancel(upesi_call *call, void *arg)
{
    (void)call;
    delayed *d = arg;
    api->log(tester_ctx, UPESI_LOG_INFO, "tester: call cancelled");
    api->timer_stop(d->timer);
    free(d);
}

static upesi_verdict decide(upesi_call *call)
{
    const tester_settings *t = api->config(call);
    const hook_rule *r = &t->rules[api->hook(call)];
    if (!r->set)
        return UPESI_CONT;
    const char *subject = api->address(call);
    if (subject == NULL)
        subject = api->command_line(call);
    if (r->match[0] && (subject == NULL || strstr(subject, r->match) == NULL))
        return UPESI_CONT;
    if (r->note[0]) {
        char key[128];
        snprintf(key, sizeof key, "%s", r->note);
        char *eq = strchr(key, '=');
        if (eq) {
            *eq = '\0';
            api->note_set(call, UPESI_SCOPE_TXN, key, eq + 1);
        }
    }
    if (r->header[0]) {
        char name[256];
        snprintf(name, sizeof name, "%s", r->header);
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = '\0';
            api->header_add(call, name, colon[1] == ' ' ? colon + 2
                                                        : colon + 1);
        }
    }
    if (r->show_note[0]) {
        const char *v = api->note_get(call, UPESI_SCOPE_TXN, r->show_note);
        if (v == NULL)
            v = api->note_get(call, UPESI_SCOPE_CONN, r->show_note);
        api->reply(call, r->code, r->enhanced[0] ? r->enhanced : NULL,
                   "note %s=%s", r->show_note, v ? v : "(none)");
    } else if (r->code || r->text[0]) {
        api->reply(call, r->code, r->enhanced[0] ? r->enhanced : NULL, "%s",
                   r->text[0] ? r->text : "tester");
    }
    if (r->delay_ms) {
        delayed *d = calloc(1, sizeof *d);
        if (d == NULL)
            return UPESI_DENYSOFT;
        d->call = call;
        d->verdict = r->verdict;
        d->timer = api->timer_start(tester_ctx, r->delay_ms, delayed_fire, d);
        if (r->cancel)
            api->on_cancel(call, delayed_cancel, d);
        return UPESI_PENDING;
    }
    return r->verdict;
}

static int tester_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                       size_t errlen)
{
    tester_ctx = ctx;
    (void)err;
    (void)errlen;
    api = host;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "tester",
    .version = "1.0",
    .init = tester_init,
    .config_new = tester_config_new,
    .config_set = tester_config_set,
    .config_free = tester_config_free,
    .hooks = {
        [UPESI_HOOK_CONNECT] = decide, [UPESI_HOOK_HELO] = decide,
        [UPESI_HOOK_MAIL] = decide, [UPESI_HOOK_RCPT] = decide,
        [UPESI_HOOK_DATA] = decide, [UPESI_HOOK_DATA_POST] = decide,
        [UPESI_HOOK_QUEUE] = decide, [UPESI_HOOK_VRFY] = decide,
        [UPESI_HOOK_UNRECOGNIZED] = decide, [UPESI_HOOK_AUTH] = decide,
    },
};
