#!/usr/bin/env bash
# make bench [QUICK=1]: runs every benchmark, keeps each one's output and
# JSON, then bench/report.py writes the results page, the plots and the
# headline table.  Full run: bench/out/*.json, bench/RESULTS.md,
# bench/plots/*.png (the committed page).  QUICK=1 (CI's smoke test,
# under two minutes): short runs into $O/bench-out/, ratios printed, no
# verdict enforced.  BENCH_ENFORCE=1 makes a full run fail on a missed
# target.  Programs run one after another (never two at once): the host
# has two CPUs.
set -eu
O=${O:-build}
quick=${BENCH_QUICK:-0}
[ "$quick" = 0 ] && quick=
export SLOTD_BIN=${SLOTD_BIN:-$PWD/$O/slotd}
export SLOTCTL_BIN=${SLOTCTL_BIN:-$PWD/$O/slotctl}
export BENCH_GUEST_DIR=${BENCH_GUEST_DIR:-$PWD/$O/bench-guest}
export BENCH_QUICK=${quick:-0}
if [ -n "$quick" ]; then
	out=${BENCH_OUT:-$PWD/$O/bench-out}
	page=$out/RESULTS.md
	plots=$out/plots
else
	out=${BENCH_OUT:-$PWD/bench/out}
	page=${BENCH_PAGE:-$PWD/bench/RESULTS.md}
	plots=${BENCH_PLOTS:-$PWD/bench/plots}
fi
export BENCH_OUT=$out
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt

# Where and when, for the page's first table.
meta() {
	local kvm=none
	[ -d /sys/module/kvm_pvm ] && kvm="kvm_pvm (shadow paging)"
	[ -d /sys/module/kvm_intel ] && kvm=kvm_intel
	[ -d /sys/module/kvm_amd ] && kvm=kvm_amd
	[ -w /dev/kvm ] || kvm="$kvm, /dev/kvm not usable"
	python3 - "$@" <<EOF
import json, os, sys
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
mem = next((int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0)
m = json.load(open('$out/meta.json')) if os.path.exists('$out/meta.json') else {}
m.update(dict(a.split('=', 1) for a in sys.argv[1:]))
m.update(cpu=cpu, cpus=os.cpu_count(), mem_gib=round(mem / 2**20, 1), kernel=os.uname().release,
         kvm="$kvm", quick=bool("$quick"))
json.dump(m, open('$out/meta.json', 'w'), indent=1)
EOF
}
rm -f "$out/meta.json"
meta "date=$(date -u '+%F %H:%M UTC')" "commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!bench/out' ':!bench/plots' ':!bench/RESULTS.md' ':!README.md' 2>/dev/null || echo ' (with local changes)')" \
	"load_before=$(cut -d' ' -f1-3 /proc/loadavg)" "command=make bench${quick:+ QUICK=1}"
t0=$(date +%s)

echo "# slotd benchmarks${quick:+ (QUICK smoke run)}, $(date -u '+%F %H:%M') UTC on $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
# One program: its output on the terminal and in $out/NAME.txt.
run() {
	local name=$1
	shift
	echo
	echo "## $name"
	"$@" "$PWD/$O/bench/$name" 2>&1 | tee "$out/$name.txt"
	return "${PIPESTATUS[0]}"
}
rc=0
run bench_peer env || rc=1
run bench_scale env || rc=1
run bench_timeline env || rc=1
run bench_mmu env || rc=1
if [ -n "$quick" ]; then
	run bench_memslot env BENCH_MEMSLOT_N=30 BENCH_MEMSLOT_SLOT_SIZES=4K,1G \
		BENCH_MEMSLOT_PLACE="$([ "$(nproc)" -ge 2 ] && echo 0 || echo os)" \
		BENCH_MEMSLOT_DISK=- BENCH_MEMSLOT_PARTS=12 BENCH_MEMSLOT_WS=64M \
		BENCH_MEMSLOT_RAM=memfd BENCH_MEMSLOT_ROUNDS=1 BENCH_MEMSLOT_WINDOW_MS=500 \
		BENCH_MEMSLOT_MIN_PASSES=3 || rc=1
	run bench_restart env BENCH_RESTART_VMS=1,8 BENCH_RESTART_ROUNDS=3 || rc=1
else
	run bench_memslot env || rc=1
	run bench_rpc env || rc=1
	run bench_restart env || rc=1
fi

meta "seconds=$(( $(date +%s) - t0 ))" "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
echo
readme=()
[ -n "$quick" ] || readme=(--readme README.md)
python3 bench/report.py --out "$out" --page "$page" --plots "$plots" "${readme[@]}" || rc=1
[ $rc -eq 0 ] || echo "bench: a benchmark failed (see above)" >&2
exit $rc
