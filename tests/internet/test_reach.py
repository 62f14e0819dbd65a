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
import sys
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
    miniupnpd speaking UPnP IGD only)."""

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
