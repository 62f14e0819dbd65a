#!/usr/bin/env python3
"""Runs two daemons of BINARY through the everyday work (share, attach, an initial sync of
small, large and compressible files, edits, a rename, a delete, a delta, changes coming
back, the usual commands, pause/resume/rescan, idle) with both daemons under Valgrind's
callgrind, which records every instruction executed. Leaves one callgrind file per process
in OUT_DIR for order.py.

Usage: layout/trace.py BINARY OUT_DIR   (needs `valgrind`; takes a few minutes)
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches"))
from clearskies_daemon import Daemon, DaemonError  # noqa: E402


def valgrind(out_dir):
    return ["valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-pos=no", "--compress-strings=no",
            "--trace-children=yes", f"--callgrind-out-file={out_dir}/callgrind.%p", "--error-limit=no"]


class TracedDaemon(Daemon):
    """A daemon whose `start` (and so its monitor and worker) runs under callgrind."""

    def __init__(self, binary, home, name, out_dir):
        super().__init__(binary, home, name)
        self.out_dir = out_dir

    def start(self):
        env = dict(self.env, CLEARSKIES_LISTEN_PORT=str(self.port))
        subprocess.run(valgrind(self.out_dir) + [self.binary, "start"], env=env, check=True, capture_output=True)


def until(what, done, deadline_s=900):
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > deadline_s:
            sys.exit(f"gave up waiting for: {what}")
        time.sleep(0.5)
    print(f"{what}: {time.monotonic() - t0:.1f} s", flush=True)


def main():
    binary, out_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="clearskies-trace-")
    rng = random.Random(7)
    a = TracedDaemon(binary, work + "/home-a", "a", out_dir)
    b = TracedDaemon(binary, work + "/home-b", "b", out_dir)
    src, dst = work + "/src", work + "/dst"
    os.makedirs(src + "/sub/deeper")
    os.makedirs(dst)
    for i in range(30):
        name = f"{src}/sub/f{i}.txt" if i % 2 else f"{src}/f{i}.bin"
        with open(name, "wb") as f:
            f.write(rng.randbytes(rng.randint(100, 70000)))
    with open(src + "/big.bin", "wb") as f:
        f.write(rng.randbytes(10 << 20))  # more than one range, and a delta later
    with open(src + "/log.txt", "w") as f:
        f.write("a line of text that compresses well\n" * 20000)
    a.start()
    b.start()
    try:
        code = a.json("share", src)["access_code"]
        # A traced daemon is some 50 times slower: its handshake can time out on a busy
        # machine, which `attach` reports as unreachable. Try again.
        for attempt in range(5):
            try:
                b.run("attach", code, dst, "--peer", a.listen())
                break
            except DaemonError as e:
                print(f"attach failed ({e}); again", flush=True)
                time.sleep(5)
        else:
            sys.exit("attach kept failing")

        def same(p):
            return os.path.exists(dst + p) and os.path.getsize(dst + p) == os.path.getsize(src + p)

        until("initial sync", lambda: all(same(p) for p in ["/big.bin", "/log.txt", "/sub/f1.txt", "/f28.bin"])
              and len(os.listdir(dst + "/sub")) >= 16)
        with open(src + "/f0.bin", "ab") as f:
            f.write(b"more")
        os.rename(src + "/f2.bin", src + "/sub/deeper/f2-moved.bin")
        os.remove(src + "/f4.bin")
        with open(src + "/big.bin", "r+b") as f:
            f.seek(5 << 20)
            f.write(rng.randbytes(4096))

        def big_same():
            with open(src + "/big.bin", "rb") as x, open(dst + "/big.bin", "rb") as y:
                return x.read() == y.read()

        until("edits, a rename, a delete and a delta", lambda: same("/f0.bin") and big_same()
              and os.path.exists(dst + "/sub/deeper/f2-moved.bin") and not os.path.exists(dst + "/f4.bin"))
        with open(dst + "/from-b.txt", "w") as f:
            f.write("hello from b\n")
        os.makedirs(dst + "/b-dir")
        with open(dst + "/b-dir/x.bin", "wb") as f:
            f.write(rng.randbytes(300000))
        until("changes back", lambda: same_size(src + "/b-dir/x.bin", 300000))
        for args in (["status"], ["list"], ["peers"], ["config", "get"], ["status", "--json"], ["list", "--json"],
                     ["history"], ["pause"], ["resume"], ["rescan"]):
            for d in (a, b):
                d.run(*args, check=False)
        print(json.dumps(a.status())[:200], flush=True)
        time.sleep(20)  # idle: timers, keep-alives, the key pool
    finally:
        a.stop()
        b.stop()
    until("both stopped (callgrind writes its files as they exit)", lambda: not traced(out_dir), 300)


def traced(out_dir):
    """Whether a process runs under callgrind writing into `out_dir`."""
    marker = f"--callgrind-out-file={out_dir}/".encode()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker in f.read():
                    return True
        except OSError:
            pass
    return False


def same_size(path, size):
    return os.path.exists(path) and os.path.getsize(path) == size


if __name__ == "__main__":
    main()
