//! The daemon's settings: the table that defines each one ([`defs`]), how values are read
//! ([`parse`]), the runtime values their owners read (atomics, set at start and by
//! `config set`), and saving values into `config.toml`. The binary reads and checks the
//! whole file at start-up by iterating [`SETTINGS`].
//!
//! Runtime values reach their owners (the share, transfer and peer actors) through the
//! atomics below rather than a `watch` channel: each owner reads its value where it uses it,
//! so a change needs no message to every share.

pub mod defs;
pub mod parse;

pub use self::defs::{hand_over, setting, Applies, Setting, Values, SETTINGS};
pub use self::parse::Raw;

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The file in the data dir that holds the configuration.
pub const CONFIG_FILE: &str = "config.toml";
/// The default `gzip_level` (the table's, checked by a test; the atomic starts with it).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

static GZIP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(DEFAULT_GZIP_LEVEL);

/// The default `mass_delete_percent`: deleting more than this share of a share's files in
/// one scan is held until `confirm-deletes` (100: never held).
pub const DEFAULT_MASS_DELETE_PERCENT: u8 = 50;

static MASS_DELETE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(DEFAULT_MASS_DELETE_PERCENT);

/// Sets `mass_delete_percent` (above 100: 100).
pub fn set_mass_delete_percent(percent: u8) {
    MASS_DELETE.store(percent.min(100), std::sync::atomic::Ordering::Relaxed);
}

/// `mass_delete_percent` now.
pub fn mass_delete_percent() -> u8 {
    MASS_DELETE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The default `full_scan_interval`: seconds between full scans of a share whose tree
/// cannot be watched with inotify (the watch limit is too low); a watched share is scanned
/// where events say.
pub const DEFAULT_FULL_SCAN_INTERVAL: u64 = 300;

static FULL_SCAN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DEFAULT_FULL_SCAN_INTERVAL);

/// Sets `full_scan_interval` (at least 1 s).
pub fn set_full_scan_interval(secs: u64) {
    FULL_SCAN.store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// `full_scan_interval` now.
pub fn full_scan_interval() -> std::time::Duration {
    std::time::Duration::from_secs(FULL_SCAN.load(std::sync::atomic::Ordering::Relaxed))
}

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

/// Encoded as the low 63 bits and a flag in the top bit (percent).
static MIN_FREE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new((1 << 63) | 1);

/// Sets `min_free_space`.
pub fn set_min_free(min: MinFree) {
    let v = match min {
        MinFree::Bytes(b) => b & !(1 << 63),
        MinFree::Percent(p) => (1 << 63) | u64::from(p.min(100)),
    };
    MIN_FREE.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// `min_free_space` now.
pub fn min_free() -> MinFree {
    let v = MIN_FREE.load(std::sync::atomic::Ordering::Relaxed);
    if v & (1 << 63) != 0 {
        MinFree::Percent(u8::try_from(v & 0xff).unwrap_or(100))
    } else {
        MinFree::Bytes(v)
    }
}

impl MinFree {
    /// Bytes to keep free on a filesystem of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => total / 100 * u64::from(p),
        }
    }
}

/// Sets the `gzip` level new connections offer (0: gzip is not offered; above 9: 9).
pub fn set_gzip_level(level: u32) {
    GZIP.store(level.min(9), std::sync::atomic::Ordering::Relaxed);
}

/// The `gzip` level new connections offer (0: not offered).
pub fn gzip_level() -> u32 {
    GZIP.load(std::sync::atomic::Ordering::Relaxed)
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
