#!/usr/bin/env python3
"""Captures what a real miniupnpd answers to the requests protocol::upnp builds, for the
tests in protocol/src/upnp/tests.rs.

    sudo python3 protocol/tests/data/upnp/capture.py

It needs what tests/internet/internet.py needs for a home router with UPnP (root, iproute2,
nftables, miniupnpd-nftables, miniupnpc), and no clearskies binary. It builds two homes:

- "a": Debian's miniupnpd 2.3.1 as an IGD 2.0 (WANIPConnection:2) on 192.168.1.1:5000;
- "b": the same with `-1` (it reports IGD 1.0, WANIPConnection:1) on 192.168.2.1:5000;

and from their first home host (192.168.1.2, 192.168.2.2) sends each file of requests/,
byte for byte as the Rust tests built it (`UPNP_WRITE_REQUESTS=1 cargo test -p
clearskies-protocol upnp` writes them), in the order below: SSDP searches as UDP datagrams
to 239.255.255.250:1900, the rest over TCP to the router's port 5000. What comes back is
written to answers/ unchanged: every SSDP answer datagram (NAME.N) and each whole TCP
stream until miniupnpd closes it (NAME). answers/index.txt records who answered from
where. `upnpc -l` is run after the first mapping, to show how miniupnpd stored its
XML-escaped description (answers/a-upnpc-list.txt).

miniupnpd's UUID, serial, model number and BOOTID are fixed so that a new capture differs
only where miniupnpd's own output differs (its SERVER header names the kernel it ran on,
and the uptime it reports changes).
"""

import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "internet"))

from internet import Internet  # noqa: E402

HTTP_PORT = 5000
UUID = {"a": "6d2c1f04-2f4b-4c33-9d8e-0c1a5e7b3a01", "b": "6d2c1f04-2f4b-4c33-9d8e-0c1a5e7b3a02"}
SSDP = ("239.255.255.250", 1900)
# Requests in the order they are sent: (router, home host, file). Host 1 of router a is
# 192.168.1.2, host 2 is 192.168.1.3.
EXCHANGES = [
    ("a", 1, "search-igd2"),
    ("a", 1, "search-igd1"),
    ("b", 1, "search-igd1"),
    ("a", 1, "a-get-description"),
    ("b", 1, "b-get-description"),
    ("a", 1, "a-get-external-ip"),
    ("a", 1, "a-add-port-mapping"),
    ("a", 2, "a2-add-port-mapping-conflict"),
    ("a", 1, "a-add-port-mapping-denied"),
    ("a", 1, "a-add-port-mapping-other-host"),
    ("a", 2, "a2-add-any-port-mapping"),
    ("a", 1, "a-delete-port-mapping"),
    ("a", 1, "a-delete-port-mapping-none"),
    ("b", 1, "b-get-external-ip"),
    ("b", 1, "b-add-any-port-mapping"),
]

def restart_miniupnpd(net, home, igd1):
    """Replaces the harness's miniupnpd with one on a fixed HTTP port and with fixed
    identifiers (the rest of its configuration as the harness has it)."""
    home.upnp.stop()
    d = os.path.join(net.workdir, f"capture-{home.name}")
    os.makedirs(d)
    conf = os.path.join(d, "miniupnpd.conf")
    with open(conf, "w") as f:
        f.write(
            "ext_ifname=wan\n"
            "listening_ip=lan\n"
            f"http_port={HTTP_PORT}\n"
            "enable_upnp=yes\n"
            "enable_natpmp=yes\n"
            "secure_mode=yes\n"
            "upnp_table_name=router\n"
            "upnp_nat_table_name=router\n"
            f"uuid={UUID[home.name]}\n"
            "serial=12345678\n"
            "model_number=1\n"
            f"allow 1024-65535 {home.lan} 1024-65535\n"
            "deny 0-65535 0.0.0.0/0 0-65535\n")
    cmd = ["miniupnpd", "-d", "-4", "-f", conf, "-P", os.path.join(d, "pid"), "-b", "1"]
    if igd1:
        cmd.append("-1")
    p = net.spawn(home.router, *cmd, name=f"miniupnpd-capture ({home.name})")
    p.wait_for(rf"HTTP listening on port {HTTP_PORT}")
    p.wait_for(r"Listening for NAT-PMP/PCP traffic on port 5351")
    return p


def search(net, host, request, wait=3.0):
    """Sends an SSDP search from `host` and returns every (datagram, source) in `wait` s."""
    s = net.socket(host, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host.ip4, 0))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        s.sendto(request, SSDP)
        answers = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                answers.append(s.recvfrom(65536))
            except socket.timeout:
                break
        return answers
    finally:
        s.close()


def exchange(net, host, server, request):
    """Sends `request` over a new TCP connection from `host` and returns everything read
    until the server closes it."""
    s = net.socket(host, socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect(server)
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


def main():
    requests_dir = os.path.join(HERE, "requests")
    answers_dir = os.path.join(HERE, "answers")
    os.makedirs(answers_dir, exist_ok=True)
    index = []
    with Internet() as net:
        homes = {"a": net.home("a", upnp=True, hosts=2), "b": net.home("b", upnp=True)}
        for name, home in homes.items():
            restart_miniupnpd(net, home, igd1=name == "b")
        for router, n_host, name in EXCHANGES:
            home = homes[router]
            host = home.hosts[n_host - 1]
            with open(os.path.join(requests_dir, name), "rb") as f:
                request = f.read()
            if name.startswith("search-"):
                answers = search(net, host, request)
                if not answers:
                    raise SystemExit(f"no SSDP answer to {name} from router {router}")
                for i, (datagram, source) in enumerate(answers):
                    out = f"{router}-{name}.{i}"
                    with open(os.path.join(answers_dir, out), "wb") as f:
                        f.write(datagram)
                    index.append(f"{out}: SSDP answer from {source[0]}:{source[1]} to {host.ip4}")
                continue
            out = name
            answer = exchange(net, host, (str(home.lan[1]), HTTP_PORT), request)
            with open(os.path.join(answers_dir, out), "wb") as f:
                f.write(answer)
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            index.append(f"{out}: {status} from {home.lan[1]}:{HTTP_PORT} to {host.ip4} ({name})")
            print(index[-1])
            if name == "a-add-port-mapping":
                listing = net.run(host, "upnpc", "-u", f"http://{home.lan[1]}:{HTTP_PORT}/rootDesc.xml", "-l")
                with open(os.path.join(answers_dir, "a-upnpc-list.txt"), "w") as f:
                    f.write(listing.stdout)
        version = subprocess.run(["miniupnpd", "--version"], capture_output=True, text=True)
    with open(os.path.join(answers_dir, "index.txt"), "w") as f:
        f.write(f"Captured by capture.py from {' '.join(version.stdout.split())}\n")
        f.write("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
