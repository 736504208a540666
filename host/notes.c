/*
 * notes.c - see notes.h.  Fails: -1 on allocation failure, notes unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "notes.h"

int up_notes_set(up_notes *notes, const char *key, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -1;
    for (up_note *n = notes->head; n; n = n->next)
        if (!strcmp(n->key, key)) {
            free(n->value);
            n->value = copy;
            return 0;
        }
    size_t klen = strlen(key);
    up_note *n = malloc(sizeof *n + klen + 1);
    if (n == NULL) {
        free(copy);
        return -1;
    }
    memcpy(n->key, key, klen + 1);
    n->value = copy;
    n->next = notes->head;
    notes->head = n;
    return 0;
}

const char *up_notes_get(const up_notes *notes, const char *key)
{
    for (const up_note *n = notes->head; n; n = n->next)
        if (!strcmp(n->key, key))
            return n->value;
    return NULL;
}

void up_notes_clear(up_notes *notes)
{
    up_note *n = notes->head;
    while (n) {
        up_note *next = n->next;
        free(n->value);
        free(n);
        n = next;
    }
    notes->head = NULL;
}
