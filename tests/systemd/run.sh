#!/usr/bin/env bash
# slotd under a real systemd: boots systemd as PID 1 in a container
# (systemd-nspawn on the Debian root that setup.sh caches), installs slotd
# by running the README's install steps, and checks what the README
# promises: the sysusers and tmpfiles snippets, socket activation on the
# first connect, Type=notify readiness, `systemctl status`, restart and
# stop, the socket group's message, structured journal fields.
#
#   O=build tests/systemd/run.sh        (make test-systemd does setup first)
#
# The host need not run systemd: the container is started with
# --register=no --keep-unit, its root is a tmpfs overlay over the cached
# root (--volatile=overlay), and every mount lives in the container's own
# namespace, so nothing is left on the host when it stops.  It is stopped
# with `systemctl poweroff` from inside (a SIGTERM that arrives while it
# boots leaves nspawn hanging), and killed only if that fails.  Every wait
# has a timeout.  Cgroup controllers are not delegated to the container,
# so limits such as MemoryMax= are not checked here.
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$src/$O ;; esac
base=$O/systemd-root/base
tuser=alice		# the README's example user, added to the socket group
outsider=bob		# a user who is not in it
pass=0 fail=0 skip=0
nspawn_pid= ct_pid= run=

say() { printf '%s\n' "$*"; }
ok() { pass=$((pass + 1)); say "ok - $1"; }
not_ok() { fail=$((fail + 1)); say "not ok - $1"; shift; for l in "$@"; do say "    $l"; done; }
skipped() { skip=$((skip + 1)); say "ok - $1 # SKIP $2"; }

# Runs a command inside the container as root, with a clean environment.
ct() {
	timeout -k 5 60 nsenter -t "$ct_pid" -a \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 "$@"
}
# The same as user $1.
ct_as() { local u=$1; shift; ct runuser -u "$u" -- "$@"; }
# A unit property's value.
prop() { ct systemctl show "$1" -p "$2" --value; }

# check NAME EXPECTED ACTUAL: passes when they are equal.
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2" "actual:   $3"; fi
}
# check_has NAME NEEDLE HAYSTACK: passes when HAYSTACK contains NEEDLE.
check_has() {
	case $3 in
	*"$2"*) ok "$1" ;;
	*) not_ok "$1" "expected to contain: $2" "actual: $(printf '%s' "$3" | head -c 2000)" ;;
	esac
}

# Waits up to $1 seconds for the command to succeed.
wait_for() {
	local t=$(( $1 * 10 )); shift
	while [ "$t" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		t=$((t - 1))
	done
	return 1
}

nspawn_alive() { [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; }

# Stops the container however far it got, then removes the scratch dir.
cleanup() {
	trap - EXIT INT TERM
	if nspawn_alive; then
		if [ -n "$ct_pid" ] && [ -S "/proc/$ct_pid/root/run/systemd/private" ]; then
			ct systemctl --no-block poweroff >/dev/null 2>&1
			wait_for 30 eval '! nspawn_alive'
		fi
		if nspawn_alive; then
			say "# container did not power off; killing it"
			[ -n "$ct_pid" ] && kill -KILL "$ct_pid" 2>/dev/null
			wait_for 10 eval '! nspawn_alive' || kill -KILL "$nspawn_pid" 2>/dev/null
		fi
		wait "$nspawn_pid" 2>/dev/null
	fi
	if [ "$fail" -gt 0 ] && [ -n "$run" ] && [ -f "$run/console.log" ]; then
		say "---- container console (last 40 lines) ----"
		tail -n 40 "$run/console.log"
	fi
	[ -n "$run" ] && rm -rf "$run"
}
trap cleanup EXIT
trap 'say "# interrupted"; fail=$((fail + 1)); exit 1' INT TERM

die() { not_ok "$1" "${@:2}"; say "systemd: $pass passed, $fail failed, $skip skipped"; exit 1; }

# The container's PID 1 (systemd), a child of nspawn in its own PID namespace.
find_ct_pid() {
	local p
	for p in $(pgrep -P "$nspawn_pid"); do
		if grep -qE '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$p/status" 2>/dev/null; then
			ct_pid=$p
			return 0
		fi
	done
	return 1
}

# Boots the cached root with systemd as PID 1 and waits until it runs.
boot() {
	local state
	[ -x "$base/usr/lib/systemd/systemd" ] ||
		die "cached Debian root present" "no $base (run tests/systemd/setup.sh)"
	[ -e /dev/kvm ] && kvm_bind=(--bind=/dev/kvm) || kvm_bind=()
	systemd-nspawn -q -b --register=no --keep-unit --link-journal=no \
		--volatile=overlay -D "$base" --machine="slotd-test-$$" \
		--bind="$run/stage/usr/local:/usr/local" "${kvm_bind[@]}" \
		</dev/null >"$run/console.log" 2>&1 &
	nspawn_pid=$!
	wait_for 30 find_ct_pid || die "container starts" "no PID 1 under nspawn $nspawn_pid"
	wait_for 60 test -S "/proc/$ct_pid/root/run/systemd/private" ||
		die "systemd runs as PID 1" "no /run/systemd/private after 60 s"
	state=$(ct systemctl is-system-running --wait)
	case $state in
	running|degraded) ok "systemd boots as PID 1 in the container ($state)" ;;
	*) die "systemd boots as PID 1 in the container" "state: $state" ;;
	esac
}

# The README's install steps, one command a line, from the block after
# its "install-steps" marker.
readme_steps() {
	awk '/<!-- install-steps/ {on = 1; next}
	     on && /^```/ {if (inblock) exit; inblock = 1; next}
	     inblock' "$src/README.md" | sed 's/[[:space:]]*#.*$//; /^[[:space:]]*$/d'
}

# Runs one README step: make install on the host into the tree that is
# bind-mounted as the container's /usr/local, every other step inside.
run_step() {
	local line=$1 out
	case $line in
	"make install")
		out=$(timeout 600 make -C "$src" --no-print-directory -s install O="$O" \
			DESTDIR="$run/stage" 2>&1) ;;
	*)
		# shellcheck disable=SC2086  # the README's words, split as a shell would
		out=$(ct $line 2>&1) ;;
	esac
	local rc=$?
	if [ $rc -eq 0 ]; then ok "README step: $line"; else die "README step: $line" "exit $rc" "$out"; fi
}

install_steps() {
	local steps want
	steps=$(readme_steps)
	# The steps issue 14 asks the README for; the test runs what is there.
	for want in "make install" "systemd-sysusers" "systemd-tmpfiles --create" \
		"systemctl daemon-reload" "systemctl enable --now slotd.socket" \
		"usermod -aG slotd $tuser"; do
		check_has "README install steps include '$want'" "$want" "$steps"
	done
	ct useradd --no-create-home --shell /bin/sh "$tuser" >/dev/null ||
		die "test user $tuser created" "useradd failed"
	ct useradd --no-create-home --shell /bin/sh "$outsider" >/dev/null ||
		die "test user $outsider created" "useradd failed"
	while IFS= read -r line; do
		case $line in make\ install) continue ;; esac	# done before boot
		run_step "$line"
	done <<<"$steps"
}

check_snippets() {
	local gid
	gid=$(ct getent group slotd | cut -d: -f3)
	if [ -n "$gid" ] && [ "$gid" -lt 1000 ]; then
		ok "sysusers: system group slotd exists (gid $gid)"
	else
		not_ok "sysusers: system group slotd exists" "getent group slotd: '${gid:-none}'"
	fi
	check_has "usermod added $tuser to group slotd" "slotd" "$(ct id -nG "$tuser")"
	check_eq "tmpfiles: /var/lib/slotd is 0700 root:root" "700 root root" \
		"$(ct stat -c '%a %U %G' /var/lib/slotd)"
	check_eq "tmpfiles: /run/slotd is 0755 root:root" "755 root root" \
		"$(ct stat -c '%a %U %G' /run/slotd)"
}

check_activation() {
	local out
	check_eq "slotd.socket is listening after enable --now" "active" \
		"$(ct systemctl is-active slotd.socket)"
	check_eq "the socket is 0660 root:slotd" "socket 660 root slotd" \
		"$(ct stat -c '%F %a %U %G' /run/slotd/slotd.sock | sed 's/^socket/socket/')"
	check_eq "slotd.service is not started before the first connect" "inactive" \
		"$(ct systemctl is-active slotd.service)"
	out=$(ct_as "$tuser" slotctl daemon version 2>&1)
	check_has "the first connect (slotctl as $tuser) starts slotd and is answered" \
		"version" "$out"
	check_eq "slotd.service is active (running) after the first connect" "active running" \
		"$(prop slotd.service ActiveState) $(prop slotd.service SubState)"
	check_eq "slotd.service is Type=notify" "notify" "$(prop slotd.service Type)"
	# STATUS= comes only through sd_notify(): its text proves that the
	# notification socket reached systemd, and active means READY=1 did.
	check_eq "slotd told systemd it is ready (sd_notify STATUS=serving)" "serving" \
		"$(prop slotd.service StatusText)"
	out=$(ct_as "$outsider" slotctl daemon version 2>&1)
	check_has "a user outside the socket's group is told which group to join" \
		"usermod -aG slotd $outsider" "$out"
}

check_status() {
	local out pid
	pid=$(prop slotd.service MainPID)
	out=$(ct systemctl status slotd.service --no-pager --lines=5 2>&1)
	check_has "systemctl status shows the unit" "slotd.service - slotd KVM VM host" "$out"
	check_has "systemctl status shows it active (running)" "Active: active (running)" "$out"
	check_has "systemctl status shows its status text" 'Status: "serving"' "$out"
	check_has "systemctl status shows the main PID" "Main PID: $pid" "$out"
}

# Structured journal fields: at debug level each request is logged with
# METHOD and PEER_UID (and VM when the request names one).
check_journal() {
	local uid out
	uid=$(ct id -u "$tuser")
	out=$(ct_as "$tuser" slotctl daemon log-level debug 2>&1)
	check_has "slotctl daemon log-level debug changes the level at run time" "debug" "$out"
	ct_as "$tuser" slotctl vm info no-such-vm >/dev/null 2>&1
	ct journalctl --sync >/dev/null 2>&1
	out=$(ct journalctl -o verbose --no-pager SYSLOG_IDENTIFIER=slotd METHOD=vm.info 2>&1)
	check_has "journal: a request's entry carries METHOD" "METHOD=vm.info" "$out"
	check_has "journal: ... and PEER_UID of the caller" "PEER_UID=$uid" "$out"
	check_has "journal: ... and the VM it names" "VM=no-such-vm" "$out"
	check_has "journal: ... under the slotd unit" "_SYSTEMD_UNIT=slotd.service" "$out"
	ct_as "$tuser" slotctl daemon log-level info >/dev/null 2>&1
}

# A VM to watch across a restart, when the container has a usable KVM.
vm_create() {
	local caps
	caps=$(ct slotctl --json daemon capabilities 2>&1)
	case $caps in
	*'"kvm_available": true'*) ;;
	*) return 1 ;;
	esac
	ct slotctl vm create sd-guest --payload builtin:busy --memory 16M >/dev/null &&
		ct slotctl vm start sd-guest >/dev/null
}

# A member of vm.info's result (slotctl --json), as text.
vm_field() {
	ct slotctl --json vm info "$1" 2>/dev/null |
		sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p"
}

# What `systemctl restart slotd` does to a running guest.  Today the VMs
# live in the slotd process: the guest stops and comes back `defined`,
# restored from the state directory.  Once each VM runs in a runner
# process of its own that outlives slotd, set this to 1: the guest must
# then still be running, in the same runner process (vm.info's
# runner_pid), re-adopted by the new slotd.
guests_survive_restart=0

# The VM after the restart, against what it was before.
check_restart_vm() {
	local runner0=$1
	if [ $guests_survive_restart -eq 1 ]; then
		check_eq "restart: the guest is still running" running "$(vm_field sd-guest state)"
		check_eq "restart: ... in the same runner process" "$runner0" \
			"$(vm_field sd-guest runner_pid)"
		return
	fi
	check_eq "restart: the VM is restored from the state directory" true \
		"$(vm_field sd-guest restored)"
	check_eq "restart: the VM comes back defined (its vCPUs stopped with slotd)" \
		defined "$(vm_field sd-guest state)"
}

# systemctl restart as the README documents it: a new process on the same
# socket (clients never see it vanish), the VMs as check_restart_vm says.
check_restart() {
	local pid0 pid1 ino0 ino1 have_vm=0 runner0=
	if vm_create; then
		have_vm=1
		check_eq "restart: a guest runs before the restart" running "$(vm_field sd-guest state)"
		runner0=$(vm_field sd-guest runner_pid)
	fi
	pid0=$(prop slotd.service MainPID)
	ino0=$(ct stat -c %i /run/slotd/slotd.sock)
	if ! ct systemctl restart slotd.service; then
		not_ok "systemctl restart slotd succeeds" "$(ct systemctl status slotd --no-pager 2>&1)"
		return
	fi
	pid1=$(prop slotd.service MainPID)
	ino1=$(ct stat -c %i /run/slotd/slotd.sock)
	if [ "$pid1" != 0 ] && [ "$pid1" != "$pid0" ]; then
		ok "restart: a new slotd process serves (PID $pid0 -> $pid1)"
	else
		not_ok "restart: a new slotd process serves" "MainPID before $pid0, after $pid1"
	fi
	check_eq "restart: the socket file is the same (socket activation keeps it)" "$ino0" "$ino1"
	check_eq "restart: slotd.socket stays active" "active" "$(ct systemctl is-active slotd.socket)"
	check_eq "restart: slotd is ready again" "active running serving" \
		"$(prop slotd.service ActiveState) $(prop slotd.service SubState) $(prop slotd.service StatusText)"
	if [ $have_vm -eq 0 ]; then
		skipped "restart: what happens to a guest" "no usable /dev/kvm in the container"
		return
	fi
	check_restart_vm "$runner0"
	ct slotctl vm destroy sd-guest >/dev/null 2>&1
}

# systemctl stop: slotd exits 0 on SIGTERM, the socket stays with systemd,
# and the next connect starts slotd again.
check_stop() {
	local out
	ct systemctl stop slotd.service
	check_eq "stop: slotd exited cleanly (Result, status)" "success 0" \
		"$(prop slotd.service Result) $(prop slotd.service ExecMainStatus)"
	check_eq "stop: slotd.service is inactive" "inactive" "$(ct systemctl is-active slotd.service)"
	check_eq "stop: the socket is still there, listening" "active socket" \
		"$(ct systemctl is-active slotd.socket) $(ct stat -c %F /run/slotd/slotd.sock)"
	out=$(ct_as "$tuser" slotctl daemon version 2>&1)
	check_has "stop: the next connect starts slotd again" "version" "$out"
	check_eq "stop: ... and it is active" "active" "$(ct systemctl is-active slotd.service)"
	ct systemctl stop slotd.socket slotd.service
	check_eq "stopping slotd.socket too leaves nothing running" "inactive inactive" \
		"$(ct systemctl is-active slotd.socket) $(ct systemctl is-active slotd.service)"
}

main() {
	local t0=$SECONDS
	[ "$(id -u)" -eq 0 ] || die "running as root" "systemd-nspawn needs root"
	command -v systemd-nspawn >/dev/null || die "systemd-nspawn installed" "run tests/systemd/setup.sh"
	run=$(mktemp -d /tmp/slotd-systemd-XXXXXX)
	mkdir -p "$run/stage/usr/local"
	# The README's first step, on the host, before the container boots.
	run_step "make install"
	boot
	install_steps
	check_snippets
	check_activation
	check_status
	check_journal
	check_restart
	check_stop
	say "# $((SECONDS - t0)) s"
	say "systemd: $pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
}

main "$@"
