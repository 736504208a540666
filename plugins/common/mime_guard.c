/*
 * mime_guard.c - where to stop a message before GMime parses it (see
 * mime_guard.h).
 */
#include <string.h>

#include "mime_guard.h"

enum {
    AT_START,          /* the next byte begins a line                     */
    AFTER_CR,          /* the line began with CR: an empty line if LF     */
    AFTER_DASH,        /* the line began with one '-'                     */
    IN_LINE            /* the rest of a line: nothing to look at until LF */
};

void mime_guard_init(mime_guard *g, size_t max_lines, size_t max_header)
{
    memset(g, 0, sizeof *g);
    g->max_lines = max_lines;
    g->max_header = max_header;
    g->state = AT_START;
    g->in_header = 1;
}

int mime_guard_feed(mime_guard *g, const char *buf, size_t len, size_t *cut)
{
    size_t i = 0;
    while (i < len) {
        if (g->state == IN_LINE) {
            const char *nl = memchr(buf + i, '\n', len - i);
            i = nl ? (size_t)(nl - buf) + 1 : len;
            if (nl)
                g->state = AT_START;
        } else {
            char c = buf[i++];
            if (g->state == AT_START) {
                g->line = g->offset + i - 1;
                if (c == '\n')
                    g->in_header = 0; /* the empty line: the body follows */
                g->state = c == '-'    ? AFTER_DASH
                           : c == '\r' ? AFTER_CR
                           : c == '\n' ? AT_START
                                       : IN_LINE;
            } else if (g->state == AFTER_CR && c == '\n') {
                g->in_header = 0;
                g->state = AT_START;
            } else if (g->state == AFTER_DASH && c == '-') {
                if (++g->seen > g->max_lines) {
                    *cut = g->line;
                    return MIME_GUARD_LINES;
                }
                g->state = IN_LINE;
            } else {
                g->state = c == '\n' ? AT_START : IN_LINE;
            }
        }
        /* a line of the header section that reaches past the limit is
         * cut at its start (a lone CR may yet be the empty line) */
        if (g->in_header && g->state != AFTER_CR &&
            g->offset + i > g->max_header) {
            *cut = g->line;
            return MIME_GUARD_HEADER;
        }
    }
    g->offset += len;
    return MIME_GUARD_WHOLE;
}

size_t mime_guard_cut(const char *msg, size_t len, int *why)
{
    mime_guard g;
    size_t cut;
    mime_guard_init(&g, MIME_GUARD_MAX_LINES, MIME_GUARD_MAX_HEADER);
    int r = mime_guard_feed(&g, msg, len, &cut);
    if (why)
        *why = r;
    return r ? cut : len;
}
