//! `GET /s/SHARE_ID/thumb/PATH?size=small|large`: a photo's thumbnail for the gallery
//! (`clearskies-thumbs`), cached under the data directory by the file's content hash, so
//! a changed file gets a new one and a renamed one keeps its own.
//!
//! On a cache miss the file's bytes come the way `/s/…/raw/` gets them (the local copy, or a
//! peer's, checked against the index's hash as they arrive) into a temporary file, and the
//! thumbnail is made from that on the blocking pool, at most [`MAKING`] at once; the
//! thumbnailer's own memory budget ([`BUDGET`]) bounds what decoding takes. A file that is
//! not a picture, or that the thumbnailer refuses, gets a placeholder picture.

use std::io::Write as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use clearskies_thumbs::{Size, Thumbnailer};
use tracing::debug;

use super::State;
use crate::share::messages::OpenRead;
use crate::shares::messages::ReadFile;

/// Memory all decodes together may take.
pub(super) const BUDGET: u64 = 300 << 20;
/// Thumbnails made at once.
pub(super) const MAKING: usize = 2;
/// The largest picture file a thumbnail is made of.
const MAX_SOURCE: u64 = 256 << 20;
/// The cache's size, kept by pruning the least recently used.
const CACHE_MAX: u64 = 1 << 30;
/// Thumbnails made between two prunings.
const PRUNE_EVERY: u64 = 200;
/// How long fetching a picture may take in all (a peer that trickles bytes gives it up).
const FETCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// Pictures remembered as refused (not fetched and decoded again on every view).
const MAX_REFUSED: usize = 4096;

/// The thumbnailer and its bookkeeping.
#[derive(Debug)]
pub(crate) struct Thumbs {
    maker: std::sync::Arc<Thumbnailer>,
    making: tokio::sync::Semaphore,
    made: std::sync::atomic::AtomicU64,
    /// Fetched pictures wait here for decoding (emptied at start: what a crash left).
    tmp: std::path::PathBuf,
    /// Content hashes (with the size) that gave no thumbnail.
    refused: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Thumbs {
    /// Caching in `dir`.
    pub(super) fn new(dir: std::path::PathBuf) -> Self {
        let tmp = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let maker = std::sync::Arc::new(Thumbnailer::new(dir, BUDGET));
        let pruner = maker.clone();
        // Kept small from the start, off the event loop.
        std::thread::spawn(move || {
            if let Err(e) = pruner.prune(CACHE_MAX) {
                debug!(error = %e, "pruning the thumbnail cache");
            }
        });
        Thumbs {
            maker,
            making: tokio::sync::Semaphore::new(MAKING),
            made: std::sync::atomic::AtomicU64::new(0),
            tmp,
            refused: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn refused(&self, key: &str) -> bool {
        self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(key)
    }

    fn refuse(&self, key: String) {
        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if refused.len() >= MAX_REFUSED {
            refused.clear();
        }
        refused.insert(key);
    }
}

fn is_picture(file: &str) -> bool {
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "webp" | "gif")
}

fn placeholder() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(clearskies_thumbs::placeholder_svg())
}

/// `GET /s/SHARE_ID/thumb/PATH`.
pub(super) async fn thumb(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if super::login::session(&req, &state).is_none() {
        return super::api::login_required();
    }
    let rest = req.uri().path().strip_prefix("/s/").unwrap_or_default();
    let Some((id, file)) = rest.split_once("/thumb/") else { return super::text(404, "expected /s/ID/thumb/PATH") };
    let Some(file) = super::files::percent_decode(file) else { return super::text(404, "a malformed path") };
    let size = if req.query_string().split('&').any(|p| p == "size=large") { Size::Large } else { Size::Small };
    let Some(root) = super::share_root(&state, id) else { return super::text(404, "no share with that ID") };
    let open = |length| ReadFile { path: root.clone(), read: OpenRead { file: file.clone(), offset: 0, length } };
    let (length, sha) = match state.targets.read.send(open(Some(0))).await {
        Ok(Ok(r)) => (r.size, r.sha256.to_string()),
        Ok(Err(e)) => return super::text(404, &e.message),
        Err(_) => return super::text(503, "the daemon is busy"),
    };
    if !is_picture(&file) || length > MAX_SOURCE {
        return placeholder();
    }
    let etag = format!("\"{sha}-{}\"", size.name());
    if req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish();
    }
    let refused_key = format!("{sha}-{}", size.name());
    if state.thumbs.refused(&refused_key) {
        return placeholder();
    }
    let maker = state.thumbs.maker.clone();
    let key = sha.clone();
    let cached = web::block(move || maker.cached(&key, size).map(|p| p.map(std::fs::read))).await;
    let made = match cached {
        Ok(Ok(Some(Ok(jpeg)))) => Ok(jpeg),
        Ok(Ok(_)) => {
            let made = tokio::time::timeout(FETCH_DEADLINE, make(&state, open(None), &sha, size)).await;
            let made = made.unwrap_or_else(|_| Err("fetching the picture took too long".into()));
            if made.is_err() {
                state.thumbs.refuse(refused_key);
            }
            made
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match made {
        Ok(jpeg) => HttpResponse::Ok()
            .content_type("image/jpeg")
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(jpeg),
        Err(why) => {
            debug!(%file, %why, "no thumbnail");
            placeholder()
        }
    }
}

/// Fetches the file through `read` into a temporary file and makes its thumbnail (the
/// JPEG's bytes). The disk work runs on the blocking pool, never on the HTTP thread.
async fn make(state: &State, read: ReadFile, sha: &str, size: Size) -> Result<Vec<u8>, String> {
    let _turn = state.thumbs.making.acquire().await.map_err(|e| e.to_string())?;
    let reading = state.targets.read.send(read).await.map_err(|e| e.to_string())?.map_err(|e| e.message)?;
    let (maker, sha, tmp) = (state.thumbs.maker.clone(), sha.to_owned(), state.thumbs.tmp.clone());
    let made = web::block(move || {
        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        let mut file = tempfile::Builder::new().prefix("source-").tempfile_in(&tmp).map_err(|e| e.to_string())?;
        let mut rx = reading.rx;
        while let Some(piece) = rx.blocking_recv() {
            file.write_all(&piece?).map_err(|e| e.to_string())?;
        }
        let thumb = maker.thumbnail(file.path(), &sha, size).map_err(|e| format!("{e:#}"))?;
        std::fs::read(thumb).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?;
    if state.thumbs.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
        let maker = state.thumbs.maker.clone();
        let _ = web::block(move || maker.prune(CACHE_MAX)).await;
    }
    made
}
