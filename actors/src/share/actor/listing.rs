//! `list_files`: a page of a directory of the share from its index, on the worker thread.
//! One seek per page ([`ShareStore::children_after`]), so any page of a folder of 100,000
//! files costs what the first does.
//!
//! [`ShareStore::children_after`]: clearskies_index::store::ShareStore::children_after

use actix::{ActorFutureExt, Context, Handler, WrapFuture};
use clearskies_index::record::{EntryKind, Record};
use clearskies_protocol::path::SharePath;

use super::{Share, ShareState};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::share::messages::{FileEntry, ListFiles, Listing};

/// The most entries one page may have.
pub(super) const MAX_PAGE: usize = 1000;

impl Handler<ListFiles> for Share {
    type Result = actix::ResponseActFuture<Self, Result<Listing, CommandError>>;

    fn handle(&mut self, msg: ListFiles, _: &mut Context<Self>) -> Self::Result {
        let job = self.worker.run(move |s: &mut ShareState| list(s, &msg));
        Box::pin(job.into_actor(self).map(|done, _, _| {
            done.map_err(|_| CommandError::new(ErrorCode::Unavailable, "the share is restarting"))?
        }))
    }
}

fn list(s: &ShareState, msg: &ListFiles) -> Result<Listing, CommandError> {
    let key = format!("/{}", msg.dir.trim_matches('/'));
    let dir =
        SharePath::parse(&key).map_err(|e| CommandError::new(ErrorCode::BadFile, format!("{:?}: {e}", msg.dir)))?;
    let limit = msg.limit.clamp(1, MAX_PAGE);
    let mut entries = Vec::new();
    let mut more = false;
    let read = s.store.children_after(&dir, msg.after.as_deref(), |name, record| {
        if record.as_ref().is_some_and(|r| r.deleted) {
            return Ok(true);
        }
        if entries.len() == limit {
            more = true;
            return Ok(false);
        }
        entries.push(entry(name, record.as_ref()));
        Ok(true)
    });
    read.map_err(|e| CommandError::new(ErrorCode::IoError, format!("the index cannot be read: {e}")))?;
    let next = more.then(|| entries.last().map(|e| e.name.clone())).flatten();
    Ok(Listing { entries, next })
}

fn entry(name: &str, record: Option<&Record>) -> FileEntry {
    let Some(r) = record else {
        // Records below it but none of its own: a directory.
        return FileEntry {
            name: name.to_owned(),
            dir: true,
            size: None,
            mtime: None,
            here: true,
            pending: false,
            conflict_of: None,
        };
    };
    let dir = r.kind == EntryKind::Directory;
    FileEntry {
        name: name.to_owned(),
        dir,
        size: r.size.filter(|_| !dir),
        mtime: r.mtime.map(|t| t.secs()),
        here: !r.pending && (dir || (r.sha256.is_some() && r.local_sha256 == r.sha256)),
        pending: r.pending,
        conflict_of: conflict_of(name),
    }
}

/// The name a conflict copy (`stem.CONFLICT.<time>.<device>.<tag>[.ext]`) was moved aside
/// from. Best effort: a device name with a dot in a copy of a file without extension reads
/// as an extension.
fn conflict_of(name: &str) -> Option<String> {
    let (stem, rest) = name.split_once(".CONFLICT.")?;
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [_, _, _] => Some(stem.to_owned()),
        [_, _, _, .., ext] => Some(format!("{stem}.{ext}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_copies_name_their_file() {
        assert_eq!(conflict_of("cat.CONFLICT.20261206-071501.laptop.ab12.jpg").as_deref(), Some("cat.jpg"));
        assert_eq!(conflict_of("notes.CONFLICT.20261206-071501.nas.0f3a").as_deref(), Some("notes"));
        assert_eq!(conflict_of("a.b.CONFLICT.20261206-071501.nas.0f3a.tar").as_deref(), Some("a.b.tar"));
        assert_eq!(conflict_of("cat.jpg"), None);
        assert_eq!(conflict_of("x.CONFLICT.only"), None);
    }
}
