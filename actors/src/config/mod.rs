//! The daemon's settings: the table that defines each one ([`defs`]), how values are read
//! ([`parse`]), the values in effect as their owners read them ([`Runtime`]), and saving
//! values into `config.toml`. The binary reads and checks the whole file at start-up by
//! iterating [`SETTINGS`].
//!
//! Runtime values reach their owners through a `tokio::sync::watch` channel of [`Values`]:
//! the supervisor holds the sending side and sends what `config set` changed; each owner
//! (a connection's `Peer`, a `Share` and its worker thread, a `Transfer`) holds a
//! [`Runtime`] and reads the value where it uses it, so a change needs no message to every
//! share or connection, and two daemons' actors in one process (the tests) do not share one.

pub mod defs;
pub mod parse;

pub use self::defs::{hand_over, setting, Applies, Setting, Values, SETTINGS};
pub use self::parse::Raw;

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The file in the data dir that holds the configuration.
pub const CONFIG_FILE: &str = "config.toml";
/// The default `gzip_level` (the table's, checked by a test).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

/// The default `mass_delete_percent`: deleting more than this share of a share's files in
/// one scan is held until `confirm-deletes` (100: never held).
pub const DEFAULT_MASS_DELETE_PERCENT: u8 = 50;

/// The default `full_scan_interval`: seconds between full scans of a share whose tree
/// cannot be watched with inotify (the watch limit is too low); a watched share is scanned
/// where events say.
pub const DEFAULT_FULL_SCAN_INTERVAL: u64 = 300;

/// How much space must stay free (`min_free_space`): downloads wait rather than leave less
/// than this free on a share's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinFree {
    /// This many bytes.
    Bytes(u64),
    /// This percentage of the filesystem's size.
    Percent(u8),
}

/// The default `min_free_space`: 1% of the filesystem (as Syncthing's `minDiskFree`).
pub const DEFAULT_MIN_FREE: MinFree = MinFree::Percent(1);

impl MinFree {
    /// Bytes to keep free on a filesystem of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => total / 100 * u64::from(p.min(100)),
        }
    }
}

/// Where a setting's value in effect comes from (`config get` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Neither `config.toml` nor the environment sets it.
    Default,
    /// `config.toml` (or `config set`, which saves there).
    File,
    /// Its `CLEARSKIES_*` environment variable, which overrides `config.toml` at each start.
    Environment,
}

/// Each setting's source, by name.
pub type Sources = std::collections::BTreeMap<String, Source>;

/// The settings in effect, as an owner reads them: the receiving side of the supervisor's
/// watch channel. Reading takes a short read lock; never hold a value across an `.await`.
#[derive(Debug, Clone)]
pub struct Runtime(tokio::sync::watch::Receiver<Values>);

impl Runtime {
    /// A channel starting at `values`: the sending side (for the supervisor) and a reader.
    pub fn channel(values: Values) -> (tokio::sync::watch::Sender<Values>, Runtime) {
        let (tx, rx) = tokio::sync::watch::channel(values);
        (tx, Runtime(rx))
    }

    /// Values that never change (tests, tools).
    pub fn fixed(values: Values) -> Runtime {
        Runtime::channel(values).1
    }

    /// The `gzip` level new connections offer (0: not offered; at most 9).
    pub fn gzip_level(&self) -> u32 {
        self.0.borrow().gzip_level.min(9)
    }

    /// `mass_delete_percent` (at most 100: never held).
    pub fn mass_delete_percent(&self) -> u8 {
        self.0.borrow().mass_delete_percent.min(100)
    }

    /// `min_free_space`.
    pub fn min_free(&self) -> MinFree {
        self.0.borrow().min_free_space
    }

    /// How long versions are kept and how much space they may take (`None`: not kept).
    pub fn versions(&self) -> Option<(std::time::Duration, u64)> {
        let v = self.0.borrow();
        let days = u64::from(v.versions_keep_days);
        (days > 0).then(|| (std::time::Duration::from_secs(days * 86_400), v.versions_max_size))
    }

    /// `device_name`, or the host name when it is empty (or the host name cannot be read:
    /// empty, and conflict copies name the peer ID instead).
    pub fn device_name(&self) -> String {
        let name = self.0.borrow().device_name.clone();
        if !name.is_empty() {
            return name;
        }
        host_name()
    }

    /// `peers_gone_after` (`None`: 0, never reported).
    pub fn peers_gone_after(&self) -> Option<u64> {
        Some(self.0.borrow().peers_gone_after).filter(|s| *s > 0)
    }

    /// `scan_hashers` (0: one per core, at most 4).
    pub fn scan_hashers(&self) -> usize {
        usize::from(self.0.borrow().scan_hashers)
    }

    /// `full_scan_interval` (at least 1 s).
    pub fn full_scan_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0.borrow().full_scan_interval.max(1))
    }
}

/// The host name (empty if it cannot be read), read once: every connection sends it, and a
/// file read does not belong on the event loop each time.
pub fn host_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().chars().filter(|c| !c.is_control()).take(64).collect())
            .unwrap_or_default()
    })
    .clone()
}

/// Sets `values` in the TOML file `file` (created if missing), keeping every other key and
/// value; written to a temp file, fsynced and renamed over the old one.
pub fn save(file: &Path, values: &[(String, toml::Value)]) -> io::Result<()> {
    let mut table: toml::Table = match fs::read_to_string(file) {
        Ok(text) => text.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}")))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(e),
    };
    for (key, value) in values {
        table.insert(key.clone(), value.clone());
    }
    let temp = file.with_extension("toml.tmp");
    let mut f = fs::File::create(&temp)?;
    f.write_all(table.to_string().as_bytes())?;
    f.sync_all()?;
    fs::rename(&temp, file)?;
    if let Some(dir) = file.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_keeps_the_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CONFIG_FILE);
        let n = |n: i64| toml::Value::Integer(n);
        save(&file, &[("upload_limit".into(), n(1000))]).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap().trim(), "upload_limit = 1000");
        fs::write(&file, "# mine\nlisten_port = 4000\npeers = [\"a:1\"]\nupload_limit = 5\n").unwrap();
        save(&file, &[("upload_limit".into(), n(0)), ("download_limit".into(), n(7))]).unwrap();
        let t: toml::Table = fs::read_to_string(&file).unwrap().parse().unwrap();
        assert_eq!(t["listen_port"].as_integer(), Some(4000));
        assert_eq!(t["peers"].as_array().map(Vec::len), Some(1));
        assert_eq!(t["upload_limit"].as_integer(), Some(0));
        assert_eq!(t["download_limit"].as_integer(), Some(7));
        fs::write(&file, "not = [toml").unwrap();
        assert!(save(&file, &[("upload_limit".into(), n(1))]).is_err(), "a broken file is not overwritten");
        assert_eq!(fs::read_to_string(&file).unwrap(), "not = [toml");
    }
}
