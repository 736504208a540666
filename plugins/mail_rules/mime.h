/*
 * mime.h - what the mail rules read from a message, walked with GMime 3.
 *
 * The parser runs over a GMimeStream with persist_stream on, so bodies stay
 * where they are (in the host's message store, read through
 * api->message_read) and only headers and structure are held in memory;
 * decoded text is kept up to max_body bytes per message.
 *
 * Every text value is folded for comparison (mr_fold).  Nothing here
 * fails on a broken message: what cannot be read is simply not there.
 */
#ifndef MAIL_RULES_MIME_H
#define MAIL_RULES_MIME_H

#include <stddef.h>

#include <gmime/gmime.h>

#include "upesi/plugin.h"

#define MR_MAX_MIME_DEPTH 32     /* nested parts walked                   */
#define MR_MAX_PARTS 1000        /* leaf parts looked at                  */

typedef struct mr_strv {
    char **v;
    size_t n, cap;
} mr_strv;

typedef struct mr_mime {
    char *subject;               /* RFC 2047 decoded                      */
    char *body;                  /* decoded text parts, joined by '\n'    */
    size_t body_len;
    mr_strv from;                /* From: addresses and display names     */
    mr_strv to, cc;              /* To:, Cc: addresses and display names  */
    mr_strv to_cc_addrs;         /* bare addresses of To and Cc (for bcc) */
    mr_strv header_names;        /* top-level headers, decoded, in order  */
    mr_strv header_values;
    mr_strv attachments;         /* file names                            */
    size_t attachment_count;     /* parts that are attachments            */
    char *importance;            /* "high", "normal", "low"               */
    char *priority;              /* "high", "normal", "low"               */
} mr_mime;

int mr_strv_add(mr_strv *v, const char *s);     /* folds; 0 or -1 */
int mr_strv_add_folded(mr_strv *v, const char *s);  /* copies as is */
void mr_strv_free(mr_strv *v);

/* Walk the message in stream (which the caller keeps and unrefs).
 * Returns 0, or -1 when out of memory (out is then partly filled). */
int mr_mime_walk(GMimeStream *stream, size_t max_body, mr_mime *out);
void mr_mime_free(mr_mime *m);

/* A read-only, seekable GMimeStream over api->message_read for one call;
 * valid during that call only. */
GMimeStream *mr_message_stream_new(const upesi_api *api, upesi_call *call);

/* How much of the message GMime may parse: 0 for all of it, else a
 * length.  GMime's boundary scan costs (levels x size): a message with
 * more than MR_MAX_MULTIPARTS "multipart/" strings would hold the loop
 * for seconds, and is walked as its top-level header block only
 * (*headers_only 1; the length is that block's, with the empty line).
 * Past MIME_GUARD_MAX_LINES lines beginning with "--" (many parts, or
 * deep nesting: plugins/common/mime_guard.h) the parse stops where that
 * line begins (*headers_only 0); at a header field that would take the
 * header section past MIME_GUARD_MAX_HEADER, it stops there
 * (*headers_only 2: the fields before it, no body).  One pass of memmem
 * and memchr over message_read. */
#define MR_MAX_MULTIPARTS 1000
off_t mr_message_parse_end(const upesi_api *api, upesi_call *call,
                           int *headers_only);
/* the first `end` bytes of the message only */
GMimeStream *mr_message_stream_headers(const upesi_api *api,
                                       upesi_call *call, off_t end);

#endif
