/*
 * fuzz_store_url.c - libFuzzer target for host/store_url.c, the parser of
 * smtp.ini `store` (lmdb:PATH, redis://..., redis+unix://...).
 *
 * The input is one value (cut at its first NUL).  A value that parses must
 * give a backend kind, a port 1..65535 and a database 0..65535 for Redis,
 * NUL-terminated fields, and a text for logs that does not depend on
 * the user or password.  Any difference aborts.
 *
 * Build and run: make fuzz; build/fuzz/fuzz_store_url fuzz/corpus/fuzz_store_url
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = malloc(size + 1);
    if (value == NULL)
        return 0;
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
