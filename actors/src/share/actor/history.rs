//! The share's history: listing the versions it kept ([`clearskies_index::versions`]),
//! restoring one, and on a read-only share `revert`, which moves every local change into
//! the versions and puts the read-write peers' version back. All of it runs on the share's
//! worker thread, between scans and applied batches, never beside them.

use actix::{ActorFutureExt, Context, Handler, WrapFuture};
use clearskies_index::beneath::Root;
use clearskies_index::versions::{self, Version};
use clearskies_index::{fsops, scan};
use clearskies_protocol::path::SharePath;
use tracing::{info, warn};

use super::{new_uuid, now, run_scan, Share, ShareState};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::share::messages::{History, HistoryAnswer};

impl Handler<History> for Share {
    type Result = actix::ResponseActFuture<Self, Result<HistoryAnswer, CommandError>>;

    fn handle(&mut self, msg: History, _: &mut Context<Self>) -> Self::Result {
        let job = self.worker.run(move |s: &mut ShareState| match msg {
            History::List { file } => {
                list(s, file.as_deref()).map(|versions| (HistoryAnswer::Listed { versions }, vec![]))
            }
            History::Restore { file, version } => restore(s, &file, version.as_deref()).map(|a| (a, vec![])),
            History::Revert => revert(s),
        });
        Box::pin(job.into_actor(self).map(|done, act, ctx| {
            let (answer, fetch) =
                done.map_err(|_| CommandError::new(ErrorCode::Unavailable, "the share is restarting"))??;
            if matches!(answer, HistoryAnswer::Reverted { .. }) {
                act.fetch(fetch);
                act.full_scan(ctx);
            }
            Ok(answer)
        }))
    }
}

fn io_error(e: std::io::Error) -> CommandError {
    CommandError::new(ErrorCode::IoError, e.to_string())
}

/// A file argument as a share path: `a/b.jpg`, `/a/b.jpg`.
fn share_path(file: &str) -> Result<SharePath, CommandError> {
    let key = format!("/{}", file.trim_start_matches('/'));
    SharePath::parse(&key).map_err(|e| CommandError::new(ErrorCode::BadFile, format!("{file:?}: {e}")))
}

fn list(s: &ShareState, file: Option<&str>) -> Result<Vec<Version>, CommandError> {
    let only = file.map(share_path).transpose()?;
    let all = Root::open(&s.root).and_then(|r| versions::list(&r)).map_err(io_error)?;
    Ok(all.into_iter().filter(|v| only.as_ref().is_none_or(|p| v.path == p.as_str())).collect())
}

/// The version of `file` that `version` names (see [`History::Restore`]): the latest that
/// matches.
pub(super) fn pick(all: Vec<Version>, file: &SharePath, version: Option<&str>) -> Result<Version, CommandError> {
    let of_file: Vec<Version> = all.into_iter().filter(|v| v.path == file.as_str()).collect();
    if of_file.is_empty() {
        return Err(CommandError::new(ErrorCode::NoSuchVersion, format!("no version of {file} is kept")));
    }
    let matches = |v: &Version| match version {
        None => true,
        Some(t) => v.stored == t || stamp_of(v).starts_with(t),
    };
    of_file.into_iter().rfind(matches).ok_or_else(|| {
        CommandError::new(
            ErrorCode::NoSuchVersion,
            format!(
                "no version of {file} matches {:?} (`clearskies versions` lists them)",
                version.unwrap_or_default()
            ),
        )
    })
}

/// `YYYYMMDD-HHMMSS` of the time a version was kept.
pub(super) fn stamp_of(v: &Version) -> String {
    clearskies_protocol::time::Timestamp::new(v.time, 0).map(versions::stamp).unwrap_or_default()
}

fn restore(s: &ShareState, file: &str, version: Option<&str>) -> Result<HistoryAnswer, CommandError> {
    if !s.versioned {
        return Err(CommandError::new(ErrorCode::NoSuchVersion, "an encrypted backup keeps no versions"));
    }
    let path = share_path(file)?;
    let root = Root::open(&s.root).map_err(io_error)?;
    let chosen = pick(versions::list(&root).map_err(io_error)?, &path, version)?;
    let restored = versions::restore(&root, &chosen.stored, now()).map_err(io_error)?;
    info!(root = %s.root.display(), path = %restored, version = %chosen.stored, "version restored");
    Ok(HistoryAnswer::Restored { restored: restored.as_str().to_owned(), version: chosen })
}

type Reverting = (HistoryAnswer, Vec<clearskies_index::apply::Fetch>);

/// What `revert` did so far.
#[derive(Default)]
struct Reverted {
    moved: Vec<String>,
    restoring: Vec<String>,
    records: Vec<clearskies_index::record::Record>,
    added_dirs: Vec<SharePath>,
}

/// Reverts the local change at `path`: a file changed or added here is moved into the
/// versions; an entry the index holds live is marked to come back.
fn revert_one(s: &ShareState, root: &Root, path: &SharePath, r: &mut Reverted) -> Result<(), String> {
    let dir = fsops::existing_parent(root, path).map_err(|e| e.to_string())?;
    let on_disk = match &dir {
        Some(d) => d.stat(path.file_name()).map_err(|e| e.to_string())?,
        None => None,
    };
    let record = s.store.get(path).map_err(|e| e.to_string())?;
    let live = record.as_ref().is_some_and(|r| !r.deleted);
    match (&dir, on_disk) {
        (Some(d), Some(m)) if !m.is_dir() => {
            let k = versions::Keep { path, by: None, why: versions::Why::Reverted, now: now() };
            match versions::keep(root, d, path.file_name(), k) {
                Ok((false, _)) => r.moved.push(path.as_str().to_owned()),
                Ok((true, _)) => return Err("it cannot be moved into the versions".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        (Some(_), Some(_)) if !live => r.added_dirs.push(path.clone()),
        _ => {}
    }
    if let Some(mut rec) = record.filter(|_| live) {
        rec.local = None;
        rec.local_sha256 = None;
        rec.pending = true;
        r.restoring.push(path.as_str().to_owned());
        r.records.push(rec);
    }
    Ok(())
}

/// See [`History::Revert`]. A scan finds the local changes (on a read-only share it records
/// nothing); each changed or added file is moved into the versions, each path the index
/// holds a live entry for is marked to be put back, and the applier's resume fetches or
/// makes them. Directories added here go once empty.
fn revert(s: &mut ShareState) -> Result<Reverting, CommandError> {
    if !s.versioned {
        return Err(CommandError::new(
            ErrorCode::NotReadOnly,
            "this computer keeps an encrypted backup of the share: its files are ciphertext, and there is nothing to revert",
        ));
    }
    if !s.read_only {
        return Err(CommandError::new(
            ErrorCode::NotReadOnly,
            "only a read-only share has local changes to revert (your changes here are synced; `clearskies restore` brings back a version)",
        ));
    }
    // What is put back changes the local changes: the next scan finds them all again.
    s.local_changes = None;
    let report =
        run_scan(s, &scan::Scope::Full, None).map_err(|e| CommandError::new(ErrorCode::IoError, e.to_string()))?;
    let root = Root::open(&s.root).map_err(io_error)?;
    let mut r = Reverted::default();
    for path in report.local_changes {
        // One path that cannot be handled (a directory on the way swapped for a symlink)
        // is logged and left; the others are still reverted, and what was done recorded.
        if let Err(e) = revert_one(s, &root, &path, &mut r) {
            warn!(path = %path, error = %e, "cannot revert this local change; left as it is");
        }
    }
    let Reverted { moved, restoring, records, mut added_dirs } = r;
    // Deepest first, so that a directory emptied by its children's removal goes too.
    added_dirs.sort_by_key(|p| std::cmp::Reverse(p.as_str().matches('/').count()));
    for p in added_dirs {
        if let Ok(Some(d)) = fsops::existing_parent(&root, &p) {
            let _ = d.rmdir(p.file_name());
        }
    }
    s.store.commit(&records, None).map_err(|e| CommandError::new(ErrorCode::DatabaseError, e.to_string()))?;
    let mut uuid = new_uuid;
    let fetch =
        s.applier(&mut uuid).resume().map_err(|e| CommandError::new(ErrorCode::DatabaseError, e.to_string()))?;
    info!(root = %s.root.display(), moved = moved.len(), restoring = restoring.len(), "local changes reverted");
    Ok((HistoryAnswer::Reverted { moved, restoring }, fetch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, time: i64, stored: &str) -> Version {
        Version { path: path.into(), stored: stored.into(), time, by: None, why: versions::Why::Replaced, size: 1 }
    }

    #[test]
    fn the_latest_matching_version_is_picked() {
        let all = vec![
            v("/a.txt", 1_796_541_301, "a~20261206-071501.txt"),
            v("/b.txt", 1_796_541_400, "b~20261206-071640.txt"),
            v("/a.txt", 1_796_627_701, "a~20261207-071501.txt"),
        ];
        let a = SharePath::parse("/a.txt").unwrap();
        assert_eq!(pick(all.clone(), &a, None).unwrap().stored, "a~20261207-071501.txt");
        assert_eq!(pick(all.clone(), &a, Some("20261206")).unwrap().stored, "a~20261206-071501.txt");
        assert_eq!(pick(all.clone(), &a, Some("a~20261206-071501.txt")).unwrap().stored, "a~20261206-071501.txt");
        assert_eq!(pick(all.clone(), &a, Some("2025")).unwrap_err().error, ErrorCode::NoSuchVersion);
        let c = SharePath::parse("/c.txt").unwrap();
        assert!(pick(all, &c, None).unwrap_err().message.contains("no version of /c.txt"));
        assert!(share_path("../x").is_err());
        assert_eq!(share_path("a/b.jpg").unwrap().as_str(), "/a/b.jpg");
    }
}
