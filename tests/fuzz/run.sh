#!/usr/bin/env bash
# Runs each libFuzzer binary for FUZZ_SECONDS (default 60) from its seeds
# (tests/fuzz/corpus/NAME, read only) into a working corpus under
# build-fuzz/corpus/NAME; crashes go to build-fuzz/artifacts/.  Prints one
# line per target (executions, coverage, corpus) and a closing line
# "fuzz: N passed, N failed"; a crash or a sanitizer report fails it.
set -u
secs=${FUZZ_SECONDS:-60}
root=build-fuzz
pass=0 fail=0
mkdir -p "$root/artifacts"
for bin in "$@"; do
	name=$(basename "$bin")
	seeds=tests/fuzz/corpus/${name#fuzz_}
	work=$root/corpus/${name#fuzz_}
	log=$root/$name.log
	mkdir -p "$work"
	start=$(date +%s)
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$root/artifacts/$name-" \
		"$work" "$seeds" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	units=$(find "$work" -type f | wc -l)
	printf '%-14s %10s execs in %3ds  cov %5s  ft %6s  corpus %5s  %s\n' "$name" \
		"${execs:-?}" $(( $(date +%s) - start )) "${cov:-?}" "${ft:-?}" "$units" \
		"$([ $rc -eq 0 ] && echo ok || echo "FAILED (rc $rc)")"
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "---- $log ----"; grep -A40 -m1 'ERROR\|==ERROR\|runtime error\|abort\|deadly' "$log" | head -60
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
