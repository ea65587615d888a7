//! A response frame as a list of chunks, so that a Fetch response's record
//! bytes (the `Bytes` read from the log) reach the socket without being
//! copied into the frame: the encoded fields go into one buffer, each large
//! record set stays its own chunk, and the connection writes them all with
//! vectored writes ([`ResponseFrame::into_buf`]).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record sets smaller than this are copied: an iovec of their own costs
/// more than the copy.
const SHARED_MIN_BYTES: usize = 1024;

/// An encoded response frame (size prefix, header, body), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseFrame {
    chunks: Vec<Bytes>,
}

impl From<Bytes> for ResponseFrame {
    fn from(bytes: Bytes) -> Self {
        ResponseFrame {
            chunks: vec![bytes],
        }
    }
}

impl ResponseFrame {
    pub(crate) fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub(crate) fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// The frame as one `Buf` whose `chunks_vectored` yields every chunk.
    pub(crate) fn into_buf(self) -> FrameBuf {
        FrameBuf {
            remaining: self.len(),
            chunks: self.chunks.into(),
        }
    }
}

/// Where a response is encoded into: fields in `tail`, shared record bytes
/// as chunks of their own (`ByteBufMut::put_shared_bytes`).
#[derive(Debug)]
pub(crate) struct ChunkedFrame {
    done: Vec<Bytes>,
    /// Bytes in `done`.
    done_len: usize,
    tail: BytesMut,
}

impl ChunkedFrame {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        ChunkedFrame {
            done: Vec::new(),
            done_len: 0,
            tail: BytesMut::with_capacity(capacity),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.done_len + self.tail.len()
    }

    pub(crate) fn finish(mut self) -> ResponseFrame {
        if !self.tail.is_empty() {
            self.done.push(self.tail.freeze());
        }
        ResponseFrame { chunks: self.done }
    }
}

// SAFETY: every method delegates to `tail`, a `BytesMut`, and so keeps its
// `BufMut` contract unchanged (`advance_mut` only past bytes `chunk_mut`
// handed out and the caller initialised).
#[allow(unsafe_code)]
unsafe impl BufMut for ChunkedFrame {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee for `cnt` is about the slice
        // `chunk_mut` returned, which is `tail`'s.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.tail.put_slice(src);
    }
}

impl ByteBufMut for ChunkedFrame {
    fn offset(&self) -> usize {
        self.len()
    }

    /// Gaps (record batch encoding) never span a shared chunk: seeks stay
    /// in `tail` (clamped, never panicking).
    fn seek(&mut self, offset: usize) {
        self.tail.resize(offset.saturating_sub(self.done_len), 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let end = r.end.saturating_sub(self.done_len).min(self.tail.len());
        let start = r.start.saturating_sub(self.done_len).min(end);
        &mut self.tail[start..end]
    }

    fn put_shared_bytes(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_MIN_BYTES {
            self.tail.put_slice(bytes);
            return;
        }
        if !self.tail.is_empty() {
            // `split` keeps the rest of the capacity for what follows.
            let fields = self.tail.split().freeze();
            self.done_len += fields.len();
            self.done.push(fields);
        }
        self.done_len += bytes.len();
        self.done.push(bytes.clone());
    }
}

/// A [`ResponseFrame`] being written: `chunks_vectored` hands every chunk
/// to one `writev`.
#[derive(Debug)]
pub(crate) struct FrameBuf {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl Buf for FrameBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        self.remaining = self.remaining.saturating_sub(cnt);
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (chunk, slot) in self.chunks.iter().zip(dst.iter_mut()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}
