/*
 * strict821.c - RFC 821 strictness, Domino's SMTPStrict821AddressSyntax,
 * SMTPStrict821LineSyntax and SMTPNonStandardLineTermination (DESIGN.md 6,
 * docs/plugins/strict821.md).
 *
 * The host is lenient: it reads a command ended by CRLF, bare LF or bare CR,
 * and takes MAIL FROM/RCPT TO with or without <> and with a space after the
 * colon.  It records what it saw (api->line_end, api->command_line, the
 * transaction note "data.bare_line_ends"); this plugin decides.
 *
 * conf/strict821.ini:
 *   address_syntax = 0|1   1: "MAIL FROM:<path>" and "RCPT TO:<path>" to the
 *                          letter: one space after the verb, no space after
 *                          the colon, the path in <>, no blank inside it,
 *                          parameters after one space.  Else 501 5.1.7
 *                          (MAIL) or 501 5.1.3 (RCPT).
 *   line_syntax = 0|1      1: every command must end with CRLF (else
 *                          500 5.5.2), and a message whose data held a bare
 *                          CR or LF is refused at the end of data with
 *                          550 5.6.0.
 *   nonstandard_line_termination = 1|0
 *                          1 (default): bare CR or LF accepted as line ends.
 *                          0: refused, exactly as line_syntax = 1.
 * Domino has two names for "CRLF only"; either one set that way demands it.
 *
 * Checked commands are those with a hook: HELO/EHLO, MAIL, RCPT, DATA, VRFY
 * (when the host's vrfy = 1) and unrecognized ones.  RSET, NOOP, QUIT and
 * HELP have no hook and are not checked.  In DATA a bare CR or
 * LF never ends the data: the host only ends it at CRLF.CRLF.
 *
 * Fails: never; every refusal is a reply.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upesi/plugin.h"

static const upesi_api *s821_api;
static upesi_ctx *s821_ctx;

typedef struct s821_config {
    int address_syntax;
    int line_syntax;
    int nonstandard_line_termination;
} s821_config;

/* ---------------------------------------------------------------------- */
/* settings                                                               */

static void *s821_config_new(void)
{
    return calloc(1, sizeof(s821_config));  /* defaults: s821_settings */
}

static void s821_config_free(void *config)
{
    free(config);
}

#define S821(field) offsetof(s821_config, field)
static const upesi_setting s821_settings[] = {
    { "address_syntax", UPESI_SETTING_BOOL, S821(address_syntax), 0, 0,
      NULL, NULL, "0", "on: `MAIL FROM:<path>` and `RCPT TO:<path>` to the "
      "letter (SMTPStrict821AddressSyntax)" },
    { "line_syntax", UPESI_SETTING_BOOL, S821(line_syntax), 0, 0, NULL,
      NULL, "0", "on: CRLF only, for commands and message data "
      "(SMTPStrict821LineSyntax)" },
    { "nonstandard_line_termination", UPESI_SETTING_BOOL,
      S821(nonstandard_line_termination), 0, 0, NULL, NULL, "1",
      "off: CRLF only, exactly as `line_syntax` on "
      "(SMTPNonStandardLineTermination)" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};
#undef S821

static int s821_crlf_required(const s821_config *cfg)
{
    return cfg->line_syntax || !cfg->nonstandard_line_termination;
}

/* ---------------------------------------------------------------------- */
/* line ends                                                              */

/* CONT, or DENY 500 5.5.2 for a command that did not end with CRLF. */
static upesi_verdict s821_check_line_end(upesi_call *call,
                                         const s821_config *cfg)
{
    if (!s821_crlf_required(cfg))
        return UPESI_CONT;
    upesi_line_end end = s821_api->line_end(call);
    if (end == UPESI_LINE_CRLF)
        return UPESI_CONT;
    const char *what = end == UPESI_LINE_LF ? "bare LF" : "bare CR";
    s821_api->stat_add(s821_ctx, "SMTP.Strict821.LineSyntax", 1);
    s821_api->log_call(call, UPESI_LOG_INFO, "command ended by %s refused (%s)",
                  what, cfg->line_syntax ? "line_syntax = 1"
                                         : "nonstandard_line_termination = 0");
    s821_api->reply(call, 500, "5.5.2", "Syntax error: command line ended "
                    "by %s; RFC 5321 requires CRLF", what);
    return UPESI_DENY;
}

/* ---------------------------------------------------------------------- */
/* address syntax                                                         */

/* Is line "VERB KEYWORD:<path>[ params]" to the letter?  keyword is "FROM"
 * or "TO".  Returns NULL when it is, else what is wrong. */
static const char *s821_path_problem(const char *line, const char *keyword)
{
    size_t klen = strlen(keyword);
    /* the verb (four letters) and exactly one space */
    if (strlen(line) < 5 || line[4] != ' ')
        return "one space must separate the command from its argument";
    const char *p = line + 5;
    if (strncasecmp(p, keyword, klen) != 0 || p[klen] != ':')
        return keyword[0] == 'F' ? "expected FROM:<address>"
                                 : "expected TO:<address>";
    p += klen + 1;
    if (*p == ' ' || *p == '\t')
        return "no space is allowed after the colon";
    if (*p != '<')
        return "the address must be enclosed in <>";
    p++;
    int quoted = 0;
    for (; *p; p++) {
        if (quoted) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                quoted = 0;
            continue;
        }
        if (*p == '"')
            quoted = 1;
        else if (*p == '>')
            break;
        else if (*p == ' ' || *p == '\t')
            return "no space is allowed inside <>";
        else if (*p == '<')
            return "the address must be enclosed in one pair of <>";
    }
    if (*p != '>')
        return "the address must be enclosed in <>";
    p++;
    if (*p == '\0')
        return NULL;
    if (*p != ' ' || p[1] == ' ' || p[1] == '\0')
        return "parameters must follow the address after one space";
    return NULL;
}

static upesi_verdict s821_check_path(upesi_call *call, const s821_config *cfg,
                                     int is_rcpt)
{
    if (!cfg->address_syntax)
        return UPESI_CONT;
    const char *line = s821_api->command_line(call);
    if (line == NULL)
        return UPESI_CONT;
    const char *why = s821_path_problem(line, is_rcpt ? "TO" : "FROM");
    if (why == NULL)
        return UPESI_CONT;
    s821_api->stat_add(s821_ctx, "SMTP.Strict821.AddressSyntax", 1);
    s821_api->log_call(call, UPESI_LOG_INFO, "%s refused (address_syntax = 1): "
                  "%s", is_rcpt ? "RCPT" : "MAIL", why);
    if (is_rcpt)
        s821_api->reply(call, 501, "5.1.3", "Bad recipient address syntax: "
                        "%s (RCPT TO:<address>)", why);
    else
        s821_api->reply(call, 501, "5.1.7", "Bad sender address syntax: %s "
                        "(MAIL FROM:<address>)", why);
    return UPESI_DENY;
}

/* ---------------------------------------------------------------------- */
/* hooks                                                                  */

static upesi_verdict s821_command(upesi_call *call)
{
    const s821_config *cfg = s821_api->config(call);
    return cfg ? s821_check_line_end(call, cfg) : UPESI_CONT;
}

static upesi_verdict s821_mail(upesi_call *call)
{
    const s821_config *cfg = s821_api->config(call);
    if (cfg == NULL)
        return UPESI_CONT;
    upesi_verdict v = s821_check_line_end(call, cfg);
    return v != UPESI_CONT ? v : s821_check_path(call, cfg, 0);
}

static upesi_verdict s821_rcpt(upesi_call *call)
{
    const s821_config *cfg = s821_api->config(call);
    if (cfg == NULL)
        return UPESI_CONT;
    upesi_verdict v = s821_check_line_end(call, cfg);
    return v != UPESI_CONT ? v : s821_check_path(call, cfg, 1);
}

/* The data held bare CR or LF (the host stored them as CRLF and says so in
 * a note).  550 5.6.0, like sendmail's "Bare linefeed (LF) not allowed":
 * 5.6.x is "media", and the damage is to the content, not to the
 * envelope.  550 rather than sendmail's 553, which RFC 5321 keeps for
 * mailbox names. */
static upesi_verdict s821_data_post(upesi_call *call)
{
    const s821_config *cfg = s821_api->config(call);
    if (cfg == NULL || !s821_crlf_required(cfg))
        return UPESI_CONT;
    const char *bare = s821_api->note_get(call, UPESI_SCOPE_TXN,
                                          "data.bare_line_ends");
    if (bare == NULL || strcmp(bare, "1") != 0)
        return UPESI_CONT;
    s821_api->stat_add(s821_ctx, "SMTP.Strict821.BareLineEnds", 1);
    s821_api->log_call(call, UPESI_LOG_INFO, "message refused: bare CR or LF in "
                  "the data (%s)", cfg->line_syntax ? "line_syntax = 1"
                  : "nonstandard_line_termination = 0");
    s821_api->reply(call, 550, "5.6.0", "Message refused: bare CR or LF "
                    "line ends in the data; RFC 5321 requires CRLF");
    return UPESI_DENY;
}

static int s821_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                     size_t errlen)
{
    s821_ctx = ctx;
    (void)err;
    (void)errlen;
    s821_api = api;
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "strict821",
    .version = "1.0",
    .init = s821_init,
    .config_new = s821_config_new,
    .settings = s821_settings,
    .config_free = s821_config_free,
    .hooks = {
        [UPESI_HOOK_HELO] = s821_command,
        [UPESI_HOOK_MAIL] = s821_mail,
        [UPESI_HOOK_RCPT] = s821_rcpt,
        [UPESI_HOOK_DATA] = s821_command,
        [UPESI_HOOK_DATA_POST] = s821_data_post,
        [UPESI_HOOK_VRFY] = s821_command,
        [UPESI_HOOK_UNRECOGNIZED] = s821_command,
    },
};
