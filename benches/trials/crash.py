#!/usr/bin/env python3
"""Crash trials: `kill -9` at random moments while three real daemons sync a mixed workload.

Each round, one daemon's folder gets a burst of changes (new small and large files, edits,
appends, renames across directories, deletions, new directories). While the burst is being
written and synced, a random daemon is killed with SIGKILL at a random moment: either its
worker only (its monitor restarts it) or the whole daemon (monitor and worker; the script
starts it again; a monitor that gave up after five worker crashes within a minute, as it is
meant to, is started again too, as a service manager would). Then the round waits until every folder holds exactly what the writer's
folder holds, and checks, on every node, every file by SHA-256 against the script's own model:

  lost       a file of the model missing on a node
  corrupted  a file present with other contents
  extra      a file the model does not have (a resurrected deletion, a stray temp file)
  temp       a temporary or partial file under a user's name (outside .clearskies/)

and that every daemon answers `status` with no share in error (RocksDB opened cleanly after
the kill). A round that does not converge within the deadline counts as failed and the run
stops, keeping the work directory for inspection.

Usage: python3 benches/trials/crash.py PATH/TO/clearskies [--rounds 100] [--seed N] [--workdir DIR]
Prints one line per round and a summary; exit 0 only if nothing was lost or corrupted.
"""

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time

CONVERGE_DEADLINE = 300


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from clearskies_daemon import share_errors, three_sharing  # noqa: E402


def tree(root):
    """path -> sha256 of every file under root (outside .clearskies)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".clearskies"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            try:
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
            except OSError:
                pass
    return out


def is_temp(name):
    base = os.path.basename(name)
    return base.endswith(".clearskies-part") or base.startswith(".clearskies-tmp") or ".clearskies-" in base


class Workload:
    """Random changes in one folder, and the model of what it then holds."""

    def __init__(self, rng):
        self.rng = rng
        self.n = 0

    def data(self):
        big = self.rng.random() < 0.08
        size = self.rng.randint(4 << 20, 24 << 20) if big else self.rng.randint(0, 64 << 10)
        return self.rng.randbytes(size)

    def burst(self, root, ops):
        files = [p for p in tree(root)]
        for _ in range(ops):
            kind = self.rng.choices(["create", "edit", "append", "rename", "delete", "mkdir"],
                                    weights=[5, 3, 1, 2, 2, 1])[0]
            self.n += 1
            if kind in ("create", "mkdir") or not files:
                d = self.rng.choice(["", "docs", "photos/2024", "deep/a/b/c"])
                name = os.path.join(d, f"f{self.n}.bin" if kind == "create" or not files else f"dir{self.n}")
                full = os.path.join(root, name)
                if kind == "mkdir" and files:
                    os.makedirs(full, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(self.data())
                files.append(name)
            elif kind == "edit":
                name = self.rng.choice(files)
                with open(os.path.join(root, name), "wb") as f:
                    f.write(self.data())
            elif kind == "append":
                name = self.rng.choice(files)
                with open(os.path.join(root, name), "ab") as f:
                    f.write(self.rng.randbytes(self.rng.randint(1, 4096)))
            elif kind == "rename":
                name = self.rng.choice(files)
                new = os.path.join(self.rng.choice(["", "docs", "moved"]), f"r{self.n}-" + os.path.basename(name))
                os.makedirs(os.path.join(root, os.path.dirname(new)), exist_ok=True)
                os.rename(os.path.join(root, name), os.path.join(root, new))
                files.remove(name)
                files.append(new)
            elif kind == "delete":
                name = self.rng.choice(files)
                os.remove(os.path.join(root, name))
                files.remove(name)
            time.sleep(self.rng.random() * 0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    work = args.workdir or tempfile.mkdtemp(prefix="clearskies-crash-")
    os.makedirs(work, exist_ok=True)
    print(f"seed {seed}, work directory {work}", flush=True)

    nodes, roots = three_sharing(args.binary, work)
    workload = Workload(rng)
    totals = {"rounds": 0, "checked": 0, "lost": 0, "corrupted": 0, "extra": 0, "temp": 0, "kills": 0, "restarted": 0}
    failed = False
    started = time.time()
    try:
        for rnd in range(1, args.rounds + 1):
            writer = rng.randrange(3)
            victim = rng.randrange(3)
            whole = rng.random() < 0.5
            ops = rng.randint(5, 40)
            delay = rng.random() * 1.5
            # The burst runs while the victim is killed at a random moment of it.
            t0 = time.time()
            workload.burst(roots[writer], ops // 2)
            time.sleep(max(0.0, delay - (time.time() - t0)))
            killed = nodes[victim].kill(whole)
            totals["kills"] += 1
            workload.burst(roots[writer], ops - ops // 2)
            if whole:
                # Its pid files are stale now; `start` sees the dead pids and starts afresh.
                time.sleep(0.2)
                nodes[victim].start()
            model = tree(roots[writer])
            deadline = time.time() + CONVERGE_DEADLINE
            while True:
                for d in nodes:
                    if d.ensure_running():
                        totals["restarted"] += 1
                trees = [tree(r) for r in roots]
                if all(t == model for t in trees):
                    break
                if time.time() > deadline:
                    failed = True
                    break
                time.sleep(0.25)
            lost = corrupted = extra = temp = 0
            for t in trees:
                for p, h in model.items():
                    if p not in t:
                        lost += 1
                    elif t[p] != h:
                        corrupted += 1
                extra += sum(1 for p in t if p not in model)
                temp += sum(1 for p in t if is_temp(p))
            errors = share_errors(nodes)
            totals["rounds"] += 1
            totals["checked"] += sum(len(t) for t in trees)
            for k, v in (("lost", lost), ("corrupted", corrupted), ("extra", extra), ("temp", temp)):
                totals[k] += v
            print(f"round {rnd}: writer {nodes[writer].name}, killed {nodes[victim].name} "
                  f"({'daemon' if whole else 'worker'} {killed}) at {delay:.2f}s, {ops} ops, "
                  f"{len(model)} files, converged in {time.time() - t0:.1f}s"
                  + ("" if not failed else " -- DID NOT CONVERGE")
                  + (f", lost {lost} corrupted {corrupted} extra {extra} temp {temp}" if lost or corrupted or extra or temp else "")
                  + (f", errors {errors}" if errors else ""), flush=True)
            if failed or errors:
                failed = True
                break
    finally:
        for d in nodes:
            d.stop()
    print(f"\nsummary: {totals['rounds']} rounds in {time.time() - started:.0f}s, {totals['kills']} kills "
          f"({totals['restarted']} times a monitor had given up and the daemon was started again), "
          f"{totals['checked']} files checked, corrupted {totals['corrupted']}, lost {totals['lost']}, "
          f"extra {totals['extra']}, temp files {totals['temp']} (seed {seed})")
    bad = failed or totals["corrupted"] or totals["lost"] or totals["temp"]
    if not bad and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
