//! The thumbnail cache on disk: `<cache>/<first 2 hex digits>/<key>-<side>.jpg`, written through
//! a temporary file and a rename, kept under a size by removing the least recently used.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::{Error, Size};

/// A temporary file older than this is left over from a crash, and pruned.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// A content key: 16 to 128 hex digits, lowercased, so it is a safe file name.
#[derive(Debug)]
pub(crate) struct Key(String);

impl Key {
    pub(crate) fn parse(key: &str) -> Result<Key, Error> {
        if !(16..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidKey);
        }
        Ok(Key(key.to_ascii_lowercase()))
    }
}

/// Where the thumbnail of `key` at `size` is cached.
pub(crate) fn path(cache_dir: &Path, key: &Key, size: Size) -> PathBuf {
    cache_dir.join(&key.0[..2]).join(format!("{}-{}.jpg", key.0, size.max_side()))
}

/// Whether the thumbnail at `path` is cached; if so it is marked as just used (best effort: a
/// read-only cache still serves).
pub(crate) fn serve(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    // Opened read-only: setting the times needs ownership, not write access.
    let _ = file.set_modified(SystemTime::now());
    true
}

/// Writes the thumbnail at `path` with `write` into a temporary file beside it, then renames
/// it into place, so that a reader never sees half a thumbnail. Two threads making the same
/// thumbnail both succeed; the last rename wins.
pub(crate) fn write(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<(), Error>) -> Result<(), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| io::Error::other("thumbnail path without a directory"))?;
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let result = (|| {
        let mut out = BufWriter::new(File::options().write(true).create_new(true).open(&temporary)?);
        write(&mut out)?;
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        fs::rename(&temporary, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// A file found in the cache.
struct Cached {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// Removes thumbnails, least recently modified first, until those left take at most
/// `max_bytes`, and stale temporary files; returns the bytes removed.
pub(crate) fn prune(cache_dir: &Path, max_bytes: u64) -> io::Result<u64> {
    let mut removed = 0;
    let mut thumbnails = Vec::new();
    let now = SystemTime::now();
    for dir in read_dir_or_empty(cache_dir)? {
        let dir = dir?;
        if !dir.file_type()?.is_dir() || !is_shard(&dir.file_name().to_string_lossy()) {
            continue;
        }
        for entry in read_dir_or_empty(&dir.path())? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if !metadata.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let cached = Cached { path: entry.path(), len: metadata.len(), modified: metadata.modified()? };
            if name.starts_with('.') && name.ends_with(".tmp") {
                let age = now.duration_since(cached.modified).unwrap_or_default();
                if age > STALE_TEMPORARY && remove(&cached.path)? {
                    removed += cached.len;
                }
            } else if name.ends_with(".jpg") {
                thumbnails.push(cached);
            }
        }
    }
    thumbnails.sort_by_key(|c| c.modified);
    let mut total: u64 = thumbnails.iter().map(|c| c.len).sum();
    for cached in thumbnails {
        if total <= max_bytes {
            break;
        }
        total -= cached.len;
        if remove(&cached.path)? {
            removed += cached.len;
        }
    }
    Ok(removed)
}

/// A cache sub-directory's name: two lowercase hex digits.
fn is_shard(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The entries of `dir`; none if it does not exist (nothing cached yet).
fn read_dir_or_empty(dir: &Path) -> io::Result<impl Iterator<Item = io::Result<fs::DirEntry>>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(entries.into_iter().flatten())
}

/// Removes `path`; false if another thread or process removed it first.
fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_of_a_sane_length_and_lowercased() {
        assert!(Key::parse("0123456789abcdef").is_ok());
        assert_eq!(Key::parse("0123456789ABCDEF").unwrap().0, "0123456789abcdef");
        assert!(Key::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "0123456789abcde", "../0123456789abcdef", "0123456789abcdeg", "01234567/9abcdef"] {
            assert!(matches!(Key::parse(bad), Err(Error::InvalidKey)), "{bad}");
        }
        assert!(Key::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn the_path_is_sharded_by_the_first_two_digits() {
        let key = Key::parse("ABcdef0123456789").unwrap();
        assert_eq!(path(Path::new("/c"), &key, Size::Small), Path::new("/c/ab/abcdef0123456789-256.jpg"));
        assert_eq!(path(Path::new("/c"), &key, Size::Large), Path::new("/c/ab/abcdef0123456789-1280.jpg"));
    }
}
