//! `GET /files/SHARE_ID/PATH`: a file of a share over HTTP with `Range` support, for media
//! players and browsers on this computer (served only on a loopback address). The bytes
//! come the way `clearskies cat` gets them: the local copy, or streamed from a peer.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{respond, text, HttpTargets};
use crate::share::messages::OpenRead;
use crate::supervisor::messages::{ListShares, ReadFile};

/// Serves `rest` (`TOKEN/SHARE_ID/PATH`, percent-encoded) with an optional `Range` header
/// value. Without the worker's token (from `clearskies cat --url`) nothing is served: the
/// loopback address is open to every user of this computer.
pub(super) async fn serve(
    mut stream: TcpStream,
    targets: &HttpTargets,
    method: &str,
    rest: &str,
    range: Option<&str>,
) -> std::io::Result<()> {
    if method != "GET" && method != "HEAD" {
        return respond(stream, method, text("405 Method Not Allowed", "only GET and HEAD")).await;
    }
    let Some((token, rest)) = rest.split_once('/') else {
        return respond(stream, method, text("404 Not Found", "expected /files/TOKEN/SHARE_ID/PATH")).await;
    };
    if targets.files_token.is_empty() || !same(token.as_bytes(), targets.files_token.as_bytes()) {
        let why = "a wrong or missing token: get the file's address with `clearskies cat --url`";
        return respond(stream, method, text("403 Forbidden", why)).await;
    }
    let Some((id, file)) = rest.split_once('/').and_then(|(id, f)| Some((id, percent_decode(f)?))) else {
        return respond(stream, method, text("404 Not Found", "expected /files/TOKEN/SHARE_ID/PATH")).await;
    };
    let shares = targets.shares.send(ListShares).await.unwrap_or_default();
    let Some(share) = shares.iter().find(|s| s.id == id) else {
        return respond(stream, method, text("404 Not Found", "no share with that ID")).await;
    };
    let root = std::path::PathBuf::from(&share.path);
    let open = |offset, length| ReadFile { path: root.clone(), read: OpenRead { file: file.clone(), offset, length } };
    // The size first (a zero-length read), to resolve the range.
    let size = match targets.read.send(open(0, Some(0))).await {
        Ok(Ok(r)) => r.size,
        Ok(Err(e)) if e.error == "no_such_file" || e.error == "bad_file" => {
            return respond(stream, method, text("404 Not Found", &e.message)).await;
        }
        Ok(Err(e)) => return respond(stream, method, text("500 Internal Server Error", &e.message)).await,
        Err(_) => return respond(stream, method, text("503 Service Unavailable", "the daemon is busy")).await,
    };
    let (status, offset, length) = match range.map(|r| parse_range(r, size)) {
        None | Some(Range::Ignored) => ("200 OK", 0, size),
        Some(Range::Bytes(start, end)) => ("206 Partial Content", start, end - start + 1),
        Some(Range::Unsatisfiable) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            return stream.shutdown().await;
        }
    };
    let reading = match targets.read.send(open(offset, Some(length))).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return respond(stream, method, text("500 Internal Server Error", &e.message)).await,
        Err(_) => return respond(stream, method, text("503 Service Unavailable", "the daemon is busy")).await,
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {length}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        content_type(&file)
    );
    if status.starts_with("206") && length > 0 {
        head.push_str(&format!("Content-Range: bytes {offset}-{}/{size}\r\n", offset + length - 1));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if method == "GET" {
        let mut rx = reading.rx;
        while let Some(piece) = rx.recv().await {
            match piece {
                Ok(bytes) => stream.write_all(&bytes).await?,
                // Broken off: closing early tells the client (fewer bytes than announced).
                Err(reason) => {
                    tracing::warn!(%reason, "a file stream broke off");
                    return Ok(());
                }
            }
        }
    }
    stream.shutdown().await
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

/// Compares without stopping at the first difference (the token is a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes `%XX` escapes; `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
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

fn content_type(file: &str) -> &'static str {
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
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b/c%C3%A9.mp4").as_deref(), Some("a b/cé.mp4"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
