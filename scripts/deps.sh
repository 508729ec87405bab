#!/usr/bin/env bash
# Installs the Debian packages slotd builds, tests and runs with, and
# any named on the command line.  Idempotent: returns at once when
# everything is present.
# --fuzz: also clang and its libFuzzer runtime (for "make fuzz" only).
set -euo pipefail

pkgs=(gcc make pkg-config libjson-c-dev libevent-dev liburcu-dev
      libcriterion-dev libsystemd-dev libseccomp-dev systemd python3 binutils)
for a in "$@"; do	# extra packages a target asks for (make check-build: clang)
	if [ "$a" = "--fuzz" ]; then
		pkgs+=(clang libclang-rt-dev)
	else
		pkgs+=("$a")
	fi
done

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: need root to install packages (run: sudo $0)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
