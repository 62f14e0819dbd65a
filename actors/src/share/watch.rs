//! Watching a share with inotify. Every directory of the tree gets a watch; directories that
//! appear later are watched as they appear. Events only say where something changed: the
//! `Share` actor collects the directories, debounces, and scans those (a directory that
//! appeared is scanned whole, since files may have landed in it before its watch did). No
//! event is trusted for more than a hint. A queue overflow, or an event we cannot place,
//! means "scan everything".

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::Recipient;
use clearskies_index::own_renames::OwnRenames;
use clearskies_index::scan::Scope;
use clearskies_protocol::path::{is_meta_dir, is_part_name};
use inotify::{EventMask, Inotify, StreamExt, WatchDescriptor, WatchMask, Watches};
use tracing::warn;

use super::messages::FsChanged;

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW
        | WatchMask::EXCL_UNLINK
}

/// Whether an event with `mask` finishes a change (a file closed after writing, renamed
/// into place, new attributes, a new directory) rather than being part of one that goes on
/// (a write, a new file still open): see [`FsChanged::finishes`]. A deletion or a rename
/// away is not: saves that are not atomic (an editor's rename to a backup, then a new
/// file; `rm` then `cp`) leave the name missing for a moment, and a scan in that moment
/// would announce a deletion.
fn finishes(mask: EventMask) -> bool {
    mask.intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_TO | EventMask::ATTRIB)
        || mask.contains(EventMask::ISDIR | EventMask::CREATE)
}

/// Look everywhere: after an event that `finishes` a change or not.
fn everything(finishes: bool) -> FsChanged {
    FsChanged { scope: Scope::Full, finishes }
}

/// Adds a watch to `dir` and every directory below it (not following symlinks, skipping our
/// metadata directory). Blocking: it walks the tree.
fn watch_tree(
    watches: &mut Watches,
    root: &Path,
    dir: &Path,
    map: &mut HashMap<WatchDescriptor, PathBuf>,
) -> io::Result<()> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        match watches.add(&d, mask()) {
            Ok(wd) => {
                map.insert(wd, d.clone());
            }
            Err(e) if e.raw_os_error() == Some(28) => {
                return Err(io::Error::other(
                    "the inotify watch limit is reached: raise fs.inotify.max_user_watches (sysctl) to watch this share",
                ));
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => continue,
            Err(e) => return Err(e),
        }
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            if d == root && entry.file_name().to_str().is_some_and(is_meta_dir) {
                continue;
            }
            // The daemon's data directory changes all the time (log, index): not watched.
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && !clearskies_index::data_dir::is_data_dir(std::os::unix::fs::DirEntryExt::ino(&entry), &entry.path())
            {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Watches `root` until the watch fails or the root's own watch ends (the root was deleted
/// or unmounted), sending a hint to `changed` for every relevant event. Our own temporary
/// files do not count as changes, nor the rename of a download into place that is still
/// as we left it (`own`).
pub async fn watch(root: PathBuf, changed: Recipient<FsChanged>, own: Arc<OwnRenames>) -> io::Result<()> {
    let inotify = Inotify::init()?;
    let mut watches = inotify.watches();
    let walk_root = root.clone();
    let mut map = tokio::task::spawn_blocking(move || {
        let mut map = HashMap::new();
        watch_tree(&mut watches, &walk_root, &walk_root, &mut map).map(|()| map)
    })
    .await
    .map_err(io::Error::other)??;
    let mut stream = inotify.into_event_stream(vec![0u8; 64 * 1024])?;
    // The first full scan starts now that the watches are up: whatever changes from here
    // on has an event.
    changed.do_send(everything(true));
    while let Some(event) = stream.next().await {
        let event = event?;
        if event.mask.contains(EventMask::Q_OVERFLOW) {
            warn!(root = %root.display(), "inotify queue overflowed; rescanning");
            crate::metrics::metrics().watch_overflows.inc();
            own.clear();
            changed.do_send(everything(false));
            continue;
        }
        if event.mask.contains(EventMask::IGNORED) {
            // The root's own watch ends when the root is deleted or its filesystem
            // unmounted: nothing is watched any more, so this watch is over.
            if map.remove(&event.wd).is_some_and(|dir| dir == root) {
                changed.do_send(everything(true));
                return Ok(());
            }
            continue;
        }
        let Some(parent) = map.get(&event.wd).cloned() else {
            changed.do_send(everything(false));
            continue;
        };
        let mut scope = Scope::default();
        match &event.name {
            Some(name) => {
                // (Case-insensitively: a share on vfat, exFAT, SMB or casefolded ext4.)
                let ours = name.to_str().is_some_and(|n| is_part_name(n) || (parent == root && is_meta_dir(n)));
                if ours || (event.mask == EventMask::MOVED_TO && own.was_ours(&parent.join(name))) {
                    continue;
                }
                // The name is what changed: only it is looked at (and a new directory
                // whole, below). A name that is not UTF-8 is never synced; the directory's
                // listing says so.
                match name.to_str() {
                    Some(n) => scope.add_name(parent.clone(), n.to_owned()),
                    None => scope.add(parent.clone(), false),
                }
                if event.mask.contains(EventMask::ISDIR)
                    && event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                {
                    let mut watches = stream.watches();
                    let (root, dir) = (root.clone(), parent.join(name));
                    scope.add(dir.clone(), true);
                    let added = tokio::task::spawn_blocking(move || {
                        let mut more = HashMap::new();
                        watch_tree(&mut watches, &root, &dir, &mut more).map(|()| more)
                    })
                    .await
                    .map_err(io::Error::other)??;
                    map.extend(added);
                }
            }
            // The directory itself (its attributes, or it moved or went away): its parent's
            // listing tells; the root's is a full scan (which finds a missing root).
            None => match parent.parent().filter(|_| parent != root) {
                Some(up) => scope.add(up.to_owned(), false),
                None => scope = Scope::Full,
            },
        }
        // (An event on the directory itself, named `None`, does not: it moved or went away.)
        let finishes = event.name.is_some() && finishes(event.mask);
        changed.do_send(FsChanged { scope, finishes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context, Handler};

    /// Hands every hint to the test.
    struct Hints(tokio::sync::mpsc::UnboundedSender<FsChanged>);
    impl Actor for Hints {
        type Context = Context<Self>;
    }
    impl Handler<FsChanged> for Hints {
        type Result = ();
        fn handle(&mut self, msg: FsChanged, _: &mut Context<Self>) {
            let _ = self.0.send(msg);
        }
    }

    fn dirs_of(hint: &FsChanged) -> Vec<PathBuf> {
        match &hint.scope {
            Scope::Dirs(d) => d.keys().cloned().collect(),
            Scope::Full => vec![PathBuf::from("everything")],
        }
    }

    /// The next hint, within a deadline.
    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<FsChanged>) -> FsChanged {
        tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await.unwrap().unwrap()
    }

    #[actix_rt::test]
    async fn our_own_rename_of_a_download_is_skipped_and_a_users_rename_onto_it_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let partial = root.join(".clearskies");
        let (ours, marker) = (root.join("ours"), root.join("marker"));
        // (Hints name the directory that changed: our downloads land in `ours`, the
        // user's files in `marker`, and a new directory at the root marks where we are.)
        for d in [&partial, &ours, &marker] {
            std::fs::create_dir(d).unwrap();
        }
        let own = Arc::new(OwnRenames::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hints = Hints(tx).start();
        actix_rt::spawn(watch(root.clone(), hints.recipient(), own.clone()));
        assert!(matches!(next(&mut rx).await.scope, Scope::Full), "the first hint: the watches are up");

        // A download noted and renamed into place as the applier does, then a new directory.
        // inotify keeps the order, so the first hint would be for `ours` if its event were
        // not skipped.
        let install = |name: &str, contents: &[u8]| {
            let (temp, to) = (partial.join("temp"), ours.join(name));
            std::fs::write(&temp, contents).unwrap();
            own.note(to.clone(), clearskies_index::fsops::stat_of(&std::fs::symlink_metadata(&temp).unwrap()));
            std::fs::rename(&temp, &to).unwrap();
            to
        };
        install("a", b"from a peer");
        std::fs::create_dir(root.join("s1")).unwrap();
        assert!(dirs_of(&next(&mut rx).await).contains(&root), "the sentinel's is the first hint");
        assert_eq!(own.pending(), 0, "the event used the record up");

        // A user renames their file onto the name before the watcher looks at our rename:
        // another inode, so our rename's event is news too.
        std::fs::write(marker.join("theirs"), b"the user's version").unwrap();
        std::fs::create_dir(root.join("s2")).unwrap();
        while !dirs_of(&next(&mut rx).await).contains(&root) {}
        let to = install("b", b"from a peer");
        std::fs::rename(marker.join("theirs"), &to).unwrap();
        assert_eq!(dirs_of(&next(&mut rx).await), std::slice::from_ref(&ours), "our rename, now under the user's file");
        assert_eq!(dirs_of(&next(&mut rx).await), std::slice::from_ref(&marker), "moved away from marker");
        assert_eq!(dirs_of(&next(&mut rx).await), std::slice::from_ref(&ours), "moved onto our download");
    }

    #[actix_rt::test]
    async fn a_directory_renamed_inside_the_share_is_watched_under_its_new_name() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        std::fs::create_dir_all(root.join("a/inner")).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hints = Hints(tx).start();
        actix_rt::spawn(watch(root.clone(), hints.recipient(), Arc::default()));
        assert!(matches!(next(&mut rx).await.scope, Scope::Full));
        std::fs::rename(root.join("a"), root.join("b")).unwrap();
        std::fs::create_dir(root.join("s")).unwrap();
        // (The rename's two events, then the sentinel's: by then the watches of `b` and
        // everything below it were added again, which gives back their old descriptors.)
        while !dirs_of(&next(&mut rx).await).contains(&root.join("s")) {}
        std::fs::write(root.join("b/inner/new"), b"x").unwrap();
        assert_eq!(dirs_of(&next(&mut rx).await), [root.join("b/inner")], "named under b, not a");
    }
}
