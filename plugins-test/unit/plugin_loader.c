/*
 * plugin_loader.c - unit test of the descriptor check in
 * host/plugin_loader.c (docs/plugins.md "ABI versions"): magic, major,
 * the lowest minor a plugin needs against the host's, the size of the
 * first minor's descriptor as the least accepted, a larger descriptor read
 * only as far as the host knows it, and fields past the plugin's size read
 * as zero.  Every refusal names the file and both ABIs.  Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <stdlib.h>
#include <string.h>

#include "plugin_loader.h"
#include "tap.h"

/* a descriptor followed by bytes a newer minor would have appended */
typedef struct t_big {
    upesi_plugin d;
    unsigned char more[64];
} t_big;

static upesi_plugin t_desc(uint16_t major, uint16_t minor, uint32_t size)
{
    upesi_plugin d;
    memset(&d, 0, sizeof d);
    d.magic = UPESI_PLUGIN_MAGIC;
    d.abi_major = major;
    d.abi_minor = minor;
    d.size = size;
    d.name = "p";
    d.version = "1";
    return d;
}

static int t_check(const upesi_plugin *d, upesi_plugin *out, char *err,
                   size_t errlen)
{
    err[0] = '\0';
    return up_plugin_check_descriptor("dir/p.so", "p", d, out, err, errlen);
}

int main(void)
{
    char err[512], want[256];
    upesi_plugin out;
    upesi_plugin d = t_desc(UPESI_ABI_MAJOR, 0, sizeof(upesi_plugin));

    ok(t_check(&d, &out, err, sizeof err) == 0,
       "a plugin that needs %d.0 loads in host %d.%d", UPESI_ABI_MAJOR,
       UPESI_ABI_MAJOR, UPESI_ABI_MINOR);
    d = t_desc(UPESI_ABI_MAJOR, UPESI_ABI_MINOR, sizeof(upesi_plugin));
    ok(t_check(&d, &out, err, sizeof err) == 0,
       "one that needs the host's own minor loads");

    d = t_desc(UPESI_ABI_MAJOR, UPESI_ABI_MINOR + 1, sizeof(upesi_plugin));
    ok(t_check(&d, &out, err, sizeof err) != 0,
       "one that needs a newer minor is refused");
    snprintf(want, sizeof want, "dir/p.so: plugin needs ABI %d.%d, host ABI "
             "%d.%d: the plugin needs a newer host", UPESI_ABI_MAJOR,
             UPESI_ABI_MINOR + 1, UPESI_ABI_MAJOR, UPESI_ABI_MINOR);
    is_str(err, want, "... naming the file, its ABI and the host's");

    d = t_desc(UPESI_ABI_MAJOR + 1, 0, sizeof(upesi_plugin));
    ok(t_check(&d, &out, err, sizeof err) != 0, "another major is refused");
    snprintf(want, sizeof want, "plugin ABI %d.0, host ABI %d.%d",
             UPESI_ABI_MAJOR + 1, UPESI_ABI_MAJOR, UPESI_ABI_MINOR);
    ok(strstr(err, "dir/p.so: ") == err && strstr(err, want) != NULL,
       "... naming the file and both ABIs: %s", err);
    d = t_desc(UPESI_ABI_MAJOR - 1, 2, sizeof(upesi_plugin));
    ok(t_check(&d, &out, err, sizeof err) != 0,
       "an ABI 1 plugin is refused: %s", err);

    d = t_desc(UPESI_ABI_MAJOR, 0, sizeof(upesi_plugin));
    d.magic = 0x12345678;
    ok(t_check(&d, &out, err, sizeof err) != 0 &&
       strstr(err, "bad magic") != NULL, "a bad magic is refused");

    d = t_desc(UPESI_ABI_MAJOR, 0, UPESI_PLUGIN_SIZE_2_0 - 1);
    ok(t_check(&d, &out, err, sizeof err) != 0 &&
       strstr(err, "descriptor is") != NULL,
       "a descriptor smaller than ABI 2.0's is refused: %s", err);

    d = t_desc(UPESI_ABI_MAJOR, 0, sizeof(upesi_plugin));
    d.name = "q";
    ok(t_check(&d, &out, err, sizeof err) != 0 &&
       strstr(err, "'q', expected 'p'") != NULL,
       "a descriptor naming another plugin is refused");

    /* the first minor's size: whatever later minors appended reads as 0 */
    t_big big;
    memset(&big, 0xAB, sizeof big);
    big.d = t_desc(UPESI_ABI_MAJOR, 0, UPESI_PLUGIN_SIZE_2_0);
    memset((char *)&big + UPESI_PLUGIN_SIZE_2_0, 0xAB,
           sizeof big - UPESI_PLUGIN_SIZE_2_0);
    memset(&out, 0xFF, sizeof out);
    ok(t_check(&big.d, &out, err, sizeof err) == 0,
       "a descriptor of the 2.0 size loads");
    int zero = 1;
    for (size_t i = UPESI_PLUGIN_SIZE_2_0; i < sizeof out; i++)
        zero = zero && ((unsigned char *)&out)[i] == 0;
    ok(zero && memcmp(&out, &big.d, UPESI_PLUGIN_SIZE_2_0) == 0,
       "... the host's copy is its %zu bytes, zeros past them (%zu "
       "bytes)", (size_t)UPESI_PLUGIN_SIZE_2_0,
       sizeof out - (size_t)UPESI_PLUGIN_SIZE_2_0);

    /* a newer header's larger descriptor: read as far as the host knows */
    memset(&big, 0xAB, sizeof big);
    big.d = t_desc(UPESI_ABI_MAJOR, 0, sizeof big);
    ok(t_check(&big.d, &out, err, sizeof err) == 0,
       "a larger descriptor (a newer header) that needs %d.0 loads",
       UPESI_ABI_MAJOR);
    ok(memcmp(&out, &big.d, sizeof out) == 0,
       "... the host reads the fields it knows");

    /* UPESI_API_SUPPORTED against tables of several sizes */
    typedef struct t_api_next {
        upesi_api base;
        void (*later)(void);
    } t_api_next;
    t_api_next api;
    memset(&api, 0, sizeof api);
    api.base.size = sizeof(upesi_api);
    api.base.strerror = (const char *(*)(int))strerror;
    api.later = abort;
    ok(UPESI_API_SUPPORTED(&api.base, strerror),
       "UPESI_API_SUPPORTED: a call in the table is found");
    ok(!UPESI_API_SUPPORTED(&api, later),
       "... a call past the host's size is not, even if bytes are there");
    api.base.size = sizeof api;
    ok(UPESI_API_SUPPORTED(&api, later), "... it is once the size covers it");
    api.later = NULL;
    ok(!UPESI_API_SUPPORTED(&api, later), "... not when the host left it NULL");
    api.base.size = offsetof(upesi_api, strerror);
    api.base.strerror = (const char *(*)(int))strerror;
    ok(!UPESI_API_SUPPORTED(&api.base, strerror),
       "... not when the table ends before it");
    return done_testing();
}
