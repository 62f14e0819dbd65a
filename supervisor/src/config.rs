//! Validated configuration: where the data lives and the daemon's settings.
//!
//! The data dir is `$CLEARSKIES_HOME`, else `$XDG_DATA_HOME/clearskies`, else
//! `~/.local/share/clearskies`. It holds `config.toml` (optional; unknown keys are an error),
//! `control` (the socket), `monitor.pid`, `worker.pid` and `log`. Settings come from
//! `config.toml`, each overridden by its `CLEARSKIES_*` environment variable
//! (`CLEARSKIES_LISTEN_PORT`, `CLEARSKIES_METRICS_ADDRESS`, …).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The file in the data dir that holds the configuration.
pub(crate) const CONFIG_FILE: &str = clearskies_actors::config::CONFIG_FILE;

/// The documented default peer port (the port of `core.md`'s examples).
pub(crate) const DEFAULT_LISTEN_PORT: u16 = 49221;
/// The documented default port of `/metrics` and `/health` (on 127.0.0.1).
pub(crate) const DEFAULT_METRICS_PORT: u16 = clearskies_actors::metrics::DEFAULT_PORT;
/// The LAN broadcast port (`core.md`).
pub(crate) const DEFAULT_BROADCAST_PORT: u16 = 60106;

/// `config.toml`. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileConfig {
    /// TCP port for peers (default 49221; 0 picks a free port).
    pub(crate) listen_port: Option<u16>,
    /// Address to listen on (default 0.0.0.0: every interface).
    pub(crate) listen_address: Option<IpAddr>,
    /// Peers to dial for every share, `HOST:PORT`.
    pub(crate) peers: Option<Vec<String>>,
    /// Trackers, `HOST:PORT` (none by default).
    pub(crate) trackers: Option<Vec<String>>,
    /// LAN broadcast discovery (default on).
    pub(crate) lan_discovery: Option<bool>,
    /// Where LAN broadcasts go (default 255.255.255.255).
    pub(crate) broadcast_address: Option<IpAddr>,
    /// The LAN broadcast port (default 60106).
    pub(crate) broadcast_port: Option<u16>,
    /// Where `/metrics` and `/health` are served, `IP:PORT` (default 127.0.0.1:49222), or
    /// `off`.
    pub(crate) metrics_address: Option<String>,
    /// Upload limit in bytes per second, 0 for none (default). `config set` changes it at
    /// runtime and saves it here.
    pub(crate) upload_limit: Option<u64>,
    /// Download limit in bytes per second, 0 for none (default).
    pub(crate) download_limit: Option<u64>,
    /// zlib level of the gzip extension, 1–9 (default 6); 0 does not offer gzip.
    pub(crate) gzip_level: Option<u32>,
    /// Authentication attempts with access codes allowed per minute per source IP and per
    /// access ID (default 10).
    pub(crate) auth_attempts_per_minute: Option<u32>,
    /// Deleting more than this percentage of a share's files at once is held until
    /// `confirm-deletes` (default 50; 100: never held).
    pub(crate) mass_delete_percent: Option<u8>,
    /// Space downloads leave free on a share's filesystem: `"1%"` (default) or bytes
    /// (`"500M"`, `"2Gi"`, `1000000`).
    pub(crate) min_free_space: Option<toml::Value>,
    /// Seconds between full scans of a share that cannot be watched (default 300).
    pub(crate) full_scan_interval: Option<u64>,
}

/// Everything the binary needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) data_dir: PathBuf,
    /// Where peers connect.
    pub(crate) listen: SocketAddr,
    /// Peers dialled for every share.
    pub(crate) peers: Vec<String>,
    /// Trackers.
    pub(crate) trackers: Vec<String>,
    /// Where LAN broadcasts go, if LAN discovery is on.
    pub(crate) lan: Option<SocketAddr>,
    /// Where `/metrics` and `/health` are served (`None`: off).
    pub(crate) metrics: Option<SocketAddr>,
    /// Bytes per second (0: none).
    pub(crate) upload_limit: u64,
    /// Bytes per second (0: none).
    pub(crate) download_limit: u64,
    /// 0–9 (0: gzip not offered).
    pub(crate) gzip_level: u32,
    /// Per minute, per IP and per access ID.
    pub(crate) auth_attempts_per_minute: u32,
    /// 1–100.
    pub(crate) mass_delete_percent: u8,
    /// What downloads leave free.
    pub(crate) min_free_space: clearskies_actors::config::MinFree,
    /// Seconds between full scans of an unwatched share.
    pub(crate) full_scan_interval: u64,
}

impl Config {
    /// Resolves the data dir from the environment and reads `config.toml` if present.
    pub(crate) fn load() -> anyhow::Result<Self> {
        let data_dir = data_dir()?;
        let path = data_dir.join(CONFIG_FILE);
        let file: FileConfig = match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let port = setting("CLEARSKIES_LISTEN_PORT", "a port number", file.listen_port, DEFAULT_LISTEN_PORT)?;
        let address = setting(
            "CLEARSKIES_LISTEN_ADDRESS",
            "an IP address",
            file.listen_address,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        )?;
        let peers = list_setting("CLEARSKIES_PEERS", file.peers);
        let trackers = list_setting("CLEARSKIES_TRACKERS", file.trackers);
        for (key, list) in [("peers", &peers), ("trackers", &trackers)] {
            for p in list {
                let ok = p.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                anyhow::ensure!(ok, "address {p:?} (in `{key}`) is not HOST:PORT");
            }
        }
        let lan_on = setting("CLEARSKIES_LAN_DISCOVERY", "true or false", file.lan_discovery, true)?;
        let broadcast_address = setting(
            "CLEARSKIES_BROADCAST_ADDRESS",
            "an IP address",
            file.broadcast_address,
            IpAddr::V4(Ipv4Addr::BROADCAST),
        )?;
        let broadcast_port =
            setting("CLEARSKIES_BROADCAST_PORT", "a port number", file.broadcast_port, DEFAULT_BROADCAST_PORT)?;
        let lan = lan_on.then(|| SocketAddr::new(broadcast_address, broadcast_port));
        let metrics = match env("CLEARSKIES_METRICS_ADDRESS").or(file.metrics_address) {
            None => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_METRICS_PORT)),
            Some(v) if v == "off" => None,
            Some(v) => Some(v.parse().map_err(|e| {
                anyhow::anyhow!(
                    "metrics_address {v:?} is not IP:PORT or \"off\" (CLEARSKIES_METRICS_ADDRESS or config.toml): {e}"
                )
            })?),
        };
        let upload_limit = setting("CLEARSKIES_UPLOAD_LIMIT", "bytes per second", file.upload_limit, 0)?;
        let download_limit = setting("CLEARSKIES_DOWNLOAD_LIMIT", "bytes per second", file.download_limit, 0)?;
        let gzip_level = setting(
            "CLEARSKIES_GZIP_LEVEL",
            "a zlib level 0-9",
            file.gzip_level,
            clearskies_actors::config::DEFAULT_GZIP_LEVEL,
        )?;
        anyhow::ensure!(gzip_level <= 9, "gzip_level {gzip_level} is not a zlib level 0-9 (0: gzip off)");
        let auth_attempts_per_minute = setting(
            "CLEARSKIES_AUTH_ATTEMPTS_PER_MINUTE",
            "a number of attempts",
            file.auth_attempts_per_minute,
            clearskies_actors::listener::throttle::DEFAULT_PER_MINUTE,
        )?;
        anyhow::ensure!(auth_attempts_per_minute >= 1, "auth_attempts_per_minute must be at least 1");
        let mass_delete_percent = setting(
            "CLEARSKIES_MASS_DELETE_PERCENT",
            "a percentage 1-100",
            file.mass_delete_percent,
            clearskies_actors::config::DEFAULT_MASS_DELETE_PERCENT,
        )?;
        anyhow::ensure!(
            (1..=100).contains(&mass_delete_percent),
            "mass_delete_percent {mass_delete_percent} is not 1-100 (100: never hold deletions)"
        );
        let min_free_space = match env("CLEARSKIES_MIN_FREE_SPACE") {
            Some(v) => parse_min_free(&v),
            None => match &file.min_free_space {
                None => Ok(clearskies_actors::config::DEFAULT_MIN_FREE),
                Some(toml::Value::String(v)) => parse_min_free(v),
                Some(toml::Value::Integer(n)) => u64::try_from(*n)
                    .map(clearskies_actors::config::MinFree::Bytes)
                    .map_err(|_| anyhow::anyhow!("min_free_space {n} is negative")),
                Some(other) => Err(anyhow::anyhow!("min_free_space {other} is not \"1%\" or a size like \"500M\"")),
            },
        }?;
        let full_scan_interval = setting(
            "CLEARSKIES_FULL_SCAN_INTERVAL",
            "a number of seconds",
            file.full_scan_interval,
            clearskies_actors::config::DEFAULT_FULL_SCAN_INTERVAL,
        )?;
        anyhow::ensure!(full_scan_interval >= 1, "full_scan_interval must be at least 1 (seconds)");
        Ok(Config {
            data_dir,
            listen: SocketAddr::new(address, port),
            peers,
            trackers,
            lan,
            metrics,
            upload_limit,
            download_limit,
            gzip_level,
            auth_attempts_per_minute,
            mass_delete_percent,
            min_free_space,
            full_scan_interval,
        })
    }

    pub(crate) fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control")
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.data_dir.join("worker.pid")
    }

    pub(crate) fn monitor_pid_file(&self) -> PathBuf {
        self.data_dir.join("monitor.pid")
    }

    pub(crate) fn log_file(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    /// Creates the data dir (mode 0700) if needed.
    pub(crate) fn ensure_data_dir(&self) -> anyhow::Result<()> {
        create_private_dir(&self.data_dir)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A setting: the environment variable `name` if set (it must parse: "`what`"), else the
/// file's value, else `default`.
fn setting<T>(name: &str, what: &str, file: Option<T>, default: T) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match env(name) {
        Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{name}={v:?} is not {what}: {e}")),
        None => Ok(file.unwrap_or(default)),
    }
}

/// `min_free_space`: a percentage of the filesystem (`1%`, 0–50) or a size (`500M`).
fn parse_min_free(text: &str) -> anyhow::Result<clearskies_actors::config::MinFree> {
    use clearskies_actors::config::MinFree;
    match text.trim().strip_suffix('%') {
        Some(p) => {
            let p: u8 = p.trim().parse().map_err(|_| anyhow::anyhow!("min_free_space {text:?} is not a percentage"))?;
            anyhow::ensure!(p <= 50, "min_free_space {text:?}: at most 50%");
            Ok(MinFree::Percent(p))
        }
        None => crate::daemon::parse_rate(text)
            .map(MinFree::Bytes)
            .map_err(|e| anyhow::anyhow!("min_free_space {text:?} is not \"1%\" or a size like \"500M\": {e}")),
    }
}

/// A list setting: the comma-separated environment variable `name` if set, else the file's.
fn list_setting(name: &str, file: Option<Vec<String>>) -> Vec<String> {
    match env(name) {
        Some(v) => v.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        None => file.unwrap_or_default(),
    }
}

fn data_dir() -> anyhow::Result<PathBuf> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = if let Some(home) = from_env("CLEARSKIES_HOME") {
        home
    } else if let Some(xdg) = from_env("XDG_DATA_HOME") {
        xdg.join("clearskies")
    } else if let Some(home) = from_env("HOME") {
        home.join(".local/share/clearskies")
    } else {
        bail!("cannot find a data directory: set CLEARSKIES_HOME or HOME");
    };
    if !dir.is_absolute() {
        bail!("the data directory must be an absolute path, not {}", dir.display());
    }
    Ok(dir)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & !0o077))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clearskies_actors::config::MinFree;

    use super::parse_min_free;

    #[test]
    fn min_free_space_is_a_percentage_or_a_size() {
        assert_eq!(parse_min_free("1%").unwrap(), MinFree::Percent(1));
        assert_eq!(parse_min_free(" 5 %").unwrap(), MinFree::Percent(5));
        assert_eq!(parse_min_free("500M").unwrap(), MinFree::Bytes(500_000_000));
        assert_eq!(parse_min_free("2Gi").unwrap(), MinFree::Bytes(2 << 30));
        assert_eq!(parse_min_free("0").unwrap(), MinFree::Bytes(0));
        for bad in ["51%", "x%", "lots", "-1"] {
            assert!(parse_min_free(bad).is_err(), "{bad}");
        }
        assert_eq!(MinFree::Percent(1).bytes(1000), 10);
        assert_eq!(MinFree::Bytes(7).bytes(1000), 7);
    }
}
