#!/usr/bin/env bash
# make demo: starts slotd on a private socket and state dir, shows what it
# serves, and cleans up.  Later steps drive a real VM once vm.* lands.
set -euo pipefail
O=${O:-build}
dir=$(mktemp -d /tmp/slotd-demo-XXXXXX)
sock=$dir/slotd.sock
slotctl() { "$O/slotctl" --socket "$sock" "$@"; }
cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

echo "== starting slotd on $sock (log: $dir/slotd.log)"
"$O/slotd" --foreground --socket "$sock" --state-dir "$dir/state" 2>"$dir/slotd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

echo; echo "== slotctl daemon version"; slotctl daemon version
echo; echo "== slotctl daemon capabilities"; slotctl daemon capabilities
if [ -x scripts/demo-vm.sh ]; then
	O=$O SOCK=$sock scripts/demo-vm.sh
fi
echo; echo "== stopping slotd"
kill "$pid"; wait "$pid" || true; pid=
tail -n 3 "$dir/slotd.log"
