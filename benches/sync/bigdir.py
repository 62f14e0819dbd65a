#!/usr/bin/env python3
"""New files arriving one at a time in a directory that already holds many: the CPU each
one costs the sender and the receiver, and how long until the receiver has it.

A NAS's photo folder is the case: tens of thousands of files in one directory, a few new
ones a day. Two daemons on loopback share DIR/a; `a` gets N small files, `b` attaches and
syncs them all; then ADDS files of 100 kB are written on `a`, one at a time, each waited
for on `b` (polled every 5 ms) and 0.3 s apart. CPU is the workers' user + system time
over the adds (from /proc), so it holds the scans, the index and the transfer; it is
counted once both workers have settled (under 10 ms of CPU in a second).

`--new-dirs`: each new file comes in a folder of its own (`photos/newNNNN/`), as a camera
import makes one per day; `--mode read-only`: `b` holds the share read-only (a reader of
someone's photos), where each such folder used to cost `b` a scan of the whole share.

Usage: python3 benches/sync/bigdir.py PATH/TO/clearskies [--files 20000] [--adds 20]
                                      [--new-dirs] [--mode read-write|read-only] [--workdir DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from clearskies_daemon import Daemon  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(what, cond, seconds):
    deadline = time.time() + seconds
    while not cond():
        if time.time() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.005)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--adds", type=int, default=20)
    ap.add_argument("--new-dirs", action="store_true", help="each new file in a new folder")
    ap.add_argument("--mode", choices=["read-write", "read-only"], default="read-write")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="clearskies-bigdir-", dir=args.workdir)
    a, b = Daemon(args.binary, f"{work}/ha", "a"), Daemon(args.binary, f"{work}/hb", "b")
    ra, rb = f"{work}/a", f"{work}/b"
    os.makedirs(f"{ra}/photos")
    for i in range(args.files):
        with open(f"{ra}/photos/old{i:06}.jpg", "wb") as f:
            f.write(os.urandom(64))
    try:
        a.start()
        b.start()
        code = a.json("share", ra, "--mode", args.mode)["access_code"]
        b.run("attach", code, rb, "--peer", f"127.0.0.1:{a.port}")
        count = lambda: len(os.listdir(f"{rb}/photos")) if os.path.isdir(f"{rb}/photos") else 0  # noqa: E731
        wait_for("the first sync", lambda: count() >= args.files, 600)
        wait_for("both in sync", lambda: a.share().get("synced") and b.share().get("synced"), 120)
        send, recv = a.pid("worker"), b.pid("worker")
        # Until the workers are idle (after a start they make the key pool's RSA keys, and
        # the index compacts): under 10 ms of CPU in a second, both together.
        deadline = time.time() + 120
        while time.time() < deadline:
            before = cpu_seconds(send) + cpu_seconds(recv)
            time.sleep(1)
            if cpu_seconds(send) + cpu_seconds(recv) - before < 0.010:
                break
        s0, r0, latencies = cpu_seconds(send), cpu_seconds(recv), []
        for i in range(args.adds):
            p = f"photos/new{i:04}/a.jpg" if args.new_dirs else f"photos/new{i:04}.jpg"
            t = time.time()
            os.makedirs(os.path.dirname(f"{ra}/{p}"), exist_ok=True)
            with open(f"{ra}/{p}", "wb") as f:
                f.write(os.urandom(100_000))
            wait_for(p, lambda: os.path.exists(f"{rb}/{p}"), 60)
            latencies.append(time.time() - t)
            time.sleep(0.3)
        time.sleep(1)
        sent, received = cpu_seconds(send) - s0, cpu_seconds(recv) - r0
        latencies.sort()
        print(f"{args.files} files in the directory ({args.mode}), {args.adds} added one at a time"
              f"{' in new folders' if args.new_dirs else ''}: "
              f"sender {sent / args.adds * 1000:.1f} ms CPU per file, receiver {received / args.adds * 1000:.1f} ms, "
              f"arrived after p50 {latencies[len(latencies) // 2]:.3f} s, max {latencies[-1]:.3f} s", flush=True)
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
