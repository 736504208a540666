/*
 * mime_guard.h - where to stop a message before GMime parses it.
 *
 * GMime makes objects for every MIME part (about 10 us each on the bench
 * machine) and compares every line that begins with "--" against every
 * enclosing boundary.  A message of tiny parts or of deep nesting held a
 * worker's loop for a long time: 400,000 parts in 6.7 MB took mail_rules
 * 2.5 s of CPU, and 500 nested multiparts around 60,000 lines beginning
 * "--" took bayes 0.45 s in its first megabyte.  Every boundary line
 * begins with "--" (RFC 2046 section 5.1.1), so a count of such lines
 * bounds both the parts and the comparisons: the parse stops where the
 * line past MIME_GUARD_MAX_LINES begins.  A text line that begins with
 * "--" counts too (a boundary may begin with a space, so "-- " is no
 * exception); it can only make the cut come earlier, in a message with a
 * thousand of them.
 *
 * One pass of memchr over the bytes fed; fed in pieces of any size it
 * finds the same cut as fed at once.  Not a plugin: compiled into
 * libupesi_common.a (see hostmatch.h).
 */
#ifndef UPESI_MIME_GUARD_H
#define UPESI_MIME_GUARD_H

#include <stddef.h>

#define MIME_GUARD_MAX_LINES 1000

typedef struct mime_guard {
    size_t max;        /* lines beginning with "--" allowed               */
    size_t seen;       /* such lines so far                               */
    size_t offset;     /* of the next byte fed, from the message's start  */
    size_t line;       /* where the current line begins                   */
    int state;         /* where in a line the next byte falls             */
} mime_guard;

void mime_guard_init(mime_guard *g, size_t max);

/* Feeds the next len bytes of the message.  Returns 1 and sets *cut (an
 * offset from the message's start, where the line past the limit begins)
 * once that line is found, 0 while the parse may go on. */
int mime_guard_feed(mime_guard *g, const char *buf, size_t len, size_t *cut);

/* How much of msg to parse: len, or where the limit cuts it. */
size_t mime_guard_cut(const char *msg, size_t len, size_t max);

#endif
