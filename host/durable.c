/*
 * durable.c - see durable.h.
 *
 * Every function is a few system calls on its arguments: no globals, no
 * loop, no API state, so the commit threads of queue_spool, queue_forward
 * and the message actions call them from the libuv pool.
 *
 * Fails: 0 or a negative errno, never a log line: the caller knows which
 * message the file belonged to and says so.  file_commit cleans up after
 * itself (the temp file is unlinked on any error), so that no half-written
 * file is ever renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* the rest of one buffer, after writev stopped inside it */
static int write_rest(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int up_durable_file_write(int fd, const struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = writev(fd, iov, iovcnt < IOV_MAX ? iovcnt : IOV_MAX);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0 && n > 0) {
            int rc = write_rest(fd, (const char *)iov->iov_base + n,
                                iov->iov_len - (size_t)n);
            if (rc < 0)
                return rc;
            iov++;
            iovcnt--;
        }
    }
    return 0;
}

/* rename, but never over a file already there: a name used twice (a
 * queue id made again after the clock stepped back) must not replace a
 * message that was acknowledged.  A file system without RENAME_NOREPLACE
 * gets link + unlink, which refuses an existing name the same way. */
static int rename_new(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    if (link(from, to) != 0)
        return -errno;
    unlink(from);
    return 0;
}

int up_durable_file_commit(int fd, const char *tmp_path, const char *path,
                           int sync)
{
    int rc = 0;
    if (sync && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0)
        rc = rename_new(tmp_path, path);
    if (rc < 0)
        unlink(tmp_path);
    return rc;
}

int up_durable_dir_sync(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int up_durable_dir_make(const char *path)
{
    struct stat st;
    if (path[0] == '\0')
        return -ENOENT;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    if (errno != ENOENT)
        return -errno;

    char *parent = strdup(path);
    if (parent == NULL)
        return -ENOMEM;
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/')
        parent[--len] = '\0';
    char *slash = strrchr(parent, '/');
    while (slash != NULL && slash > parent && slash[-1] == '/')
        slash--;
    int rc = 0;
    if (slash == NULL)
        strcpy(parent, ".");
    else if (slash == parent)
        strcpy(parent, "/");
    else {
        *slash = '\0';
        rc = up_durable_dir_make(parent);
    }
    /* EEXIST: someone else (another worker) made it just now; sync its
     * parent all the same, we cannot know that they have yet */
    if (rc == 0 && mkdir(path, 0700) < 0 && errno != EEXIST)
        rc = -errno;
    if (rc == 0)
        rc = up_durable_dir_sync(parent);
    free(parent);
    return rc;
}
