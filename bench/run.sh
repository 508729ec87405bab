#!/usr/bin/env bash
# Runs every benchmark binary in turn; each prints its own table of
# figures and ratios measured side by side in the same run.
set -eu
O=${O:-build}
export SLOTD_BIN=${SLOTD_BIN:-$PWD/$O/slotd}
export SLOTCTL_BIN=${SLOTCTL_BIN:-$PWD/$O/slotctl}
echo "# slotd benchmarks, $(date -u +%F) on $(uname -r), $(nproc) cores"
for b in "$@"; do
	echo
	echo "## $(basename "$b")"
	"$b"
done
