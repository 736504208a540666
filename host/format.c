/*
 * format.c - small texts the host formats many times a second: the
 * RFC 5322 date of greetings and Received fields, session and queue ids,
 * and strings joined into a buffer (replies, Received).  By hand where
 * snprintf or strftime would cost more than the rest of a greeting.
 *
 * Fails: never; a buffer too small gets the text cut and terminated.
 * Loop thread only (the date and the queue id counter are static).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "format.h"

/* The date of the greeting and the Received field.  Formatted once a
 * second: localtime_r and strftime cost more than the rest of a greeting.
 * Only the loop thread calls it. */
void up_rfc5322_date(char *buf, size_t len)
{
    static time_t cached_at = (time_t)-1;
    static char cached[64];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        localtime_r(&now, &tm);
        if (strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S %z",
                     &tm) == 0)
            cached[0] = '\0';
        cached_at = now;
    }
    size_t n = strlen(cached);
    if (len == 0)
        return;
    if (n >= len)
        n = len - 1;
    memcpy(buf, cached, n);
    buf[n] = '\0';
}

/* Append the n low hex digits of v (upper case). */
static char *put_hex(char *o, unsigned long v, int n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int i = n - 1; i >= 0; i--)
        o[i] = hex[(v >> (4 * (n - 1 - i))) & 15];
    return o + n;
}

/* Join the strings of a NULL-terminated list into buf, cut to fit and
 * always terminated; returns the length.  The per-message replies and the
 * Received field are built with it: snprintf cost more than the rest. */
size_t up_str_join(char *buf, size_t size, ...)
{
    va_list ap;
    size_t len = 0;
    const char *part;
    if (size == 0)
        return 0;
    va_start(ap, size);
    while ((part = va_arg(ap, const char *)) != NULL) {
        size_t n = strlen(part);
        if (n > size - 1 - len)
            n = size - 1 - len;
        memcpy(buf + len, part, n);
        len += n;
    }
    va_end(ap);
    buf[len] = '\0';
    return len;
}

/* This process's id, asked once: getpid is a system call, and session and
 * queue ids want it for every session and message.  Sessions live only in
 * workers, forked by a supervisor that never calls this, and a worker
 * forks nothing that accepts sessions: the cached value is always ours. */
static unsigned long format_pid(void)
{
    static unsigned long pid;
    if (pid == 0)
        pid = (unsigned long)getpid();
    return pid;
}

/* 8 hex digits of seconds, 5 of microseconds, 5 of the pid, 2 of a
 * counter: "%08lX%05lX%05X%02X", formatted by hand (once a message). */
void up_queue_id_make(char *out, size_t len)
{
    static unsigned counter;
    char id[21], *o = id;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long sec = (unsigned long)tv.tv_sec;
    int digits = 8;
    while (digits < 16 && (sec >> (4 * digits)) != 0)
        digits++;               /* %08lX: at least 8 digits */
    o = put_hex(o, sec, digits);
    o = put_hex(o, (unsigned long)tv.tv_usec, 5);
    o = put_hex(o, format_pid() & 0xFFFFF, 5);
    o = put_hex(o, counter++ & 0xFF, 2);
    *o = '\0';
    up_str_join(out, len, id, (const char *)NULL);
}

void up_session_id_make(char *out, size_t len, unsigned long serial)
{
    snprintf(out, len, "%05lX%05lX", format_pid() & 0xFFFFF, serial & 0xFFFFF);
}
