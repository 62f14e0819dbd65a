//! Plain (no TLS) message framing for the tracker protocol: `m` frames over TCP.

use std::io;

use bytes::BytesMut;
use clearskies_protocol::frame::{self, Decoder, Item, Kind};
use clearskies_protocol::message::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest tracker message accepted (a full `tracker.register` of 4096 IDs is ~420 KiB).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Reads whole messages from a byte stream.
#[derive(Debug)]
pub struct MessageReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: Decoder,
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Wraps a stream.
    pub fn new(inner: R) -> Self {
        MessageReader { inner, buf: BytesMut::with_capacity(1024), decoder: Decoder::new() }
    }

    /// The next message; `None` at a clean end of stream. Malformed input, attachments and
    /// messages over [`MAX_MESSAGE`] are errors.
    pub async fn next(&mut self) -> io::Result<Option<Message>> {
        loop {
            match self.decoder.decode(&mut self.buf).map_err(invalid)? {
                Some(Item::Frame(f)) => {
                    if f.kind != Kind::Plain {
                        return Err(invalid("tracker messages are plain `m` frames"));
                    }
                    return Message::decode(&f.body).map(Some).map_err(invalid);
                }
                Some(_) => return Err(invalid("tracker messages have no attachments")),
                None => {}
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(invalid("message too large"));
            }
            self.buf.reserve(1024);
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(invalid("stream ended mid-message")) };
            }
        }
    }
}

/// A message as an `m` frame.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    // Our own messages are far below the frame limit.
    let _ = frame::encode_frame(Kind::Plain, &m.encode(), None, &mut out);
    out
}
