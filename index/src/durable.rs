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
//! - Linux 5.17 or later: before 5.8, `syncfs` does not report writeback errors, so a page
//!   lost to an I/O error would go unnoticed, and before 5.17 it dropped the filesystem's
//!   own commit and flush errors (`->sync_fs`). Since 5.8 the filesystem keeps one error
//!   sequence, and `syncfs` on a handle reports every error since that handle was opened.
//!   The handle used is the batch's temp file that was opened first, so it was open before
//!   any byte of the batch was written; the writers keep their files open until the
//!   install (no handle is held longer, so nothing keeps a disk from being unmounted).
//!   A resumed download (bytes an earlier handle wrote) is fsynced by its writer.
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
/// first byte was written, and when it had been opened.
#[derive(Debug)]
pub struct Unsynced {
    /// The temp file.
    pub file: File,
    /// When it had been opened (taken after the open: the handle opened first is then the
    /// one with the earliest time, and it was open before any byte of the others was
    /// written).
    pub started: Instant,
    /// Its place among the unsynced files a share may hold open ([`Slots`]).
    pub slot: Slot,
}

/// How many unsynced downloads a share may hold open at once, waiting for an install:
/// beyond that, writers fsync their files themselves, so a slow install never piles up
/// open files.
#[derive(Debug, Clone)]
pub struct Slots(std::sync::Arc<std::sync::atomic::AtomicUsize>, usize);

/// One of [`Slots`], given back when dropped.
#[derive(Debug)]
pub struct Slot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Slots {
    /// At most `max` at once.
    pub fn new(max: usize) -> Slots {
        Slots(std::sync::Arc::default(), max)
    }

    /// A slot, if one is free.
    pub fn take(&self) -> Option<Slot> {
        use std::sync::atomic::Ordering::AcqRel;
        let took = self.0.fetch_update(AcqRel, std::sync::atomic::Ordering::Acquire, |n| (n < self.1).then_some(n + 1));
        took.ok().map(|_| Slot(self.0.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Whether small downloads into the share at `root` may be made durable a batch at a time
/// (see the module's conditions).
pub fn allowed(root: &Path) -> bool {
    let Some(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok() else { return false };
    if !kernel_reports_syncfs_errors(&release) {
        return false;
    }
    File::open(root).is_ok_and(|f| commits(&f))
}

/// Whether `f` is on a filesystem whose `syncfs` is known to commit and flush.
fn commits(f: &File) -> bool {
    // (`f_type` is an i64 here, a u32 or i32 on some other architectures.)
    #[allow(clippy::useless_conversion)]
    fstatfs(f).is_ok_and(|s| [EXT4, XFS, BTRFS].contains(&i64::from(s.f_type)))
}

/// Whether a kernel of `release` (`uname -r`) reports every error from `syncfs`: 5.17 or
/// later (writeback errors since 5.8; the filesystem's own commit and flush errors, which
/// `sync_filesystem` dropped before, since 5.17).
fn kernel_reports_syncfs_errors(release: &str) -> bool {
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 17),
        _ => false,
    }
}

/// Makes `files` durable: on each filesystem among them, one `syncfs` through the handle
/// opened first (told of every writeback error there since before any of
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
        // (The filesystem is checked again: the root may have been mounted since the start.)
        match first.filter(|(u, _)| commits(&u.file)).map(|(u, _)| syncfs(&u.file)) {
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
    fn syncfs_is_trusted_from_linux_5_17() {
        for (release, ok) in [
            ("6.18.44-fc-v1272", true),
            ("5.17.0", true),
            ("6.1.0-28-amd64", true),
            ("5.16.20", false),
            ("5.10.0-28-amd64", false),
            ("5.8.0", false),
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
        let slots = Slots::new(3);
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
                Unsynced { file, started: Instant::now(), slot: slots.take().unwrap() }
            })
            .collect();
        let refs: Vec<&Unsynced> = files.iter().collect();
        let results = make_durable(&refs);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(Result::is_ok));
        assert!(make_durable(&[]).is_empty());
        // Every slot is taken until a file is let go.
        assert!(slots.take().is_none());
        drop(files);
        assert!(slots.take().is_some());
        // On this machine's temp directory (ext4 or tmpfs): allowed only where syncfs commits.
        #[allow(clippy::useless_conversion)]
        let kind = i64::from(fstatfs(File::open(root.path()).unwrap()).unwrap().f_type);
        let expected = kind == EXT4 || kind == XFS || kind == BTRFS;
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(allowed(root.path()), expected && kernel_reports_syncfs_errors(&release));
    }
}
