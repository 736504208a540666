/*
 * message.c - unit test of host/message.c: header fields removed from
 * the data's header section become holes that reads skip, with the data
 * in memory and spilled to a file; those of the block the host and
 * plugins prepend are cut from it.  Many fields of one name, removals of
 * two names one after the other (their holes merged), reads at any offset
 * and in pieces of any size, and lookups after a removal (which skip the
 * holes) all give the message as if the removed lines had never been
 * there.  Lookups by index in turn, by names in turn, and back, find the
 * right field (a lookup goes on from where the last one stopped).
 *
 * Prints TAP (tap.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../host/message.h"
#include "tap.h"

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void add(text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

/* the whole message read in pieces of `piece` bytes, compared to want */
static int reads_as(up_message *m, const text *want, size_t piece)
{
    if ((size_t)up_message_size(m) != want->len)
        return 0;
    char *buf = malloc(want->len + 1);
    size_t got = 0;
    while (got < want->len) {
        ssize_t n = up_message_read(m, (off_t)got, buf + got,
                                    piece < want->len - got ? piece
                                                            : want->len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int same = got == want->len && memcmp(buf, want->p, got) == 0;
    free(buf);
    return same;
}

/* every offset's read of 5 bytes, compared to want */
static int reads_anywhere(up_message *m, const text *want)
{
    char buf[5];
    for (size_t off = 0; off < want->len; off += 3) {
        size_t n = want->len - off < 5 ? want->len - off : 5;
        if (up_message_read(m, (off_t)off, buf, 5) != (ssize_t)n ||
            memcmp(buf, want->p + off, n) != 0)
            return 0;
    }
    return 1;
}

static void run(const char *spill_dir, int body_lines, const char *label)
{
    /* the data: fields A, then per i: X-Rm, X-Other (folded), X-Keep;
     * the body.  want1 lacks X-Rm, want2 lacks X-Rm and X-Other. */
    enum { N = 3000 };
    text data = {0}, want1 = {0}, want2 = {0};
    char line[128];
    add(&data, "A: first\r\n");
    add(&want1, "X-Head: kept\r\nA: first\r\n");
    add(&want2, "X-Head: kept\r\nA: first\r\n");
    for (int i = 0; i < N; i++) {
        snprintf(line, sizeof line, "X-Rm: %d\r\n", i);
        add(&data, line);
        snprintf(line, sizeof line, "X-Other: %d\r\n folded\r\n", i);
        add(&data, line);
        add(&want1, line);
        snprintf(line, sizeof line, "x-keep: %d\r\n", i);
        add(&data, line);
        add(&want1, line);
        add(&want2, line);
    }
    for (text *t = &data; t; t = t == &data ? &want1 : t == &want1 ? &want2 : NULL)
        add(t, "\r\n");
    for (int i = 0; i < body_lines; i++) {
        snprintf(line, sizeof line, "X-Rm: body line %d is no field\r\n", i);
        add(&data, line);
        add(&want1, line);
        add(&want2, line);
    }

    up_message m;
    up_message_init(&m, spill_dir);
    for (size_t off = 0; off < data.len; off += 1000)
        up_message_append(&m, data.p + off,
                          data.len - off < 1000 ? data.len - off : 1000);
    up_message_prepend_header(&m, "X-Head", "kept");
    up_message_prepend_header(&m, "X-Rm", "in the block");
    is_int(up_message_header_remove(&m, "x-rm"), N + 1,
           "%s: every X-Rm field of the block and the header section "
           "removed, none of the body", label);
    ok(reads_as(&m, &want1, 1 << 20) && reads_as(&m, &want1, 4096) &&
           reads_as(&m, &want1, 7),
       "%s: reads skip them (whole, 4096 and 7 bytes at a time)", label);
    const char *v = up_message_header_get(&m, "X-Other", N - 1);
    ok(v && strcmp(v, "2999 folded") == 0 &&
           up_message_header_get(&m, "X-Rm", 0) == NULL,
       "%s: lookups after the removal skip the holes", label);
    /* every field of a name in turn (Lua's txn:headers), names in
     * turn, an index back, and every field of any name */
    int in_order = 1;
    size_t i = 0;
    for (; (v = up_message_header_get(&m, "x-other", i)) != NULL; i++) {
        snprintf(line, sizeof line, "%zu folded", i);
        in_order &= strcmp(v, line) == 0;
    }
    ok(in_order && i == N, "%s: X-Other 0 .. %d in turn, in order", label,
       N - 1);
    const char *o10 = up_message_header_get(&m, "X-Other", 10);
    const char *k11 = up_message_header_get(&m, "x-keep", 11);
    const char *k12 = up_message_header_get(&m, "X-Keep", 12);
    const char *k5 = up_message_header_get(&m, "X-Keep", 5);
    ok(o10 && !strcmp(o10, "10 folded") && k11 && !strcmp(k11, "11") &&
           k12 && !strcmp(k12, "12") && k5 && !strcmp(k5, "5"),
       "%s: names in turn and an index back: the right fields", label);
    for (i = 0; up_message_header_get(&m, NULL, i) != NULL; i++)
        ;
    v = up_message_header_get(&m, NULL, 0);
    ok(i == 2 * N + 2 && v && !strcmp(v, "X-Head: kept"),
       "%s: every field of any name in turn (%zu)", label, i);
    is_int(up_message_header_remove(&m, "X-Other"), N,
           "%s: a second name removed after the first", label);
    ok(reads_as(&m, &want2, 1 << 20) && reads_as(&m, &want2, 13) &&
           reads_anywhere(&m, &want2),
       "%s: both names' holes merged: reads at any offset skip them", label);
    v = up_message_header_get(&m, "X-Keep", N - 1);
    ok(v && strcmp(v, "2999") == 0 && up_message_header_get(&m, "A", 0),
       "%s: the fields kept are all found", label);
    is_int(up_message_header_remove(&m, "X-Rm"), 0,
           "%s: removing a name again removes nothing", label);
    up_message_free(&m);
    free(data.p);
    free(want1.p);
    free(want2.p);
}

int main(void)
{
    plan(20);
    char dir[] = "/tmp/upesi-message-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    run(dir, 2, "in memory");
    run(dir, 6000, "spilled to a file");      /* > 128 KB of data */
    rmdir(dir);
    return done_testing();
}
