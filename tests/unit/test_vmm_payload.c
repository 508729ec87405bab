/* The payload ELF loader without a VM (vm_payload_load_image): what
 * tests/fuzz/fuzz_elf.c found stays fixed, and images that would write
 * outside boot RAM are refused with a message. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/guest/abi.h"
#include "vmm/internal.h"

#define RAM (4u << 20)

/* A static x86-64 executable: one PT_LOAD of 16 bytes at 2 MiB, its
 * program header at phoff. */
static size_t elf_make(uint8_t *buf, size_t phoff)
{
	Elf64_Ehdr eh = {
		.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT },
		.e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
		.e_entry = VMM_GPA_PAYLOAD, .e_phoff = phoff, .e_ehsize = sizeof(Elf64_Ehdr),
		.e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 1,
	};
	Elf64_Phdr ph = {
		.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 256,
		.p_vaddr = VMM_GPA_PAYLOAD, .p_paddr = VMM_GPA_PAYLOAD, .p_filesz = 16,
		.p_memsz = 16, .p_align = 4096,
	};

	memset(buf, 0, 512);
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + phoff, &ph, sizeof(ph));
	memset(buf + 256, 0x90, 16);
	return 512;
}

static int load(const uint8_t *img, size_t n, struct vmm_err *err, uint64_t *entry)
{
	static uint8_t *ram;
	uint8_t *copy = malloc(n);
	int r;

	if (!ram)
		ram = calloc(1, RAM);
	memcpy(copy, img, n);
	memset(err, 0, sizeof(*err));
	r = vm_payload_load_image(copy, n, ram, RAM, entry, err);
	free(copy);
	return r;
}

Test(vmm_payload, a_minimal_static_executable_loads)
{
	uint8_t img[512];
	struct vmm_err err;
	uint64_t entry = 0;
	int r = load(img, elf_make(img, sizeof(Elf64_Ehdr)), &err, &entry);

	cr_assert_eq(r, 0, "refused: %s", err.msg);
	cr_expect_eq(entry, VMM_GPA_PAYLOAD);
}

Test(vmm_payload, misaligned_program_headers_are_refused)
{
	/* Found by fuzz_elf: e_phoff 65 made the loader read an Elf64_Phdr
	 * through a misaligned pointer (UBSan: misaligned member access). */
	uint8_t img[512];
	struct vmm_err err;
	uint64_t entry;
	int r = load(img, elf_make(img, sizeof(Elf64_Ehdr) + 1), &err, &entry);

	cr_assert_eq(r, -EINVAL, "a misaligned e_phoff was accepted (%d)", r);
	cr_expect(strstr(err.msg, "program headers"), "message: %s", err.msg);
}

Test(vmm_payload, segments_outside_the_file_or_ram_are_refused)
{
	uint8_t img[512];
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof(Elf64_Ehdr));
	struct vmm_err err;
	uint64_t entry;

	elf_make(img, sizeof(Elf64_Ehdr));
	ph->p_filesz = 4096;
	ph->p_memsz = 4096;
	cr_expect_eq(load(img, sizeof(img), &err, &entry), -EINVAL, "past the file's end");
	elf_make(img, sizeof(Elf64_Ehdr));
	ph->p_memsz = RAM;
	cr_expect_eq(load(img, sizeof(img), &err, &entry), -EINVAL, "past boot RAM");
	cr_expect(strstr(err.msg, "outside"), "message: %s", err.msg);
	elf_make(img, sizeof(Elf64_Ehdr));
	ph->p_vaddr = UINT64_MAX - 8;
	cr_expect_eq(load(img, sizeof(img), &err, &entry), -EINVAL, "wrapping address");
}
