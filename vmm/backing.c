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

/* ---- mapping and releasing ------------------------------------------------ */

/* Whether slot s's backing is a private anonymous mapping (the only kind
 * the backing cache keeps).  Slot 0's RAM is never deleted. */
bool vm_backing_private_anon(const struct vmm_memslot *s)
{
	return s->id != 0 && s->fd < 0 && s->backing.kind == VMM_BACKING_ANON &&
	       !s->backing.shared;
}


/* Keeps a released private anonymous backing for reuse instead of
 * unmapping it, when it is small and the cache has room: emptied with
 * MADV_DONTNEED (outside the lock), it reads as zeros again, like a new
 * mapping.  A create then skips mmap (2-4 us of a 4 KiB memslot.create
 * here) and a slot deleted and created again and again stops paying
 * munmap and mmap each time.  Shared and file-backed mappings are never kept (MADV_DONTNEED
 * would not empty them).  Called on the call_rcu thread. */
static bool bcache_put(struct vmm_bcache *c, void *hva, uint64_t size, int prot)
{
	bool kept = false;

	if (prot < 0 || size > VMM_BCACHE_MAX_SIZE || madvise(hva, size, MADV_DONTNEED))
		return false;
	pthread_mutex_lock(&c->lock);
	if (c->n < VMM_BCACHE_SLOTS) {
		c->e[c->n].hva = hva;
		c->e[c->n].size = size;
		c->e[c->n].prot = prot;
		c->n++;
		c->kept++;
		kept = true;
	}
	pthread_mutex_unlock(&c->lock);
	return kept;
}

/* A cached backing of exactly size and prot, or NULL. */
static void *bcache_take(struct vmm_bcache *c, uint64_t size, int prot)
{
	void *hva = NULL;

	if (size > VMM_BCACHE_MAX_SIZE)
		return NULL;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = c->n; i-- > 0;)
		if (c->e[i].size == size && c->e[i].prot == prot) {
			hva = c->e[i].hva;
			c->e[i] = c->e[--c->n];
			c->reused++;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return hva;
}

void vmm_bcache_fini(struct vmm_bcache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		munmap(c->e[i].hva, c->e[i].size);
	c->n = 0;
	pthread_mutex_destroy(&c->lock);
}

void vmm_bcache_stats(struct vmm *vmm, uint64_t *reused, uint64_t *kept, unsigned *held)
{
	pthread_mutex_lock(&vmm->bcache.lock);
	*reused = vmm->bcache.reused;
	*kept = vmm->bcache.kept;
	*held = vmm->bcache.n;
	pthread_mutex_unlock(&vmm->bcache.lock);
}

void vm_backing_release(void *arg)
{
	struct vm_released *r = arg;

	if (!bcache_put(&r->vmm->bcache, r->hva, r->size, r->prot))
		munmap(r->hva, r->size);
	if (r->fd >= 0)
		close(r->fd);
	free(r->kvm_dirty);
	free(r);
}


/* The backing's descriptor: a dup of the one the caller passed (the
 * runner gets file and memfd backings from the control plane), or one
 * opened here; -1 for anonymous memory. */
static int backing_fd(struct vmm_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		      int *fd, struct vmm_err *err)
{
	int r = vmm_backing_check(p, err);

	*fd = -1;
	if (r || p->backing.kind == VMM_BACKING_ANON)
		return r;
	if (!p->has_fd)
		return vmm_backing_open((const char *const *)vm->vmm->file_dirs, vm->name, id, p,
					fd, err);
	*fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 3);
	if (*fd < 0)
		return vmm_err_set(err, -errno, "backing", "the backing's descriptor: %s",
				   strerror(errno));
	return 0;
}

int vm_backing_map(struct vmm_vm *vm, uint32_t id, const struct vmm_memslot_params *p,
		   struct vm_mapping *m, struct vmm_err *err)
{
	const struct vmm_backing *b = &p->backing;
	bool file = b->kind == VMM_BACKING_FILE || (b->kind == VMM_BACKING_MEMFD && b->path[0]);
	bool shared = b->kind != VMM_BACKING_ANON && (b->kind != VMM_BACKING_FILE || b->shared);
	int prot = PROT_READ | (p->flags & VMM_SLOT_READONLY ? 0 : PROT_WRITE);
	int flags = (shared || (b->kind == VMM_BACKING_ANON && b->shared)) ? MAP_SHARED : MAP_PRIVATE;

	int r = backing_fd(vm, id, p, &m->fd, err);

	if (r)
		return r;
	if (m->fd < 0)
		flags |= MAP_ANONYMOUS | MAP_NORESERVE;
	if (b->kind == VMM_BACKING_ANON && !b->shared &&
	    (m->hva = bcache_take(&vm->vmm->bcache, p->size, prot)))
		return 0;	/* MADV_HUGEPAGE, if any, came with it */
	m->hva = mmap(NULL, p->size, prot, flags, m->fd, file ? (off_t)b->offset : 0);
	if (m->hva == MAP_FAILED) {
		int e = errno;

		if (m->fd >= 0)
			close(m->fd);
		return vmm_err_set(err, -e, "backing.kind",
				   b->kind == VMM_BACKING_HUGETLB && e == ENOMEM ?
				   "not enough free huge pages (see /proc/sys/vm/nr_hugepages)" :
				   "mapping the backing failed");
	}
	/* Best effort; below 2 MiB there is no huge page to ask for. */
	if (b->kind == VMM_BACKING_ANON && p->size >= HUGE_2M)
		madvise(m->hva, p->size, MADV_HUGEPAGE);
	return 0;
}
