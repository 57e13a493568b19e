//! In-memory transports: a reader that replays the recv workload's bytes forever (in
//! reads of at most `READ_CHUNK` bytes, never crossing the end of the input, so every
//! implementation reads every lap in the same chunks, and each read copies into the
//! reader's buffer as a socket read does), and writers that discard what they are given
//! into a [`Sink`], which copies every byte as a socket write would (the send workload).
//! Sync (`std::io`) for wsengine's host and tungstenite, async (tokio) for
//! fastwebsockets and tokio-websockets. Reads and writes always complete at once.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::workload::{READ_CHUNK, Sink};

/// Replays `input` endlessly; writes go into a [`Sink`]. One type for both directions keeps the
/// peers' `Read + Write` / `AsyncRead + AsyncWrite` bounds satisfied.
#[derive(Debug, Clone)]
pub struct MemStream {
    input: Arc<[u8]>,
    pos: usize,
    /// Where writes go (the send workload's output, copied and counted).
    pub sink: Sink,
}

impl MemStream {
    /// A stream that reads `input` over and over. Empty input reads as end of stream.
    pub fn new(input: &[u8]) -> Self {
        Self {
            input: input.into(),
            pos: 0,
            sink: Sink::new(),
        }
    }

    /// A stream with nothing to read, for the send workload.
    pub fn sink() -> Self {
        Self::new(&[])
    }

    fn next_chunk(&mut self, room: usize) -> &[u8] {
        let start = self.pos;
        let n = room.min(READ_CHUNK).min(self.input.len() - start);
        self.pos += n;
        if self.pos == self.input.len() {
            self.pos = 0;
        }
        &self.input[start..start + n]
    }
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.next_chunk(buf.len());
        let n = chunk.len();
        buf[..n].copy_from_slice(chunk);
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.sink.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(bufs.iter().map(|b| self.sink.write(b)).sum())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for MemStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let chunk = this.next_chunk(buf.remaining());
        buf.put_slice(chunk);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().sink.write(buf)))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        Poll::Ready(Ok(bufs.iter().map(|b| this.sink.write(b)).sum()))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
