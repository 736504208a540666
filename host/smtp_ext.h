/*
 * smtp_ext.h - the values of the ESMTP parameters of SMTPUTF8 (RFC 6531,
 * 6532) and DSN (RFC 3461, RFC 6533), and internationalized domain names
 * (IDNA2008 through libidn2).
 *
 * Pure functions over one value: no I/O.  Each check returns 0 when the
 * value is well formed, or -1 with a static text saying what is wrong (the
 * session answers it with 501 5.5.4).  The packed parameter lists that the
 * session keeps with the sender and each recipient are here too.
 */
#ifndef UPESI_SMTP_EXT_H
#define UPESI_SMTP_EXT_H

#include <stddef.h>

#include "smtp_parse.h"

/* Is s[0..len) well-formed UTF-8 (RFC 3629: no overlong form, no
 * surrogate, nothing over U+10FFFF)?  1 or 0. */
int up_utf8_valid(const char *s, size_t len);

/* Decode the xtext in[0..len) (RFC 3461 4: "+" and two hex digits for a
 * byte, any other byte 33..126 but "+" and "=" as itself) into out,
 * NUL-terminated.  Returns the decoded length, or -1 (bad xtext, a "+NN"
 * that decodes to NUL, or out too small).  Hex digits of either case are
 * taken, as Postfix does: the RFC's upper case is what clients send. */
int up_xtext_decode(const char *in, size_t len, char *out, size_t outlen);

/* NOTIFY bits */
#define UP_NOTIFY_NEVER   1
#define UP_NOTIFY_SUCCESS 2
#define UP_NOTIFY_FAILURE 4
#define UP_NOTIFY_DELAY   8

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (each once;
 * NEVER alone).  *bits gets UP_NOTIFY_*. */
int up_dsn_notify(const char *value, unsigned *bits, const char **why);
/* RET=FULL or HDRS */
int up_dsn_ret(const char *value, const char **why);
/* ENVID: xtext of at most 100 printable ASCII characters once decoded */
int up_dsn_envid(const char *value, const char **why);
/* ORCPT: addr-type ";" xtext.  For the type rfc822 the decoded address
 * must be printable ASCII; for utf-8 (RFC 6533) the value is
 * utf-8-addr-xtext, or with smtputf8 utf-8-addr-unitext, whose \x{HEX}
 * escapes name Unicode scalar values and whose raw bytes are well-formed
 * UTF-8; any other type is taken as xtext (RFC 3461 4.2). */
int up_dsn_orcpt(const char *value, int smtputf8, const char **why);

/* A mailbox's domain in A-labels, lower case (IDNA2008, UTS 46
 * non-transitional mapping, libidn2): "Bücher.Example" gives
 * "xn--bcher-kva.example"; an ASCII domain comes back lower-cased; a
 * domain literal as it is.  0, or -1 when the name is no valid IDN (or
 * out is too small). */
int up_domain_to_ascii(const char *domain, char *out, size_t outlen);

/* Do two domains name the same domain (ASCII case-insensitive, a U-label
 * equal to its A-label)?  1 or 0. */
int up_domain_equal(const char *a, const char *b);

/* -- packed parameters: "mailbox\0KEY\0value\0KEY\0value\0\0".  The
 * session keeps the sender and each recipient in this form, so that the
 * mailbox reads as the plain C string it always was and its parameters
 * follow it in the same allocation. */

/* mailbox, then the parameters of path whose keyword is in keep (NULL
 * ended).  malloc'd; NULL on OOM. */
char *up_packed_new(const char *mailbox, const up_path *path,
                    const char *const *keep);
/* a parameter's value in a packed string, "" bare, NULL absent */
const char *up_packed_param(const char *packed, const char *keyword);
/* the parameters as "KEY=value KEY" into out ("" when none); the length,
 * or -1 when out is too small */
int up_packed_format(const char *packed, char *out, size_t outlen);

#endif
