/*
 * log.h - the host's log: one line per event, to stderr (and syslog when
 * smtp.ini says log_syslog = 1).  Lines look like
 *   2026-11-23T17:41:48Z upesi[1234] INFO s3f2a1: connect 127.0.0.1:40112
 * Fatal errors never return (Postfix's msg_fatal habit).
 */
#ifndef UPESI_LOG_H
#define UPESI_LOG_H

#include <stdarg.h>

#include "upesi/plugin.h"

void up_log_init(const char *ident, int level, int use_syslog);
void up_log_set_level(int level);
int up_log_level_parse(const char *name); /* "info" -> 6, -1 if unknown */

/* sid may be NULL (no session) */
void up_vlog(const char *sid, int level, const char *fmt, va_list ap);
void up_log(const char *sid, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void up_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define up_info(...) up_log(NULL, UPESI_LOG_INFO, __VA_ARGS__)
#define up_warn(...) up_log(NULL, UPESI_LOG_WARNING, __VA_ARGS__)
#define up_err(...) up_log(NULL, UPESI_LOG_ERR, __VA_ARGS__)

#endif
