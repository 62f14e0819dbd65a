//! Sending attachments: a file or a producer's output, read on a blocking thread into
//! [`CHUNK`]-sized pieces under the connection's send budget, handed back to the actor as
//! [`OutChunk`]s and ended with [`OutEnd`].

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use actix::{Addr, AsyncContext, Context, Handler, Message as ActixMessage};
use bytes::Bytes;
use clearskies_protocol::message::directory::GetError;
use clearskies_protocol::message::Message;
use clearskies_protocol::session::SendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use super::{Peer, CHUNK, GZIP_TOO_LARGE};
use crate::peer::messages::Producer;

/// A piece of a file being sent, read by the blocking reader.
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(super) struct OutChunk {
    data: Bytes,
    permit: OwnedSemaphorePermit,
}

/// Turns an attachment's bytes into [`OutChunk`]s of [`CHUNK`] bytes, waiting for the send
/// budget (so a producer never runs ahead of the socket by more than
/// [`SEND_BUDGET`](super::SEND_BUDGET)).
struct ChunkWriter {
    addr: Addr<Peer>,
    budget: Arc<Semaphore>,
    handle: tokio::runtime::Handle,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// Sends what is buffered (the buffer goes as it is; the next one is allocated when
    /// needed, at the size still expected).
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        let permits = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let gone = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let permit = self.handle.block_on(self.budget.clone().acquire_many_owned(permits)).map_err(|_| gone())?;
        if !self.addr.connected() {
            return Err(gone());
        }
        self.addr.do_send(OutChunk { data: Bytes::from(data), permit });
        Ok(())
    }
}

impl ChunkWriter {
    /// Sends `len` bytes of `file` from its position, read straight into the chunks.
    fn send_file(&mut self, mut file: std::fs::File, len: u64) -> std::io::Result<()> {
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            self.buf.resize(want, 0);
            let mut got = 0;
            while got < want {
                match file.read(&mut self.buf[got..want]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.buf.truncate(got);
            // Shorter than announced (changed under us): the receiver's hash check refuses it.
            if got == 0 {
                break;
            }
            self.send()?;
            left -= got as u64;
        }
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK);
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Sends what is buffered now (a delta flushes each long run of copies, so that the
    /// peer applies it while the rest is computed).
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// What an attachment's bytes come from.
pub(super) enum Body {
    /// `len` bytes of a file from its position.
    File(std::fs::File, u64),
    /// Whatever the producer writes.
    Produce(Producer),
}

/// The file being sent is done (or could not be read further).
#[derive(Debug, ActixMessage)]
#[rtype(result = "()")]
pub(super) struct OutEnd;

impl Peer {
    /// Sends `header` with the attachment `produce` writes, on a blocking thread, in
    /// [`CHUNK`]s under the connection's send budget.
    pub(super) fn start_attachment(
        &mut self,
        header: &Message,
        body: Body,
        compressible: bool,
        ctx: &mut Context<Self>,
    ) {
        let started = if compressible {
            self.session.send_with_attachment(header)
        } else {
            self.session.send_with_incompressible_attachment(header)
        };
        if let Err(e) = started {
            debug!(remote = %self.remote, error = %e, "cannot send");
            return;
        }
        // An answer to a request names its contents: if the message cannot be sent (too
        // large for one gzip message), the peer is told so instead of waiting forever.
        self.answering = match header {
            Message::DirectoryData(d) => Some(d.sha256),
            Message::RsyncPatch(p) => p.sha256,
            _ => None,
        };
        self.sending_file = true;
        let mut w = ChunkWriter {
            addr: ctx.address(),
            budget: self.budget.clone(),
            handle: tokio::runtime::Handle::current(),
            buf: Vec::new(),
        };
        let remote = self.remote;
        tokio::task::spawn_blocking(move || {
            let produced = match body {
                Body::File(file, len) => w.send_file(file, len),
                Body::Produce(produce) => (produce.0)(&mut w).and_then(|()| w.send()),
            };
            if let Err(e) = produced {
                debug!(%remote, error = %e, "attachment ended early");
            }
            w.addr.do_send(OutEnd);
        });
    }
}

impl Handler<OutChunk> for Peer {
    type Result = ();

    fn handle(&mut self, msg: OutChunk, ctx: &mut Context<Self>) {
        if let Err(e) = self.session.send_chunk(msg.data) {
            debug!(remote = %self.remote, error = %e, "cannot send a chunk");
            if let (SendError::GzipMessageTooLarge, Some(sha256)) = (e, self.answering.take()) {
                let message = GZIP_TOO_LARGE.to_owned();
                if let Err(e) = self.session.send(&GetError { sha256, message }.into()) {
                    debug!(remote = %self.remote, error = %e, "cannot send");
                }
                self.flush(None, ctx);
            }
            return;
        }
        self.flush(Some(msg.permit), ctx);
    }
}

impl Handler<OutEnd> for Peer {
    type Result = ();

    fn handle(&mut self, _: OutEnd, ctx: &mut Context<Self>) {
        if let Err(e) = self.session.end_attachment(Instant::now()) {
            debug!(remote = %self.remote, error = %e, "cannot end an attachment");
        }
        self.sending_file = false;
        self.answering = None;
        while !self.sending_file {
            let Some(next) = self.outbox.pop_front() else { break };
            self.send_out(next, ctx);
        }
        self.drive(ctx);
    }
}
