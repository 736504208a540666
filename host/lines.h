/*
 * lines.h - the command line reader.
 *
 * Splits the byte stream of an SMTP session into command lines.  A line ends
 * at CRLF, at a bare LF, or at a bare CR (a CR followed by anything but LF);
 * the reader records which, and policy (strict821) decides.  A CR that is the
 * last byte buffered is not yet a line end: the reader waits for the next
 * byte to tell CR from CRLF.
 *
 * Limits: a line longer than `max` bytes (terminator excluded) is returned
 * once as UP_LINE_TOO_LONG, truncated, and the rest of it up to its
 * terminator is dropped.  NUL bytes are kept and flagged.  The buffer never
 * holds more than max + a small constant of one line, whatever the client
 * sends; complete lines already buffered count against `cap`, and
 * up_lines_feed refuses input beyond it (the caller stops reading until the
 * session consumed lines: back-pressure, not growth).
 *
 * Feeding only buffers; the line work (and the dropping of an overlong
 * line's tail) happens in up_lines_next, so the bytes after a DATA or
 * STARTTLS command reach up_lines_pending exactly as the client sent them.
 *
 * Memory: nothing is allocated until the first byte is fed (an idle session
 * costs no buffer); the buffer starts small (UP_LINES_MIN bytes) and grows
 * by doubling, up to `limit` (max + a small constant), only when input does
 * not fit.  up_lines_release gives a grown buffer back once it is empty (a
 * session calls it when it has used up its input), so a session that once
 * received a long line or a message does not keep the large buffer while
 * idle.
 *
 * Fails: only on allocation.  up_lines_init returns -ENOMEM for a `max` so
 * large the buffer size would overflow (it allocates nothing);
 * up_lines_feed returns -ENOMEM when the buffer cannot be allocated or grown
 * (nothing of the input is taken then; what was buffered stays), and on a
 * reader that was never initialised or was freed.
 */
#ifndef UPESI_LINES_H
#define UPESI_LINES_H

#include <stddef.h>

#include "upesi/plugin.h"

typedef struct up_lines {
    char *buf;          /* buffered, unconsumed input; NULL until the
                           first feed and after up_lines_release       */
    size_t len;         /* bytes in buf                                */
    size_t cap;         /* allocated size of buf (0 while buf is NULL) */
    size_t limit;       /* the most cap may grow to (0: not initialised) */
    size_t max;         /* longest line accepted                       */
    size_t start;       /* offset of the first unconsumed byte         */
    size_t scanned;     /* bytes after start known to hold no line end:
                           a line fed a byte at a time is scanned once */
    int skipping;       /* dropping the tail of an overlong line       */
} up_lines;

typedef enum up_line_status {
    UP_LINE_OK = 0,
    UP_LINE_TOO_LONG    /* line text holds the first `max` bytes          */
} up_line_status;

typedef struct up_line {
    char *text;         /* NUL-terminated copy inside the reader's buffer,
                           valid until the next up_lines_* call          */
    size_t len;         /* bytes before the terminator                   */
    upesi_line_end end;
    up_line_status status;
    int has_nul;        /* a NUL byte inside the line                     */
} up_line;

/* First allocation, and the size up_lines_release shrinks back from. */
#define UP_LINES_MIN 512

/* max: longest line; the buffer's limit is derived from it (max + 4 KiB,
 * so that pipelined command groups fit).  Allocates nothing. */
int up_lines_init(up_lines *lr, size_t max);
void up_lines_free(up_lines *lr);
/* Free a buffer grown beyond UP_LINES_MIN if it holds nothing; a no-op
 * otherwise.  The next feed allocates again. */
void up_lines_release(up_lines *lr);

/* Append input, growing the buffer up to its limit.  Returns the number of
 * bytes taken (may be less than len when the buffer is at its limit and
 * full of unconsumed complete lines; call again after consuming), or
 * -ENOMEM. */
long up_lines_feed(up_lines *lr, const char *data, size_t len);

/* Take the next complete line.  Returns 1 and fills *out, or 0 when no
 * complete line is buffered. */
int up_lines_next(up_lines *lr, up_line *out);

/* Raw access for the switch into DATA (and TLS): the unconsumed bytes. */
const char *up_lines_pending(const up_lines *lr, size_t *len);
/* Drop n bytes of the pending input (consumed by the DATA reader). */
void up_lines_consume(up_lines *lr, size_t n);
/* Drop everything buffered (after STARTTLS: CVE-2011-0411). */
void up_lines_discard(up_lines *lr);

#endif
