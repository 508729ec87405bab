#!/usr/bin/env bash
# The VM part of make demo (called by scripts/demo.sh with $SOCK set):
# a real KVM guest sweeping 64 MiB, its console, its pass times and the
# kernel's MMU counters, then cleanup.
set -euo pipefail
O=${O:-build}
slotctl() { "$O/slotctl" --socket "$SOCK" "$@"; }

if [ "$(slotctl --json daemon capabilities | grep -o '"kvm_available": *[a-z]*' | grep -o '[a-z]*$')" != true ]; then
	echo; echo "== no usable /dev/kvm here: skipping the VM part of the demo"
	exit 0
fi
echo; echo "== slotctl call vm.create: memtouch sweeping 64 MiB, 20 passes"
slotctl call vm.create '{"name":"demo","memory":"256M","ram":"anon","payload":"builtin:memtouch","args":[67108864,20]}' >/dev/null
slotctl vm info demo
echo; echo "== slotctl vm start demo"
slotctl vm start demo
for _ in $(seq 200); do
	state=$(slotctl --json vm info demo | grep -o '"state": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')
	[ "$state" = running ] || break
	sleep 0.05
done
echo "state: $state"
echo; echo "== slotctl vm console demo --tail 600"
slotctl vm console demo --tail 600
echo; echo "== pass times reported by the guest (slotctl call vm.reports)"
slotctl --json call vm.reports '{"name":"demo"}' |
	grep -A4 '"pass_ns"' | grep '"value"' | grep -o '[0-9]*' |
	awk '{ n++; s[n] = $1 } END { printf "passes: %d, first %.2f ms (faults in 64 MiB), last %.2f ms (%.0f ns/page)\n", n, s[1]/1e6, s[n]/1e6, s[n]/16384 }'
echo; echo "== slotctl vm stats demo (kernel MMU counters of the VM)"
slotctl --json vm stats demo | grep -E '"(remote_tlb_flush|remote_tlb_flush_requests|mmu_shadow_zapped|mmu_cache_miss|pages_4k|pages_2m)"' | head -6
echo; echo "== slotctl vm destroy demo"
slotctl vm destroy demo
