/* Opening memslot backings: files under the allowed directories (paths
 * resolved before the check), memfds by path, anonymous and hugetlb
 * memfds.  Pure helpers on the file system: the control plane opens a
 * backing here and hands the descriptor to the VM's runner, which needs
 * no file system access of its own; an in-process vmm uses them itself. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/memfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/internal.h"

#define HUGE_2M		(2ull << 20)
#define HUGE_1G		(1ull << 30)

/* Resolves path's directory (symlinks, "..") and checks it lies under an
 * allowed directory; out gets the resolved path. */
static int path_allowed(const char *const *dirs, const char *path, char *out,
			size_t len, struct vmm_err *err)
{
	char dirbuf[PATH_MAX], basebuf[PATH_MAX], dir[PATH_MAX], allowed[PATH_MAX];
	const char *base;

	if (!dirs || !dirs[0])
		return vmm_err_set(err, -EACCES, "backing.path",
				   "file-backed memslots are off: start slotd with --file-dir DIR");
	if (path[0] != '/')
		return vmm_err_set(err, -EINVAL, "backing.path", "'%s' is not an absolute path", path);
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	snprintf(basebuf, sizeof(basebuf), "%s", path);
	base = basename(basebuf);
	if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/"))
		return vmm_err_set(err, -EINVAL, "backing.path", "'%s' does not name a file", path);
	if (!realpath(dirname(dirbuf), dir))
		return vmm_err_set(err, -ENOENT, "backing.path", "directory of '%s': %s",
				   path, strerror(errno));
	for (const char *const *d = dirs; *d; d++) {
		size_t n;

		if (!realpath(*d, allowed))
			continue;
		n = strlen(allowed);
		if (!strncmp(dir, allowed, n) && (dir[n] == 0 || dir[n] == '/' || n == 1)) {
			if ((size_t)snprintf(out, len, "%s/%s", dir, base) >= len)
				return vmm_err_set(err, -ENAMETOOLONG, "backing.path",
						   "'%s' is too long", path);
			return 0;
		}
	}
	return vmm_err_set(err, -EACCES, "backing.path",
			   "'%s' resolves to %s/%s, outside the allowed directories (--file-dir)",
			   path, dir, base);
}

/* Opens (creating if needed) a file backing big enough for offset + size. */
static int file_open(const char *const *dirs, const struct vmm_memslot_params *p,
		     struct vmm_err *err)
{
	char path[PATH_MAX];
	bool ro = p->flags & VMM_SLOT_READONLY;
	struct stat st;
	int fd, r;

	r = path_allowed(dirs, p->backing.path, path, sizeof(path), err);
	if (r)
		return r;
	fd = open(path, (ro ? O_RDONLY : O_RDWR | O_CREAT) | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return vmm_err_set(err, errno == ELOOP ? -EACCES : -errno, "backing.path",
				   errno == ELOOP ? "'%s' is a symbolic link; give the file itself"
						  : "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return vmm_err_set(err, -EINVAL, "backing.path", "'%s' is not a regular file", path);
	}
	if ((uint64_t)st.st_size < p->backing.offset + p->size &&
	    (ro || ftruncate(fd, (off_t)(p->backing.offset + p->size)) < 0)) {
		close(fd);
		return vmm_err_set(err, ro ? -EINVAL : -errno, "backing.path",
				   "'%s' is %lld bytes, shorter than offset + size", path,
				   (long long)st.st_size);
	}
	return fd;
}

/* A memfd of size bytes (hugetlb pages of hp bytes when hp != 0). */
static int memfd_open(const char *vm_name, uint32_t id, uint64_t size, uint64_t hp,
		      struct vmm_err *err)
{
	unsigned flags = MFD_CLOEXEC;
	char name[96];
	int fd;

	if (hp)
		flags |= MFD_HUGETLB | (hp == HUGE_1G ? MFD_HUGE_1GB : MFD_HUGE_2MB);
	snprintf(name, sizeof(name), "slotd-%s-slot%u", vm_name, id);
	fd = memfd_create(name, flags);
	if (fd < 0)
		return vmm_err_set(err, -errno, "backing.kind", "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;

		close(fd);
		return vmm_err_set(err, -e, "size", "sizing the memfd to %llu bytes: %s",
				   (unsigned long long)size, strerror(e));
	}
	return fd;
}

int vmm_backing_check(const struct vmm_memslot_params *p, struct vmm_err *err)
{
	const struct vmm_backing *b = &p->backing;
	uint64_t hp = b->hugepage_size ? b->hugepage_size : HUGE_2M;
	bool file = b->kind == VMM_BACKING_FILE || (b->kind == VMM_BACKING_MEMFD && b->path[0]);

	if (b->kind > VMM_BACKING_FILE)
		return vmm_err_set(err, -EINVAL, "backing.kind", "unknown backing kind");
	if (b->kind == VMM_BACKING_FILE && !b->path[0])
		return vmm_err_set(err, -EINVAL, "backing.path", "a file backing needs a path");
	if (file && (b->offset & 0xfff))
		return vmm_err_set(err, -EINVAL, "backing.offset", "offset must be 4 KiB aligned");
	if (b->kind != VMM_BACKING_HUGETLB)
		return 0;
	if (hp != HUGE_2M && hp != HUGE_1G)
		return vmm_err_set(err, -EINVAL, "backing.hugepage_size",
				   "hugepage_size must be 2M or 1G");
	if (p->size % hp)
		return vmm_err_set(err, -EINVAL, "size",
				   "size must be a multiple of the %lluM huge page",
				   (unsigned long long)(hp >> 20));
	return 0;
}

int vmm_backing_open(const char *const *file_dirs, const char *vm_name, uint32_t id,
		     const struct vmm_memslot_params *p, int *fd, struct vmm_err *err)
{
	const struct vmm_backing *b = &p->backing;
	int r = vmm_backing_check(p, err);

	*fd = -1;
	if (r || b->kind == VMM_BACKING_ANON)
		return r;
	if (b->kind == VMM_BACKING_HUGETLB)
		r = memfd_open(vm_name, id, p->size,
			       b->hugepage_size ? b->hugepage_size : HUGE_2M, err);
	else if (b->path[0])
		r = file_open(file_dirs, p, err);
	else
		r = memfd_open(vm_name, id, p->size, 0, err);
	if (r == -EPERM) {
		r = -EACCES;
		if (err)
			err->code = r;
	}
	if (r < 0)
		return r;
	*fd = r;
	return 0;
}
