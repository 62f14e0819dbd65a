// Modified by ClearSkies (December 2026) from librqbit-utp 0.7.0; see README.md, CHANGES.

use std::{net::SocketAddr, pin::Pin, task::Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::{stream_rx::UtpStreamReadHalf, stream_tx::UtpStreamWriteHalf};

pub struct UtpStream {
    reader: UtpStreamReadHalf,
    writer: UtpStreamWriteHalf,
    remote_addr: SocketAddr,
}

impl UtpStream {
    pub(crate) fn new(
        reader: UtpStreamReadHalf,
        writer: UtpStreamWriteHalf,
        remote_addr: SocketAddr,
    ) -> Self {
        Self {
            reader,
            writer,
            remote_addr,
        }
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// ClearSkies: closes the connection at once, as a refusal: sends ST_RESET to the remote
    /// (no FIN; data not yet sent or acknowledged is dropped) and ends the connection, which
    /// frees its place among the socket's `max_live_vsocks` (and the per-source count of an
    /// incoming connection) as soon as the connection's task runs, instead of after the
    /// FIN exchange or, if the remote does not answer, the 1 s given it to send its FIN, as
    /// dropping the stream does.
    pub fn abort(self) {
        self.writer.abort();
    }

    pub fn split(self) -> (UtpStreamReadHalf, UtpStreamWriteHalf) {
        (self.reader, self.writer)
    }

    #[cfg(test)]
    pub async fn read_all_available(&mut self) -> std::io::Result<Vec<u8>> {
        self.reader.read_all_available().await
    }
}

impl AsyncRead for UtpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for UtpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, std::io::Error>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<(), std::io::Error>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<(), std::io::Error>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}
