# mmu: its test binaries link only the mmu reference model from tests/lib,
# so `make O=build-mmu MODULES=mmu T=test_mmu_ test` works while other modules' test helpers
# (which need vmm/ or rpc/) are not in the archive.  GNU make prefers this
# pattern over $(O)/tests/% because its stem is shorter.  mmu_tsan.o is
# empty except under SAN=tsan, where it lets Criterion start (see there).
MMU_TESTLIB_OBJ := $(O)/tests/lib/mmu_ref.o $(O)/tests/lib/mmu_tsan.o

$(O)/tests/unit/test_mmu_%: $(O)/tests/unit/test_mmu_%.o $(MMU_TESTLIB_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CRIT_LIBS)
