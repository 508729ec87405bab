/* Durable, atomic files (state directory, journals). */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/durable.h"
#include "common/log.h"

#define TMP_PREFIX ".tmp-"

int durable_dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int durable_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int durable_file_write(const char *dir, const char *name, const void *data,
		       size_t len)
{
	char tmp[4096], dst[4096];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%s.%d", dir, name, (int)getpid()) >=
	    (int)sizeof(tmp) ||
	    snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = durable_write_all(fd, data, len);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, dst) < 0)
		r = -errno;
	if (r) {
		slog_error("state: cannot write %s: %s", dst, strerror(-r));
		unlink(tmp);
		return r;
	}
	return durable_dir_sync(dir);
}

int durable_file_remove(const char *dir, const char *name)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return durable_dir_sync(dir);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a > b && !strcmp(s + a - b, suffix);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int durable_dir_foreach(const char *dir, const char *suffix,
			 int (*fn)(const char *name, void *arg), void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		char **nn;

		if (!strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX))) {
			/* An interrupted write: the rename never happened. */
			unlinkat(dirfd(d), e->d_name, 0);
			continue;
		}
		if (!has_suffix(e->d_name, suffix))
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn || !(nn[n] = strdup(e->d_name))) {
			names = nn ? nn : names;
			r = -ENOMEM;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (!r)
			r = fn(names[i], arg);
		free(names[i]);
	}
	free(names);
	return r;
}

/* One pwritev2 with RWF_DSYNC (the guarantee of write + fdatasync in one
 * call), or the two calls where the flag is refused; a short write is
 * completed the same way. */
int durable_append(int fd, const char *line, size_t len)
{
	struct iovec iov = { .iov_base = (void *)line, .iov_len = len };
	ssize_t n = pwritev2(fd, &iov, 1, -1, RWF_DSYNC);

	if (n < 0 && errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (n == (ssize_t)len)
		return 0;
	n = n < 0 ? 0 : n;
	if (durable_write_all(fd, line + n, len - (size_t)n))
		return -errno;
	return fdatasync(fd) < 0 ? -errno : 0;
}

int durable_mkdir_parents(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}
