/*
 * mime_guard.h - where to stop a message before GMime parses it.
 *
 * GMime's cost grows with what a message is made of, not only with its
 * size, and a worker serves every session it holds on one loop:
 *
 *   - it makes objects for every MIME part (about 10 us each on the bench
 *     machine) and compares every line that begins with "--" against
 *     every enclosing boundary: 400,000 parts in 6.7 MB took mail_rules
 *     2.5 s of CPU, 500 nested multiparts around 60,000 lines beginning
 *     "--" took bayes 0.45 s in its first megabyte;
 *   - it parses the address fields of the message's header section,
 *     about 1.6 us an address: a To field of 400,000 addresses (8.3 MB)
 *     took mail_rules 0.9 s.
 *
 * So the parse stops at the first of:
 *   - the line past MIME_GUARD_MAX_LINES lines beginning with "--".  Every
 *     boundary line begins so (RFC 2046 section 5.1.1); a text line that
 *     does counts too (a boundary may begin with a space, so "-- " is no
 *     exception), which can only make the cut come earlier, in a message
 *     with a thousand of them;
 *   - the header field that would take the message's own header section
 *     past MIME_GUARD_MAX_HEADER bytes (Postfix keeps at most 100 KB of
 *     any one field, header_size_limit): the fields before it are
 *     parsed, the body is not.
 *
 * One pass of memchr over the bytes fed; fed in pieces of any size it
 * finds the same cut as fed at once.  Not a plugin: compiled into
 * libupesi_common.a (see hostmatch.h).
 */
#ifndef UPESI_MIME_GUARD_H
#define UPESI_MIME_GUARD_H

#include <stddef.h>

#define MIME_GUARD_MAX_LINES 1000
#define MIME_GUARD_MAX_HEADER (256 * 1024)

/* why a message was cut (mime_guard_feed, mime_guard_cut) */
enum { MIME_GUARD_WHOLE = 0, MIME_GUARD_LINES, MIME_GUARD_HEADER };

typedef struct mime_guard {
    size_t max_lines;  /* lines beginning with "--" allowed               */
    size_t max_header; /* bytes of the message's header section allowed   */
    size_t seen;       /* lines beginning with "--" so far                */
    size_t offset;     /* of the next byte fed, from the message's start  */
    size_t line;       /* where the current line begins                   */
    int state;         /* where in a line the next byte falls             */
    int in_header;     /* the message's header section has not ended      */
} mime_guard;

void mime_guard_init(mime_guard *g, size_t max_lines, size_t max_header);

/* Feeds the next len bytes of the message.  Returns MIME_GUARD_LINES or
 * MIME_GUARD_HEADER and sets *cut (an offset from the message's start,
 * where the line to stop at begins) once a limit is passed;
 * MIME_GUARD_WHOLE (0) while the parse may go on. */
int mime_guard_feed(mime_guard *g, const char *buf, size_t len, size_t *cut);

/* How much of msg to parse, under MIME_GUARD_MAX_LINES and
 * MIME_GUARD_MAX_HEADER: len, or where a limit cuts it (*why, if not
 * NULL, says which). */
size_t mime_guard_cut(const char *msg, size_t len, int *why);

#endif
