//! Reaching files below a share's root through directory handles, never through a symlink.
//!
//! A path string checked once and used later is a race: a local user who can write inside
//! the share may swap a directory for a symlink in between, and the daemon would then
//! create, rename, delete or read wherever the link points, as its own user. Here every
//! path below the root is resolved at the moment of the operation, from a handle on the
//! root, with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, on a kernel without
//! `openat2`, one `openat(O_NOFOLLOW)` per segment): a symlink anywhere on the way is an
//! error (`ELOOP`), never followed. The operation itself then runs on the directory handle
//! (`openat`, `renameat`, `unlinkat`, `mkdirat`, `statx` with `AT_SYMLINK_NOFOLLOW`), on a
//! single name, so swapping a directory after it was opened changes nothing: the handle
//! still names the directory that was checked.
//!
//! The root itself is the path the user configured; it is opened once per [`Root`] (a
//! symlink there is the user's choice and is followed). Whoever holds a `Root` for long
//! opens a new one to see a replaced root (the applier opens one per batch).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

use crate::record::LocalStat;

/// A directory's names with their types, and (lossily) its names that are not UTF-8.
pub type Listing = (Vec<(String, FileType)>, Vec<String>);

/// A handle on a share's root directory.
#[derive(Debug, Clone)]
pub struct Root {
    path: PathBuf,
    dir: DirFd,
}

/// A handle on a directory below (or at) a share's root, opened without following a
/// symlink. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirFd(Arc<OwnedFd>);

/// What is at a name, without following a symlink there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Regular file, directory, symlink, FIFO, …
    pub file_type: FileType,
    /// Permission bits (and setuid/setgid/sticky), `st_mode & 0o7777`.
    pub mode: u32,
    /// What the index remembers of it.
    pub stat: LocalStat,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
}

impl Meta {
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type == FileType::RegularFile
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }

    /// From `statx`.
    fn from_statx(s: &rfs::Statx) -> Meta {
        let ns = |t: &rfs::StatxTimestamp| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
        let mode = u32::from(s.stx_mode);
        Meta {
            file_type: FileType::from_raw_mode(mode),
            mode: mode & 0o7777,
            stat: LocalStat {
                ino: s.stx_ino,
                size: s.stx_size,
                mtime_ns: ns(&s.stx_mtime),
                ctime_ns: ns(&s.stx_ctime),
            },
            mtime: (s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
        }
    }

    /// From the standard library's metadata (of an open handle).
    pub fn from_std(m: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt;
        Meta {
            file_type: FileType::from_raw_mode(m.mode()),
            mode: m.mode() & 0o7777,
            stat: crate::fsops::stat_of(m),
            mtime: (m.mtime(), u32::try_from(m.mtime_nsec()).unwrap_or(0)),
        }
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// Refuses a name that is not one plain segment (empty, `.`, `..`, or holding `/` or NUL).
fn check_name(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a single path segment: {name:?}")));
    }
    Ok(name)
}

/// Whether `openat2` is missing here (an old kernel, or a sandbox that filters it).
fn no_openat2(e: Errno) -> bool {
    e == Errno::NOSYS || e == Errno::PERM
}

const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

impl Root {
    /// Opens the root at `path` (a symlink there is followed: the root is what the user
    /// configured).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(path, DIR_FLAGS, Mode::empty()).map_err(errno)?;
        Ok(Root { path: path.to_owned(), dir: DirFd(Arc::new(fd)) })
    }

    /// The root's path, as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory itself.
    pub fn root_dir(&self) -> &DirFd {
        &self.dir
    }

    /// Opens the directory at `rel` (`a/b`, relative to the root; empty for the root)
    /// without following any symlink on the way. Errors: `NotFound` if something on the
    /// way is missing; `ELOOP` for a symlink, `ENOTDIR` for a file on the way.
    pub fn dir(&self, rel: &str) -> io::Result<DirFd> {
        let segments = segments(rel)?;
        if segments.is_empty() {
            return Ok(self.dir.clone());
        }
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        match rfs::openat2(self.dir.fd(), rel, DIR_FLAGS, Mode::empty(), how) {
            Ok(fd) => Ok(DirFd(Arc::new(fd))),
            Err(e) if no_openat2(e) => self.walk(&segments),
            Err(e) => Err(errno(e)),
        }
    }

    /// [`Root::dir`] without `openat2`: one `openat(O_NOFOLLOW)` per segment.
    fn walk(&self, segments: &[&str]) -> io::Result<DirFd> {
        let mut cur = self.dir.clone();
        for s in segments {
            cur = cur.subdir(s)?;
        }
        Ok(cur)
    }

    /// The directory holding `p` (a path below the root, as built by joining share paths
    /// onto [`Root::path`]) and `p`'s last name.
    pub fn locate(&self, p: &Path) -> io::Result<(DirFd, String)> {
        let rel = p.strip_prefix(&self.path).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("not below the share root: {}", p.display()))
        })?;
        let mut names = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => names.push(
                    s.to_str().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not UTF-8"))?.to_owned(),
                ),
                _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain path below the root")),
            }
        }
        let name = names.pop().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the root itself"))?;
        Ok((self.dir(&names.join("/"))?, name))
    }
}

fn segments(rel: &str) -> io::Result<Vec<&str>> {
    rel.split('/').filter(|s| !s.is_empty()).map(check_name).collect()
}

impl DirFd {
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The subdirectory `name`, never through a symlink.
    pub fn subdir(&self, name: &str) -> io::Result<DirFd> {
        let fd =
            rfs::openat(self.fd(), check_name(name)?, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty()).map_err(errno)?;
        Ok(DirFd(Arc::new(fd)))
    }

    /// The subdirectory `name`, created (with `mode`, less the umask) if missing.
    pub fn subdir_or_create(&self, name: &str, mode: u32) -> io::Result<DirFd> {
        match self.subdir(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.mkdir(name, mode)?;
                self.subdir(name)
            }
            other => other,
        }
    }

    /// What is at `name` (`None` if nothing), not following a symlink.
    pub fn stat(&self, name: &str) -> io::Result<Option<Meta>> {
        let name = check_name(name)?;
        match rfs::statx(self.fd(), name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS) {
            Ok(s) => Ok(Some(Meta::from_statx(&s))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) if e == Errno::NOSYS || e == Errno::PERM => {
                // No statx: an O_PATH handle on the entry itself, then fstat.
                match rfs::openat(self.fd(), name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                    Ok(fd) => Ok(Some(Meta::from_std(&File::from(fd).metadata()?))),
                    Err(Errno::NOENT) => Ok(None),
                    Err(e) => Err(errno(e)),
                }
            }
            Err(e) => Err(errno(e)),
        }
    }

    /// Opens `name` for reading (`write`: for writing) without following a symlink and
    /// without blocking on a FIFO; refuses anything but a regular file.
    pub fn open_file(&self, name: &str, write: bool) -> io::Result<File> {
        let access = if write { OFlags::WRONLY } else { OFlags::RDONLY };
        let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rfs::openat(self.fd(), check_name(name)?, flags, Mode::empty()).map_err(errno)?;
        regular(fd)
    }

    /// Creates `name` (or opens it, truncated if `truncate`) for reading and writing, with
    /// `mode`; never through a symlink, never a FIFO or device.
    pub fn create_file(&self, name: &str, mode: u32, truncate: bool) -> io::Result<File> {
        let mut flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        if truncate {
            flags |= OFlags::TRUNC;
        }
        let fd = rfs::openat(self.fd(), check_name(name)?, flags, Mode::from_raw_mode(mode)).map_err(errno)?;
        regular(fd)
    }

    /// Opens the directory `name` itself (for its mode and times), never through a symlink.
    pub fn open_subdir_file(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(self.fd(), check_name(name)?, flags, Mode::empty()).map_err(errno)?;
        Ok(File::from(fd))
    }

    /// Makes the directory `name` (`mode`, less the umask); an existing one is fine.
    pub fn mkdir(&self, name: &str, mode: u32) -> io::Result<()> {
        match rfs::mkdirat(self.fd(), check_name(name)?, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    /// Removes the file (or symlink) `name`.
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        rfs::unlinkat(self.fd(), check_name(name)?, AtFlags::empty()).map_err(errno)
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &str) -> io::Result<()> {
        rfs::unlinkat(self.fd(), check_name(name)?, AtFlags::REMOVEDIR).map_err(errno)
    }

    /// Renames `name` here to `to_name` in `to` (replacing what is there).
    pub fn rename(&self, name: &str, to: &DirFd, to_name: &str) -> io::Result<()> {
        rfs::renameat(self.fd(), check_name(name)?, to.fd(), check_name(to_name)?).map_err(errno)
    }

    /// Renames `name` here to `to_name` in `to`, failing with `AlreadyExists` instead of
    /// replacing what is there (`RENAME_NOREPLACE`; where the filesystem lacks it, a check
    /// just before the rename).
    pub fn rename_noreplace(&self, name: &str, to: &DirFd, to_name: &str) -> io::Result<()> {
        let (from, into) = (check_name(name)?, check_name(to_name)?);
        match rfs::renameat_with(self.fd(), from, to.fd(), into, rfs::RenameFlags::NOREPLACE) {
            Err(Errno::INVAL | Errno::NOSYS) => {
                if to.stat(into)?.is_some() {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{into} exists")));
                }
                self.rename(from, to, into)
            }
            other => other.map_err(errno),
        }
    }

    /// Makes `to_name` in `to` a second name (a hard link) for the file `name` here; a
    /// symlink at `name` is linked itself, never followed.
    pub fn link(&self, name: &str, to: &DirFd, to_name: &str) -> io::Result<()> {
        rfs::linkat(self.fd(), check_name(name)?, to.fd(), check_name(to_name)?, AtFlags::empty()).map_err(errno)
    }

    /// The device (filesystem) the directory is on.
    pub fn device(&self) -> io::Result<u64> {
        rfs::fstat(self.fd()).map(|s| s.st_dev).map_err(errno)
    }

    /// Whether a name looked up in this directory is the name on disk, byte for byte. Only
    /// on a filesystem known to compare names exactly (ext4, XFS, Btrfs, F2FS, tmpfs) and,
    /// where directories can fold case (ext4, F2FS, tmpfs), in one that does not. Elsewhere
    /// (vfat, exFAT, SMB, NTFS; ZFS, whose datasets can be case-insensitive; anything not
    /// known) a lookup of `Foo` may find `foo`, and only a listing tells the names.
    pub fn names_are_exact(&self) -> bool {
        const EXT4: i128 = 0xEF53;
        const XFS: i128 = 0x5846_5342;
        const BTRFS: i128 = 0x9123_683E;
        const F2FS: i128 = 0xF2F5_2010;
        const TMPFS: i128 = 0x0102_1994;
        /// `FS_CASEFOLD_FL`.
        const CASEFOLD: u32 = 0x4000_0000;
        let Ok(fs) = rfs::fstatfs(self.fd()) else { return false };
        let kind = i128::from(fs.f_type);
        if kind == XFS || kind == BTRFS {
            return true;
        }
        if ![EXT4, F2FS, TMPFS].contains(&kind) {
            return false;
        }
        // (The flags need a handle opened for reading, not the `O_PATH` one.)
        let flags = rfs::openat(self.fd(), ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .and_then(rfs::ioctl_getflags);
        flags.is_ok_and(|f| f.bits() & CASEFOLD == 0)
    }

    /// Fsyncs the directory (after a rename or unlink in it).
    pub fn sync(&self) -> io::Result<()> {
        let fd = rfs::openat(self.fd(), ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(errno)?;
        rfs::fsync(fd).map_err(errno)
    }

    /// The names in the directory (not `.` and `..`), with their types as the listing says
    /// them (`Unknown` on filesystems that do not say); and, lossily, the names that are not
    /// UTF-8 (never synced).
    pub fn list(&self) -> io::Result<Listing> {
        let fd = rfs::openat(self.fd(), ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(errno)?;
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        for e in rfs::Dir::new(fd).map_err(errno)? {
            let e = e.map_err(errno)?;
            let Ok(name) = e.file_name().to_str() else {
                bad.push(e.file_name().to_string_lossy().into_owned());
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            out.push((name.to_owned(), e.file_type()));
        }
        Ok((out, bad))
    }
}

/// The handle as a file if it is a regular file.
fn regular(fd: OwnedFd) -> io::Result<File> {
    let f = File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(f)
}

/// Whether an error says a symlink (or a file) was where a directory was expected on the
/// way: the path is refused, not missing.
pub fn is_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::LOOP.raw_os_error() || c == Errno::NOTDIR.raw_os_error() || c == Errno::XDEV.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_on_the_way_are_refused_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("a/link")).unwrap();
        let r = Root::open(root.path()).unwrap();
        assert!(r.dir("a/b").is_ok());
        let e = r.dir("a/link").unwrap_err();
        assert!(is_refused(&e), "{e}");
        assert!(r.dir("a/link/x").is_err());
        assert_eq!(r.dir("a/missing").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(r.dir("..").is_err() && r.dir("a/../..").is_err());
        // The same without openat2.
        assert!(r.walk(&["a", "b"]).is_ok());
        assert!(is_refused(&r.walk(&["a", "link"]).unwrap_err()));
        assert!(r.walk(&["a", "link", "x"]).is_err());
        assert_eq!(r.walk(&["a", "missing"]).unwrap_err().kind(), io::ErrorKind::NotFound);
        let a = r.dir("a").unwrap();
        assert!(a.subdir("link").is_err());
        assert!(a.open_file("link", false).is_err());
        assert!(a.create_file("link", 0o600, true).is_err());
        assert!(a.stat("link").unwrap().unwrap().file_type == FileType::Symlink);
        let (d, name) = r.locate(&root.path().join("a/b/c")).unwrap();
        assert_eq!(name, "c");
        d.create_file(&name, 0o600, true).unwrap();
        assert!(root.path().join("a/b/c").is_file());
        assert!(r.locate(&root.path().join("a/link/c")).is_err());
        assert!(r.locate(outside.path()).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }
}
