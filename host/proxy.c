/*
 * proxy.c - the PROXY protocol header parser (see proxy.h).
 *
 * v1 is one text line: "PROXY TCP4|TCP6 src dst sport dport\r\n" or
 * "PROXY UNKNOWN ...\r\n", at most 107 bytes.  v2 is binary: a 12-byte
 * signature, a version/command byte, a family/protocol byte, a 16-bit
 * length and the addresses (TLVs after them are skipped).  Addresses are
 * checked with inet_pton and written back with inet_ntop, so what a
 * plugin sees is the canonical text form whatever the proxy sent.
 *
 * Fails: -1 for anything the spec does not allow (see proxy.h); a prefix
 * that could still become a valid header is "need more" (0).
 */
#include <arpa/inet.h>
#include <string.h>

#include "proxy.h"

static const unsigned char v2_sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};
static const char v1_sig[] = "PROXY ";

#define V1_MAX 107

/* A decimal port, 0-65535, 1 to 5 digits, no sign and no leading zero
 * (other than "0" itself). */
static int port_parse(const char *p, size_t n, int *out)
{
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

/* One address of family af from n bytes of text, written back canonical. */
static int addr_text(int af, const char *p, size_t n, char *out, size_t outlen)
{
    char tmp[64];
    unsigned char bin[16];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    if (inet_pton(af, tmp, bin) != 1)
        return -1;
    return inet_ntop(af, bin, out, (socklen_t)outlen) ? 0 : -1;
}

static int parse_v1(const char *buf, size_t len, up_proxy_header *out)
{
    size_t lim = len < V1_MAX ? len : V1_MAX;
    const char *cr = NULL;
    for (size_t i = 0; i + 1 < lim; i++) {
        if (buf[i] == '\r') {
            if (buf[i + 1] != '\n')
                return -1;
            cr = buf + i;
            break;
        }
        if (buf[i] == '\n' || buf[i] == '\0')
            return -1;
    }
    if (cr == NULL)
        return len >= V1_MAX ? -1 : 0;
    int hlen = (int)(cr - buf) + 2;
    out->version = 1;
    const char *p = buf + 6, *end = cr;
    if ((size_t)(end - p) >= 7 && !memcmp(p, "UNKNOWN", 7) &&
        (p + 7 == end || p[7] == ' ')) {
        out->local = 1;                 /* the rest of the line is ignored */
        return hlen;
    }
    int af;
    if ((size_t)(end - p) > 5 && !memcmp(p, "TCP4 ", 5))
        af = AF_INET;
    else if ((size_t)(end - p) > 5 && !memcmp(p, "TCP6 ", 5))
        af = AF_INET6;
    else
        return -1;
    p += 5;
    /* four fields, single spaces */
    const char *f[4];
    size_t fl[4];
    for (int i = 0; i < 4; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *fe = i < 3 ? sp : end;
        if (fe == NULL || (i == 3 && sp != NULL) || fe == p)
            return -1;
        f[i] = p;
        fl[i] = (size_t)(fe - p);
        p = fe + (i < 3);
    }
    out->is_ipv6 = af == AF_INET6;
    if (addr_text(af, f[0], fl[0], out->src_ip, sizeof out->src_ip) ||
        addr_text(af, f[1], fl[1], out->dst_ip, sizeof out->dst_ip) ||
        port_parse(f[2], fl[2], &out->src_port) ||
        port_parse(f[3], fl[3], &out->dst_port))
        return -1;
    return hlen;
}

static int parse_v2(const unsigned char *buf, size_t len,
                    up_proxy_header *out)
{
    if (len < 16)
        return 0;
    int ver = buf[12] >> 4, cmd = buf[12] & 15;
    int fam = buf[13] >> 4, proto = buf[13] & 15;
    size_t alen = (size_t)buf[14] << 8 | buf[15];
    if (ver != 2 || cmd > 1 || fam > 3 || proto > 2)
        return -1;
    if (16 + alen > UP_PROXY_MAX)
        return -1;
    if (len < 16 + alen)
        return 0;
    out->version = 2;
    const unsigned char *a = buf + 16;
    if (cmd == 0 || fam == 0 || fam == 3) {
        out->local = 1;     /* LOCAL (a health check), or no IP address */
        return (int)(16 + alen);
    }
    if (fam == 1) {
        if (alen < 12)
            return -1;
        inet_ntop(AF_INET, a, out->src_ip, sizeof out->src_ip);
        inet_ntop(AF_INET, a + 4, out->dst_ip, sizeof out->dst_ip);
        out->src_port = a[8] << 8 | a[9];
        out->dst_port = a[10] << 8 | a[11];
    } else {
        if (alen < 36)
            return -1;
        inet_ntop(AF_INET6, a, out->src_ip, sizeof out->src_ip);
        inet_ntop(AF_INET6, a + 16, out->dst_ip, sizeof out->dst_ip);
        out->src_port = a[32] << 8 | a[33];
        out->dst_port = a[34] << 8 | a[35];
        out->is_ipv6 = 1;
    }
    return (int)(16 + alen);
}

int up_proxy_parse(const unsigned char *buf, size_t len,
                   up_proxy_header *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return 0;
    if (buf[0] == v2_sig[0]) {
        size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
        if (memcmp(buf, v2_sig, n) != 0)
            return -1;
        return parse_v2(buf, len, out);
    }
    size_t n = len < sizeof v1_sig - 1 ? len : sizeof v1_sig - 1;
    if (memcmp(buf, v1_sig, n) != 0)
        return -1;
    if (len < sizeof v1_sig - 1)
        return 0;
    return parse_v1((const char *)buf, len, out);
}
