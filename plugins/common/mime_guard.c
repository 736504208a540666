/*
 * mime_guard.c - where to stop a message before GMime parses it (see
 * mime_guard.h).
 */
#include <string.h>

#include "mime_guard.h"

enum {
    AT_START,          /* the next byte begins a line                     */
    AFTER_DASH,        /* the line began with one '-'                     */
    IN_LINE            /* the rest of a line: nothing to look at until LF */
};

void mime_guard_init(mime_guard *g, size_t max)
{
    memset(g, 0, sizeof *g);
    g->max = max;
    g->state = AT_START;
}

int mime_guard_feed(mime_guard *g, const char *buf, size_t len, size_t *cut)
{
    size_t i = 0;
    while (i < len) {
        if (g->state == IN_LINE) {
            const char *nl = memchr(buf + i, '\n', len - i);
            if (nl == NULL)
                break;
            i = (size_t)(nl - buf) + 1;
            g->state = AT_START;
            continue;
        }
        char c = buf[i];
        if (g->state == AT_START) {
            g->line = g->offset + i;
            g->state = c == '-' ? AFTER_DASH : c == '\n' ? AT_START : IN_LINE;
        } else if (c == '-') {              /* AFTER_DASH: "--" */
            if (++g->seen > g->max) {
                *cut = g->line;
                return 1;
            }
            g->state = IN_LINE;
        } else {
            g->state = c == '\n' ? AT_START : IN_LINE;
        }
        i++;
    }
    g->offset += len;
    return 0;
}

size_t mime_guard_cut(const char *msg, size_t len, size_t max)
{
    mime_guard g;
    size_t cut;
    mime_guard_init(&g, max);
    return mime_guard_feed(&g, msg, len, &cut) ? cut : len;
}
