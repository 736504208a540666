/*
 * mail_rules.c - server mail rules (Domino's "server mail rules", DESIGN.md
 * 6): an ordered list of rules read from a file (rules.c), evaluated at
 * data_post against the envelope and the message (mime.c), whose actions
 * are taken through the host's message-action service
 * (api->message_action): this plugin decides, the host acts.
 *
 * Settings (conf/mail_rules.ini):
 *   file          = mail_rules   the rules file (relative: to the conf dir)
 *   max_body_scan = 1M           decoded body text looked at per message
 *
 * Evaluation reads only what the rules need: a rule set that never looks
 * at the message does not parse it, and the message is parsed at most
 * once per transaction however many rules look at it.
 *
 * Fails: a rules file that cannot be read or parsed fails config_check
 * with "FILE:LINE: message", so startup and -t stop, and a SIGHUP reload
 * is refused as a whole (the old rules stay).  At run time nothing fails
 * the message: an action the host refuses is logged and the rules go on.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/mime_guard.h"
#include "mime.h"
#include "rules.h"
#include "upesi/plugin.h"

#define MR_MAX_FILE (16 * 1024 * 1024)

static const upesi_api *api;
static upesi_ctx *mr_plugin_ctx;

/* ---------------------------------------------------------------------- */
/* settings                                                                */

typedef struct mr_config {
    char *file;                  /* as written, for messages            */
    uint64_t max_body;           /* max_body_scan                       */
    mr_rules *rules;
} mr_config;

static void *mr_config_new(void)
{
    mr_config *cfg = calloc(1, sizeof *cfg); /* max_body: mr_settings */
    if (cfg == NULL)
        return NULL;
    if ((cfg->file = strdup("mail_rules")) == NULL) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

static void mr_config_free(void *config)
{
    mr_config *cfg = config;
    if (cfg == NULL)
        return;
    free(cfg->file);
    mr_rules_free(cfg->rules);
    free(cfg);
}

static int mr_set_file(void *config, const char *value, char *err,
                       size_t errlen)
{
    mr_config *cfg = config;
    char *copy = strdup(value);
    if (copy == NULL || value[0] == '\0') {
        free(copy);
        snprintf(err, errlen, "needs a file name");
        return -1;
    }
    free(cfg->file);
    cfg->file = copy;
    return 0;
}

static const upesi_setting mr_settings[] = {
    { "file", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL, mr_set_file, "mail_rules",
      "the rules file; relative to the configuration directory, or "
      "absolute" },
    { "max_body_scan", UPESI_SETTING_SIZE, offsetof(mr_config, max_body), 0,
      64.0 * 1024 * 1024, NULL, NULL, "1M", "decoded body text looked at "
      "per message (`body`, `body_or_subject`)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static int mr_config_check(void *config, char *err, size_t errlen)
{
    mr_config *cfg = config;
    char *path = api->config_path(mr_plugin_ctx, cfg->file);
    if (path == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s:0: cannot open: %s", cfg->file,
                 strerror(errno));
        api->free(path);
        return -1;
    }
    api->free(path);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    if (size < 0 || size > MR_MAX_FILE)
        size = MR_MAX_FILE;
    char *text = malloc((size_t)size + 2);
    size_t len = text ? fread(text, 1, (size_t)size + 1, f) : 0;
    int bad = text == NULL || ferror(f);
    fclose(f);
    if (bad || len > MR_MAX_FILE) {
        snprintf(err, errlen, "%s:0: %s", cfg->file,
                 bad ? "cannot read" : "larger than 16 MB");
        free(text);
        return -1;
    }
    cfg->rules = mr_rules_parse(text, len, cfg->file, err, errlen);
    free(text);
    return cfg->rules ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* what the rules look at, gathered once per message on first use         */

typedef struct mr_ctx {
    upesi_call *call;
    const mr_config *cfg;
    int have_mime;
    mr_mime mime;
    int built[MR_F_COUNT];
    mr_strv values[MR_F_COUNT];  /* per text field, folded              */
    long long numbers[MR_F_COUNT];
    unsigned char no_number[MR_F_COUNT];  /* no value: no condition holds */
    int oom;
} mr_ctx;

static const mr_mime *ctx_mime(mr_ctx *c)
{
    if (!c->have_mime) {
        c->have_mime = 1;
        int headers_only;
        off_t end = mr_message_parse_end(api, c->call, &headers_only);
        GMimeStream *stream = end > 0
            ? mr_message_stream_headers(api, c->call, end)
            : mr_message_stream_new(api, c->call);
        if (headers_only == 1)
            api->log_call(c->call, UPESI_LOG_NOTICE, "message %s has more than "
                     "%d multipart parts: rules see its headers only",
                     api->queue_id(c->call), MR_MAX_MULTIPARTS);
        else if (headers_only == 2)
            api->log_call(c->call, UPESI_LOG_NOTICE, "message %s has a header "
                     "section longer than %dK: rules see the fields before "
                     "that, not the body", api->queue_id(c->call),
                     MIME_GUARD_MAX_HEADER / 1024);
        else if (end > 0)
            api->log_call(c->call, UPESI_LOG_NOTICE, "message %s has more than "
                     "%d lines beginning with \"--\": rules see the MIME "
                     "parts before them", api->queue_id(c->call),
                     MIME_GUARD_MAX_LINES);
        if (mr_mime_walk(stream, (size_t)c->cfg->max_body, &c->mime) != 0)
            c->oom = 1;
        g_object_unref(stream);
    }
    return &c->mime;
}

static void add(mr_ctx *c, mr_strv *v, const char *s)
{
    if (mr_strv_add(v, s) != 0)
        c->oom = 1;
}

/* values of the walk: folded already */
static void add_folded(mr_ctx *c, mr_strv *v, const char *s)
{
    if (mr_strv_add_folded(v, s) != 0)
        c->oom = 1;
}

static void add_all(mr_ctx *c, mr_strv *v, const mr_strv *from)
{
    for (size_t i = 0; i < from->n; i++)
        add_folded(c, v, from->v[i]);
}

/* An address, and when its domain is an IDN in U-labels (SMTPUTF8) the
 * same address with the domain's A-labels too, so that a rule naming the
 * domain as an A-label matches either form (api->domain_to_ascii). */
static void add_addr(mr_ctx *c, mr_strv *v, const char *addr)
{
    add(c, v, addr);
    const char *at = strrchr(addr, '@');
    if (at == NULL || !UPESI_API_SUPPORTED(api, domain_to_ascii))
        return;
    int eight = 0;
    for (const char *p = at + 1; *p; p++)
        eight |= (unsigned char)*p >= 0x80;
    char alabels[300], both[600];
    if (eight && api->domain_to_ascii(at + 1, alabels, sizeof alabels) == 0) {
        snprintf(both, sizeof both, "%.*s@%s", (int)(at - addr), addr,
                 alabels);
        add(c, v, both);
    }
}

static void build_senders(mr_ctx *c, mr_strv *v)
{
    const char *sender = api->sender(c->call);
    if (sender && *sender)
        add_addr(c, v, sender);
    add_all(c, v, &ctx_mime(c)->from);
}

static void build_values(mr_ctx *c, mr_field f)
{
    mr_strv *v = &c->values[f];
    const mr_mime *m;
    switch (f) {
    case MR_F_SENDER:
        build_senders(c, v);
        break;
    case MR_F_SUBJECT:
        m = ctx_mime(c);
        add_folded(c, v, m->subject ? m->subject : "");
        break;
    case MR_F_BODY:
        m = ctx_mime(c);
        add_folded(c, v, m->body ? m->body : "");
        break;
    case MR_F_BODY_OR_SUBJECT:
        m = ctx_mime(c);
        add_folded(c, v, m->subject ? m->subject : "");
        add_folded(c, v, m->body ? m->body : "");
        break;
    case MR_F_IMPORTANCE:
        add_folded(c, v, ctx_mime(c)->importance);
        break;
    case MR_F_DELIVERY_PRIORITY:
        add_folded(c, v, ctx_mime(c)->priority);
        break;
    case MR_F_TO:
        add_all(c, v, &ctx_mime(c)->to);
        break;
    case MR_F_CC:
        add_all(c, v, &ctx_mime(c)->cc);
        break;
    case MR_F_TO_OR_CC:
        add_all(c, v, &ctx_mime(c)->to);
        add_all(c, v, &ctx_mime(c)->cc);
        break;
    case MR_F_BCC: {
        const mr_strv *seen = &ctx_mime(c)->to_cc_addrs;
        size_t n = api->rcpt_count(c->call);
        for (size_t i = 0; i < n; i++) {
            char *r = mr_fold(api->rcpt(c->call, i),
                              strlen(api->rcpt(c->call, i)));
            int listed = r == NULL;
            for (size_t j = 0; r && j < seen->n && !listed; j++)
                listed = !strcmp(seen->v[j], r);
            if (!listed)
                add_folded(c, v, r);
            free(r);
        }
        break;
    }
    case MR_F_ANY_RECIPIENT: {
        size_t n = api->rcpt_count(c->call);
        for (size_t i = 0; i < n; i++)
            add_addr(c, v, api->rcpt(c->call, i));
        break;
    }
    case MR_F_INTERNET_DOMAIN: {
        mr_strv senders = { 0 };
        build_senders(c, &senders);
        for (size_t i = 0; i < senders.n; i++) {
            const char *at = strrchr(senders.v[i], '@');
            if (at && at[1])
                add_folded(c, v, at + 1);
        }
        mr_strv_free(&senders);
        break;
    }
    case MR_F_ATTACHMENT_NAME:
        add_all(c, v, &ctx_mime(c)->attachments);
        break;
    case MR_F_BLACKLIST_TAG:
    case MR_F_WHITELIST_TAG: {
        int bl = f == MR_F_BLACKLIST_TAG;
        const char *tag = api->note_get(c->call, UPESI_SCOPE_TXN,
                                        bl ? "dnsbl.site" : "dnswl.site");
        if (tag == NULL)
            tag = api->note_get(c->call, UPESI_SCOPE_CONN,
                                bl ? "dnsbl.tag" : "dnswl.tag");
        if (tag && *tag)
            add(c, v, tag);
        break;
    }
    case MR_F_BAYES_CLASS: {
        const char *cls = api->note_get(c->call, UPESI_SCOPE_TXN,
                                        "bayes.class");
        if (cls && *cls)
            add(c, v, cls);
        break;
    }
    case MR_F_BAYES_PROBABILITY: {
        /* no verdict (bayes not run, or under min_learns): no number */
        const char *p = api->note_get(c->call, UPESI_SCOPE_TXN, "bayes.prob");
        if (p && *p)
            c->numbers[f] = (long long)(strtod(p, NULL) * 10000.0 + 0.5);
        else
            c->no_number[f] = 1;
        break;
    }
    case MR_F_SIZE:
        c->numbers[f] = (long long)api->message_size(c->call);
        break;
    case MR_F_ATTACHMENT_COUNT:
        c->numbers[f] = (long long)ctx_mime(c)->attachment_count;
        break;
    case MR_F_RECIPIENT_COUNT:
        c->numbers[f] = (long long)api->rcpt_count(c->call);
        break;
    case MR_F_KARMA_SCORE:
    case MR_F_DNS_SCORE:
        c->numbers[f] = api->note_get_int(c->call, UPESI_SCOPE_CONN,
                                          f == MR_F_KARMA_SCORE
                                              ? "karma.score" : "dns.score",
                                          0);
        break;
    default:
        break;
    }
}

static int text_hit(mr_op op, const char *value, const char *needle)
{
    if (op == MR_OP_CONTAINS || op == MR_OP_NOT_CONTAINS)
        return strstr(value, needle) != NULL;
    return strcmp(value, needle) == 0;
}

/* A condition on a list of values: contains / is when any value does;
 * not contains / is not when none does. */
static int list_match(mr_op op, const mr_strv *v, const char *needle)
{
    int any = 0;
    for (size_t i = 0; i < v->n && !any; i++)
        any = text_hit(op, v->v[i], needle);
    return op == MR_OP_NOT_CONTAINS || op == MR_OP_IS_NOT ? !any : any;
}

static int header_match(mr_ctx *c, const mr_expr *e)
{
    const mr_mime *m = ctx_mime(c);
    int any = 0;
    for (size_t i = 0; i < m->header_names.n && !any; i++)
        if (!strcmp(m->header_names.v[i], e->header))
            any = text_hit(e->op, m->header_values.v[i], e->text);
    return e->op == MR_OP_NOT_CONTAINS || e->op == MR_OP_IS_NOT ? !any : any;
}

static int eval(mr_ctx *c, const mr_expr *e)
{
    switch (e->kind) {
    case MR_E_AND:
        return eval(c, e->a) && eval(c, e->b);
    case MR_E_OR:
        return eval(c, e->a) || eval(c, e->b);
    case MR_E_NOT:
        return !eval(c, e->a);
    case MR_E_COND:
        break;
    }
    if (e->field == MR_F_ALL)
        return 1;
    if (e->field == MR_F_HEADER)
        return header_match(c, e);
    if (!c->built[e->field]) {
        c->built[e->field] = 1;
        build_values(c, e->field);
    }
    if (!mr_field_is_number(e->field))
        return list_match(e->op, &c->values[e->field], e->text);
    if (c->no_number[e->field])
        return 0;
    long long n = c->numbers[e->field];
    switch (e->op) {
    case MR_OP_IS:
        return n == e->number;
    case MR_OP_IS_NOT:
        return n != e->number;
    case MR_OP_LESS:
        return n < e->number;
    case MR_OP_GREATER:
        return n > e->number;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------- */
/* the data_post hook                                                      */

static const upesi_action host_action[MR_A_COUNT] = {
    [MR_A_QUARANTINE] = UPESI_ACTION_QUARANTINE,
    [MR_A_JOURNAL] = UPESI_ACTION_JOURNAL,
    [MR_A_REJECT] = UPESI_ACTION_REJECT,
    [MR_A_DROP] = UPESI_ACTION_DROP,
    [MR_A_HOLD] = UPESI_ACTION_HOLD,
    [MR_A_COPY_TO] = UPESI_ACTION_COPY_TO,
    [MR_A_TAG] = UPESI_ACTION_TAG,
};

/* Take a matching rule's actions; 1 when no later rule may run. */
static int run_actions(mr_ctx *c, const mr_rule *r)
{
    char done[512];
    size_t used = 0;
    int stop = 0;
    done[0] = '\0';
    for (size_t i = 0; i < r->n_actions; i++) {
        const mr_action *a = &r->actions[i];
        api->stat_add(mr_plugin_ctx, mr_action_stat(a->kind), 1);
        int n = snprintf(done + used, sizeof done - used, "%s%s",
                         used ? ", " : "", mr_action_name(a->kind));
        if (n > 0 && (size_t)n < sizeof done - used)
            used += (size_t)n;
        if (a->kind == MR_A_STOP) {
            stop = 1;
            continue;
        }
        if (a->kind == MR_A_VOTE) {
            /* the bayes plugin learns it when the transaction ends */
            api->note_set(c->call, UPESI_SCOPE_TXN, "bayes.vote", a->arg);
            continue;
        }
        char reason[300];
        const char *arg = a->arg;
        if (arg == NULL && a->kind != MR_A_REJECT) {
            snprintf(reason, sizeof reason, "rule \"%s\"", r->name);
            arg = reason;
        }
        int rc = api->message_action(c->call, host_action[a->kind], arg);
        if (rc < 0)
            api->log_call(c->call, UPESI_LOG_WARNING, "rule \"%s\": %s%s%s%s "
                     "refused by the host: %s", r->name,
                     mr_action_name(a->kind), a->arg ? " \"" : "",
                     a->arg ? a->arg : "", a->arg ? "\"" : "",
                     strerror(-rc));
        if (a->kind == MR_A_REJECT)
            stop = 1;           /* the message is refused: nothing more */
    }
    api->log_call(c->call, UPESI_LOG_INFO, "rule \"%s\" matched message %s: %s",
             r->name, api->queue_id(c->call), done);
    return stop;
}

static upesi_verdict mr_data_post(upesi_call *call)
{
    const mr_config *cfg = api->config(call);
    if (cfg == NULL || cfg->rules == NULL || cfg->rules->n == 0)
        return UPESI_CONT;
    mr_ctx c = { .call = call, .cfg = cfg };
    for (size_t i = 0; i < cfg->rules->n; i++) {
        const mr_rule *r = &cfg->rules->rules[i];
        if (!eval(&c, r->when) || (r->unless && eval(&c, r->unless)))
            continue;
        api->stat_add(mr_plugin_ctx, r->stat, 1);
        if (run_actions(&c, r))
            break;
    }
    if (c.oom)
        api->log_call(call, UPESI_LOG_WARNING, "out of memory while reading "
                 "message %s: rules saw part of it", api->queue_id(call));
    if (c.have_mime)
        mr_mime_free(&c.mime);
    for (int f = 0; f < MR_F_COUNT; f++)
        mr_strv_free(&c.values[f]);
    return UPESI_CONT;
}

/* ---------------------------------------------------------------------- */

static int mr_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                   size_t errlen)
{
    mr_plugin_ctx = ctx;
    (void)err;
    (void)errlen;
    api = host;
    g_mime_init();
    return 0;
}

static void mr_fini(void)
{
    g_mime_shutdown();
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "mail_rules",
    .version = "1.0",
    .init = mr_init,
    .fini = mr_fini,
    .config_new = mr_config_new,
    .settings = mr_settings,
    .config_check = mr_config_check,
    .config_free = mr_config_free,
    .hooks = {
        [UPESI_HOOK_DATA_POST] = mr_data_post,
    },
};
