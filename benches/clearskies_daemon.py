"""A `clearskies` daemon driven through its CLI, for the benchmarks and trials in benches/:
its own data directory, loopback only, a free peer port picked once (kept across restarts,
as peers remember it), no LAN broadcast. The daemons' log filter (their logs stay in their
data directory) comes from CLEARSKIES_BENCH_LOG."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_port():
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonError(RuntimeError):
    """A `clearskies` command failed."""


class Daemon:
    def __init__(self, binary, home, name=None):
        self.binary, self.home, self.name = binary, home, name or os.path.basename(home)
        os.makedirs(home, exist_ok=True)
        self.env = dict(os.environ, CLEARSKIES_HOME=home, CLEARSKIES_LISTEN_ADDRESS="127.0.0.1",
                        CLEARSKIES_LISTEN_PORT="0", CLEARSKIES_METRICS_ADDRESS="127.0.0.1:0",
                        CLEARSKIES_LAN_DISCOVERY="false",
                        CLEARSKIES_PORT_MAPPING="false", CLEARSKIES_STUN_SERVERS="off")
        self.env.pop("CLEARSKIES_LOG", None)
        if os.environ.get("CLEARSKIES_BENCH_LOG"):
            self.env["CLEARSKIES_LOG"] = os.environ["CLEARSKIES_BENCH_LOG"]
        # The peer port, fixed before the first start and kept for restarts (peers remember
        # it). Not port 0: the monitor would start a crashed worker on a new random port.
        self.port = free_port()

    def run(self, *args, check=True):
        """Runs `clearskies ARGS`; its stdout. Raises DaemonError if it fails (and `check`)."""
        env = dict(self.env, CLEARSKIES_LISTEN_PORT=str(self.port))
        r = subprocess.run([self.binary, *args], env=env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise DaemonError(f"{self.name}: clearskies {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def json(self, *args):
        return json.loads(self.run(*args, "--json"))

    def start(self):
        self.run("start")

    def stop(self):
        self.run("stop", check=False)

    def status(self):
        return self.json("status")

    def listen(self):
        return self.status()["listen"]

    def shares(self):
        return self.json("list")["shares"]

    def share(self):
        """The first (usually the only) share, or {}."""
        shares = self.shares()
        return shares[0] if shares else {}

    def pid(self, which):
        """The pid in `monitor.pid` or `worker.pid`, if any."""
        try:
            with open(os.path.join(self.home, f"{which}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def worker_kib(self, field):
        """A memory figure of the worker from /proc (VmRSS, VmHWM), in KiB."""
        with open(f"/proc/{self.pid('worker')}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def kill(self, whole):
        """SIGKILL the worker, or the monitor and the worker; the pids killed."""
        pids = [p for p in ([self.pid("monitor")] if whole else []) + [self.pid("worker")] if p]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def ensure_running(self):
        """Starts the daemon again if its monitor is gone (it gives up after 5 worker crashes
        within 60 s, by design: a service manager would start it again). Whether it did."""
        pid = self.pid("monitor")
        try:
            if pid:
                os.kill(pid, 0)
                return False
        except ProcessLookupError:
            pass
        time.sleep(0.2)
        self.start()
        return True

    def sent_bytes(self):
        """Bytes this daemon has written to peer connections (all extensions)."""
        addr = self.status()["metrics"]
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("clearskies_peer_sent_bytes_total{"))


def three_sharing(binary, work):
    """Three daemons (homes WORK/home-{a,b,c}) sharing one folder (WORK/share-{a,b,c}): a
    shares it with a multi-use code that never expires, b and c attach. Nodes and roots."""
    nodes = [Daemon(binary, os.path.join(work, f"home-{n}"), n) for n in "abc"]
    roots = [os.path.join(work, f"share-{d.name}") for d in nodes]
    for d in nodes:
        d.start()
    os.makedirs(roots[0])
    code = nodes[0].json("share", roots[0], "--multi-use", "--expires", "never")
    for d, r in zip(nodes[1:], roots[1:]):
        d.run("attach", code["access_code"], r, "--peer", f"127.0.0.1:{nodes[0].port}")
    return nodes, roots


def share_errors(nodes):
    """Every share in error on these daemons (or a daemon that does not answer), as text."""
    errors = []
    for d in nodes:
        try:
            errors += [f"{d.name}: {s.get('error')}" for s in d.shares() if s.get("status") == "error"]
        except DaemonError as e:
            errors.append(str(e))
    return errors
