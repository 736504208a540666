/*
 * mime.c - the message walker of the mail rules (see mime.h), and a
 * GMimeStream that reads the host's message store through
 * api->message_read, so that GMime parses a 20 MB message without a copy
 * of it: with persist_stream, leaf parts are substreams of ours.
 *
 * Limits against hostile input: MR_MAX_MIME_DEPTH levels and MR_MAX_PARTS
 * parts are walked, address groups MR_MAX_GROUP_DEPTH deep, decoded text
 * up to max_body bytes.  Broken base64, unterminated boundaries, bad
 * encoded words and 8-bit junk are GMime's to tolerate; whatever it makes
 * of them is what the rules see.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mime_guard.h"
#include "mime.h"
#include "rules.h"

#define MR_MAX_GROUP_DEPTH 4
#define MR_READ_CHUNK 16384

/* ---------------------------------------------------------------------- */
/* a GMimeStream over api->message_read                                    */

typedef struct MrMessageStream {
    GMimeStream parent;
    const upesi_api *api;
    upesi_call *call;
    gint64 size;
} MrMessageStream;

typedef struct MrMessageStreamClass {
    GMimeStreamClass parent_class;
} MrMessageStreamClass;

GType mr_message_stream_get_type(void);
G_DEFINE_TYPE(MrMessageStream, mr_message_stream, GMIME_TYPE_STREAM)

static gint64 stream_end(GMimeStream *stream)
{
    MrMessageStream *m = (MrMessageStream *)stream;
    return stream->bound_end != -1 && stream->bound_end < m->size
               ? stream->bound_end : m->size;
}

static ssize_t stream_read(GMimeStream *stream, char *buf, size_t len)
{
    MrMessageStream *m = (MrMessageStream *)stream;
    gint64 end = stream_end(stream);
    if (stream->position >= end)
        return 0;
    if ((gint64)len > end - stream->position)
        len = (size_t)(end - stream->position);
    ssize_t n = m->api->message_read(m->call, (off_t)stream->position, buf,
                                     len);
    if (n < 0) {
        errno = (int)-n;
        return -1;
    }
    stream->position += n;
    return n;
}

static ssize_t stream_write(GMimeStream *stream, const char *buf, size_t len)
{
    (void)stream;
    (void)buf;
    (void)len;
    errno = EROFS;
    return -1;
}

static int stream_flush(GMimeStream *stream)
{
    (void)stream;
    return 0;
}

static int stream_close(GMimeStream *stream)
{
    (void)stream;
    return 0;
}

static gboolean stream_eos(GMimeStream *stream)
{
    return stream->position >= stream_end(stream);
}

static int stream_reset(GMimeStream *stream)
{
    stream->position = stream->bound_start;
    return 0;
}

static gint64 stream_seek(GMimeStream *stream, gint64 offset,
                          GMimeSeekWhence whence)
{
    gint64 real;
    switch (whence) {
    case GMIME_STREAM_SEEK_SET:
        real = offset;
        break;
    case GMIME_STREAM_SEEK_CUR:
        real = stream->position + offset;
        break;
    case GMIME_STREAM_SEEK_END:
        real = stream_end(stream) + offset;
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (real < stream->bound_start || real > stream_end(stream)) {
        errno = EINVAL;
        return -1;
    }
    stream->position = real;
    return real;
}

static gint64 stream_tell(GMimeStream *stream)
{
    return stream->position;
}

static gint64 stream_length(GMimeStream *stream)
{
    return stream_end(stream) - stream->bound_start;
}

static GMimeStream *stream_substream(GMimeStream *stream, gint64 start,
                                     gint64 end)
{
    MrMessageStream *m = (MrMessageStream *)stream;
    MrMessageStream *sub = g_object_new(mr_message_stream_get_type(), NULL);
    sub->api = m->api;
    sub->call = m->call;
    sub->size = m->size;
    g_mime_stream_construct(GMIME_STREAM(sub), start, end);
    return GMIME_STREAM(sub);
}

static void mr_message_stream_class_init(MrMessageStreamClass *klass)
{
    GMimeStreamClass *s = GMIME_STREAM_CLASS(klass);
    s->read = stream_read;
    s->write = stream_write;
    s->flush = stream_flush;
    s->close = stream_close;
    s->eos = stream_eos;
    s->reset = stream_reset;
    s->seek = stream_seek;
    s->tell = stream_tell;
    s->length = stream_length;
    s->substream = stream_substream;
}

static void mr_message_stream_init(MrMessageStream *m)
{
    m->api = NULL;
    m->call = NULL;
    m->size = 0;
}

GMimeStream *mr_message_stream_new(const upesi_api *api, upesi_call *call)
{
    MrMessageStream *m = g_object_new(mr_message_stream_get_type(), NULL);
    m->api = api;
    m->call = call;
    off_t size = api->message_size(call);
    m->size = size > 0 ? (gint64)size : 0;
    g_mime_stream_construct(GMIME_STREAM(m), 0, -1);
    return GMIME_STREAM(m);
}

off_t mr_message_parse_end(const upesi_api *api, upesi_call *call,
                           int *headers_only)
{
    static const char needle[] = "multipart/";
    const size_t nlen = sizeof needle - 1;
    char buf[65536 + sizeof needle];
    size_t keep = 0;
    off_t off = 0, header_end = 0;
    int count = 0;
    mime_guard guard;
    mime_guard_init(&guard, MIME_GUARD_MAX_LINES, MIME_GUARD_MAX_HEADER);
    *headers_only = 0;
    for (;;) {
        ssize_t n = api->message_read(call, off, buf + keep,
                                      sizeof buf - keep);
        if (n <= 0)
            return 0;
        size_t len = keep + (size_t)n, cut;
        if (header_end == 0) {
            char *blank = memmem(buf, len, "\r\n\r\n", 4);
            if (blank)
                header_end = off - (off_t)keep + (blank - buf) + 4;
        }
        for (char *p = buf; (p = memmem(p, len - (size_t)(p - buf), needle,
                                        nlen)) != NULL; p += nlen)
            if (++count > MR_MAX_MULTIPARTS) {
                *headers_only = 1;
                return header_end > 0 ? header_end : 1;
            }
        int why = mime_guard_feed(&guard, buf + keep, (size_t)n, &cut);
        if (why) {
            *headers_only = why == MIME_GUARD_HEADER ? 2 : 0;
            return cut > 0 ? (off_t)cut : 1;
        }
        off += n;
        keep = len < nlen ? len : nlen - 1;
        memmove(buf, buf + len - keep, keep);
    }
}

GMimeStream *mr_message_stream_headers(const upesi_api *api,
                                       upesi_call *call, off_t end)
{
    GMimeStream *s = mr_message_stream_new(api, call);
    g_mime_stream_construct(s, 0, end);
    return s;
}

/* ---------------------------------------------------------------------- */
/* string lists                                                            */

static int strv_push(mr_strv *v, const char *s, int fold)
{
    if (s == NULL)
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        char **grown = realloc(v->v, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        v->v = grown;
        v->cap = cap;
    }
    char *f = fold ? mr_fold(s, strlen(s)) : strdup(s);
    if (f == NULL)
        return -1;
    if (fold)
        g_strstrip(f);
    v->v[v->n++] = f;
    return 0;
}

int mr_strv_add(mr_strv *v, const char *s)
{
    return strv_push(v, s, 1);
}

int mr_strv_add_folded(mr_strv *v, const char *s)
{
    return strv_push(v, s, 0);
}

void mr_strv_free(mr_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    memset(v, 0, sizeof *v);
}

void mr_mime_free(mr_mime *m)
{
    free(m->subject);
    free(m->body);
    mr_strv_free(&m->from);
    mr_strv_free(&m->to);
    mr_strv_free(&m->cc);
    mr_strv_free(&m->to_cc_addrs);
    mr_strv_free(&m->header_names);
    mr_strv_free(&m->header_values);
    mr_strv_free(&m->attachments);
    free(m->importance);
    free(m->priority);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------------- */
/* the walk                                                                */

typedef struct walker {
    mr_mime *out;
    size_t max_body;
    char *body;                  /* raw decoded text, folded at the end */
    size_t body_len;
    int parts;
    int oom;
} walker;

static void body_append(walker *w, const char *buf, size_t len)
{
    if (w->body_len + len > w->max_body)
        len = w->max_body - w->body_len;
    if (len == 0)
        return;
    char *grown = realloc(w->body, w->body_len + len + 1);
    if (grown == NULL) {
        w->oom = 1;
        return;
    }
    w->body = grown;
    for (size_t i = 0; i < len; i++)    /* binary junk: no early NUL */
        w->body[w->body_len + i] = buf[i] ? buf[i] : ' ';
    w->body_len += len;
    w->body[w->body_len] = '\0';
}

static void add_text_part(walker *w, GMimeObject *obj)
{
    GMimeDataWrapper *content = g_mime_part_get_content(GMIME_PART(obj));
    GMimeStream *src = content ? g_mime_data_wrapper_get_stream(content)
                               : NULL;
    if (src == NULL || w->body_len >= w->max_body)
        return;
    GMimeStream *sub = g_mime_stream_substream(src, src->bound_start,
                                               src->bound_end);
    if (sub == NULL)
        return;
    GMimeStream *filtered = g_mime_stream_filter_new(sub);
    g_object_unref(sub);
    GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(content);
    if (enc == GMIME_CONTENT_ENCODING_BASE64 ||
        enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
        enc == GMIME_CONTENT_ENCODING_UUENCODE) {
        GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), f);
        g_object_unref(f);
    }
    const char *charset = g_mime_object_get_content_type_parameter(obj,
                                                                   "charset");
    if (charset && g_ascii_strcasecmp(charset, "utf-8") &&
        g_ascii_strcasecmp(charset, "us-ascii")) {
        GMimeFilter *f = g_mime_filter_charset_new(charset, "UTF-8");
        if (f) {
            g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), f);
            g_object_unref(f);
        }
    }
    if (w->body_len > 0)
        body_append(w, "\n", 1);
    char buf[MR_READ_CHUNK];
    while (w->body_len < w->max_body && !w->oom) {
        size_t want = sizeof buf;
        if (want > w->max_body - w->body_len)
            want = w->max_body - w->body_len;
        ssize_t n = g_mime_stream_read(filtered, buf, want);
        if (n <= 0)
            break;
        body_append(w, buf, (size_t)n);
    }
    g_object_unref(filtered);
}

static void walk(walker *w, GMimeObject *obj, int depth)
{
    if (obj == NULL || depth > MR_MAX_MIME_DEPTH || w->parts >= MR_MAX_PARTS
        || w->oom)
        return;
    w->parts++;
    GMimeContentDisposition *disp = g_mime_object_get_content_disposition(obj);
    const char *name = NULL;
    if (disp)
        name = g_mime_content_disposition_get_parameter(disp, "filename");
    if (name == NULL || *name == '\0')
        name = g_mime_object_get_content_type_parameter(obj, "name");
    int attachment = (name && *name) ||
                     (disp && g_mime_content_disposition_is_attachment(disp)
                      && !GMIME_IS_MULTIPART(obj));
    if (attachment) {
        w->out->attachment_count++;
        if (name && *name && mr_strv_add(&w->out->attachments, name) != 0)
            w->oom = 1;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *m = g_mime_message_part_get_message(
            GMIME_MESSAGE_PART(obj));
        if (m)
            walk(w, g_mime_message_get_mime_part(m), depth + 1);
        return;
    }
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && w->parts < MR_MAX_PARTS; i++)
            walk(w, g_mime_multipart_get_part(mp, i), depth + 1);
        return;
    }
    if (attachment || !GMIME_IS_PART(obj))
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (ct == NULL || g_mime_content_type_is_type(ct, "text", "*"))
        add_text_part(w, obj);
}

static void add_addresses(walker *w, InternetAddressList *list,
                          mr_strv *out, int collect, int depth)
{
    int n = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n && !w->oom && depth <= MR_MAX_GROUP_DEPTH; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            add_addresses(w, internet_address_group_get_members(
                                 INTERNET_ADDRESS_GROUP(ia)),
                          out, collect, depth + 1);
            continue;
        }
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        const char *addr = internet_address_mailbox_get_addr(
            INTERNET_ADDRESS_MAILBOX(ia));
        const char *label = internet_address_get_name(ia);
        if ((addr && *addr && mr_strv_add(out, addr) != 0) ||
            (label && *label && mr_strv_add(out, label) != 0) ||
            (collect && addr && *addr &&
             mr_strv_add(&w->out->to_cc_addrs, addr) != 0))
            w->oom = 1;
    }
}

/* Importance: the Importance header, else X-Priority (1-2 high, 3
 * normal, 4-5 low), else X-MSMail-Priority; normal by default. */
static const char *importance_of(GMimeObject *msg)
{
    const char *v = g_mime_object_get_header(msg, "Importance");
    if (v) {
        while (*v == ' ' || *v == '\t')
            v++;
        if (!g_ascii_strncasecmp(v, "high", 4))
            return "high";
        if (!g_ascii_strncasecmp(v, "low", 3))
            return "low";
        return "normal";
    }
    if ((v = g_mime_object_get_header(msg, "X-Priority")) != NULL) {
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == '1' || *v == '2')
            return "high";
        if (*v == '4' || *v == '5')
            return "low";
        return "normal";
    }
    if ((v = g_mime_object_get_header(msg, "X-MSMail-Priority")) != NULL) {
        while (*v == ' ' || *v == '\t')
            v++;
        if (!g_ascii_strncasecmp(v, "high", 4))
            return "high";
        if (!g_ascii_strncasecmp(v, "low", 3))
            return "low";
    }
    return "normal";
}

/* Delivery priority: the Priority header (RFC 2156: urgent, normal,
 * non-urgent) as high, normal, low. */
static const char *priority_of(GMimeObject *msg)
{
    const char *v = g_mime_object_get_header(msg, "Priority");
    if (v == NULL)
        return "normal";
    while (*v == ' ' || *v == '\t')
        v++;
    if (!g_ascii_strncasecmp(v, "urgent", 6) ||
        !g_ascii_strncasecmp(v, "high", 4))
        return "high";
    if (!g_ascii_strncasecmp(v, "non-urgent", 10) ||
        !g_ascii_strncasecmp(v, "low", 3))
        return "low";
    return "normal";
}

int mr_mime_walk(GMimeStream *stream, size_t max_body, mr_mime *out)
{
    memset(out, 0, sizeof *out);
    walker w = { .out = out, .max_body = max_body };
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_persist_stream(parser, TRUE);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    if (msg) {
        GMimeObject *top = GMIME_OBJECT(msg);
        const char *subject = g_mime_message_get_subject(msg);
        if (subject && (out->subject = mr_fold(subject,
                                               strlen(subject))) == NULL)
            w.oom = 1;
        GMimeHeaderList *headers = g_mime_object_get_header_list(top);
        int n = headers ? g_mime_header_list_get_count(headers) : 0;
        for (int i = 0; i < n && !w.oom; i++) {
            GMimeHeader *h = g_mime_header_list_get_header_at(headers, i);
            const char *hn = g_mime_header_get_name(h);
            const char *hv = g_mime_header_get_value(h);
            if (mr_strv_add(&out->header_names, hn ? hn : "") != 0 ||
                mr_strv_add(&out->header_values, hv ? hv : "") != 0)
                w.oom = 1;
        }
        add_addresses(&w, g_mime_message_get_addresses(
                              msg, GMIME_ADDRESS_TYPE_FROM),
                      &out->from, 0, 0);
        add_addresses(&w, g_mime_message_get_addresses(
                              msg, GMIME_ADDRESS_TYPE_TO),
                      &out->to, 1, 0);
        add_addresses(&w, g_mime_message_get_addresses(
                              msg, GMIME_ADDRESS_TYPE_CC),
                      &out->cc, 1, 0);
        out->importance = strdup(importance_of(top));
        out->priority = strdup(priority_of(top));
        walk(&w, g_mime_message_get_mime_part(msg), 0);
        g_object_unref(msg);
    }
    g_object_unref(parser);
    if (w.body) {
        out->body = mr_fold(w.body, w.body_len);
        out->body_len = out->body ? strlen(out->body) : 0;
        free(w.body);
    }
    if (out->importance == NULL)
        out->importance = strdup("normal");
    if (out->priority == NULL)
        out->priority = strdup("normal");
    return w.oom || !out->importance || !out->priority ? -1 : 0;
}
