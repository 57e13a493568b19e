//! The transmit buffer: encoded bytes waiting for the transport, in order.
//!
//! Small frames are encoded into one growing buffer (`tail`): no allocation per frame
//! once it has grown. A large payload the application hands over as `Bytes` (and does
//! not need masking) is not copied: the bytes encoded so far are frozen into a segment,
//! the payload becomes the next segment, and encoding continues in the tail. A host
//! writes the segments with one vectored write ([`Transmit::segments`]).

use alloc::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, Default)]
pub(crate) struct Transmit {
    /// Frozen segments, oldest first; all of them go out before `tail`.
    queue: VecDeque<Bytes>,
    /// Bytes being appended to.
    tail: BytesMut,
    /// Total bytes pending (queue + tail).
    len: usize,
}

impl Transmit {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Allocated bytes of the tail (segments belong to their owners).
    pub(crate) fn capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// The buffer to encode into (append only).
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Accounts for bytes appended to [`tail`](Self::tail) since `before` (its length
    /// then).
    pub(crate) fn appended(&mut self, before: usize) {
        self.len += self.tail.len() - before;
    }

    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Queues `payload` after everything appended so far, without copying it.
    pub(crate) fn push_bytes(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
        self.len += payload.len();
        self.queue.push_back(payload);
    }

    /// The first contiguous run of pending bytes.
    pub(crate) fn first(&self) -> &[u8] {
        self.queue.front().map_or(&self.tail[..], |b| &b[..])
    }

    /// Every pending run, in order (for a vectored write: `poll_transmit_vectored`, which
    /// needs std's `IoSlice`).
    #[cfg_attr(not(any(feature = "std", test)), allow(dead_code))]
    pub(crate) fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.queue
            .iter()
            .map(|b| &b[..])
            .chain(core::iter::once(&self.tail[..]))
            .filter(|s| !s.is_empty())
    }

    /// Fills `iovecs` with the pending runs, in order; returns how many it filled.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn fill_iovecs<'a>(&'a self, iovecs: &mut [std::io::IoSlice<'a>]) -> usize {
        // The common case, everything in the tail: one run, no iterator.
        if self.queue.is_empty() {
            return match iovecs.first_mut() {
                Some(slot) if !self.tail.is_empty() => {
                    *slot = std::io::IoSlice::new(&self.tail);
                    1
                }
                _ => 0,
            };
        }
        let mut filled = 0;
        for (slot, run) in iovecs.iter_mut().zip(self.segments()) {
            *slot = std::io::IoSlice::new(run);
            filled += 1;
        }
        filled
    }

    /// Drops the first `n` pending bytes (what the transport took). A tail buffer of at
    /// most `reuse_max` bytes that empties is reused from its front.
    #[inline]
    pub(crate) fn advance(&mut self, n: usize, reuse_max: usize) {
        // The common case, kept small enough to inline: everything written, and all of
        // it was in the tail.
        if n >= self.len && self.queue.is_empty() && self.tail.capacity() <= reuse_max {
            self.len = 0;
            self.tail.clear();
            return;
        }
        self.advance_slow(n, reuse_max);
    }

    fn advance_slow(&mut self, mut n: usize, reuse_max: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            match self.queue.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.queue.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    n = 0;
                }
                None => {
                    if n == self.tail.len() && self.tail.capacity() <= reuse_max {
                        // All written: start again at the front of the allocation, with
                        // no offset for `BytesMut` to track (the common case, cheaper
                        // than `advance`). A larger buffer is advanced instead, so
                        // `release_if_idle` sees only its unused rest, as before: a
                        // host that lets a burst pile up keeps one buffer for it rather
                        // than allocating it again on every burst.
                        self.tail.clear();
                    } else {
                        self.tail.advance(n);
                    }
                    n = 0;
                }
            }
        }
    }

    /// Gives back a tail allocation larger than `keep` once everything is sent, so an
    /// idle connection holds no large buffer.
    pub(crate) fn release_if_idle(&mut self, keep: usize) {
        if self.len == 0 {
            self.tail.clear();
            if self.tail.capacity() > keep {
                self.tail = BytesMut::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "std")]
    #[test]
    fn iovecs_are_the_segments_with_or_without_queued_payloads() {
        use std::io::IoSlice;
        let runs = |t: &Transmit, slots: usize| {
            let mut iovecs = vec![IoSlice::new(&[]); slots];
            let n = t.fill_iovecs(&mut iovecs);
            iovecs[..n].iter().map(|s| s.to_vec()).collect::<Vec<_>>()
        };
        let mut t = Transmit::default();
        assert!(runs(&t, 4).is_empty());
        t.extend_from_slice(b"ab");
        assert_eq!(runs(&t, 4), vec![b"ab".to_vec()]);
        assert!(runs(&t, 0).is_empty());
        t.push_bytes(Bytes::from_static(b"CDEF"));
        t.extend_from_slice(b"gh");
        let all: Vec<Vec<u8>> = t.segments().map(<[u8]>::to_vec).collect();
        assert_eq!(runs(&t, 4), all);
        assert_eq!(runs(&t, 2), all[..2].to_vec());
    }

    #[test]
    fn segments_keep_order_across_partial_advances() {
        let mut t = Transmit::default();
        t.extend_from_slice(b"ab");
        t.push_bytes(Bytes::from_static(b"CDEF"));
        t.extend_from_slice(b"gh");
        assert_eq!(t.len(), 8);
        let joined: Vec<u8> = t.segments().flatten().copied().collect();
        assert_eq!(joined, b"abCDEFgh");
        assert_eq!(t.first(), b"ab");
        t.advance(3, usize::MAX);
        assert_eq!(t.first(), b"DEF");
        t.advance(4, usize::MAX);
        assert_eq!(t.first(), b"h");
        t.advance(10, usize::MAX);
        assert!(t.is_empty());
        assert_eq!(t.first(), b"");
        assert_eq!(t.segments().count(), 0);
    }
}
