//! Share paths: the `key` of a directory record (`directory.md`, "Database fields").
//!
//! A key is a path relative to the share root, written with a leading slash and forward
//! slashes: `/photos/2024/IMG_0001.jpg`; the root itself is `/`. Everything a peer sends is
//! checked here before it touches the filesystem: no empty, `.` or `..` segments (so no
//! escaping the root and no `//` ambiguity), no NUL, no backslash-free tricks needed since
//! keys are never interpreted as absolute filesystem paths, bounded length, and nothing
//! inside our own `.clearskies` metadata directory or named like our temporary files.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted key, in bytes (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest accepted segment, in bytes (Linux's NAME_MAX).
pub const MAX_SEGMENT: usize = 255;
/// The per-share metadata directory at the root, never synced.
pub const META_DIR: &str = ".clearskies";
/// Suffix of our temporary download files, never synced.
pub const PART_SUFFIX: &str = ".clearskies-part";

/// Folds a character the way case-insensitive filesystems compare names, as far as it can
/// matter for our reserved ASCII names: ASCII letters to lower case, and the two non-ASCII
/// characters that fold (or normalize) to ASCII letters of them: `ſ` (long s) to `s`, `K`
/// (Kelvin sign) to `k`. Other non-ASCII characters never equal an ASCII one.
fn fold(c: char) -> char {
    match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    }
}

/// Whether `a` equals the ASCII name `b` on a case-insensitive filesystem.
fn same_name(a: &str, b: &str) -> bool {
    a.chars().map(fold).eq(b.chars())
}

/// Whether a root-level name is our metadata directory, compared case-insensitively (a share
/// on vfat, exFAT, SMB or casefolded ext4 finds `.clearskies` under `.CLEARSKIES`).
pub fn is_meta_dir(name: &str) -> bool {
    same_name(name, META_DIR)
}

/// Whether a name is a temporary download's, compared case-insensitively.
pub fn is_part_name(name: &str) -> bool {
    let n = name.chars().count();
    let k = PART_SUFFIX.len();
    n >= k && same_name(&name[name.char_indices().nth(n - k).map_or(0, |(i, _)| i)..], PART_SUFFIX)
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The key does not start with `/` (such keys belong to other extensions: ignore them).
    #[error("path does not start with /")]
    NotRooted,
    /// An empty segment (`//` or a trailing `/`).
    #[error("path has an empty segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path has a . or .. segment")]
    DotSegment,
    /// A NUL byte.
    #[error("path contains NUL")]
    Nul,
    /// Longer than [`MAX_PATH`], or a segment longer than [`MAX_SEGMENT`].
    #[error("path or path segment too long")]
    TooLong,
    /// Inside `.clearskies/` or named like a temporary download.
    #[error("path is reserved for ClearSkies' own files")]
    Reserved,
}

/// A validated share path.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharePath(String);

impl SharePath {
    /// The share root, `/`.
    pub fn root() -> Self {
        SharePath("/".to_owned())
    }

    /// Validates a key.
    pub fn parse(key: &str) -> Result<Self, PathError> {
        if key.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        let Some(rest) = key.strip_prefix('/') else {
            return Err(PathError::NotRooted);
        };
        if rest.is_empty() {
            return Ok(SharePath::root());
        }
        if key.contains('\0') {
            return Err(PathError::Nul);
        }
        for (i, segment) in rest.split('/').enumerate() {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                s if s.len() > MAX_SEGMENT => return Err(PathError::TooLong),
                s if i == 0 && is_meta_dir(s) => return Err(PathError::Reserved),
                s if is_part_name(s) => return Err(PathError::Reserved),
                _ => {}
            }
        }
        Ok(SharePath(key.to_owned()))
    }

    /// Builds a key from relative segments (as read from the local filesystem).
    pub fn from_segments<'a>(segments: impl IntoIterator<Item = &'a str>) -> Result<Self, PathError> {
        let mut key = String::new();
        for s in segments {
            key.push('/');
            key.push_str(s);
        }
        if key.is_empty() {
            key.push('/');
        }
        SharePath::parse(&key)
    }

    /// The key, with its leading slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path relative to the share root (no leading slash; empty for the root). Safe to
    /// join onto the root: it has no `..` segment and is not absolute.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The last segment (empty for the root).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory (`None` for the root).
    pub fn parent(&self) -> Option<SharePath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 { SharePath::root() } else { SharePath(self.0[..cut].to_owned()) })
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &SharePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
    }
}

impl fmt::Display for SharePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SharePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharePath({:?})", self.0)
    }
}

impl Serialize for SharePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SharePath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in ["/", "/a", "/a b/c d.txt", "/ünïcødé/文件", "/.hidden", "/a/.clearskies", "/x.clearskies-partial"]
        {
            assert_eq!(SharePath::parse(ok).map(|p| p.as_str().to_owned()), Ok(ok.to_owned()), "{ok}");
        }
        let p = SharePath::parse("/a/b/c.txt").unwrap();
        assert_eq!(p.relative(), "a/b/c.txt");
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        assert_eq!(SharePath::parse("/a").unwrap().parent(), Some(SharePath::root()));
        assert!(p.starts_with(&SharePath::parse("/a/b").unwrap()));
        assert!(!SharePath::parse("/a/bc").unwrap().starts_with(&SharePath::parse("/a/b").unwrap()));
    }

    #[test]
    fn refuses_escapes_and_reserved_names() {
        let cases = [
            ("../x", PathError::NotRooted),
            ("x", PathError::NotRooted),
            ("", PathError::NotRooted),
            ("/../x", PathError::DotSegment),
            ("/a/../../x", PathError::DotSegment),
            ("/a/./x", PathError::DotSegment),
            ("/.", PathError::DotSegment),
            ("//etc/passwd", PathError::EmptySegment),
            ("/a/", PathError::EmptySegment),
            ("/a\0b", PathError::Nul),
            ("/.clearskies/db", PathError::Reserved),
            ("/.clearskies", PathError::Reserved),
            ("/a/.b.clearskies-part", PathError::Reserved),
            // Case-insensitive filesystems find these under our names too.
            ("/.CLEARSKIES/x", PathError::Reserved),
            ("/.ClearSkies", PathError::Reserved),
            ("/.clear\u{17f}\u{212a}ies/db", PathError::Reserved),
            ("/a.Clearskies-Part", PathError::Reserved),
            ("/d/x.CLEARSKIES-PART", PathError::Reserved),
        ];
        for (bad, err) in cases {
            assert_eq!(SharePath::parse(bad), Err(err), "{bad:?}");
        }
        for fine in
            ["/a/.clearskies", "/.clearskiesignore", "/.clearskie", "/é.clearskies-par", "/ü", "/.clearskies-part-x"]
        {
            assert!(SharePath::parse(fine).is_ok(), "{fine:?}");
        }
        assert_eq!(SharePath::parse(&format!("/{}", "a".repeat(256))), Err(PathError::TooLong));
        assert_eq!(SharePath::parse(&"/a".repeat(2049)), Err(PathError::TooLong));
    }

    proptest! {
        /// Whatever is accepted joins under the root without escaping it.
        #[test]
        fn accepted_paths_stay_under_the_root(s in "(/[a-z.]{0,3}){0,5}") {
            if let Ok(p) = SharePath::parse(&s) {
                let joined = std::path::Path::new("/root/share").join(p.relative());
                prop_assert!(joined.starts_with("/root/share"));
                for c in std::path::Path::new(p.relative()).components() {
                    prop_assert!(matches!(c, std::path::Component::Normal(_)), "{c:?}");
                }
            }
        }
    }
}
