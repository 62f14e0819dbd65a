//! A local edit made while a peer's version was on its way, moved aside to a conflict
//! name and indexed there.

use clearskies_protocol::path::SharePath;
use tracing::warn;

use super::{hash, mtime_of, Contents, ScanContext};
use crate::beneath::{DirFd, Meta};
use crate::record::{EntryKind, Record};

/// Moves a locally edited file aside to a conflict name and returns its new record (written
/// by us). `None` if the move failed (the file stays; the next scan tries again).
pub(super) fn set_aside(
    dir: &DirFd,
    path: &SharePath,
    (sha256, size): Contents,
    listed: &Meta,
    rev: &mut u64,
    ctx: &mut ScanContext<'_>,
) -> Option<Record> {
    // In the directory it was listed in, by handle: never through a symlink swapped in, and
    // never over another conflict copy.
    let (now, device, me) = (ctx.now, ctx.device, ctx.me);
    let new_uuid = &mut ctx.new_uuid;
    let marker = || crate::apply::conflict_marker(now, device, &me, &new_uuid());
    let copy = match crate::fsops::move_aside(dir, path, marker) {
        Ok(copy) => copy,
        Err(e) => {
            warn!(path = %path, error = %e, "cannot move a conflicting edit aside");
            return None;
        }
    };
    let uuid = (ctx.new_uuid)();
    warn!(path = %path, copy = %copy, "edited while a peer's version was arriving; kept as a conflict copy");
    let meta = dir.stat(copy.file_name()).ok()??;
    // Hashed while listed; saved again since (the hash may be from before the move: files
    // are hashed ahead on other threads)? Then hash what was moved.
    let (sha256, size) = if (meta.stat.size, meta.stat.mtime_ns) == (listed.stat.size, listed.stat.mtime_ns) {
        (sha256, size)
    } else {
        let (h, n) = dir.open_file(copy.file_name(), false).and_then(hash::hash_open).ok()?;
        (Some(h), Some(n))
    };
    let mode = listed.mode;
    *rev += 1;
    let mut vector_clock = clearskies_protocol::vclock::VectorClock::new();
    vector_clock.increment(ctx.me);
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("conflict_source".to_owned(), serde_json::Value::from(path.as_str()));
    Some(Record {
        path: copy,
        uuid,
        kind: EntryKind::File,
        size,
        sha256,
        mtime: mtime_of(&meta),
        unix_mode: Some(mode),
        deleted: false,
        last_updated_by: ctx.me,
        last_updated_rev: *rev,
        update_time: ctx.now,
        vector_clock,
        extra,
        local: Some(meta.stat),
        local_sha256: sha256,
        pending: false,
        signed: None,
        sealed: None,
    })
}
