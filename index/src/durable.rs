//! Batched durability for small downloads: their temp files are written without an fsync
//! each, and the install that renames them into place first makes the whole batch durable
//! with one `syncfs` of the share's filesystem.
//!
//! The order that keeps a power loss from leaving a torn or empty file under a user's name
//! is the same as with one fsync per file: every byte of a temp file is on stable storage
//! before the rename that puts it in place is issued, and the renames are durable
//! (directory fsyncs) before the index records the files as installed. `syncfs` moves the
//! first step from each file to the batch. On ext4, XFS and btrfs it writes back every dirty
//! page and inode of the filesystem, waits for that, commits the journal (or transaction)
//! and flushes the device's cache, which is what an fsync of each file would have done.
//! ARCHITECTURE.md ("Batched durability") has the whole argument.
//!
//! Two conditions, checked when a share's transfers start ([`allowed`]); without them every
//! download is fsynced by itself as before:
//! - Linux 5.8 or later: before it, `syncfs` does not report writeback errors, so a page
//!   lost to an I/O error would go unnoticed. Since 5.8 the filesystem keeps one error
//!   sequence, and `syncfs` on a handle reports every error since that handle was opened.
//!   The handle used is the temp file of the batch whose writer started first, opened
//!   before any byte of the batch was written; the writers keep their files open until the
//!   install (no handle is held longer, so nothing keeps a disk from being unmounted).
//! - ext4, XFS or btrfs: filesystems whose `sync_fs` is known to commit and flush. FUSE,
//!   network filesystems and overlays keep the per-file fsync.
//!
//! A batch whose `syncfs` fails falls back to an fsync of each file through its writer's
//! handle, which says exactly which ones failed. Temp files on two filesystems (the root
//! was mounted again meanwhile) get one `syncfs` per filesystem.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Instant;

use rustix::fs::{fstat, fstatfs, syncfs};

/// Downloads up to this size may leave their fsync to the install's `syncfs`. Larger ones
/// are fsynced by their writer: a batch's `syncfs` then never waits for gigabytes.
pub const BATCHED_UP_TO: u64 = 1 << 20;

/// `statfs` magic numbers of the filesystems whose `syncfs` is known to be a full commit.
const EXT4: i64 = 0xEF53;
const XFS: i64 = 0x5846_5342;
const BTRFS: i64 = 0x9123_683E;

/// A downloaded file its writer left unsynced: the writer's handle, opened before the
/// first byte was written, and when the writer started.
#[derive(Debug)]
pub struct Unsynced {
    /// The temp file.
    pub file: File,
    /// When its writer started (before it opened the file).
    pub started: Instant,
}

/// Whether small downloads into the share at `root` may be made durable a batch at a time
/// (see the module's conditions).
pub fn allowed(root: &Path) -> bool {
    let Some(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok() else { return false };
    if !kernel_reports_syncfs_errors(&release) {
        return false;
    }
    // (`f_type` is an i64 here, a u32 or i32 on some other architectures.)
    #[allow(clippy::useless_conversion)]
    File::open(root)
        .and_then(|f| Ok(i64::from(fstatfs(&f)?.f_type)))
        .is_ok_and(|kind| [EXT4, XFS, BTRFS].contains(&kind))
}

/// Whether a kernel of `release` (`uname -r`) reports writeback errors from `syncfs`: 5.8
/// or later.
fn kernel_reports_syncfs_errors(release: &str) -> bool {
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 8),
        _ => false,
    }
}

/// Makes `files` durable: on each filesystem among them, one `syncfs` through the handle
/// whose writer started first (told of every writeback error there since before any of
/// these bytes were written); where that fails, an fsync of each. Per file, the error that
/// keeps it from being installed.
pub fn make_durable(files: &[&Unsynced]) -> Vec<io::Result<()>> {
    let devices: Vec<Option<u64>> = files.iter().map(|u| fstat(&u.file).ok().map(|s| s.st_dev)).collect();
    let mut synced: Vec<Option<u64>> = Vec::new();
    let mut failed: Vec<Option<u64>> = Vec::new();
    for dev in devices.iter().filter(|d| d.is_some()) {
        if synced.contains(dev) || failed.contains(dev) {
            continue;
        }
        let first = files.iter().zip(&devices).filter(|(_, d)| *d == dev).min_by_key(|(u, _)| u.started);
        match first.map(|(u, _)| syncfs(&u.file)) {
            Some(Ok(())) => synced.push(*dev),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "syncfs failed; fsyncing the downloaded files one by one");
                failed.push(*dev);
            }
            None => {}
        }
    }
    files
        .iter()
        .zip(&devices)
        .map(|(u, dev)| if dev.is_some() && synced.contains(dev) { Ok(()) } else { u.file.sync_all() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncfs_is_trusted_from_linux_5_8() {
        for (release, ok) in [
            ("6.18.44-fc-v1272", true),
            ("5.8.0", true),
            ("5.10.0-28-amd64", true),
            ("5.7.19", false),
            ("4.4.302+", false),
            ("3.10.0-1160.el7.x86_64", false),
            ("", false),
            ("banana", false),
            ("6", false),
        ] {
            assert_eq!(kernel_reports_syncfs_errors(release), ok, "{release}");
        }
    }

    #[test]
    fn every_unsynced_file_is_made_durable() {
        let root = tempfile::tempdir().unwrap();
        let files: Vec<Unsynced> = (0..3)
            .map(|i| {
                let mut file = File::options()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(root.path().join(format!("t{i}")))
                    .unwrap();
                std::io::Write::write_all(&mut file, b"bytes").unwrap();
                Unsynced { file, started: Instant::now() }
            })
            .collect();
        let refs: Vec<&Unsynced> = files.iter().collect();
        let results = make_durable(&refs);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(Result::is_ok));
        assert!(make_durable(&[]).is_empty());
        // On this machine's temp directory (ext4 or tmpfs): allowed only where syncfs commits.
        #[allow(clippy::useless_conversion)]
        let kind = i64::from(fstatfs(File::open(root.path()).unwrap()).unwrap().f_type);
        let expected = kind == EXT4 || kind == XFS || kind == BTRFS;
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(allowed(root.path()), expected && kernel_reports_syncfs_errors(&release));
    }
}
