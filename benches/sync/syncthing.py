"""A Syncthing instance for the side-by-side benchmark (bench.py): its own home, loopback
only (no global or local discovery, relays, NAT traversal, usage or crash reporting, upgrade
checks), driven through its REST API. Needs the `syncthing` binary (Debian package)."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

from clearskies_daemon import free_port  # (bench.py puts benches/ on the path)
from proc_usage import ProcessTree


def available():
    return shutil.which("syncthing") is not None


def version():
    return subprocess.run(["syncthing", "--version"], capture_output=True, text=True).stdout.strip()


class Syncthing:
    def __init__(self, home):
        self.home = home
        os.makedirs(home, exist_ok=True)
        out = subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"],
                             capture_output=True, text=True, check=True)
        self.device_id = re.search(r"Device ID: (\S+)", out.stdout + out.stderr).group(1)
        self.gui_port, self.port = free_port(), free_port()
        path = os.path.join(home, "config.xml")
        with open(path) as f:
            cfg = f.read()
        self.apikey = re.search(r"<apikey>([^<]+)</apikey>", cfg).group(1)
        replace = {
            r"(<gui [^>]*>\s*<address>)[^<]*": rf"\g<1>127.0.0.1:{self.gui_port}",
            r"<listenAddress>[^<]*</listenAddress>": f"<listenAddress>tcp://127.0.0.1:{self.port}</listenAddress>",
            r"<globalAnnounceEnabled>[^<]*<": "<globalAnnounceEnabled>false<",
            r"<localAnnounceEnabled>[^<]*<": "<localAnnounceEnabled>false<",
            r"<relaysEnabled>[^<]*<": "<relaysEnabled>false<",
            r"<natEnabled>[^<]*<": "<natEnabled>false<",
            r"<startBrowser>[^<]*<": "<startBrowser>false<",
            r"<urAccepted>[^<]*<": "<urAccepted>-1<",
            r"<autoUpgradeIntervalH>[^<]*<": "<autoUpgradeIntervalH>0<",
            r"<crashReportingEnabled>[^<]*<": "<crashReportingEnabled>false<",
        }
        for pattern, repl in replace.items():
            cfg, n = re.subn(pattern, repl, cfg, count=1)
            if n != 1:
                raise RuntimeError(f"syncthing config.xml: {pattern} not found")
        with open(path, "w") as f:
            f.write(cfg)
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(os.path.join(self.home, "syncthing.log"), "w")
        env = dict(os.environ, STNOUPGRADE="1", STNODEFAULTFOLDER="1")
        self.proc = subprocess.Popen(["syncthing", "serve", f"--home={self.home}", "--no-browser", "--no-restart",
                                      "--no-upgrade"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/rest/system/ping")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"syncthing did not start; see {self.log.name}")
                time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.post("/rest/system/shutdown")
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()

    def processes(self):
        return ProcessTree(self.proc.pid)

    def _req(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.gui_port}{path}", data=data, method=method,
                                     headers={"X-API-Key": self.apikey, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        return json.loads(text) if text.strip() else None

    def get(self, path):
        return self._req("GET", path)

    def post(self, path, body=None):
        return self._req("POST", path, body if body is not None else {})

    def add_device(self, other):
        self.post("/rest/config/devices", {"deviceID": other.device_id, "name": os.path.basename(other.home),
                                           "addresses": [f"tcp://127.0.0.1:{other.port}"]})

    def add_folder(self, folder_id, path, devices, watcher_delay_s=1, kind="sendreceive"):
        """Shares `path` as `folder_id` with `devices` (the defaults, but the filesystem watcher
        reports after `watcher_delay_s` seconds instead of 10); `kind`: Syncthing's folder type
        (`receiveonly` for the reader of a read-only share)."""
        self.post("/rest/config/folders", {
            "id": folder_id, "label": folder_id, "path": path, "type": kind,
            "devices": [{"deviceID": d.device_id} for d in devices],
            "fsWatcherEnabled": True, "fsWatcherDelayS": watcher_delay_s,
        })

    def folder_idle(self, folder_id, files=None):
        """Whether the folder is scanned and idle (holding `files` files, if given)."""
        try:
            st = self.get(f"/rest/db/status?folder={folder_id}")
        except OSError:
            return False
        return st.get("state") == "idle" and (files is None or st.get("localFiles") == files)
