//! Helpers for running the built binary and its daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen within a second or two.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A `clearskies` environment with a private, empty data directory.
pub(crate) struct Clearskies {
    home: tempfile::TempDir,
    /// Extra environment for every command.
    pub(crate) env: Vec<(String, String)>,
}

impl Clearskies {
    pub(crate) fn new() -> Self {
        Clearskies { home: tempfile::tempdir().expect("creating a temp dir"), env: Vec::new() }
    }

    /// The data directory.
    pub(crate) fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// A `clearskies ARGS…` command for this data directory.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_clearskies")), args)
    }

    /// [`Clearskies::command`] with another copy of the `clearskies` executable.
    pub(crate) fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        // Tests only ever listen on loopback, on a port the OS picks, and never broadcast
        // on the machine's network (the LAN test broadcasts on loopback only).
        c.args(args)
            .env("CLEARSKIES_HOME", self.home.path())
            .env("CLEARSKIES_LISTEN_ADDRESS", "127.0.0.1")
            .env("CLEARSKIES_LISTEN_PORT", "0")
            .env("CLEARSKIES_METRICS_ADDRESS", "127.0.0.1:0")
            .env("CLEARSKIES_LAN_DISCOVERY", "false")
            // Nothing is sent to the machine's router or to a public STUN server.
            .env("CLEARSKIES_PORT_MAPPING", "false")
            .env("CLEARSKIES_STUN_SERVERS", "off")
            .env_remove("CLEARSKIES_TRACKERS")
            .env_remove("CLEARSKIES_PEERS")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("CLEARSKIES_LOG");
        // The daemons' log filter for a debugging run: CLEARSKIES_TEST_LOG.
        if let Ok(filter) = std::env::var("CLEARSKIES_TEST_LOG") {
            c.env("CLEARSKIES_LOG", filter);
        }
        c
    }

    /// Runs `clearskies ARGS…` to completion.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running the clearskies binary")
    }

    /// Runs a command that must succeed, returning its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "clearskies {args:?} failed: {}\n{}", stderr(&o), self.log());
        stdout(&o)
    }

    /// Runs a `--json` command and parses its output. (`status` exits 1 when a share is in
    /// error, with the same output: that is not a failure here.)
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = if args.first() == Some(&"status") {
            let o = self.run(args);
            assert!(o.status.success() || o.status.code() == Some(1), "clearskies {args:?}: {}", stderr(&o));
            stdout(&o)
        } else {
            self.ok(args)
        };
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("clearskies {args:?}: {e}: {out}"))
    }

    /// Writes the daemon's `config.toml` (read when it starts).
    pub(crate) fn write_config(&self, text: &str) {
        std::fs::write(self.home.path().join("config.toml"), text).expect("writing config.toml");
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.home.path().join("control")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("log")).unwrap_or_default()
    }

    pub(crate) fn pid(&self, which: &str) -> Option<u32> {
        std::fs::read_to_string(self.home.path().join(format!("{which}.pid"))).ok()?.trim().parse().ok()
    }
}

/// A daemon started with `clearskies start`, stopped (or killed) on drop. On drop it also
/// fails the test if the log shows a panic.
pub(crate) struct Daemon {
    pub(crate) cs: Clearskies,
}

impl Daemon {
    pub(crate) fn start() -> Self {
        Daemon::start_with(&[])
    }

    /// A daemon whose environment also has `env` (for every command run through it).
    pub(crate) fn start_with(env: &[(&str, &str)]) -> Self {
        Daemon::start_args(env, &[])
    }

    /// A daemon started with `env` and `clearskies start ARGS…`.
    pub(crate) fn start_args(env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cs = Clearskies::new();
        cs.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut start = vec!["start"];
        start.extend_from_slice(args);
        cs.ok(&start);
        Daemon { cs }
    }
}

impl Daemon {
    /// The `HOST:PORT` peers connect to.
    pub(crate) fn listen(&self) -> String {
        self.cs.json(&["status", "--json"])["listen"].as_str().expect("the daemon listens").to_owned()
    }

    /// Shares `dir` (if needed) and returns a new access code for it; `extra` are more
    /// `share` flags.
    pub(crate) fn share_code(&self, dir: &std::path::Path, extra: &[&str]) -> String {
        let mut args = vec!["share", dir.to_str().expect("test paths are UTF-8"), "--json"];
        args.extend_from_slice(extra);
        self.cs.json(&args)["access_code"].as_str().expect("share prints a code").to_owned()
    }

    /// The worker's peak resident memory so far (VmHWM), in KiB.
    pub(crate) fn worker_peak_rss_kib(&self) -> u64 {
        let pid = self.cs.pid("worker").expect("a running worker");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the worker's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Where the daemon serves `/metrics` and `/health`.
    pub(crate) fn metrics_addr(&self) -> String {
        self.cs.json(&["status", "--json"])["metrics"].as_str().expect("metrics are served").to_owned()
    }

    /// `GET path` on the daemon's metrics address: (status code, body).
    pub(crate) fn http_get(&self, path: &str) -> (u16, String) {
        http_get(&self.metrics_addr(), path)
    }

    /// The first (usually the only) share in `list --json`.
    pub(crate) fn first_share(&self) -> serde_json::Value {
        self.cs.json(&["list", "--json"])["shares"][0].clone()
    }

    /// One sample from `/metrics` (0 if absent), by its full series name.
    pub(crate) fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        crate::metrics::parse(&body).get(series).copied().unwrap_or(0.0)
    }

    /// Sends one typed control request over the socket and returns the answer line.
    pub(crate) fn request(&self, request: &clearskies_actors::control::cmd::Request) -> serde_json::Value {
        use std::io::{BufRead, Write};
        let stream = std::os::unix::net::UnixStream::connect(self.cs.socket()).expect("the control socket");
        let mut w = stream.try_clone().unwrap();
        let mut r = std::io::BufReader::new(stream);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let hello: clearskies_actors::control::Hello = serde_json::from_str(&line).unwrap();
        assert_eq!(hello.service, clearskies_actors::control::SERVICE);
        let mut bytes = serde_json::to_vec(request).unwrap();
        bytes.push(b'\n');
        w.write_all(&bytes).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// How many peer sessions are up.
    pub(crate) fn peers(&self) -> u64 {
        self.cs.json(&["status", "--json"])["peers"].as_u64().unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let stopped = self.cs.run(&["stop"]).status.success();
        if !stopped {
            for which in ["monitor", "worker"] {
                if let Some(pid) = self.cs.pid(which) {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
        let log = self.cs.log();
        if std::thread::panicking() {
            // The failing test's output then shows what the daemon was doing.
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            eprintln!("--- the end of the log of the daemon in {} ---\n{tail}", self.cs.home.path().display());
        } else {
            // Only panics a test injected (`--danger-fault-injection`) are expected.
            let injected = log.matches("injected fault: panic").count();
            assert_eq!(log.matches("panicked").count(), injected, "the daemon panicked:\n{log}");
            // An abort (e.g. RocksDB closed under a thread still using it at exit) is never fine.
            assert!(!log.contains("killed by signal 6"), "the worker aborted:\n{log}");
        }
    }
}

/// Polls `f` until it returns `Some`, failing the test after [`DEADLINE`].
pub(crate) fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_up_to(what, DEADLINE, f)
}

/// [`wait_for`] with a longer `deadline`, for work a debug build does slowly.
pub(crate) fn wait_for_up_to<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill").args([signal, &pid.to_string()]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill {signal} {pid} failed");
}

/// `GET path` on `addr` over HTTP/1.1 with `Connection: close`: (status code, body).
pub(crate) fn http_get(addr: &str, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

/// [`http_get`], or `None` if nothing answers (e.g. a server being restarted).
pub(crate) fn try_http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// Deterministic pseudo-random bytes (incompressible, no repeated blocks).
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[3]
        })
        .collect()
}

/// A filesystem mounted for a test (needs root), unmounted (lazily) on drop.
pub(crate) struct Mount(pub(crate) PathBuf);

impl Mount {
    fn run(args: &[&std::ffi::OsStr]) -> bool {
        Command::new("mount").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// A tmpfs of `mib` MiB at `at` (created); `None` without the right to mount.
    pub(crate) fn tmpfs(at: &Path, mib: u32) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let size = format!("size={mib}m");
        Self::run(&["-t".as_ref(), "tmpfs".as_ref(), "-o".as_ref(), size.as_ref(), "tmpfs".as_ref(), at.as_ref()])
            .then(|| Mount(at.to_owned()))
    }

    /// A fresh XFS of `mib` MiB (its image in `image`) at `at` (created); `None` without the
    /// right to mount or without `mkfs.xfs` (xfsprogs).
    pub(crate) fn xfs(image: &Path, at: &Path, mib: u32) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        std::fs::File::create(image).unwrap().set_len(u64::from(mib) << 20).unwrap();
        let made = Command::new("mkfs.xfs").arg("-q").arg(image).stderr(Stdio::null()).status();
        if !made.is_ok_and(|s| s.success()) {
            return None;
        }
        Self::run(&["-o".as_ref(), "loop".as_ref(), image.as_ref(), at.as_ref()]).then(|| Mount(at.to_owned()))
    }

    /// `from` bind-mounted at `at`; `None` without the right to mount.
    pub(crate) fn bind(from: &Path, at: &Path) -> Option<Mount> {
        Self::run(&["--bind".as_ref(), from.as_ref(), at.as_ref()]).then(|| Mount(at.to_owned()))
    }

    /// A tmpfs grown (or shrunk) to `mib` MiB.
    pub(crate) fn resize(&self, mib: u32) {
        let opts = format!("remount,size={mib}m");
        assert!(Self::run(&["-o".as_ref(), opts.as_ref(), self.0.as_ref()]), "remount {}", self.0.display());
    }

    /// Unmounts it now (and fails the test if that fails).
    pub(crate) fn unmount(&self) {
        assert!(Command::new("umount").arg(&self.0).status().unwrap().success(), "umount {}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).stderr(Stdio::null()).status();
    }
}
