//! HTTP/1.1 as a UPnP client needs it: a GET request, and reading one response whose body
//! is framed by `Content-Length`, `chunked` or the end of the connection, within
//! [`MAX_HTTP`] bytes.

use super::{HttpUrl, UpnpError, MAX_HEADERS, MAX_HTTP, MAX_LINE};

/// A whole HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, 200 to 599 (interim 1xx responses are skipped).
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// A GET request for `url` (a device description), asking the device to close the
/// connection after answering.
pub fn http_get(url: &HttpUrl) -> Vec<u8> {
    format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", url.request_target(), url.authority())
        .into_bytes()
}

/// Reads the HTTP response at the start of `buf`, which holds everything received so far on
/// the connection; `eof` says the peer has closed it. Gives `Ok(None)` while more bytes are
/// needed, and the response once it is whole; bytes after it are ignored.
///
/// The body is framed as RFC 9112 §6.3 says for a response to GET or POST: none for 204 and
/// 304; `Transfer-Encoding: chunked` (any other coding is [`UpnpError::UnsupportedEncoding`]);
/// else `Content-Length` (several must agree); else everything until `eof`. A response that
/// would need more than [`MAX_HTTP`] bytes is [`UpnpError::Limit`] as soon as that is known
/// (a `Content-Length` or chunk size saying so, or `buf` reaching the cap unfinished), and
/// one cut short by `eof` is [`UpnpError::Truncated`]. Each call costs time linear in the
/// part of `buf` it looks at, at most [`MAX_HTTP`] bytes and a little more, so a device that
/// trickles its answer a byte per read costs quadratic time within that cap: the driver
/// should give the whole exchange a deadline (a device can also just stall).
pub fn parse_http_response(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>, UpnpError> {
    let mut start = 0;
    loop {
        let Some(head) = parse_head(&buf[start..], false)? else {
            return incomplete(buf, eof);
        };
        let body_start = start + head.len;
        if body_start > MAX_HTTP {
            return Err(UpnpError::Limit("http message"));
        }
        let status = head.status;
        if status == 101 {
            return Err(UpnpError::Http("switching protocols"));
        }
        if status < 200 {
            // An interim response (100 Continue, 102, 103): the real one follows.
            start = body_start;
            continue;
        }
        let body = match framing(&head)? {
            Framing::Empty => Some(Vec::new()),
            Framing::Length(n) => {
                let end = body_start.checked_add(n).filter(|&e| e <= MAX_HTTP).ok_or(UpnpError::Limit("http body"))?;
                buf.get(body_start..end).map(<[u8]>::to_vec)
            }
            Framing::Chunked => dechunk(buf, body_start)?,
            Framing::UntilClose if buf.len() > MAX_HTTP => return Err(UpnpError::Limit("http message")),
            Framing::UntilClose if !eof => return Ok(None),
            Framing::UntilClose => Some(buf[body_start..].to_vec()),
        };
        return match body {
            Some(body) => Ok(Some(HttpResponse { status, body })),
            None => incomplete(buf, eof),
        };
    }
}

/// What to say when the response in `buf` is not whole yet.
fn incomplete(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>, UpnpError> {
    if buf.len() >= MAX_HTTP {
        Err(UpnpError::Limit("http message"))
    } else if eof {
        Err(UpnpError::Truncated)
    } else {
        Ok(None)
    }
}

/// How a response's body ends.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing(head: &Head<'_>) -> Result<Framing, UpnpError> {
    if head.status == 204 || head.status == 304 {
        return Ok(Framing::Empty);
    }
    let mut codings = head
        .all("transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"));
    match (codings.next(), codings.next()) {
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => return Ok(Framing::Chunked),
        (Some(_), _) => return Err(UpnpError::UnsupportedEncoding),
        (None, _) => {}
    }
    let mut length = None;
    for value in head.all("content-length") {
        let n = decimal(value).ok_or(UpnpError::Http("bad content-length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(UpnpError::Http("conflicting content-length"));
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// A `Content-Length` value: decimal digits only. Values over [`MAX_HTTP`] all read as
/// `MAX_HTTP + 1`, which no response fits in.
fn decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n = 0usize;
    for d in value {
        n = n * 10 + usize::from(d - b'0');
        if n > MAX_HTTP {
            return Some(MAX_HTTP + 1);
        }
    }
    Some(n)
}

/// Decodes the chunked body that starts at `at` (RFC 9112 §7.1): chunk-size lines (hex,
/// extensions ignored), data, then a last chunk of size 0 and trailer lines until a blank
/// one. `None` until all of it is in `buf`.
fn dechunk(buf: &[u8], mut at: usize) -> Result<Option<Vec<u8>>, UpnpError> {
    let mut body = Vec::new();
    loop {
        let Some((line, next)) = line_at(buf, at)? else { return Ok(None) };
        let size = chunk_size(line)?;
        at = next;
        if size == 0 {
            let mut trailers = 0;
            loop {
                let Some((line, next)) = line_at(buf, at)? else { return Ok(None) };
                at = next;
                if line.is_empty() {
                    return Ok(Some(body));
                }
                trailers += 1;
                if trailers > MAX_HEADERS {
                    return Err(UpnpError::Limit("http trailer count"));
                }
                header(line)?;
            }
        }
        let end = at.checked_add(size).filter(|&e| e <= MAX_HTTP).ok_or(UpnpError::Limit("http chunk"))?;
        let Some(data) = buf.get(at..end) else { return Ok(None) };
        body.extend_from_slice(data);
        at = match &buf[end..] {
            [b'\r', b'\n', ..] => end + 2,
            [b'\n', ..] => end + 1,
            [] | [b'\r'] => return Ok(None),
            _ => return Err(UpnpError::Http("chunk data not followed by a line end")),
        };
    }
}

/// A chunk-size line: hex digits, optional blanks, optional `;extensions`. Sizes over
/// [`MAX_HTTP`] are [`UpnpError::Limit`] (so none overflows).
fn chunk_size(line: &[u8]) -> Result<usize, UpnpError> {
    let digits = trim(line.split(|&b| b == b';').next().unwrap_or(line));
    if digits.is_empty() {
        return Err(UpnpError::Http("bad chunk size"));
    }
    let mut size = 0usize;
    for &d in digits {
        let v = char::from(d).to_digit(16).ok_or(UpnpError::Http("bad chunk size"))?;
        size = size * 16 + usize::try_from(v).map_err(|_| UpnpError::Http("bad chunk size"))?;
        if size > MAX_HTTP {
            return Err(UpnpError::Limit("http chunk"));
        }
    }
    Ok(size)
}

/// The line that starts at `at` (without `\n` or `\r\n`) and where the next one starts, or
/// `None` if it has not ended yet. Lines over [`MAX_LINE`], or running past [`MAX_HTTP`],
/// are [`UpnpError::Limit`].
fn line_at(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, UpnpError> {
    let rest = buf.get(at..).unwrap_or_default();
    let Some(i) = rest.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') else {
        if rest.len() > MAX_LINE + 1 {
            return Err(UpnpError::Limit("http line"));
        }
        return Ok(None);
    };
    let line = &rest[..i];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let next = at + i + 1;
    if line.len() > MAX_LINE {
        return Err(UpnpError::Limit("http line"));
    }
    if next > MAX_HTTP {
        return Err(UpnpError::Limit("http message"));
    }
    Ok(Some((line, next)))
}

/// A status line and headers.
#[derive(Debug)]
pub(super) struct Head<'a> {
    /// The status code, 100 to 599.
    pub(super) status: u16,
    /// Header names and values (trimmed), in order.
    headers: Vec<(&'a [u8], &'a [u8])>,
    /// Bytes from the status line to the blank line, included.
    len: usize,
}

impl<'a> Head<'a> {
    /// The first value of header `name` (case-insensitive).
    pub(super) fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.all(name).next()
    }

    /// Every value of header `name`, in order.
    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|&(_, v)| v)
    }
}

/// Reads a status line and headers from the start of `buf`: `Ok(None)` while the blank line
/// that ends them has not arrived. With `whole` (an SSDP datagram), the end of `buf` ends
/// them too. Lines may end in `\r\n` or `\n`; folded headers are refused.
pub(super) fn parse_head(buf: &[u8], whole: bool) -> Result<Option<Head<'_>>, UpnpError> {
    // Fail fast on what is not HTTP at all.
    let prefix = &buf[..buf.len().min(5)];
    if !b"HTTP/".starts_with(prefix) {
        return Err(UpnpError::Http("not an http response"));
    }
    let mut status = None;
    let mut headers = Vec::new();
    let mut at = 0;
    loop {
        let (line, next) = match line_at(buf, at)? {
            Some(found) => found,
            None if whole && at < buf.len() => {
                let line = &buf[at..];
                if line.len() > MAX_LINE {
                    return Err(UpnpError::Limit("http line"));
                }
                (line.strip_suffix(b"\r").unwrap_or(line), buf.len())
            }
            None if whole => (&[][..], at),
            None => return Ok(None),
        };
        at = next;
        let Some(status) = status else {
            status = Some(status_line(line)?);
            continue;
        };
        if line.is_empty() {
            return Ok(Some(Head { status, headers, len: at }));
        }
        if headers.len() == MAX_HEADERS {
            return Err(UpnpError::Limit("http header count"));
        }
        headers.push(header(line)?);
    }
}

/// `HTTP/1.0` or `HTTP/1.1`, a space, three digits from 100 to 599, then a space and any
/// reason phrase, or nothing.
fn status_line(line: &[u8]) -> Result<u16, UpnpError> {
    let bad = UpnpError::Http("bad status line");
    let rest = line.strip_prefix(b"HTTP/1.1 ").or_else(|| line.strip_prefix(b"HTTP/1.0 ")).ok_or(bad.clone())?;
    let (&[a, b, c], reason) = rest.split_at_checked(3).ok_or(bad.clone())? else {
        return Err(bad);
    };
    if !(reason.is_empty() || reason.starts_with(b" ")) || ![a, b, c].iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    if !(100..600).contains(&code) {
        return Err(bad);
    }
    Ok(code)
}

/// `name: value`: the name a token, the value trimmed of blanks.
fn header(line: &[u8]) -> Result<(&[u8], &[u8]), UpnpError> {
    if line.starts_with(b" ") || line.starts_with(b"\t") {
        return Err(UpnpError::Http("folded header"));
    }
    let colon = line.iter().position(|&b| b == b':').ok_or(UpnpError::Http("header without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(UpnpError::Http("bad header name"));
    }
    Ok((name, trim(value)))
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |i| i + 1);
    &bytes[start..end]
}
