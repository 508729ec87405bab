/* libFuzzer target: the payload ELF loader (vmm/payload.c), without a VM:
 * the header and program header checks, then the copy of every PT_LOAD
 * segment into 4 MiB of boot RAM.  Oracle: no sanitizer report (a
 * segment written outside RAM is an ASan report), and a loaded image has
 * its entry inside the payload window. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/guest/abi.h"
#include "vmm/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct vmm_err err = { 0 };
	uint64_t entry = 0;
	uint8_t *image;
	int r;

	if (!ram && !(ram = malloc(RAM)))
		abort();
	/* An exact-size copy: a read past the image is an ASan report. */
	image = malloc(size ? size : 1);
	if (!image)
		return 0;
	memcpy(image, data, size);
	r = vm_payload_load_image(image, size, ram, RAM, &entry, &err);
	if (r == 0 && (entry < VMM_GPA_PAYLOAD || entry >= RAM - VMM_STACK_SIZE)) {
		fprintf(stderr, "entry 0x%llx accepted outside the payload window\n",
			(unsigned long long)entry);
		abort();
	}
	if (r && !err.msg[0] && r != -ENOMEM) {
		fprintf(stderr, "refused (%d) without a message\n", r);
		abort();
	}
	free(image);
	return 0;
}
