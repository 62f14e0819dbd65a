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
//! Two conditions, checked when a share starts ([`FsHandle::open`]); without them every
//! download is fsynced by itself as before:
//! - Linux 5.8 or later: before it, `syncfs` does not report writeback errors, so a page
//!   lost to an I/O error would go unnoticed. Since 5.8 the filesystem keeps one error
//!   sequence, and `syncfs` on a handle reports every error since that handle was opened
//!   (or that no one had seen). The handle is kept open from the share's start.
//! - ext4, XFS or btrfs: filesystems whose `sync_fs` is known to commit and flush. FUSE,
//!   network filesystems and overlays keep the per-file fsync.
//!
//! A batch whose `syncfs` fails, or whose temp files are on another filesystem than the
//! handle (the root was mounted again), falls back to an fsync of each file, which says
//! exactly which ones failed.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{fstat, fstatfs, syncfs};

use crate::fsops::Located;

/// Downloads up to this size may leave their fsync to the install's `syncfs`. Larger ones
/// are fsynced by their writer: a batch's `syncfs` then never waits for gigabytes.
pub const BATCHED_UP_TO: u64 = 1 << 20;

/// `statfs` magic numbers of the filesystems whose `syncfs` is known to be a full commit.
const EXT4: i64 = 0xEF53;
const XFS: i64 = 0x5846_5342;
const BTRFS: i64 = 0x9123_683E;

/// An open handle on the filesystem of a share's root, for its `syncfs`.
#[derive(Debug)]
pub struct FsHandle {
    file: File,
    dev: u64,
}

impl FsHandle {
    /// A handle on the filesystem at `root`, if small downloads there may be made durable in
    /// batches (see the module's conditions); `None` otherwise.
    pub fn open(root: &Path) -> Option<FsHandle> {
        if !kernel_reports_syncfs_errors(&std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?) {
            return None;
        }
        let file = File::open(root).ok()?;
        // (`f_type` is an i64 here, a u32 or i32 on some other architectures.)
        #[allow(clippy::useless_conversion)]
        let kind = i64::from(fstatfs(&file).ok()?.f_type);
        if ![EXT4, XFS, BTRFS].contains(&kind) {
            return None;
        }
        let dev = fstat(&file).ok()?.st_dev;
        Some(FsHandle { file, dev })
    }

    /// Whether `dir` is on this handle's filesystem.
    fn holds(&self, dir: &crate::beneath::DirFd) -> bool {
        dir.device().is_ok_and(|d| d == self.dev)
    }
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

/// Makes the written, unsynced temp files `temps` durable: one `syncfs` on `fs` when they
/// are all on its filesystem, else (or if it fails) an fsync of each. Returns, per temp
/// file, the error that keeps it from being installed.
pub fn make_durable(fs: Option<&FsHandle>, temps: &[&Located]) -> Vec<io::Result<()>> {
    if temps.is_empty() {
        return Vec::new();
    }
    if let Some(fs) = fs.filter(|fs| temps.iter().all(|t| fs.holds(&t.dir))) {
        match syncfs(&fs.file) {
            Ok(()) => return temps.iter().map(|_| Ok(())).collect(),
            Err(e) => {
                tracing::warn!(error = %e, files = temps.len(),
                    "syncfs failed; fsyncing the downloaded files one by one");
            }
        }
    }
    temps.iter().map(|t| t.dir.open_file(&t.name, false)?.sync_all()).collect()
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
    fn unsynced_temps_are_made_durable_with_or_without_a_handle() {
        let root = tempfile::tempdir().unwrap();
        let dirs = crate::beneath::Root::open(root.path()).unwrap();
        let mut temps = Vec::new();
        for i in 0..3 {
            let name = format!("t{i}");
            let mut f = dirs.root_dir().create_file(&name, 0o600, true).unwrap();
            std::io::Write::write_all(&mut f, b"bytes").unwrap();
            temps.push(Located { dir: dirs.root_dir().clone(), name });
        }
        let refs: Vec<&Located> = temps.iter().collect();
        // Whatever this machine's filesystem, both ways succeed on files that exist.
        let handle = FsHandle::open(root.path());
        assert!(make_durable(handle.as_ref(), &refs).iter().all(Result::is_ok));
        assert!(make_durable(None, &refs).iter().all(Result::is_ok));
        // A temp file that vanished is reported, alone, by the per-file path.
        temps[1].remove();
        let results = make_durable(None, &refs);
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert!(make_durable(handle.as_ref(), &[]).is_empty());
    }
}
