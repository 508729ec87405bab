#!/usr/bin/env python3
"""Turns one `make bench` run into the results page, its plots and the
headline table.

Reads OUT/*.json (bench_peer, bench_scale, bench_timeline, bench_mmu and
run.sh's meta.json), OUT/bench_memslot.txt and OUT/bench_restart.txt
(parsed here into OUT/memslot.json and OUT/restart.json); writes PAGE (Markdown), PLOTS/*.png (gnuplot, with the
data files next to them) and prints the headline table.  Every target's
threshold lives in TARGETS below and nowhere else.  With --readme, the
README's text between the bench:headline markers is replaced by the
headline table.

Exit status: 0, or 1 when BENCH_ENFORCE=1 and a target was missed in a
full run (a QUICK run never enforces: it is a smoke test).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

# Targets from the issues: (key, area, text, threshold, direction).
# direction ">=": measured ratio must be at least threshold; "<=": at most.
TARGETS = [
    ("add_128m", "vs QEMU", "memslot.create >= 20x faster than QMP object-add + device_add, 128 MiB", 20, ">="),
    ("add_1g", "vs QEMU", "memslot.create >= 20x faster than QMP object-add + device_add, 1 GiB", 20, ">="),
    ("ctl_med", "vs QEMU", "daemon.version >= 10x faster than QMP query-status, median", 10, ">="),
    ("ctl_p99", "vs QEMU", "daemon.version >= 10x faster than QMP query-status, p99", 10, ">="),
    ("rate_16", "vs QEMU", "requests/s with 16 clients >= 20x QEMU's", 20, ">="),
    ("tlb_hit", "engine", "software-TLB hit <= 5 ns (latency, 64 slots)", 5, "<="),
    ("walk_vs_bs", "engine", "radix walk >= 2x faster than binary search at 64 slots (latency)", 2, ">="),
    ("precise_flat", "engine", "precise 4 KiB delete within 2x from 1 GiB to 256 GiB mapped (warm, cold)", 2, "<="),
    ("zapall_flat", "engine", "zap-all caller cost flat, 256 vs 1 GiB mapped (flat: within 2x, the precise bound)", 2, "<="),
    ("rpc_vs_raw", "memslots", "memslot RPC median <= 1.5x (raw ioctl + daemon.version), through the VM's runner process, state on tmpfs, pinned", 1.5, "<="),
    ("runner_rss", "runners", "an idle runner <= 2 MiB resident besides guest memory", 2048, "<="),
    ("churn_off", "memslots", "memtouch under 4 KiB slot churn, slot_zap_all off: < 5% slower than no churn", 1.05, "<"),
]


def load(out, name):
    path = os.path.join(out, name + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def num(x, fmt="%.1f"):
    return "-" if x is None else fmt % x


def parse_memslot(out):
    """bench_memslot's text tables -> dict (part 1 rows, part 2 ratios)."""
    path = os.path.join(out, "bench_memslot.txt")
    if not os.path.exists(path):
        return None
    res = {"part1": [], "part2": [], "durable_write_us": {}}
    place = "?"
    for line in open(path, errors="replace"):
        if line.startswith("placement:"):
            place = "os" if "scheduler" in line else "pinned " + line.split("CPU")[1].split(",")[0].strip()
            continue
        m = re.match(r"^(\S+): a durable 128-byte append .* takes ([\d.]+) us on tmpfs(?:, ([\d.]+) us on disk)?", line)
        if m:
            res["durable_write_us"][m.group(1)] = {"tmpfs": float(m.group(2)),
                                                   "disk": float(m.group(3)) if m.group(3) else None}
            continue
        m = re.match(r"^(create|move|delete)\s+(\S+)\s.*?(\d+\.\d+)x (PASS|MISS)", line)
        if m:
            cells = re.findall(r"([\d.]+) \(([\d.]+)\)", line)
            row = {"placement": place, "op": m.group(1), "size": m.group(2),
                   "ratio": float(m.group(3)), "pass": m.group(4) == "PASS"}
            if len(cells) >= 3:
                row.update(raw_us=float(cells[0][0]), version_us=float(cells[1][0]),
                           rpc_us=float(cells[2][0]))
            h = re.search(r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x (?:PASS|MISS)", line)
            if h:
                row.update(slotd_op_us=float(h.group(1)), ioctl_us=float(h.group(2)),
                           hop_us=float(h.group(3)))
            res["part1"].append(row)
            continue
        m = re.match(r"^(\S+)\s+(anon|memfd)\s+on/no-churn ([\d.]+)x, off/no-churn ([\d.]+)x"
                     r" \(target < 1.05: (PASS|MISS)\), on/off ([\d.]+)x", line)
        if m:
            res["part2"].append({"ws": m.group(1), "ram": m.group(2), "on": float(m.group(3)),
                                 "off": float(m.group(4)), "on_off": float(m.group(6))})
    with open(os.path.join(out, "memslot.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def parse_restart(out):
    """bench_restart's text -> dict: idle runner RSS, restart rows."""
    path = os.path.join(out, "bench_restart.txt")
    if not os.path.exists(path):
        return None
    res = {"idle": [], "rows": []}
    for line in open(path, errors="replace"):
        m = re.match(r"^idle runner, (.*?):\s+(\d+) KiB resident besides guest memory \((\d+) KiB VmRSS, (\d+) KiB", line)
        if m:
            res["idle"].append({"when": m.group(1), "kib": int(m.group(2)), "vmrss_kib": int(m.group(3)),
                                "guest_kib": int(m.group(4))})
            continue
        f = line.split()
        if len(f) == 9 and f[0].isdigit() and f[1].isdigit():
            res["rows"].append(dict(zip(("vms", "rounds", "start_ms", "start_max_ms", "gap_median_ms", "gap_max_ms",
                                         "gap_across_ms", "slotd_kib", "runner_kib"),
                                        [int(f[0]), int(f[1])] + [float(x) for x in f[2:7]] + [int(f[7]), int(f[8])])))
    with open(os.path.join(out, "restart.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def verdict(key, ratio):
    t = next(t for t in TARGETS if t[0] == key)
    if ratio is None:
        return "not measured"
    ok = {">=": ratio >= t[3], "<=": ratio <= t[3], "<": ratio < t[3]}[t[4]]
    return "PASS" if ok else "MISS"


def by_size(rows, size):
    return next((r for r in rows or [] if r.get("size") == size), None)


def headline(d):
    """[(key, area, target, measured text, ratio text, verdict)]"""
    peer, mmu, ms = d["peer"] or {}, d["mmu"] or {}, d["memslot"] or {}
    rows = []

    def add(key, measured, ratio, ratio_txt=None):
        t = next(t for t in TARGETS if t[0] == key)
        rows.append((key, t[1], t[2], measured, ratio_txt or num(ratio, "%.2fx"), verdict(key, ratio)))

    for key, size in (("add_128m", 128 << 20), ("add_1g", 1 << 30)):
        r = by_size(peer.get("add"), size)
        if r and "qemu" in r:
            q, s = r["qemu"]["median_us"], r["slotd"]["median_us"]
            fl = ((peer.get("control") or {}).get("floor") or {}).get("median_us", 0)
            add(key, "QEMU %.0f us, slotd %.0f us, raw ioctl %.0f us (QEMU / (raw + the floor's %.0f us round trip): %.1fx, the most any VMM reached over a socket could get here)" % (
                q, s, r["raw"]["median_us"], fl, q / (r["raw"]["median_us"] + fl)), q / s)
        else:
            add(key, "skipped", None)
    c = peer.get("control")
    for key, pct in (("ctl_med", "median_us"), ("ctl_p99", "p99_us")):
        if c and "qemu" in c:
            floor = "; a bare echo, the host's floor: %.1f us" % c["floor"][pct] if c.get("floor") else ""
            add(key, "QEMU %.0f us, slotd %.1f us%s" % (c["qemu"][pct], c["slotd"][pct], floor),
                c["qemu"][pct] / c["slotd"][pct])
        else:
            add(key, "skipped", None)
    r = next((x for x in peer.get("throughput", []) if x["clients"] == 16), None)
    if r:
        cpu = ""
        if r.get("slotd_cpu_us_per_req"):
            cpu = "; daemon CPU per request: QEMU %.0f us, slotd %.1f us (%.0fx)" % (
                r["qemu_cpu_us_per_req"], r["slotd_cpu_us_per_req"], r["qemu_cpu_us_per_req"] / r["slotd_cpu_us_per_req"])
        floor = ""
        if r.get("floor_rps"):
            floor = "; a bare echo, the host's floor: %.0f/s (floor / QEMU: %.1fx, the most any daemon could reach here)" % (
                r["floor_rps"], r["floor_rps"] / r["qemu_rps"])
        add("rate_16", "QEMU %.0f/s, slotd %.0f/s%s%s" % (r["qemu_rps"], r["slotd_rps"], floor, cpu), r["slotd_rps"] / r["qemu_rps"])
    else:
        add("rate_16", "skipped", None)
    lat = [x for x in mmu.get("translate", []) if x["kind"] == "latency" and x["slots"] == 64]
    if lat:
        x = lat[0]
        f = x["floor_ns"]
        add("tlb_hit", "%.2f ns; %.2f ns beyond the loop's own %.2f ns (PRNG + a call)" % (x["tlb_hit_ns"], x["tlb_hit_ns"] - f, f),
            x["tlb_hit_ns"], "%.2f ns" % x["tlb_hit_ns"])
        add("walk_vs_bs", "walk %.1f ns, binary search %.1f ns; beyond the loop's own %.1f ns: %.1f vs %.1f ns, %.2fx" % (
            x["walk_ns"], x["bsearch_ns"], f, x["walk_ns"] - f, x["bsearch_ns"] - f, (x["bsearch_ns"] - f) / max(x["walk_ns"] - f, 0.01)),
            x["bsearch_ns"] / x["walk_ns"])
    else:
        add("tlb_hit", "skipped", None)
        add("walk_vs_bs", "skipped", None)
    inv = mmu.get("invalidate")
    if inv:
        worst = max(inv["precise_4k_256_vs_1_warm"], inv["precise_4k_256_vs_1_cold"])
        add("precise_flat", "%.2fx warm, %.2fx cold" % (inv["precise_4k_256_vs_1_warm"], inv["precise_4k_256_vs_1_cold"]), worst)
        add("zapall_flat", "%.2fx" % inv["zap_all_256_vs_1"], inv["zap_all_256_vs_1"])
    else:
        add("precise_flat", "skipped", None)
        add("zapall_flat", "skipped", None)
    p1 = [r for r in ms.get("part1", []) if r["placement"] != "os"] or ms.get("part1", [])
    if p1:
        worst = max(r["ratio"] for r in p1)
        met = sum(r["pass"] for r in p1)
        add("rpc_vs_raw", "%d of %d rows met, %.2f-%.2fx" % (met, len(p1), min(r["ratio"] for r in p1), worst), worst,
            "worst %.2fx" % worst)
    else:
        add("rpc_vs_raw", "skipped", None)
    rs = d.get("restart") or {}
    if rs.get("idle"):
        worst = max(r["kib"] for r in rs["idle"])
        add("runner_rss", ", ".join("%s %d KiB" % (r["when"].rstrip(":"), r["kib"]) for r in rs["idle"]), worst,
            "%d KiB" % worst)
    else:
        add("runner_rss", "skipped", None)
    p2 = ms.get("part2", [])
    if p2:
        worst = max(r["off"] for r in p2)
        add("churn_off", ", ".join("%s %s %.3fx" % (r["ws"], r["ram"], r["off"]) for r in p2), worst, "worst %.3fx" % worst)
        rows.append(("on_off", "memslots", "publish what slot_zap_all on costs the guest against off, under the same churn",
                     ", ".join("%s %s %.1fx" % (r["ws"], r["ram"], r["on_off"]) for r in p2),
                     "%.0f-%.0fx" % (min(r["on_off"] for r in p2), max(r["on_off"] for r in p2)), "published"))
    else:
        add("churn_off", "skipped", None)
    rows.extend(recorded(peer))
    return rows


def recorded(peer):
    """Rows without a target, measured in the same run: what else a
    reader comparing with QEMU wants to know."""
    rows = []
    r = by_size(peer.get("remove"), 1 << 30)
    if r:
        rows.append(("remove_1g", "vs QEMU", "memory remove, 1 GiB: QMP device_del to DEVICE_DELETED + object-del (TCG, booted guest) against memslot.delete",
                     "QEMU %.0f us, slotd %.0f us" % (r["qemu_tcg"]["median_us"], r["slotd"]["median_us"]),
                     "%.0fx" % (r["qemu_tcg"]["median_us"] / r["slotd"]["median_us"]), "recorded"))
    m = peer.get("rss")
    if m and m.get("slotd_one_vm_kb"):
        rows.append(("rss", "vs QEMU", "RSS with one 128 MiB VM, QEMU (paused) against slotd (defined)",
                     "QEMU %.1f MB, slotd %.1f MB" % (m["qemu_one_vm_kb"] / 1024, m["slotd_one_vm_kb"] / 1024),
                     "%.1fx" % (m["qemu_one_vm_kb"] / m["slotd_one_vm_kb"]), "recorded"))
    return rows


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---- plots ---------------------------------------------------------------

GP_HEAD = """set terminal pngcairo size 820,480 font "sans,10" noenhanced
set output "%s"
set grid
set key below
"""


def gnuplot(script, plots):
    if not shutil.which("gnuplot"):
        return "gnuplot is not installed (scripts/bench-deps.sh installs it)"
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, cwd=plots)
    return None if r.returncode == 0 else r.stderr.strip()


def write_dat(plots, name, lines):
    with open(os.path.join(plots, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_add(d, plots):
    rows = (d["peer"] or {}).get("add")
    if not rows:
        return None
    write_dat(plots, "add_latency.dat", ["# size_bytes raw_us slotd_us qemu_us (medians)"] + [
        "%d %.1f %.1f %s" % (r["size"], r["raw"]["median_us"], r["slotd"]["median_us"],
                             "%.1f" % r["qemu"]["median_us"] if "qemu" in r else "-") for r in rows])
    return GP_HEAD % "add_latency.png" + """set title "Memory add: median latency against slot size (QEMU: %s, paused)"
set logscale xy
set datafile missing "-"
set xtics ("4 KiB" 4096, "2 MiB" 2097152, "128 MiB" 134217728, "1 GiB" 1073741824)
set xlabel "slot size"
set ylabel "median latency, us (log)"
plot "add_latency.dat" using 1:4 with linespoints lw 2 title "QEMU: object-add + device_add (QMP)", \\
     "" using 1:3 with linespoints lw 2 title "slotd: memslot.create", \\
     "" using 1:2 with linespoints lw 2 title "raw KVM ioctl"
""" % (d["peer"].get("accel", "?"))


def plot_slots(d, plots):
    rows = (d["scale"] or {}).get("slots")
    if not rows:
        return None
    write_dat(plots, "slot_count.dat", ["# existing_slots raw_us slotd_us (medians of a 4 KiB create + delete)"] + [
        "%d %.1f %.1f" % (r["slots"], r["raw"]["median_us"], r["slotd"]["median_us"]) for r in rows])
    return GP_HEAD % "slot_count.png" + """set title "4 KiB memslot create + delete next to N existing slots (median)"
set style data linespoints
set xlabel "existing slots"
set ylabel "median latency, us"
set yrange [0:*]
plot "slot_count.dat" using 0:3:xtic(1) lw 2 title "through slotd (JSON-RPC, journal on tmpfs)", \\
     "" using 0:2 lw 2 title "raw KVM ioctl"
"""


def plot_translate(d, plots):
    rows = [r for r in (d["mmu"] or {}).get("translate", []) if r["threads"] == 1]
    if not rows:
        return None
    lat = {r["slots"]: r for r in rows if r["kind"] == "latency"}
    thr = {r["slots"]: r for r in rows if r["kind"] == "throughput"}
    write_dat(plots, "translate.dat", ["# slots lat_tlb lat_walk lat_bsearch thr_walk thr_bsearch floor (ns per lookup)"] + [
        "%d %.2f %.2f %.2f %.2f %.2f %.2f" % (n, lat[n]["tlb_hit_ns"], lat[n]["walk_ns"], lat[n]["bsearch_ns"],
                                              thr[n]["walk_ns"], thr[n]["bsearch_ns"], lat[n]["floor_ns"])
        for n in sorted(lat) if n in thr])
    return GP_HEAD % "translate.png" + """set title "Translate cost against slot count (keys from an inline PRNG, 1 thread)"
set logscale x 2
set xlabel "slots"
set ylabel "ns per lookup"
set yrange [0:*]
plot "translate.dat" using 1:4 with linespoints lw 2 lc 1 title "binary search, latency (dependent lookups)", \\
     "" using 1:3 with linespoints lw 2 lc 2 title "radix walk, latency", \\
     "" using 1:2 with linespoints lw 2 lc 3 title "software-TLB hit, latency", \\
     "" using 1:6 with linespoints dt 2 lc 1 title "binary search, throughput (independent)", \\
     "" using 1:5 with linespoints dt 2 lc 2 title "radix walk, throughput", \\
     "" using 1:7 with lines lw 1.5 dt 3 lc rgb "#777777" title "loop floor (PRNG + call), latency"
"""


def plot_timeline(d, plots):
    tl = d["timeline"]
    if not tl or "zap_all_on" not in tl:
        return None
    for key in ("zap_all_on", "zap_all_off"):
        write_dat(plots, "churn_%s.dat" % key, ["# t_s median_pass_ms passes (per 100 ms)"] + [
            "%.2f %.4f %d" % tuple(p) for p in tl[key]["points"]])
    q, c = tl["quiet_s"], tl["churn_s"]
    return GP_HEAD % "churn_timeline.png" + """set title "memtouch (64 MiB) pass time while an unrelated 4 KiB slot churns every 10 ms"
set object 1 rect from %g, graph 0 to %g, graph 1 fc rgb "#f0e0e0" fs solid behind
set label 1 "churn" at %g, graph 0.95 center
set logscale y
set xlabel "time, s"
set ylabel "median pass time per 100 ms, ms (log)"
plot "churn_zap_all_on.dat" using 1:2 with linespoints lw 2 title "slot_zap_all on (default VM)", \\
     "churn_zap_all_off.dat" using 1:2 with linespoints lw 2 title "slot_zap_all off"
""" % (q, q + c, q + c / 2)


def plot_throughput(d, plots):
    peer, scale = d["peer"] or {}, d["scale"] or {}
    if not peer.get("throughput"):
        return None
    write_dat(plots, "throughput.dat", ["# clients qemu_rps slotd_rps floor_rps"] + [
        "%d %.0f %.0f %.0f" % (r["clients"], r["qemu_rps"], r["slotd_rps"], r.get("floor_rps") or 0)
        for r in peer["throughput"]])
    write_dat(plots, "throughput_slotd.dat", ["# clients slotd_rps"] + [
        "%d %.0f" % (r["clients"], r["rps"]) for r in scale.get("throughput", [])])
    floor = ""
    if all(r.get("floor_rps") for r in peer["throughput"]):
        floor = ', \\\n     "throughput.dat" using 1:4 with linespoints dt 3 title "floor: a bare echo event loop (same run)"'
    return GP_HEAD % "throughput.png" + """set title "Control requests per second, one request in flight per client"
set logscale x 2
set xlabel "clients"
set ylabel "requests/s"
set yrange [0:*]
plot "throughput.dat" using 1:3 with linespoints lw 2 title "slotd daemon.version (same run as QEMU)", \\
     "throughput_slotd.dat" using 1:2 with linespoints dt 2 title "slotd daemon.version, 1-64 clients", \\
     "throughput.dat" using 1:2 with linespoints lw 2 title "QEMU query-status (QMP, a socket per client)\"""" + floor + "\n"


PLOTS = [("add_latency", plot_add), ("slot_count", plot_slots), ("translate", plot_translate),
         ("churn_timeline", plot_timeline), ("throughput", plot_throughput)]


def make_plots(d, plots):
    os.makedirs(plots, exist_ok=True)
    made, errors = [], []
    for name, fn in PLOTS:
        script = fn(d, plots)
        if not script:
            continue
        err = gnuplot(script, plots)
        if err:
            errors.append("%s: %s" % (name, err))
        else:
            made.append(name)
    return made, errors


# ---- the page --------------------------------------------------------------

def img(plots, page, name, made, alt):
    if name not in made:
        return "(plot %s not drawn in this run)\n" % name
    rel = os.path.relpath(os.path.join(plots, name + ".png"), os.path.dirname(page))
    return "![%s](%s)\n" % (alt, rel)


def sec_where(d):
    m, peer = d["meta"] or {}, d["peer"] or {}
    guest = ""
    kp = os.path.join(os.environ.get("BENCH_GUEST_DIR", "build/bench-guest"), "kernel-package")
    if os.path.exists(kp):
        guest = "; memory remove under TCG with a booted Debian guest (%s + busybox-static initramfs)" % open(kp).read().strip()
    qemu = ("QEMU %s from Debian, accelerator %s, paused (-S)%s" % (peer["qemu_version"], peer["accel"], guest)
            if peer.get("qemu_version") else "QEMU not measured (%s)" % peer.get("skipped", "no results"))
    rows = [("date", m.get("date", "?")), ("commit", m.get("commit", "?")),
            ("command", "`%s`, %s s (%.1f min)" % (m.get("command", "make bench"), m.get("seconds", "?"),
                                                  int(m.get("seconds", 0) or 0) / 60)),
            ("host", "%s, %s CPUs, %s GiB" % (m.get("cpu", "?"), m.get("cpus", "?"), m.get("mem_gib", "?"))),
            ("kernel", m.get("kernel", "?")), ("KVM", m.get("kvm", "?")), ("peer", qemu),
            ("load average (1, 5, 15 min)", "%s before, %s after" % (m.get("load_before", "?"), m.get("load_after", "?")))]
    return md_table(["", ""], rows)


def sec_peer(d, page, plots, made):
    p = d["peer"] or {}
    if not p.get("control"):
        return "Not measured in this run: %s.\n" % p.get("skipped", "bench_peer failed, see bench_peer.txt")
    out = ["QEMU %s from Debian, accelerator %s, the VM paused (-S), 128 MiB, `-m 128M,slots=64,maxmem=48G`, one `-qmp` socket per client; slotd's state on tmpfs.\n" % (
        p.get("qemu_version", "?"), p.get("accel", "?"))]
    c = p["control"]
    pcts = ("median_us", "p90_us", "p99_us", "p999_us")
    rows = [("QMP `query-status`", *(num(c["qemu"][k]) for k in pcts)),
            ("slotd `daemon.version`", *(num(c["slotd"][k]) for k in pcts))]
    if c.get("floor"):
        rows.append(("floor: a bare echo", *(num(c["floor"][k]) for k in pcts)))
    rows.append(("QEMU / slotd", *(num(c["qemu"][k] / c["slotd"][k], "%.1fx") for k in pcts)))
    if c.get("floor"):
        rows.append(("slotd / floor", *(num(c["slotd"][k] / c["floor"][k], "%.1fx") for k in pcts)))
    out.append("Control round trip, N=%d each, rotating blocks of 10 calls on one connection each, us. The floor is the same call answered by a process that only writes a fixed line back: the host's own Unix-socket round trip, in the same blocks, so a tail that all three show is the host's:\n" % c["qemu"]["n"])
    out.append(md_table(["", "median", "p90", "p99", "p99.9"], rows))
    out.append("\nThroughput, one request in flight per client, each client on its own connection (QEMU: its own `-qmp` socket), two rounds, the three rotating; the floor is one event loop that answers every line with a fixed reply and does nothing else, so floor / QEMU is the most any daemon could reach on this host:\n")
    out.append(md_table(["clients", "QMP req/s", "slotd req/s", "floor req/s", "slotd / QEMU", "floor / QEMU", "QEMU CPU us/req", "slotd CPU us/req"], [
        (r["clients"], "%.0f" % r["qemu_rps"], "%.0f" % r["slotd_rps"], num(r.get("floor_rps"), "%.0f"),
         "%.1fx" % (r["slotd_rps"] / r["qemu_rps"]),
         num(r["floor_rps"] / r["qemu_rps"], "%.1fx") if r.get("floor_rps") else "-",
         num(r.get("qemu_cpu_us_per_req")), num(r.get("slotd_cpu_us_per_req")))
        for r in p["throughput"]]))
    out.append("\nThe clients run on the same two CPUs as the daemon they drive, so with many clients the client side caps slotd's rate; the daemons' own CPU time per request (user + system, all threads) is the host-independent figure.")
    out.append("\n" + img(plots, page, "throughput", made, "throughput"))
    if p.get("add"):
        out.append("Memory add, medians (p90) in us; the three interleaved in rotating order. QEMU: `object-add memory-backend-ram` + `device_add pc-dimm` (no DIMM is smaller than 2 MiB); slotd: `memslot.create` (anonymous backing, journal on tmpfs); raw: `KVM_SET_USER_MEMORY_REGION2` on a VM of the benchmark:\n")
        fl = (c.get("floor") or {}).get("median_us", 0)
        out.append(md_table(["size", "raw ioctl", "slotd", "QEMU", "QEMU / slotd", "QEMU / raw", "QEMU / (raw + floor)"], [
            (size_name(r["size"]), "%s (%s)" % (num(r["raw"]["median_us"]), num(r["raw"]["p90_us"])),
             "%s (%s)" % (num(r["slotd"]["median_us"]), num(r["slotd"]["p90_us"])),
             "%s (%s)" % (num(r["qemu"]["median_us"]), num(r["qemu"]["p90_us"])) if "qemu" in r else "-",
             "%.1fx" % (r["qemu"]["median_us"] / r["slotd"]["median_us"]) if "qemu" in r else "-",
             "%.1fx" % (r["qemu"]["median_us"] / r["raw"]["median_us"]) if "qemu" in r else "-",
             "%.1fx" % (r["qemu"]["median_us"] / (r["raw"]["median_us"] + fl)) if "qemu" in r else "-")
            for r in p["add"]]))
        out.append("\nThe ceiling: the kernel's ioctl is part of every VMM's add, and a VMM driven over a socket also pays at least the floor's round trip (%.1f us median, above), so no such VMM can be more than QEMU / (raw + floor) faster than QEMU on this host." % fl)
        disk = [v["disk"] for v in ((d["memslot"] or {}).get("durable_write_us") or {}).values() if v.get("disk")]
        if disk:
            out.append("\nslotd's state is on tmpfs here. With it on disk (the default, `/var/lib/slotd`), each change also waits for one durable journal write: %.0f-%.0f us on this host's disk (`bench_memslot`'s probe), which QEMU, keeping no state, never pays." % (min(disk), max(disk)))
        out.append("\n" + img(plots, page, "add_latency", made, "memory add latency against slot size"))
    if p.get("remove"):
        out.append("Memory remove, medians (p90) in us. QEMU runs **under TCG with a booted Debian guest** (a DIMM leaves only once the guest acknowledges the eject; without one `device_del` never completes), timed from `device_del` to the `DEVICE_DELETED` event plus `object-del`; slotd `memslot.delete` and the raw ioctl on KVM. The guest's share of QEMU's time runs emulated, so this compares what a caller waits for, not equal work:\n")
        out.append(md_table(["size", "raw ioctl", "slotd delete", "QEMU (TCG, booted)", "QEMU / slotd"], [
            (size_name(r["size"]), "%s (%s)" % (num(r["raw"]["median_us"]), num(r["raw"]["p90_us"])),
             "%s (%s)" % (num(r["slotd"]["median_us"]), num(r["slotd"]["p90_us"])),
             "%s (%s)" % (num(r["qemu_tcg"]["median_us"]), num(r["qemu_tcg"]["p90_us"])),
             "%.1fx" % (r["qemu_tcg"]["median_us"] / r["slotd"]["median_us"])) for r in p["remove"]]))
    r = p.get("rss")
    if r:
        out.append("\nMemory, resident set of each daemon's whole process tree (slotd's children count too, so the figures stay right once VMs run in processes of their own),, MB, all of it and without the guest RAM mapping:\n")
        out.append(md_table(["", "RSS MB", "without guest RAM"], [
            ("QEMU, one 128 MiB VM, paused", "%.1f" % (r["qemu_one_vm_kb"] / 1024), num(r.get("qemu_one_vm_without_guest_ram_kb", 0) / 1024)),
            ("slotd, no VM", "%.1f" % (r["slotd_idle_kb"] / 1024), "%.1f" % (r["slotd_idle_kb"] / 1024)),
            ("slotd, one 128 MiB VM defined", *(("%.1f" % (r["slotd_one_vm_kb"] / 1024), num(r.get("slotd_one_vm_without_guest_ram_kb", 0) / 1024))
                                                 if r.get("slotd_one_vm_kb") else ("skipped: no usable /dev/kvm", "-"))),
            ("slotd itself (%d process)" % r["slotd_processes"], "%.1f" % (r["slotd_self_kb"] / 1024), "-"),
            ("QEMU under TCG, booted Debian guest", "%.1f" % (p.get("qemu_tcg_booted_rss_kb", 0) / 1024), "-")]))
        out.append("\nQEMU runs one process per VM, so its RSS is its RSS per VM; slotd's per-VM cost at 1, 8 and 32 VMs is in section 3.")
    return "\n".join(out) + "\n"


def size_name(b):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 1 << shift and b % (1 << shift) == 0:
            return "%d %s" % (b >> shift, unit)
    return "%d B" % b


def sec_memslot(d, page, plots, made):
    ms, sc = d["memslot"] or {}, d["scale"] or {}
    out = []
    if ms.get("part1"):
        out.append("Each change through slotd against the raw ioctl plus one `daemon.version` round trip, measured in the same iterations (`bench_memslot` part 1, state on tmpfs; pinned placements keep slotd and the raw ioctl on the same CPU, since this host's CPUs differ up to 3.5x for that ioctl). A change crosses two processes: slotd checks and journals it, the VM's runner applies it. Target: at most 1.5x (1.2x before each VM had a runner of its own). From the reply's `effect`: slotd's whole time for the change, the KVM ioctl in it, and the hop (slotd to the runner and back, beyond the runner's own work).\n")
        out.append(md_table(["placement", "op", "size", "raw us", "version us", "slotd us", "slotd op us", "its ioctl us", "hop us", "ratio", "verdict"], [
            (r["placement"], r["op"], r["size"], num(r.get("raw_us")), num(r.get("version_us")), num(r.get("rpc_us")),
             num(r.get("slotd_op_us")), num(r.get("ioctl_us")), num(r.get("hop_us")),
             "%.2fx" % r["ratio"], "PASS" if r["pass"] else "MISS") for r in ms["part1"]]))
    if sc.get("slots"):
        out.append("\nA 4 KiB create + delete next to N existing 4 KiB slots (`bench_scale` part 2; slotd kept on one CPU and the raw ioctl run on that CPU, the client on the other; the fill goes through `memslot.transaction`), medians (p90), us:\n")
        out.append(md_table(["existing slots", "raw ioctl", "slotd"], [
            (r["slots"], "%s (%s)" % (num(r["raw"]["median_us"]), num(r["raw"]["p90_us"])),
             "%s (%s)" % (num(r["slotd"]["median_us"]), num(r["slotd"]["p90_us"]))) for r in sc["slots"]]))
        out.append("\n" + img(plots, page, "slot_count", made, "latency against existing slot count"))
    return "\n".join(out) + "\n"


def sec_scale(d):
    sc, mmu = d["scale"] or {}, d["mmu"] or {}
    out = []
    if sc.get("vms"):
        out.append("VMs of 96 MiB in one daemon (`bench_scale` part 1): RSS of slotd's whole process tree, all of it and without the guest RAM mappings (slotd writes page tables, boot parameters and the payload into guest RAM when it creates a VM); per VM, over the idle daemon (%.1f MB without guest RAM); a 4 KiB create + delete on one VM and `daemon.version`, medians:\n" % (sc["idle_kb"] / 1024))
        out.append(md_table(["VMs", "state", "tree MB", "without guest RAM MB", "slotd itself MB", "processes", "KiB per VM, without guest RAM", "guest RAM touched, KiB per VM", "in VM processes, KiB per VM", "4 KiB create+delete us", "version us"], [
            (r["vms"], r["state"], "%.1f" % (r["tree_kb"] / 1024), "%.1f" % (r.get("tree_without_guest_ram_kb", 0) / 1024),
             "%.1f" % (r["slotd_self_kb"] / 1024), r["processes"], "%.0f" % r["per_vm_kb"], num(r.get("guest_ram_kb_per_vm"), "%.0f"),
             num(r.get("children_kb_per_vm"), "%.0f"), num(r["create_delete_4k"]["median_us"]),
             num(r["version"]["median_us"])) for r in sc["vms"]]))
        out.append("\n'defined' VMs have not run; 'started, paused' ones ran `builtin:busy` briefly and hold a vCPU thread each.")
    if "rss_per_memslot_kib" in sc:
        out.append("\nslotd's RSS per memslot: **%.2f KiB** (4 KiB slots, backings never touched, so no guest memory is counted)." % sc["rss_per_memslot_kib"])
    if sc.get("throughput"):
        out.append("\n`daemon.version` requests per second by client count: " + ", ".join(
            "%d: %.0f" % (r["clients"], r["rps"]) for r in sc["throughput"]) + ".")
    t = mmu.get("table_kib_per_gib")
    if t:
        out.append("\nThe engine's table memory per GiB mapped: %s KiB with 4 KiB leaves, %s KiB with 2 MiB leaves, %s KiB with 1 GiB leaves." % (t["4k"], t["2m"], t["1g"]))
    return "\n".join(out) + "\n"


def sec_engine(d, page, plots, made):
    mmu = d["mmu"] or {}
    out = []
    tr = mmu.get("translate", [])
    if tr:
        out.append("Keys come from an inline PRNG, so there is no repeating key cycle for a branch predictor to learn (CPUs differ in whether they learn one; that made earlier cycle-based figures differ by host). **Latency**: each key depends on the previous lookup's result, nothing overlaps. **Throughput**: independent lookups. ns per lookup, 1 thread, best of 5; floor = the same loop around an out-of-line call doing one load:\n")
        rows = []
        for r in tr:
            if r["threads"] == 1:
                rows.append((r["kind"], r["slots"], "%.2f" % r["floor_ns"], "%.2f" % r["tlb_hit_ns"], "%.2f" % r["walk_ns"],
                             "%.2f" % r["bsearch_ns"], "%.2fx" % (r["bsearch_ns"] / r["walk_ns"])))
        out.append(md_table(["", "slots", "floor", "TLB hit", "radix walk", "binary search", "bsearch / walk"], rows))
        out.append("\n" + img(plots, page, "translate", made, "translate cost against slot count"))
    inv = mmu.get("invalidate")
    if inv:
        out.append("Invalidation: a precise 4 KiB delete costs %.1f / %.1f / %.1f us next to 1 / 16 / 256 GiB mapped (256 vs 1 GiB: %.2fx warm, %.2fx cold); a zap-all caller's cost 256 vs 1 GiB: %.2fx." % (
            inv.get("precise_4k_us_1_gib", 0), inv.get("precise_4k_us_16_gib", 0), inv.get("precise_4k_us_256_gib", 0),
            inv["precise_4k_256_vs_1_warm"], inv["precise_4k_256_vs_1_cold"], inv["zap_all_256_vs_1"]))
    return "\n".join(out) + "\n"


def sec_churn(d, page, plots, made):
    tl, ms = d["timeline"] or {}, d["memslot"] or {}
    out = []
    if "zap_all_on" in tl:
        on, off = tl["zap_all_on"], tl["zap_all_off"]
        out.append("`builtin:memtouch` sweeps 64 MiB of memfd RAM (4 KiB host pages) in a slotd VM; an unrelated 4 KiB slot is deleted and re-created every 10 ms through slotd during the shaded %g s. Median pass time, ms:\n" % tl["churn_s"])
        out.append(md_table(["", "quiet", "churn", "after", "churn / quiet"], [
            ("`slot_zap_all` on (default)", "%.3f" % on["quiet_ms"], "%.3f" % on["churn_ms"], "%.3f" % on["after_ms"], "%.1fx" % (on["churn_ms"] / on["quiet_ms"])),
            ("`slot_zap_all` off", "%.3f" % off["quiet_ms"], "%.3f" % off["churn_ms"], "%.3f" % off["after_ms"], "%.3fx" % (off["churn_ms"] / off["quiet_ms"]))]))
        out.append("\n" + img(plots, page, "churn_timeline", made, "pass time over time under slot churn"))
    if ms.get("part2"):
        out.append("`bench_memslot` part 2 (rounds of windows, with a control: the same churn on another VM): quirk off / no churn and on / off, medians:\n")
        out.append(md_table(["working set", "RAM", "on / no churn", "off / no churn", "on / off"], [
            (r["ws"], r["ram"], "%.2fx" % r["on"], "%.3fx" % r["off"], "%.1fx" % r["on_off"]) for r in ms["part2"]]))
    return "\n".join(out) + "\n"


PAGE_NOTES = """How to read it: every ratio compares figures measured side by side in
one run, interleaved (A B A B), never against a figure from another run.
The host is itself a VM with 2 CPUs shared with other builds and tests,
so absolute times drift (the load averages above say how busy it was):
read the ratios. Tails (p99 and beyond) follow the host's load more than
either daemon, so read them with the load averages. Syscalls are expensive here, since the host is a VM:
QEMU's monitor thread spins in syscalls, which costs more on this host
than on bare metal, so the QEMU ratios do not hold everywhere. KVM here
is kvm_pvm (software virtualization, shadow paging): a stock Linux
kernel does not boot under it, so QEMU with KVM runs paused (-S) and the
remove comparison uses TCG.
"""


def sec_restart(d):
    rs = d.get("restart") or {}
    out = []
    if rs.get("idle"):
        out.append("One runner process per VM: what an idle one holds besides its guest's memory (VmRSS less the guest's memfd pages), a VM of 64 MiB. Target: at most 2 MiB.\n")
        out.append(md_table(["runner", "KiB besides guest memory", "VmRSS KiB", "of it guest memfd KiB"], [
            (r["when"].rstrip(":"), r["kib"], r["vmrss_kib"], r["guest_kib"]) for r in rs["idle"]]))
    if rs.get("rows"):
        out.append("\nslotd killed with SIGKILL and started again while N memtouch guests (64 MiB working set) run in their runners; medians and max over the rounds. Start: exec to the first answer with every runner adopted. Gap: ms between two passes of guest g0, in the second before a kill (median, max) and the longest one spanning a kill and restart: a guest that kept running shows no gap beyond its usual ones. Every guest keeps a vCPU busy, so with N guests slotd and the runners' own threads share this host's CPUs with N busy vCPU threads: start times grow with that share, not with slotd's work per runner.\n")
        out.append(md_table(["VMs", "rounds", "start ms", "start max ms", "gap median ms", "gap max ms", "gap across restart ms", "slotd KiB", "runner KiB"], [
            (r["vms"], r["rounds"], num(r["start_ms"]), num(r["start_max_ms"]), num(r["gap_median_ms"], "%.2f"),
             num(r["gap_max_ms"], "%.2f"), num(r["gap_across_ms"], "%.2f"), r["slotd_kib"], r["runner_kib"]) for r in rs["rows"]]))
    if not out:
        out.append("Skipped (no usable /dev/kvm).\n")
    return "\n".join(out) + "\n"


def page_text(d, page, plots, made, errors, rows):
    m = d["meta"] or {}
    quick = m.get("quick")
    parts = ["# slotd benchmark results\n",
             "%sOne page, written by `make bench` (%s; `make bench QUICK=1` is the under-two-minute smoke test CI runs). "
             "Machine-readable results: `bench/out/*.json`, each program's full output `bench/out/*.txt`, the plots' data "
             "`bench/plots/*.dat`. Earlier runs (the lab notebook this page replaced) are in git history: "
             "`git show 790ca5c:bench/RESULTS.md`.\n" % ("**QUICK smoke run: short runs, figures are rough.**\n\n" if quick else "",
                                                     "this run took %.1f min" % (int(m.get("seconds", 0) or 0) / 60)),
             "## Where and when\n", sec_where(d), "", PAGE_NOTES,
             "## Headline: every target, its ratio and verdict\n",
             md_table(["area", "target", "measured", "ratio", "verdict"], [r[1:] for r in rows]), "",
             "## 1. slotd and QEMU\n", "Regenerate: `make bench`, or `build/bench/bench_peer` alone (`BENCH_QUICK=1` for a short run).\n",
             sec_peer(d, page, plots, made),
             "## 2. Memslot changes: slotd against the raw ioctl\n",
             "Regenerate: `BENCH_MEMSLOT_PARTS=1 build/bench/bench_memslot`; `build/bench/bench_scale`.\n",
             sec_memslot(d, page, plots, made),
             "## 3. Scale: VMs, clients, memory\n", "Regenerate: `build/bench/bench_scale`; `build/bench/bench_mmu tables`.\n",
             sec_scale(d),
             "## 4. The engine: translate and invalidate\n", "Regenerate: `build/bench/bench_mmu` (sections: translate, churn, invalidate, crossover, slotset, tables).\n",
             sec_engine(d, page, plots, made),
             "## 5. A guest under slot churn, `slot_zap_all` on and off\n",
             "Regenerate: `build/bench/bench_timeline`; `BENCH_MEMSLOT_PARTS=2 build/bench/bench_memslot`.\n",
             sec_churn(d, page, plots, made),
             "## 6. Runners: their cost, and guests through a restart of slotd\n",
             "Regenerate: `build/bench/bench_restart` (`BENCH_RESTART_VMS=1,8,32`, `BENCH_RESTART_ROUNDS`).\n",
             sec_restart(d)]
    if errors:
        parts.append("Plots not drawn: " + "; ".join(errors) + "\n")
    return "\n".join(parts)


def print_headline(rows, quick):
    w = max(len(r[2]) for r in rows)
    print("Headline (%s)" % ("QUICK smoke run: ratios only, no verdict enforced" if quick else "verdicts against the targets"))
    for r in rows:
        print("  %-9s %-*s  %-14s %s" % (r[1], w, r[2], r[4], "-" if quick else r[5]))


def update_readme(path, rows, d):
    text = open(path).read()
    begin, end = "<!-- bench:headline -->", "<!-- /bench:headline -->"
    if begin not in text or end not in text:
        return
    m, peer = d["meta"] or {}, d["peer"] or {}
    table = md_table(["target", "ratio", "verdict"], [(r[2], r[4], r[5]) for r in rows])
    table += "\n\n`%s`, %s, commit %s; QEMU %s, accelerator %s; load average %s before, %s after." % (
        m.get("command", "make bench"), m.get("date", "?"), m.get("commit", "?"), peer.get("qemu_version", "-"),
        peer.get("accel", "-"), m.get("load_before", "?"), m.get("load_after", "?"))
    head, rest = text.split(begin, 1)
    text = head + begin + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--page", required=True)
    ap.add_argument("--plots", required=True)
    ap.add_argument("--readme")
    a = ap.parse_args()
    d = {k: load(a.out, k) for k in ("meta", "peer", "scale", "timeline", "mmu")}
    d["memslot"] = parse_memslot(a.out)
    d["restart"] = parse_restart(a.out)
    quick = bool((d["meta"] or {}).get("quick"))
    rows = headline(d)
    made, errors = make_plots(d, a.plots)
    with open(a.page, "w") as f:
        f.write(page_text(d, a.page, a.plots, made, errors, rows))
    print_headline(rows, quick)
    for e in errors:
        print("plot not drawn: " + e, file=sys.stderr)
    print("page: %s; plots: %s (%s)" % (a.page, a.plots, ", ".join(made) or "none"))
    if a.readme and not quick:
        update_readme(a.readme, rows, d)
    if os.environ.get("BENCH_ENFORCE") == "1" and not quick and any(r[5] == "MISS" for r in rows):
        print("bench: BENCH_ENFORCE=1 and a target was missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
