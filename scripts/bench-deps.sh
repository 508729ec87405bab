#!/usr/bin/env bash
# Installs what `make bench` needs beyond scripts/deps.sh: QEMU (the peer
# slotd is measured against), gnuplot (the plots), and the guest QEMU
# boots under TCG for the memory-remove comparison: a Debian kernel and a
# busybox initramfs, unpacked from Debian packages into a cache directory
# ($1, default build/bench-guest); nothing goes into the host's /boot.
# Idempotent: returns at once when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
guest=${1:-${BENCH_GUEST_DIR:-build/bench-guest}}

pkgs=(qemu-system-x86 gnuplot-nox busybox-static cpio gzip)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
updated=
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench-deps.sh: installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench-deps.sh: need root to install packages (run: sudo $0)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	updated=1
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -s "$guest/vmlinuz" ] && [ -s "$guest/initrd.gz" ] && exit 0

# The kernel: the package linux-image-cloud-amd64 depends on (small,
# boots in seconds under TCG, has ACPI memory hot-add and hot-remove).
mkdir -p "$guest"
guest=$(cd "$guest" && pwd)
if [ -z "$updated" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench-deps.sh: need root for apt-get update (run: sudo $0)" >&2
		exit 1
	fi
	apt-get update -qq
fi
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
if [ -z "$kpkg" ]; then
	echo "bench-deps.sh: no linux-image-cloud-amd64 in the package lists" >&2
	exit 1
fi
work=$(mktemp -d "$guest/.work-XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "bench-deps.sh: unpacking $kpkg into $guest"
if ! (cd "$work" && apt-get download -qq "$kpkg" 2>"$work/err"); then
	cat "$work/err" >&2
	echo "bench-deps.sh: could not download $kpkg" >&2
	exit 1
fi
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/k"
grep -q '^CONFIG_ACPI_HOTPLUG_MEMORY=y' "$work"/k/boot/config-* &&
	grep -q '^CONFIG_MEMORY_HOTREMOVE=y' "$work"/k/boot/config-* || {
	echo "bench-deps.sh: $kpkg lacks ACPI memory hot-remove" >&2
	exit 1
}
cp "$work"/k/boot/vmlinuz-* "$work/vmlinuz"

# The initramfs: busybox-static and an init that says when it is up.
mkdir -p "$work/i/bin" "$work/i/proc" "$work/i/sys" "$work/i/dev"
cp /bin/busybox "$work/i/bin/busybox"
cat > "$work/i/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
echo "slotd-bench-guest: ready"
while :; do /bin/busybox sleep 3600; done
EOF
chmod 0755 "$work/i/init"
(cd "$work/i" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.gz"
echo "$kpkg" > "$work/kernel-package"
mv "$work/vmlinuz" "$work/initrd.gz" "$work/kernel-package" "$guest/"
echo "bench-deps.sh: guest ready: $guest/vmlinuz ($kpkg), $guest/initrd.gz"
