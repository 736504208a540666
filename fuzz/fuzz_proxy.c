/*
 * fuzz_proxy.c - libFuzzer target for host/proxy.c, the PROXY protocol
 * v1/v2 header parser.
 *
 * The input is parsed whole; the answer must be -1, 0 or a length within
 * the input and within UP_PROXY_MAX.  A complete header parses to the same
 * result from exactly its own bytes, and every shorter prefix of it is
 * "need more" (0), never "invalid": the session feeds the parser a read
 * at a time and must reach the same answer wherever the reads split.  A
 * header with a client address gives addresses that inet_pton takes back
 * in their family and ports of 0-65535.  Any violation aborts.
 *
 * Build and run (from the repository root):  make fuzz, or
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ihost \
 *     fuzz/fuzz_proxy.c host/proxy.c -o build/fuzz_proxy
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    up_proxy_header h, h2;
    int n = up_proxy_parse(data, size, &h);
    FZ_CHECK(n >= -1 && (n <= 0 || ((size_t)n <= size && n <= UP_PROXY_MAX)));
    if (n <= 0)
        return 0;
    FZ_CHECK(h.version == 1 || h.version == 2);
    FZ_CHECK(up_proxy_parse(data, (size_t)n, &h2) == n);
    FZ_CHECK(memcmp(&h, &h2, sizeof h) == 0);
    for (size_t k = 0; k < (size_t)n; k++)
        FZ_CHECK(up_proxy_parse(data, k, &h2) == 0);
    if (!h.local) {
        unsigned char bin[16];
        int af = h.is_ipv6 ? AF_INET6 : AF_INET;
        FZ_CHECK(inet_pton(af, h.src_ip, bin) == 1);
        FZ_CHECK(inet_pton(af, h.dst_ip, bin) == 1);
        FZ_CHECK(h.src_port >= 0 && h.src_port <= 65535);
        FZ_CHECK(h.dst_port >= 0 && h.dst_port <= 65535);
    }
    return 0;
}
