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
#include <unistd.h>

#include "message.h"

/* Data beyond this spills to disk. */
#define UP_MESSAGE_MEM_MAX (128 * 1024)

void up_message_init(up_message *m, const char *spill_dir)
{
    memset(m, 0, sizeof *m);
    m->fd = -1;
    m->spill_dir = spill_dir;
}

void up_message_free(up_message *m)
{
    free(m->head);
    free(m->mem);
    if (m->fd >= 0)
        close(m->fd);
    up_message_init(m, m->spill_dir);
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
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
    int rc = head_insert(m, m->head_len, line, len);
    free(line);
    return rc;
}

int up_message_set_received(up_message *m, const char *text)
{
    return head_insert(m, 0, text, strlen(text));
}

off_t up_message_size(const up_message *m)
{
    return (off_t)(m->head_len + m->data_len);
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
    if (done == len)
        return (ssize_t)done;
    uint64_t doff = (uint64_t)off - m->head_len;
    if (doff >= m->data_len)
        return (ssize_t)done;
    size_t want = len - done;
    if (want > m->data_len - doff)
        want = (size_t)(m->data_len - doff);
    if (m->fd < 0) {
        memcpy(out + done, m->mem + doff, want);
        return (ssize_t)(done + want);
    }
    ssize_t n = pread(m->fd, out + done, want, (off_t)doff);
    if (n < 0)
        return done ? (ssize_t)done : -errno;
    return (ssize_t)done + n;
}
