# slotd: one entry point.  make | make test | make demo | make bench |
# make check-sanitize | make install.  V=1 prints full commands.
# make bench [QUICK=1] needs scripts/bench-deps.sh run once (QEMU, gnuplot).
# Module fragments (guest payloads, benchmarks) live in mk/*.mk.

O        ?= build
SAN      ?=
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= gcc
OPT      ?= -O2 -g

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN := -std=gnu11 -Wall -Wextra -Wformat=2 -Wmissing-prototypes \
	-Wstrict-prototypes -Wshadow -Wpointer-arith -Wwrite-strings -Wundef \
	-Werror

ifeq ($(SAN),asan)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
else ifeq ($(SAN),tsan)
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif

PKGS := json-c libevent libevent_pthreads liburcu-qsbr liburcu liburcu-cds libsystemd

# On a fresh machine install the Debian packages before pkg-config is asked.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(shell pkg-config --exists $(PKGS) criterion && echo ok),ok)
$(info deps: installing build dependencies (scripts/deps.sh))
DEPS_RC := $(shell scripts/deps.sh >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error scripts/deps.sh failed; run it by hand to see why)
endif
endif
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRIT_LIBS  := $(shell pkg-config --libs criterion 2>/dev/null)

GIT_REV := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION := 0.1.0

CPPFLAGS += -I. -D_GNU_SOURCE -MD -MP -DSLOTD_VERSION='"$(VERSION)"' \
	-DSLOTD_GIT_REV='"$(GIT_REV)"' $(PKG_CFLAGS) \
	-DSLOTD_LIBURCU_VERSION='"$(shell pkg-config --modversion liburcu 2>/dev/null)"' \
	-DSLOTD_LIBSYSTEMD_VERSION='"$(shell pkg-config --modversion libsystemd 2>/dev/null)"' 
CFLAGS   += $(WARN) $(OPT) $(SANFLAGS) -pthread
LDFLAGS  += $(SANFLAGS) -pthread
LDLIBS   += $(PKG_LIBS) -lm

# Everything but main() goes into one archive so tests link the real code.
# MODULES narrows the build to some modules (e.g. MODULES=mmu while another
# module is half-written); T=word keeps only test binaries whose path has it.
MODULES ?= mmu rpc vmm daemon
LIB_SRC := $(wildcard $(MODULES:%=%/*.c) $(MODULES:%=%/*.S))
LIB_SRC := $(filter-out daemon/main.c,$(LIB_SRC))
LIB_OBJ := $(patsubst %.S,$(O)/%.o,$(LIB_SRC:%.c=$(O)/%.o))
LIB     := $(O)/libslotd.a
# Objects other modules add to the archive (embedded payloads, ...).
LIB_EXTRA_OBJ :=

SLOTCTL_SRC := $(wildcard clients/*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(O)/%.o)
TEST_SRC    := $(wildcard tests/unit/test_*.c tests/integration/test_*.c)
ifneq ($(T),)
TEST_SRC    := $(foreach t,$(TEST_SRC),$(if $(findstring $(T),$(t)),$(t)))
endif
TEST_BIN    := $(TEST_SRC:%.c=$(O)/%)
BENCH_SRC   := $(wildcard bench/bench_*.c)
BENCH_BIN   := $(BENCH_SRC:%.c=$(O)/%)

all: $(O)/slotd $(O)/slotctl

-include $(sort $(wildcard mk/*.mk))

$(O)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(O)/%.o: %.S
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(CPPFLAGS) $(SANFLAGS) -c -o $@ $<

# .incbin is invisible to -MD.
$(O)/rpc/openrpc_blob.o: schemas/openrpc.json

$(LIB): $(LIB_OBJ) $(LIB_EXTRA_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/slotd: $(O)/daemon/main.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/slotctl: $(SLOTCTL_SRC:%.c=$(O)/%.o)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/tests/%: $(O)/tests/%.o $(TESTLIB_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CRIT_LIBS)

BENCHLIB_OBJ := $(patsubst %.c,$(O)/%.o,$(wildcard bench/lib/*.c))

$(O)/bench/%: $(O)/bench/%.o $(BENCHLIB_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(TEST_BIN) $(if $(filter daemon,$(MODULES)),$(O)/slotd $(O)/slotctl)
benches: $(BENCH_BIN) $(O)/slotd $(O)/slotctl

# Runs every Criterion binary and prints one closing "N passed, N failed" line.
test: tests
	$(Q)O=$(O) tests/run.sh $(TEST_BIN)

# TSan: tests/tsan.supp hides only liburcu's own allocator calls; the
# first report aborts the process (tests and the slotd they start), so a
# race fails the run instead of scrolling past.
check-sanitize:
	$(Q)$(MAKE) --no-print-directory O=build-asan SAN=asan test
	$(Q)TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 $(TSAN_OPTIONS)" \
		$(MAKE) --no-print-directory O=build-tsan SAN=tsan test

# make bench: every benchmark, then bench/RESULTS.md, bench/plots/*.png and
# bench/out/*.json (about 6 minutes on these 2-CPU hosts).  QUICK=1: the CI smoke test (under
# two minutes, output in $(O)/bench-out/, no verdict enforced).  QEMU,
# gnuplot and the TCG guest come from scripts/bench-deps.sh; without them
# their parts say so and are skipped.
bench: benches
	$(Q)O=$(O) BENCH_QUICK=$(if $(filter-out 0,$(QUICK)),1,0) bench/run.sh

demo: all
	$(Q)O=$(O) scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(O)/slotd $(O)/slotctl $(DESTDIR)$(PREFIX)/bin/
	sed 's#/usr/local/bin/slotd#$(PREFIX)/bin/slotd#' systemd/slotd.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/slotd.service
	install -m 0644 systemd/slotd.socket $(DESTDIR)$(PREFIX)/lib/systemd/system/
	install -d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(PREFIX)/lib/sysusers.d
	install -m 0644 systemd/slotd-tmpfiles.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/slotd.conf
	install -m 0644 systemd/slotd-sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/slotd.conf
	install -d $(DESTDIR)$(PREFIX)/share/slotd
	install -m 0644 schemas/openrpc.json $(DESTDIR)$(PREFIX)/share/slotd/

clean:
	rm -rf build build-asan build-tsan

.PHONY: all test tests check-sanitize bench benches demo install clean
.SECONDARY:

-include $(shell find $(O) -name '*.d' 2>/dev/null)
