#!/usr/bin/env bash
# make demo: starts slotd on a private socket and state dir, shows what it
# serves, runs a real VM (scripts/demo-vm.sh), then shows a guest that
# keeps running while slotd is killed and started again, and cleans up.
set -euo pipefail
O=${O:-build}
dir=$(mktemp -d /tmp/slotd-demo-XXXXXX)
sock=$dir/slotd.sock
slotctl() { "$O/slotctl" --socket "$sock" "$@"; }
cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	# The runners of this demo's VMs (slotd leaves guests running).
	pkill -KILL -f "slotd-runner --vm .* --socket $dir/" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

start() {
	"$O/slotd" --foreground --socket "$sock" --state-dir "$dir/state" 2>>"$dir/slotd.log" &
	pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
}

# vm.info of VM $1 as "key=value" lines for the fields that matter here.
brief() {
	slotctl --json vm info "$1" | tr -d ' ",' |
		grep -E '^(state|uptime_s|adopted|reports|pid|build):' | tr ':' '=' | paste -sd' '
}

echo "== starting slotd on $sock (log: $dir/slotd.log)"
start
echo; echo "== slotctl daemon version"; slotctl daemon version
echo; echo "== slotctl daemon capabilities"; slotctl daemon capabilities
if [ -x scripts/demo-vm.sh ]; then
	O=$O SOCK=$sock scripts/demo-vm.sh
fi
if slotctl --json daemon capabilities | grep -q '"kvm_available": true'; then
	echo; echo "== a guest outlives slotd: memtouch sweeping 32 MiB until stopped"
	slotctl call vm.create '{"name":"forever","memory":"64M","ram":"anon","payload":"builtin:memtouch","args":[33554432,0]}' >/dev/null
	slotctl vm start forever >/dev/null
	sleep 1
	echo "before:   $(brief forever)"
	echo; echo "== kill -9 slotd (pid $pid): the guest's runner process is not slotd's"
	kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; pid=
	sleep 0.5
	pgrep -af "slotd-runner --vm forever" | sed 's/^/still running: /'
	echo; echo "== slotd again: it adopts the runner, the guest never stopped"
	start
	echo "after:    $(brief forever)"
	grep -E "adopted|reconcile" "$dir/slotd.log" | tail -n 2
	slotctl vm destroy forever >/dev/null
fi
echo; echo "== stopping slotd"
kill "$pid"; wait "$pid" || true; pid=
tail -n 3 "$dir/slotd.log"
