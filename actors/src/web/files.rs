//! `GET /files/TOKEN/SHARE_ID/PATH`: a file of a share over HTTP with `Range` support, for
//! media players and browsers on this computer (served only on a loopback address); and the
//! file responses of the web interface (`/s/SHARE_ID/raw/PATH`, with a session instead of a
//! token). The bytes come the way `clearskies cat` gets them: the local copy, or streamed
//! from a peer. `Range` (one range) and `If-Range` (the file's SHA-256 as its ETag) are
//! honoured, so players can seek.
//!
//! The loopback address is open to every user of this computer, and an address handed to a
//! media player ends up on its command line, which every local user can read (`ps`). So
//! each address carries its own token, valid for that one file of that one share and only
//! until it expires: `EXPIRY-MAC`, the Unix time it expires and HMAC-SHA256, under a key
//! drawn at random when the worker starts, of the share ID, the path and that time (see
//! [`url_token`]). A token seen in `ps` opens nothing else, and nothing after it expires or
//! the daemon restarts.

use actix_web::body::SizedStream;
use actix_web::http::header::{self, ContentEncoding};
use actix_web::{HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::State;
use crate::control::cmd::ErrorCode;
use crate::share::messages::OpenRead;
use crate::shares::messages::ReadFile;

/// The Content-Security-Policy of a served file.
pub(super) const FILE_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

/// How long a file address is valid unless asked otherwise (`clearskies cat --url
/// --expires`).
pub const DEFAULT_URL_LIFETIME: u64 = 12 * 3600;
/// The longest a file address may be valid.
pub const MAX_URL_LIFETIME: u64 = 30 * 86_400;

/// The token of the `/files/` address of `file` in the share `share_id`, valid until the
/// Unix time `expires`, under `key` (the worker's secret).
pub fn url_token(key: &[u8], share_id: &str, file: &str, expires: u64) -> String {
    format!("{expires}-{}", hex::encode(mac(key, share_id, file, expires)))
}

/// The MAC a token carries. The path is taken as the share resolves it (leading `/`s do
/// not matter); the expiry, decimal digits, comes last, so the parts cannot run into one
/// another.
fn mac(key: &[u8], share_id: &str, file: &str, expires: u64) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in [b"clearskies /files v1".as_slice(), share_id.as_bytes(), file.trim_start_matches('/').as_bytes()] {
        m.update(part);
        m.update(&[0]);
    }
    m.update(expires.to_string().as_bytes());
    m.finalize().into_bytes().into()
}

/// Why a token does not open `file` of `share_id` at `now`, if it does not.
fn check_token(key: &[u8], token: &str, share_id: &str, file: &str, now: u64) -> Result<(), &'static str> {
    const WRONG: &str = "a wrong or missing token: get the file's address with `clearskies cat --url`";
    if key.is_empty() {
        return Err(WRONG);
    }
    let Some((expires, given)) = token.split_once('-') else { return Err(WRONG) };
    let (Ok(expires), Ok(given)) = (expires.parse::<u64>(), hex::decode(given)) else { return Err(WRONG) };
    if !super::auth::same(&given, &mac(key, share_id, file, expires)) {
        return Err(WRONG);
    }
    if now >= expires {
        return Err("the address has expired: get a new one with `clearskies cat --url`");
    }
    Ok(())
}

/// `GET /files/TOKEN/SHARE_ID/PATH` (`rest` is what follows `/files/`, percent-encoded).
/// Without a valid token for exactly this file (from `clearskies cat --url`) nothing is
/// served, not even whether the share or the file exists.
pub(super) async fn by_token(req: &HttpRequest, state: &State, rest: &str) -> HttpResponse {
    if !super::is_loopback(req) {
        return super::text(403, "files are served only when this address is a loopback address");
    }
    let Some((token, rest)) = rest.split_once('/') else {
        return super::text(404, "expected /files/TOKEN/SHARE_ID/PATH");
    };
    let Some((id, file)) = rest.split_once('/').and_then(|(id, f)| Some((id, percent_decode(f)?))) else {
        return super::text(404, "expected /files/TOKEN/SHARE_ID/PATH");
    };
    if let Err(why) = check_token(state.targets.files_token.as_bytes(), token, id, &file, super::unix_now()) {
        return super::text(403, why);
    }
    serve(req, state, id, file, false).await
}

/// The file `file` of the share `id`, answering `req`'s `Range` and `If-Range`; as an
/// attachment if `download`.
pub(super) async fn serve(req: &HttpRequest, state: &State, id: &str, file: String, download: bool) -> HttpResponse {
    let Some(root) = super::share_root(state, id) else { return super::text(404, "no share with that ID") };
    let open = |offset, length| ReadFile { path: root.clone(), read: OpenRead { file: file.clone(), offset, length } };
    // The size and hash first (a zero-length read), to resolve the range.
    let (size, etag) = match state.targets.read.send(open(0, Some(0))).await {
        Ok(Ok(r)) => (r.size, format!("\"{}\"", r.sha256)),
        Ok(Err(e)) if matches!(e.error, ErrorCode::NoSuchFile | ErrorCode::BadFile) => {
            return super::text(404, &e.message);
        }
        Ok(Err(e)) => return super::text(500, &e.message),
        Err(_) => return super::text(503, "the daemon is busy"),
    };
    let header_text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    // `If-Range` with another version's tag (or a date, which we do not track): the whole file.
    let range = header_text(header::RANGE).filter(|_| header_text(header::IF_RANGE).is_none_or(|t| t == etag));
    let (status, offset, length) = match range.map(|r| parse_range(r, size)) {
        None | Some(Range::Ignored) => (200, 0, size),
        Some(Range::Bytes(start, end)) => (206, start, end - start + 1),
        Some(Range::Unsatisfiable) => {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish();
        }
    };
    let mut response = match status {
        206 => HttpResponse::PartialContent(),
        _ => HttpResponse::Ok(),
    };
    response
        .insert_header((header::CONTENT_TYPE, content_type(&file)))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, etag.clone()))
        // Not kept in the browser's cache after the session ends.
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        // A shared file is a peer's content: an HTML or SVG file opened here must not run
        // script in the interface's origin. `sandbox` gives it an opaque origin of its own.
        .insert_header((header::CONTENT_SECURITY_POLICY, FILE_CSP))
        // Never compressed: the length and ranges are the file's own.
        .insert_header(ContentEncoding::Identity);
    if status == 206 && length > 0 {
        response.insert_header((header::CONTENT_RANGE, format!("bytes {offset}-{}/{size}", offset + length - 1)));
    }
    // A peer's HTML or SVG page is never shown as a page of this origin (even sandboxed, it
    // could pose as the interface): it is downloaded.
    let active = ["text/html", "image/svg+xml"].iter().any(|t| content_type(&file).starts_with(t));
    if download || active {
        let name = file.rsplit('/').next().unwrap_or("file");
        response.insert_header((header::CONTENT_DISPOSITION, attachment(name)));
    }
    if req.method() == actix_web::http::Method::HEAD || length == 0 {
        return response
            .body(SizedStream::new(length, futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>()));
    }
    let reading = match state.targets.read.send(open(offset, Some(length))).await {
        // The file changed since its size and tag were read: the range would mix versions.
        Ok(Ok(r)) if format!("\"{}\"", r.sha256) != etag => return super::text(503, "the file changed; try again"),
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return super::text(500, &e.message),
        Err(_) => return super::text(503, "the daemon is busy"),
    };
    // The first piece before the answer: a file no peer can send gets an error status, not
    // a 200 that breaks off at once.
    let mut rx = reading.rx;
    let first = match rx.recv().await {
        Some(Ok(bytes)) => Some(Ok(bytes)),
        Some(Err(reason)) => return super::text(502, &reason),
        None => None,
    };
    let rest = futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await? {
            Ok(bytes) => Some((Ok(bytes), Some(rx))),
            // Broken off: ending early tells the client (fewer bytes than announced).
            Err(reason) => {
                tracing::warn!(%reason, "a file stream broke off");
                Some((Err(std::io::Error::other(reason)), None))
            }
        }
    });
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter(first), rest);
    response.body(SizedStream::new(length, stream))
}

/// A `Content-Disposition: attachment` value for `name`: an ASCII fallback and the UTF-8
/// name percent-encoded (RFC 6266, 5987).
fn attachment(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", url_path(name))
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Inclusive byte positions.
    Bytes(u64, u64),
    /// Not a single byte range we understand (multiple ranges, other units): the whole file.
    Ignored,
    Unsatisfiable,
}

/// A `Range` header value (RFC 9110, 14.1.2), one range only.
fn parse_range(value: &str, size: u64) -> Range {
    let Some(spec) = value.strip_prefix("bytes=") else { return Range::Ignored };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Range::Ignored };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // The last N bytes.
        (true, false) => last.parse::<u64>().ok().map(|n| (size.saturating_sub(n), size.saturating_sub(1), n > 0)),
        (false, true) => first.parse::<u64>().ok().map(|a| (a, size.saturating_sub(1), true)),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some((a, b.min(size.saturating_sub(1)), true)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Range::Ignored,
        Some((start, end, nonempty)) if nonempty && size > 0 && start < size && start <= end => {
            Range::Bytes(start, end)
        }
        Some(_) => Range::Unsatisfiable,
    }
}

/// `file`, percent-encoded for a URL path (`/` kept, a leading one dropped).
pub fn url_path(file: &str) -> String {
    file.trim_start_matches('/')
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes; `None` if malformed or not UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn content_type(file: &str) -> &'static str {
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "ogg" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        "txt" | "md" | "log" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Range::Bytes(0, 99));
        assert_eq!(parse_range("bytes=50-5000", 100), Range::Bytes(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-3", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=x-1", 100), Range::Ignored);
    }

    #[test]
    fn tokens_open_one_file_of_one_share_until_they_expire() {
        let key = b"0123456789abcdef0123456789abcdef";
        let t = url_token(key, "aa11", "videos/movie.mkv", 1_000);
        assert_eq!(check_token(key, &t, "aa11", "videos/movie.mkv", 999), Ok(()));
        assert_eq!(check_token(key, &t, "aa11", "/videos/movie.mkv", 999), Ok(()));
        // Another file, another share, another key: refused.
        assert!(check_token(key, &t, "aa11", "videos/other.mkv", 999).is_err());
        assert!(check_token(key, &t, "bb22", "videos/movie.mkv", 999).is_err());
        assert!(check_token(b"another key", &t, "aa11", "videos/movie.mkv", 999).is_err());
        assert!(check_token(b"", &t, "aa11", "videos/movie.mkv", 999).is_err());
        // Expired.
        assert!(check_token(key, &t, "aa11", "videos/movie.mkv", 1_000).unwrap_err().contains("expired"));
        // A later expiry, or a changed MAC, is not this token.
        let (_, m) = t.split_once('-').unwrap();
        assert!(check_token(key, &format!("5000-{m}"), "aa11", "videos/movie.mkv", 999).is_err());
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert!(check_token(key, &String::from_utf8(flipped).unwrap(), "aa11", "videos/movie.mkv", 999).is_err());
        for junk in ["", "-", "1000", "1000-", "x-00", "1000-zz"] {
            assert!(check_token(key, junk, "aa11", "videos/movie.mkv", 999).is_err(), "{junk}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b/c%C3%A9.mp4").as_deref(), Some("a b/cé.mp4"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
