//! A slab of connections addressed by [`ConnId`]: an index (the mio token) and a
//! generation, so an id kept by the application after its connection ended can never
//! reach the connection that reuses the slot.
//!
//! Each connection is boxed: the table itself grows to the most connections ever held
//! and keeps that size (16 bytes a slot), but a connection's memory (about 1 KiB: its
//! core, socket and bookkeeping) goes back to the allocator when it ends. Inline, a
//! burst of thousands of connections left their slots' kilobytes resident after they
//! were gone (benches/hostile/README.md, the tls-garbage attack).

use core::fmt;

/// Identifies one connection of an [`EventLoop`](super::EventLoop) for its whole life.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<Box<T>>,
}

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` under a fresh id; `None` when `u32` indices are exhausted.
    pub(crate) fn insert(&mut self, value: T) -> Option<ConnId> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                i
            }
        };
        let slot = self.slots.get_mut(index as usize)?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.value = Some(Box::new(value));
        self.len += 1;
        Some(ConnId {
            index,
            generation: slot.generation,
        })
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&T> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation == id.generation {
            slot.value.as_deref()
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation == id.generation {
            slot.value.as_deref_mut()
        } else {
            None
        }
    }

    /// The live id at `index` (what a mio token carries).
    pub(crate) fn id_at(&self, index: usize) -> Option<ConnId> {
        let slot = self.slots.get(index)?;
        slot.value.as_ref()?;
        Some(ConnId {
            index: u32::try_from(index).ok()?,
            generation: slot.generation,
        })
    }

    pub(crate) fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let value = slot.value.take()?;
        self.free.push(id.index);
        self.len -= 1;
        Some(*value)
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value.as_ref()?;
            Some(ConnId {
                index: u32::try_from(i).ok()?,
                generation: s.generation,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_do_not_reach_a_reused_slot() {
        let mut slab = Slab::new();
        let a = slab.insert("a").unwrap();
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b").unwrap();
        assert_eq!(a.index, b.index);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.ids().collect::<Vec<_>>(), vec![b]);
    }
}
