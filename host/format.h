/*
 * format.h - RFC 5322 dates, queue ids and joined strings (format.c).
 */
#ifndef UPESI_FORMAT_H
#define UPESI_FORMAT_H

#include <stddef.h>

/* "Mon, 07 Dec 2026 01:02:03 +0000", local time, cached for the second. */
void up_rfc5322_date(char *buf, size_t len);
/* A new queue id: hex seconds, microseconds, pid and a counter (20+
 * characters, unique within a host). */
void up_queue_id_make(char *out, size_t len);
/* A session id: 5 hex digits of the pid, 5 of the worker's serial. */
void up_session_id_make(char *out, size_t len, unsigned long serial);
/* The strings of a NULL-terminated list joined into buf, cut to fit and
 * always terminated; returns the length. */
size_t up_str_join(char *buf, size_t size, ...);

#endif
