#!/usr/bin/env python3
"""Web interface timings (issue 20), on loopback with a release binary:
- the overview page with 20 shares: from navigation start until the 20 share cards are on
  the page, in headless Chromium (tests/browser/webdriver.py);
- a folder of 100,000 files: list_files, the first page and a deep one, over HTTP, and the
  files page rendering its first page in Chromium;
- a 12-megapixel JPEG's thumbnail: cold (first request) and cached;
- the worker's resident memory (VmRSS) idle, and after the browser runs.

Usage: benches/web/measure.py BINARY   (needs chromium, chromium-driver, ImageMagick's convert)
"""
import functools, json, os, statistics, subprocess, sys, tempfile, time, urllib.request

print = functools.partial(print, flush=True)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "browser"))
import webdriver  # noqa: E402

BIN = os.path.abspath(sys.argv[1])


def cs(home, *args):
    env = dict(os.environ, CLEARSKIES_HOME=home, CLEARSKIES_LISTEN_ADDRESS="127.0.0.1", CLEARSKIES_LISTEN_PORT="0",
               CLEARSKIES_METRICS_ADDRESS="127.0.0.1:0", CLEARSKIES_LAN_DISCOVERY="false",
               CLEARSKIES_PORT_MAPPING="false", CLEARSKIES_STUN_SERVERS="off")
    env.pop("CLEARSKIES_TRACKERS", None)
    return subprocess.run([BIN, *args], env=env, check=True, capture_output=True, text=True).stdout


def rss_kib(home):
    pid = open(os.path.join(home, "worker.pid")).read().strip()
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


class Session:
    def __init__(self, home):
        link = cs(home, "open", "--print").strip()
        self.base = link.split("/login")[0]
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opener.open(link)
        self.opener = opener
        self.csrf = json.load(opener.open(self.base + "/api/session"))["csrf"]

    def request(self, cmd):
        req = urllib.request.Request(self.base + "/api/request", data=json.dumps(cmd).encode(),
                                     headers={"X-CSRF-Token": self.csrf, "Content-Type": "application/json"})
        return json.load(self.opener.open(req))

    def get(self, path, headers=None):
        return self.opener.open(urllib.request.Request(self.base + path, headers=headers or {})).read()


def timed(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main():
    work = tempfile.mkdtemp(prefix="cs-web-bench-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    cs(home, "start")
    try:
        idle = rss_kib(home)
        print(f"idle worker RSS, interface on: {idle / 1024:.1f} MiB")
        for i in range(20):
            d = os.path.join(work, f"share{i:02}")
            os.makedirs(d)
            open(os.path.join(d, "a.txt"), "w").write("x")
            cs(home, "share", d)
        big = os.path.join(work, "big")
        os.makedirs(os.path.join(big, "many"))
        for i in range(100_000):
            open(os.path.join(big, "many", f"f{i:06}.txt"), "w").close()
        # A photo-like picture (smooth areas, some grain: about the size of a camera's 12 MP
        # JPEG), and the worst case, pure noise (five times larger).
        subprocess.run(["convert", "-size", "4000x3000", "plasma:fractal", "-attenuate", "0.3", "+noise", "Gaussian",
                        "-quality", "90", os.path.join(big, "photo.jpg")], check=True)
        subprocess.run(["convert", "-size", "4000x3000", "xc:", "+noise", "Random", "-quality", "90",
                        os.path.join(big, "noise.jpg")], check=True)
        cs(home, "share", big)
        s = Session(home)
        deadline = time.time() + 600
        while True:
            page = s.request({"type": "list_files", "path": big, "dir": "many"})
            if len(page["entries"]) == 200 or time.time() > deadline:
                break
            time.sleep(0.5)
        while s.request({"type": "list_files", "path": big, "dir": "many", "after": "f099799.txt"})["next"] is not None \
                or len(s.request({"type": "list_files", "path": big, "dir": "many", "after": "f099799.txt"})["entries"]) < 200:
            time.sleep(1)
        print(f"worker RSS with 21 shares (one of 100,000 files) indexed: {rss_kib(home) / 1024:.1f} MiB")
        med, worst = timed(lambda: s.request({"type": "list_files", "path": big, "dir": "many"}), 20)
        print(f"list_files, first page of 200 of 100,000: median {med:.1f} ms, max {worst:.1f} ms")
        med, worst = timed(lambda: s.request({"type": "list_files", "path": big, "dir": "many", "after": "f090000.txt"}), 20)
        print(f"list_files, the page after f090000.txt: median {med:.1f} ms, max {worst:.1f} ms")
        med, worst = timed(lambda: s.request({"type": "list_shares"}), 20)
        print(f"list_shares with 21 shares: median {med:.1f} ms, max {worst:.1f} ms")
        share_id = [x for x in s.request({"type": "list_shares"})["shares"] if x["path"] == big][0]["id"]
        print(f"worker RSS before the thumbnails: {rss_kib(home) / 1024:.1f} MiB")
        for name in ["photo.jpg", "noise.jpg"]:
            size_mb = os.path.getsize(os.path.join(big, name)) / 1e6
            t = time.perf_counter()
            thumb = s.get(f"/s/{share_id}/thumb/{name}")
            cold = (time.perf_counter() - t) * 1000
            med, worst = timed(lambda: s.get(f"/s/{share_id}/thumb/{name}"), 50)
            print(f"12-megapixel JPEG thumbnail, {name} ({size_mb:.1f} MB): cold {cold:.0f} ms ({len(thumb)} bytes), "
                  f"cached median {med:.1f} ms, max {worst:.1f} ms")
        print(f"worker RSS after the thumbnails: {rss_kib(home) / 1024:.1f} MiB")

        b = webdriver.Browser()
        try:
            b.get(cs(home, "open", "--print").strip())
            times = []
            for _ in range(5):
                b.get("about:blank")
                b.get(s.base + "/#/")
                b.wait_for(lambda: b.execute("return document.querySelectorAll('.share-card').length") >= 21,
                           "21 share cards", timeout=30)
                times.append(b.execute("return performance.getEntriesByName('clearskies:shares-drawn')[0].startTime"))
            print("  runs (the first with an empty browser cache):", [round(t) for t in times])
            print("  where the time goes (last run, ms from navigation start):", b.execute(
                "return performance.getEntriesByType('resource').map(r => r.name.replace(location.origin, '') + ' '"
                " + Math.round(r.startTime) + '-' + Math.round(r.responseEnd)).join(', ')"))
            print(f"overview with 21 shares, from navigation start to the cards drawn: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
            times = []
            for _ in range(5):
                b.get("about:blank")
                b.get(s.base + f"/#/s/{share_id}/many")
                b.wait_for(lambda: b.execute("return document.querySelectorAll('tr[data-name]').length") >= 200,
                           "200 rows", timeout=30)
                times.append(b.execute("return performance.getEntriesByName('clearskies:rendered:files')[0].startTime"))
                if times[-1] > 1000:
                    print("  a slow run:", times[-1], b.execute(
                        "return performance.getEntriesByType('resource').map(r => r.name.replace(location.origin, '') + ' '"
                        " + Math.round(r.startTime) + '-' + Math.round(r.responseEnd)).join(', ')"))
            print("  runs:", [round(t) for t in times])
            print(f"files page, from navigation start to the first 200 of 100,000 rows drawn: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
            # Inside the running interface (a click on a link: a new route, no page load).
            in_app = """
const [route, sel, want, done] = arguments;
location.hash = '#/log';
const wait = (pred, then) => { const f = () => pred() ? then() : requestAnimationFrame(f); f(); };
wait(() => document.getElementById('log'), () => {
  const t0 = performance.now();
  location.hash = route;
  wait(() => document.querySelectorAll(sel).length >= want, () => done(performance.now() - t0));
});"""
            for label, route, sel, want in [("overview", "#/", ".share-card", 21),
                                            ("files page", f"#/s/{share_id}/many", "tr[data-name]", 200)]:
                times = [b.execute_async(in_app, route, sel, want) for _ in range(10)]
                print(f"{label} inside the interface, link followed → drawn: median {statistics.median(times):.0f} ms, "
                      f"max {max(times):.0f} ms")
        finally:
            b.quit()
        print(f"worker RSS after this: {rss_kib(home) / 1024:.1f} MiB")
    finally:
        cs(home, "stop")


if __name__ == "__main__":
    main()
