#!/usr/bin/env bash
# Runs Criterion test binaries, each with TAP output, and prints one
# closing line "tests: N passed, N failed, N skipped".  Skips are listed
# with their reasons; a binary that dies without TAP counts as a failure.
set -u
O=${O:-build}
export SLOTD_BIN=${SLOTD_BIN:-$PWD/$O/slotd}
export SLOTCTL_BIN=${SLOTCTL_BIN:-$PWD/$O/slotctl}
export SLOTD_SRCDIR=${SLOTD_SRCDIR:-$PWD}
logdir=$O/test-logs
mkdir -p "$logdir"
pass=0 fail=0 skip=0
failed_bins=()

# The slotd processes of this build that are alive now (pids, sorted).
slotd_pids() {
	local p exe
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case $exe in "$SLOTD_BIN"|"$SLOTD_BIN (deleted)") echo "${p#/proc/}";; esac
	done | sort
}
before_pids=$(slotd_pids)
for bin in "$@"; do
	name=$(basename "$bin")
	tap=$logdir/$name.tap log=$logdir/$name.log
	start=$(date +%s)
	"$bin" --tap="$tap" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok - .*' "$tap" 2>/dev/null | head -1); p=${p:-0}
	s=$(grep -c '^ok - .*# SKIP' "$tap" 2>/dev/null | head -1); s=${s:-0}
	f=$(grep -c '^not ok' "$tap" 2>/dev/null | head -1); f=${f:-0}
	p=$((p - s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "!! $name exited $rc without a failing test (crash?)"
	fi
	# A daemon a test started must not outlive it (a skip after setup
	# once skipped the teardown): count it as a failure, and end it.
	left=$(comm -13 <(echo "$before_pids") <(slotd_pids))
	if [ -n "$left" ]; then
		sleep 1
		left=$(comm -13 <(echo "$before_pids") <(slotd_pids))
	fi
	if [ -n "$left" ]; then
		echo "!! $name left slotd running (pids $(echo $left)); killed"
		kill -9 $left 2>/dev/null
		f=$((f + 1))
	fi
	printf '%-36s %4d passed %3d failed %3d skipped  (%ds)\n' \
		"$name" "$p" "$f" "$s" $(( $(date +%s) - start ))
	grep '^ok - .*# SKIP' "$tap" 2>/dev/null | sed 's/^ok - /   skipped: /'
	if [ "$f" -ne 0 ]; then
		failed_bins+=("$name")
		echo "---- $log ----"; tail -n 60 "$log"; echo "----"
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
[ ${#failed_bins[@]} -gt 0 ] && echo "failing binaries: ${failed_bins[*]}"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
