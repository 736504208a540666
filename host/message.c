/*
 * message.c - see message.h.
 *
 * The spill file is opened with O_TMPFILE in the spool's tmp directory: it
 * has no name, so a crash leaves nothing to clean up, and it lives on the
 * spool's filesystem, so queue_spool copies it without crossing devices.
 * Writes to it are plain write(2) on the loop: they land in the page cache;
 * durability is queue_spool's fsync, not ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "durable.h"
#include "message.h"

/* A removed header field: data bytes that reads skip. */
struct up_message_hole {
    uint64_t off, len;
};

/* Data beyond this spills to disk. */
#define UP_MESSAGE_MEM_MAX (128 * 1024)

void up_message_init(up_message *m, const char *spill_dir)
{
    memset(m, 0, sizeof *m);
    m->fd = -1;
    m->spill_dir = spill_dir;
}

static void fields_drop(up_message *m);

void up_message_free(up_message *m)
{
    fields_drop(m);
    free(m->holes);
    free(m->head);
    free(m->mem);
    if (m->fd >= 0)
        close(m->fd);
    up_message_init(m, m->spill_dir);
}

static int write_all(int fd, const char *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };
    return up_durable_file_write(fd, &iov, 1);
}

static int spill(up_message *m)
{
    m->fd = open(m->spill_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (m->fd < 0)
        return -errno;
    int rc = write_all(m->fd, m->mem, m->mem_len);
    free(m->mem);
    m->mem = NULL;
    m->mem_len = m->mem_cap = 0;
    return rc;
}

int up_message_append(up_message *m, const char *buf, size_t len)
{
    if (m->error)
        return -m->error;
    int rc = 0;
    if (m->fd < 0 && m->mem_len + len > UP_MESSAGE_MEM_MAX)
        rc = spill(m);
    if (rc == 0 && m->fd >= 0) {
        rc = write_all(m->fd, buf, len);
    } else if (rc == 0) {
        if (m->mem_len + len > m->mem_cap) {
            size_t cap = m->mem_cap ? m->mem_cap : 4096;
            while (cap < m->mem_len + len)
                cap *= 2;
            char *grown = realloc(m->mem, cap);
            if (grown == NULL)
                rc = -ENOMEM;
            else {
                m->mem = grown;
                m->mem_cap = cap;
            }
        }
        if (rc == 0) {
            memcpy(m->mem + m->mem_len, buf, len);
            m->mem_len += len;
        }
    }
    if (rc != 0) {
        m->error = -rc;
        return rc;
    }
    m->data_len += len;
    return 0;
}

static int head_insert(up_message *m, size_t at, const char *text,
                       size_t len)
{
    char *grown = realloc(m->head, m->head_len + len + 1);
    if (grown == NULL)
        return -ENOMEM;
    memmove(grown + at + len, grown + at, m->head_len - at);
    memcpy(grown + at, text, len);
    m->head = grown;
    m->head_len += len;
    m->head[m->head_len] = '\0';
    return 0;
}

int up_message_prepend_header(up_message *m, const char *name,
                              const char *value)
{
    if (strpbrk(name, "\r\n: \t") || name[0] == '\0' ||
        strpbrk(value, "\r\n"))
        return -EINVAL;
    size_t len = strlen(name) + strlen(value) + 4;
    char *line = malloc(len + 1);
    if (line == NULL)
        return -ENOMEM;
    snprintf(line, len + 1, "%s: %s\r\n", name, value);
    fields_drop(m);
    int rc = head_insert(m, m->head_len, line, len);
    free(line);
    return rc;
}

int up_message_set_received(up_message *m, const char *text)
{
    fields_drop(m);
    return head_insert(m, 0, text, strlen(text));
}

off_t up_message_size(const up_message *m)
{
    return (off_t)(m->head_len + m->data_len - m->holes_len);
}

/* Physical data bytes, holes included. */
static ssize_t data_pread(const up_message *m, uint64_t off, char *out,
                          size_t len)
{
    if (off >= m->data_len)
        return 0;
    if (len > m->data_len - off)
        len = (size_t)(m->data_len - off);
    if (m->fd < 0) {
        memcpy(out, m->mem + off, len);
        return (ssize_t)len;
    }
    ssize_t n = pread(m->fd, out, len, (off_t)off);
    return n < 0 ? -errno : n;
}

ssize_t up_message_read(up_message *m, off_t off, void *buf, size_t len)
{
    size_t done = 0;
    char *out = buf;
    if (off < 0)
        return -EINVAL;
    if ((uint64_t)off < m->head_len) {
        size_t n = m->head_len - (size_t)off;
        if (n > len)
            n = len;
        memcpy(out, m->head + off, n);
        done = n;
        off += (off_t)n;
    }
    /* map the logical data offset past the holes before it */
    uint64_t phys = (uint64_t)off - m->head_len;
    size_t h = 0;
    while (h < m->n_holes && m->holes[h].off <= phys)
        phys += m->holes[h++].len;
    while (done < len && phys < m->data_len) {
        uint64_t stop = h < m->n_holes ? m->holes[h].off : m->data_len;
        size_t want = len - done;
        if (want > stop - phys)
            want = (size_t)(stop - phys);
        ssize_t n = data_pread(m, phys, out + done, want);
        if (n < 0)
            return done ? (ssize_t)done : n;
        if (n == 0)
            break;
        done += (size_t)n;
        phys += (uint64_t)n;
        while (h < m->n_holes && phys == m->holes[h].off)
            phys += m->holes[h++].len;     /* holes may touch */
    }
    return (ssize_t)done;
}

/* -- header fields ------------------------------------------------------
 * The fields are the prepended block's lines and the data's header
 * section (up to the first empty line, or a line that is no field).  Each
 * is indexed once with where it lives, so that a removal can cut it from
 * the block or punch a hole over it in the data. */

/* The data's header section is read at most this far. */
#define UP_MESSAGE_HEADERS_MAX (1024 * 1024)

typedef struct up_field {
    char *name;
    char *value;               /* unfolded                               */
    char *line;                /* "Name: value" (name NULL lookups)      */
    int in_data;               /* 0: the prepended block                 */
    uint64_t off, len;         /* bytes, line end included               */
} up_field;

struct up_message_fields {
    up_field *v;
    size_t n, cap;
    /* where the last lookup found its field: the next index of the same
     * name goes on from there, so that reading every field of a name in
     * turn (Lua's txn:headers) is one pass, not one pass an index (30,000
     * fields held a worker 2.8 s) */
    char *seek_name;           /* NULL: any name                          */
    size_t seek_index, seek_pos;
    int seek_valid;
};

static void fields_drop(up_message *m)
{
    struct up_message_fields *f = m->fields;
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].value);
        free(f->v[i].line);
    }
    free(f->v);
    free(f->seek_name);
    free(f);
    m->fields = NULL;
}

/* Is the data byte at off in a hole?  Holes are sorted and disjoint: a
 * binary search (a header section of 60,000 removed fields was read
 * again field by field, each against every hole). */
static int in_hole(const up_message *m, uint64_t off)
{
    size_t lo = 0, hi = m->n_holes;   /* the first hole starting past off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->holes[mid].off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && off < m->holes[lo - 1].off + m->holes[lo - 1].len;
}

/* Index the fields of text[0..len) (base: where text starts).  Returns the
 * bytes consumed, or -1 out of memory. */
static long fields_scan(up_message *m, struct up_message_fields *f,
                        const char *text, size_t len, int in_data)
{
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        if (line[0] == '\r' || line[0] == '\n' || line[0] == ' ' ||
            line[0] == '\t')
            break;                      /* the empty line, or stray fold */
        const char *colon = memchr(line, ':', len - pos);
        const char *eol = memchr(line, '\n', len - pos);
        if (colon == NULL || eol == NULL || colon > eol)
            break;                      /* no field (or cut off): body    */
        size_t name_len = (size_t)(colon - line);
        while (name_len && (line[name_len - 1] == ' ' ||
                            line[name_len - 1] == '\t'))
            name_len--;
        if (name_len == 0)
            break;
        /* the field ends at the first line end not followed by WSP */
        size_t end = (size_t)(eol - text) + 1;
        while (end < len && (text[end] == ' ' || text[end] == '\t')) {
            const char *next = memchr(text + end, '\n', len - end);
            if (next == NULL)
                break;
            end = (size_t)(next - text) + 1;
        }
        if (!in_data || !in_hole(m, pos)) {
            if (f->n == f->cap) {
                size_t cap = f->cap ? f->cap * 2 : 16;
                up_field *grown = realloc(f->v, cap * sizeof *grown);
                if (grown == NULL)
                    return -1;
                f->v = grown;
                f->cap = cap;
            }
            up_field *fl = &f->v[f->n];
            memset(fl, 0, sizeof *fl);
            fl->in_data = in_data;
            fl->off = pos;
            fl->len = end - pos;
            fl->name = strndup(line, name_len);
            /* unfold: drop CR and LF, keep the folding white space */
            const char *v = colon + 1;
            size_t vlen = (size_t)(text + end - v);
            fl->value = malloc(vlen + 1);
            if (fl->name == NULL || fl->value == NULL) {
                free(fl->name);
                free(fl->value);
                return -1;
            }
            size_t o = 0;
            for (size_t i = 0; i < vlen; i++)
                if (v[i] != '\r' && v[i] != '\n')
                    fl->value[o++] = v[i];
            fl->value[o] = '\0';
            size_t lead = strspn(fl->value, " \t");
            memmove(fl->value, fl->value + lead, o - lead + 1);
            o -= lead;
            while (o && (fl->value[o - 1] == ' ' || fl->value[o - 1] == '\t'))
                fl->value[--o] = '\0';
            f->n++;
        }
        pos = end;
    }
    return (long)pos;
}

static int fields_build(up_message *m)
{
    if (m->fields)
        return 0;
    struct up_message_fields *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    m->fields = f;
    if (m->head_len && fields_scan(m, f, m->head, m->head_len, 0) < 0)
        goto oom;
    /* the data's section, physical bytes: removed fields are skipped by
     * in_hole, so offsets stay those of the data */
    size_t want = m->data_len < UP_MESSAGE_HEADERS_MAX
                      ? (size_t)m->data_len : UP_MESSAGE_HEADERS_MAX;
    if (want) {
        char *buf = malloc(want + 1);
        if (buf == NULL)
            goto oom;
        ssize_t n = data_pread(m, 0, buf, want);
        if (n < 0) {
            free(buf);
            fields_drop(m);
            return (int)n;
        }
        buf[n] = '\0';
        long rc = fields_scan(m, f, buf, (size_t)n, 1);
        free(buf);
        if (rc < 0)
            goto oom;
    }
    return 0;
oom:
    fields_drop(m);
    return -ENOMEM;
}

static int seek_same(const struct up_message_fields *f, const char *name)
{
    if (!f->seek_valid)
        return 0;
    if (name == NULL || f->seek_name == NULL)
        return name == NULL && f->seek_name == NULL;
    return strcasecmp(name, f->seek_name) == 0;
}

static void seek_set(struct up_message_fields *f, const char *name,
                     size_t index, size_t pos)
{
    if (!seek_same(f, name)) {
        free(f->seek_name);
        f->seek_name = name ? strdup(name) : NULL;
        if (name && f->seek_name == NULL) {
            f->seek_valid = 0;      /* no memory: look up from the start */
            return;
        }
    }
    f->seek_index = index;
    f->seek_pos = pos;
    f->seek_valid = 1;
}

const char *up_message_header_get(up_message *m, const char *name,
                                  size_t index)
{
    if (fields_build(m) != 0)
        return NULL;
    struct up_message_fields *f = m->fields;
    size_t want = index, from = 0;
    if (index > 0 && seek_same(f, name) && f->seek_index == index - 1) {
        from = f->seek_pos + 1;
        want = 0;
    }
    for (size_t i = from; i < f->n; i++) {
        up_field *fl = &f->v[i];
        if (name && strcasecmp(fl->name, name) != 0)
            continue;
        if (want-- > 0)
            continue;
        seek_set(f, name, index, i);
        if (name)
            return fl->value;
        if (fl->line == NULL &&
            asprintf(&fl->line, "%s: %s", fl->name, fl->value) < 0) {
            fl->line = NULL;
            return NULL;
        }
        return fl->line;
    }
    return NULL;
}

/* Merge add[0..n) (sorted, disjoint from the holes there are) into the
 * holes in one pass.  One removal's fields all at once: inserting each
 * in turn was quadratic (60,000 forged fields of one name in a client's
 * header section: 0.65 s of a worker's CPU). */
static int holes_merge(up_message *m, const struct up_message_hole *add,
                       size_t n)
{
    if (n == 0)
        return 0;
    struct up_message_hole *all = malloc((m->n_holes + n) * sizeof *all);
    if (all == NULL)
        return -ENOMEM;
    size_t i = 0, j = 0, k = 0;
    while (i < m->n_holes || j < n) {
        struct up_message_hole next;
        if (j == n || (i < m->n_holes && m->holes[i].off < add[j].off)) {
            next = m->holes[i++];
        } else {
            next = add[j++];
            m->holes_len += next.len;
        }
        /* fields removed side by side make one hole */
        if (k > 0 && all[k - 1].off + all[k - 1].len == next.off)
            all[k - 1].len += next.len;
        else
            all[k++] = next;
    }
    free(m->holes);
    m->holes = all;
    m->n_holes = k;
    return 0;
}

int up_message_header_remove(up_message *m, const char *name)
{
    int rc = fields_build(m);
    if (rc != 0)
        return rc;
    struct up_message_fields *f = m->fields;
    size_t in_data = 0;
    for (size_t i = 0; i < f->n; i++)
        in_data += f->v[i].in_data && strcasecmp(f->v[i].name, name) == 0;
    struct up_message_hole *add = NULL;
    if (in_data && (add = malloc(in_data * sizeof *add)) == NULL) {
        fields_drop(m);
        return -ENOMEM;             /* nothing removed */
    }
    /* the data's fields, in order: their holes, ascending */
    size_t k = 0;
    for (size_t i = 0; i < f->n && k < in_data; i++) {
        up_field *fl = &f->v[i];
        if (fl->in_data && strcasecmp(fl->name, name) == 0)
            add[k++] = (struct up_message_hole){ fl->off, fl->len };
    }
    rc = holes_merge(m, add, k);
    free(add);
    if (rc != 0) {
        fields_drop(m);
        return rc;                  /* nothing removed */
    }
    /* the block's, last first: cutting keeps earlier offsets valid */
    int removed = (int)k;
    for (size_t i = f->n; i-- > 0;) {
        up_field *fl = &f->v[i];
        if (fl->in_data || strcasecmp(fl->name, name) != 0)
            continue;
        memmove(m->head + fl->off, m->head + fl->off + fl->len,
                m->head_len - fl->off - fl->len + 1);
        m->head_len -= fl->len;
        removed++;
    }
    fields_drop(m);
    return removed;
}
