/*
 * xclient_parse.h - XCLIENT's attributes and their parser
 * (xclient_parse.c).
 */
#ifndef UP_XCLIENT_PARSE_H
#define UP_XCLIENT_PARSE_H

#include <stddef.h>

typedef struct up_xclient_attrs {
    char name[256], addr[64], helo[256], login[256];
    int port;                   /* -1: not given */
    int proto;                  /* -1, 0 SMTP, 1 ESMTP */
    int is_ipv6;
} up_xclient_attrs;

/* Parse "NAME=value ..." into *a (cleared first; port and proto -1 when
 * not given).  NULL, or what to say in the 501. */
const char *up_xclient_parse(const char *arg, up_xclient_attrs *a);

#endif
