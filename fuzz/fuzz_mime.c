/*
 * fuzz_mime.c - libFuzzer target for the mail rules' message walker
 * (plugins/mail_rules/mime.c): any bytes as a message are parsed with
 * GMime 3 and walked (headers, RFC 2047 subjects, addresses, nested
 * multiparts, transfer and charset decoding, attachment names) without a
 * crash, a leak, or more than max_body bytes of decoded text.
 *
 * Build and run: `make fuzz` compiles the mail_rules sources it links
 * (Makefile FUZZ_PLUGIN_DEPS_fuzz_mime: plugins/mail_rules/rules.c and
 * mime.c) with clang
 * and coverage, then
 *   build/fuzz/fuzz_mime -max_total_time=300 fuzz/corpus/fuzz_mime
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../plugins/mail_rules/rules.h"
#include "../plugins/mail_rules/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    if (!initialized) {
        g_mime_init();
        initialized = 1;
    }
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(
        (const char *)data, size);
    mr_mime m;
    mr_mime_walk(stream, FUZZ_MAX_BODY, &m);
    g_object_unref(stream);
    /* folded text can grow (case folding), but the raw text was bounded */
    if (m.body && m.body_len > FUZZ_MAX_BODY * 3)
        __builtin_trap();
    if (m.header_names.n != m.header_values.n)
        __builtin_trap();
    mr_mime_free(&m);
    return 0;
}
