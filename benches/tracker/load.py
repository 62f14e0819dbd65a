#!/usr/bin/env python3
"""Tracker load test: N clients register with a `clearskies tracker`, then change their
addresses in rounds. Reports registered clients, registration time, and tracker.peers
updates delivered per second.

Usage: python3 benches/tracker/load.py PATH/TO/clearskies [--clients 2000] [--club 10] [--rounds 5]
"""

import argparse
import asyncio
import json
import resource
import subprocess
import time


def frame(obj):
    body = json.dumps(obj, separators=(",", ":")).encode()
    return b"m" + str(len(body)).encode() + body


async def read_message(reader):
    assert await reader.readexactly(1) == b"m"
    digits = b""
    while True:
        c = await reader.readexactly(1)
        if c == b"{":
            break
        digits += c
    body = b"{" + await reader.readexactly(int(digits) - 1)
    return json.loads(body)


class Client:
    def __init__(self, i, club):
        self.i, self.club = i, club
        self.peers_msgs = 0
        self.ready = asyncio.Event()

    async def run(self, host, port, go, rounds, done):
        reader, writer = await asyncio.open_connection(host, port)
        await read_message(reader)  # greeting
        ids = {f"{self.i // self.club:064x}": f"{self.i:032x}"}
        writer.write(frame({"type": "tracker.start", "software": "load", "protocol": 1, "ttl": 600, "extensions": []}))
        writer.write(frame({"type": "tracker.connection", "addresses": [f"tcp:10.0.0.1:{self.i}"]}))
        writer.write(frame({"type": "tracker.register", "ids": ids}))
        await writer.drain()

        async def reader_loop():
            while True:
                m = await read_message(reader)
                if m.get("type") == "tracker.peers":
                    self.peers_msgs += 1
                    self.ready.set()

        task = asyncio.create_task(reader_loop())
        await go.wait()
        for r in range(rounds):
            writer.write(frame({"type": "tracker.connection", "addresses": [f"tcp:10.1.{r}.1:{self.i}"]}))
            await writer.drain()
            await asyncio.sleep(0)
        await done.wait()
        task.cancel()
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--club", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc = subprocess.Popen([args.binary, "tracker", "--listen", "127.0.0.1:0", "--max-ttl", "3600"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        host, port = addr.rsplit(":", 1)
        clients = [Client(i, args.club) for i in range(args.clients)]
        go, done = asyncio.Event(), asyncio.Event()
        t0 = time.monotonic()
        tasks = [asyncio.create_task(c.run(host, int(port), go, args.rounds, done)) for c in clients]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
        except asyncio.TimeoutError:
            failed = [t for t in tasks if t.done() and t.exception()]
            print(f"only {sum(c.ready.is_set() for c in clients)} clients registered in 120 s; "
                  f"{len(failed)} failed: {failed[0].exception() if failed else ''}")
            return
        # Registering: the k-th member of a club makes k messages (to every member so far).
        clubs, rest = divmod(args.clients, args.club)
        registering = clubs * args.club * (args.club + 1) // 2 + rest * (rest + 1) // 2
        while sum(c.peers_msgs for c in clients) < registering and time.monotonic() - t0 < 120:
            await asyncio.sleep(0.01)
        reg = time.monotonic() - t0
        before = sum(c.peers_msgs for c in clients)
        # Each address change is sent to every member of the club (the changer included).
        expected = before + args.clients * args.rounds * args.club
        t1 = time.monotonic()
        go.set()
        while sum(c.peers_msgs for c in clients) < expected:
            await asyncio.sleep(0.01)
            if time.monotonic() - t1 > 300:
                break
        upd = time.monotonic() - t1
        delivered = sum(c.peers_msgs for c in clients) - before
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        rss = int([l for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmHWM")][0].split()[1])
        print(json.dumps({"clients": args.clients, "club_size": args.club, "registration_s": round(reg, 2),
                          "address_changes": args.clients * args.rounds, "peers_messages_delivered": delivered,
                          "update_s": round(upd, 2), "peers_messages_per_s": round(delivered / upd),
                          "tracker_peak_rss_kib": rss}))
    finally:
        proc.kill()


asyncio.run(main())
