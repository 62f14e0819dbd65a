//! Patching a large file where the filesystem can share blocks between files (btrfs, XFS):
//! the temp file starts as a clone of the old version, so the copies a delta makes from the
//! same place in the old version are already there and only need hashing, and only the
//! changed blocks are written and synced. Elsewhere (ext4) the clone is refused at once and
//! the patch writes every byte, as before.

use std::fs::File;
use std::io::{self, Seek};
use std::os::unix::fs::MetadataExt;

use clearskies_protocol::rdiff::PatchOut;
use sha2::Digest;

use super::TempWriter;

/// What says a file is unchanged: inode, size, mtime and ctime (nanoseconds).
pub type Stamp = (u64, u64, i64, i64, i64, i64);

/// `f`'s [`Stamp`] now.
pub fn stamp(f: &File) -> io::Result<Stamp> {
    let m = f.metadata()?;
    Ok((m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

impl TempWriter {
    /// Makes the empty temp file a clone of `basis` where the filesystem shares blocks
    /// (`FICLONE`); whether it did. After a clone, [`TempWriter::append_copied`] skips the
    /// writing of bytes that are already in place, and `finish` cuts what is left of the
    /// clone beyond the new end.
    pub fn clone_basis(&mut self, basis: &File) -> bool {
        if self.written != 0 {
            return false;
        }
        let Some(f) = self.file.as_ref() else { return false };
        if rustix::fs::ioctl_ficlone(f, basis).is_err() {
            return false;
        }
        match f.metadata() {
            Ok(m) => {
                self.cloned = m.len();
                true
            }
            Err(_) => {
                // Whatever the clone left must not stay under the bytes written next: if it
                // cannot be cut now, `finish` cuts the file to what was written (or fails).
                if f.set_len(0).is_err() {
                    self.stale_tail = true;
                }
                false
            }
        }
    }

    /// Appends bytes a patch copied from offset `offset` of the basis: when they go to that
    /// same offset of a clone of it, they are only hashed (the clone holds them already).
    pub fn append_copied(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = self.written.saturating_add(data.len() as u64);
        if offset != self.written || end > self.cloned || end > self.limit {
            return self.append(data);
        }
        let f = self.file.as_mut().ok_or_else(|| io::Error::other("temp file already finished"))?;
        f.seek(io::SeekFrom::Start(end))?;
        self.hasher.update(data);
        self.written = end;
        Ok(())
    }
}

impl PatchOut for TempWriter {
    fn literal(&mut self, data: &[u8]) -> io::Result<()> {
        self.append(data)
    }

    fn copied(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.append_copied(offset, data)
    }
}
