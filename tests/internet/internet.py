"""A small internet of Linux network namespaces, for testing how ClearSkies daemons reach each
other from behind home routers (issue 21). Standard library only; needs root, iproute2 and
nftables (plus coturn, miniupnpd-nftables, miniupnpc and natpmpc for what uses them).

    with Internet() as net:
        net.stun()                                  # coturn on the public side
        tracker = net.tracker()                     # `clearskies tracker`, "IP:PORT"
        a = net.home("a", nat="cone", upnp=True)    # a LAN behind a NATting router
        b = net.home("b", nat="symmetric")
        da = net.daemon(a.host, "a", trackers=[tracker])
        ...                                         # everything is torn down on leaving

The public side is the namespace `net.public`: a bridge (the "internet", one link) that
holds the public addresses of the STUN server, the tracker, the routers and the public hosts.
Each home is a router namespace (its WAN on that bridge, its LAN a bridge of its own) and
one or more home-host namespaces on the LAN, 192.168.N.0/24. See README.md for the NAT
behaviours and why the public IPv4 range is not a documentation range.

Every namespace is named after this process's pid, so parallel runs never collide; leaving
the `with` (normally, by an exception, Ctrl-C or SIGTERM) stops the daemons, kills every
process in the namespaces and deletes them. `python3 internet.py clean` deletes what a run
killed with SIGKILL left behind.
"""

import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

# The public internet. Not an RFC 5737 documentation range: miniupnpd (and miniupnpc and
# natpmpc) call those reserved, and miniupnpd refuses to map any port when its WAN address is
# in one ("Port forwarding is impossible"). 11.0.0.0/8 is not announced on the real internet,
# and nothing here is routed outside the namespaces anyway.
PUBLIC4 = ipaddress.ip_network("11.0.0.0/24")
PUBLIC6 = ipaddress.ip_network("2001:db8:1::/64")
# The two-namespace IPv6-only links.
LINK6 = ipaddress.ip_network("2001:db8:6::/64")
# Public addresses .1 and .2 (and ::1, ::2) are the public namespace's own (the STUN server
# needs two for RFC 5780); routers and public hosts are numbered from here.
FIRST_PUBLIC_HOST = 10
TRACKER_PORT = 49200
STUN_PORT = 3478
NAT_KINDS = ("cone", "symmetric")
# How long a wait for something that should take a second or two may take.
DEADLINE = 30
CLONE_NEWNET = 0x40000000
REQUIRED_TOOLS = ("ip", "nft", "turnserver", "miniupnpd", "upnpc", "natpmpc", "ping")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Timeout(AssertionError):
    pass


def poll(fn, what, timeout=DEADLINE, interval=0.05):
    """Calls `fn` until it returns something truthy, and returns that; raises Timeout after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"waited {timeout}s for {what}")
        time.sleep(interval)


def clearskies_bin():
    """CLEARSKIES_BIN, else the debug build in $CARGO_TARGET_DIR (~/.cache/clearskies-target)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/clearskies-target")
    return os.environ.get("CLEARSKIES_BIN") or os.path.join(target, "debug", "clearskies")


def problems():
    """Why an Internet cannot be built here (empty if it can): not root, a tool missing,
    network namespaces not working, no clearskies binary."""
    if os.geteuid() != 0:
        return ["not root (network namespaces and nftables need root)"]
    found = [t for t in REQUIRED_TOOLS if shutil.which(t)]
    why = [f"{t} missing" for t in REQUIRED_TOOLS if t not in found]
    if not os.path.exists(clearskies_bin()):
        why.append(f"no clearskies binary at {clearskies_bin()} (build it, or set CLEARSKIES_BIN)")
    if "ip" in found:
        probe = f"csi{os.getpid()}-probe"
        p = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if p.returncode != 0:
            why.append(f"`ip netns add` does not work: {p.stderr.strip()}")
        else:
            subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return why


class Host:
    """One network namespace. `ip4`/`ip6`: its address (the public one for a router, the LAN
    one for a home host); `name` is for messages."""

    def __init__(self, name, ns, ip4=None, ip6=None):
        self.name, self.ns, self.ip4, self.ip6 = name, ns, ip4, ip6

    def __repr__(self):
        return f"<Host {self.name} ({self.ns}) {self.ip4 or ''} {self.ip6 or ''}>"


class Process:
    """A process started with Internet.spawn: its output goes to `log`; stopped at teardown."""

    def __init__(self, name, popen, log_path):
        self.name, self.popen, self.log = name, popen, log_path

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, what=None, timeout=DEADLINE):
        """Waits until the output matches the regular expression `pattern`; returns the match.
        Fails at once if the process exits first."""

        def seen():
            m = re.search(pattern, self.text())
            if not m and self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}):\n{self.text()[-3000:]}")
            return m

        return poll(seen, what or f"{self.name} to print {pattern!r}", timeout)

    def stop(self):
        """SIGTERM to its process group, SIGKILL after 5 s."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass


class Home:
    """A home LAN: `router` (NAT `nat`, optionally miniupnpd) and `hosts` (`host` is the
    first)."""

    def __init__(self, net, name, nat, router, hosts, lan):
        self.net, self.name, self.nat, self.router, self.hosts, self.lan = net, name, nat, router, hosts, lan
        self.upnp = None

    @property
    def host(self):
        return self.hosts[0]

    def forward(self, proto, port, host=None, to_port=None):
        """A manual port forward on the router, as a router's web page makes one: `proto`
        ("tcp" or "udp") `port` on its public address to `host` (default: the first) at
        `to_port` (default: the same)."""
        host = host or self.host
        to_port = to_port or port
        nft = ["nft", "add", "rule", "inet", "router"]
        self.net.run(self.router, *nft, "port_forwards_nat", "iifname", "wan", proto, "dport", str(port),
                     "dnat", "ip", "to", f"{host.ip4}:{to_port}")
        self.net.run(self.router, *nft, "port_forwards", "ip", "daddr", host.ip4, proto, "dport", str(to_port),
                     "accept")


class Daemon:
    """A clearskies daemon in a namespace, with its own data directory (CLEARSKIES_HOME, also
    HOME) and settings as tests/util.rs gives them, except that it listens on the default
    address (every interface of its namespace), on `port` (0: one the OS picks), and finds
    peers through `trackers` (LAN discovery off). `env` adds or overrides settings."""

    def __init__(self, net, host, name, port=0, trackers=(), env=None):
        self.net, self.host, self.name = net, host, name
        self.home = os.path.join(net.workdir, f"daemon-{name}")
        os.makedirs(self.home)
        e = {k: v for k, v in os.environ.items() if not k.startswith("CLEARSKIES_")}
        e.update({
            "HOME": self.home,
            "CLEARSKIES_HOME": self.home,
            "CLEARSKIES_LISTEN_PORT": str(port),
            "CLEARSKIES_METRICS_ADDRESS": "127.0.0.1:0",
            "CLEARSKIES_LAN_DISCOVERY": "false",
            "CLEARSKIES_TRACKERS": ",".join(trackers),
            "CLEARSKIES_DEVICE_NAME": f"internet-{name}",
            # No public STUN server (names would not even resolve in here); tests that
            # want STUN name the internet's own (`Internet.stun`).
            "CLEARSKIES_STUN_SERVERS": "off",
        })
        if os.environ.get("CLEARSKIES_TEST_LOG"):
            e["CLEARSKIES_LOG"] = os.environ["CLEARSKIES_TEST_LOG"]
        e.update(env or {})
        self.env = e
        self.started = False
        self.listen = None

    def cli(self, *args, check=True, timeout=60):
        """`clearskies ARGS…` for this daemon, run in its namespace."""
        p = self.net.run(self.host, clearskies_bin(), *args, env=self.env, check=False, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"clearskies {' '.join(args)} ({self.name}) exited {p.returncode}:\n"
                                 f"{p.stdout}\n{p.stderr}\n{self.log()[-4000:]}")
        return p

    def json(self, *args):
        """A `--json` command's output (`status` exits 1 when a share is in error: not a failure)."""
        p = self.cli(*args, check=False)
        if p.returncode not in (0, 1):
            raise AssertionError(f"clearskies {' '.join(args)} ({self.name}) exited {p.returncode}: {p.stderr}")
        return json.loads(p.stdout)

    def start(self):
        self.cli("start")
        self.started = True
        self.listen = poll(lambda: self.json("status", "--json").get("listen"), f"daemon {self.name} to listen")
        return self

    def stop(self):
        if self.started:
            self.started = False
            self.cli("stop", check=False)

    def share(self, path, mode="read-write"):
        """Shares `path` and returns an access code for it."""
        return self.json("share", path, "--mode", mode, "--json")["access_code"]

    def log(self):
        try:
            with open(os.path.join(self.home, "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Internet:
    """The namespaces, addresses and processes of one test internet (a context manager)."""

    def __init__(self):
        self.prefix = f"csi{os.getpid()}"
        self.workdir = None
        self.namespaces = []  # created (or being created), deleted at teardown
        self.processes = []
        self.daemons = []
        self.names = {"public"}
        self.homes = 0
        self.next_public = FIRST_PUBLIC_HOST
        self.next_link = 0
        self.public = None
        self._stun = None
        self._old_signals = {}
        self._closed = False

    # Set-up and teardown

    def __enter__(self):
        atexit.register(self.close)
        # SIGTERM and SIGHUP become SystemExit, so that teardown runs (Ctrl-C already raises).
        try:
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) == signal.SIG_DFL:
                    self._old_signals[sig] = signal.signal(sig, _exit_on_signal)
        except ValueError:  # not the main thread: leave signals alone
            pass
        try:
            self.workdir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
            self._remove_leftovers()
            self._build_public()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stops the daemons, kills every process in the namespaces, deletes them. Idempotent;
        each step runs even if one before it failed."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for d in self.daemons:
            _best_effort(d.stop)
        for p in self.processes:
            _best_effort(p.stop)
        for ns in reversed(self.namespaces):
            _best_effort(lambda: _kill_namespace(ns))
        for sig, old in self._old_signals.items():
            signal.signal(sig, old)
        if self.workdir and not os.environ.get("KEEP_INTERNET_DIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir:
            log(f"internet: logs and daemon homes kept in {self.workdir}")

    def _remove_leftovers(self):
        """Namespaces with this run's prefix can only be a dead run's (same pid, reused)."""
        for ns in _namespaces():
            if ns.startswith(self.prefix + "-"):
                _kill_namespace(ns)

    def _namespace(self, suffix):
        ns = f"{self.prefix}-{suffix}"
        self.namespaces.append(ns)
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # Bridged frames are not to pass through this namespace's IP firewall (br_netfilter).
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            if os.path.exists(f"/proc/sys/net/bridge/{key}"):
                _sysctl(ns, f"net/bridge/{key}", "0")
        return ns

    def _name(self, name):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name):
            raise ValueError(f"names are 1-8 lowercase letters and digits, starting with a letter: {name!r}")
        if name in self.names:
            raise ValueError(f"{name!r} is taken")
        self.names.add(name)

    def _build_public(self):
        ns = self._namespace("public")
        _ip("-n", ns, "link", "add", "sw", "type", "bridge")
        _ip("-n", ns, "link", "set", "sw", "up")
        for i in (1, 2):
            _ip("-n", ns, "addr", "add", f"{PUBLIC4[i]}/{PUBLIC4.prefixlen}", "dev", "sw")
            _ip("-n", ns, "addr", "add", f"{PUBLIC6[i]}/{PUBLIC6.prefixlen}", "dev", "sw", "nodad")
        self.public = Host("public", ns, str(PUBLIC4[1]), str(PUBLIC6[1]))

    def _plug_into_public(self, ns, ifname, port_name):
        """A veth from `ns` (as `ifname`) to the public bridge, with the next public address."""
        n = self.next_public
        self.next_public += 1
        _ip("-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port_name, "netns", self.public.ns)
        _ip("-n", self.public.ns, "link", "set", port_name, "master", "sw", "up")
        ip4, ip6 = str(PUBLIC4[n]), str(PUBLIC6[n])
        _ip("-n", ns, "addr", "add", f"{ip4}/{PUBLIC4.prefixlen}", "dev", ifname)
        _ip("-n", ns, "addr", "add", f"{ip6}/{PUBLIC6.prefixlen}", "dev", ifname, "nodad")
        _ip("-n", ns, "link", "set", ifname, "up")
        return ip4, ip6

    # Building

    def public_host(self, name):
        """A host on the public side with its own public addresses (IPv4 and IPv6)."""
        self._name(name)
        ns = self._namespace(name)
        ip4, ip6 = self._plug_into_public(ns, "eth0", f"p-{name}")
        return Host(name, ns, ip4, ip6)

    def home(self, name, nat="cone", upnp=False, hosts=1, natpmp=True):
        """A home: a router NATting LAN 192.168.N.0/24 onto its public address, and `hosts`
        hosts on that LAN (192.168.N.2, .3, …), IPv4 only.

        `nat`: "cone" (port-preserving masquerade: endpoint-independent mapping,
        address-and-port-dependent filtering) or "symmetric" (a random external port for each
        destination). The router drops unsolicited packets from the WAN, as home routers do,
        and forwards only what `Home.forward` or, with `upnp`, miniupnpd (UPnP IGD and NAT-PMP,
        secure mode; NAT-PMP off with `natpmp=False`) maps."""
        if nat not in NAT_KINDS:
            raise ValueError(f"nat is one of {NAT_KINDS}, not {nat!r}")
        self._name(name)
        self.homes += 1
        lan = ipaddress.ip_network(f"192.168.{self.homes}.0/24")
        rns = self._namespace(f"{name}-router")
        ip4, ip6 = self._plug_into_public(rns, "wan", f"r-{name}")
        _ip("-n", rns, "route", "add", "default", "via", str(PUBLIC4[1]))
        _ip("-n", rns, "link", "add", "lan", "type", "bridge", "mcast_snooping", "0")
        _ip("-n", rns, "addr", "add", f"{lan[1]}/{lan.prefixlen}", "dev", "lan")
        _ip("-n", rns, "link", "set", "lan", "up")
        _sysctl(rns, "net/ipv4/ip_forward", "1")
        self.run(rns, "nft", "-f", "-", input=_router_rules(nat, upnp))
        router = Host(f"{name}.router", rns, ip4, ip6)
        members = []
        for i in range(1, hosts + 1):
            hns = self._namespace(f"{name}-{i}")
            _ip("-n", hns, "link", "add", "eth0", "type", "veth", "peer", "name", f"h{i}", "netns", rns)
            _ip("-n", rns, "link", "set", f"h{i}", "master", "lan", "up")
            _ip("-n", hns, "addr", "add", f"{lan[i + 1]}/{lan.prefixlen}", "dev", "eth0")
            _ip("-n", hns, "link", "set", "eth0", "up")
            _ip("-n", hns, "route", "add", "default", "via", str(lan[1]))
            members.append(Host(f"{name}.{i}", hns, str(lan[i + 1])))
        home = Home(self, name, nat, router, members, lan)
        if upnp:
            home.upnp = self._miniupnpd(home, natpmp)
        return home

    def _miniupnpd(self, home, natpmp=True):
        """Debian's miniupnpd (nftables backend) on the router: UPnP IGD and NAT-PMP for the
        LAN, in secure mode (a host maps ports to itself only), its rules in the router's
        table (chains `miniupnpd`, `prerouting_miniupnpd`, `postrouting_miniupnpd`, which the
        router's base chains jump to)."""
        d = os.path.join(self.workdir, f"miniupnpd-{home.name}")
        os.makedirs(d)
        conf = os.path.join(d, "miniupnpd.conf")
        with open(conf, "w") as f:
            f.write(
                "ext_ifname=wan\n"
                "listening_ip=lan\n"
                "enable_upnp=yes\n"
                f"enable_natpmp={'yes' if natpmp else 'no'}\n"
                "secure_mode=yes\n"
                "upnp_table_name=router\n"
                "upnp_nat_table_name=router\n"
                f"uuid={_uuid()}\n"
                f"allow 1024-65535 {home.lan} 1024-65535\n"
                "deny 0-65535 0.0.0.0/0 0-65535\n")
        # -d: in the foreground, logging to stderr; -4: IPv4 only; its own pid file (the
        # default, /run/miniupnpd.pid, would make a second router's miniupnpd refuse to start).
        p = self.spawn(home.router, "miniupnpd", "-d", "-4", "-f", conf, "-P", os.path.join(d, "pid"),
                       name=f"miniupnpd ({home.name})")
        if natpmp:
            p.wait_for(r"Listening for NAT-PMP/PCP traffic on port 5351")
        p.wait_for(r"HTTP listening on port \d+")
        return p

    def ipv6_link(self, a, b):
        """Two namespaces joined by one veth that has only IPv6 addresses (2001:db8:6::/64;
        no IPv4 at all). Returns their two Hosts."""
        self._name(a)
        self._name(b)
        ans, bns = self._namespace(a), self._namespace(b)
        _ip("-n", ans, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", bns)
        hosts = []
        for name, ns in ((a, ans), (b, bns)):
            self.next_link += 1
            ip6 = str(LINK6[self.next_link])
            _ip("-n", ns, "addr", "add", f"{ip6}/{LINK6.prefixlen}", "dev", "eth0", "nodad")
            _ip("-n", ns, "link", "set", "eth0", "up")
            hosts.append(Host(name, ns, ip6=ip6))
        return tuple(hosts)

    # Running things

    def run(self, host, *cmd, check=True, timeout=60, input=None, env=None):
        """Runs `cmd` in `host`'s namespace (a Host or a namespace name) to completion."""
        ns = host.ns if isinstance(host, Host) else host
        p = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"in {ns}: {' '.join(cmd)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    def spawn(self, host, *cmd, env=None, log=None, name=None):
        """Starts `cmd` in `host`'s namespace, in its own process group, output (stdout and
        stderr) to `log` (default: a file in the work directory). Stopped at teardown."""
        name = name or os.path.basename(cmd[0])
        safe = re.sub(r"[^\w.-]", "_", name)
        log = log or os.path.join(self.workdir, f"{len(self.processes):02d}-{safe}.log")
        with open(log, "ab") as out:
            popen = subprocess.Popen(["ip", "netns", "exec", host.ns, *cmd], stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        p = Process(name, popen, log)
        self.processes.append(p)
        return p

    def addr_of(self, host):
        """The host's address: IPv4 if it has one (public for a router), else IPv6."""
        return host.ip4 or host.ip6

    def socket(self, host, family=socket.AF_INET, type=socket.SOCK_DGRAM):
        """A socket in `host`'s namespace, made in this process (a socket stays in the
        namespace it was made in): for probing the network without helper processes."""
        with _inside(host.ns):
            return socket.socket(family, type)

    def daemon(self, host, name, port=0, trackers=(), env=None):
        """A clearskies daemon started in `host`'s namespace (see Daemon); stopped at teardown."""
        d = Daemon(self, host, name, port, trackers, env)
        self.daemons.append(d)
        return d.start()

    def tracker(self, host=None, port=TRACKER_PORT):
        """`clearskies tracker` on `host` (default: the public namespace), on IPv6 and IPv4;
        returns its IPv4 "IP:PORT"."""
        host = host or self.public
        p = self.spawn(host, clearskies_bin(), "tracker", "--listen", f"[::]:{port}", name="tracker")
        p.wait_for(r"tracker listening on")
        return f"{host.ip4}:{port}"

    def stun(self):
        """coturn as a STUN-only server in the public namespace, port 3478, on both public
        IPv4 addresses (so it answers RFC 5780 NAT behaviour discovery: OTHER-ADDRESS is the
        second address, port 3479) and on IPv6. Returns (IPv4 address, port)."""
        if self._stun:
            return self._stun
        d = os.path.join(self.workdir, "coturn")
        os.makedirs(d)
        pub = self.public
        self.spawn(pub, "turnserver", "-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls",
                   "--listening-ip", str(PUBLIC4[1]), "--listening-ip", str(PUBLIC4[2]),
                   "--listening-ip", str(PUBLIC6[1]), "--listening-port", str(STUN_PORT),
                   "--log-file", "stdout", "--pidfile", os.path.join(d, "pid"), "--userdb", os.path.join(d, "turndb"),
                   name="coturn")
        server = (pub.ip4, STUN_PORT)
        probe = self.socket(pub)
        try:
            poll(lambda: _stun_answers(probe, server), "coturn to answer STUN")
        finally:
            probe.close()
        self._stun = server
        return server


def _router_rules(nat, upnp):
    """The router's nftables table: NAT onto the WAN address, a stateful firewall that drops
    unsolicited packets from the WAN (to the router and to the LAN), port forwards (manual
    ones in `port_forwards`/`port_forwards_nat`, miniupnpd's in its own chains)."""
    masquerade = "masquerade fully-random" if nat == "symmetric" else "masquerade"
    upnp_filter = "jump miniupnpd" if upnp else ""
    upnp_pre = "jump prerouting_miniupnpd" if upnp else ""
    upnp_post = "jump postrouting_miniupnpd" if upnp else ""
    upnp_chains = "chain miniupnpd {}\nchain prerouting_miniupnpd {}\nchain postrouting_miniupnpd {}" if upnp else ""
    return f"""
table inet router {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan" oifname "wan" accept
        jump port_forwards
        {upnp_filter}
    }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        jump port_forwards_nat
        {upnp_pre}
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        {upnp_post}
        meta nfproto ipv4 oifname "wan" {masquerade}
    }}
    chain port_forwards {{}}
    chain port_forwards_nat {{}}
    {upnp_chains}
}}
"""


def stun_binding(sock, server, timeout=5.0):
    """A STUN Binding request (RFC 5389) from the UDP socket `sock` to `server` (ip, port),
    resent every half second. Returns {"mapped": (ip, port), "other": (ip, port) or None}
    (OTHER-ADDRESS: the server's second address, for RFC 5780 behaviour discovery)."""
    cookie = 0x2112A442
    txid = os.urandom(12)
    request = struct.pack("!HHI12s", 0x0001, 0, cookie, txid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(request, server)
        sock.settimeout(0.5)
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        kind, length, got_cookie, got_txid = struct.unpack("!HHI12s", data[:20])
        if kind != 0x0101 or got_cookie != cookie or got_txid != txid:
            continue
        attrs, i = {}, 20
        while i + 4 <= 20 + length:
            t, n = struct.unpack("!HH", data[i:i + 4])
            attrs[t] = data[i + 4:i + 4 + n]
            i += 4 + n + (-n % 4)
        mapped = _xor_address(attrs[0x0020], txid) if 0x0020 in attrs else _address(attrs[0x0001])
        other = _address(attrs[0x802C]) if 0x802C in attrs else None
        return {"mapped": mapped, "other": other}
    raise Timeout(f"no STUN answer from {server} in {timeout}s")


def _address(value):
    family, port = struct.unpack("!xBH", value[:4])
    raw = value[4:8] if family == 1 else value[4:20]
    return socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, raw), port


def _xor_address(value, txid):
    family, port = struct.unpack("!xBH", value[:4])
    key = struct.pack("!I", 0x2112A442) + txid
    raw = bytes(a ^ b for a, b in zip(value[4:], key))
    return _address(struct.pack("!xBH", family, port ^ 0x2112) + raw)


def _stun_answers(sock, server):
    try:
        return stun_binding(sock, server, timeout=0.5)
    except Timeout:
        return None


def _ip(*args):
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")


def _namespaces():
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _kill_namespace(ns):
    """SIGKILLs every process still in the namespace, then deletes it."""
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for pid in p.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@contextlib.contextmanager
def _inside(ns):
    """This thread in namespace `ns` for the block: sockets made and /proc/sys/net files
    opened meanwhile are that namespace's."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _sysctl(ns, key, value):
    """Sets /proc/sys/KEY in namespace `ns` (procps' sysctl may not be installed)."""
    with _inside(ns), open(f"/proc/sys/{key}", "w") as f:
        f.write(value)


def _uuid():
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _best_effort(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - teardown goes on
        log(f"internet: teardown: {e}")


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def _clean():
    """Deletes the namespaces (killing their processes) and work directories of runs that
    are no longer alive."""
    def dead(name):
        m = re.match(r"csi(\d+)-", name)
        return m and not os.path.exists(f"/proc/{m.group(1)}")

    for ns in filter(dead, _namespaces()):
        log(f"deleting namespace {ns}")
        _kill_namespace(ns)
    tmp = tempfile.gettempdir()
    for d in filter(dead, os.listdir(tmp)):
        log(f"deleting {os.path.join(tmp, d)}")
        shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)


def _demo():
    """Builds a small internet and waits for Ctrl-C, for exploring it by hand."""
    with Internet() as net:
        stun = net.stun()
        tracker = net.tracker()
        homes = [net.home("a", nat="cone", upnp=True), net.home("b", nat="symmetric")]
        print(f"STUN {stun[0]}:{stun[1]}, tracker {tracker} in {net.public.ns} (public {PUBLIC4}, {PUBLIC6})")
        for h in homes:
            print(f"home {h.name} ({h.nat}{', UPnP/NAT-PMP' if h.upnp else ''}): router {h.router.ns} "
                  f"public {h.router.ip4}, LAN {h.lan}; host {h.host.ns} {h.host.ip4}")
        print(f"for example: ip netns exec {homes[0].host.ns} bash; logs in {net.workdir}. Ctrl-C ends it.")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    commands = {"clean": _clean, "demo": _demo}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} clean|demo")
    why = problems() if sys.argv[1] == "demo" else []
    if why:
        sys.exit("cannot build an internet here: " + "; ".join(why))
    commands[sys.argv[1]]()
