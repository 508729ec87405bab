# slotd: one entry point.  make | make test | make demo | make bench |
# make check-sanitize | make fuzz | make install.  V=1 prints full commands.
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
else ifeq ($(SAN),fuzz)
# clang only: libFuzzer's coverage hooks plus ASan and UBSan.  clang
# flags "{ X }" initializers of structs with more fields, which gcc
# accepts (mmu/mmu.c, clients/): not an error in the fuzz build.
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined -Wno-missing-field-initializers
endif

PKGS := json-c libevent libevent_pthreads liburcu-qsbr liburcu liburcu-cds libsystemd \
	libseccomp
# The runner links only what a VM's process needs.
RUNNER_PKGS := liburcu-qsbr liburcu liburcu-cds libseccomp

# Whether the Debian packages are there.  Make only asks; installing them
# is scripts/deps.sh's job (`make deps`, or the recipe below when they are
# missing), never something make does while it reads this file.
DEPS_OK := $(shell pkg-config --exists $(PKGS) criterion 2>/dev/null && echo ok)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
RUNNER_LIBS := $(shell pkg-config --libs $(RUNNER_PKGS) 2>/dev/null)
CRIT_LIBS  := $(shell pkg-config --libs criterion 2>/dev/null)

GIT_REV := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# The objects that print the revision are rebuilt when it changes.
REV_OBJ := daemon/main.o daemon/config.o rpc/methods_daemon.o runner/version.o
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
MODULES ?= common mmu rpc ctl vmm runner daemon
LIB_SRC := $(wildcard $(MODULES:%=%/*.c) $(MODULES:%=%/*.S))
LIB_SRC := $(filter-out daemon/main.c runner/main.c,$(LIB_SRC))
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

ifeq ($(DEPS_OK),ok)
all: $(O)/slotd $(O)/slotd-runner $(O)/slotctl

-include $(sort $(wildcard mk/*.mk))

$(O)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(O)/%.o: %.S
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(CPPFLAGS) $(SANFLAGS) -c -o $@ $<

$(O)/gitrev: FORCE
	@mkdir -p $(@D)
	@echo $(GIT_REV) | cmp -s - $@ || echo $(GIT_REV) > $@
$(REV_OBJ:%=$(O)/%) $(REV_OBJ:%=$(O)/next/%): $(O)/gitrev
FORCE:
.PHONY: FORCE

# .incbin is invisible to -MD.
$(O)/rpc/openrpc_blob.o: schemas/openrpc.json

$(LIB): $(LIB_OBJ) $(LIB_EXTRA_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/slotd: $(O)/daemon/main.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Linked statically (except under sanitizers, whose runtimes need shared
# linking): an idle runner's resident set is what it uses of libc, not
# every page of libc.so it touched while loading, and a running runner
# keeps working whatever upgrades do to the shared libraries.
RUNNER_STATIC := $(if $(SANFLAGS),,-static)

$(O)/slotd-runner: $(O)/runner/main.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $(RUNNER_STATIC) -o $@ $^ $(RUNNER_LIBS) -lm

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

# Another build of slotd (version +next) for the test that starts it over
# the runners of this one: the files that name the version, rebuilt.
NEXT_SRC := daemon/main.c daemon/config.c rpc/methods_daemon.c runner/version.c
$(O)/next/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) -USLOTD_VERSION -DSLOTD_VERSION='"$(VERSION)+next"' $(CFLAGS) \
		-c -o $@ $<

$(O)/tests/slotd-next: $(NEXT_SRC:%.c=$(O)/next/%.o) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets (tests/fuzz/fuzz_*.c), built by "make fuzz" with
# SAN=fuzz CC=clang in build-fuzz.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(O)/fuzz/%)
FUZZ_SECONDS ?= 60

$(O)/fuzz/%: $(O)/tests/fuzz/%.o $(O)/tests/lib/json_check.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

tests: $(TEST_BIN) $(if $(filter daemon,$(MODULES)),$(O)/slotd $(O)/slotd-runner $(O)/slotctl \
	$(O)/tests/slotd-next)
benches: $(BENCH_BIN) $(O)/slotd $(O)/slotd-runner $(O)/slotctl

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

fuzzers: $(FUZZ_BIN)

# Builds the fuzz targets with clang (installed on first use by
# scripts/deps.sh --fuzz, only here) and runs each for FUZZ_SECONDS
# (default 60) from its checked-in seeds in tests/fuzz/corpus/NAME;
# FUZZ=word runs only the targets whose name has it.
fuzz:
	$(Q)scripts/deps.sh --fuzz
	$(Q)$(MAKE) --no-print-directory O=build-fuzz SAN=fuzz CC=clang fuzzers
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(foreach f,$(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/fuzz/%),$(if $(FUZZ),$(if $(findstring $(FUZZ),$(f)),$(f)),$(f)))

# make bench: every benchmark, then bench/RESULTS.md, bench/plots/*.png and
# bench/out/*.json (about 6 minutes on these 2-CPU hosts).  QUICK=1: the CI smoke test (under
# two minutes, output in $(O)/bench-out/, no verdict enforced).  QEMU,
# gnuplot and the TCG guest come from scripts/bench-deps.sh; without them
# their parts say so and are skipped.
bench: benches
	$(Q)O=$(O) BENCH_QUICK=$(if $(filter-out 0,$(QUICK)),1,0) bench/run.sh

# slotd under a real systemd in a container (tests/systemd/run.sh): the
# README's install steps, socket activation, Type=notify, restart, stop.
# Needs root; the first run debootstraps a Debian root into $(O)/systemd-root.
test-systemd: all
	$(Q)tests/systemd/setup.sh $(O)/systemd-root $(O)/slotd $(O)/slotctl
	$(Q)O=$(O) timeout -k 30 900 tests/systemd/run.sh

# make test as on a host without /dev/kvm (tests/nokvm.sh: a mount
# namespace whose /dev lacks it; root): the KVM cases skip, saying so,
# the rest passes, and nothing is left behind.
test-nokvm: tests
	$(Q)tests/nokvm.sh $(MAKE) --no-print-directory O=$(O) test

# The man pages, bash completion and example config against the binaries
# (tests/docs/run.sh); man-db and groff come from scripts/test-deps.sh.
check-docs: all
	$(Q)O=$(O) timeout -k 10 300 tests/docs/run.sh

demo: all
	$(Q)O=$(O) scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system \
		$(DESTDIR)$(PREFIX)/libexec
	install -m 0755 $(O)/slotd $(O)/slotctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(O)/slotd-runner $(DESTDIR)$(PREFIX)/libexec/
	sed 's#/usr/local/bin/slotd#$(PREFIX)/bin/slotd#' systemd/slotd.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/slotd.service
	install -m 0644 systemd/slotd.socket $(DESTDIR)$(PREFIX)/lib/systemd/system/
	install -d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(PREFIX)/lib/sysusers.d
	install -m 0644 systemd/slotd-tmpfiles.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/slotd.conf
	install -m 0644 systemd/slotd-sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/slotd.conf
	install -d $(DESTDIR)$(PREFIX)/share/slotd
	install -m 0644 schemas/openrpc.json $(DESTDIR)$(PREFIX)/share/slotd/
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 doc/slotd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 doc/slotctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0644 clients/slotctl.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/slotctl
	install -d $(DESTDIR)$(PREFIX)/share/doc/slotd
	install -m 0644 doc/slotd.conf.example $(DESTDIR)$(PREFIX)/share/doc/slotd/

else
# The packages are missing: install them (a recipe, run as root), then do
# what was asked with a make that sees them.
DEPS_GOALS := $(or $(filter-out deps clean,$(MAKECMDGOALS)),all)
$(DEPS_GOALS): deps
	$(Q)$(MAKE) --no-print-directory $@
endif

# Warning-free with both compilers at both optimisation levels (-O0 finds
# what inlining hides; clang's -Wextra differs from gcc's): builds every
# binary, test and benchmark into build-gcc0, build-clang and
# build-clang0.  The default build is gcc -O2.
check-build:
	$(Q)scripts/deps.sh clang
	$(Q)$(MAKE) --no-print-directory O=build-gcc0 OPT="-O0 -g" all tests benches
	$(Q)$(MAKE) --no-print-directory O=build-clang CC=clang OPT="-O2 -g" all tests benches
	$(Q)$(MAKE) --no-print-directory O=build-clang0 CC=clang OPT="-O0 -g" all tests benches
	@echo "check-build: gcc -O0, clang -O2 and clang -O0 build without a warning"

# Line coverage of the control plane's plain code by the tests that need
# no /dev/kvm (scripts/coverage.sh; fails under 80%).
coverage:
	$(Q)scripts/coverage.sh

# Installs the Debian packages slotd builds, tests and runs with.
deps:
	$(Q)scripts/deps.sh

clean:
	rm -rf build build-asan build-tsan build-cov build-gcc0 build-clang build-clang0 build-fuzz

.PHONY: all test tests check-sanitize fuzz fuzzers bench benches demo install clean deps coverage check-build \
	test-systemd check-docs test-nokvm
.SECONDARY:

-include $(shell find $(O) -name systemd-root -prune -o -name '*.d' -type f -print 2>/dev/null)
