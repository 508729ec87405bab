#!/usr/bin/env bash
# Prepares `make test-systemd`: installs debootstrap and systemd-container
# (Debian packages) and builds, once, a minimal Debian root with systemd
# and the libraries slotd links against, cached in DIR/base.  A rerun with
# the same suite and package list returns at once; anything else rebuilds.
#
#   tests/systemd/setup.sh DIR SLOTD SLOTCTL
set -euo pipefail

dest=${1:?usage: setup.sh DIR SLOTD SLOTCTL}
bins=("${@:2}")

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup.sh: need root to install ${need[*]}" >&2
		exit 1
	fi
	echo "setup.sh: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -qq
	timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The Debian packages that hold the libraries slotd and slotctl load.
lib_packages() {
	ldd "${bins[@]}" | awk '/=> \//{print $3}' | sort -u | while read -r f; do
		dpkg -S "$f" 2>/dev/null || dpkg -S "/usr$f" 2>/dev/null ||
			{ echo "setup.sh: no package holds $f" >&2; exit 1; }
	done | cut -d: -f1 | sort -u | paste -sd, -
}

. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
# The mirror apt uses here, so that the root matches the host's packages.
mirror=${SLOTD_DEBIAN_MIRROR:-$(awk '$1 == "URIs:" && $2 ~ /debian\/?$/ {print $2; exit}' \
	/etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
include="systemd,systemd-sysv,dbus,$(lib_packages)"
stamp="$suite $include"

if [ -f "$dest/base/.slotd-stamp" ] && [ "$(cat "$dest/base/.slotd-stamp")" = "$stamp" ]; then
	exit 0
fi
echo "setup.sh: debootstrap $suite into $dest/base (about a minute, 240 MB; cached)"
rm -rf "$dest/base" "$dest/base.tmp"
mkdir -p "$dest"
if ! timeout 900 debootstrap --variant=minbase --include="$include" "$suite" \
	"$dest/base.tmp" "$mirror" >"$dest/debootstrap.log" 2>&1; then
	tail -n 20 "$dest/debootstrap.log" >&2
	rm -rf "$dest/base.tmp"
	echo "setup.sh: debootstrap failed (log: $dest/debootstrap.log)" >&2
	exit 1
fi
echo "$stamp" >"$dest/base.tmp/.slotd-stamp"
mv "$dest/base.tmp" "$dest/base"
