/*
 * message.h - the message of one transaction, as it will be stored: a header
 * block the host and plugins prepend (Received, added headers), then the data
 * as received.  Data is kept in memory up to a threshold and spills to an
 * anonymous temp file in the spool directory beyond it, so a 10 MB message
 * costs no more memory than a 10 KB one.
 *
 * Fails: write errors are sticky (up_message_error) and reported at end of
 * data as a temporary failure; nothing is ever silently truncated.
 */
#ifndef UPESI_MESSAGE_H
#define UPESI_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct up_message {
    char *head;              /* prepended header block                 */
    size_t head_len;
    char *mem;               /* data while small                       */
    size_t mem_len, mem_cap;
    int fd;                  /* spill file, -1 until needed            */
    uint64_t data_len;       /* bytes of data                          */
    const char *spill_dir;
    int error;               /* first errno, sticky                    */
    /* header fields removed from the data: byte ranges of the data that
     * reads skip (sorted, disjoint, never touching: fields removed side
     * by side are one hole; see up_message_header_remove) */
    struct up_message_hole *holes;
    size_t n_holes;
    uint64_t holes_len;
    /* the parsed header fields, built on demand, dropped on any change */
    struct up_message_fields *fields;
} up_message;

void up_message_init(up_message *m, const char *spill_dir);
void up_message_free(up_message *m);
int up_message_append(up_message *m, const char *buf, size_t len);
int up_message_prepend_header(up_message *m, const char *name,
                              const char *value);
/* the Received header goes first: it is put in front of the block */
int up_message_set_received(up_message *m, const char *text);
off_t up_message_size(const up_message *m);
/* The index'th header field named name (case-insensitive), unfolded; name
 * NULL: the index'th field of any name as "Name: value".  Looks at the
 * prepended block, then the data's header section.  The string lives until
 * the next change to the headers or the end of the transaction. */
const char *up_message_header_get(up_message *m, const char *name,
                                  size_t index);
/* Remove every field named name: returns how many, or a negative errno. */
int up_message_header_remove(up_message *m, const char *name);
ssize_t up_message_read(up_message *m, off_t off, void *buf, size_t len);

#endif
