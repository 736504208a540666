/*
 * durable.c - unit test of host/durable.c, the durable-file functions the
 * host uses and offers to plugins: mkdir -p with its modes and
 * edge cases, writev of many buffers, commit into place and its cleanup on
 * error, directory fsync errors.  Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "tap.h"

#define T_MANY 3000             /* more buffers than IOV_MAX (1024) */

static char t_base[256];

static const char *t_path(const char *rel)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", t_base, rel);
    return buf[i];
}

static int t_is_dir(const char *path, mode_t *mode)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    *mode = st.st_mode & 07777;
    return 1;
}

static char *t_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    char *buf = malloc(T_MANY * 4 + 1);
    ssize_t n = read(fd, buf, T_MANY * 4);
    close(fd);
    *len = n < 0 ? 0 : (size_t)n;
    return buf;
}

static int t_create(const char *path)
{
    return open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
}

int main(void)
{
    plan(18);
    umask(022);
    snprintf(t_base, sizeof t_base, "/tmp/upesi-durable-unit-XXXXXX");
    if (mkdtemp(t_base) == NULL) {
        diag("mkdtemp: %s", strerror(errno));
        return 1;
    }
    mode_t mode = 0;

    /* -- dir_make ------------------------------------------------------ */
    is_int(up_durable_dir_make(t_path("a/b/c")), 0, "dir_make: a/b/c");
    ok(t_is_dir(t_path("a"), &mode) && mode == 0700 &&
       t_is_dir(t_path("a/b/c"), &mode) && mode == 0700,
       "dir_make: every level created, mode 0700");
    is_int(up_durable_dir_make(t_path("a/b/c")), 0,
           "dir_make: an existing directory is 0");
    is_int(up_durable_dir_make(t_path("a//d///")), 0,
           "dir_make: repeated and trailing slashes");
    ok(t_is_dir(t_path("a/d"), &mode), "dir_make: a/d exists");
    close(t_create(t_path("file")));
    is_int(up_durable_dir_make(t_path("file")), -ENOTDIR,
           "dir_make: a file is -ENOTDIR");
    is_int(up_durable_dir_make(t_path("file/x")), -ENOTDIR,
           "dir_make: below a file is -ENOTDIR");
    is_int(up_durable_dir_make(""), -ENOENT, "dir_make: empty path");

    /* -- dir_sync ------------------------------------------------------ */
    is_int(up_durable_dir_sync(t_path("a")), 0, "dir_sync: a directory");
    is_int(up_durable_dir_sync(t_path("nothing")), -ENOENT,
           "dir_sync: a missing directory is -ENOENT");

    /* -- file_write ---------------------------------------------------- */
    static struct iovec iov[T_MANY];
    static char bytes[T_MANY][3];
    for (int i = 0; i < T_MANY; i++) {
        snprintf(bytes[i], sizeof bytes[i], "%02d", i % 100);
        iov[i] = (struct iovec){ bytes[i], i % 7 == 0 ? 0 : 2 };
    }
    int fd = t_create(t_path("a/tmp1"));
    is_int(up_durable_file_write(fd, iov, T_MANY), 0,
           "file_write: %d buffers, some empty", T_MANY);
    size_t want_len = 0;
    for (int i = 0; i < T_MANY; i++)
        want_len += iov[i].iov_len;
    ok(iov[1].iov_base == bytes[1] && iov[1].iov_len == 2 &&
       iov[T_MANY - 1].iov_base == bytes[T_MANY - 1],
       "file_write: iov unchanged");

    /* -- file_commit --------------------------------------------------- */
    is_int(up_durable_file_commit(fd, t_path("a/tmp1"), t_path("a/b/f1"), 1),
           0, "file_commit: fsync, close, rename");
    size_t len;
    char *got = t_slurp(t_path("a/b/f1"), &len);
    int same = got && len == want_len;
    for (int i = 0, off = 0; same && i < T_MANY; i++) {
        same = memcmp(got + off, bytes[i], iov[i].iov_len) == 0;
        off += (int)iov[i].iov_len;
    }
    free(got);
    ok(same && access(t_path("a/tmp1"), F_OK) != 0,
       "file_commit: the file in place whole (%zu bytes), tmp gone", want_len);

    fd = t_create(t_path("a/tmp2"));
    is_int(up_durable_file_commit(fd, t_path("a/tmp2"), t_path("no/f2"), 0),
           -ENOENT, "file_commit: rename into a missing directory: -ENOENT");
    ok(access(t_path("a/tmp2"), F_OK) != 0 && fcntl(fd, F_GETFD) < 0,
       "file_commit: on error the tmp file is unlinked and fd closed");

    /* the same name again (a queue id made twice): never over the file */
    fd = t_create(t_path("a/tmp3"));
    struct iovec other = { (void *)"other", 5 };
    up_durable_file_write(fd, &other, 1);
    is_int(up_durable_file_commit(fd, t_path("a/tmp3"), t_path("a/b/f1"), 1),
           -EEXIST, "file_commit over an existing file: -EEXIST");
    got = t_slurp(t_path("a/b/f1"), &len);
    ok(got && len == want_len && access(t_path("a/tmp3"), F_OK) != 0,
       "... the file there is untouched (%zu bytes), tmp gone", len);
    free(got);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_base);
    if (system(cmd) != 0)
        diag("could not remove %s", t_base);
    return done_testing();
}
