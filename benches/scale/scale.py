#!/usr/bin/env python3
"""Scale: one share of many small files (default 1,000,000 in 1,000 directories).

Measures, with the release binary:
  - the first scan: seconds until `list` shows every file indexed and the share idle, and
    the worker's peak resident memory (VmHWM) during it;
  - the index size on disk (RocksDB directory) and the worker's RSS when idle after it;
  - the rescan after a restart (should be incremental: stat only, no hashing);
  - one change while idle: a second daemon attached with `--subtree d0000` (it receives the
    whole index but keeps only that directory's files), a new file written on the first,
    seconds until the second has it;
  - the inotify watches the share needs (one per directory) against the system's limit.

Usage: python3 benches/scale/scale.py PATH/TO/clearskies [--files N] [--workdir DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from clearskies_daemon import Daemon, DaemonError  # noqa: E402


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def wait_indexed(d, files, deadline_s):
    start = time.time()
    while True:
        s = d.share()
        if s.get("files") == files and s.get("status") == "idle":
            return time.time() - start
        if time.time() - start > deadline_s:
            sys.exit(f"not indexed after {deadline_s}s: {s}")
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="clearskies-scale-")
    root = os.path.join(work, "share")
    per_dir = 1000
    dirs = (args.files + per_dir - 1) // per_dir
    t = time.time()
    for i in range(dirs):
        d = os.path.join(root, f"d{i:04d}")
        os.makedirs(d, exist_ok=True)
        for j in range(min(per_dir, args.files - i * per_dir)):
            with open(os.path.join(d, f"f{j:04d}.txt"), "w") as f:
                f.write(f"file {i}/{j}\n")
    print(f"generated {args.files} files in {dirs} directories in {time.time() - t:.0f}s ({work})", flush=True)
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:
            limit = int(f.read())
        print(f"inotify: the share needs {dirs + 1} watches; this system allows {limit} per user", flush=True)
    except OSError:
        pass

    a = Daemon(args.binary, os.path.join(work, "home-a"))
    a.run("start")
    t = time.time()
    code = a.json("share", root, "--multi-use")["access_code"]
    wait_indexed(a, args.files, 3600)
    first = time.time() - t
    print(f"first scan: {first:.1f}s ({args.files / first:.0f} files/s), worker peak RSS "
          f"{a.worker_kib('VmHWM') / 1024:.0f} MiB, idle RSS {a.worker_kib('VmRSS') / 1024:.0f} MiB, "
          f"index {du(os.path.join(a.home, 'db')) / 2**20:.0f} MiB", flush=True)

    a.run("stop")
    a.run("start")
    t = time.time()
    rescan = wait_indexed(a, args.files, 3600)
    print(f"rescan after restart: {rescan:.1f}s, worker peak RSS {a.worker_kib('VmHWM') / 1024:.0f} MiB", flush=True)

    b = Daemon(args.binary, os.path.join(work, "home-b"))
    b.run("start")
    listen = a.json("status")["listen"]
    t = time.time()
    b.run("attach", code, os.path.join(work, "copy"), "--peer", listen, "--subtree", "d0000")
    while not os.path.exists(os.path.join(work, "copy", "d0000", f"f{min(per_dir, args.files) - 1:04d}.txt")):
        if time.time() - t > 3600:
            sys.exit("the subtree peer never caught up")
        time.sleep(0.5)
    print(f"subtree peer caught up (whole index, one directory of files) in {time.time() - t:.1f}s, "
          f"its worker peak RSS {b.worker_kib('VmHWM') / 1024:.0f} MiB; the first's worker peak RSS since its restart "
          f"{a.worker_kib('VmHWM') / 1024:.0f} MiB (rescan and answering the peer)", flush=True)
    times = []
    for n in range(5):
        time.sleep(2)
        t = time.time()
        name = os.path.join("d0000", f"new{n}.txt")
        with open(os.path.join(root, name), "w") as f:
            f.write("new\n")
        while not os.path.exists(os.path.join(work, "copy", name)):
            if time.time() - t > 120:
                sys.exit("a change did not arrive")
            time.sleep(0.01)
        times.append(time.time() - t)
    times.sort()
    print(f"one change while idle: p50 {times[len(times) // 2]:.2f}s, max {times[-1]:.2f}s (5 changes); "
          f"the first's worker RSS now {a.worker_kib('VmRSS') / 1024:.0f} MiB", flush=True)
    b.run("stop")
    a.run("stop")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except DaemonError as e:
        sys.exit(str(e))
