/*
 * envelope.c - the text envelope of a spool file (docs/spool-format.md):
 * one "Key: value" line per field, always all of them, in a fixed order,
 * then an empty line.  One builder for every file in that format: the
 * message actions (quarantine, journal, hold, copy), and through the ABI
 * (api->spool_envelope) queue_spool and queue_forward.  It takes plain
 * fields, not a session, so that a unit test's fake host uses it too.
 *
 * Fails: a value with CR or LF is refused (-EINVAL, the field named), so
 * that no HELO name or address can forge a line; -ENOMEM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "smtp_ext.h"

/* The parameters of a packed string as one line's value into buf ("" when
 * none or not packed).  -EINVAL when they do not fit (they cannot: each
 * parameter is bounded by the parser). */
static int env_params(const up_envelope *e, const char *packed, char *buf,
                      size_t len)
{
    buf[0] = '\0';
    if (!e->packed || packed == NULL)
        return 0;
    return up_packed_format(packed, buf, len) < 0 ? -EINVAL : 0;
}

static int env_line(FILE *f, const char *key, const char *value)
{
    if (value == NULL)
        value = "";
    if (strpbrk(value, "\r\n"))
        return -EINVAL;
    return fprintf(f, "%s: %s\n", key, value) < 0 ? -ENOMEM : 0;
}

int up_envelope_build(const up_envelope *e, char **out, size_t *out_len,
                      const char **bad_key)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return -ENOMEM;
    const upesi_conn_info *c = e->conn;
    char arrival[32], port[16], tls[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(arrival, sizeof arrival, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(port, sizeof port, "%d", c->remote_port);
    if (c->tls)
        snprintf(tls, sizeof tls, "%s %s",
                 c->tls_version ? c->tls_version : "unknown",
                 c->tls_cipher ? c->tls_cipher : "unknown");
    else
        snprintf(tls, sizeof tls, "none");
    /* version 2 only when there is something version 1 cannot say, so
     * that readers of version 1 keep reading every other message */
    char params[8192];
    int v2 = 0;
    if (env_params(e, e->sender, params, sizeof params) < 0)
        goto too_long;
    v2 |= params[0] != '\0';
    for (size_t i = 0; !v2 && i < e->n_rcpts; i++) {
        if (env_params(e, e->rcpts[i], params, sizeof params) < 0)
            goto too_long;
        v2 |= params[0] != '\0';
    }
    struct { const char *key, *value; } lines[] = {
        { "Upesi-Spool", v2 ? "2" : "1" },
        { "Queue-Id", e->queue_id },
        { "Arrival", arrival },
        { "Client-IP", c->remote_ip },
        { "Client-Port", port },
        { "Client-Name", e->client_name && e->client_name[0]
                             ? e->client_name : "unknown" },
        { "Helo", c->helo },
        { "Protocol", c->esmtp ? (c->tls ? "ESMTPS" : "ESMTP")
                               : (c->tls ? "SMTPS" : "SMTP") },
        { "TLS", tls },
        { "Auth", c->authenticated && c->auth_user ? c->auth_user : "none" },
        { "Sender", e->sender && e->sender[0] ? e->sender : "<>" },
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof lines / sizeof *lines; i++)
        if ((rc = env_line(f, lines[i].key, lines[i].value)) == -EINVAL)
            *bad_key = lines[i].key;
    if (rc == 0 && env_params(e, e->sender, params, sizeof params) == 0 &&
        params[0] && (rc = env_line(f, "Mail-Params", params)) == -EINVAL)
        *bad_key = "Mail-Params";
    for (size_t i = 0; rc == 0 && i < e->n_rcpts; i++) {
        if ((rc = env_line(f, "Recipient", e->rcpts[i])) == -EINVAL)
            *bad_key = "Recipient";
        else if (env_params(e, e->rcpts[i], params, sizeof params) == 0 &&
                 params[0] &&
                 (rc = env_line(f, "Rcpt-Params", params)) == -EINVAL)
            *bad_key = "Rcpt-Params";
    }
    fputc('\n', f);
    if (fclose(f) != 0 && rc == 0)
        rc = -ENOMEM;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
too_long:
    fclose(f);
    free(buf);
    *bad_key = "Mail-Params";
    return -EINVAL;
}
