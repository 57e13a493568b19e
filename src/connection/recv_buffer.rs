//! The receive buffer: bytes from the peer not yet turned into events, and the room a
//! host reads the next bytes into ([`Connection::recv_buf`](super::Connection::recv_buf)).
//!
//! Handing out its unused capacity as `&mut [u8]` lets a host read from the socket
//! straight into it, instead of into a buffer of its own that `recv` then copies. A
//! `&mut [u8]` must be initialised memory, and zeroing the room before every read would
//! cost about what the copy did; so the buffer keeps one invariant instead, and this
//! module is the only code that touches the allocation in a way that could break it.
//!
//! **Invariant**: every byte of the allocation, from the buffer's start to its
//! capacity, is initialised. It holds because every allocation is made zeroed here
//! (`grow`), nothing here lets `BytesMut` reallocate on its own (`push` grows through
//! `grow` first), and nothing ever de-initialises a byte: `split_to`, `advance` and
//! `try_reclaim` move the buffer's start and length within the same allocation, whose
//! bytes before the start were once inside the buffer and so were written.

#![allow(unsafe_code)]

use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};

use bytes::{Buf, BytesMut};

/// What the first allocation of an empty buffer holds (it doubles while reads fill
/// it, up to the connection's receive limit): an idle or chatty connection with small
/// messages holds a small buffer, a bulk reader soon reads in large blocks.
const FIRST_READ: usize = 4 << 10;

/// Bytes received and not yet parsed, in an allocation that is always initialised.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    bytes: BytesMut,
    /// The room the next allocation makes for a read: doubled each time a read fills
    /// what was offered, back to `FIRST_READ` when the buffer is released.
    read_size: usize,
    /// The length of the room `room_mut` last handed out and not yet committed: a
    /// commit may not claim more than was offered.
    offered: usize,
}

impl RecvBuffer {
    pub(crate) fn new() -> Self {
        Self {
            bytes: BytesMut::new(),
            read_size: FIRST_READ,
            offered: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Unused capacity after the bytes held.
    pub(crate) fn spare(&self) -> usize {
        self.bytes.capacity() - self.bytes.len()
    }

    /// Gives the allocation back (an idle connection holds none).
    pub(crate) fn release(&mut self) {
        self.bytes = BytesMut::new();
        self.read_size = FIRST_READ;
        self.offered = 0;
    }

    /// The first `at` bytes, split off without a copy (they share the allocation until
    /// the application drops them).
    pub(crate) fn split_to(&mut self, at: usize) -> BytesMut {
        self.bytes.split_to(at)
    }

    /// All the bytes held, split off without a copy; the allocation's rest stays.
    pub(crate) fn split(&mut self) -> BytesMut {
        self.bytes.split()
    }

    /// Drops the bytes held, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
    }

    /// Makes room for `additional` more bytes as a growing message needs it: in place
    /// when the allocation is free again, else a new one of at least twice the bytes
    /// held (as `Vec` grows), so a message assembled piece by piece is copied a
    /// logarithmic number of times.
    pub(crate) fn reserve(&mut self, additional: usize) {
        if self.spare() >= additional || self.bytes.try_reclaim(additional) {
            return;
        }
        self.grow(additional.max(self.bytes.len()));
    }

    /// Drops the first `n` bytes.
    pub(crate) fn advance(&mut self, n: usize) {
        self.bytes.advance(n);
    }

    /// Makes room for at least `additional` more bytes: in the same allocation when
    /// the application has dropped what was split out of it (the bytes still held move
    /// to its front), else in a new zeroed allocation of the size needed, copying only
    /// the bytes held (`reserve` would double and copy the dead space in front of them
    /// too, and the doubled buffer would be over the limit, given back and allocated
    /// again).
    pub(crate) fn make_room(&mut self, additional: usize) {
        if self.spare() >= additional || self.bytes.try_reclaim(additional) {
            return;
        }
        self.grow(additional);
    }

    /// A new zeroed allocation for the bytes held and `additional` more.
    fn grow(&mut self, additional: usize) {
        let held = self.bytes.len();
        let mut fresh = BytesMut::zeroed(held.saturating_add(additional));
        fresh[..held].copy_from_slice(&self.bytes);
        fresh.truncate(held);
        self.bytes = fresh;
        self.offered = 0;
    }

    /// Appends `data`, which fits the room made by `make_room`: never a reallocation
    /// by `BytesMut` itself.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.spare() < data.len() {
            self.grow(data.len());
        }
        super::append(&mut self.bytes, data);
    }

    /// Room for the next read, at most `limit` bytes (0: none offered): the unused
    /// capacity, made first if there is too little (`read_size`, adapted to how full
    /// reads come back).
    pub(crate) fn room_mut(&mut self, limit: usize) -> &mut [u8] {
        if limit == 0 {
            self.offered = 0;
            return &mut [];
        }
        if self.spare() < limit.min(FIRST_READ) {
            self.make_room(limit.min(self.read_size));
        }
        let spare = self.bytes.spare_capacity_mut();
        let len = spare.len().min(limit);
        self.offered = len;
        let spare: *mut [MaybeUninit<u8>] = &mut spare[..len];
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and every byte of the
        // allocation is initialised (the module's invariant), so the spare capacity may
        // be viewed as `[u8]`; the borrow of `self.bytes` carries over to the result.
        unsafe { &mut *(spare as *mut [u8]) }
    }

    /// Adds the first `n` bytes of the room `room_mut` handed out to the bytes held.
    ///
    /// # Panics
    /// If `n` is more than was offered, or than the buffer's unused capacity now (a
    /// host that changed the connection between the two calls): the bytes past it are
    /// not the host's.
    pub(crate) fn commit(&mut self, n: usize) {
        assert!(
            n <= self.offered && n <= self.spare(),
            "commit_recv({n}) after recv_buf offered {} bytes",
            self.offered
        );
        if n == self.offered && n > 0 {
            self.read_size = self.read_size.saturating_mul(2);
        }
        self.offered = 0;
        let len = self.bytes.len() + n;
        // SAFETY: `n` is within the unused capacity (checked above), whose bytes are
        // initialised (the module's invariant): the host wrote its read into them
        // through `room_mut`'s `&mut [u8]`.
        unsafe { self.bytes.set_len(len) };
    }
}

impl Default for RecvBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for RecvBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl DerefMut for RecvBuffer {
    /// The bytes held, to unmask in place: writing initialised bytes keeps the
    /// invariant.
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_zeroed_on_allocation_and_keeps_what_was_written() {
        let mut buf = RecvBuffer::new();
        let room = buf.room_mut(100);
        assert_eq!(room.len(), 100);
        assert!(room.iter().all(|&b| b == 0));
        room[..3].copy_from_slice(b"abc");
        buf.commit(3);
        assert_eq!(&buf[..], b"abc");
        // 97 bytes left is less than a first read: a new allocation, zeroed past the 3
        // bytes held.
        let room = buf.room_mut(usize::MAX);
        assert_eq!(room.len(), FIRST_READ);
        assert!(room.iter().all(|&b| b == 0));
    }

    #[test]
    fn reclaimed_space_is_offered_again() {
        let mut buf = RecvBuffer::new();
        let room = buf.room_mut(FIRST_READ);
        room.fill(7);
        buf.commit(FIRST_READ);
        let front = buf.split_to(FIRST_READ - 10);
        drop(front);
        // 10 bytes held at the end; the front is reclaimed in place.
        let before = buf.bytes.as_ptr();
        let room = buf.room_mut(FIRST_READ - 10);
        assert_eq!(room.len(), FIRST_READ - 10);
        assert_eq!(buf.len(), 10);
        assert!(buf.iter().all(|&b| b == 7));
        assert_ne!(
            before,
            buf.bytes.as_ptr(),
            "moved to the allocation's front"
        );
    }

    #[test]
    fn a_full_read_doubles_the_next_allocation() {
        let mut buf = RecvBuffer::new();
        let n = buf.room_mut(1 << 20).len();
        assert_eq!(n, FIRST_READ);
        buf.commit(n);
        let _held = buf.split_to(n);
        // The split-out bytes are still held elsewhere: a new allocation, twice as big.
        assert_eq!(buf.room_mut(1 << 20).len(), 2 * FIRST_READ);
    }

    #[test]
    #[should_panic(expected = "commit_recv")]
    fn committing_more_than_offered_panics() {
        let mut buf = RecvBuffer::new();
        let _ = buf.room_mut(10);
        buf.commit(11);
    }

    #[test]
    #[should_panic(expected = "commit_recv")]
    fn committing_without_an_offer_panics() {
        let mut buf = RecvBuffer::new();
        let _ = buf.room_mut(10);
        buf.commit(10);
        buf.commit(1);
    }
}
