"""How long reach takes, in the namespace internet of tests/internet (root, its packages):
from a daemon's start to its port mapped by NAT-PMP and by UPnP IGD (Debian's miniupnpd),
and from a friend's `attach` behind another NAT (tracker lookup, dial through the mapped
port, key exchange) to a 1 MiB file complete. Three rounds each.

    sudo CLEARSKIES_BIN=target/release/clearskies python3 benches/reach/timing.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "internet"))
from internet import Internet, poll
runs = []
with Internet() as net:
    stun = "%s:%d" % net.stun()
    tracker = net.tracker()
    a = net.home("a", nat="cone", upnp=True)
    u = net.home("u", nat="cone", upnp=True, natpmp=False)
    b = net.home("b", nat="cone")
    for i in range(3):
        for home, method in ((a, "nat-pmp"), (u, "upnp")):
            t0 = time.monotonic()
            d = net.daemon(home.host, f"{method}{i}", trackers=[tracker], env={"CLEARSKIES_STUN_SERVERS": stun})
            def mapped():
                r = d.json("status", "--json").get("reach") or {}
                return r.get("port_mapping", {}).get("state") == "mapped"
            poll(mapped, "mapped", 60, interval=0.01)
            t_map = time.monotonic() - t0
            db = net.daemon(b.host, f"b-{method}{i}", trackers=[tracker], env={"CLEARSKIES_STUN_SERVERS": stun})
            ra = os.path.join(net.workdir, f"ra-{method}{i}"); rb = os.path.join(net.workdir, f"rb-{method}{i}")
            os.makedirs(ra)
            open(os.path.join(ra, "x.bin"), "wb").write(os.urandom(1 << 20))
            code = d.share(ra)
            t1 = time.monotonic()
            db.cli("attach", code, rb, "--timeout", "60", timeout=90)
            t_join = time.monotonic() - t1
            poll(lambda: os.path.exists(os.path.join(rb, "x.bin")) and os.path.getsize(os.path.join(rb, "x.bin")) == 1 << 20, "file", 60, interval=0.01)
            t_file = time.monotonic() - t1
            runs.append((method, t_map, t_join, t_file))
            print(f"{method}: daemon start -> port mapped {t_map:.2f} s; attach (tracker lookup + dial + join) {t_join:.2f} s; attach -> 1 MiB file complete {t_file:.2f} s", flush=True)
            d.stop(); db.stop()
