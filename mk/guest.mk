# Guest kit and built-in payloads (vmm/guest/): freestanding ELF64 images
# built with the host gcc, embedded into libslotd.a so that builtin:NAME
# works without files at run time.  Sanitizer flags never reach guest code.

GUEST_CC      ?= gcc
GUEST_CFLAGS  := -std=gnu11 -I. -MD -MP -O2 -g -Wall -Wextra -Werror \
	-ffreestanding -nostdlib -static -fno-pic -no-pie -mno-red-zone \
	-mgeneral-regs-only -fno-stack-protector -fno-builtin \
	-fno-tree-loop-distribute-patterns -fno-asynchronous-unwind-tables \
	-fcf-protection=none
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,vmm/guest/guest.ld \
	-Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096
GUEST_NAMES   := $(sort $(basename $(notdir $(wildcard vmm/guest/payloads/*.c))))
GUEST_KIT_OBJ := $(O)/guest/crt0.o $(O)/guest/lib.o
GUEST_ELF     := $(GUEST_NAMES:%=$(O)/guest/%.elf)

$(O)/guest/crt0.o: vmm/guest/crt0.S
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GUESTAS $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(O)/guest/lib.o: vmm/guest/lib.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GUESTCC $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(O)/guest/payloads/%.o: vmm/guest/payloads/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GUESTCC $<")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(O)/guest/%.elf: $(O)/guest/payloads/%.o $(GUEST_KIT_OBJ) vmm/guest/guest.ld
	@$(if $(Q),echo "  GUESTLD $@")
	$(Q)$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ \
		$(GUEST_KIT_OBJ) $<

# One assembler file: every image via .incbin plus the name table that
# vmm/payload.c looks builtin:NAME up in.
$(O)/guest/payloads.S: mk/guest.mk $(GUEST_ELF)
	@$(if $(Q),echo "  GEN     $@")
	$(Q){ for n in $(GUEST_NAMES); do \
		printf '\t.section .rodata\n\t.balign 16\n'; \
		printf 'p_%s: .incbin "%s"\np_%s_end:\n' $$n $(O)/guest/$$n.elf $$n; \
		printf 'n_%s: .asciz "%s"\n' $$n $$n; \
	done; \
	printf '\t.section .data.rel.ro,"aw"\n\t.balign 8\n'; \
	printf '\t.globl vmm_builtin_payloads\nvmm_builtin_payloads:\n'; \
	for n in $(GUEST_NAMES); do \
		printf '\t.quad n_%s, p_%s, p_%s_end\n' $$n $$n $$n; \
	done; \
	printf '\t.section .rodata\n\t.balign 8\n'; \
	printf '\t.globl vmm_builtin_payload_count\nvmm_builtin_payload_count:\n'; \
	printf '\t.quad %d\n' $(words $(GUEST_NAMES)); \
	printf '\t.section .note.GNU-stack,"",@progbits\n'; } > $@

$(O)/guest/payloads.o: $(O)/guest/payloads.S $(GUEST_ELF)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) -c -o $@ $<

LIB_EXTRA_OBJ += $(O)/guest/payloads.o
guest: $(GUEST_ELF)
.PHONY: guest
