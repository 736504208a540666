/*
 * log.c - the host's log: one line per event on stderr, and the same text
 * to syslog (facility mail) when smtp.ini says log_syslog = 1.
 *
 *   2026-11-23T17:41:48Z upesi[1234] INFO s3f2a1: connect 127.0.0.1:40112
 *
 * Log lines quote what clients send, so every byte below 0x20 and 0x7f in
 * the session id and the message is written as \xNN: a client cannot forge
 * a line or drive a terminal.  Each line goes out in one write(2), so lines
 * from workers sharing stderr and from pool threads do not interleave.
 *
 * Fails: never.  A message longer than UP_LOG_MSG_MAX is cut and ends in
 * "..."; a failed write to stderr is ignored (there is nowhere to report
 * it).  up_fatal logs at CRIT, whatever the level filter, and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Longest message kept, before escaping; a line holds it escaped 4x. */
#define UP_LOG_MSG_MAX 4096
#define UP_LOG_LINE_MAX (UP_LOG_MSG_MAX * 4 + 256)

static char log_ident[32] = "upesi";
static int log_level = UPESI_LOG_INFO;
static int log_syslog;

static const char *const log_level_names[] = {
    "EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"
};

void up_log_init(const char *ident, int level, int use_syslog)
{
    if (ident != NULL && *ident != '\0')
        snprintf(log_ident, sizeof log_ident, "%s", ident);
    log_level = level;
    if (log_syslog)
        closelog();
    log_syslog = use_syslog;
    /* openlog keeps the pointer: log_ident is static for that reason. */
    if (use_syslog)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void up_log_set_level(int level)
{
    log_level = level;
}

int up_log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        { "crit", UPESI_LOG_CRIT }, { "critical", UPESI_LOG_CRIT },
        { "err", UPESI_LOG_ERR }, { "error", UPESI_LOG_ERR },
        { "warning", UPESI_LOG_WARNING }, { "warn", UPESI_LOG_WARNING },
        { "notice", UPESI_LOG_NOTICE }, { "info", UPESI_LOG_INFO },
        { "debug", UPESI_LOG_DEBUG },
    };
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].level;
    /* syslog's numbers, as some admins write them */
    if (name[0] >= '0' + UPESI_LOG_CRIT && name[0] <= '0' + UPESI_LOG_DEBUG &&
        name[1] == '\0')
        return name[0] - '0';
    return -1;
}

/* Append src to buf[*len .. cap) with control bytes as \xNN; stops short
 * rather than split an escape.  Returns 0 if all of src fitted. */
static int log_escape(char *buf, size_t *len, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = *len;
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            if (n + 4 > cap) {
                rc = -1;
                break;
            }
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        } else {
            if (n + 1 > cap) {
                rc = -1;
                break;
            }
            buf[n++] = (char)*p;
        }
    }
    *len = n;
    return rc;
}

static void log_write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

static void log_emit(const char *sid, int level, const char *fmt, va_list ap)
{
    int saved_errno = errno;    /* callers log strerror(errno) after us */
    char msg[UP_LOG_MSG_MAX];
    char line[UP_LOG_LINE_MAX];
    const char *label = level >= 0 && level <= UPESI_LOG_DEBUG
                            ? log_level_names[level] : "DEBUG";

    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    if (m < 0)
        snprintf(msg, sizeof msg, "(unprintable log message: %s)", fmt);
    else if ((size_t)m >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4);

    /* time and pid at each call: workers fork after up_log_init */
    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(stamp, sizeof stamp, "%lld", (long long)now);

    int head = snprintf(line, sizeof line, "%s %s[%ld] ", stamp, log_ident,
                        (long)getpid());
    size_t len = head > 0 ? (size_t)head : 0;
    /* the text syslog gets: what follows "ident[pid] " */
    size_t text_start = len;
    size_t cap = sizeof line - 2;       /* room for '\n' and '\0' */
    int cut = log_escape(line, &len, cap, label);
    if (!cut && len < cap)
        line[len++] = ' ';
    if (!cut && sid != NULL) {
        cut = log_escape(line, &len, cap, sid);
        if (!cut && len + 2 <= cap) {
            line[len++] = ':';
            line[len++] = ' ';
        }
    }
    if (!cut && log_escape(line, &len, cap, msg) != 0 && len >= 3)
        memcpy(line + len - 3, "...", 3);
    line[len] = '\n';
    log_write_all(line, len + 1);

    if (log_syslog) {
        line[len] = '\0';
        int prio = level >= 0 && level <= LOG_DEBUG ? level : LOG_DEBUG;
        syslog(prio, "%s", line + text_start);
    }
    errno = saved_errno;
}

void up_vlog(const char *sid, int level, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    log_emit(sid, level, fmt, ap);
}

void up_log(const char *sid, int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(sid, level, fmt, ap);
    va_end(ap);
}

void up_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(NULL, UPESI_LOG_CRIT, fmt, ap);
    va_end(ap);
    exit(1);
}
