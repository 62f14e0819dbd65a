#!/usr/bin/env python3
"""Long run: continuous random changes between three real daemons, one restart a minute.

Three daemons share one folder (each writer keeps at most --max-files files in its
directory, so the share stops growing once they are reached). For the whole run each of them keeps changing the folder at
its own pace: in its own directory `from-X/` (creates, edits, appends, renames, deletions,
new directories; only X writes there, so the script knows exactly what it must hold) and in
a common directory `common/` where all three edit the same few files (conflicts are
expected there and resolved by the daemons). Once a minute one of the first two daemons is
restarted: a clean `stop` and `start`, and every third time a SIGKILL of the whole daemon
instead. The third daemon is never restarted, so its memory tells whether anything grows:
its worker's RSS is sampled every 30 s.

At the end the writers stop and the script waits for the folders to converge, then checks:

  divergence  the three folders differ (by path and SHA-256): must not happen
  lost        a file of a writer's own directory missing on some node
  corrupted   such a file present with other contents
  extra       a file in a writer's directory the writer does not have
  temp        a temporary or partial file under a user's name

and that no share is in error. RSS: the never-restarted worker's samples, first and last
ten minutes compared.

Usage: python3 benches/trials/longrun.py PATH/TO/clearskies [--minutes 60] [--seed N] [--workdir DIR]
Exit 0 only if the folders converged with nothing lost, corrupted or extra.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time

CONVERGE_DEADLINE = 600

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from clearskies_daemon import share_errors, three_sharing  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash import is_temp, tree  # noqa: E402


class Writer(threading.Thread):
    """Random changes in `root/from-NAME` and `root/common` until stopped."""

    def __init__(self, root, name, seed, stop, max_files):
        super().__init__(daemon=True)
        self.max_files = max_files
        self.root, self.name, self.rng, self.stop = root, name, random.Random(seed), stop
        self.own = os.path.join(root, f"from-{name}")
        self.ops = 0
        self.error = None

    def data(self):
        big = self.rng.random() < 0.02
        return self.rng.randbytes(self.rng.randint(1 << 20, 8 << 20) if big else self.rng.randint(0, 32 << 10))

    def files(self):
        return [p for p in tree(self.own)]

    def step(self, files):
        kind = self.rng.choices(["create", "edit", "append", "rename", "delete", "mkdir", "common"],
                                weights=[5, 3, 1, 2, 2, 1, 1])[0]
        self.ops += 1
        n = f"{self.name}{self.ops}"
        if kind == "common":
            path = os.path.join(self.root, "common", f"shared{self.rng.randrange(5)}.txt")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(f"{self.name} {self.ops}\n")
            return
        if len(files) > self.max_files:
            kind = "delete"
        if kind in ("create", "mkdir") or not files:
            d = self.rng.choice(["", "docs", "photos/2024", "deep/a/b/c", f"d{self.rng.randrange(20)}"])
            full = os.path.join(self.own, d, f"f{n}.bin" if kind != "mkdir" else f"dir{n}")
            if kind == "mkdir" and files:
                os.makedirs(full, exist_ok=True)
                return
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(self.data())
            files.append(os.path.relpath(full, self.own))
            return
        name = self.rng.choice(files)
        full = os.path.join(self.own, name)
        if kind == "edit":
            with open(full, "wb") as f:
                f.write(self.data())
        elif kind == "append":
            with open(full, "ab") as f:
                f.write(self.rng.randbytes(self.rng.randint(1, 4096)))
        elif kind == "rename":
            new = os.path.join(self.rng.choice(["", "docs", "moved"]), f"r{n}-" + os.path.basename(name))
            os.makedirs(os.path.join(self.own, os.path.dirname(new)), exist_ok=True)
            os.rename(full, os.path.join(self.own, new))
            files.remove(name)
            files.append(new)
        elif kind == "delete":
            os.remove(full)
            files.remove(name)

    def run(self):
        files = self.files()
        try:
            while not self.stop.is_set():
                self.step(files)
                # About two changes a second per writer, in bursts now and then.
                self.stop.wait(self.rng.random() * (0.05 if self.rng.random() < 0.1 else 1.0))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir")
    ap.add_argument("--max-files", type=int, default=1500,
                    help="files per writer's directory; beyond it the writer deletes (a smaller share reaches a "
                         "steady size sooner, so memory can be compared at the same size)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    work = args.workdir or tempfile.mkdtemp(prefix="clearskies-longrun-")
    os.makedirs(work, exist_ok=True)
    print(f"seed {seed}, work directory {work}, {args.minutes:g} minutes", flush=True)

    nodes, roots = three_sharing(args.binary, work)

    stop = threading.Event()
    writers = [Writer(r, d.name, rng.randrange(1 << 32), stop, args.max_files) for d, r in zip(nodes, roots)]
    for w in writers:
        w.start()
    started = time.time()
    end = started + args.minutes * 60
    restarts = kills = 0
    samples = []  # (seconds since start, never-restarted worker's RSS in KiB)
    next_restart = started + 60
    next_sample = started + 30
    failed = None
    try:
        while time.time() < end and failed is None:
            now = time.time()
            if now >= next_sample:
                rss = nodes[2].worker_kib("VmRSS")
                samples.append((now - started, rss))
                print(f"{(now - started) / 60:5.1f} min: {sum(w.ops for w in writers)} changes, "
                      f"{restarts} restarts ({kills} by SIGKILL), c worker RSS {rss / 1024:.0f} MiB", flush=True)
                next_sample += 30
            if now >= next_restart:
                victim = nodes[rng.randrange(2)]
                restarts += 1
                if restarts % 3 == 0:
                    victim.kill(True)
                    kills += 1
                    time.sleep(0.2)
                else:
                    victim.stop()
                victim.start()
                next_restart += 60
            for d in nodes:
                d.ensure_running()
            for w in writers:
                if w.error:
                    failed = f"writer {w.name}: {w.error!r}"
            time.sleep(0.5)
    finally:
        stop.set()
        for w in writers:
            w.join()
    changes = sum(w.ops for w in writers)
    print(f"writers stopped after {changes} changes, {restarts} restarts ({kills} by SIGKILL); waiting to converge",
          flush=True)

    t0 = time.time()
    deadline = t0 + CONVERGE_DEADLINE
    trees = []
    while failed is None:
        for d in nodes:
            d.ensure_running()
        trees = [tree(r) for r in roots]
        if trees[0] == trees[1] == trees[2]:
            break
        if time.time() > deadline:
            failed = "did not converge"
            break
        time.sleep(1)
    converge = time.time() - t0
    lost = corrupted = extra = temp = 0
    for w in writers:
        own = {os.path.join(f"from-{w.name}", p): h for p, h in tree(w.own).items()}
        for t in trees:
            for p, h in own.items():
                if p not in t:
                    lost += 1
                elif t[p] != h:
                    corrupted += 1
            extra += sum(1 for p in t if p.startswith(f"from-{w.name}/") and p not in own)
    for t in trees:
        temp += sum(1 for p in t if is_temp(p))
    errors = share_errors(nodes)
    final_rss = nodes[2].worker_kib("VmRSS")
    for d in nodes:
        d.stop()

    def avg(xs):
        return sum(xs) / len(xs) / 1024 if xs else float("nan")

    window = min(600, args.minutes * 60 / 3)
    first = [r for t, r in samples if t <= window]
    last = [r for t, r in samples if t >= samples[-1][0] - window] if samples else []
    third = args.minutes * 60 / 3
    middle = [r for t, r in samples if third <= t < 2 * third]
    final_third = [r for t, r in samples if t >= 2 * third]
    files = len(trees[0]) if trees else 0
    print(f"\nsummary: {(time.time() - started) / 60:.1f} min, {changes} changes, {restarts} restarts "
          f"({kills} by SIGKILL), converged in {converge:.1f}s, {files} files on each node, "
          f"lost {lost} corrupted {corrupted} extra {extra} temp {temp}"
          + (f", errors {errors}" if errors else "") + (f", FAILED: {failed}" if failed else ""))
    print(f"never-restarted worker RSS: first {window / 60:.0f} min avg {avg(first):.0f} MiB, "
          f"last {window / 60:.0f} min avg {avg(last):.0f} MiB, max {max(r for _, r in samples) / 1024 if samples else 0:.0f} MiB, "
          f"after settling {final_rss / 1024:.0f} MiB; middle third avg {avg(middle):.0f} MiB, "
          f"last third avg {avg(final_third):.0f} MiB (seed {seed})")
    bad = failed or lost or corrupted or extra or temp or errors
    if not bad and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
