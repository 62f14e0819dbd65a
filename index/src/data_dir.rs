//! The daemon's own data directory (share keys, index, log), which a share may contain: it is
//! recognised by device and inode, whatever path or mount reaches it, and is never indexed
//! (the scanner) or watched (the `Share` actor's watcher).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The data directory, as (device, inode).
static DATA_DIR: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Records the data directory (once, at start; later calls are ignored).
pub fn set_data_dir(path: &Path) {
    if let Ok(m) = fs::metadata(path) {
        let _ = DATA_DIR.set((m.dev(), m.ino()));
    }
}

/// Whether the directory at `path`, whose inode is `ino`, is the data directory (its device
/// is looked up only when the inode matches).
pub fn is_data_dir(ino: u64, path: &Path) -> bool {
    match DATA_DIR.get() {
        Some(&(dev, data_ino)) if data_ino == ino => {
            fs::symlink_metadata(path).is_ok_and(|m| m.dev() == dev && m.ino() == data_ino)
        }
        _ => false,
    }
}
