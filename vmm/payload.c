/* Payloads: built-in ELF images or ELF64 static executables from disk,
 * loaded by their PT_LOAD segments into identity-mapped boot RAM. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/internal.h"

#define BUILTIN_PREFIX "builtin:"

/* Points vm->image at the embedded payload of that name. */
static int builtin_open(struct vmm_vm *vm, const char *name,
			struct vmm_err *err)
{
	for (uint64_t i = 0; i < vmm_builtin_payload_count; i++) {
		const struct vmm_builtin_payload *b = &vmm_builtin_payloads[i];

		if (strcmp(b->name, name))
			continue;
		vm->image = b->start;
		vm->image_size = (size_t)(b->end - b->start);
		return 0;
	}
	return vmm_err_set(err, -ENOENT, "payload",
			   "no built-in payload '%s' (try builtin:hello)",
			   name);
}

/* Reads the whole file into vm->image_owned. */
static int file_open(struct vmm_vm *vm, const char *path, struct vmm_err *err)
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vmm_err_set(err, -errno, "payload", "cannot open %s: %s",
				   path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > VMM_PAYLOAD_MAX || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		r = vmm_err_set(err, -EINVAL, "payload",
				"%s is not a regular file of 64 B..64 MiB", path);
		goto out;
	}
	vm->image_owned = malloc((size_t)st.st_size);
	if (!vm->image_owned) {
		r = -ENOMEM;
		goto out;
	}
	n = pread(fd, vm->image_owned, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		r = vmm_err_set(err, -EIO, "payload", "short read of %s", path);
		goto out;
	}
	vm->image = vm->image_owned;
	vm->image_size = (size_t)st.st_size;
out:
	close(fd);
	return r;
}

/* Checks the ELF header: ELF64, little-endian, x86-64, ET_EXEC. */
static int ehdr_check(struct vmm_vm *vm, struct vmm_err *err)
{
	const Elf64_Ehdr *eh = (const void *)vm->image;

	if (vm->image_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return vmm_err_set(err, -EINVAL, "payload", "not an ELF file");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
		return vmm_err_set(err, -EINVAL, "payload",
				   "not an ELF64 x86-64 little-endian file");
	if (eh->e_type != ET_EXEC)
		return vmm_err_set(err, -EINVAL, "payload",
				   "not a static executable (e_type %u); link with -static -no-pie",
				   eh->e_type);
	/* Misaligned headers would be read through a misaligned pointer. */
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff % _Alignof(Elf64_Phdr) ||
	    eh->e_phoff > vm->image_size ||
	    eh->e_phnum > (vm->image_size - eh->e_phoff) / sizeof(Elf64_Phdr))
		return vmm_err_set(err, -EINVAL, "payload",
				   "program headers out of bounds");
	return 0;
}

/* Checks one program header against the file and the payload window. */
static int phdr_check(struct vmm_vm *vm, const Elf64_Phdr *ph, uint64_t limit,
		      struct vmm_err *err)
{
	if (ph->p_type == PT_INTERP || ph->p_type == PT_DYNAMIC)
		return vmm_err_set(err, -EINVAL, "payload",
				   "dynamically linked; link with -static -no-pie");
	if (ph->p_type != PT_LOAD)
		return 0;
	if (ph->p_filesz > ph->p_memsz || ph->p_offset > vm->image_size ||
	    ph->p_filesz > vm->image_size - ph->p_offset)
		return vmm_err_set(err, -EINVAL, "payload",
				   "PT_LOAD segment out of file bounds");
	if (ph->p_vaddr < VMM_GPA_PAYLOAD || ph->p_memsz > limit ||
	    ph->p_vaddr > limit - ph->p_memsz)
		return vmm_err_set(err, -EINVAL, "memory",
				   "payload segment 0x%llx+0x%llx outside [0x%llx, 0x%llx): load at >= 2 MiB or give the VM more memory",
				   (unsigned long long)ph->p_vaddr,
				   (unsigned long long)ph->p_memsz,
				   (unsigned long long)VMM_GPA_PAYLOAD,
				   (unsigned long long)limit);
	return 0;
}

bool vmm_builtin_payload_exists(const char *name)
{
	for (uint64_t i = 0; i < vmm_builtin_payload_count; i++)
		if (!strcmp(vmm_builtin_payloads[i].name, name))
			return true;
	return false;
}

/* Copies an image the caller read (a runner opens no files). */
static int image_copy(struct vmm_vm *vm, const uint8_t *image, size_t size,
		      struct vmm_err *err)
{
	if (size > VMM_PAYLOAD_MAX || size < sizeof(Elf64_Ehdr))
		return vmm_err_set(err, -EINVAL, "payload",
				   "the payload is not an image of 64 B..64 MiB");
	vm->image_owned = malloc(size);
	if (!vm->image_owned)
		return -ENOMEM;
	memcpy(vm->image_owned, image, size);
	vm->image = vm->image_owned;
	vm->image_size = size;
	return 0;
}

/* Resolves spec (or takes p's image) and validates the image without
 * loading it. */
int vm_payload_open(struct vmm_vm *vm, const struct vmm_vm_params *p, struct vmm_err *err)
{
	const char *spec = p->payload;
	int r;

	if (!spec || !*spec)
		return vmm_err_set(err, -EINVAL, "payload",
				   "payload missing: builtin:NAME or a path");
	snprintf(vm->payload_spec, sizeof(vm->payload_spec), "%s", spec);
	if (!strncmp(spec, BUILTIN_PREFIX, strlen(BUILTIN_PREFIX)))
		r = builtin_open(vm, spec + strlen(BUILTIN_PREFIX), err);
	else if (p->payload_image)
		r = image_copy(vm, p->payload_image, p->payload_image_size, err);
	else
		r = file_open(vm, spec, err);
	if (r)
		return r;
	return ehdr_check(vm, err);
}

/* Copies the PT_LOAD segments into boot RAM (already zeroed) and records
 * payload bounds and entry.  No vCPU may be running. */
int vm_payload_load(struct vmm_vm *vm, struct vmm_err *err)
{
	const Elf64_Ehdr *eh = (const void *)vm->image;
	const Elf64_Phdr *ph = (const void *)(vm->image + eh->e_phoff);
	uint64_t limit = vm->memory_bytes - vm->nr_vcpus * VMM_STACK_SIZE;
	uint64_t lo = UINT64_MAX, hi = 0;
	uint8_t *ram = vm->slots[0]->hva;
	int r;

	for (unsigned i = 0; i < eh->e_phnum; i++, ph++) {
		r = phdr_check(vm, ph, limit, err);
		if (r)
			return r;
		if (ph->p_type != PT_LOAD)
			continue;
		memcpy(ram + ph->p_vaddr, vm->image + ph->p_offset, ph->p_filesz);
		lo = ph->p_vaddr < lo ? ph->p_vaddr : lo;
		hi = ph->p_vaddr + ph->p_memsz > hi ? ph->p_vaddr + ph->p_memsz : hi;
	}
	if (hi == 0 || eh->e_entry < lo || eh->e_entry >= hi)
		return vmm_err_set(err, -EINVAL, "payload",
				   "no PT_LOAD segment, or entry 0x%llx outside them",
				   (unsigned long long)eh->e_entry);
	vm->payload_start = lo;
	vm->payload_end = hi;
	vm->entry = eh->e_entry;
	return 0;
}

int vm_payload_load_image(const uint8_t *image, size_t size, uint8_t *ram,
			  uint64_t ram_size, uint64_t *entry, struct vmm_err *err)
{
	struct vmm_memslot slot = { .hva = ram, .size = ram_size };
	struct vmm_memslot *slots[1] = { &slot };
	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	int r;

	if (!vm)
		return -ENOMEM;
	vm->image = image;
	vm->image_size = size;
	vm->memory_bytes = ram_size;
	vm->nr_vcpus = 1;
	vm->slots = slots;
	r = ehdr_check(vm, err);
	if (!r)
		r = vm_payload_load(vm, err);
	*entry = vm->entry;
	free(vm);
	return r;
}
