"""How long reach takes, in the namespace internet of tests/internet (root, its packages):
from a daemon's start to its port mapped by NAT-PMP and by UPnP IGD (Debian's miniupnpd),
and from a friend's `attach` behind another NAT (tracker lookup, dial through the mapped
port, key exchange) to a 1 MiB file complete; and through hole punching (two cone NATs
that map nothing: the joiner dials the holder's STUN-learned uTP address, the holder
punches towards the joiner's), from `attach` to the first byte of a 1 MiB file (its
partial download growing) and to the file complete. Three rounds each.

    sudo CLEARSKIES_BIN=target/release/clearskies python3 benches/reach/timing.py
"""
import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "internet"))
from internet import Internet, clearskies_bin, poll
runs = []
with Internet() as net:
    stun = "%s:%d" % net.stun()
    tracker = net.tracker()
    a = net.home("a", nat="cone", upnp=True)
    u = net.home("u", nat="cone", upnp=True, natpmp=False)
    b = net.home("b", nat="cone")
    p = net.home("p", nat="cone")
    q = net.home("q", nat="cone")
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
    # Hole punching. Both daemons first wait until STUN has told them their public UDP
    # address (so the tracker has their utp: addresses).
    def size(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0
    for i in range(3):
        env = {"CLEARSKIES_STUN_SERVERS": stun}
        d = net.daemon(p.host, f"holder{i}", trackers=[tracker], env=env)
        db = net.daemon(q.host, f"joiner{i}", trackers=[tracker], env=env)
        for x in (d, db):
            poll(lambda: (x.json("status", "--json").get("reach") or {}).get("reachable"), "punchable", 60, interval=0.01)
        ra = os.path.join(net.workdir, f"ra-punch{i}"); rb = os.path.join(net.workdir, f"rb-punch{i}")
        os.makedirs(ra)
        data = os.urandom(1 << 20)
        open(os.path.join(ra, "x.bin"), "wb").write(data)
        # Its partial download: PATH/.clearskies/partial/<first two hex digits>/<sha256>.
        sha = hashlib.sha256(data).hexdigest()
        partial, done = os.path.join(rb, ".clearskies", "partial", sha[:2], sha), os.path.join(rb, "x.bin")
        code = d.share(ra)
        # The attach runs in the background: the first byte may come before it returns (the
        # session it opened goes on syncing).
        t1 = time.monotonic()
        attach = subprocess.Popen(["ip", "netns", "exec", q.host.ns, clearskies_bin(), "attach", code, rb, "--timeout", "60"],
                                  env=db.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        joined = []
        def first_byte():
            if not joined and attach.poll() is not None:
                joined.append(time.monotonic() - t1)
            return size(partial) > 0 or size(done) > 0
        poll(first_byte, "the first byte", 90, interval=0.002)
        t_first = time.monotonic() - t1
        out = attach.communicate(timeout=90)[0]
        t_join = joined[0] if joined else time.monotonic() - t1
        if attach.returncode != 0:
            sys.exit(f"attach failed: {out.decode(errors='replace')}")
        poll(lambda: size(done) == 1 << 20, "file", 60, interval=0.01)
        t_file = time.monotonic() - t1
        transport = [x["transport"] for x in db.json("peers", "--json")["peers"] if x["state"] == "connected"]
        runs.append(("punch", t_join, t_first, t_file))
        print(f"hole punching ({'/'.join(transport)}): attach (tracker lookup + punch + join) {t_join:.2f} s; attach -> first byte of the 1 MiB file {t_first:.2f} s; attach -> 1 MiB file complete {t_file:.2f} s", flush=True)
        d.stop(); db.stop()
