"""The namespace internet of internet.py is real: NAT, filtering, UPnP/NAT-PMP, STUN, IPv6,
and two clearskies daemons behind two home routers syncing through a tracker.

    sudo python3 tests/internet/test_internet.py [-v] [TestInternet.test_3_…]

Needs root, a built binary (CLEARSKIES_BIN, or $CARGO_TARGET_DIR/debug/clearskies) and
Debian's iproute2 nftables coturn miniupnpd-nftables miniupnpc natpmpc iputils-ping. Exits 77
(printing why) where it cannot run, 1 on a failure. See README.md.
"""

import os
import socket
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from internet import Internet, PUBLIC4, poll, problems, stun_binding  # noqa: E402

# Exit status for "cannot run here" (automake's convention for a skipped test).
SKIP = 77
SYNC_TIMEOUT = 60


class TestInternet(unittest.TestCase):
    """One internet for every step: the public side (STUN, tracker, a public host `srv`)
    and three homes: `a` (cone NAT, miniupnpd), `b` (symmetric NAT), `c` (cone NAT, two
    hosts)."""

    @classmethod
    def setUpClass(cls):
        net = cls.net = cls.enterClassContext(Internet())
        cls.stun = net.stun()
        cls.tracker = net.tracker()
        cls.srv = net.public_host("srv")
        cls.a = net.home("a", nat="cone", upnp=True)
        cls.b = net.home("b", nat="symmetric")
        cls.c = net.home("c", nat="cone", hosts=2)
        # Two public addresses to be seen from: the public namespace has two.
        cls.pub1, cls.pub2 = str(PUBLIC4[1]), str(PUBLIC4[2])

    # Helpers

    def sock(self, host, family=socket.AF_INET, kind=socket.SOCK_DGRAM, bind=None):
        """A socket in `host`'s namespace, closed after the test; bound to `bind`
        ((address, port)) if given."""
        s = self.net.socket(host, family, kind)
        self.addCleanup(s.close)
        s.settimeout(5)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if bind:
            s.bind(bind)
        return s

    def listener(self, host, address, port, family=socket.AF_INET):
        s = self.sock(host, family, socket.SOCK_STREAM, (address, port))
        s.listen()
        return s

    def seen_from(self, out, destination):
        """Sends a datagram from the UDP socket `out` to the bound UDP socket `destination`:
        the source address and port it arrives with."""
        out.sendto(b"hello", destination.getsockname())
        data, source = destination.recvfrom(100)
        self.assertEqual(data, b"hello")
        return source

    # Steps

    def test_1_home_hosts_reach_the_public_side_from_their_routers_address(self):
        for home in (self.a, self.b, self.c):
            echo = self.sock(self.net.public, bind=(self.pub1, 5001))
            source = self.seen_from(self.sock(home.host, bind=("0.0.0.0", 40100)), echo)
            self.assertEqual(source[0], self.net.addr_of(home.router), f"UDP from {home.name}")
            server = self.listener(self.net.public, self.pub1, 5002)
            client = self.sock(home.host, kind=socket.SOCK_STREAM)
            client.connect((self.pub1, 5002))
            conn, peer = server.accept()
            conn.close()
            self.assertEqual(peer[0], self.net.addr_of(home.router), f"TCP from {home.name}")
            echo.close()
            server.close()
        # Two hosts of one LAN talk directly, not through the NAT.
        first, second = self.c.hosts
        echo = self.sock(first, bind=(first.ip4, 5004))
        self.assertEqual(self.seen_from(self.sock(second), echo)[0], second.ip4)
        # The public side is dual-stack: a public host reaches the public namespace over IPv6.
        server = self.listener(self.net.public, self.net.public.ip6, 5003, socket.AF_INET6)
        client = self.sock(self.srv, socket.AF_INET6, socket.SOCK_STREAM)
        client.connect((self.net.public.ip6, 5003))
        _, peer = server.accept()
        self.assertEqual(peer[0], self.srv.ip6)

    def test_2_cone_keeps_one_external_port_symmetric_makes_one_per_destination(self):
        d1 = self.sock(self.net.public, bind=(self.pub1, 5011))
        d2 = self.sock(self.net.public, bind=(self.pub2, 5011))
        d3 = self.sock(self.srv, bind=(self.srv.ip4, 5012))
        # Cone: one local port, three destinations (two addresses, two hosts): one external
        # port, the local one (the masquerade keeps it when it is free).
        out = self.sock(self.a.host, bind=("0.0.0.0", 40200))
        seen = {self.seen_from(out, d) for d in (d1, d2, d3)}
        self.assertEqual(seen, {(self.a.router.ip4, 40200)})
        # Symmetric: a new random external port for each destination; the same one again
        # for a destination already sent to.
        out = self.sock(self.b.host, bind=("0.0.0.0", 40200))
        ports = [self.seen_from(out, d)[1] for d in (d1, d2, d3)]
        self.assertEqual(len(set(ports)), 3, f"external ports {ports}")
        self.assertEqual(self.seen_from(out, d1)[1], ports[0])

    def test_3_cone_filtering_is_port_restricted(self):
        h = self.sock(self.c.host, bind=("0.0.0.0", 40300))
        y = self.sock(self.net.public, bind=(self.pub1, 5021))
        z = self.sock(self.net.public, bind=(self.pub1, 5022))
        other = self.sock(self.net.public, bind=(self.pub2, 5021))
        mapped = self.seen_from(h, y)
        # Unsolicited: from the other address, and from the same address's other port.
        other.sendto(b"from another address", mapped)
        z.sendto(b"from another port", mapped)
        # Then from where h sent to: delivered. Had either unsolicited one been let through,
        # it would have arrived first (same path, in order).
        y.sendto(b"reply", mapped)
        self.assertEqual(h.recvfrom(100), (b"reply", (self.pub1, 5021)))
        # The hole punch: h sends to z first, then z's datagrams reach h, and from the same
        # external port (the unsolicited ones left no state that would change the mapping).
        self.assertEqual(self.seen_from(h, z), mapped)
        z.sendto(b"punched", mapped)
        self.assertEqual(h.recvfrom(100), (b"punched", (self.pub1, 5022)))

    def test_4_upnp_and_nat_pmp_map_ports_on_the_router(self):
        a, net = self.a, self.net
        out = net.run(a.host, "upnpc", "-e", "test", "-a", a.host.ip4, "40000", "40000", "TCP").stdout
        self.assertIn(f"external {a.router.ip4}:40000 TCP is redirected to internal {a.host.ip4}:40000", out)
        server = self.listener(a.host, "0.0.0.0", 40000)
        client = self.sock(self.srv, kind=socket.SOCK_STREAM)
        client.connect((a.router.ip4, 40000))
        conn, peer = server.accept()
        self.addCleanup(conn.close)
        self.assertEqual(peer[0], self.srv.ip4, "a port forward does not hide the source")
        client.sendall(b"through the mapping")
        self.assertEqual(conn.recv(100), b"through the mapping")
        # NAT-PMP, UDP.
        out = net.run(a.host, "natpmpc", "-a", "40001", "40001", "udp", "60").stdout
        self.assertIn("Mapped public port 40001 protocol UDP to local port 40001", out)
        h = self.sock(a.host, bind=("0.0.0.0", 40001))
        self.sock(self.srv).sendto(b"via NAT-PMP", (a.router.ip4, 40001))
        self.assertEqual(h.recvfrom(100)[0], b"via NAT-PMP")
        # Deleted: the rules are gone and a new connection is not let in.
        net.run(a.host, "upnpc", "-d", "40000", "TCP")
        net.run(a.host, "natpmpc", "-a", "40001", "40001", "udp", "0")
        rules = net.run(a.router, "nft", "list", "chain", "inet", "router", "prerouting_miniupnpd").stdout
        self.assertNotIn("dport 40000", rules)
        self.assertNotIn("dport 40001", rules)
        late = self.sock(self.srv, kind=socket.SOCK_STREAM)
        late.settimeout(1)
        with self.assertRaises(OSError):
            late.connect((a.router.ip4, 40000))

    def test_5_coturn_tells_a_home_host_its_public_address(self):
        # Cone: the mapped address is the router's, at the local port; RFC 5780 is on (the
        # server names its other address).
        h = self.sock(self.c.host, bind=("0.0.0.0", 40500))
        answer = stun_binding(h, self.stun)
        self.assertEqual(answer["mapped"], (self.c.router.ip4, 40500))
        self.assertEqual(answer["other"], (self.pub2, self.stun[1] + 1))
        # Symmetric: the router's address, the port its NAT picked for that server.
        s = self.sock(self.b.host, bind=("0.0.0.0", 40500))
        answer = stun_binding(s, self.stun)
        echo = self.sock(self.net.public, bind=(self.pub1, 5051))
        self.assertEqual(answer["mapped"][0], self.b.router.ip4)
        self.assertNotEqual(answer["mapped"], self.seen_from(s, echo))

    def test_6_an_ipv6_only_link(self):
        x, y = self.net.ipv6_link("v6x", "v6y")
        self.assertEqual(self.net.run(x, "ip", "-4", "addr", "show", "dev", "eth0").stdout, "")
        self.net.run(x, "ping", "-6", "-c", "1", "-W", "5", y.ip6)
        server = self.listener(y, y.ip6, 5061, socket.AF_INET6)
        client = self.sock(x, socket.AF_INET6, socket.SOCK_STREAM)
        client.connect((y.ip6, 5061))
        conn, peer = server.accept()
        self.addCleanup(conn.close)
        self.assertEqual(peer[0], x.ip6)
        client.sendall(b"over IPv6")
        self.assertEqual(conn.recv(100), b"over IPv6")

    def test_7_two_daemons_behind_home_routers_sync_through_the_tracker(self):
        # A behind router a, its port forwarded by hand; B behind the cone NAT of router c.
        # Neither is given the other's address: the tracker introduces them.
        port = 41000
        self.a.forward("tcp", port)
        da = self.net.daemon(self.a.host, "a", port=port, trackers=[self.tracker])
        db = self.net.daemon(self.c.host, "b", trackers=[self.tracker])
        ra = os.path.join(self.net.workdir, "files-a")
        rb = os.path.join(self.net.workdir, "files-b")
        os.makedirs(ra)
        with open(os.path.join(ra, "hello.txt"), "w") as f:
            f.write("across two NATs\n")
        code = da.share(ra)
        db.cli("attach", code, rb, "--timeout", str(SYNC_TIMEOUT), timeout=SYNC_TIMEOUT + 30)
        content = os.urandom(100_000)
        with open(os.path.join(ra, "later.bin"), "wb") as f:
            f.write(content)

        def arrived(name, expected):
            try:
                with open(os.path.join(rb, name), "rb") as f:
                    return f.read() == expected
            except OSError:
                return False

        poll(lambda: arrived("hello.txt", b"across two NATs\n"), "hello.txt on B", SYNC_TIMEOUT)
        poll(lambda: arrived("later.bin", content), "later.bin on B", SYNC_TIMEOUT)
        # B reached A at router a's public address.
        peers = db.json("peers", "--json")["peers"]
        connected = [p for p in peers if p.get("state") == "connected"]
        self.assertTrue(connected, peers)
        self.assertIn(self.a.router.ip4, str(connected))
        for d in (da, db):
            self.assertNotIn("panicked", d.log(), f"daemon {d.name} panicked")
            self.assertNotIn("killed by signal 6", d.log(), f"daemon {d.name}'s worker aborted")


def report(name, module):
    """Runs `module`'s tests; prints "NAME: N passed, N failed, N skipped"; the exit status."""
    runner = unittest.TextTestRunner(verbosity=2)
    argv = [sys.argv[0]] + [a for a in sys.argv[1:] if a != "-v"]
    program = unittest.main(module=module, argv=argv, testRunner=runner, exit=False)
    r = program.result
    failed = len(r.failures) + len(r.errors)
    skipped = len(r.skipped)
    passed = max(r.testsRun - failed - skipped, 0)  # a failed setUpClass runs no test
    print(f"{name}: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not r.testsRun or skipped else 0


def main():
    why = problems()
    if why:
        print("internet: skipped: " + "; ".join(why))
        sys.exit(SKIP)
    sys.exit(report("internet", __name__))


if __name__ == "__main__":
    main()
