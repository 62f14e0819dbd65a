"""A stand-in for the daemon's web server, for working on the interface without a daemon.

    python3 tests/browser/mock_server.py [PORT]

Serves actors/src/web/assets from disk under the same CSP and the same API shapes, with
made-up shares (syncing, held deletions, local changes, disk full, alone), peers, codes,
settings and a log; files come from tests/browser/fixtures. Loopback only. No login: every
request has a session. Not a test of the daemon: test_web.py runs real daemons.
"""

import json
import mimetypes
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.join(HERE, "..", "..", "actors", "src", "web", "assets")
FIXTURES = os.path.join(HERE, "fixtures")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
CSRF = "mock-csrf-token"
NOW = int(time.time())
A = "5f0c9e4f3d1a2b7c8e9f00112233445566778899aabbccddeeff001122334455"
B = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
C = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de"
D = "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"
PEER1 = "0123456789abcdef0123456789abcdef"
PEER2 = "fedcba9876543210fedcba9876543210"


def share(path, id, **kw):
    base = dict(path=path, status="idle", mode="read_write", files=0, directories=1, bytes=0, revision=1,
                synced=True, pending_files=0, pending_bytes=0, peers=1, local_changes=0, held_deletions=0,
                id=id, peer_id=PEER1, in_sync_since=NOW - 600, last_synced=NOW - 5)
    base.update(kw)
    return base


STATE = {
    "paused": False,
    "shares": [
        share("/srv/Photos", A, files=1284, directories=40, bytes=8_400_000_000),
        share("/srv/From Dave", B, mode="read_only", status="syncing", synced=False, files=312, bytes=2_100_000_000,
              pending_files=42, pending_bytes=700_000_000, partial_bytes=20_000_000, local_changes=2,
              in_sync_since=None, last_synced=NOW - 3600, peers=2),
        share("/srv/Backup of Eve", C, mode="untrusted", status="error", error="disk full", synced=False,
              files=10, bytes=900_000, in_sync_since=None, peers=1),
        share("/home/me/Documents", D, status="error", synced=False, files=80, bytes=3_000_000,
              error="120 files and directories were deleted here at once", held_deletions=120, peers=0,
              alone_since=NOW - 3 * 86400, in_sync_since=None, last_synced=NOW - 3 * 86400),
    ],
    "codes": [
        dict(access_id=A[:40] + "0" * 24, path="/srv/Photos", mode="read_only", state="used", created=NOW - 86400,
             expires=NOW + 3600, multi_use=False, used_by=[PEER2]),
        dict(access_id=B[:40] + "1" * 24, username="dave", path="/srv/Photos", mode="read_write", state="active",
             created=NOW - 600, expires=None, multi_use=True, used_by=[]),
    ],
    "config": {"listen": "0.0.0.0:49221", "listen_port": 49221, "listen_address": "0.0.0.0", "peers": [],
               "trackers": [], "lan_discovery": True, "upload_limit": 0, "download_limit": 500000, "gzip_level": 6,
               "device_name": "", "min_free_space": "1%", "mass_delete_percent": 50},
}
RUNTIME = {"upload_limit", "download_limit", "gzip_level", "min_free_space", "mass_delete_percent"}
PEERS = [
    dict(path="/srv/Photos", share=A, peer=PEER2, name="Dave's NAS", access_level="read_only", transport="tcp",
         address="192.0.2.7:49221", state="connected", source="lan", last_seen=NOW, sent_bytes=123_000_000,
         received_bytes=4_000),
    dict(path="/srv/From Dave", share=B, peer=PEER2, name="Dave's NAS", access_level="read_write", transport="tcp",
         address="192.0.2.7:49221", state="connected", source="lan", last_seen=NOW, sent_bytes=0,
         received_bytes=1_400_000_000),
    dict(path="/srv/From Dave", share=B, address="198.51.100.4:49221", state="dialing", source="tracker", failures=3),
]
FILES = {
    "": [("Holidays <2024>", True), ("photo.jpg", False), ("sky.jpg", False), ("clip.webm", False),
         ("notes.txt", False), ("notes (conflict 2024-06-01 Dave's NAS).txt", False), ("<img src=x onerror=alert(1)>.jpg", False)],
    "Holidays <2024>": [("sky.jpg", False), ("photo.jpg", False)],
}
LOCK = threading.Lock()


def status():
    with LOCK:
        return dict(paused=STATE["paused"], tracking=False, nat_punctured=False, upload_rate=52_000,
                    download_rate=3_400_000, upload_limit=0, download_limit=500000, software="clearskies 0.1.0",
                    pid=os.getpid(), uptime_seconds=int(time.time()) - NOW, worker_restarts=0, actor_restarts=0,
                    listen="0.0.0.0:49221", peers=2, sent_bytes=1, received_bytes=2,
                    health=dict(healthy=False, in_sync=False, shares=[]))


def list_files(cmd):
    d = cmd.get("dir", "")
    entries = []
    for name, is_dir in FILES.get(d, []):
        fixture = os.path.join(FIXTURES, name)
        size = None if is_dir else (os.path.getsize(fixture) if os.path.exists(fixture) else 1234)
        conflict = "notes.txt" if "conflict" in name else None
        entries.append(dict(name=name, dir=is_dir, size=size, mtime=NOW - 7200, here=name != "sky.jpg",
                            pending=name == "notes.txt", conflict_of=conflict))
    after = cmd.get("after")
    if after:
        entries = [e for e in entries if e["name"] > after]
    entries.sort(key=lambda e: e["name"])
    limit = int(cmd.get("limit", 200))
    page = entries[:limit]
    return {"entries": page, "next": page[-1]["name"] if len(entries) > limit else None}


def run(cmd):
    t = cmd.get("type")
    with LOCK:
        if t == "status":
            pass
        elif t in ("pause", "resume"):
            STATE["paused"] = t == "pause"
            return 200, {}
        elif t == "list_shares":
            return 200, {"shares": STATE["shares"]}
        elif t == "list_peers":
            return 200, {"peers": PEERS}
        elif t == "list_access_codes":
            return 200, {"codes": STATE["codes"]}
        elif t == "cancel_access_code":
            STATE["codes"] = [c for c in STATE["codes"] if c["access_id"] != cmd.get("access_id")]
            return 200, {}
        elif t == "create_share":
            p = cmd.get("path", "")
            if not p.startswith("/"):
                return 422, {"error": "bad_path", "message": f"{p!r} is not an absolute path"}
            if any(s["path"] == p for s in STATE["shares"]):
                return 422, {"error": "already_shared", "message": f"{p} is shared already"}
            STATE["shares"].append(share(p, "%064x" % len(STATE["shares"]), peers=0, synced=False))
            return 200, {"path": p, "id": STATE["shares"][-1]["id"]}
        elif t == "create_access_code":
            code = "SYNCMOCKABCDEFGHJKLMNPQRST"
            with open(os.path.join(HERE, "fixtures", "qr.svg")) if os.path.exists(os.path.join(HERE, "fixtures", "qr.svg")) else open(os.path.join(ASSETS, "favicon.svg")) as f:
                svg = f.read()
            if cmd.get("username"):
                return 200, {"username": cmd["username"], "access_id": "9" * 64, "expires": None, "multi_use": False}
            return 200, {"access_code": code, "url": f"clearskies://directory/{code}", "access_id": "9" * 64,
                         "expires": NOW + 86400, "multi_use": bool(cmd.get("multi_use")), "qr_svg": svg}
        elif t == "add_share":
            if not cmd.get("code", "").startswith("SYNC"):
                return 422, {"error": "bad_code", "message": "invalid access code: it must start with SYNC"}
            return 200, {"path": cmd.get("path"), "id": A}
        elif t == "remove_share":
            STATE["shares"] = [s for s in STATE["shares"] if s["path"] != cmd.get("path")]
            return 200, {}
        elif t == "confirm_deletes":
            return 200, {"held": 120, "paths": [f"/old/file{i}.txt" for i in range(5)], "dry_run": cmd.get("dry_run") is not False}
        elif t == "revert":
            return 200, {"moved": ["a.txt", "b.txt"], "restoring": ["a.txt"]}
        elif t == "list_versions":
            return 200, {"versions": [dict(path="/notes.txt", stored="notes~20240601-101500.txt", time=NOW - 86400 * 3,
                                           by=PEER2, why="replaced", size=2048)]}
        elif t == "restore_version":
            return 200, {"restored": "/notes.txt", "version": {}}
        elif t == "get_config":
            return 200, {"config": STATE["config"], "sources": {"download_limit": "file"}}
        elif t == "set_config_value":
            key = cmd.get("key")
            if key not in STATE["config"] or key == "listen":
                return 422, {"error": "unknown_key", "message": f"there is no setting {key!r}"}
            if key == "gzip_level" and not (isinstance(cmd.get("value"), int) and 0 <= cmd["value"] <= 9):
                return 422, {"error": "bad_value", "message": f"gzip_level must be a zlib level 0-9 (0: gzip off), not {json.dumps(cmd.get('value'))}"}
            STATE["config"][key] = cmd.get("value")
            if key not in RUNTIME:
                return 422, {"error": "needs_restart", "message": f"{key} = {json.dumps(cmd.get('value'))} saved in config.toml; it takes effect at the next start (clearskies stop, then start)"}
            return 200, {}
        elif t == "recent_log":
            return 200, {"lines": [f"2024-06-01T10:{i:02d}:00Z  INFO clearskies: line {i} <b>not bold</b>" for i in range(int(cmd.get("lines", 50)) % 60)]}
        elif t == "list_files":
            return 200, list_files(cmd)
        else:
            return 422, {"error": "not_understood", "message": f"unknown command {t!r}"}
    return 200, status()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json", extra=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            return self.file(os.path.join(ASSETS, "index.html"))
        if path == "/login":
            with open(os.path.join(ASSETS, "login.html")) as f:
                html = f.read().replace("<!--MESSAGE-->", '<p class="error">Wrong password &lt;try again&gt;</p>' if "bad" in url.query else "")
            return self.send(200, html, "text/html; charset=utf-8")
        if path.startswith("/assets/"):
            name = path[len("/assets/"):]
            if "/" in name or name.startswith("."):
                return self.send(404, {"error": "not_found"})
            return self.file(os.path.join(ASSETS, name))
        if path == "/api/session":
            return self.send(200, {"csrf": CSRF, "software": "clearskies 0.1.0 (mock)", "https": False})
        if path == "/api/events":
            return self.events()
        m = re.match(r"^/s/([0-9a-f]+)/(raw|thumb)/(.+)$", path)
        if m:
            name = urllib.parse.unquote(m.group(3)).split("/")[-1]
            if m.group(2) == "thumb":
                name = name if name.endswith(".jpg") and os.path.exists(os.path.join(FIXTURES, name)) else "photo.jpg"
            fixture = os.path.join(FIXTURES, name)
            if not os.path.exists(fixture):
                return self.send(200, f"the contents of {name}\n", "text/plain; charset=utf-8")
            return self.file(fixture, attachment="download=1" in url.query)
        return self.send(404, {"error": "not_found", "message": "no such page"})

    def file(self, path, attachment=False):
        if not os.path.isfile(path):
            return self.send(404, {"error": "not_found"})
        with open(path, "rb") as f:
            data = f.read()
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript",):
            ctype += "; charset=utf-8"
        extra = [("Accept-Ranges", "bytes"), ("Cache-Control", "no-store")]
        if attachment:
            extra.append(("Content-Disposition", "attachment"))
        rng = self.headers.get("Range")
        m = re.match(r"bytes=(\d*)-(\d*)$", rng or "")
        if m:
            start = int(m.group(1) or 0)
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            extra.append(("Content-Range", f"bytes {start}-{end}/{len(data)}"))
            return self.send(206, data[start:end + 1], ctype, extra)
        return self.send(200, data, ctype, extra)

    def events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            tick = 0
            while True:
                with LOCK:
                    for s in STATE["shares"]:
                        if s["pending_bytes"]:
                            s["pending_bytes"] = max(0, s["pending_bytes"] - 3_400_000)
                    shares = {"shares": STATE["shares"]}
                for kind, data in (("shares", shares), ("peers", {"peers": PEERS}), ("status", status())):
                    if tick == 0 or kind != "peers":
                        self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                tick += 1
                time.sleep(1)
        except (BrokenPipeError, ConnectionResetError):
            return

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/api/request":
            if self.headers.get("X-CSRF-Token") != CSRF:
                return self.send(403, {"error": "csrf", "message": "missing or wrong X-CSRF-Token"})
            try:
                cmd = json.loads(body)
            except ValueError:
                return self.send(400, {"error": "not_understood", "message": "malformed JSON"})
            if cmd.get("type") == "add_share":
                time.sleep(1)
            code, answer = run(cmd)
            return self.send(code, answer)
        if self.path == "/logout":
            return self.send(303, "", "text/plain", [("Location", "/login")])
        if self.path == "/login":
            return self.send(303, "", "text/plain", [("Location", "/")])
        return self.send(404, {"error": "not_found"})


def serve(port=0):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    s = serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8766)
    print(f"http://127.0.0.1:{s.server_address[1]}/", flush=True)
    threading.Event().wait()
