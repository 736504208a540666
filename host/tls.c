/*
 * tls.c - wolfSSL over memory buffers for SMTP sessions (see tls.h).
 *
 * wolfSSL reads and writes through two callbacks set on every context:
 * tls_recv hands out the ciphertext the session fed (or WANT_READ when it
 * is used up) and tls_send appends to the output buffer, which never
 * refuses.  So wolfSSL_accept, wolfSSL_read and wolfSSL_write never block
 * and never see a socket; the session decides when to read and write.
 *
 * Protocol floor: TLS 1.2 (wolfSSL_CTX_SetMinVersion); TLS 1.3 is offered
 * by the build Debian ships (WOLFSSL_TLS13 in wolfssl/options.h, with SNI
 * and session tickets).  The default cipher list keeps forward secrecy and
 * AEAD only, in the server's order.
 *
 * Several certificates (tls_sni): each name gets a WOLFSSL_CTX of its own,
 * built once per generation.  Sessions start on the tls_cert context; its
 * servername callback, called by wolfSSL after the ClientHello is parsed,
 * moves the session to the context of the matching name with
 * wolfSSL_set_SSL_CTX, which shares that context's certificate and key
 * (nothing is copied per session).
 *
 * Resumption (docs/tls.md): TLS 1.2 session IDs live in a cache every
 * worker shares (tls_cache.c); TLS 1.2 and 1.3 tickets are sealed under
 * keys every worker derives alike (tls_ticket.c).  The ClientHello
 * callback also keeps RFC 6066 truncated_hmac and max_fragment_length out
 * of TLS 1.2 ServerHellos (see refuse_rfc6066_extras).
 *
 * Fails: a context that cannot be built returns NULL with the reason; a
 * connection's failure is remembered as text for the session's log line
 * ("handshake failed: ...") and every later call fails too.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "tls.h"
#include "tls_cache.h"
#include "tls_ticket.h"

/* More ciphertext than this buffered means the session lost control of
 * its reading: refuse rather than grow. */
#define UP_TLS_MAX_BUFFERED (1024 * 1024)

const char up_tls_default_ciphers[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
    "TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static const char up_tls_groups[] = "X25519:P-256:P-384:P-521";

/* One tls_sni line, built: its own WOLFSSL_CTX (certificate and key are
 * loaded once per generation, and a session switched to it shares them). */
typedef struct tls_sni_ctx {
    char *name;                 /* lower case; "*.example.com" or exact */
    WOLFSSL_CTX *ctx;
} tls_sni_ctx;

struct up_tls_ctx {
    WOLFSSL_CTX *ctx;           /* tls_cert: no name sent, or no match   */
    tls_sni_ctx *sni;
    size_t n_sni;
    up_tls_ticket_keys *tickets; /* shared by ctx and every sni ctx;
                                  * NULL: tls_session_tickets = no      */
    int aead_only;              /* no CBC suite in the cipher list      */
};

struct up_tls {
    WOLFSSL *ssl;
    char *in;                   /* ciphertext fed, from in_pos on unread */
    size_t in_len, in_pos, in_cap;
    char *out;                  /* ciphertext to send                    */
    size_t out_len, out_cap;
    int established;
    int failed;
    int notified;               /* close_notify queued                   */
    size_t fed;                 /* bytes fed in all, for the error hint  */
    char first[8];              /* the first bytes the client sent       */
    char error[200];
    char cipher[64];
    int resumed;                /* an earlier session, by ID or ticket  */
    char *server_name;          /* the client's SNI, printable; or NULL  */
    const char *sni_match;      /* the tls_sni name served; NULL: tls_cert
                                 * (points into the up_tls_ctx)          */
};

static int wolfssl_ready;

static int tls_global_init(void)
{
    if (!wolfssl_ready) {
        if (wolfSSL_Init() != WOLFSSL_SUCCESS)
            return -1;
        wolfssl_ready = 1;
    }
    return 0;
}

void up_tls_cleanup(void)
{
    if (wolfssl_ready) {
        wolfSSL_Cleanup();
        wolfssl_ready = 0;
    }
}

/* ---------------------------------------------------------------------- */
/* the I/O callbacks                                                       */

static int tls_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    up_tls *t = arg;
    size_t avail = t->in_len - t->in_pos;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, t->in + t->in_pos, n);
    t->in_pos += n;
    if (t->in_pos == t->in_len) {
        /* an idle connection keeps no input buffer */
        free(t->in);
        t->in = NULL;
        t->in_len = t->in_pos = t->in_cap = 0;
    }
    return (int)n;
}

static int tls_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    (void)ssl;
    up_tls *t = arg;
    size_t need = t->out_len + (size_t)sz;
    if (need > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *grown = realloc(t->out, cap);
        if (grown == NULL)
            return WOLFSSL_CBIO_ERR_GENERAL;
        t->out = grown;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, buf, (size_t)sz);
    t->out_len += (size_t)sz;
    return sz;
}

/* ---------------------------------------------------------------------- */
/* contexts                                                                */

static int file_readable(const char *what, const char *path, char *err,
                         size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "%s %s: cannot open: %s", what, path,
                 strerror(errno));
        return -1;
    }
    fclose(fp);
    return 0;
}

static WOLFSSL_CTX *ctx_new(char *err, size_t errlen)
{
    if (tls_global_init() != 0) {
        snprintf(err, errlen, "cannot initialise wolfSSL");
        return NULL;
    }
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (ctx == NULL)
        snprintf(err, errlen, "cannot create a TLS context (out of memory)");
    return ctx;
}

/* what names the setting in messages: "tls_cert", or "tls_sni NAME
 * certificate" */
static int load_cert(WOLFSSL_CTX *ctx, const char *what, const char *path,
                     char *err, size_t errlen)
{
    if (file_readable(what, path, err, errlen) != 0)
        return -1;
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, path) !=
        WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s %s: not a PEM certificate (chain) "
                 "wolfSSL can use", what, path);
        return -1;
    }
    return 0;
}

static int load_key(WOLFSSL_CTX *ctx, const char *what, const char *path,
                    char *err, size_t errlen)
{
    if (file_readable(what, path, err, errlen) != 0)
        return -1;
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, path, WOLFSSL_FILETYPE_PEM) !=
        WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s %s: not a PEM private key wolfSSL "
                 "can use (RSA or ECDSA, unencrypted)", what, path);
        return -1;
    }
    return 0;
}

static int set_ciphers(WOLFSSL_CTX *ctx, const char *list, char *err,
                       size_t errlen)
{
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "tls_ciphers '%s': no cipher suite wolfSSL "
                 "knows (names as in 'openssl ciphers', ':' between)", list);
        return -1;
    }
    return 0;
}

/* Certificate and key of one setting, and that they belong together. */
static int load_pair(WOLFSSL_CTX *ctx, const char *name, const char *cert,
                     const char *key, char *err, size_t errlen)
{
    char what_cert[320], what_key[320];
    if (name) {
        snprintf(what_cert, sizeof what_cert, "tls_sni %s certificate",
                 name);
        snprintf(what_key, sizeof what_key, "tls_sni %s key", name);
    } else {
        snprintf(what_cert, sizeof what_cert, "tls_cert");
        snprintf(what_key, sizeof what_key, "tls_key");
    }
    if (load_cert(ctx, what_cert, cert, err, errlen) != 0 ||
        load_key(ctx, what_key, key, err, errlen) != 0)
        return -1;
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
        if (name)
            snprintf(err, errlen, "tls_sni %s: key %s does not belong to "
                     "the certificate %s", name, key, cert);
        else
            snprintf(err, errlen, "tls_key %s does not belong to the "
                     "certificate in tls_cert %s", key, cert);
        return -1;
    }
    return 0;
}

int up_tls_check_cert(const char *path, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = ctx_new(err, errlen);
    if (ctx == NULL)
        return -1;
    int rc = load_cert(ctx, "tls_cert", path, err, errlen);
    wolfSSL_CTX_free(ctx);
    return rc;
}

int up_tls_check_key(const char *path, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = ctx_new(err, errlen);
    if (ctx == NULL)
        return -1;
    int rc = load_key(ctx, "tls_key", path, err, errlen);
    wolfSSL_CTX_free(ctx);
    return rc;
}

int up_tls_check_ciphers(const char *list, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = ctx_new(err, errlen);
    if (ctx == NULL)
        return -1;
    int rc = set_ciphers(ctx, list, err, errlen);
    wolfSSL_CTX_free(ctx);
    return rc;
}

int up_tls_check_ticket_key_file(const char *path, char *err, size_t errlen)
{
    return up_tls_ticket_check_file(path, err, errlen);
}

int up_tls_seed(void)
{
    return up_tls_ticket_seed();
}

int up_tls_cache_start(size_t n)
{
    return up_tls_cache_init(n);
}

int up_tls_check_sni(const char *name, const char *cert, const char *key,
                     char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = ctx_new(err, errlen);
    if (ctx == NULL)
        return -1;
    int rc = load_pair(ctx, name, cert, key, err, errlen);
    wolfSSL_CTX_free(ctx);
    return rc;
}

/* A label of a host name: letters, digits, '-' inside, 1 to 63 long. */
static size_t label_len(const char *p)
{
    size_t n = 0;
    while (p[n] && p[n] != '.') {
        if (!isalnum((unsigned char)p[n]) && p[n] != '-')
            return 0;
        n++;
    }
    if (n > 63 || p[0] == '-' || (n && p[n - 1] == '-'))
        return 0;
    return n;
}

int up_tls_check_sni_name(const char *name, char *err, size_t errlen)
{
    const char *p = name;
    if (p[0] == '*' && p[1] == '.')
        p += 2;
    size_t labels = 0, len = strlen(p);
    for (const char *l = p; len <= 253; labels++) {
        size_t n = label_len(l);
        if (n == 0)
            break;
        if (l[n] == '\0') {
            if (p != name && labels == 0) /* "*.com": one label after */
                break;
            return 0;
        }
        l += n + 1;
    }
    snprintf(err, errlen, "'%s' is not a host name or '*.' and a "
             "domain of two labels or more (one wildcard, left-most)", name);
    return -1;
}

int up_tls_name_matches(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        /* RFC 6125 6.4.3: '*' is exactly one whole, non-empty label */
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && !strcasecmp(dot + 1,
                                                         pattern + 2);
    }
    return !strcasecmp(pattern, name);
}

/* The ClientHello callback (wolfSSL_CTX_set_servername_callback): wolfSSL
 * calls it for every ClientHello, after the extensions are parsed and
 * before the ServerHello is written, whether the client sent a name or not.
 *
 * RFC 6066 truncated_hmac and max_fragment_length: wolfSSL, when built
 * with them (Debian's build is: HAVE_TRUNCATED_HMAC, HAVE_MAX_FRAGMENT),
 * accepts both from every TLS 1.2 client and answers them in the
 * ServerHello; it has no switch to refuse them.  So a TLS 1.2 handshake
 * declares them again here with wolfSSL_UseMaxFragment and
 * wolfSSL_UseTruncatedHMAC, which replace the parsed extension by one not
 * marked as an answer, and the ServerHello carries neither.  What wolfSSL
 * took from the client stays: its records are at most the size the client
 * asked for (every client reads those), and a truncated MAC would apply
 * to CBC suites only: so truncated_hmac is kept out only when the cipher
 * list has none (the default; see aead_only), else wolfSSL's answer
 * stands and client and server agree on the MAC.
 *
 * Not in TLS 1.3: there wolfSSL requires the pre_shared_key extension to
 * be the last one on its list (a resumption fails with "psk key callback
 * error" otherwise), so max_fragment_length, which RFC 8446 allows and
 * wolfSSL honours, stays answered in the EncryptedExtensions;
 * truncated_hmac does not exist in TLS 1.3. */
static void refuse_rfc6066_extras(WOLFSSL *ssl, const up_tls_ctx *c)
{
    if (wolfSSL_version(ssl) == TLS1_3_VERSION)
        return;
    wolfSSL_UseMaxFragment(ssl, WOLFSSL_MFL_2_13);
    if (c->aead_only)
        wolfSSL_UseTruncatedHMAC(ssl);
}

/* Does the context offer AEAD suites only (GCM, CCM, ChaCha20-Poly1305)?
 * Then no record carries an HMAC that truncated_hmac could shorten. */
static int aead_only(WOLFSSL_CTX *ctx)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (ssl == NULL)
        return 0;
    /* the list is the connection's: wolfSSL frees it with ssl */
    WOLF_STACK_OF(WOLFSSL_CIPHER) *list = wolfSSL_get_ciphers_compat(ssl);
    int n = list ? wolfSSL_sk_SSL_CIPHER_num(list) : 0, only = n > 0;
    for (int i = 0; i < n; i++) {
        const char *name = wolfSSL_CIPHER_get_name(
            wolfSSL_sk_SSL_CIPHER_value(list, i));
        if (name == NULL || (!strstr(name, "GCM") && !strstr(name, "CCM") &&
                             !strstr(name, "CHACHA20")))
            only = 0;
    }
    wolfSSL_free(ssl);
    return only;
}

/* SNI: an exact name wins over a wildcard; no name or no match keeps
 * tls_cert.  Returning 0 (SSL_TLSEXT_ERR_OK) never fails the handshake on
 * a name. */
static int tls_on_server_name(WOLFSSL *ssl, int *alert, void *arg)
{
    (void)alert;
    up_tls_ctx *c = arg;
    up_tls *t = wolfSSL_GetIOReadCtx(ssl);
    refuse_rfc6066_extras(ssl, c);
    const char *name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
    if (t == NULL || name == NULL || name[0] == '\0' || t->server_name)
        return 0;
    size_t len = strnlen(name, 255);
    if ((t->server_name = malloc(len + 1)) == NULL)
        return 0;
    for (size_t i = 0; i < len; i++)    /* it goes into the log */
        t->server_name[i] = isgraph((unsigned char)name[i]) ? name[i] : '?';
    t->server_name[len] = '\0';
    if (len && t->server_name[len - 1] == '.')
        t->server_name[len - 1] = '\0';  /* RFC 6066 forbids it; be kind */
    const tls_sni_ctx *hit = NULL;
    for (size_t i = 0; i < c->n_sni; i++) {
        if (!up_tls_name_matches(c->sni[i].name, t->server_name))
            continue;
        hit = &c->sni[i];
        if (c->sni[i].name[0] != '*')
            break;
    }
    if (hit && wolfSSL_set_SSL_CTX(ssl, hit->ctx) != NULL) {
        /* the I/O context is the session's, whatever the WOLFSSL_CTX */
        wolfSSL_SetIOReadCtx(ssl, t);
        wolfSSL_SetIOWriteCtx(ssl, t);
        t->sni_match = hit->name;
    }
    return 0;
}

/* A server context for one certificate: protocol floor, ciphers, groups,
 * the memory I/O callbacks.  name: NULL for tls_cert, else the tls_sni
 * name (for messages). */
static WOLFSSL_CTX *server_ctx(const char *name, const char *cert,
                               const char *key, const char *ciphers,
                               const up_tls_resume *resume,
                               up_tls_ticket_keys *tickets, char *err,
                               size_t errlen)
{
    WOLFSSL_CTX *ctx = ctx_new(err, errlen);
    if (ctx == NULL)
        return NULL;
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set TLS 1.2 as the minimum version");
        goto fail;
    }
    if (load_pair(ctx, name, cert, key, err, errlen) != 0 ||
        set_ciphers(ctx, ciphers ? ciphers : up_tls_default_ciphers, err,
                    errlen) != 0)
        goto fail;
    /* key exchange on curves worth the name (sslscan lists the rest) */
    int groups[] = { WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1,
                     WOLFSSL_ECC_SECP384R1, WOLFSSL_ECC_SECP521R1 };
    if (wolfSSL_CTX_set1_curves_list(ctx, up_tls_groups) !=
            WOLFSSL_SUCCESS ||             /* TLS 1.2 ECDHE */
        wolfSSL_CTX_set_groups(ctx, groups,
                               (int)(sizeof groups / sizeof *groups)) !=
            WOLFSSL_SUCCESS) {             /* TLS 1.3 key shares */
        snprintf(err, errlen, "cannot set the key exchange groups %s",
                 up_tls_groups);
        goto fail;
    }
    /* SMTP clients do not present certificates to us by default */
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    /* resumption: by session ID from the cache the workers share
     * (tls_cache.c), by tickets under the keys they share (tls_ticket.c) */
    long timeout = resume && resume->timeout > 0 ? resume->timeout : 3600;
    /* (returns the previous timeout in builds with OPENSSL_EXTRA, as
     * Debian's; it fails only on a NULL context) */
    wolfSSL_CTX_set_timeout(ctx, (unsigned)timeout);
    up_tls_cache_attach(ctx);
    if (tickets ? up_tls_ticket_attach(ctx, tickets) != 0
                : wolfSSL_CTX_NoTicketTLSv12(ctx) != WOLFSSL_SUCCESS ||
                  wolfSSL_CTX_no_ticket_TLSv13(ctx) < 0) {
        snprintf(err, errlen, "cannot set up TLS session tickets");
        goto fail;
    }
    wolfSSL_CTX_SetIORecv(ctx, tls_recv);
    wolfSSL_CTX_SetIOSend(ctx, tls_send);
    return ctx;
fail:
    wolfSSL_CTX_free(ctx);
    return NULL;
}

up_tls_ctx *up_tls_ctx_new(const char *cert, const char *key,
                           const char *ciphers, const up_tls_sni *sni,
                           size_t n_sni, const up_tls_resume *resume,
                           char *err, size_t errlen)
{
    up_tls_ctx *c = calloc(1, sizeof *c);
    if (c == NULL || (n_sni && (c->sni = calloc(n_sni,
                                                sizeof *c->sni)) == NULL)) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* the first context (the supervisor's) makes the shared session
     * cache, so that contexts are built with it; a failure is not fatal
     * (each worker keeps wolfSSL's own cache) and main says so */
    if (resume)
        (void)up_tls_cache_init(resume->cache_size);
    if ((resume == NULL || resume->tickets) &&
        (c->tickets = up_tls_ticket_keys_new(
             resume ? resume->ticket_key_file : NULL,
             resume ? resume->timeout : 3600, err, errlen)) == NULL)
        goto fail;
    if ((c->ctx = server_ctx(NULL, cert, key, ciphers, resume, c->tickets,
                             err, errlen)) == NULL)
        goto fail;
    for (; c->n_sni < n_sni; c->n_sni++) {
        tls_sni_ctx *e = &c->sni[c->n_sni];
        const up_tls_sni *s = &sni[c->n_sni];
        if ((e->name = strdup(s->name)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if ((e->ctx = server_ctx(s->name, s->cert, s->key, ciphers, resume,
                                 c->tickets, err, errlen)) == NULL) {
            c->n_sni++;         /* so that its name is freed */
            goto fail;
        }
    }
    /* always: it also keeps truncated_hmac and max_fragment_length out
     * of the ServerHello */
    c->aead_only = aead_only(c->ctx);
    wolfSSL_CTX_set_servername_callback(c->ctx, tls_on_server_name);
    if (wolfSSL_CTX_set_servername_arg(c->ctx, c) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set the ClientHello callback");
        goto fail;
    }
    return c;
fail:
    up_tls_ctx_free(c);
    return NULL;
}

void up_tls_ctx_free(up_tls_ctx *c)
{
    if (c == NULL)
        return;
    if (c->ctx)
        wolfSSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->n_sni; i++) {
        if (c->sni[i].ctx)
            wolfSSL_CTX_free(c->sni[i].ctx);
        free(c->sni[i].name);
    }
    free(c->sni);
    up_tls_ticket_keys_free(c->tickets);
    free(c);
}

/* ---------------------------------------------------------------------- */
/* connections                                                             */

up_tls *up_tls_new(up_tls_ctx *ctx)
{
    up_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ssl = wolfSSL_new(ctx->ctx);
    if (t->ssl == NULL) {
        free(t);
        return NULL;
    }
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    return t;
}

void up_tls_free(up_tls *t)
{
    if (t == NULL)
        return;
    wolfSSL_free(t->ssl);
    free(t->server_name);
    free(t->in);
    free(t->out);
    free(t);
}

int up_tls_feed(up_tls *t, const char *buf, size_t len)
{
    if (t->fed < sizeof t->first) {
        size_t n = sizeof t->first - t->fed < len ? sizeof t->first - t->fed
                                                  : len;
        memcpy(t->first + t->fed, buf, n);
    }
    t->fed += len;
    if (t->in_pos > 0) {
        memmove(t->in, t->in + t->in_pos, t->in_len - t->in_pos);
        t->in_len -= t->in_pos;
        t->in_pos = 0;
    }
    if (t->in_len + len > UP_TLS_MAX_BUFFERED) {
        snprintf(t->error, sizeof t->error, "more than %d bytes of "
                 "ciphertext buffered", UP_TLS_MAX_BUFFERED);
        t->failed = 1;
        return -1;
    }
    if (t->in_len + len > t->in_cap) {
        size_t cap = t->in_cap ? t->in_cap : 4096;
        while (cap < t->in_len + len)
            cap *= 2;
        char *grown = realloc(t->in, cap);
        if (grown == NULL) {
            snprintf(t->error, sizeof t->error, "out of memory");
            t->failed = 1;
            return -1;
        }
        t->in = grown;
        t->in_cap = cap;
    }
    memcpy(t->in + t->in_len, buf, len);
    t->in_len += len;
    return 0;
}

size_t up_tls_buffered(const up_tls *t)
{
    return t->in_len - t->in_pos;
}

/* Remember why wolfSSL gave up, in words an admin can act on. */
static void set_error(up_tls *t, int ret, const char *what)
{
    int err = wolfSSL_get_error(t->ssl, ret);
    char reason[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, reason, sizeof reason);
    const char *hint = "";
    WOLFSSL_ALERT_HISTORY h;
    char alert[48] = "";
    if (wolfSSL_get_alert_history(t->ssl, &h) == WOLFSSL_SUCCESS &&
        h.last_rx.code > 0)
        snprintf(alert, sizeof alert, ", client sent alert %d",
                 h.last_rx.code);
    if (!t->established && t->fed > 0 && t->first[0] != 0x16) {
        /* not a TLS handshake record: say what it looked like */
        int text = 1;
        size_t n = t->fed < sizeof t->first ? t->fed : sizeof t->first;
        for (size_t i = 0; i < n; i++)
            if (t->first[i] < 0x20 && t->first[i] != '\r' &&
                t->first[i] != '\n')
                text = 0;
        hint = text ? " (the client sent plain text, not a ClientHello)"
                    : " (the client sent no ClientHello)";
    }
    snprintf(t->error, sizeof t->error, "%s: %s (wolfSSL %d)%s%s", what,
             reason, err, alert, hint);
    t->failed = 1;
}

int up_tls_handshake(up_tls *t)
{
    if (t->failed)
        return -1;
    if (t->established)
        return 1;
    int rc = wolfSSL_accept(t->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        t->established = 1;
        /* OpenSSL's names, which admins know from Received headers:
         * IANA's for TLS 1.3, wolfSSL's (the same as OpenSSL's) below */
        const char *name;
        if (wolfSSL_version(t->ssl) == TLS1_3_VERSION) {
            int suite = wolfSSL_get_current_cipher_suite(t->ssl);
            name = wolfSSL_get_cipher_name_iana_from_suite(
                (unsigned char)(suite >> 8), (unsigned char)suite);
        } else {
            name = wolfSSL_get_cipher_name(t->ssl);
        }
        snprintf(t->cipher, sizeof t->cipher, "%s", name ? name : "unknown");
        t->resumed = wolfSSL_session_reused(t->ssl) == 1;
        return 1;
    }
    if (wolfSSL_get_error(t->ssl, rc) == WOLFSSL_ERROR_WANT_READ)
        return 0;
    set_error(t, rc, "handshake failed");
    return -1;
}

int up_tls_established(const up_tls *t)
{
    return t->established;
}

long up_tls_read(up_tls *t, char *buf, size_t len)
{
    if (t->failed)
        return -1;
    int n = wolfSSL_read(t->ssl, buf, len > 65536 ? 65536 : (int)len);
    if (n > 0)
        return n;
    int err = wolfSSL_get_error(t->ssl, n);
    if (err == WOLFSSL_ERROR_WANT_READ)
        return 0;
    if (err == WOLFSSL_ERROR_ZERO_RETURN) {
        snprintf(t->error, sizeof t->error, "client sent close_notify");
        return UP_TLS_CLOSED;
    }
    set_error(t, n, "TLS read failed");
    return -1;
}

int up_tls_write(up_tls *t, const char *buf, size_t len)
{
    if (t->failed || !t->established)
        return -1;
    while (len > 0) {
        int chunk = len > 16384 ? 16384 : (int)len;
        int n = wolfSSL_write(t->ssl, buf, chunk);
        if (n <= 0) {
            set_error(t, n, "TLS write failed");
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void up_tls_close_notify(up_tls *t)
{
    if (t->failed || !t->established || t->notified)
        return;
    t->notified = 1;
    wolfSSL_shutdown(t->ssl);   /* queues the alert; we do not wait */
}

char *up_tls_take_output(up_tls *t, size_t *len)
{
    /* the caller owns the buffer: an idle connection keeps none */
    char *out = t->out;
    *len = t->out_len;
    t->out = NULL;
    t->out_len = t->out_cap = 0;
    return out;
}

const char *up_tls_error(const up_tls *t)
{
    return t->error[0] ? t->error : "unknown error";
}

const char *up_tls_version(const up_tls *t)
{
    return t->established ? wolfSSL_get_version(t->ssl) : NULL;
}

const char *up_tls_cipher(const up_tls *t)
{
    return t->established ? t->cipher : NULL;
}

int up_tls_resumed(const up_tls *t)
{
    return t->established && t->resumed;
}

const char *up_tls_server_name(const up_tls *t)
{
    return t->server_name;
}

const char *up_tls_sni_match(const up_tls *t)
{
    return t->sni_match;
}
