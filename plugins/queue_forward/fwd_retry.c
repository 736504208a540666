/*
 * fwd_retry.c - the retry state of a queued message: deferred/<id>
 * beside it, a few "Name: value" lines (attempts, last and next attempt
 * in ms since the epoch, whether the delay DSN went out, the last
 * error).  The scan skips a message whose
 * next attempt has not come; the backoff (retry_min doubling up to
 * retry_max) is set when a delivery ends (fwd_delivery.c).
 *
 * Fails: quietly.  The state is written to a temporary file and renamed,
 * without fsync: losing it (or failing to write it) only means an earlier
 * retry, and a file that cannot be read counts as no state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fwd_queue.h"

int fwd_state_read(const char *spool, const char *id, fwd_state *st)
{
    memset(st, 0, sizeof *st);
    char path[4200];
    snprintf(path, sizeof path, "%s/deferred/%s", spool, id);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[700];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "Attempts: ", 10))
            st->attempts = atol(line + 10);
        else if (!strncmp(line, "Last-Attempt: ", 14))
            st->last_ms = atoll(line + 14);
        else if (!strncmp(line, "Next-Attempt: ", 14))
            st->next_ms = atoll(line + 14);
        else if (!strncmp(line, "Delay-Notified: ", 16))
            st->delay_notified = atoi(line + 16);
        else if (!strncmp(line, "Last-Error: ", 12))
            snprintf(st->error, sizeof st->error, "%s", line + 12);
    }
    fclose(f);
    return 0;
}

void fwd_state_write(const char *spool, const char *id,
                     const fwd_state *st)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/deferred/%s", spool, id);
    snprintf(tmp, sizeof tmp, "%s/deferred/.%s.%d", spool, id, (int)getpid());
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return;
    char err[512];
    snprintf(err, sizeof err, "%s", st->error);
    for (char *p = err; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    fprintf(f, "Attempts: %ld\nLast-Attempt: %lld\nNext-Attempt: %lld\n"
               "Delay-Notified: %d\nLast-Error: %s\n", st->attempts,
            st->last_ms, st->next_ms, st->delay_notified, err);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

void fwd_state_remove(const char *spool, const char *id)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/deferred/%s", spool, id);
    unlink(path);
}
