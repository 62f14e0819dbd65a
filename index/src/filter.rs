//! Selective sync, all local decisions (`directory.md`: "Ignoring Files", "Subtree Copy",
//! "Partial Copy"): which paths of a share this replica keeps on disk.
//!
//! A path is *ignored* when it lies outside the share's subtree (its ancestors stay, to hold
//! it) or matches an exclude pattern: the patterns given at attach time and those in a
//! `.clearskiesignore` file in the share root, both in gitignore syntax. Ignored local files
//! are never indexed or sent; peers' records for ignored paths are kept in the index as
//! pending, never fetched, and never count as deleted here, so un-ignoring a path later
//! fetches it, and ignoring one never deletes anything on the peers. `.clearskiesignore` is
//! an ordinary file: it syncs, and an edit to it takes effect on the next scan.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clearskies_protocol::path::SharePath;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde::{Deserialize, Serialize};

/// The ignore file in a share's root.
pub const IGNORE_FILE: &str = ".clearskiesignore";

/// The most of the ignore file that is read.
pub const MAX_IGNORE_FILE: u64 = 1 << 20;

/// What a replica chose to keep, saved with the share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Only this directory of the share (a share path such as `photos/2024`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<String>,
    /// Patterns (gitignore syntax) never synced to or from this replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl Selection {
    /// Checks the subtree and the patterns; a clear message for the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = &self.subtree {
            let key = format!("/{}", s.trim_matches('/'));
            SharePath::parse(&key).map_err(|e| format!("subtree {s:?} is not a path in the share: {e}"))?;
        }
        let mut b = GitignoreBuilder::new("/");
        for p in &self.exclude {
            b.add_line(None, p).map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
            GitignoreBuilder::new("/")
                .add_line(None, p)
                .map_err(|e| format!("exclude pattern {p:?}: {e}"))?
                .build()
                .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
        }
        Ok(())
    }
}

/// A share's filter, with its ignore file loaded.
#[derive(Debug, Clone)]
pub struct Filter {
    root: PathBuf,
    /// The subtree's segments.
    subtree: Vec<String>,
    excludes: Gitignore,
    from_file: Gitignore,
    /// The ignore file's mtime and size when it was read (`None`: absent).
    stamp: Option<(SystemTime, u64)>,
}

impl Filter {
    /// The filter for `selection` in the share at `root` (reads `.clearskiesignore`).
    pub fn new(root: &Path, selection: &Selection) -> Self {
        let subtree = selection
            .subtree
            .as_deref()
            .map(|s| s.split('/').filter(|x| !x.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut b = GitignoreBuilder::new(root);
        for p in &selection.exclude {
            // Validated when the share was joined; a bad one now is skipped.
            let _ = b.add_line(None, p);
        }
        let excludes = b.build().unwrap_or_else(|_| Gitignore::empty());
        let mut f = Filter { root: root.to_owned(), subtree, excludes, from_file: Gitignore::empty(), stamp: None };
        f.refresh();
        f
    }

    /// Everything passes: no subtree, no patterns.
    pub fn none(root: &Path) -> Self {
        Filter::new(root, &Selection::default())
    }

    /// Reads `.clearskiesignore` again if it changed; whether it did. Only a regular file
    /// counts (opened without following a symlink or blocking on a FIFO a local user may
    /// have put there), and only its first [`MAX_IGNORE_FILE`] bytes.
    pub fn refresh(&mut self) -> bool {
        let file = self.root.join(IGNORE_FILE);
        let opened = crate::beneath::Root::open(&self.root).and_then(|r| r.root_dir().open_file(IGNORE_FILE, false));
        let stamp_of = |f: &std::fs::File| f.metadata().ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        let (stamp, f) = match opened {
            Ok(f) => (stamp_of(&f), Some(f)),
            Err(_) => (None, None),
        };
        if stamp == self.stamp {
            return false;
        }
        self.stamp = stamp;
        self.from_file = match f {
            Some(f) => {
                use std::io::Read;
                let mut text = String::new();
                let _ = f.take(MAX_IGNORE_FILE).read_to_string(&mut text);
                let mut b = GitignoreBuilder::new(&self.root);
                for line in text.lines() {
                    // A bad pattern is skipped (as `Gitignore::new` does).
                    let _ = b.add_line(Some(file.clone()), line);
                }
                b.build().unwrap_or_else(|_| Gitignore::empty())
            }
            None => Gitignore::empty(),
        };
        true
    }

    /// Whether this replica leaves `path` alone.
    pub fn ignores(&self, path: &SharePath, is_dir: bool) -> bool {
        let segments: Vec<&str> = path.as_str().split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            return false;
        }
        // Outside the subtree, unless it is one of the directories that lead to it.
        let inside = segments.len() >= self.subtree.len() && segments.iter().zip(&self.subtree).all(|(a, b)| a == b);
        let leads_there =
            is_dir && segments.len() < self.subtree.len() && segments.iter().zip(&self.subtree).all(|(a, b)| a == b);
        if !inside && !leads_there {
            return true;
        }
        if segments == [IGNORE_FILE] {
            return false;
        }
        let full = self.root.join(segments.join("/"));
        [&self.excludes, &self.from_file].iter().any(|g| g.matched_path_or_any_parents(&full, is_dir).is_ignore())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SharePath {
        SharePath::parse(s).unwrap()
    }

    #[test]
    fn subtree_keeps_its_inside_and_the_way_there() {
        let dir = tempfile::tempdir().unwrap();
        let f = Filter::new(dir.path(), &Selection { subtree: Some("photos/2024".into()), exclude: vec![] });
        assert!(!f.ignores(&p("/photos/2024/a.jpg"), false));
        assert!(!f.ignores(&p("/photos/2024/trip/b.jpg"), false));
        assert!(!f.ignores(&p("/photos/2024"), true));
        assert!(!f.ignores(&p("/photos"), true));
        assert!(f.ignores(&p("/photos"), false), "a file named like a directory on the way is outside");
        assert!(f.ignores(&p("/photos/2023/c.jpg"), false));
        assert!(f.ignores(&p("/photos/2024.txt"), false));
        assert!(f.ignores(&p("/docs/x.txt"), false));
    }

    #[test]
    fn patterns_and_the_ignore_file() {
        let dir = tempfile::tempdir().unwrap();
        let sel = Selection { subtree: None, exclude: vec!["*.tmp".into(), "build/".into()] };
        let mut f = Filter::new(dir.path(), &sel);
        assert!(f.ignores(&p("/a.tmp"), false));
        assert!(f.ignores(&p("/deep/er/a.tmp"), false));
        assert!(f.ignores(&p("/build"), true));
        assert!(f.ignores(&p("/build/out.o"), false), "inside an ignored directory");
        assert!(!f.ignores(&p("/build"), false), "build/ matches directories only");
        assert!(!f.ignores(&p("/notes.txt"), false));
        assert!(!f.refresh());
        std::fs::write(dir.path().join(IGNORE_FILE), "notes.*\n!keep.tmp\n").unwrap();
        assert!(f.refresh());
        assert!(f.ignores(&p("/notes.txt"), false));
        assert!(!f.ignores(&p(&format!("/{IGNORE_FILE}")), false), "the ignore file itself always syncs");
        std::fs::remove_file(dir.path().join(IGNORE_FILE)).unwrap();
        assert!(f.refresh());
        assert!(!f.ignores(&p("/notes.txt"), false));
    }

    /// A FIFO (or a symlink) a local user puts where the ignore file goes neither hangs the
    /// share's worker nor is followed.
    #[test]
    fn an_ignore_file_that_is_a_fifo_or_a_symlink_is_no_ignore_file() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("patterns"), "*.txt\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("patterns"), dir.path().join(IGNORE_FILE)).unwrap();
        let f = Filter::none(dir.path());
        assert!(!f.ignores(&p("/a.txt"), false), "the symlink was followed");
        std::fs::remove_file(dir.path().join(IGNORE_FILE)).unwrap();
        let fifo = dir.path().join(IGNORE_FILE);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        )
        .unwrap();
        let root = dir.path().to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Filter::none(&root).ignores(&p("/a.txt"), false));
        });
        let ignored = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("hung on a FIFO");
        assert!(!ignored);
    }

    #[test]
    fn bad_selections_are_refused() {
        let bad = Selection { subtree: Some("../up".into()), exclude: vec![] };
        assert!(bad.validate().is_err());
        let bad = Selection { subtree: None, exclude: vec!["[z-a]".into()] };
        assert!(bad.validate().unwrap_err().contains("[z-a]"));
        assert!(Selection { subtree: Some("photos/2024/".into()), exclude: vec!["*.jpg".into()] }.validate().is_ok());
    }
}
