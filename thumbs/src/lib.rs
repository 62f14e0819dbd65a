//! Photo thumbnails for the web interface's gallery: a JPEG, PNG, WebP or GIF file in a share
//! becomes a small JPEG in a cache directory, made under a memory budget so that hostile or
//! broken files cannot take the daemon down.
//!
//! Everything here blocks (disk, decoding) and nothing here is async: the daemon calls
//! [`Thumbnailer::thumbnail`] from a blocking thread pool, with one [`Thumbnailer`] shared
//! behind an `Arc`. There is no tracing and no metrics; the caller logs the [`Error`]s and shows
//! [`placeholder_svg`] for a refused image.
//!
//! What it refuses to do:
//! - decode without first reading the header and reserving the decode's estimated memory from
//!   the shared budget (waiting, first come first served, until enough is free); an image
//!   whose estimate alone is over the whole budget is refused ([`Error::TooLarge`]) unread;
//! - trust the header: the decoders get [`image::Limits`] (the header's width and height, and
//!   the memory the estimate allowed them), so a decompression bomb or a lying header stops
//!   at the limit instead of allocating;
//! - guess the format from the file name: it is sniffed from the content;
//! - name cache files after anything but a hex content key ([`Error::InvalidKey`]);
//! - upscale: an image smaller than the [`Size`] keeps its size.
//!
//! Call order: [`Thumbnailer::new`] once; [`Thumbnailer::thumbnail`] per request (a cached
//! thumbnail is returned without decoding, and marked recent); [`Thumbnailer::prune`] now and
//! then to keep the cache under a size.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod budget;
mod cache;
mod probe;
mod render;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use budget::Budget;
use cache::Key;

/// Why no thumbnail was made. Every refusal is one of these; no input bytes make this crate
/// panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is not 16 to 128 hex digits.
    #[error("thumbnail key is not 16 to 128 hex digits")]
    InvalidKey,
    /// Not a JPEG, PNG, WebP or GIF (judged by content), not a regular file, or a variant the
    /// decoder does not support (an arithmetic-coded JPEG, say).
    #[error("unsupported image: {what}")]
    Unsupported {
        /// What was found.
        what: String,
    },
    /// Decoding would take more memory than allowed: the estimate from the header (`needed`)
    /// is over the whole budget, or the decoder reached the limit it was given (the header
    /// lied; `needed` is then the estimate it exceeded).
    #[error("image too large to decode ({width}x{height}, more than {needed} bytes)")]
    TooLarge {
        /// The width the header gave (0 if the decoder refused before saying).
        width: u32,
        /// The height the header gave (0 if the decoder refused before saying).
        height: u32,
        /// The estimated memory, in bytes.
        needed: u64,
    },
    /// The bytes are not a valid image: truncated, garbage, inconsistent, or the decoder
    /// panicked on them.
    #[error("corrupt image: {reason}")]
    Corrupt {
        /// What the decoder said.
        reason: String,
    },
    /// Reading the source or writing the cache failed.
    #[error("thumbnail i/o failed")]
    Io(#[from] io::Error),
}

impl Error {
    /// The error for a refusal from `image`, decoding an image of `width` x `height` (0 if not
    /// known yet) whose decoder was given limits from an estimate of `needed` bytes.
    fn from_image(e: image::ImageError, width: u32, height: u32, needed: u64) -> Error {
        use image::ImageError as E;
        match e {
            E::Limits(_) => Error::TooLarge { width, height, needed },
            E::Unsupported(e) => Error::Unsupported { what: e.to_string() },
            E::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => Error::Corrupt { reason: "truncated".into() },
            E::IoError(e) => Error::Io(e),
            e @ (E::Decoding(_) | E::Parameter(_) | E::Encoding(_)) => Error::Corrupt { reason: e.to_string() },
        }
    }
}

/// The thumbnail sizes, as square boxes the thumbnail fits in (aspect ratio kept).
///
/// The boxes are square on purpose: the EXIF orientation is applied after resizing, which
/// gives the same size only because a square box fits a rotated image the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Size {
    /// Fits in 256x256: the gallery's grid.
    Small,
    /// Fits in 1280x1280: the single-photo view.
    Large,
}

impl Size {
    /// The side of the box, in pixels.
    pub const fn max_side(self) -> u32 {
        match self {
            Size::Small => 256,
            Size::Large => 1280,
        }
    }

    /// The size's name in URLs (`small`, `large`).
    pub const fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }

    /// The size named `name` ([`Size::name`]), if any.
    pub fn from_name(name: &str) -> Option<Size> {
        [Size::Small, Size::Large].into_iter().find(|s| s.name() == name)
    }
}

/// Makes and caches thumbnails; shared by all request threads (it is `Send + Sync`).
#[derive(Debug)]
pub struct Thumbnailer {
    cache_dir: PathBuf,
    budget: Budget,
}

impl Thumbnailer {
    /// A thumbnailer caching in `cache_dir` (created when first needed), whose decodes
    /// together use at most about `budget_bytes` of memory.
    pub fn new(cache_dir: PathBuf, budget_bytes: u64) -> Thumbnailer {
        Thumbnailer { cache_dir, budget: Budget::new(budget_bytes) }
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The cached JPEG thumbnail of `source` at `size`, made first if it is not cached.
    ///
    /// `key` is the hex content hash of `source` (the caller's), 16 to 128 hex digits; the
    /// thumbnail is `cache_dir/<first 2 digits>/<key>-<side>.jpg`. A cached thumbnail is
    /// returned without reading `source`, and its modification time set to now so that
    /// [`Thumbnailer::prune`] keeps it. Otherwise this blocks until the budget has room for the
    /// decode, which may take a while under load.
    pub fn thumbnail(&self, source: &Path, key: &str, size: Size) -> Result<PathBuf, Error> {
        let key = Key::parse(key)?;
        let path = cache::path(&self.cache_dir, &key, size);
        if cache::serve(&path) {
            return Ok(path);
        }
        if !std::fs::metadata(source)?.is_file() {
            return Err(Error::Unsupported { what: "not a regular file".into() });
        }
        let file = File::open(source)?;
        let file_len = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let header = render::guarded(|| probe::probe(&mut reader, file_len))?;
        let plan = render::Plan::new(&header, size);
        let needed = plan.estimate();
        let too_large = || Error::TooLarge { width: header.width, height: header.height, needed };
        let reservation = self.budget.reserve(needed).ok_or_else(too_large)?;
        let thumbnail = render::render(reader, &header, &plan)?;
        cache::write(&path, |out| render::encode(&thumbnail, out))?;
        drop(reservation);
        Ok(path)
    }

    /// The cached thumbnail of the content `key` at `size`, if there is one (marked recent,
    /// as [`Thumbnailer::thumbnail`] does): lets a caller skip fetching the source.
    pub fn cached(&self, key: &str, size: Size) -> Result<Option<PathBuf>, Error> {
        let key = Key::parse(key)?;
        let path = cache::path(&self.cache_dir, &key, size);
        Ok(cache::serve(&path).then_some(path))
    }

    /// Removes the least recently used cached thumbnails (oldest modification time first) until
    /// the cache holds at most `max_bytes`, and any temporary file left by a crash; returns the
    /// bytes removed. A thumbnail returned by [`Thumbnailer::thumbnail`] just before may be
    /// among them: call this when no response is being sent from the cache, or let the caller
    /// ask again.
    pub fn prune(&self, max_bytes: u64) -> io::Result<u64> {
        cache::prune(&self.cache_dir, max_bytes)
    }
}

/// A small neutral picture (an SVG document, 256x256, grey) to show for an image that has no
/// thumbnail.
pub fn placeholder_svg() -> &'static str {
    concat!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">"##,
        r##"<rect width="256" height="256" fill="#e4e4e4"/>"##,
        r##"<rect x="64" y="72" width="128" height="112" rx="8" fill="none" stroke="#a0a0a0" stroke-width="8"/>"##,
        r##"<circle cx="100" cy="108" r="12" fill="#a0a0a0"/>"##,
        r##"<path d="M72 176l40-44 28 28 20-20 28 36z" fill="#a0a0a0"/>"##,
        "</svg>"
    )
}
