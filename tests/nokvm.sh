#!/usr/bin/env bash
# Runs a command (default: make test) as on a host without /dev/kvm: in a
# private mount namespace whose /dev holds everything the host's has but
# kvm.  Root only.  What needs KVM must skip, saying so, and leave no
# process or file behind (checked here: a slotd-* entry in /tmp or
# /dev/shm that was not there before fails the run); everything else
# must pass.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "nokvm.sh: needs root (a mount namespace)" >&2; exit 2; }
[ $# -gt 0 ] || set -- make --no-print-directory test
leftovers() { { ls -d /tmp/slotd-* /dev/shm/slotd-* 2>/dev/null || true; } | sort; }
before=$(leftovers)
rc=0
unshare -m --propagation private bash -c '
	set -euo pipefail
	old=$(mktemp -d /tmp/slotd-olddev-XXXXXX)
	mount --rbind /dev "$old"
	mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
	for e in "$old"/* "$old"/.[!.]*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		n=${e##*/}
		[ "$n" = kvm ] && continue
		if [ -L "$e" ]; then cp -a "$e" "/dev/$n"
		elif [ -d "$e" ]; then mkdir "/dev/$n"; mount --rbind "$e" "/dev/$n"
		else touch "/dev/$n"; mount --bind "$e" "/dev/$n"
		fi
	done
	umount -l "$old"; rmdir "$old"
	[ ! -e /dev/kvm ] || { echo "nokvm.sh: /dev/kvm still there" >&2; exit 2; }
	echo "nokvm.sh: running without /dev/kvm: $*"
	exec "$@"
' nokvm "$@" || rc=$?
new=$(comm -13 <(printf '%s\n' "$before") <(leftovers) | sed '/^$/d')
if [ -n "$new" ]; then
	echo "nokvm.sh: the run left these behind:" $new >&2
	rc=1
fi
exit $rc
