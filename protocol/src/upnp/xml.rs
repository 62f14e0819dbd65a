//! A minimal XML tag scanner, enough for device descriptions and SOAP envelopes: tags,
//! text and CDATA in document order, comments and processing instructions skipped,
//! `<!DOCTYPE>` refused, nesting checked and bounded by [`MAX_DEPTH`]. Each byte of the
//! document is looked at a bounded number of times.

use super::{is_space, UpnpError, MAX_DEPTH};

/// One piece of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// A start tag's local name (without its prefix). `<a/>` gives `Start` then `End`.
    Start(&'a str),
    /// An end tag's local name.
    End(&'a str),
    /// Character data as written, entities unexpanded (see [`unescape_into`]).
    Text(&'a str),
    /// The content of a CDATA section, literal.
    CData(&'a str),
}

/// Reads a document token by token.
#[derive(Debug)]
pub(super) struct Scanner<'a> {
    doc: &'a str,
    at: usize,
    /// Qualified names of the open elements, innermost last.
    open: Vec<&'a str>,
    /// The last start tag closed itself: its end comes next.
    close_next: bool,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(doc: &'a str) -> Scanner<'a> {
        let doc = doc.strip_prefix('\u{feff}').unwrap_or(doc);
        Scanner { doc, at: 0, open: Vec::new(), close_next: false }
    }

    /// How many elements are open: during a `Start` token its own element counts, after an
    /// `End` its element no longer does. Text inside the root element is at depth 1.
    pub(super) fn depth(&self) -> usize {
        self.open.len()
    }

    /// The next token, `None` at the end of the document. An end tag must close the innermost
    /// open element, and every element must be closed by the end.
    pub(super) fn next_token(&mut self) -> Result<Option<Token<'a>>, UpnpError> {
        if self.close_next {
            self.close_next = false;
            let name = self.open.pop().unwrap_or_default();
            return Ok(Some(Token::End(local(name))));
        }
        loop {
            let rest = self.doc.get(self.at..).unwrap_or_default();
            if rest.is_empty() {
                if self.open.is_empty() {
                    return Ok(None);
                }
                return Err(UpnpError::Xml("document ends inside an element"));
            }
            if !rest.starts_with('<') {
                let len = rest.find('<').unwrap_or(rest.len());
                self.at += len;
                return Ok(Some(Token::Text(&rest[..len])));
            }
            if let Some(body) = rest.strip_prefix("<!--") {
                let end = body.find("-->").ok_or(UpnpError::Xml("unterminated comment"))?;
                self.at += 4 + end + 3;
                continue;
            }
            if let Some(body) = rest.strip_prefix("<![CDATA[") {
                let end = body.find("]]>").ok_or(UpnpError::Xml("unterminated cdata section"))?;
                self.at += 9 + end + 3;
                return Ok(Some(Token::CData(&body[..end])));
            }
            if rest.starts_with("<!") {
                return Err(UpnpError::Xml("doctype and markup declarations are not supported"));
            }
            if let Some(body) = rest.strip_prefix("<?") {
                let end = body.find("?>").ok_or(UpnpError::Xml("unterminated processing instruction"))?;
                self.at += 2 + end + 2;
                continue;
            }
            if let Some(body) = rest.strip_prefix("</") {
                let end = body.find('>').ok_or(UpnpError::Xml("unterminated end tag"))?;
                let name = body[..end].trim_end_matches(is_space);
                self.at += 2 + end + 1;
                return match self.open.pop() {
                    Some(open) if open == name => Ok(Some(Token::End(local(name)))),
                    Some(_) => Err(UpnpError::Xml("end tag does not match the open element")),
                    None => Err(UpnpError::Xml("end tag without a start tag")),
                };
            }
            let end = tag_end(rest).ok_or(UpnpError::Xml("unterminated tag"))?;
            let inner = &rest[1..end];
            let name = &inner[..inner.find(|c: char| is_space(c) || c == '/').unwrap_or(inner.len())];
            if name.is_empty() || name.contains(['<', '&', '"', '\'', '=']) {
                return Err(UpnpError::Xml("bad tag name"));
            }
            if self.open.len() == MAX_DEPTH {
                return Err(UpnpError::Limit("xml depth"));
            }
            self.open.push(name);
            self.close_next = inner.ends_with('/');
            self.at += end + 1;
            return Ok(Some(Token::Start(local(name))));
        }
    }
}

/// The index of the `>` that ends the tag starting `rest` (at its `<`), skipping quoted
/// attribute values.
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote = None;
    for (i, b) in rest.bytes().enumerate().skip(1) {
        match (quote, b) {
            (None, b'>') => return Some(i),
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if q == b => quote = None,
            _ => {}
        }
    }
    None
}

/// A name without its namespace prefix.
pub(super) fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Appends character data to `out`, expanding `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`
/// and character references (`&#38;`, `&#x26;`); any other `&` is kept as written. Stops at
/// `max` bytes of `out` (at a character boundary) and then returns false.
pub(super) fn unescape_into(raw: &str, out: &mut String, max: usize) -> bool {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        if !push_bounded(out, &rest[..amp], max) {
            return false;
        }
        let after = &rest[amp + 1..];
        // The longest reference is `#x10FFFF`: look no further for its `;`.
        let semi = after.bytes().take(10).position(|b| b == b';');
        let (c, used) = semi.and_then(|s| entity(&after[..s]).map(|c| (c, s + 1))).unwrap_or(('&', 0));
        if !push_bounded(out, c.encode_utf8(&mut [0; 4]), max) {
            return false;
        }
        rest = &after[used..];
    }
    push_bounded(out, rest, max)
}

/// The character a reference names (without its `&` and `;`).
fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => number.parse().ok()?,
                _ => return None,
            };
            char::from_u32(code).filter(|&c| c != '\0')
        }
    }
}

/// Appends as much of `s` as fits in `max` bytes of `out`; false if some did not fit.
fn push_bounded(out: &mut String, s: &str, max: usize) -> bool {
    let room = max.saturating_sub(out.len());
    if s.len() <= room {
        out.push_str(s);
        return true;
    }
    let mut cut = room;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&s[..cut]);
    false
}

/// Appends `text` as XML character data: `& < > " '` escaped, and control characters and
/// the non-characters U+FFFE and U+FFFF (not allowed, or not safe, in XML 1.0) dropped.
pub(super) fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\u{FFFE}' | '\u{FFFF}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}
