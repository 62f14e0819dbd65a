"""Reach (issue 21) in the namespace internet of internet.py: a daemon behind a router with
NAT-PMP maps its peer port and a friend behind another NAT reaches it through the tracker;
the mapping goes when the daemon stops; a daemon behind a NAT that maps nothing says in
`status` how far it is reachable (by hole punching behind a cone NAT, not at all behind a
symmetric one), with what would fix it; two friends behind cone NATs that map nothing
punch a hole and sync over uTP; two behind symmetric NATs do not connect, and do not
keep dialling in a storm either. See README.md for each case.

    sudo python3 tests/internet/test_reach.py [-v] [TestReach.test_1_…]

Needs what test_internet.py needs (see README.md). Exits 77 (printing why) where it cannot
run, 1 on a failure.
"""

import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from internet import PUBLIC4, Internet, poll, problems  # noqa: E402
from test_internet import SKIP, report  # noqa: E402

SYNC_TIMEOUT = 60
# Connections (TCP or UDP flows) a daemon behind a symmetric NAT may start towards its
# peers in the minute test 7 watches. What it does (see the test) comes to about 10; a
# retry storm (say a redial every second, or every address again on every tracker ping)
# comes to hundreds.
MAX_FLOWS_PER_MINUTE = 30
# Packets of those: a TCP connect that nothing answers sends 7 SYNs in its 10 s (Linux: 4
# re-sends 1 s apart, then backing off), a uTP one at most 15 (a re-send every 700 ms).
# Behind symmetric NATs there is no uTP to dial (no utp: address is advertised): 7 each.
MAX_PACKETS_PER_MINUTE = 7 * MAX_FLOWS_PER_MINUTE

# nftables counters on a router (a table of their own, before the router's filter) for
# what its LAN sends out to anyone but the STUN server and the tracker (the public
# namespace's own addresses): packets, and flows (a flow's first packet is the one whose
# conntrack entry is not confirmed yet; re-sent SYNs are not).
DIAL_COUNTERS = """
table inet dials {
    counter tcp_flows {}
    counter udp_flows {}
    counter tcp_packets {}
    counter udp_packets {}
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        iifname "lan" oifname "wan" ip daddr != { %s, %s } jump out
    }
    chain out {
        meta l4proto tcp counter name tcp_packets
        meta l4proto udp counter name udp_packets
        ct status ! confirmed meta l4proto tcp counter name tcp_flows
        ct status ! confirmed meta l4proto udp counter name udp_flows
    }
}
""" % (PUBLIC4[1], PUBLIC4[2])


def arrived(path, expected):
    try:
        with open(path, "rb") as f:
            return f.read() == expected
    except OSError:
        return False


class TestReach(unittest.TestCase):
    """The public side (STUN, tracker, a public host `srv`) and homes: `a` (cone NAT with
    miniupnpd), `b` (cone NAT, nothing forwarded), `s` (symmetric NAT), `u` (cone NAT with
    miniupnpd speaking UPnP IGD only), `f` (cone NAT, a hostile "IGD" on its router), `p`
    and `q` (cone NATs, nothing forwarded), `x` and `y` (symmetric NATs, nothing
    forwarded)."""

    @classmethod
    def setUpClass(cls):
        net = cls.net = cls.enterClassContext(Internet())
        cls.stun = "%s:%d" % net.stun()
        cls.tracker = net.tracker()
        cls.srv = net.public_host("srv")
        cls.a = net.home("a", nat="cone", upnp=True)
        cls.b = net.home("b", nat="cone")
        cls.s = net.home("s", nat="symmetric")
        cls.u = net.home("u", nat="cone", upnp=True, natpmp=False)
        cls.f = net.home("f", nat="cone")
        # Hole punching: two cone NATs that map nothing (no miniupnpd on the routers).
        cls.p = net.home("p", nat="cone")
        cls.q = net.home("q", nat="cone")
        # Two symmetric NATs that map nothing: no way through.
        cls.x = net.home("x", nat="symmetric")
        cls.y = net.home("y", nat="symmetric")
        # A friend that restarts on another port (a laptop on another network looks the same).
        cls.m = net.home("m", nat="cone")
        cls.n = net.home("n", nat="cone")

    def daemon(self, home, name, **env):
        settings = {"CLEARSKIES_STUN_SERVERS": self.stun}
        settings.update(env)
        d = self.net.daemon(home.host, name, trackers=[self.tracker], env=settings)
        self.addCleanup(d.stop)
        return d

    def reach(self, d, what, ready):
        """`status --json`'s reach once `ready(reach)` holds."""
        def check():
            r = d.json("status", "--json").get("reach")
            return r if r and ready(r) else None
        return poll(check, f"{d.name}: {what}", SYNC_TIMEOUT)

    def metric(self, d, name):
        """`name`'s value on `d`'s /metrics (asked from inside its namespace)."""
        addr = d.json("status", "--json")["metrics"]
        host, port = addr.rsplit(":", 1)
        s = self.net.socket(d.host, socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((host, int(port)))
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode())
            text = b""
            while chunk := s.recv(65536):
                text += chunk
        finally:
            s.close()
        for line in text.decode(errors="replace").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def reachable_from_outside(self, ip, port):
        s = self.net.socket(self.srv, socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((ip, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def test_1_a_router_with_nat_pmp_forwards_the_peer_port_until_the_daemon_stops(self):
        da = self.daemon(self.a, "a")
        port = int(da.listen.rsplit(":", 1)[1])
        r = self.reach(da, "a port mapping", lambda r: r["port_mapping"]["state"] in ("mapped", "failed"))
        m = r["port_mapping"]
        self.assertEqual(m["state"], "mapped", r)
        self.assertEqual((m["method"], m["gateway"]), ("nat-pmp", self.a.lan[1].compressed), r)
        self.assertIn(f"tcp:{self.a.router.ip4}:{port}", m["external"], r)
        self.assertIn(f"udp:{self.a.router.ip4}:{port}", m["external"], r)
        self.assertTrue(r["reachable"], r)
        self.assertEqual((self.metric(da, "clearskies_port_mapped"), self.metric(da, "clearskies_reachable")), (1, 1))
        status = da.cli("status").stdout
        self.assertIn("port mapping: tcp:", status)
        self.assertIn("reach: reachable from the internet", status)
        # STUN saw the router's address; the cone NAT keeps the port.
        r = self.reach(da, "a STUN answer", lambda r: (r.get("public") or {}).get("udp"))
        self.assertEqual(r["public"]["udp"], f"{self.a.router.ip4}:{port}", r)

        # B, behind a NAT that forwards nothing, finds A through the tracker and reaches it
        # at the mapped port (A is not reachable otherwise: router a drops what is not mapped).
        db = self.daemon(self.b, "b")
        ra, rb = os.path.join(self.net.workdir, "a-files"), os.path.join(self.net.workdir, "b-files")
        os.makedirs(ra)
        content = os.urandom(50_000)
        with open(os.path.join(ra, "through.bin"), "wb") as f:
            f.write(content)
        code = da.share(ra)
        db.cli("attach", code, rb, "--timeout", str(SYNC_TIMEOUT), timeout=SYNC_TIMEOUT + 30)
        poll(lambda: arrived(os.path.join(rb, "through.bin"), content), "through.bin on B", SYNC_TIMEOUT)
        peers = db.json("peers", "--json")["peers"]
        self.assertIn(f"{self.a.router.ip4}:{port}", [p["address"] for p in peers if p["state"] == "connected"], peers)

        # Stopped, A gives the mapping back: the port is closed again.
        self.assertTrue(self.reachable_from_outside(self.a.router.ip4, port))
        da.stop()
        self.assertIn("port mappings removed", da.log())
        self.assertFalse(self.reachable_from_outside(self.a.router.ip4, port))
        for d in (da, db):
            self.assertNotIn("panicked", d.log(), f"daemon {d.name} panicked")

    def test_2_behind_nats_without_mapping_status_says_how_far_it_is_reachable_and_what_would_fix_it(self):
        # A cone NAT is reachable by hole punching over uTP (at the address STUN saw: the
        # router's, the port kept); a symmetric one is not reachable at all.
        for home, kind, reachable, line in (
                (self.b, "cone", True, "reach: reachable by hole punching over uTP at "),
                (self.s, "symmetric", False, "reach: not reachable from outside this LAN: behind a symmetric NAT")):
            d = self.daemon(home, f"lonely-{home.name}")
            port = int(d.listen.rsplit(":", 1)[1])
            r = self.reach(d, "a verdict", lambda r: r["reachable"] is not None)
            # (No verdict while the router is still being asked.)
            self.assertEqual(r["port_mapping"]["state"], "failed", r)
            self.assertIs(r["reachable"], reachable, r)
            self.assertIn(f"{kind} NAT", r["summary"], r)
            self.assertIn(f"forward TCP port {port}", r["summary"], r)
            self.assertTrue(r["public"]["udp"].startswith(home.router.ip4 + ":"), r)
            if kind == "cone":
                self.assertEqual(r["public"]["nat"], "endpoint_independent", r)
                self.assertEqual(r["public"]["udp"], f"{home.router.ip4}:{port}", r)
                self.assertIn(f"hole punching over uTP at {home.router.ip4}:{port}", r["summary"], r)
            else:
                self.assertEqual(r["public"]["nat"], "address_dependent", r)
                self.assertIn("hole punching cannot pass", r["summary"], r)
            self.assertIn(line, d.cli("status").stdout)
            self.assertEqual((self.metric(d, "clearskies_port_mapped"), self.metric(d, "clearskies_reachable")),
                             (0, int(reachable)))
            # A gateway without NAT-PMP or UPnP is not asked again and again.
            self.assertLessEqual(d.log().count("cannot map the peer port"), 1, d.log())
            d.stop()

    def test_4_a_router_with_upnp_only_maps_the_port_by_upnp(self):
        d = self.daemon(self.u, "upnp")
        port = int(d.listen.rsplit(":", 1)[1])
        r = self.reach(d, "a port mapping", lambda r: r["port_mapping"]["state"] in ("mapped", "failed"))
        m = r["port_mapping"]
        self.assertEqual((m["state"], m["method"]), ("mapped", "upnp"), r)
        self.assertIn(f"tcp:{self.u.router.ip4}:{port}", m["external"], r)
        self.assertTrue(self.reachable_from_outside(self.u.router.ip4, port))
        listed = self.net.run(self.u.host, "upnpc", "-l").stdout
        self.assertIn("ClearSkies", listed)
        d.stop()
        self.assertIn("port mappings removed", d.log())
        self.assertFalse(self.reachable_from_outside(self.u.router.ip4, port))
        self.assertNotIn("ClearSkies", self.net.run(self.u.host, "upnpc", "-l").stdout)

    def fake_igd(self, home, locations, body):
        """A hostile device on `home`'s router: answers SSDP searches on the LAN with each
        of `locations` (`{device}` is its own address) and serves `body()`'s chunks to
        whoever connects to its port 5000."""
        ssdp = self.net.socket(home.router)
        ssdp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ssdp.bind(("", 1900))
        lan_ip = home.lan[1].compressed
        mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(lan_ip))
        ssdp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        http = self.net.socket(home.router, socket.AF_INET, socket.SOCK_STREAM)
        http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        http.bind((lan_ip, 5000))
        http.listen()
        self.served = 0
        for s in (ssdp, http):
            self.addCleanup(s.close)

        def answer_searches():
            while True:
                try:
                    _, sender = ssdp.recvfrom(4096)
                except OSError:
                    return
                for location in locations:
                    ssdp.sendto(("HTTP/1.1 200 OK\r\nLOCATION: %s\r\nST: urn:schemas-upnp-org:device:"
                                 "InternetGatewayDevice:1\r\n\r\n" % location.format(device=lan_ip)).encode(),
                                sender)

        def serve():
            while True:
                try:
                    conn, _ = http.accept()
                except OSError:
                    return
                self.served += 1
                try:
                    for chunk in body():
                        conn.sendall(chunk)
                except OSError:
                    pass
                finally:
                    conn.close()

        for fn in (answer_searches, serve):
            threading.Thread(target=fn, daemon=True).start()
        return lan_ip

    def test_5_a_hostile_igd_is_bounded_and_never_sends_us_elsewhere(self):
        # A public host waits for a connection that must never come: a LOCATION naming it
        # is not the device that answered.
        elsewhere = self.net.socket(self.srv, socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(elsewhere.close)
        elsewhere.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        elsewhere.bind((self.srv.ip4, 5000))
        elsewhere.listen()
        elsewhere.settimeout(0.1)

        def endless():
            yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            while True:
                yield b"1000\r\n" + b"A" * 4096 + b"\r\n"

        # It points first at the public host, then at itself, whose description never ends.
        self.fake_igd(self.f, [f"http://{self.srv.ip4}:5000/desc.xml", "http://{device}:5000/desc.xml"], endless)
        d = self.daemon(self.f, "victim")
        r = self.reach(d, "port mapping to fail", lambda r: r["port_mapping"]["state"] == "failed")
        self.assertIn("UPnP", r["port_mapping"]["error"], r)
        self.assertGreaterEqual(self.served, 1, "the device itself was asked")
        with self.assertRaises(OSError):
            elsewhere.accept()
        status = d.json("status", "--json")
        self.assertEqual(status["reach"]["port_mapping"]["state"], "failed")
        with open(f"/proc/{status['pid']}/status") as f:
            peak_kib = int(next(line for line in f if line.startswith("VmHWM")).split()[1])
        self.assertLess(peak_kib, 200 * 1024, "an endless description is read only up to its cap")
        self.assertNotIn("panicked", d.log())

    def test_3_port_mapping_and_stun_can_be_turned_off(self):
        d = self.daemon(self.a, "quiet", CLEARSKIES_PORT_MAPPING="false", CLEARSKIES_STUN_SERVERS="off")
        r = self.reach(d, "a status", lambda r: True)
        self.assertEqual(r["port_mapping"]["state"], "off", r)
        self.assertNotIn("public", r)
        self.assertIsNone(r["reachable"], r)
        self.assertIn("no STUN server set", d.cli("status").stdout)

    def sessions(self, d, count=None):
        """`peers --json`'s connected sessions of `d` (None unless there are `count`, if given)."""
        found = [p for p in d.json("peers", "--json")["peers"] if p["state"] == "connected"]
        return found if count is None or len(found) == count else None

    def test_6_two_cone_nats_without_mapping_punch_a_hole_and_sync_over_utp(self):
        # Port mapping stays on: it must simply fail (neither router speaks NAT-PMP or UPnP).
        da, db = self.daemon(self.p, "punch-a"), self.daemon(self.q, "punch-b")
        for d, home in ((da, self.p), (db, self.q)):
            port = int(d.listen.rsplit(":", 1)[1])
            r = self.reach(d, "a verdict", lambda r: r["reachable"] is not None)
            self.assertEqual(r["port_mapping"]["state"], "failed", r)
            self.assertIs(r["reachable"], True, r)
            # The cone NAT keeps the port: the address STUN saw is the router's, same port.
            self.assertEqual(r["public"]["udp"], f"{home.router.ip4}:{port}", r)
            self.assertIn(f"reachable by hole punching over uTP at {home.router.ip4}:{port} (a cone NAT)",
                          d.cli("status").stdout)
            self.assertEqual(self.metric(d, "clearskies_reachable"), 1)

        ra, rb = os.path.join(self.net.workdir, "punch-a"), os.path.join(self.net.workdir, "punch-b")
        os.makedirs(ra)
        there = os.urandom(200_000)
        with open(os.path.join(ra, "there.bin"), "wb") as f:
            f.write(there)
        code = da.share(ra)
        # No --peer: B finds A through the tracker. Neither router lets in anything
        # unsolicited: A's peer port is closed to TCP from outside.
        self.assertFalse(self.reachable_from_outside(self.p.router.ip4, int(da.listen.rsplit(":", 1)[1])))
        db.cli("attach", code, rb, "--timeout", str(SYNC_TIMEOUT), timeout=SYNC_TIMEOUT + 30)
        poll(lambda: arrived(os.path.join(rb, "there.bin"), there), "there.bin on B", SYNC_TIMEOUT)
        back = os.urandom(100_000)
        with open(os.path.join(rb, "back.bin"), "wb") as f:
            f.write(back)
        poll(lambda: arrived(os.path.join(ra, "back.bin"), back), "back.bin on A", SYNC_TIMEOUT)

        # One session, over uTP, between the two routers' public addresses (two dialled from
        # both sides at once would be one again soon).
        sa = poll(lambda: self.sessions(da, 1), "one session on A")
        sb = poll(lambda: self.sessions(db, 1), "one session on B")
        self.assertEqual([p["transport"] for p in sa], ["utp"], sa)
        self.assertEqual([p["transport"] for p in sb], ["utp"], sb)
        self.assertEqual(sb[0]["address"], f"utp:{self.p.router.ip4}:{int(da.listen.rsplit(':', 1)[1])}", sb)
        for d in (da, db):
            self.assertNotIn("panicked", d.log(), f"daemon {d.name} panicked")

    def test_8_a_peer_back_on_another_port_behind_a_cone_nat_is_reached_again_over_utp(self):
        da, db = self.daemon(self.m, "moved-a"), self.daemon(self.n, "moved-b")
        for d in (da, db):
            self.reach(d, "a punchable address", lambda r: r["reachable"] is True)
        ra, rb = os.path.join(self.net.workdir, "moved-a"), os.path.join(self.net.workdir, "moved-b")
        os.makedirs(ra)
        db.cli("attach", da.share(ra), rb, "--timeout", str(SYNC_TIMEOUT), timeout=SYNC_TIMEOUT + 30)
        poll(lambda: self.sessions(da, 1) and self.sessions(db, 1), "the first session")
        for moving, staying in ((db, da), (da, db)):
            before = moving.listen
            moving.stop()
            # It said goodbye (uTP's end is sent by the daemon, not the kernel).
            try:
                poll(lambda: self.sessions(staying, 0) == [], f"{staying.name} to see the session end", 10)
            except Exception:
                print("MOVING", moving.log(), "STAYING", staying.log(), sep="\n")
                raise
            moving.start()
            self.assertNotEqual(moving.listen, before, "a new port")
            new_port = moving.listen.rsplit(":", 1)[1]
            on_staying = poll(lambda: self.sessions(staying, 1), f"{staying.name} to reach {moving.name} again")
            self.assertEqual(on_staying[0]["transport"], "utp", on_staying)
            self.assertTrue(on_staying[0]["address"].endswith(":" + new_port), on_staying)
            poll(lambda: self.sessions(moving, 1), f"{moving.name}'s session")
        data = os.urandom(50_000)
        with open(os.path.join(ra, "after.bin"), "wb") as f:
            f.write(data)
        poll(lambda: arrived(os.path.join(rb, "after.bin"), data), "after.bin on B", SYNC_TIMEOUT)

    def dial_counters(self, home):
        """The DIAL_COUNTERS on `home`'s router (installed on first use): name -> packets."""
        if self.net.run(home.router, "nft", "list", "table", "inet", "dials", check=False).returncode != 0:
            self.net.run(home.router, "nft", "-f", "-", input=DIAL_COUNTERS)
        out = json.loads(self.net.run(home.router, "nft", "-j", "list", "counters", "table", "inet", "dials").stdout)
        return {c["counter"]["name"]: c["counter"]["packets"] for c in out["nftables"] if "counter" in c}

    def test_7_two_symmetric_nats_stay_apart_without_a_retry_storm(self):
        da, db = self.daemon(self.x, "sym-a"), self.daemon(self.y, "sym-b")
        for d in (da, db):
            r = self.reach(d, "a verdict", lambda r: r["reachable"] is not None)
            self.assertIs(r["reachable"], False, r)
            self.assertEqual(r["public"]["nat"], "address_dependent", r)
            self.assertIn("not reachable from outside this LAN: behind a symmetric NAT, which hole punching cannot "
                          "pass", d.cli("status").stdout)
            self.assertEqual(self.metric(d, "clearskies_reachable"), 0)

        ra = os.path.join(self.net.workdir, "sym-a")
        os.makedirs(ra)
        with open(os.path.join(ra, "stays.txt"), "w") as f:
            f.write("never synced")
        da.share(ra)
        keys = os.path.join(self.net.workdir, "sym-keys.json")
        with open(keys, "w") as f:
            f.write(da.cli("keys", "export", ra).stdout)
        before = {h.name: self.dial_counters(h) for h in (self.x, self.y)}
        started = time.monotonic()
        # B holds the share's keys (saved keys join at once, and dial the given peer, which
        # nothing forwards, with a backoff), so both announce the share on the tracker and
        # dial each other when it tells them; and B attaches to a second share of A's with a
        # code through the tracker, for the minute the attach looks.
        a_port = int(da.listen.rsplit(":", 1)[1])
        db.cli("attach", "--keys", keys, "--peer", f"{self.x.router.ip4}:{a_port}",
               os.path.join(self.net.workdir, "sym-b"))
        ra2 = os.path.join(self.net.workdir, "sym-a2")
        os.makedirs(ra2)
        code = da.share(ra2)
        attach = db.cli("attach", code, os.path.join(self.net.workdir, "sym-b2"), "--timeout", "60", check=False,
                        timeout=120)
        took = time.monotonic() - started
        after = {h.name: self.dial_counters(h) for h in (self.x, self.y)}

        # The attach fails, saying why, when its minute is up (not later).
        self.assertNotEqual(attach.returncode, 0, attach.stdout)
        self.assertIn("cannot connect", attach.stderr)
        self.assertIn("(unreachable)", attach.stderr)
        self.assertLess(took, 60 + 15, attach.stderr)
        # No session came up; each side started a bounded number of connections.
        for d in (da, db):
            self.assertEqual(self.sessions(d), [])
            self.assertNotIn("panicked", d.log(), f"daemon {d.name} panicked")
        for home in (self.x, self.y):
            sent = {k: after[home.name][k] - before[home.name][k] for k in after[home.name]}
            flows, packets = sent["tcp_flows"] + sent["udp_flows"], sent["tcp_packets"] + sent["udp_packets"]
            self.assertLessEqual(flows, MAX_FLOWS_PER_MINUTE * took / 60, f"{home.name} in {took:.0f} s: {sent}")
            self.assertLessEqual(packets, MAX_PACKETS_PER_MINUTE * took / 60, f"{home.name} in {took:.0f} s: {sent}")
        self.assertFalse(os.path.exists(os.path.join(self.net.workdir, "sym-b", "stays.txt")))


if __name__ == "__main__":
    why = problems()
    if why:
        print("reach: skipped: " + "; ".join(why))
        sys.exit(SKIP)
    sys.exit(report("reach", __name__))
