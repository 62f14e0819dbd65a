"""CPU seconds and peak memory of a process and everything below it, from /proc."""

import os

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


def _status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


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

    def peak_rss_mib(self):
        """The sum of each process's peak resident set (VmHWM)."""
        total = 0
        for p in self.pids:
            try:
                total += _status_kib(p, "VmHWM")
            except OSError:
                pass
        return total / 1024
