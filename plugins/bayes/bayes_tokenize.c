/*
 * bayes_tokenize.c - a message into tokens (see bayes_tokenize.h).
 *
 * GMime 3 does the mail: RFC 2047 words in headers, transfer encodings,
 * charsets to UTF-8 (g_mime_text_part_get_text).  What is ours is the
 * word splitter and the HTML reduction, both single passes with no
 * allocation per byte.  Words are lower-cased (ASCII in place, the rest
 * through GLib's Unicode tables): on the corpora filters are measured on,
 * case carries less than it costs in sparser counts.
 *
 * How it fails: it does not.  Invalid UTF-8 is a separator, a part GMime
 * cannot decode is skipped, and past BAYES_MAX_TEXT bytes of text or
 * BAYES_MAX_PARTS parts the rest of the message is not read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "bayes_tokenize.h"

#define TOK_BUF 128               /* prefix + a token cut to MAX_TOKEN     */
#define MAX_RECEIVED 8            /* Received fields looked at            */

static int gmime_ready;

void bayes_tokenize_init(void)
{
    if (!gmime_ready) {
        g_mime_init();           /* counted: mail_rules may init it too */
        gmime_ready = 1;
    }
}

void bayes_tokenize_shutdown(void)
{
    if (gmime_ready) {
        g_mime_shutdown();
        gmime_ready = 0;
    }
}

/* ---------------------------------------------------------------------- */
/* words                                                                   */

static int is_word_char(gunichar c)
{
    if (c < 0x80)                /* most text: no Unicode table lookup */
        return g_ascii_isalnum((char)c) || c == '\'' || c == '$' ||
               c == '-' || c == '.' || c == '_' || c == '@' || c == '!';
    return g_unichar_isalnum(c);
}

static int is_trim_char(char c)
{
    return c == '.' || c == '-' || c == '\'' || c == '_' || c == '@';
}

/* Base64 or hex noise: SpamAssassin drops such long runs rather than
 * learn a token that never comes again. */
static int looks_like_noise(const char *w, size_t len)
{
    int lower = 0, upper = 0, digit = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c >= 'a' && c <= 'z')
            lower = 1;
        else if (c >= 'A' && c <= 'Z')
            upper = 1;
        else if (c >= '0' && c <= '9')
            digit = 1;
        else if (c != '+' && c != '/' && c != '=')
            return 0;
    }
    return digit + lower + upper >= 2;
}

static void emit_word(const char *w, size_t len, const char *prefix,
                      size_t plen, bayes_token_fn fn, void *arg)
{
    while (len && is_trim_char(*w))
        w++, len--;
    while (len && is_trim_char(w[len - 1]))
        len--;
    if (len < BAYES_MIN_TOKEN)
        return;
    char buf[TOK_BUF];
    memcpy(buf, prefix, plen);
    if (len > BAYES_MAX_TOKEN) {
        if (looks_like_noise(w, len))
            return;
        /* a long word: its first 7 bytes mark it (as SpamAssassin's
         * "sk:"), cut on a character boundary */
        size_t cut = 7;
        while (cut > 0 && ((unsigned char)w[cut] & 0xC0) == 0x80)
            cut--;
        memcpy(buf + plen, "sk:", 3);
        plen += 3;
        len = cut;
    }
    int ascii = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c >= 0x80)
            ascii = 0;
        buf[plen + i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    buf[plen + len] = '\0';
    if (ascii) {
        fn(buf, plen + len, arg);
        return;
    }
    gchar *down = g_utf8_strdown(buf + plen, (gssize)len);
    size_t dlen = strlen(down);
    if (plen + dlen < TOK_BUF) {
        memcpy(buf + plen, down, dlen + 1);
        fn(buf, plen + dlen, arg);
    }
    g_free(down);
}

/* ---------------------------------------------------------------------- */
/* link hosts                                                              */

static void emit_host(const char *h, size_t len, bayes_token_fn fn,
                      void *arg)
{
    char host[256];
    size_t n = 0;
    for (size_t i = 0; i < len && n < sizeof host - 1; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '/' || c == '?' || c == '#' || c == ':' || c == '"' ||
            c == '\'' || c == '>' || c == '<' || c <= ' ' || c == ')' ||
            c == '\\')
            break;
        if (c == '@') {          /* user:pass@host: the host is after */
            n = 0;
            continue;
        }
        host[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    while (n && host[n - 1] == '.')
        n--;
    host[n] = '\0';
    /* a host in raw 8-bit (no charset said) is no name: tokens are UTF-8 */
    if (n < 3 || strchr(host, '.') == NULL ||
        !g_utf8_validate(host, (gssize)n, NULL))
        return;
    char tok[300];
    int tl = snprintf(tok, sizeof tok, "url:%s", host);
    fn(tok, (size_t)tl, arg);
    /* the registered domain too, so that a.spam.example and b.spam.example
     * teach the same thing: the last two labels, three under a short
     * second level (co.uk, com.au) */
    int dots = 0;
    for (size_t i = n; i-- > 0;) {
        if (host[i] != '.')
            continue;
        dots++;
        const char *rest = host + i + 1;
        size_t sld = 0;
        if (dots == 2) {
            const char *d = strchr(rest, '.');
            sld = d ? (size_t)(d - rest) : 0;
        }
        if (dots == 2 && sld > 3) {
            tl = snprintf(tok, sizeof tok, "url:%s", rest);
            fn(tok, (size_t)tl, arg);
            return;
        }
        if (dots == 3) {
            tl = snprintf(tok, sizeof tok, "url:%s", rest);
            fn(tok, (size_t)tl, arg);
            return;
        }
    }
}

/* Hosts of the URLs written in plain text. */
static void emit_text_urls(const char *text, size_t len, bayes_token_fn fn,
                           void *arg)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *s = memmem(p, (size_t)(end - p), "://", 3);
        if (s == NULL)
            break;
        s += 3;
        emit_host(s, (size_t)(end - s), fn, arg);
        p = s;
    }
}

void bayes_tokenize_text(const char *text, size_t len, const char *prefix,
                         bayes_token_fn fn, void *arg)
{
    const char *p = text, *end = text + len, *word = NULL;
    size_t plen = strlen(prefix);
    if (plen > 40)
        plen = 40;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        gunichar u;
        int n;
        if (c < 0x80) {
            u = c;
            n = 1;
        } else {
            u = g_utf8_get_char_validated(p, (gssize)(end - p));
            if (u == (gunichar)-1 || u == (gunichar)-2) {
                u = ' ';
                n = 1;
            } else {
                n = (int)(g_utf8_next_char(p) - p);
            }
        }
        if (is_word_char(u)) {
            if (word == NULL)
                word = p;
        } else if (word) {
            emit_word(word, (size_t)(p - word), prefix, plen, fn, arg);
            word = NULL;
        }
        p += n;
    }
    if (word)
        emit_word(word, (size_t)(end - word), prefix, plen, fn, arg);
}

/* ---------------------------------------------------------------------- */
/* HTML to text                                                            */

static int tag_is(const char *name, size_t n, const char *what)
{
    return strlen(what) == n && g_ascii_strncasecmp(name, what, n) == 0;
}

/* Tags inside a word ("V<b></b>iagra") must not split it. */
static int tag_inline(const char *name, size_t n)
{
    static const char *const inl[] = {"a", "b", "i", "u", "s", "em",
                                      "strong", "span", "font", "small",
                                      "big", "sub", "sup", "o:p", NULL};
    for (int i = 0; inl[i]; i++)
        if (tag_is(name, n, inl[i]))
            return 1;
    return 0;
}

static const char *skip_to_close(const char *p, const char *end,
                                 const char *tag)
{
    size_t tl = strlen(tag);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL)
            return end;
        if ((size_t)(end - lt) >= tl + 2 && lt[1] == '/' &&
            g_ascii_strncasecmp(lt + 2, tag, tl) == 0)
            return lt;
        p = lt + 1;
    }
    return end;
}

/* Attributes of one tag, from p (after its name) to its '>'; the value of
 * href, src and action is searched for a URL's host.  Returns the byte
 * after '>' (or end). */
static const char *scan_attributes(const char *p, const char *end,
                                   bayes_token_fn fn, void *arg)
{
    while (p < end && *p != '>') {
        if (g_ascii_isalpha(*p)) {
            const char *an = p;
            while (p < end && (g_ascii_isalnum(*p) || *p == '-'))
                p++;
            size_t al = (size_t)(p - an);
            while (p < end && g_ascii_isspace(*p))
                p++;
            if (p < end && *p == '=') {
                p++;
                while (p < end && g_ascii_isspace(*p))
                    p++;
                char q = p < end && (*p == '"' || *p == '\'') ? *p++ : 0;
                const char *v = p;
                while (p < end && (q ? *p != q : !g_ascii_isspace(*p) &&
                                                     *p != '>'))
                    p++;
                if (tag_is(an, al, "href") || tag_is(an, al, "src") ||
                    tag_is(an, al, "action")) {
                    const char *s = g_strstr_len(v, p - v, "://");
                    if (s)
                        emit_host(s + 3, (size_t)(p - s - 3), fn, arg);
                }
                if (q && p < end)
                    p++;
            }
            continue;
        }
        p++;
    }
    return p < end ? p + 1 : end;
}

static void append_entity(GString *out, const char **pp, const char *end)
{
    static const struct { const char *name; gunichar c; } ents[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'},
        {"apos", '\''}, {"nbsp", ' '}, {"copy", 0xA9}, {"reg", 0xAE},
        {"euro", 0x20AC}, {"pound", 0xA3}, {NULL, 0}};
    const char *p = *pp + 1;     /* after '&' */
    const char *semi = p;
    while (semi < end && semi - p < 10 && *semi != ';')
        semi++;
    if (semi >= end || *semi != ';') {
        g_string_append_c(out, '&');
        *pp += 1;
        return;
    }
    gunichar c = 0;
    if (*p == '#') {
        if (p + 1 < semi && (p[1] == 'x' || p[1] == 'X'))
            c = (gunichar)strtoul(p + 2, NULL, 16);
        else
            c = (gunichar)strtoul(p + 1, NULL, 10);
    } else {
        for (int i = 0; ents[i].name; i++)
            if (tag_is(p, (size_t)(semi - p), ents[i].name))
                c = ents[i].c;
    }
    if (c == 0 || !g_unichar_validate(c))
        c = ' ';
    g_string_append_unichar(out, c);
    *pp = semi + 1;
}

char *bayes_html_to_text(const char *html, size_t len, bayes_token_fn fn,
                         void *arg)
{
    GString *out = g_string_sized_new(len / 2 + 16);
    const char *p = html, *end = html + len;
    while (p < end) {
        if (*p == '&') {
            append_entity(out, &p, end);
            continue;
        }
        if (*p != '<') {
            g_string_append_c(out, *p++);
            continue;
        }
        if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
            const char *c = g_strstr_len(p + 4, end - p - 4, "-->");
            p = c ? c + 3 : end;
            continue;
        }
        const char *n = p + 1;
        if (n < end && *n == '/')
            n++;
        const char *ne = n;
        while (ne < end && (g_ascii_isalnum(*ne) || *ne == ':'))
            ne++;
        size_t nl = (size_t)(ne - n);
        if (nl == 0) {           /* a lone '<' is text */
            g_string_append_c(out, *p++);
            continue;
        }
        int closing = p[1] == '/';
        p = scan_attributes(ne, end, fn, arg);
        if (!closing && (tag_is(n, nl, "script") || tag_is(n, nl, "style"))) {
            p = skip_to_close(p, end, tag_is(n, nl, "script") ? "script"
                                                              : "style");
            continue;
        }
        if (!tag_inline(n, nl))
            g_string_append_c(out, '\n');
    }
    return g_string_free(out, FALSE);
}

/* ---------------------------------------------------------------------- */
/* the message                                                             */

typedef struct walk {
    bayes_token_fn fn;
    void *arg;
    size_t text_left;
    int parts;
} walk;

static void end_field(walk *w)
{
    w->fn(NULL, 0, w->arg);
}

static void header_tokens(walk *w, const char *prefix, const char *value)
{
    if (value == NULL)
        return;
    bayes_tokenize_text(value, strlen(value), prefix, w->fn, w->arg);
    end_field(w);
}

static void address_tokens(walk *w, const char *prefix,
                           InternetAddressList *list, int depth)
{
    if (list == NULL || depth > 2)
        return;
    int n = internet_address_list_length(list);
    char tok[TOK_BUF + 256];
    for (int i = 0; i < n && i < 50; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        const char *name = internet_address_get_name(ia);
        if (name)
            bayes_tokenize_text(name, strlen(name), prefix, w->fn, w->arg);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            address_tokens(w, prefix, internet_address_group_get_members(
                                          INTERNET_ADDRESS_GROUP(ia)),
                           depth + 1);
            continue;
        }
        const char *addr =
            internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
        if (addr == NULL || strlen(addr) > 200)
            continue;
        if (!g_utf8_validate(addr, -1, NULL))
            continue;
        gchar *low = g_ascii_strdown(addr, -1);
        int tl = snprintf(tok, sizeof tok, "%s%s", prefix, low);
        w->fn(tok, (size_t)tl, w->arg);
        const char *at = strrchr(low, '@');
        if (at) {
            tl = snprintf(tok, sizeof tok, "%s%s", prefix, at);
            w->fn(tok, (size_t)tl, w->arg);
        }
        g_free(low);
    }
    end_field(w);
}

/* Received: the names and addresses of the hops, not the dates and ids. */
static void received_tokens(walk *w, const char *value)
{
    char tok[TOK_BUF + 256];
    const char *p = value;
    while (*p) {
        while (*p && !(g_ascii_isalnum(*p)))
            p++;
        const char *s = p;
        while (*p && (g_ascii_isalnum(*p) || *p == '.' || *p == '-' ||
                      *p == ':'))
            p++;
        size_t n = (size_t)(p - s);
        while (n && (s[n - 1] == '.' || s[n - 1] == ':' || s[n - 1] == '-'))
            n--;
        if (n >= 4 && n < 200 && memchr(s, '.', n)) {
            int tl = snprintf(tok, sizeof tok, "received:%.*s", (int)n, s);
            for (int i = 9; i < tl; i++)
                tok[i] = g_ascii_tolower(tok[i]);
            w->fn(tok, (size_t)tl, w->arg);
        }
    }
    end_field(w);
}

static void content_type_token(walk *w, const char *prefix,
                               GMimeContentType *ct)
{
    if (ct == NULL)
        return;
    char tok[TOK_BUF + 128];
    gchar *mt = g_mime_content_type_get_mime_type(ct);
    if (mt && strlen(mt) < 100 && g_utf8_validate(mt, -1, NULL)) {
        int tl = snprintf(tok, sizeof tok, "%s%s", prefix, mt);
        for (int i = 0; i < tl; i++)
            tok[i] = g_ascii_tolower(tok[i]);
        w->fn(tok, (size_t)tl, w->arg);
    }
    g_free(mt);
    const char *cs = g_mime_content_type_get_parameter(ct, "charset");
    if (cs && strlen(cs) < 60 && g_utf8_validate(cs, -1, NULL)) {
        int tl = snprintf(tok, sizeof tok, "%scharset=%s", prefix, cs);
        for (int i = 0; i < tl; i++)
            tok[i] = g_ascii_tolower(tok[i]);
        w->fn(tok, (size_t)tl, w->arg);
    }
}

static void headers(walk *w, GMimeMessage *msg)
{
    header_tokens(w, "subject:", g_mime_message_get_subject(msg));
    address_tokens(w, "from:", g_mime_message_get_from(msg), 0);
    address_tokens(w, "to:", g_mime_message_get_to(msg), 0);
    address_tokens(w, "reply-to:", g_mime_message_get_reply_to(msg), 0);
    GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
    int n = g_mime_header_list_get_count(hl), received = 0;
    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h);
        if (name == NULL)
            continue;
        if (g_ascii_strcasecmp(name, "Received") == 0) {
            if (received++ < MAX_RECEIVED)
                received_tokens(w, g_mime_header_get_raw_value(h));
        } else if (g_ascii_strcasecmp(name, "X-Mailer") == 0) {
            header_tokens(w, "x-mailer:", g_mime_header_get_value(h));
        } else if (g_ascii_strcasecmp(name, "User-Agent") == 0) {
            header_tokens(w, "user-agent:", g_mime_header_get_value(h));
        }
    }
    GMimeObject *body = g_mime_message_get_mime_part(msg);
    if (body) {
        content_type_token(w, "content-type:",
                           g_mime_object_get_content_type(body));
        end_field(w);
    }
}

/* The decoded text of a part whose bytes are already what
 * g_mime_text_part_get_text would make: UTF-8 declared and valid, or
 * ASCII (no charset, us-ascii) and all ASCII.  Skips the charset
 * converter (two iconv passes, UTF-8 to UCS-4 and back, for text that
 * needs none).  NULL: convert the usual way. */
static char *text_as_is(GMimeTextPart *part)
{
    const char *cs = g_mime_object_get_content_type_parameter(
        GMIME_OBJECT(part), "charset");
    int utf8 = cs && (g_ascii_strcasecmp(cs, "utf-8") == 0 ||
                      g_ascii_strcasecmp(cs, "utf8") == 0);
    if (cs && !utf8 && g_ascii_strcasecmp(cs, "us-ascii") != 0)
        return NULL;
    GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(part));
    if (dw == NULL)
        return NULL;
    GMimeStream *mem = g_mime_stream_mem_new();
    if (mem == NULL)
        return NULL;
    char *text = NULL;
    if (g_mime_data_wrapper_write_to_stream(dw, mem) >= 0) {
        GByteArray *ba = g_mime_stream_mem_get_byte_array(
            GMIME_STREAM_MEM(mem));
        const char *d = (const char *)ba->data;
        size_t n = ba->len;
        int ok = 1;
        if (utf8) {
            ok = g_utf8_validate(d, (gssize)n, NULL);
        } else {
            for (size_t i = 0; i < n && ok; i++)
                ok = (unsigned char)d[i] < 0x80;
        }
        if (ok)
            text = g_strndup(d, n);
    }
    g_object_unref(mem);
    return text;
}

static void text_part(walk *w, GMimeTextPart *part, int html)
{
    char *text = text_as_is(part);
    if (text == NULL)
        text = g_mime_text_part_get_text(part);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    if (html) {
        char *plain = bayes_html_to_text(text, len, w->fn, w->arg);
        g_free(text);
        text = plain;
        len = strlen(text);
    }
    if (len > w->text_left)
        len = w->text_left;
    w->text_left -= len;
    if (!html)
        emit_text_urls(text, len, w->fn, w->arg);
    bayes_tokenize_text(text, len, "", w->fn, w->arg);
    end_field(w);
    g_free(text);
}

static void part_tokens(walk *w, GMimeObject *obj, int depth)
{
    if (obj == NULL || depth > BAYES_MAX_DEPTH ||
        w->parts >= BAYES_MAX_PARTS)
        return;
    w->parts++;
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; i++)
            part_tokens(w, g_mime_multipart_get_part(mp, i), depth + 1);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner =
            g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner)
            part_tokens(w, g_mime_message_get_mime_part(inner), depth + 1);
        return;
    }
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (GMIME_IS_TEXT_PART(obj) && w->text_left > 0) {
        int html = ct && g_mime_content_type_is_type(ct, "text", "html");
        int plain = ct && g_mime_content_type_is_type(ct, "text", "plain");
        if (html || plain) {
            if (html) {
                w->fn("part:text/html", 14, w->arg);
                end_field(w);
            }
            text_part(w, GMIME_TEXT_PART(obj), html);
            return;
        }
    }
    /* an attachment: its type and its file name's extension teach */
    content_type_token(w, "part:", ct);
    if (GMIME_IS_PART(obj)) {
        const char *fname = g_mime_part_get_filename(GMIME_PART(obj));
        const char *dot = fname ? strrchr(fname, '.') : NULL;
        if (dot && strlen(dot) < 12 && g_utf8_validate(dot, -1, NULL)) {
            char tok[32];
            int tl = snprintf(tok, sizeof tok, "filename:%s", dot + 1);
            for (int i = 0; i < tl; i++)
                tok[i] = g_ascii_tolower(tok[i]);
            w->fn(tok, (size_t)tl, w->arg);
        }
    }
    end_field(w);
}

int bayes_tokenize(const char *msg, size_t len, bayes_token_fn fn, void *arg)
{
    GMimeStream *stream =
        g_mime_stream_mem_new_with_buffer(msg, len);
    if (stream == NULL)
        return -ENOMEM;
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_object_unref(stream);
    if (parser == NULL)
        return -ENOMEM;
    GMimeParserOptions *opts = g_mime_parser_options_new();
    g_mime_parser_options_set_rfc2047_compliance_mode(
        opts, GMIME_RFC_COMPLIANCE_LOOSE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, opts);
    g_mime_parser_options_free(opts);
    g_object_unref(parser);
    if (m == NULL)
        return 0;
    walk w = {.fn = fn, .arg = arg, .text_left = BAYES_MAX_TEXT};
    headers(&w, m);
    part_tokens(&w, g_mime_message_get_mime_part(m), 0);
    g_object_unref(m);
    return 0;
}
