#!/usr/bin/env bash
# Line coverage of the control plane's plain code (validation, layout
# model, journal and restore parsing, reconciliation, declared layouts,
# retries' outcomes) by the unit tests
# that need no /dev/kvm.  Builds into build-cov with --coverage, runs
# tests/unit/test_ctl_*, prints gcov's line coverage per file and the
# total, and fails under COVERAGE_MIN percent (default 80).
set -euo pipefail
cd "$(dirname "$0")/.."
O=build-cov
min=${COVERAGE_MIN:-80}
files=(ctl/layout.c ctl/store.c ctl/reconcile.c ctl/change.c ctl/apply.c ctl/requests.c)
find "$O" -name '*.gcda' -delete 2>/dev/null || true
make --no-print-directory O=$O OPT="-O0 -g --coverage" LDFLAGS=--coverage T=test_ctl_ \
	tests >/dev/null
for t in "$O"/tests/unit/test_ctl_*; do
	[ -x "$t" ] && [ -f "$t" ] && [ "${t%.[do]}" = "$t" ] || continue
	"$t" >/dev/null 2>&1 || { echo "coverage: $t failed" >&2; exit 1; }
done
total=0 covered=0
for f in "${files[@]}"; do
	line=$(gcov -n -o "$O/$(dirname "$f")" "$f" 2>/dev/null |
	       awk -v f="$f" '$0 ~ "^File .*" f "'"'"'" { getline; print; exit }')
	pct=$(sed -n 's/Lines executed:\([0-9.]*\)% of \([0-9]*\)/\1 \2/p' <<<"$line")
	read -r p n <<<"$pct"
	c=$(awk -v p="$p" -v n="$n" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')
	printf '%-18s %6s%% of %4s lines\n' "$f" "$p" "$n"
	total=$((total + n)) covered=$((covered + c))
done
pct=$(awk -v c=$covered -v t=$total 'BEGIN { printf "%.1f", 100 * c / t }')
echo "total              $pct% of $total lines (tests/unit/test_ctl_*, no /dev/kvm used)"
awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p >= m) }' ||
	{ echo "coverage: $pct% is under $min%" >&2; exit 1; }
