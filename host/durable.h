/*
 * durable.h - writing files so that they survive a crash: the one
 * implementation the host uses (actions.c, message.c) and offers to
 * plugins (api->file_write, file_commit, dir_make, dir_sync).
 *
 * The recipe (docs/spool-format.md): create <dir>/tmp/<name> O_EXCL 0600,
 * write it whole (up_durable_file_write), fsync, close and rename it into
 * place (up_durable_file_commit), then fsync the directory it was renamed
 * into (up_durable_dir_sync), once for any number of files.
 *
 * Thread-safe: plain system calls on the caller's arguments, no state, no
 * loop, no logging, so they run on pool threads (queue_work) as well.
 * Fails: 0 or a negative errno; nothing is logged.
 */
#ifndef UPESI_DURABLE_H
#define UPESI_DURABLE_H

#include <sys/uio.h>

/* writev until every byte of iov[0..iovcnt) is written (EINTR and short
 * writes retried).  iov is not changed.  0 or -errno. */
int up_durable_file_write(int fd, const struct iovec *iov, int iovcnt);

/* fsync fd (unless sync is 0: the caller synced it otherwise), close it,
 * rename tmp_path to path.  fd is closed whatever happens; on an error
 * tmp_path is unlinked.  The directory of path is not synced: the caller
 * does that, once for all the files it renamed there.  0 or -errno. */
int up_durable_file_commit(int fd, const char *tmp_path, const char *path,
                           int sync);

/* mkdir -p path, mode 0700 for what it creates; the parent of each
 * directory it creates is fsynced, so the new entry survives a crash.
 * 0 (path is a directory), -ENOTDIR, or -errno. */
int up_durable_dir_make(const char *path);

/* fsync the directory path (its entries: creates, renames, unlinks).
 * 0 or -errno. */
int up_durable_dir_sync(const char *path);

#endif
