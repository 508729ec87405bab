# mmu: its test binaries link only the mmu reference model from tests/lib,
# so `make MODULES=mmu T=mmu test` works while other modules' test helpers
# (which need vmm/ or rpc/) are not in the archive.  GNU make prefers this
# pattern over $(O)/tests/% because its stem is shorter.
MMU_TESTLIB_OBJ := $(O)/tests/lib/mmu_ref.o

$(O)/tests/unit/test_mmu_%: $(O)/tests/unit/test_mmu_%.o $(MMU_TESTLIB_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CRIT_LIBS)
