/*
 * fuzz_dns_answer.c - libFuzzer target for host/dns_answer.c, the parser
 * that turns a DNS response into the answer plugins see.
 *
 * c-ares has matched id and question before a response reaches the parser,
 * so the name asked is taken from the packet's own question (as the host
 * would have asked it); everything after is the fuzzer's.  The parser must
 * not read out of bounds, leak, or return an answer that breaks its
 * contract: OK has 1..UP_DNS_MAX_RECORDS records with non-NULL printable
 * texts, the other statuses none, TTLs within the caps.  The name helpers
 * (normalize, IP to list name) get the same bytes as a string.
 *
 * Input: byte 0 picks the type (A, AAAA, TXT, MX, PTR); the rest is the
 * response.
 *
 * Build and run: make fuzz; build/fuzz/fuzz_dns_answer -max_total_time=60
 *   build/fuzz/work/fuzz_dns_answer fuzz/corpus/fuzz_dns_answer
 */
#include <ares.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_answer.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void check_answer(const up_dns_result *r, int type)
{
    const upesi_dns_answer *a = &r->answer;
    FZ_CHECK(a->type == type);
    FZ_CHECK(a->name != NULL);
    FZ_CHECK(a->status >= UPESI_DNS_OK && a->status <= UPESI_DNS_ERROR);
    if (a->status == UPESI_DNS_OK) {
        FZ_CHECK(a->count >= 1 && a->count <= UP_DNS_MAX_RECORDS);
        FZ_CHECK(a->ttl <= UP_DNS_MAX_TTL);
    } else {
        FZ_CHECK(a->count == 0);
        FZ_CHECK(a->ttl <= UP_DNS_MAX_NEG_TTL);
    }
    for (size_t i = 0; i < a->count; i++) {
        const char *t = a->records[i].text;
        FZ_CHECK(t != NULL);
        for (const unsigned char *p = (const unsigned char *)t; *p; p++)
            FZ_CHECK(type != UPESI_DNS_TXT || (*p >= 0x20 && *p != 0x7f));
        FZ_CHECK(type == UPESI_DNS_MX || a->records[i].preference == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int types[] = { UPESI_DNS_A, UPESI_DNS_AAAA, UPESI_DNS_TXT,
                                 UPESI_DNS_MX, UPESI_DNS_PTR };
    if (size < 1)
        return 0;
    int type = types[data[0] % 5];
    const unsigned char *buf = data + 1;
    size_t len = size - 1;

    char *qname = NULL;
    long enclen;
    char name[256] = "x.test";
    if (len > 12 && ares_expand_name(buf + 12, buf, (int)len, &qname,
                                     &enclen) == ARES_SUCCESS) {
        if (up_dns_name_normalize(qname, name, sizeof name) != 0)
            strcpy(name, "x.test");
        ares_free_string(qname);
    }
    up_dns_result *r = up_dns_parse(buf, len, type, name);
    FZ_CHECK(r != NULL);
    check_answer(r, type);
    up_dns_result *again = up_dns_result_ref(r);
    up_dns_result_unref(r);
    up_dns_result_unref(again);

    /* the same bytes as a name and as an address */
    char text[300], out[400];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, buf, n);
    text[n] = '\0';
    if (up_dns_name_normalize(text, out, sizeof out) == 0)
        FZ_CHECK(strlen(out) <= 253);
    if (up_dns_ip_name(text, "bl.test", out, sizeof out) == 0)
        FZ_CHECK(strlen(out) < sizeof out);
    return 0;
}
