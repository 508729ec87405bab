/* Durable files: atomic replacement, durable removal and full writes,
 * below every module that keeps state on disk. */
#ifndef SLOTD_COMMON_DURABLE_H
#define SLOTD_COMMON_DURABLE_H

#include <stddef.h>
#include <sys/types.h>

/* Writes data to dir/name atomically: a temporary file in dir, fsync,
 * rename over name, fsync of dir.  After a crash at any point dir/name is
 * either the old or the new content, never a mix.  0 or -errno. */
int durable_file_write(const char *dir, const char *name, const void *data,
		       size_t len);
/* Writes all of data to fd, retrying short writes and EINTR; 0 or -errno. */
int durable_write_all(int fd, const void *data, size_t len);
/* Appends len bytes to fd (opened O_APPEND) and makes them durable
 * before it returns (data, not metadata: fdatasync's guarantee). */
int durable_append(int fd, const char *line, size_t len);
/* Removes dir/name durably (unlink, fsync of dir); absent is not an error. */
int durable_file_remove(const char *dir, const char *name);
/* Calls fn(name, arg) for each file in dir ending in suffix, in name order;
 * leftover temporary files of an interrupted write are removed. */
int durable_dir_foreach(const char *dir, const char *suffix,
			int (*fn)(const char *name, void *arg), void *arg);
/* mkdir -p of the directories above path (not path itself), each made
 * with mode; 0 or -errno. */
int durable_mkdir_parents(const char *path, mode_t mode);
/* fsync of a directory (after creating or removing entries in it). */
int durable_dir_sync(const char *dir);

#endif
