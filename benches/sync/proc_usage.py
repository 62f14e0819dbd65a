"""CPU seconds and memory of a process and everything below it, from /proc.

Two memory measures: the sum of each process's peak RSS (VmHWM, kept by the kernel), which
counts a page shared by two processes (the same binary's code in a monitor and its worker)
twice; and the peak PSS, sampled every 100 ms while a case runs, which splits shared pages
among the processes that map them (the usual way to compare multi-process programs)."""

import os
import threading

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children():
    """pid -> list of child pids, for every process now."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.setdefault(int(fields[1]), []).append(int(name))
    return out


def _cpu_seconds(pid):
    """User + system CPU of `pid`, and of its children it has waited for."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def _status_kib_file(path, field):
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _status_kib(pid, field):
    return _status_kib_file(f"/proc/{pid}/status", field)


class ProcessTree:
    """The processes `roots` and their descendants, as they are now."""

    def __init__(self, *roots):
        children = _children()
        self.pids = []
        todo = [p for p in roots if p]
        while todo:
            p = todo.pop()
            if p not in self.pids:
                self.pids.append(p)
                todo.extend(children.get(p, []))

    def cpu_seconds(self):
        total = 0.0
        for p in self.pids:
            try:
                total += _cpu_seconds(p)
            except OSError:
                pass
        return total

    def pss_mib(self):
        """The sum of each process's proportional set size now."""
        total = 0
        for p in self.pids:
            try:
                total += _status_kib_file(f"/proc/{p}/smaps_rollup", "Pss")
            except OSError:
                pass
        return total / 1024

    def peak_rss_mib(self):
        """The sum of each process's peak resident set (VmHWM)."""
        total = 0
        for p in self.pids:
            try:
                total += _status_kib(p, "VmHWM")
            except OSError:
                pass
        return total / 1024


class PeakPss:
    """Samples the summed PSS of the trees `make_trees()` returns (called again each time,
    so restarted or new processes count) every 100 ms until stopped; `peaks` per tree."""

    def __init__(self, make_trees):
        self.make_trees = make_trees
        self.peaks = None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            now = [t.pss_mib() for t in self.make_trees()]
            self.peaks = now if self.peaks is None else [max(a, b) for a, b in zip(self.peaks, now)]
            if self.stop_event.wait(0.1):
                return

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        return [round(p, 1) for p in self.peaks or []]
