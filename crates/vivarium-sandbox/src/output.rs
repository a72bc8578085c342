//! A guest output stream with a byte cap that never fails the guest: bytes past the cap are
//! counted and dropped, so a flood of prints cannot crash an action or exhaust the host.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::live_logs::{LineSplitter, LogSink};

/// Largest write the guest is invited to make at once.
const WRITE_BUDGET: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

/// Captured output of one call: the first `cap` bytes, and how many more were dropped; the
/// kept bytes also go, as they arrive, to the lines of a watched call's live logs.
#[derive(Clone)]
pub struct CappedOutput {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
    live: Option<Arc<Mutex<LineSplitter>>>,
}

impl std::fmt::Debug for CappedOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CappedOutput")
            .field("cap", &self.cap)
            .field("watched", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl CappedOutput {
    /// An empty stream that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buffer: Arc::default(),
            live: None,
        }
    }

    /// An empty stream that keeps at most `cap` bytes and hands each line it keeps to
    /// `sink` as soon as it is complete.
    pub fn watched(cap: usize, sink: Arc<dyn LogSink>) -> Self {
        Self {
            live: Some(Arc::new(Mutex::new(LineSplitter::new(sink)))),
            ..Self::new(cap)
        }
    }

    /// The bytes kept and the number of bytes dropped past the cap, leaving the stream empty.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let buffer = std::mem::take(&mut *self.lock());
        (buffer.kept, buffer.dropped)
    }

    /// How many bytes are kept so far.
    pub fn kept_len(&self) -> usize {
        self.lock().kept.len()
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let room = self.cap.saturating_sub(buffer.kept.len());
        let kept = room.min(bytes.len());
        buffer.kept.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
        if let Some(live) = &self.live {
            live.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .feed(&bytes[..kept]);
        }
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_past_the_cap_are_counted_not_kept() {
        let mut output = CappedOutput::new(5);
        output.write(Bytes::from_static(b"abc")).unwrap();
        output.write(Bytes::from_static(b"defgh")).unwrap();
        assert_eq!(output.take(), (b"abcde".to_vec(), 3));
        output.write(Bytes::from_static(b"ij")).unwrap();
        assert_eq!(output.take(), (b"ij".to_vec(), 0));
    }

    #[test]
    fn the_guest_is_always_invited_to_write() {
        let mut output = CappedOutput::new(0);
        output.write(Bytes::from_static(b"x")).unwrap();
        assert_eq!(output.check_write().unwrap(), WRITE_BUDGET);
    }
}
