//! Which part of the tree a scan looks at: everything, or what inotify reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clearskies_protocol::path::SharePath;

/// Which part of the tree a scan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole tree: at start, after an inotify queue overflow, on request, and whenever
    /// what changed is not known precisely.
    Full,
    /// What to look at in each of these directories (what inotify reported). A directory
    /// found inside that the index does not know yet is always walked whole. Empty: nothing
    /// to do.
    Dirs(BTreeMap<PathBuf, Look>),
}

/// What to look at in one directory, from the least to the most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// These entries only (the names inotify reported changes of): in a directory of
    /// 20 000 files, one new file costs one stat and one index read instead of 20 000.
    /// Where names may not be exact (a case-insensitive filesystem) the directory is
    /// listed instead.
    Names(BTreeSet<String>),
    /// Every entry of the directory.
    Entries,
    /// Every entry, and everything below (a directory that appeared whole).
    Tree,
}

/// More changed directories than this between two scans: scan everything instead.
pub const MAX_DIRTY_DIRS: usize = 10_000;

/// More changed names than this in one directory between two scans: list it instead. (So
/// a scope holds at most 64 × 10 000 names.)
pub const MAX_NAMES_PER_DIR: usize = 64;

impl Default for Scope {
    fn default() -> Self {
        Scope::Dirs(BTreeMap::new())
    }
}

impl Scope {
    /// Adds a changed directory: every entry of it (`recursive`: and everything below).
    pub fn add(&mut self, dir: PathBuf, recursive: bool) {
        let look = if recursive { Look::Tree } else { Look::Entries };
        self.add_look(dir, look);
    }

    /// Adds a changed entry `name` of `dir`.
    pub fn add_name(&mut self, dir: PathBuf, name: String) {
        self.add_look(dir, Look::Names(BTreeSet::from([name])));
    }

    /// Adds the entry at `path` of the share rooted at `root`, as if inotify had named it.
    /// (The root itself has no parent to look in: every scan looks at it anyway.)
    pub fn add_path(&mut self, root: &Path, path: &SharePath) {
        let Some(parent) = path.parent() else { return };
        let dir = if parent.is_root() { root.to_owned() } else { root.join(parent.relative()) };
        self.add_name(dir, path.file_name().to_owned());
    }

    fn add_look(&mut self, dir: PathBuf, look: Look) {
        let Scope::Dirs(dirs) = self else { return };
        match (dirs.get_mut(&dir), look) {
            (None, look) => {
                dirs.insert(dir, look);
            }
            (Some(Look::Names(have)), Look::Names(more)) => {
                have.extend(more);
                if have.len() > MAX_NAMES_PER_DIR {
                    dirs.insert(dir, Look::Entries);
                }
            }
            (Some(have), look) => {
                if rank(&look) > rank(have) {
                    *have = look;
                }
            }
        }
        if dirs.len() > MAX_DIRTY_DIRS {
            *self = Scope::Full;
        }
    }

    /// Adds everything `other` covers.
    pub fn merge(&mut self, other: Scope) {
        match other {
            Scope::Full => *self = Scope::Full,
            Scope::Dirs(dirs) => dirs.into_iter().for_each(|(d, look)| self.add_look(d, look)),
        }
    }

    /// Nothing to scan.
    pub fn is_empty(&self) -> bool {
        matches!(self, Scope::Dirs(d) if d.is_empty())
    }
}

/// How much a look covers: names < entries < tree.
fn rank(look: &Look) -> u8 {
    match look {
        Look::Names(_) => 0,
        Look::Entries => 1,
        Look::Tree => 2,
    }
}
