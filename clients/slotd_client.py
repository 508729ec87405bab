#!/usr/bin/env python3
"""Small stdlib-only client of slotd's JSON-RPC 2.0 Unix socket.

The socket carries one JSON text per '\\n'-terminated line in each
direction.  Replies carry the request's id; notifications (events) carry a
"method" and no id, and arrive only on a connection that subscribed.

Library use::

    from slotd_client import SlotdClient, SlotdError

    with SlotdClient() as c:               # $SLOTD_SOCKET or /run/slotd/slotd.sock
        print(c.call("daemon.version")["version"])
        try:
            c.call("vm.info", name="nope")
        except SlotdError as e:
            print(e.code, e.message, e.data)

    with SlotdClient() as c:                # a declared layout, as a whole
        layout = c.call("memslot.list", vm="web1")
        layout["memslots"].append({"gpa": "8G", "size": "2M"})
        print(c.apply("web1", layout))     # {"created": [...], ...}

    with SlotdClient() as c:
        for event in c.events(["memslot.deleted"]):   # blocks; Ctrl-C ends
            print(event["method"], event.get("params"))

    # resume after a disconnection: seq and epoch of the last event seen
    with SlotdClient() as c:
        stream = c.events(since=last["seq"], epoch=last["epoch"])
        if stream.missed:                  # restarted, or too long away
            resync(c.call("vm.list"))      # list the state again
        for event in stream:
            apply(event["params"])

    # slotd on another host, through ssh (runs "slotctl dial-stdio" there)
    with SlotdClient(host="ssh://ops@node7") as c:  # or $SLOTD_HOST
        print(c.call("vm.list"))

Command line::

    python3 clients/slotd_client.py daemon.capabilities
    python3 clients/slotd_client.py events.subscribe '{"topics": ["memslot.created"]}'
    python3 clients/slotd_client.py --socket /tmp/s.sock --watch memslot.created
    python3 clients/slotd_client.py --watch --since 41 --epoch 5f0c... memslot.created
    python3 clients/slotd_client.py --host ssh://ops@node7:2222 vm.list

--host ssh://[USER@]HOST[:PORT][/SOCKET] (or $SLOTD_HOST) runs
"slotctl [--socket SOCKET] dial-stdio" on HOST through the system's ssh
($SLOTCTL_SSH names another program), exactly as slotctl --host does.

Exit status: 0 on success, 1 on a JSON-RPC error or when the daemon cannot
be reached, 2 on bad usage.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys

DEFAULT_SOCKET = "/run/slotd/slotd.sock"

# ssh://[USER@]HOST[:PORT][/SOCKET]: names and paths of plain characters
# only, so that neither ssh nor the remote shell reads them as options.
_SSH_ADDR = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                       r"(?P<host>[A-Za-z0-9._][A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\])"
                       r"(?::(?P<port>[0-9]{1,5}))?"
                       r"(?P<socket>/[A-Za-z0-9._/-]*[A-Za-z0-9._-])?$")


def ssh_command(address):
    """The ssh command line that reaches slotd at an ssh:// address;
    ValueError for anything else."""
    m = _SSH_ADDR.match(address)
    if not m or (m.group("port") and not 0 < int(m.group("port")) < 65536):
        raise ValueError("--host %s: expected ssh://[USER@]HOST[:PORT][/SOCKET]"
                         % address)
    host = m.group("host").strip("[]")
    cmd = [os.environ.get("SLOTCTL_SSH") or "ssh"]
    if m.group("user"):
        cmd += ["-l", m.group("user")]
    if m.group("port"):
        cmd += ["-p", m.group("port")]
    cmd += ["--", host, "slotctl"]
    if m.group("socket"):
        cmd += ["--socket", m.group("socket")]
    return cmd + ["dial-stdio"]


class SlotdError(Exception):
    """A JSON-RPC error reply: code, message and the optional data object."""

    def __init__(self, code, message, data=None):
        super().__init__("error %s: %s" % (code, message))
        self.code = code
        self.message = message
        self.data = data


class SlotdClient:
    """One connection to slotd.  Not thread-safe: use one per thread."""

    def __init__(self, path=None, timeout=30.0, host=None):
        """path: the Unix socket; host: ssh://... (default $SLOTD_HOST),
        which wins over path."""
        host = host or (None if path else os.environ.get("SLOTD_HOST"))
        self.path = path or os.environ.get("SLOTD_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        self._next_id = 1
        self._pending = []          # notifications read while awaiting a reply
        self._buf = b""
        self._ssh = None
        if host:
            self.path = host
            self._sock = self._ssh_open(host)
            self._sock.settimeout(timeout)
            return
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.path)
        except OSError as e:
            self._sock.close()
            raise ConnectionError("cannot connect to %s: %s; is slotd running?"
                                  % (self.path, e.strerror or e)) from e

    def _ssh_open(self, host):
        """Starts ssh with one end of a socketpair as its stdin and stdout;
        the other end is the connection."""
        cmd = ssh_command(host)
        ours, theirs = socket.socketpair()
        try:
            self._ssh = subprocess.Popen(cmd, stdin=theirs, stdout=theirs,
                                         close_fds=True)
        except OSError as e:
            ours.close()
            raise ConnectionError("cannot run %s: %s" % (cmd[0], e)) from e
        finally:
            theirs.close()
        return ours

    def close(self):
        self._sock.close()
        if self._ssh:
            try:
                self._ssh.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._ssh.terminate()
                self._ssh.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, method, params):
        req = {"jsonrpc": "2.0", "id": self._next_id, "method": method,
               "params": params}
        self._next_id += 1
        self._sock.sendall(json.dumps(req, separators=(",", ":")).encode()
                           + b"\n")
        return req["id"]

    def _recv(self, timeout):
        """Next message (reply or notification); socket.timeout when none."""
        self._sock.settimeout(timeout)
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("slotd at %s closed the connection"
                                      % self.path)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line) if line.strip() else self._recv(timeout)

    def call(self, method, **params):
        """Calls method with named params; returns the result or raises
        SlotdError.  Notifications that arrive meanwhile are kept for
        events()."""
        rid = self._send(method, params)
        while True:
            msg = self._recv(self.timeout)
            if "id" not in msg:
                self._pending.append(msg)
                continue
            if msg["id"] not in (rid, None):
                continue
            if "error" in msg:
                err = msg["error"]
                raise SlotdError(err.get("code"), err.get("message"),
                                 err.get("data"))
            return msg.get("result")

    def apply(self, vm, layout, dry_run=False):
        """memslot.apply: makes VM's memslots (boot RAM aside) the layout,
        a list of memslots or a dict holding one as "slots" (or as
        "memslots", as memslot.list returns it); returns what changed."""
        if isinstance(layout, dict):
            layout = layout.get("slots", layout.get("memslots"))
        if not isinstance(layout, list):
            raise ValueError("a layout is a list of memslots or "
                             "{\"slots\": [...]}")
        params = {"vm": vm, "slots": layout}
        if dry_run:
            params["dry_run"] = True
        return self.call("memslot.apply", **params)

    def events(self, topics=None, timeout=None, since=None, epoch=None):
        """Subscribes now (all topics when None) and returns an EventStream:
        an iterator of notifications, each a dict; with timeout, it ends
        after that many idle seconds.

        since (the seq of the last event received) and epoch (the epoch
        it came with) resume: the events slotd still holds after since
        come first, then live ones.  When slotd no longer holds them, or
        has restarted since (another epoch), stream.missed is True and
        nothing is replayed: list the state again, then carry on."""
        params = {}
        if topics:
            params["topics"] = list(topics)
        if since is not None:
            params["since"] = since
        if epoch is not None:
            params["epoch"] = epoch
        return EventStream(self, self.call("events.subscribe", **params),
                           since, timeout)

    def _notifications(self, timeout):
        while True:
            while self._pending:
                yield self._pending.pop(0)
            try:
                msg = self._recv(timeout)
            except socket.timeout:
                return
            if "id" not in msg:
                yield msg


class EventStream:
    """Notifications after an events.subscribe.  epoch, seq (the last event
    before the stream), oldest, missed and replayed are the subscription's;
    last_seq follows the events taken, so that
    events(since=s.last_seq, epoch=s.epoch) resumes after them."""

    def __init__(self, client, sub, since, timeout):
        self.subscription = sub
        self.epoch = sub.get("epoch")
        self.seq = sub.get("seq", 0)
        self.oldest = sub.get("oldest")
        self.missed = bool(sub.get("missed"))
        self.replayed = sub.get("replayed", 0)
        # Where a resume would start: the replay comes first, if any.
        self.last_seq = self.seq if since is None or self.missed else since
        self._it = client._notifications(timeout)

    def __iter__(self):
        return self

    def __next__(self):
        ev = next(self._it)
        seq = (ev.get("params") or {}).get("seq")
        if isinstance(seq, int):
            self.last_seq = seq
        return ev


def _main(argv=None):
    ap = argparse.ArgumentParser(
        description="Call one slotd JSON-RPC method and print its result.")
    ap.add_argument("--socket", help="daemon socket (default $SLOTD_SOCKET "
                    "or %s)" % DEFAULT_SOCKET)
    ap.add_argument("--host", help="ssh://[USER@]HOST[:PORT][/SOCKET]: "
                    "slotd on another host, through ssh (default $SLOTD_HOST)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds to wait for a reply (default 30)")
    ap.add_argument("--watch", action="store_true",
                    help="subscribe to the topics given as arguments and "
                    "print notifications, one JSON object per line")
    ap.add_argument("--since", type=int, metavar="SEQ",
                    help="with --watch: first the events after SEQ that "
                    "slotd still holds")
    ap.add_argument("--epoch", metavar="E",
                    help="with --since: the epoch SEQ belongs to")
    ap.add_argument("method", help="method name, or a topic with --watch")
    ap.add_argument("params", nargs="*",
                    help="JSON object of params (or more topics with --watch)")
    args = ap.parse_args(argv)

    if (args.since is not None or args.epoch) and not args.watch:
        ap.error("--since and --epoch go with --watch")
    if args.epoch and args.since is None:
        ap.error("--epoch goes with --since SEQ")
    if args.watch:
        topics = [args.method] + args.params
        try:
            with SlotdClient(args.socket, args.timeout, args.host) as c:
                stream = c.events(topics, since=args.since, epoch=args.epoch)
                if stream.missed:
                    print("slotd_client: missed events after seq %s (slotd "
                          "holds them from seq %s of epoch %s on); list the "
                          "state to resync" % (args.since, stream.oldest,
                                               stream.epoch), file=sys.stderr)
                for ev in stream:
                    print(json.dumps(ev), flush=True)
        except KeyboardInterrupt:
            return 0
        except (OSError, SlotdError, ValueError) as e:
            print("slotd_client: %s" % e, file=sys.stderr)
            return 1
        return 0

    params = {}
    if args.params:
        try:
            params = json.loads(" ".join(args.params))
        except ValueError as e:
            print("slotd_client: params are not valid JSON: %s" % e,
                  file=sys.stderr)
            return 2
        if not isinstance(params, dict):
            print("slotd_client: params must be a JSON object",
                  file=sys.stderr)
            return 2
    try:
        with SlotdClient(args.socket, args.timeout, args.host) as c:
            result = c.call(args.method, **params)
    except SlotdError as e:
        field = (e.data or {}).get("field") if isinstance(e.data, dict) else None
        print("slotd_client: error %s: %s%s" % (e.code, e.message,
              " (field: %s)" % field if field else ""), file=sys.stderr)
        return 1
    except socket.timeout:
        print("slotd_client: no reply within %g s" % args.timeout,
              file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print("slotd_client: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
