/*
 * fuzz_bayes_tokenize.c - libFuzzer target for the bayes plugin's
 * tokenizer and features (plugins/bayes/bayes_tokenize.c,
 * bayes_features.c): any bytes as a message are parsed with GMime 3 and
 * turned into tokens and feature ids (headers, RFC 2047 words, charsets,
 * HTML reduction, link hosts, nested parts) without a crash or a leak;
 * every token is short, non-empty, NUL-terminated valid UTF-8, and a
 * message has at most BAYES_MAX_FEATURES ids, sorted and unique.
 *
 * Build and run (also `make fuzz`):
 *   make build/fuzz/fuzz_bayes_tokenize
 *   build/fuzz/fuzz_bayes_tokenize -max_total_time=300 fuzz/corpus/fuzz_bayes_tokenize
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "../plugins/bayes/bayes_features.h"
#include "../plugins/bayes/bayes_tokenize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_token(const char *tok, size_t len, void *arg)
{
    bayes_features *f = arg;
    if (tok) {
        if (len == 0 || len > 400 || tok[len] != '\0' ||
            strlen(tok) != len || !g_utf8_validate(tok, (gssize)len, NULL))
            __builtin_trap();
    }
    bayes_features_token(tok, len, f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bayes_tokenize_init();
    bayes_features f;
    bayes_features_init(&f, BAYES_OSB_WINDOW);
    bayes_tokenize((const char *)data, size, check_token, &f);
    bayes_features_finish(&f);
    if (f.n > BAYES_MAX_FEATURES)
        __builtin_trap();
    for (size_t i = 1; i < f.n; i++)
        if (f.ids[i - 1] >= f.ids[i])
            __builtin_trap();
    bayes_features_free(&f);
    unsigned char digest[16];
    bayes_message_digest((const char *)data, size, digest);
    return 0;
}
