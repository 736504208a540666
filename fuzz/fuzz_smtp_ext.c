/*
 * fuzz_smtp_ext.c - libFuzzer target for host/smtp_ext.c: the DSN
 * parameter values (xtext, NOTIFY, RET, ENVID, ORCPT with rfc822 and
 * utf-8 address types), UTF-8 validation, IDN domains and the packed
 * parameter lists.
 *
 * The input (up to its first NUL) goes to every function.  What must
 * hold, else abort:
 *   - up_utf8_valid agrees with a reference written from RFC 3629's ABNF
 *     (a different method: byte ranges per sequence shape);
 *   - xtext that decodes gives no NUL and no more bytes than it had, and
 *     the decoded bytes, encoded again, decode to the same bytes;
 *   - an accepted NOTIFY has bits, NEVER alone; an accepted ENVID decodes
 *     to 1..100 printable ASCII characters; every refusal has a reason;
 *   - a domain converted to A-labels is lower-case ASCII and converts to
 *     itself;
 *   - the ESMTP parameters of "TO:<a@b.example> <input>" packed and
 *     formatted parse back to the same keywords and values.
 *
 * Build and run: make fuzz-smoke (Makefile FUZZ_* variables), or
 *   ./build/fuzz/fuzz_smtp_ext -max_total_time=60 fuzz/corpus/fuzz_smtp_ext
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_ext.h"
#include "smtp_parse.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* RFC 3629 4: UTF8-2 = C2-DF tail; UTF8-3 = E0 A0-BF tail / E1-EC 2tail /
 * ED 80-9F tail / EE-EF 2tail; UTF8-4 = F0 90-BF 2tail / F1-F3 3tail /
 * F4 80-8F 2tail */
static int ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
#define IN(b, lo, hi) ((b) >= (lo) && (b) <= (hi))
#define TAIL(k) (i + (k) < n && IN(s[i + (k)], 0x80, 0xbf))
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        if (IN(c, 0xc2, 0xdf) && TAIL(1)) { i += 2; continue; }
        if (c == 0xe0 && i + 1 < n && IN(s[i + 1], 0xa0, 0xbf) && TAIL(2)) { i += 3; continue; }
        if ((IN(c, 0xe1, 0xec) || IN(c, 0xee, 0xef)) && TAIL(1) && TAIL(2)) { i += 3; continue; }
        if (c == 0xed && i + 1 < n && IN(s[i + 1], 0x80, 0x9f) && TAIL(2)) { i += 3; continue; }
        if (c == 0xf0 && i + 1 < n && IN(s[i + 1], 0x90, 0xbf) && TAIL(2) && TAIL(3)) { i += 4; continue; }
        if (IN(c, 0xf1, 0xf3) && TAIL(1) && TAIL(2) && TAIL(3)) { i += 4; continue; }
        if (c == 0xf4 && i + 1 < n && IN(s[i + 1], 0x80, 0x8f) && TAIL(2) && TAIL(3)) { i += 4; continue; }
        return 0;
    }
    return 1;
#undef TAIL
#undef IN
}

static void fz_xtext(const char *in)
{
    char out[1024], enc[3200], again[1024];
    int n = up_xtext_decode(in, strlen(in), out, sizeof out);
    if (n < 0)
        return;
    FZ_CHECK((size_t)n == strlen(out) && (size_t)n <= strlen(in));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 33 || c > 126 || c == '+' || c == '=')
            k += (size_t)snprintf(enc + k, sizeof enc - k, "+%02X", c);
        else
            enc[k++] = (char)c;
    }
    enc[k] = '\0';
    int m = up_xtext_decode(enc, k, again, sizeof again);
    FZ_CHECK(m == n && memcmp(again, out, (size_t)n) == 0);
}

static void fz_dsn(const char *in)
{
    const char *why = NULL;
    unsigned bits;
    if (up_dsn_notify(in, &bits, &why) == 0) {
        FZ_CHECK(bits != 0);
        FZ_CHECK(!(bits & UP_NOTIFY_NEVER) || bits == UP_NOTIFY_NEVER);
    } else {
        FZ_CHECK(why && why[0]);
    }
    why = NULL;
    if (up_dsn_ret(in, &why) != 0)
        FZ_CHECK(why && why[0]);
    why = NULL;
    if (up_dsn_envid(in, &why) == 0) {
        char out[1024];
        int n = up_xtext_decode(in, strlen(in), out, sizeof out);
        FZ_CHECK(n >= 1 && n <= 100);
        for (int i = 0; i < n; i++)
            FZ_CHECK(out[i] >= 32 && out[i] <= 126);
    } else {
        FZ_CHECK(why && why[0]);
    }
    for (int utf8 = 0; utf8 < 2; utf8++) {
        why = NULL;
        int rc = up_dsn_orcpt(in, utf8, &why);
        if (rc != 0)
            FZ_CHECK(why && why[0]);
        else
            FZ_CHECK(strchr(in, ';') != NULL && strlen(in) <= 500);
        if (rc == 0 && !utf8)       /* what passes without SMTPUTF8 ... */
            FZ_CHECK(up_dsn_orcpt(in, 1, &why) == 0);   /* ... passes with */
    }
}

static void fz_domain(const char *in)
{
    char a[300], b[300];
    if (up_domain_to_ascii(in, a, sizeof a) != 0 || in[0] == '[')
        return;
    for (const char *p = a; *p; p++)
        FZ_CHECK((unsigned char)*p < 0x80 && !(*p >= 'A' && *p <= 'Z'));
    FZ_CHECK(up_domain_to_ascii(a, b, sizeof b) == 0 && !strcmp(a, b));
    FZ_CHECK(up_domain_equal(in, a));
}

static void fz_packed(const char *in)
{
    char arg[2048];
    snprintf(arg, sizeof arg, "TO:<a@b.example> %s", in);
    up_path p, q;
    up_parse_error e;
    if (up_path_parse(arg, 1, &p, &e) != 0)
        return;
    static const char *const keep[] = { "NOTIFY", "ORCPT", "X", NULL };
    char *packed = up_packed_new(p.mailbox, &p, keep);
    FZ_CHECK(packed != NULL && !strcmp(packed, p.mailbox));
    char line[8192];
    int n = up_packed_format(packed, line, sizeof line);
    FZ_CHECK(n >= 0 && (size_t)n == strlen(line));
    snprintf(arg, sizeof arg, "TO:<a@b.example> %s", line);
    FZ_CHECK(up_path_parse(arg, 1, &q, &e) == 0);
    for (int i = 0; i < p.nparams; i++) {
        const char *v = up_packed_param(packed, p.params[i].keyword);
        int kept = 0;
        for (size_t k = 0; keep[k]; k++)
            kept |= !strcmp(p.params[i].keyword, keep[k]);
        if (!kept) {
            FZ_CHECK(v == NULL);
            continue;
        }
        FZ_CHECK(v != NULL && !strcmp(v, p.params[i].value));
        const char *w = up_path_param(&q, p.params[i].keyword);
        FZ_CHECK(w != NULL && !strcmp(w, v));
    }
    free(packed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FZ_CHECK(up_utf8_valid((const char *)data, size) == ref_utf8(data, size));
    char *in = malloc(size + 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    fz_xtext(in);
    fz_dsn(in);
    fz_domain(in);
    fz_packed(in);
    free(in);
    return 0;
}
