#!/usr/bin/env bash
# Installs what the tests need beyond the build (scripts/deps.sh): Debian's
# openssh-server and openssh-client (test_remote runs a private sshd on
# loopback), man-db and groff-base (make check-docs lints the man pages),
# and promtool (test_metrics checks /metrics with it).  promtool is taken
# out of Debian's prometheus package into O/tools (default build/tools)
# rather than installing the package, which would enable a Prometheus
# server on the machine.  Idempotent: returns at once when all is there.
#
#   scripts/test-deps.sh [O]
set -euo pipefail

O=${1:-build}
pkgs=(openssh-server openssh-client man-db groff-base util-linux)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
need_promtool=0
[ -x "$O/tools/promtool" ] || need_promtool=1
[ ${#missing[@]} -eq 0 ] && [ $need_promtool -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps.sh: need root to install ${missing[*]} promtool (run: sudo $0)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	echo "test-deps.sh: installing ${missing[*]}"
	timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ $need_promtool -eq 1 ]; then
	echo "test-deps.sh: promtool from Debian's prometheus package into $O/tools"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	chmod 755 "$tmp"	# apt downloads as user _apt
	(cd "$tmp" && timeout 600 apt-get download -qq prometheus)
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
	mkdir -p "$O/tools"
	install -m 0755 "$tmp/x/usr/bin/promtool" "$O/tools/promtool"
fi
