/*
 * notes.h - small string key/value stores for plugins to talk through
 * (connection notes, transaction notes).  A list, not a hash: a session
 * holds a handful of notes and a list beats a hash at that size.
 */
#ifndef UPESI_NOTES_H
#define UPESI_NOTES_H

typedef struct up_note {
    struct up_note *next;
    char *value;
    char key[];
} up_note;

typedef struct up_notes {
    up_note *head;
} up_notes;

int up_notes_set(up_notes *notes, const char *key, const char *value);
const char *up_notes_get(const up_notes *notes, const char *key);
void up_notes_clear(up_notes *notes);

#endif
