"""A tiny WebDriver (W3C) client for Debian's chromium-driver, standard library only.

    with Browser() as b:
        b.get("http://127.0.0.1:8000/")
        b.find("#name").send_keys("x")
        b.wait_for(lambda: b.find("#out").text == "x", "the echo")

Every wait polls with a deadline (never a fixed sleep).
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DEFAULT_TIMEOUT = 30.0

KEYS = {
    "enter": "\ue007",
    "escape": "\ue00c",
    "left": "\ue012",
    "right": "\ue014",
    "up": "\ue013",
    "down": "\ue015",
    "tab": "\ue004",
    "backspace": "\ue003",
}


class WebDriverError(Exception):
    """An error answer from the driver (`error`, `message`)."""

    def __init__(self, error, message, status=None):
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message
        self.status = status


class Timeout(AssertionError):
    """A wait ran out of time."""


def free_port():
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(condition, what, timeout=DEFAULT_TIMEOUT, interval=0.05):
    """Calls `condition` until it returns something truthy (returned); a WebDriverError
    counts as not yet. Raises Timeout after `timeout` seconds, saying `what` and the last
    error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except WebDriverError as e:
            last = e
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


class Driver:
    """A chromedriver process on a free loopback port."""

    def __init__(self, log_path=None):
        self.port = free_port()
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        poll(self._ready, "chromedriver to start", timeout=20)

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"chromedriver exited with {self.proc.returncode}")
        try:
            return self.call("GET", "/status").get("ready")
        except (OSError, WebDriverError):
            return False

    def call(self, method, path, body=None, timeout=120):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                answer = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read()).get("value", {})
            except ValueError:
                value = {}
            raise WebDriverError(value.get("error", "http error"), value.get("message", str(e)), e.code) from None
        except urllib.error.URLError as e:
            raise OSError(f"chromedriver at {self.url}: {e.reason}") from None
        return answer.get("value")

    def quit(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


class Element:
    """An element of the page."""

    def __init__(self, browser, ref):
        self.browser = browser
        self.ref = ref

    def _call(self, method, what, body=None):
        return self.browser._call(method, f"/element/{self.ref}{what}", body)

    def click(self):
        self._call("POST", "/click", {})
        return self

    def clear(self):
        self._call("POST", "/clear", {})
        return self

    def send_keys(self, text):
        self._call("POST", "/value", {"text": text})
        return self

    def fill(self, text):
        """Clears the field and types `text`."""
        return self.clear().send_keys(text)

    @property
    def text(self):
        return self._call("GET", "/text")

    def attribute(self, name):
        return self._call("GET", f"/attribute/{name}")

    def prop(self, name):
        return self._call("GET", f"/property/{name}")

    @property
    def displayed(self):
        return self._call("GET", "/displayed")

    def find(self, css):
        return Element(self.browser, self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css):
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self.browser, e[ELEMENT]) for e in found]

    def screenshot(self, path):
        png = base64.b64decode(self._call("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return path


class Browser:
    """A headless Chromium session (with its own driver and profile directory)."""

    def __init__(self, width=1280, height=900, driver_log=None, extra_args=()):
        self.profile = tempfile.mkdtemp(prefix="cs-chromium-")
        self.driver = Driver(driver_log)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            f"--window-size={width},{height}",
            f"--user-data-dir={self.profile}",
            *extra_args,
        ]
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "pageLoadStrategy": "normal",
                }
            }
        }
        try:
            self.session = self.driver.call("POST", "/session", caps)["sessionId"]
        except BaseException:
            self.driver.quit()
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self._call("POST", "/timeouts", {"script": 60000, "pageLoad": 60000, "implicit": 0})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()

    def _call(self, method, what, body=None):
        return self.driver.call(method, f"/session/{self.session}{what}", body)

    def quit(self):
        try:
            if self.session:
                self._call("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.session = None
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    # Navigation
    def get(self, url):
        self._call("POST", "/url", {"url": url})

    @property
    def url(self):
        return self._call("GET", "/url")

    @property
    def title(self):
        return self._call("GET", "/title")

    def refresh(self):
        self._call("POST", "/refresh", {})

    def set_window(self, width, height):
        self._call("POST", "/window/rect", {"width": width, "height": height})

    # Elements
    def find(self, css):
        """The first element matching `css` (a WebDriverError `no such element` if none)."""
        return Element(self, self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css):
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, e[ELEMENT]) for e in found]

    def wait(self, css, timeout=DEFAULT_TIMEOUT, visible=True):
        """Waits for an element matching `css` (displayed, unless `visible` is false)."""

        def found():
            for e in self.find_all(css):
                if not visible or e.displayed:
                    return e
            return None

        return poll(found, f"an element {css!r}", timeout)

    def wait_text(self, css, predicate, what=None, timeout=DEFAULT_TIMEOUT):
        """Waits until the text of an element matching `css` satisfies `predicate` (a
        string: contained in it); returns the text."""
        test = predicate if callable(predicate) else (lambda t: predicate in t)

        def ok():
            for e in self.find_all(css):
                t = e.text
                if test(t):
                    return t or True
            return None

        return poll(ok, what or f"{css!r} to show {predicate!r}", timeout)

    def wait_gone(self, css, timeout=DEFAULT_TIMEOUT):
        poll(lambda: not self.find_all(css), f"{css!r} to go", timeout)

    def wait_for(self, condition, what, timeout=DEFAULT_TIMEOUT):
        return poll(condition, what, timeout)

    def press(self, key):
        """Sends one key (a KEYS name or a character) to the focused element."""
        value = KEYS.get(key, key)
        actions = [{"type": "key", "id": "kbd", "actions": [{"type": "keyDown", "value": value}, {"type": "keyUp", "value": value}]}]
        self._call("POST", "/actions", {"actions": actions})
        self._call("DELETE", "/actions")

    # Scripts
    def execute(self, script, *args):
        """Runs `script` (a function body; `arguments` holds args) and returns its value."""
        return self._call("POST", "/execute/sync", {"script": script, "args": [_arg(a) for a in args]})

    def execute_async(self, script, *args):
        """Runs `script`, whose last argument is the callback to call with the result."""
        return self._call("POST", "/execute/async", {"script": script, "args": [_arg(a) for a in args]})

    def fetch(self, path, method="GET", headers=None, body=None):
        """`fetch(path)` from the page (same origin, with its cookies): {status, body, type}."""
        script = """
            const [path, method, headers, body, done] = arguments;
            fetch(path, {method, headers, body, credentials: 'same-origin', redirect: 'manual'})
              .then(async r => done({status: r.status, type: r.type, body: await r.text()}))
              .catch(e => done({status: -1, type: 'error', body: String(e)}));
        """
        return self.execute_async(script, path, method, headers or {}, body)

    # Output
    def screenshot(self, path):
        png = base64.b64decode(self._call("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def console(self):
        """The browser console's entries since the last call (CSP violations show here)."""
        try:
            return self._call("POST", "/se/log", {"type": "browser"}) or []
        except WebDriverError:
            return []


def _arg(a):
    return {ELEMENT: a.ref} if isinstance(a, Element) else a
