//! The daemon's log: one line per event, whatever the event names.
//!
//! File names, peer messages and error texts reach the log from outside: a name with a
//! newline could forge a log line, and one with an escape sequence could rewrite the
//! terminal of whoever reads the log. Every control character (C0, DEL, C1) and the Unicode
//! format characters that reorder or hide text (bidi overrides and isolates, zero-width
//! joiners) is written as a Rust-style escape (`\n`, `\u{1b}`); only the newline that ends
//! an event stays as it is.

use std::io::{self, Write};

/// A [`tracing_subscriber::fmt::MakeWriter`] for stderr that escapes what it writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EscapedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for EscapedStderr {
    type Writer = Escaping<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping(io::stderr())
    }
}

/// Writes each buffer with its control characters escaped (see the module).
#[derive(Debug)]
pub(crate) struct Escaping<W>(pub(crate) W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole event per call, ending in its newline.
        self.0.write_all(escape_line(&String::from_utf8_lossy(buf)).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

pub(crate) use crate::shared::escape_line;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_line_end_kept() {
        assert_eq!(escape_line("plain line\n"), "plain line\n");
        assert_eq!(escape_line("a\nINJECTED\n"), "a\\nINJECTED\n");
        assert_eq!(escape_line("x\u{1b}[31mred\r\t\u{7f}\u{85}\n"), "x\\u{1b}[31mred\\r\\t\\u{7f}\\u{85}\n");
        assert_eq!(escape_line("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(escape_line("a\u{2028}b\u{2063}c"), "a\\u{2028}b\\u{2063}c");
        assert_eq!(escape_line("ünïcødé 文件 ok\n"), "ünïcødé 文件 ok\n");
    }

    #[test]
    fn the_log_escapes_what_peer_names_drop() {
        // Two copies of one set (the monitor cannot link the actors crate): the same chars.
        let differ = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .find(|&c| crate::shared::hides_text(c) != clearskies_actors::peer::messages::hides_text(c));
        assert_eq!(differ, None);
    }

    #[test]
    fn a_writer_writes_one_escaped_line_per_event() {
        let mut w = Escaping(Vec::new());
        w.write_all(b"one path=a\nb\n").unwrap();
        w.write_all(b"two\n").unwrap();
        assert_eq!(String::from_utf8(w.0).unwrap(), "one path=a\\nb\ntwo\n");
    }
}
