#!/usr/bin/env python3
"""Sync benchmark: two real daemons on loopback.

Reports, for 4 x 256 MiB files and for 5000 files of 4-64 KiB: seconds, MB/s and files/s
until the receiver holds every file (checked by size, then by SHA-256 at the end, outside the
timing), measured twice: from `share` (the friend attaches at once; the sharer's indexing
counts, as a user waits for it) and from `attach` once the sharer has indexed (the sync
alone), and the time for a 1 KiB change to appear on the other side
(p50 and max over 10 changes), and for a 4 KiB overwrite in the middle of a synced 128 MiB
file: seconds until it is on the other side and bytes on the wire (both directions, from the
daemons' /metrics), over 5 edits; and 20 MB through a 1 MB/s upload limit on the sender,
then through a 1 MB/s download limit on the receiver (seconds; the goal is 20 s); and a
10 MiB text file (a server log) with gzip: bytes on the wire against its size.

For the two initial syncs and the change latency it also reports each node's CPU seconds
(during the sync) and memory (see proc_usage.py: the processes' peak RSS summed, and the
peak PSS sampled every 100 ms), and, when the `syncthing`
binary is installed (Debian package), runs Syncthing on the same data side by side
(loopback only, its filesystem watcher at its 1 s minimum instead of the default 10 s) and
prints the ratios; otherwise it says so. The machine's own limits are measured in the same
run (copying the 1 GiB of the large case with `cp` and syncing it to disk; SHA-256 of it
from the page cache) so results can be read as ratios.

Usage: benches/sync/run.sh  (builds the release binary, then runs this)
       python3 benches/sync/bench.py PATH/TO/clearskies [--workdir DIR] [--only large|small|latency|delta|limit|gzip]
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from clearskies_daemon import Daemon, DaemonError  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import syncthing as st  # noqa: E402
from proc_usage import PeakPss, ProcessTree  # noqa: E402


def write_random(path, size, rng):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not (d == root and x == ".clearskies")]
        for name in files:
            if name.endswith(".clearskies-part"):
                continue
            p = os.path.join(d, name)
            try:
                out[os.path.relpath(p, root)] = os.path.getsize(p)
            except FileNotFoundError:
                pass  # renamed or removed while we looked
    return out


def wait_same_sizes(src, dst, deadline_s=600):
    """Until every file of SRC is in DST at its size. Each poll looks only at the files not
    seen complete yet, and stops at the first that is not: walking thousands of files every
    time took a fifth of this machine's CPU from the daemons in the small-file case."""
    remaining = sorted(tree(src).items())
    start = time.monotonic()
    while True:
        while remaining:
            rel, size = remaining[-1]
            try:
                if os.stat(os.path.join(dst, rel)).st_size != size:
                    break
            except FileNotFoundError:
                break
            remaining.pop()
        if not remaining:
            return
        if time.monotonic() - start > deadline_s:
            sys.exit(f"not in sync after {deadline_s}s: {len(remaining)} files missing or short")
        time.sleep(0.05)


def two_daemons(binary, work, name):
    """Two daemons with homes under WORK/NAME, and the source and destination folders (the
    source created, empty)."""
    base = os.path.join(work, name)
    a, b = Daemon(binary, os.path.join(base, "ha")), Daemon(binary, os.path.join(base, "hb"))
    src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
    os.makedirs(src)
    return a, b, src, dst


def check_same(src, dst):
    for rel in tree(src):
        if sha(os.path.join(src, rel)) != sha(os.path.join(dst, rel)):
            sys.exit(f"{rel}: contents differ")


def usage_report(trees, cpu_before, pss):
    """CPU seconds since `cpu_before`, peak RSS (summed VmHWM) and peak PSS of each node."""
    return {"cpu_s": [round(t.cpu_seconds() - c, 2) for t, c in zip(trees, cpu_before)],
            "peak_rss_mib": [round(t.peak_rss_mib(), 1) for t in trees], "peak_pss_mib": pss.stop()}


def daemon_tree(d):
    return ProcessTree(d.pid("monitor"), d.pid("worker"))


def run_case(binary, work, name, fill, from_share=False):
    """From `attach` once the sharer has indexed (the sync alone), or `from_share`: the clock
    starts at `share`, the friend attaches at once, and the sharer's indexing counts (what a
    user waits for)."""
    a, b, src, dst = two_daemons(binary, work, name + (" from share" if from_share else ""))
    files, total = fill(src)
    a.start()
    b.start()
    try:
        if not from_share:
            code = a.json("share", src, "--mode", SHARE_MODE)["access_code"]
            # Let the sharer finish indexing first: this measure is the sync alone.
            while a.json("list")["shares"][0]["status"] != "idle":
                time.sleep(0.05)
        # Both daemons run on this one disk: flush the generated sources first, or the
        # receiver's fsyncs also pay for writing them (ext4 orders data before a commit).
        os.sync()
        trees = [daemon_tree(a), daemon_tree(b)]
        cpu = [t.cpu_seconds() for t in trees]
        pss = PeakPss(lambda: [daemon_tree(a), daemon_tree(b)])
        t0 = time.monotonic()
        if from_share:
            code = a.json("share", src, "--mode", SHARE_MODE)["access_code"]
        b.run("attach", code, dst, "--peer", PEER_PREFIX + a.listen())
        wait_same_sizes(src, dst)
        secs = time.monotonic() - t0
        trees = [daemon_tree(a), daemon_tree(b)]
        usage = usage_report(trees, cpu, pss)
        check_same(src, dst)
        return {"case": name, "from": "share" if from_share else "attach", "files": files, "bytes": total,
                "seconds": round(secs, 3), "MB_per_s": round(total / secs / 1e6, 1),
                "files_per_s": round(files / secs, 1), **usage}
    finally:
        a.stop()
        b.stop()


def two_syncthings(work, name):
    base = os.path.join(work, "syncthing-" + name)
    a, b = st.Syncthing(os.path.join(base, "ha")), st.Syncthing(os.path.join(base, "hb"))
    src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
    os.makedirs(src)
    os.makedirs(dst)
    return a, b, src, dst


def syncthing_attach(a, b, src, dst, files, from_share=False):
    """Shares `src` on a (and, unless `from_share`, waits until it is scanned); returns what
    adds it on b at `dst`."""
    a.add_device(b)
    b.add_device(a)
    kind = "receiveonly" if SHARE_MODE == "read-only" else "sendreceive"
    if from_share:
        return lambda: (a.add_folder("bench", src, [b]), b.add_folder("bench", dst, [a], kind=kind))
    a.add_folder("bench", src, [b])
    deadline = time.monotonic() + 600
    while not a.folder_idle("bench", files):
        if time.monotonic() > deadline:
            sys.exit("syncthing: the source folder was not scanned within 600 s")
        time.sleep(0.1)
    return lambda: b.add_folder("bench", dst, [a], kind=kind)


def run_case_syncthing(work, name, fill, from_share=False):
    a, b, src, dst = two_syncthings(work, name + (" from share" if from_share else ""))
    files, total = fill(src)
    a.start()
    b.start()
    try:
        attach = syncthing_attach(a, b, src, dst, files, from_share)
        os.sync()
        trees = [a.processes(), b.processes()]
        cpu = [t.cpu_seconds() for t in trees]
        pss = PeakPss(lambda: [a.processes(), b.processes()])
        t0 = time.monotonic()
        attach()
        wait_same_sizes(src, dst)
        secs = time.monotonic() - t0
        usage = usage_report(trees, cpu, pss)
        check_same(src, dst)
        return {"case": name + " (Syncthing)", "from": "share" if from_share else "attach", "files": files,
                "bytes": total, "seconds": round(secs, 3), "MB_per_s": round(total / secs / 1e6, 1),
                "files_per_s": round(files / secs, 1), **usage}
    finally:
        a.stop()
        b.stop()


def machine_limits(work):
    """cp of 1 GiB (and syncing it to disk), and SHA-256 of it from the page cache."""
    base = os.path.join(work, "limits")
    src = os.path.join(base, "src")
    files, total = fill_large(src)
    os.sync()
    t0 = time.monotonic()
    subprocess.run(["cp", "-r", src, os.path.join(base, "copy")], check=True)
    os.sync()
    cp_s = time.monotonic() - t0
    t0 = time.monotonic()
    for rel in tree(src):
        sha(os.path.join(src, rel))
    sha_s = time.monotonic() - t0
    shutil.rmtree(base, ignore_errors=True)
    return {"case": "machine", "cp_MB_per_s": round(total / cp_s / 1e6, 1),
            "sha256_MB_per_s": round(total / sha_s / 1e6, 1), "cores": os.cpu_count()}


def small_file_limit(work):
    """The small-file case's files copied the way a receiver must write them (a temp file,
    fsync, rename into place; 8 at a time, as many writers as the daemon runs): files/s and
    this process's CPU seconds. No network, no hashing, no index: the filesystem's part
    alone, the floor under any sync of these files on this disk."""
    from concurrent.futures import ThreadPoolExecutor
    base = os.path.join(work, "limits-small")
    src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
    files, total = fill_small(src)
    names = tree(src)
    for d in {os.path.dirname(n) for n in names}:
        os.makedirs(os.path.join(dst, d), exist_ok=True)
    os.sync()

    def copy(rel):
        with open(os.path.join(src, rel), "rb") as f:
            data = f.read()
        target = os.path.join(dst, rel)
        tmp = os.path.join(os.path.dirname(target), ".part-" + os.path.basename(rel))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)

    cpu0, t0 = os.times(), time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(copy, names))
    secs, cpu1 = time.monotonic() - t0, os.times()
    shutil.rmtree(base, ignore_errors=True)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"small_files_per_s": round(files / secs, 1), "small_files_cpu_s": round(cpu, 2)}


def fill_large(src):
    rng = random.Random(1)
    for i in range(4):
        write_random(os.path.join(src, f"large-{i}.bin"), 256 << 20, rng)
    return 4, 4 * (256 << 20)


def fill_small(src):
    rng = random.Random(2)
    total = 0
    for i in range(5000):
        size = rng.randint(4 << 10, 64 << 10)
        write_random(os.path.join(src, f"d{i % 100:02}", f"f{i}.bin"), size, rng)
        total += size
    return 5000, total


def change_rounds(src, dst, rng, rounds):
    """Seconds for each of `rounds` 1 KiB rewrites of doc.bin to reach the other folder,
    alternating directions."""
    times = []
    for i in range(rounds):
        data = rng.randbytes(1 << 10)
        (frm, to) = (src, dst) if i % 2 == 0 else (dst, src)
        t0 = time.monotonic()
        with open(os.path.join(frm, "doc.bin"), "wb") as f:
            f.write(data)
        target = os.path.join(to, "doc.bin")
        while True:
            try:
                with open(target, "rb") as f:
                    if f.read() == data:
                        break
            except FileNotFoundError:
                pass
            if time.monotonic() - t0 > 60:
                sys.exit("a change did not arrive within 60 s")
            time.sleep(0.002)
        times.append(time.monotonic() - t0)
        time.sleep(0.5)  # let both sides settle before the next change
    times.sort()
    return {"rounds": rounds, "p50_s": round(statistics.median(times), 3),
            "p95_s": round(times[min(len(times) - 1, int(len(times) * 0.95))], 3), "max_s": round(times[-1], 3)}


def latency(binary, work, rounds=20):
    a, b, src, dst = two_daemons(binary, work, "latency")
    rng = random.Random(3)
    write_random(os.path.join(src, "doc.bin"), 1 << 10, rng)
    a.start()
    b.start()
    try:
        b_code = a.json("share", src)["access_code"]
        b.run("attach", b_code, dst, "--peer", PEER_PREFIX + a.listen())
        wait_same_sizes(src, dst)
        trees = [daemon_tree(a), daemon_tree(b)]
        cpu = [t.cpu_seconds() for t in trees]
        pss = PeakPss(lambda: [daemon_tree(a), daemon_tree(b)])
        out = {"case": "1 KiB change", **change_rounds(src, dst, rng, rounds)}
        return {**out, **usage_report(trees, cpu, pss)}
    finally:
        a.stop()
        b.stop()


def latency_syncthing(work, rounds=20):
    a, b, src, dst = two_syncthings(work, "latency")
    rng = random.Random(3)
    write_random(os.path.join(src, "doc.bin"), 1 << 10, rng)
    a.start()
    b.start()
    try:
        syncthing_attach(a, b, src, dst, 1)()
        wait_same_sizes(src, dst)
        deadline = time.monotonic() + 60
        while not b.folder_idle("bench", 1):
            if time.monotonic() > deadline:
                sys.exit("syncthing: the copy did not settle")
            time.sleep(0.1)
        trees = [a.processes(), b.processes()]
        cpu = [t.cpu_seconds() for t in trees]
        pss = PeakPss(lambda: [a.processes(), b.processes()])
        out = {"case": "1 KiB change (Syncthing, watcher delay 1 s)", **change_rounds(src, dst, rng, rounds)}
        return {**out, **usage_report(trees, cpu, pss)}
    finally:
        a.stop()
        b.stop()


def ratios(ours, theirs):
    """How we compare, per measure (higher is better for us in every line)."""
    since = f" from {ours['from']}" if "from" in ours else ""
    out = {"case": ours["case"] + since + ": ClearSkies / Syncthing"}
    if "MB_per_s" in ours:
        out["throughput_x"] = round(ours["MB_per_s"] / theirs["MB_per_s"], 2)
    if "p50_s" in ours:
        out["p50_latency_x"] = round(theirs["p50_s"] / ours["p50_s"], 2)
    out["cpu_x"] = round(sum(theirs["cpu_s"]) / max(sum(ours["cpu_s"]), 0.01), 2)
    out["rss_x"] = round(max(theirs["peak_rss_mib"]) / max(ours["peak_rss_mib"]), 2)
    out["pss_x"] = round(max(theirs["peak_pss_mib"]) / max(ours["peak_pss_mib"]), 2)
    return out


def delta(binary, work, rounds=5):
    a, b, src, dst = two_daemons(binary, work, "delta")
    rng = random.Random(4)
    size = 128 << 20
    write_random(os.path.join(src, "disk.img"), size, rng)
    a.start()
    b.start()
    try:
        code = a.json("share", src)["access_code"]
        b.run("attach", code, dst, "--peer", PEER_PREFIX + a.listen())
        wait_same_sizes(src, dst)
        b.run("wait", dst, "--timeout", "120")
        times, wire = [], []
        for i in range(rounds):
            # Alternate directions: a -> b, then b -> a.
            (frm, to) = (src, dst) if i % 2 == 0 else (dst, src)
            os.sync()
            before = a.sent_bytes() + b.sent_bytes()
            t0 = time.monotonic()
            with open(os.path.join(frm, "disk.img"), "r+b") as f:
                f.seek(size // 2 + rng.randrange(1 << 20))
                f.write(rng.randbytes(4 << 10))
            mtime = os.stat(os.path.join(frm, "disk.img")).st_mtime_ns
            target = os.path.join(to, "disk.img")
            while os.stat(target).st_mtime_ns != mtime:
                if time.monotonic() - t0 > 60:
                    sys.exit(f"round {i}: an edit of {frm}/disk.img (mtime {mtime}) did not arrive within 60 s "
                             f"(the other copy's mtime is {os.stat(target).st_mtime_ns})")
                time.sleep(0.005)
            times.append(time.monotonic() - t0)
            time.sleep(0.5)  # let both sides settle (and count) before reading the counters
            wire.append(a.sent_bytes() + b.sent_bytes() - before)
            if sha(os.path.join(frm, "disk.img")) != sha(target):
                sys.exit("contents differ after an edit")
        return {"case": "4 KiB edit in 128 MiB", "rounds": rounds, "p50_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3), "max_wire_bytes": int(max(wire)),
                "p50_wire_bytes": int(statistics.median(wire))}
    finally:
        a.stop()
        b.stop()


def limited(binary, work, which):
    a, b, src, dst = two_daemons(binary, work, "limit-" + which)
    write_random(os.path.join(src, "file.bin"), 20_000_000, random.Random(5))
    a.start()
    b.start()
    try:
        (a if which == "upload" else b).run("config", "set", f"{which}_limit", "1M")
        code = a.json("share", src)["access_code"]
        while a.json("list")["shares"][0]["status"] != "idle":
            time.sleep(0.05)
        t0 = time.monotonic()
        b.run("attach", code, dst, "--peer", PEER_PREFIX + a.listen())
        wait_same_sizes(src, dst)
        secs = time.monotonic() - t0
        return {"case": f"20 MB, 1 MB/s {which} limit", "seconds": round(secs, 2),
                "MB_per_s": round(20 / secs, 3)}
    finally:
        a.stop()
        b.stop()


def gzip_text(binary, work):
    a, b, src, dst = two_daemons(binary, work, "gzip")
    rng = random.Random(6)
    words = ["GET", "POST", "/api/items", "/static/app.js", "200", "304", "404", "user=", "ms", "INFO", "WARN"]
    with open(os.path.join(src, "server.log"), "w") as f:
        size = 0
        i = 0
        while size < 10 << 20:
            line = f"2026-11-24T06:{i // 60 % 60:02}:{i % 60:02}Z " + " ".join(rng.choice(words) for _ in range(8)) + f" {rng.randrange(1000)}\n"
            f.write(line)
            size += len(line)
            i += 1
    a.start()
    b.start()
    try:
        code = a.json("share", src)["access_code"]
        while a.json("list")["shares"][0]["status"] != "idle":
            time.sleep(0.05)
        before = a.sent_bytes()
        t0 = time.monotonic()
        b.run("attach", code, dst, "--peer", PEER_PREFIX + a.listen())
        wait_same_sizes(src, dst)
        secs = time.monotonic() - t0
        time.sleep(0.5)
        wire = a.sent_bytes() - before
        return {"case": "10 MiB text, gzip", "bytes": size, "wire_bytes": int(wire),
                "wire_ratio": round(wire / size, 3), "seconds": round(secs, 2)}
    finally:
        a.stop()
        b.stop()


# `--transport utp`: every attach dials `utp:HOST:PORT` (the session runs over uTP).
PEER_PREFIX = ""
# `--mode read-only`: the large and small cases share read-only.
SHARE_MODE = "read-write"


def main():
    global PEER_PREFIX, SHARE_MODE
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--workdir")
    p.add_argument("--only", choices=["large", "small", "latency", "delta", "limit", "gzip"])
    p.add_argument("--no-syncthing", action="store_true", help="do not run Syncthing side by side")
    p.add_argument("--keep", action="store_true", help="keep the work directory (daemon logs) afterwards")
    p.add_argument("--transport", choices=["tcp", "utp"], default="tcp", help="what the attaches dial over")
    p.add_argument("--mode", choices=["read-write", "read-only"], default="read-write",
                   help="how the large and small cases share (Syncthing's receiver: receiveonly for read-only)")
    args = p.parse_args()
    PEER_PREFIX = "utp:" if args.transport == "utp" else ""
    SHARE_MODE = args.mode
    print(f"transport: {args.transport}, mode: {args.mode}", flush=True)
    work = tempfile.mkdtemp(prefix="clearskies-bench-", dir=args.workdir)
    compare = not args.no_syncthing and st.available()
    if args.no_syncthing:
        print("Syncthing: not run (--no-syncthing)", flush=True)
    elif not compare:
        print("Syncthing: not installed (apt-get install syncthing), so no side-by-side numbers", flush=True)
    else:
        print(f"Syncthing: {st.version()}", flush=True)

    def side_by_side(ours, theirs):
        print(json.dumps(ours), flush=True)
        if compare:
            theirs = theirs()
            print(json.dumps(theirs), flush=True)
            print(json.dumps(ratios(ours, theirs)), flush=True)

    failed = True
    try:
        if args.only in (None, "large", "small"):
            limits = machine_limits(work)
            if args.only in (None, "small"):
                limits.update(small_file_limit(work))
            print(json.dumps(limits), flush=True)
        if args.only in (None, "large"):
            for from_share in (True, False):
                side_by_side(run_case(args.binary, work, "4 x 256 MiB", fill_large, from_share),
                             lambda: run_case_syncthing(work, "4 x 256 MiB", fill_large, from_share))
        if args.only in (None, "small"):
            for from_share in (True, False):
                side_by_side(run_case(args.binary, work, "5000 x 4-64 KiB", fill_small, from_share),
                             lambda: run_case_syncthing(work, "5000 x 4-64 KiB", fill_small, from_share))
        if args.only in (None, "latency"):
            side_by_side(latency(args.binary, work), lambda: latency_syncthing(work))
        if args.only in (None, "delta"):
            print(json.dumps(delta(args.binary, work)), flush=True)
        if args.only in (None, "gzip"):
            print(json.dumps(gzip_text(args.binary, work)), flush=True)
        if args.only in (None, "limit"):
            for which in ("upload", "download"):
                print(json.dumps(limited(args.binary, work, which)), flush=True)
        failed = False
    finally:
        # A failed run keeps its directory: the daemons' logs are what tells why.
        if args.keep or failed:
            print(f"kept {work}" + (" (the run failed; the daemons' logs are in it)" if failed else ""),
                  file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except DaemonError as e:
        sys.exit(str(e))
