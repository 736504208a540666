/*
 * fuzz_xclient.c - libFuzzer target for host/xclient_parse.c: XCLIENT's
 * arguments ("NAME=value ADDR=... PORT=... PROTO=... HELO=... LOGIN=...")
 * and the xtext (RFC 3461) their values are written in.
 *
 * The first byte chooses: even, the rest (cut at its first NUL) is the
 * XCLIENT argument; odd, the rest is one xtext value, given as NAME=
 * (the decoder itself is host/smtp_ext.c's, fuzzed by fuzz_smtp_ext).
 *
 * Invariants.  Parsed attributes: port -1..65535, proto -1..1,
 * ADDR empty or a canonical address of the family is_ipv6 says, NAME,
 * HELO and LOGIN printable without space, HELO passes the HELO check; the
 * attributes printed back as XCLIENT arguments parse to the same.  A
 * refusal has a reply text.  Any difference aborts.
 *
 * Build and run: make fuzz; build/fuzz/fuzz_xclient fuzz/corpus/fuzz_xclient
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "xclient_parse.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 32 || (unsigned char)*s >= 127)
            return 0;
    return 1;
}

/* xtext of s: '+', '=' and what is not printable as +XX */
static void xtext_encode(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s && o + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '+' || c == '=' || c <= 32 || c >= 127)
            o += (size_t)snprintf(out + o, size - o, "+%02X", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

static void put(char *buf, size_t size, const char *key, const char *v)
{
    char enc[1024];
    size_t n = strlen(buf);
    xtext_encode(v, enc, sizeof enc);
    snprintf(buf + n, size - n, "%s%s=%s", n ? " " : "", key, enc);
}

static void fuzz_args(const char *arg)
{
    up_xclient_attrs a, b;
    const char *bad = up_xclient_parse(arg, &a);
    if (bad != NULL) {
        FZ_CHECK(bad[0] != '\0');
        return;
    }
    FZ_CHECK(a.port >= -1 && a.port <= 65535);
    FZ_CHECK(a.proto >= -1 && a.proto <= 1);
    FZ_CHECK(memchr(a.name, '\0', sizeof a.name) && printable(a.name));
    FZ_CHECK(memchr(a.helo, '\0', sizeof a.helo) && printable(a.helo));
    FZ_CHECK(memchr(a.login, '\0', sizeof a.login) && printable(a.login));
    FZ_CHECK(memchr(a.addr, '\0', sizeof a.addr));
    if (a.addr[0]) {
        unsigned char bin[16];
        char canon[64];
        int af = a.is_ipv6 ? AF_INET6 : AF_INET;
        FZ_CHECK(inet_pton(af, a.addr, bin) == 1);
        FZ_CHECK(inet_ntop(af, bin, canon, sizeof canon) != NULL);
        FZ_CHECK(strcmp(canon, a.addr) == 0);
    }
    if (a.helo[0]) {
        up_parse_error err;
        FZ_CHECK(up_helo_check(a.helo, 0, &err) == 0);
    }

    /* printed back, the given attributes parse to the same */
    char text[4096] = "";
    if (a.name[0])
        put(text, sizeof text, "NAME", a.name);
    if (a.addr[0])
        put(text, sizeof text, "ADDR", a.addr);
    if (a.helo[0])
        put(text, sizeof text, "HELO", a.helo);
    if (a.login[0])
        put(text, sizeof text, "LOGIN", a.login);
    if (a.port >= 0) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%sPORT=%d", n ? " " : "", a.port);
    }
    if (a.proto >= 0) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%sPROTO=%s", n ? " " : "",
                 a.proto ? "ESMTP" : "SMTP");
    }
    if (text[0] == '\0')
        return;                  /* only empty or unavailable values */
    FZ_CHECK(up_xclient_parse(text, &b) == NULL);
    FZ_CHECK(!strcmp(a.name, b.name) && !strcmp(a.addr, b.addr) &&
             !strcmp(a.helo, b.helo) && !strcmp(a.login, b.login) &&
             a.port == b.port && a.proto == b.proto &&
             (!a.addr[0] || a.is_ipv6 == b.is_ipv6));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int xtext = data[0] & 1;
    data++, size--;
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (xtext) {
        char *arg = malloc(size + sizeof "NAME=");
        if (arg != NULL) {
            snprintf(arg, size + sizeof "NAME=", "NAME=%s", buf);
            fuzz_args(arg);
            free(arg);
        }
    } else {
        fuzz_args(buf);
    }
    free(buf);
    return 0;
}
