//! The interface's files: built into the binary from `src/web/assets/` (see `build.rs`), or
//! read from `CLEARSKIES_WEB_ASSETS_DIR` when set (development: edit and reload, no rebuild).
//! The pages (`index.html`, `login.html`) are served `no-cache` and name the other files
//! under `/assets/VERSION/`, VERSION a hash of every built-in file: those are cached for
//! good (`immutable`), so a page load after the first asks for none of them, and an upgrade
//! changes every address at once, never mixing old and new files. (Relative imports stay
//! under the same version.) `/assets/NAME` still answers, `no-cache`, with the file's
//! SHA-256 as ETag.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::State;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The bytes of the asset `name` (a plain file name, nothing else).
fn bytes(state: &State, name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    if name.is_empty()
        || name.starts_with('.')
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return None;
    }
    if let Some(dir) = &state.assets_dir {
        return std::fs::read(dir.join(name)).ok().map(std::borrow::Cow::Owned);
    }
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, b)| std::borrow::Cow::Borrowed(*b))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The version in the built-in files' addresses (`dev` when they come from a directory:
/// never cached).
fn version(state: &State) -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if state.assets_dir.is_some() {
        return "dev";
    }
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for (name, bytes) in BUILT_IN {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(bytes);
        }
        hex::encode(&h.finalize()[..8])
    })
}

/// An HTML page with its asset addresses under this build's version.
fn page(state: &State, name: &str) -> Option<String> {
    let text = String::from_utf8(bytes(state, name)?.into_owned()).ok()?;
    Some(text.replace("\"/assets/", &format!("\"/assets/{}/", version(state))))
}

/// The asset `name` as an answer to `req` (304 when the browser's copy is current).
pub(super) fn serve(req: &HttpRequest, state: &State, name: &str) -> HttpResponse {
    serve_cached(req, state, name, false)
}

fn serve_cached(req: &HttpRequest, state: &State, name: &str, forever: bool) -> HttpResponse {
    let body = if name.ends_with(".html") { page(state, name).map(String::into_bytes) } else { None };
    let Some(body) = body.or_else(|| bytes(state, name).map(std::borrow::Cow::into_owned)) else {
        return super::text(404, "no such file");
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    if req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish();
    }
    let cache = if forever { "public, max-age=31536000, immutable" } else { "no-cache" };
    HttpResponse::Ok()
        .content_type(content_type(name))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(body)
}

/// The text of an HTML page (`login.html`), for filling in.
pub(super) fn text(state: &State, name: &str) -> Option<String> {
    page(state, name)
}

/// `GET /assets/NAME`: open to anyone (the files hold no data: the login page needs them).
pub(super) async fn asset(req: HttpRequest, state: web::Data<State>, name: web::Path<String>) -> HttpResponse {
    serve(&req, &state, &name)
}

/// `GET /assets/VERSION/NAME`: cached for good when VERSION is this build's (an old page's
/// address gets today's file, not cached).
pub(super) async fn versioned(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (asked, name) = path.into_inner();
    let current = asked == version(&state) && asked != "dev";
    serve_cached(&req, &state, &name, current)
}

/// `GET /`: the interface, or the login page without a session.
pub(super) async fn index(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match super::login::session(&req, &state) {
        Some(_) => serve(&req, &state, "index.html"),
        None => super::login::login_page(&state, 401, None),
    }
}
