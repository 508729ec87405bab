/* What makes state durable is the flush, not the rename: a kill -9 test
 * passes without it (the page cache survives the process).  These tests
 * watch the calls themselves: this binary defines fsync, fdatasync,
 * pwritev2 and rename, so the slotd code linked into it calls these,
 * which log the call (with the file's path) and pass it on to libc. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/durable.h"
#include "ctl/internal.h"
#include "ctl/store.h"
#include "tests/lib/daemon.h"

#define LOG_MAX 64

static struct {
	char op[16];
	char path[PATH_MAX];
	char to[PATH_MAX];
} calls[LOG_MAX];
static int ncalls;
static char dir[64];

static void log_call(const char *op, int fd, const char *path, const char *to)
{
	char link[64];
	ssize_t n;

	if (ncalls >= LOG_MAX)
		return;
	snprintf(calls[ncalls].op, sizeof(calls[ncalls].op), "%s", op);
	if (path) {
		snprintf(calls[ncalls].path, sizeof(calls[ncalls].path), "%s", path);
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, calls[ncalls].path, sizeof(calls[ncalls].path) - 1);
		calls[ncalls].path[n > 0 ? n : 0] = 0;
	}
	snprintf(calls[ncalls].to, sizeof(calls[ncalls].to), "%s", to ? to : "");
	ncalls++;
}

int fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	log_call("fsync", fd, NULL, NULL);
	return real(fd);
}

int fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	log_call("fdatasync", fd, NULL, NULL);
	return real(fd);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	ssize_t (*real)(int, const struct iovec *, int, off_t, int) =
		(ssize_t (*)(int, const struct iovec *, int, off_t, int))dlsym(RTLD_NEXT,
									       "pwritev2");

	log_call(flags & RWF_DSYNC ? "pwritev2-dsync" : "pwritev2", fd, NULL, NULL);
	return real(fd, iov, n, off, flags);
}

int rename(const char *from, const char *to)
{
	int (*real)(const char *, const char *) =
		(int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");

	log_call("rename", -1, from, to);
	return real(from, to);
}

/* The index of the first call of op on a path ending in suffix at or
 * after from, or -1. */
static int find(const char *op, const char *suffix, int from)
{
	for (int i = from; i < ncalls; i++) {
		size_t a = strlen(calls[i].path), b = strlen(suffix);

		if (!strcmp(calls[i].op, op) && a >= b && !strcmp(calls[i].path + a - b, suffix))
			return i;
	}
	return -1;
}

/* Whether the file ending in suffix was made durable by an append: one
 * RWF_DSYNC write, or a write followed by fdatasync or fsync. */
static bool appended_durably(const char *suffix)
{
	return find("pwritev2-dsync", suffix, 0) >= 0 || find("fdatasync", suffix, 0) >= 0 ||
	       find("fsync", suffix, 0) >= 0;
}

static void dump(void)
{
	for (int i = 0; i < ncalls; i++)
		fprintf(stderr, "  %s %s %s\n", calls[i].op, calls[i].path, calls[i].to);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/slotd-durable-XXXXXX");
	cr_assert(mkdtemp(dir));
	ncalls = 0;
}

static void teardown(void)
{
	test_rmtree(dir);
}

TestSuite(common_durable_flush, .init = setup, .fini = teardown);

/* The new content is flushed before the rename makes it the file, and
 * the directory after, so the rename itself survives a power cut. */
static void assert_replaced_durably(const char *name)
{
	char dst[128];
	int r = -1, f, d;

	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	for (int i = 0; i < ncalls; i++)
		if (!strcmp(calls[i].op, "rename") && !strcmp(calls[i].to, dst))
			r = i;
	cr_assert_geq(r, 0, "no rename onto %s", dst);
	f = -1;
	for (int i = 0; i < r; i++)
		if (!strcmp(calls[i].op, "fsync") && !strcmp(calls[i].path, calls[r].path))
			f = i;
	d = -1;
	for (int i = r + 1; i < ncalls; i++)
		if (!strcmp(calls[i].op, "fsync") && !strcmp(calls[i].path, dir))
			d = i;
	if (f < 0 || d < 0)
		dump();
	cr_assert_geq(f, 0, "%s: the temporary file was not flushed before the rename", name);
	cr_assert_geq(d, 0, "%s: the directory was not flushed after the rename", name);
}

Test(common_durable_flush, a_file_write_flushes_the_file_then_renames_then_flushes_the_directory)
{
	cr_assert_eq(durable_file_write(dir, "f.json", "{}\n", 3), 0);
	assert_replaced_durably("f.json");
}

Test(common_durable_flush, an_append_is_flushed_before_it_returns)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/j", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(durable_append(fd, "x\n", 2), 0);
	close(fd);
	if (!appended_durably("/j"))
		dump();
	cr_assert(appended_durably("/j"), "the append was not flushed");
}

Test(common_durable_flush, the_store_flushes_its_snapshot_and_every_journal_record)
{
	struct store *st;
	struct store_vm_def def = { .vcpus = 1, .memory = 4 << 20 };
	struct vmm_memslot_info s = { .id = 1, .gpa = 1 << 30, .size = 2 << 20 };
	struct vmm_err e = { 0 };

	snprintf(def.name, sizeof(def.name), "a");
	snprintf(def.payload, sizeof(def.payload), "builtin:hello");
	cr_assert_eq(store_open(dir, &st), 0);
	cr_assert_eq(store_snapshot(st, &def, 0, NULL, 0, &e), 0);
	assert_replaced_durably("vm-a.json");
	ncalls = 0;
	cr_assert_eq(store_slot_put(st, "a", &s, &e), 0);
	if (!appended_durably("/vm-a.journal"))
		dump();
	cr_assert(appended_durably("/vm-a.journal"), "a journal record was not flushed");
	ncalls = 0;
	cr_assert_eq(store_slot_del(st, "a", 1, &e), 0);
	cr_assert(appended_durably("/vm-a.journal"), "a journal removal was not flushed");
	store_close(st);
}

Test(common_durable_flush, a_kept_request_outcome_is_flushed_before_the_reply)
{
	struct ctl_config cfg = { .kvm_path = "/nonexistent/kvm", .state_dir = dir,
				  .runtime_dir = dir, .runner_path = "/bin/false", .log_fd = -1 };
	struct ctl_request o = { .method = "vm.stop", .fingerprint = 1, .reply = "{}", .len = 2 };
	struct ctl *ctl;

	cr_assert_eq(ctl_create(&cfg, &ctl), 0);
	ncalls = 0;
	ctl_request_begin(ctl, "r1");
	cr_assert_eq(ctl_request_end(ctl, &o, true), 0);
	if (!appended_durably("/requests.journal"))
		dump();
	cr_assert(appended_durably("/requests.journal"), "the outcome was not flushed");
	ctl_destroy(ctl, CTL_EXIT_KEEP);
}
