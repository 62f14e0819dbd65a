"""Reach (issue 21) in the namespace internet of internet.py: a daemon behind a router with
NAT-PMP maps its peer port and a friend behind another NAT reaches it through the tracker;
the mapping goes when the daemon stops; a daemon behind a NAT that nothing gets through says
so in `status`, with what would fix it.

    sudo python3 tests/internet/test_reach.py [-v] [TestReach.test_1_…]

Needs what test_internet.py needs (see README.md). Exits 77 (printing why) where it cannot
run, 1 on a failure.
"""

import os
import socket
import struct
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from internet import Internet, poll, problems  # noqa: E402
from test_internet import SKIP, report  # noqa: E402

SYNC_TIMEOUT = 60


def arrived(path, expected):
    try:
        with open(path, "rb") as f:
            return f.read() == expected
    except OSError:
        return False


class TestReach(unittest.TestCase):
    """The public side (STUN, tracker, a public host `srv`) and homes: `a` (cone NAT with
    miniupnpd), `b` (cone NAT, nothing forwarded), `s` (symmetric NAT), `u` (cone NAT with
    miniupnpd speaking UPnP IGD only), `f` (cone NAT, a hostile "IGD" on its router)."""

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

    def test_2_behind_nats_without_mapping_status_says_unreachable_and_what_would_fix_it(self):
        for home, kind in ((self.b, "cone"), (self.s, "symmetric")):
            d = self.daemon(home, f"lonely-{home.name}")
            port = int(d.listen.rsplit(":", 1)[1])
            r = self.reach(d, "a verdict", lambda r: r["reachable"] is not None)
            # (No verdict while the router is still being asked.)
            self.assertEqual(r["port_mapping"]["state"], "failed", r)
            self.assertIs(r["reachable"], False, r)
            self.assertIn(kind, r["summary"], r)
            self.assertIn(f"forward TCP port {port}", r["summary"], r)
            self.assertTrue(r["public"]["udp"].startswith(home.router.ip4 + ":"), r)
            self.assertIn("reach: not reachable from outside this LAN", d.cli("status").stdout)
            self.assertEqual((self.metric(d, "clearskies_port_mapped"), self.metric(d, "clearskies_reachable")), (0, 0))
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


if __name__ == "__main__":
    why = problems()
    if why:
        print("reach: skipped: " + "; ".join(why))
        sys.exit(SKIP)
    sys.exit(report("reach", __name__))
