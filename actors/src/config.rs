//! The settings that change at runtime, and saving them into `config.toml` so that they
//! survive a restart. (The binary reads and validates the whole file at start-up.)

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The file in the data dir that holds the configuration.
pub const CONFIG_FILE: &str = "config.toml";
/// Upload limit, bytes per second (0: none).
pub const UPLOAD_LIMIT: &str = "upload_limit";
/// Download limit, bytes per second (0: none).
pub const DOWNLOAD_LIMIT: &str = "download_limit";
/// zlib level of the `gzip` extension, 1–9; 0 does not offer it.
pub const GZIP_LEVEL: &str = "gzip_level";
/// The default [`GZIP_LEVEL`].
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

static GZIP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(DEFAULT_GZIP_LEVEL);

/// `mass_delete_percent`: deleting more than this share of a share's files in one scan is
/// held until `confirm-deletes` (100: never held).
pub const MASS_DELETE_PERCENT: &str = "mass_delete_percent";
/// The default [`MASS_DELETE_PERCENT`].
pub const DEFAULT_MASS_DELETE_PERCENT: u8 = 50;

static MASS_DELETE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(DEFAULT_MASS_DELETE_PERCENT);

/// Sets [`MASS_DELETE_PERCENT`] (above 100: 100).
pub fn set_mass_delete_percent(percent: u8) {
    MASS_DELETE.store(percent.min(100), std::sync::atomic::Ordering::Relaxed);
}

/// [`MASS_DELETE_PERCENT`] now.
pub fn mass_delete_percent() -> u8 {
    MASS_DELETE.load(std::sync::atomic::Ordering::Relaxed)
}

/// `full_scan_interval`: seconds between full scans of a share whose tree cannot be watched
/// with inotify (the watch limit is too low); a watched share is scanned where events say.
pub const FULL_SCAN_INTERVAL: &str = "full_scan_interval";
/// The default [`FULL_SCAN_INTERVAL`], seconds.
pub const DEFAULT_FULL_SCAN_INTERVAL: u64 = 300;

static FULL_SCAN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DEFAULT_FULL_SCAN_INTERVAL);

/// Sets [`FULL_SCAN_INTERVAL`] (at least 1 s).
pub fn set_full_scan_interval(secs: u64) {
    FULL_SCAN.store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// [`FULL_SCAN_INTERVAL`] now.
pub fn full_scan_interval() -> std::time::Duration {
    std::time::Duration::from_secs(FULL_SCAN.load(std::sync::atomic::Ordering::Relaxed))
}

/// `min_free_space`: downloads wait rather than leave less than this free on a share's
/// filesystem (bytes, or a percentage of the filesystem).
pub const MIN_FREE_SPACE: &str = "min_free_space";

/// How much space must stay free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinFree {
    /// This many bytes.
    Bytes(u64),
    /// This percentage of the filesystem's size.
    Percent(u8),
}

/// The default [`MIN_FREE_SPACE`]: 1% of the filesystem (as Syncthing's `minDiskFree`).
pub const DEFAULT_MIN_FREE: MinFree = MinFree::Percent(1);

/// Encoded as the low 63 bits and a flag in the top bit (percent).
static MIN_FREE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new((1 << 63) | 1);

/// Sets [`MIN_FREE_SPACE`].
pub fn set_min_free(min: MinFree) {
    let v = match min {
        MinFree::Bytes(b) => b & !(1 << 63),
        MinFree::Percent(p) => (1 << 63) | u64::from(p.min(100)),
    };
    MIN_FREE.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// [`MIN_FREE_SPACE`] now.
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
pub fn save(file: &Path, values: &[(String, u64)]) -> io::Result<()> {
    let mut table: toml::Table = match fs::read_to_string(file) {
        Ok(text) => text.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}")))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(e),
    };
    for (key, value) in values {
        let v = i64::try_from(*value).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "value too large"))?;
        table.insert(key.clone(), toml::Value::Integer(v));
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
        save(&file, &[(UPLOAD_LIMIT.into(), 1000)]).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap().trim(), "upload_limit = 1000");
        fs::write(&file, "# mine\nlisten_port = 4000\npeers = [\"a:1\"]\nupload_limit = 5\n").unwrap();
        save(&file, &[(UPLOAD_LIMIT.into(), 0), (DOWNLOAD_LIMIT.into(), 7)]).unwrap();
        let t: toml::Table = fs::read_to_string(&file).unwrap().parse().unwrap();
        assert_eq!(t["listen_port"].as_integer(), Some(4000));
        assert_eq!(t["peers"].as_array().map(Vec::len), Some(1));
        assert_eq!(t["upload_limit"].as_integer(), Some(0));
        assert_eq!(t["download_limit"].as_integer(), Some(7));
        fs::write(&file, "not = [toml").unwrap();
        assert!(save(&file, &[(UPLOAD_LIMIT.into(), 1)]).is_err(), "a broken file is not overwritten");
        assert_eq!(fs::read_to_string(&file).unwrap(), "not = [toml");
    }
}
