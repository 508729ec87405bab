/* A file backing truncated under a live memslot: slotd's own accesses
 * (the memory API and the DMA device) get an error instead of killing the
 * process with SIGBUS, the guest keeps running, other slots still work.
 * Also covers a backing passed as a descriptor (how a runner gets it). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/vmm_helpers.h"
#include "vmm/guest/abi.h"

VMM_T_SUITE(vmm_sigbus, 60);

#define FILE_GPA	(1ull << 32)
#define FILE_SIZE	(64u << 10)

static char path[64];

/* A 64 KiB temporary file filled with 0x5a, open read-write. */
static int backing_file(void)
{
	char buf[4096];
	int fd;

	snprintf(path, sizeof(path), "/tmp/slotd-sigbus-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	memset(buf, 0x5a, sizeof(buf));
	for (unsigned i = 0; i < FILE_SIZE / sizeof(buf); i++)
		cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	return fd;
}

/* Creates a shared file-backed slot at FILE_GPA from fd. */
static uint32_t file_slot(struct vmm_vm *vm, int fd)
{
	struct vmm_memslot_params p = { .id = VMM_SLOT_ANY, .gpa = FILE_GPA, .size = FILE_SIZE,
					.has_fd = true, .fd = fd };
	struct vmm_err err = { 0 };
	uint32_t id = 0;

	p.backing.kind = VMM_BACKING_FILE;
	p.backing.shared = true;
	snprintf(p.backing.path, sizeof(p.backing.path), "/given/by/descriptor");
	cr_assert_eq(vmm_memslot_create(vm, &p, &id, NULL, &err), 0, "create: %s", err.msg);
	return id;
}

Test(vmm_sigbus, a_read_of_a_truncated_file_backing_is_an_error_not_a_crash)
{
	struct vmm_vm_params vp;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	unsigned char b[16];
	int fd;

	NEED_KVM();
	vmm_t_params(&vp, "sigbus", "builtin:busy");
	cr_assert_eq(vmm_vm_create(vmm, &vp, &vm, &err), 0, "%s", err.msg);
	fd = backing_file();
	file_slot(vm, fd);
	cr_assert_eq(vmm_vm_memory_read(vm, FILE_GPA, b, sizeof(b), &err), 0, "%s", err.msg);
	cr_assert_eq(b[0], 0x5a, "the slot shows the file's bytes through the passed fd");

	cr_assert_eq(ftruncate(fd, 0), 0);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(vmm_vm_memory_read(vm, FILE_GPA, b, sizeof(b), &err), -EIO,
		     "a read past the truncated end: expected -EIO, got %d (%s)", err.code, err.msg);
	cr_assert(err.field && !strcmp(err.field, "gpa"), "the error names gpa");
	cr_assert(strstr(err.msg, "SIGBUS"), "the message says what happened: %s", err.msg);
	cr_assert_eq(vmm_vm_memory_write(vm, FILE_GPA + 4096, b, sizeof(b), &err), -EIO,
		     "a write too");
	/* And again: the handler is still in place after a caught fault. */
	cr_assert_eq(vmm_vm_memory_read(vm, FILE_GPA, b, sizeof(b), &err), -EIO);
	/* Boot RAM is untouched by it. */
	cr_assert_eq(vmm_vm_memory_write(vm, 0x300000, "ok", 2, &err), 0, "%s", err.msg);
	cr_assert_eq(vmm_vm_memory_read(vm, 0x300000, b, 2, &err), 0, "%s", err.msg);
	cr_assert(!memcmp(b, "ok", 2));
	close(fd);
}

/* Statuses of the dmatest loop's reports from index from on. */
static size_t dma_statuses(struct vmm_vm *vm, uint64_t from, uint32_t *st, size_t max)
{
	struct vmm_report recs[256];
	size_t n = 0, k = 0;

	vmm_vm_reports_read(vm, from, recs, 256, &n);
	for (size_t i = 0; i < n && k < max; i++)
		if (recs[i].tag == VMM_REPORT_DMA_STEP)
			st[k++] = (uint32_t)recs[i].value;
	return k;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

Test(vmm_sigbus, dma_from_a_truncated_file_backing_reports_an_io_error_and_the_guest_runs_on)
{
	struct vmm_vm_params vp;
	struct vmm_vm_info info;
	struct vmm_err err = { 0 };
	struct vmm_vm *vm;
	uint32_t st[256];
	uint64_t seen;
	size_t n = 0;
	int fd;

	NEED_KVM();
	vmm_t_params(&vp, "dmaloop", "builtin:dmatest");
	vp.args[0] = FILE_GPA;		/* loop mode: copy from the file slot */
	vp.args[1] = 4096;
	cr_assert_eq(vmm_vm_create(vmm, &vp, &vm, &err), 0, "%s", err.msg);
	fd = backing_file();
	file_slot(vm, fd);
	cr_assert_eq(vmm_vm_start(vm, &err), 0, "%s", err.msg);
	for (int i = 0; i < 200 && (n = dma_statuses(vm, 0, st, 8)) < 8; i++)
		sleep_ms(10);
	cr_assert_eq(n, 8, "the guest runs DMA copies");
	cr_assert_eq(st[7], VMM_DMA_ST_OK, "copies from the file work: status %u", st[7]);

	cr_assert_eq(ftruncate(fd, 0), 0);
	vmm_vm_info_get(vm, &info);
	seen = info.reports;
	for (int i = 0; i < 200; i++) {
		n = dma_statuses(vm, seen, st, 256);
		if (n >= 4 && st[n - 1] == VMM_DMA_ST_IO_ERROR)
			break;
		sleep_ms(10);
	}
	cr_assert_geq(n, 4, "the guest keeps running DMA after the truncation");
	cr_assert_eq(st[n - 1], VMM_DMA_ST_IO_ERROR,
		     "a copy from the truncated file reports status %u, got %u",
		     VMM_DMA_ST_IO_ERROR, st[n - 1]);
	vmm_vm_info_get(vm, &info);
	cr_assert_eq(info.state, VMM_VM_RUNNING, "the VM is still running (state %s)",
		     vmm_vm_state_name(info.state));
	close(fd);
}
