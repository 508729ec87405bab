#!/usr/bin/env bash
# The operator documents against the binaries (make check-docs): the man
# pages format without a groff warning and name every option and verb the
# binaries have; make install puts the pages, the bash completion and the
# example configuration in place; slotd accepts the example with every
# key switched on; the completion completes nouns, verbs, options, values
# and VM names.
#
#   O=build tests/docs/run.sh
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$src/$O ;; esac
slotd=$O/slotd slotctl=$O/slotctl
pass=0 fail=0 skip=0 tmp= daemon_pid=

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "    $l"; done; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name" "failed: $*"; fi; }

cleanup() {
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid"
		for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$daemon_pid" 2>/dev/null
	fi
	# A runner its slotd did not end (killed above, say) is ended here.
	[ -n "$tmp" ] && pkill -KILL -f -- "--socket $tmp/" 2>/dev/null
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT

# man --warnings prints groff's warnings on stderr; none are allowed.
man_lint() {
	local page=$1 err
	err=$(LC_ALL=C.UTF-8 MANWIDTH=80 timeout 30 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
	if [ $? -eq 0 ] && [ -z "$err" ]; then
		ok "$(basename "$page") formats without warnings"
	else
		not_ok "$(basename "$page") formats without warnings" "$err"
	fi
}

# Every "--name" in a --help text appears in the page as \-\-name.
options_documented() {
	local page=$1 missing=() o
	shift
	for o in $("$@" | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		grep -qF -- "$(printf '%s' "$o" | sed 's/-/\\-/g')" "$page" || missing+=("$o")
	done
	if [ ${#missing[@]} -eq 0 ]; then ok "$(basename "$page") documents every option of: $*"
	else not_ok "$(basename "$page") documents every option of: $*" "missing: ${missing[*]}"; fi
}

# Every NOUN VERB of slotctl appears in slotctl.1.
verbs_documented() {
	local page=$src/doc/slotctl.1 missing=() n v
	for n in $("$slotctl" --help | awk '/^nouns:/ {on = 1; next} on && NF == 0 {exit} on {print $1}'); do
		case $n in call|dial-stdio)
			grep -qF "$(printf '%s' "$n" | sed 's/-/\\-/g')" "$page" || missing+=("$n"); continue ;;
		esac
		for v in $("$slotctl" "$n" --help | awk -v n="$n" '/^  slotctl / && $2 == n {print $3}'); do
			grep -qE "$n $(printf '%s' "$v" | sed 's/-/\\\\-/g')" "$page" ||
				grep -qE "^\.BR? \"?$n .*$(printf '%s' "$v" | sed 's/-/\\\\-/g')" "$page" ||
				missing+=("$n $v")
		done
	done
	if [ ${#missing[@]} -eq 0 ]; then ok "slotctl.1 documents every NOUN VERB"
	else not_ok "slotctl.1 documents every NOUN VERB" "missing: ${missing[*]}"; fi
}

# slotctl --request-id goes with exactly the methods whose params take a
# request_id in the API document.
retryable_in_step() {
	local want have
	want=$(python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print(" ".join(sorted(m["name"] for m in d["methods"]
                      if any(p["name"] == "request_id" for p in m["params"]))))' \
		"$src/schemas/openrpc.json")
	have=$(sed -n '/^static const char \*const retryable\[\]/,/};/p' "$src/clients/rpc.c" |
		grep -oE '"[a-z_.]+"' | tr -d '"' | sort | tr '\n' ' ' | sed 's/ $//')
	if [ "$want" = "$have" ]; then ok "slotctl --request-id goes with every method that takes one"
	else not_ok "slotctl --request-id goes with every method that takes one" \
		"schema: $want" "slotctl: $have"; fi
}

install_check() {
	local stage=$tmp/stage p=/usr/local f out
	make -C "$src" --no-print-directory -s install O="$O" DESTDIR="$stage" >/dev/null ||
		{ not_ok "make install" "failed"; return; }
	for f in share/man/man8/slotd.8 share/man/man1/slotctl.1 \
		share/bash-completion/completions/slotctl share/doc/slotd/slotd.conf.example; do
		check "make install puts $p/$f in place" test -s "$stage$p/$f"
	done
	out=$(man -M "$stage$p/share/man" -w slotctl 2>&1)
	check "man finds the installed slotctl(1)" test "$out" = "$stage$p/share/man/man1/slotctl.1"
}

config_check() {
	local ex=$src/doc/slotd.conf.example all=$tmp/all.conf out
	out=$("$slotd" --config "$ex" --version 2>&1)
	check "slotd accepts the example configuration as shipped" test $? -eq 0
	sed 's/^#\([a-z][a-z-]* = \)/\1/' "$ex" >"$all"
	check "the example switches on keys (sed found some)" grep -q '^state-dir = ' "$all"
	out=$("$slotd" --config "$all" --version 2>&1)
	if [ $? -eq 0 ]; then ok "slotd accepts the example with every key switched on"
	else not_ok "slotd accepts the example with every key switched on" "$out"; fi
}

# COMPREPLY for a command line whose last word is being completed.
complete_words() {
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		 _slotctl; printf "%s\n" "${COMPREPLY[@]}"' _ "$src/clients/slotctl.bash" "$@"
}

# check_completes NAME EXPECTED-WORD WORDS...
check_completes() {
	local name=$1 want=$2 got
	shift 2
	got=$(complete_words "$@")
	if printf '%s\n' "$got" | grep -qx -- "$want"; then ok "completion: $name"
	else not_ok "completion: $name" "expected '$want' among: $(echo $got)"; fi
}

completion_check() {
	local sock=$tmp/s.sock
	check_completes "nouns" memslot "$slotctl" me
	check_completes "verbs of a noun" transaction "$slotctl" memslot ""
	check_completes "options of a verb" --gpa "$slotctl" memslot create g --g
	check_completes "values of an option" hugetlb "$slotctl" memslot create g --backing ""
	: >"$tmp/layout.json"
	check_completes "a layout file for memslot apply" "$tmp/layout.json" "$slotctl" memslot apply g "$tmp/lay"
	check_completes "log levels" debug "$slotctl" daemon log-level ""
	check_completes "event topics" memslot.moved "$slotctl" events watch ""
	# --vms-on-exit stop: the VM made here ends with slotd.
	"$slotd" --foreground --socket "$sock" --state-dir "$tmp/state" --vms-on-exit stop \
		2>"$tmp/slotd.log" &
	daemon_pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	check_completes "method names for call, from the daemon" daemon.log_level \
		"$slotctl" --socket "$sock" call daemon.l
	if "$slotctl" --socket "$sock" vm create docs-vm --memory 16M >/dev/null 2>&1; then
		check_completes "VM names, from the daemon" docs-vm "$slotctl" --socket "$sock" vm info ""
	else
		skip=$((skip + 1))
		echo "ok - completion: VM names # SKIP no usable /dev/kvm to create a VM"
	fi
}

main() {
	command -v man >/dev/null || { not_ok "man is installed" "run scripts/test-deps.sh"; }
	tmp=$(mktemp -d /tmp/slotd-docs-XXXXXX)
	man_lint "$src/doc/slotd.8"
	man_lint "$src/doc/slotctl.1"
	options_documented "$src/doc/slotd.8" "$slotd" --help
	options_documented "$src/doc/slotctl.1" "$slotctl" --help
	verbs_documented
	retryable_in_step
	install_check
	config_check
	completion_check
	echo "docs: $pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
}

main
