//! The interface's files: built into the binary from `src/web/assets/` (see `build.rs`), or
//! read from `CLEARSKIES_WEB_ASSETS_DIR` when set (development: edit and reload, no rebuild).
//! Each is served with its SHA-256 as ETag and `Cache-Control: no-cache`, so a browser
//! revalidates with one small request and an upgrade is never hidden by a stale copy.

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

/// The asset `name` as an answer to `req` (304 when the browser's copy is current).
pub(super) fn serve(req: &HttpRequest, state: &State, name: &str) -> HttpResponse {
    let Some(body) = bytes(state, name) else { return super::text(404, "no such file") };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    if req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish();
    }
    HttpResponse::Ok()
        .content_type(content_type(name))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body.into_owned())
}

/// The text of an HTML asset (`login.html`), for filling in.
pub(super) fn text(state: &State, name: &str) -> Option<String> {
    bytes(state, name).and_then(|b| String::from_utf8(b.into_owned()).ok())
}

/// `GET /assets/NAME`: open to anyone (the files hold no data: the login page needs them).
pub(super) async fn asset(req: HttpRequest, state: web::Data<State>, name: web::Path<String>) -> HttpResponse {
    serve(&req, &state, &name)
}

/// `GET /`: the interface, or the login page without a session.
pub(super) async fn index(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match super::login::session(&req, &state) {
        Some(_) => serve(&req, &state, "index.html"),
        None => super::login::login_page(&state, 401, None),
    }
}
