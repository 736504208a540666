/*
 * fuzz_store.c - libFuzzer target for the store's two parsers:
 * host/store_url.c, smtp.ini `store` (lmdb:PATH, redis://...,
 * redis+unix://...), and host/store_num.c, a stored value read as an
 * integer (values come from the store, which other hosts write too).
 *
 * Every input goes to both.  As a URL (cut at its first NUL), a value
 * that parses must give a backend kind, a port 1..65535 and a database
 * 0..65535 for Redis, NUL-terminated fields, and a text for logs that
 * does not depend on the user or password.  As a number (all its bytes),
 * it must be accepted exactly when it is an optional '-' and 1..31 digits
 * whose value fits a long long, and then give strtoll's value.  Any
 * difference aborts.
 *
 * Build and run: make fuzz; build/fuzz/fuzz_store fuzz/corpus/fuzz_store
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the reference: the same rule with strtoll (in a NUL-terminated copy) */
static void fuzz_num(const uint8_t *data, size_t size)
{
    long long got = 12345;
    int rc = up_store_parse_num(data, size, &got);
    char buf[64];
    size_t i = size && data[0] == '-';
    int digits = size > i && size < 32;
    for (size_t k = i; digits && k < size; k++)
        digits = data[k] >= '0' && data[k] <= '9';
    if (!digits) {
        FZ_CHECK(rc == -EINVAL && got == 12345);
        return;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    errno = 0;
    char *end;
    long long want = strtoll(buf, &end, 10);
    FZ_CHECK(*end == '\0');
    if (errno == ERANGE) {
        FZ_CHECK(rc == -EINVAL);
    } else {
        FZ_CHECK(rc == 0 && got == want);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    if (value == NULL)
        return 0;
    fuzz_num(data, size);
    memcpy(value, data, size);
    value[size] = '\0';
    up_store_url u;
    char err[256];
    memset(&u, 0xa5, sizeof u);
    if (up_store_url_parse(value, &u, err, sizeof err) == 0) {
        FZ_CHECK(u.kind == UP_STORE_LMDB || u.kind == UP_STORE_REDIS);
        FZ_CHECK(memchr(u.path, '\0', sizeof u.path) != NULL);
        FZ_CHECK(memchr(u.host, '\0', sizeof u.host) != NULL);
        FZ_CHECK(memchr(u.password, '\0', sizeof u.password) != NULL);
        if (u.kind == UP_STORE_LMDB) {
            FZ_CHECK(u.path[0] != '\0');
        } else {
            FZ_CHECK(u.db >= 0 && u.db <= 65535);
            FZ_CHECK(u.path[0] == '/' || (u.host[0] && u.port >= 1 &&
                                          u.port <= 65535));
        }
        /* the log text does not depend on the credentials */
        char text[8192], text2[8192];
        up_store_url_text(&u, text, sizeof text);
        strcpy(u.password, "other");
        strcpy(u.user, "other");
        up_store_url_text(&u, text2, sizeof text2);
        FZ_CHECK(strcmp(text, text2) == 0);
    } else {
        FZ_CHECK(err[0] != '\0');
    }
    free(value);
    return 0;
}
