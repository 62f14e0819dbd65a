//! Conflict copies: their names (`name.CONFLICT.<time>.<device>.<code>.ext`, shortened to
//! fit) and moving a file aside to one.

use std::io;

use clearskies_protocol::path::{SharePath, MAX_PATH, MAX_SEGMENT};
use clearskies_protocol::time::Timestamp;

use super::cut_utf8;
use crate::beneath::DirFd;

/// What a conflict copy's name carries: `.CONFLICT.<YYYYMMDD-HHMMSS>.<device>.<4 alnum>`,
/// the time (UTC) and the device whose change lost (this daemon: the loser makes the copy),
/// and four random characters from `tag` so that two conflicts of one file in one second
/// get two names. The device name is reduced to letters, digits, `-` and `_` (others become
/// `-`), at most 32 bytes.
pub fn conflict_marker(when: Timestamp, device: &str, tag: &[u8; 16]) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let code: String = tag[..4].iter().map(|b| char::from(ALNUM[usize::from(*b) % ALNUM.len()])).collect();
    let device: String =
        device.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let device = cut_utf8(device.trim_matches('-'), 32);
    let device = if device.is_empty() { "device" } else { device };
    format!(".CONFLICT.{}.{device}.{code}", crate::versions::stamp(when))
}

/// A name for the losing side of a conflict, next to the original: `name<marker>.ext`
/// (`name<marker>` without an extension; see [`conflict_marker`]). When that would be too
/// long (a name near 255 bytes, or a path near 4096), the name before the extension is
/// shortened (on a character boundary); an extension too long to keep counts as part of
/// the name.
pub fn conflict_path(path: &SharePath, marker: &str) -> Option<SharePath> {
    let name = path.file_name();
    let parent = path.parent()?;
    let prefix = if parent.is_root() { 1 } else { parent.as_str().len() + 1 };
    let room = MAX_SEGMENT.min(MAX_PATH.checked_sub(prefix)?);
    // The extension is what follows the last dot, unless the dot starts the name.
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i + marker.len() < room => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let stem = cut_utf8(stem, room.checked_sub(marker.len() + ext.len())?);
    if stem.is_empty() {
        return None;
    }
    let new = format!("{stem}{marker}{ext}");
    let key = if parent.is_root() { format!("/{new}") } else { format!("{}/{new}", parent.as_str()) };
    SharePath::parse(&key).ok()
}

/// Moves `path`'s entry (in `dir`) aside to a conflict name made with `marker` (called again
/// for a fresh one, up to 8 times, if the name is taken: nothing is ever renamed over an
/// existing conflict copy). Answers the copy's path.
pub fn move_aside(dir: &DirFd, path: &SharePath, mut marker: impl FnMut() -> String) -> io::Result<SharePath> {
    for _ in 0..8 {
        let copy = conflict_path(path, &marker())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no conflict name fits"))?;
        match dir.rename_noreplace(path.file_name(), dir, copy.file_name()) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other.map(|()| copy),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "every conflict name tried is taken"))
}
