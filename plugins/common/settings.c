/*
 * settings.c - setter and init helpers shared by plugins (see
 * settings.h).
 *
 * Fails: as settings.h says; nothing is logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/settings.h"

int settings_bool(const char *value, int *out)
{
    return upesi_bool_word(value, out);
}

int settings_long(const char *value, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || end == value || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

int settings_string(char **slot, const char *value, char *err,
                    size_t errlen)
{
    char *copy = strdup(value);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

