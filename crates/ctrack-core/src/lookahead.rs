//! Look-ahead prefetching for a packet stream (replay): while one packet is processed,
//! the table lines the next ones will need are already on their way, as the batch
//! path's prefetch does for a batch (`batch.rs`), but for a pipeline that must run the
//! packets strictly one after the other.
//!
//! A packet entering the window ([`Lookahead::push`]) is parsed and hashed and its
//! bucket head prefetched; half-way through the window its chain's first two nodes are
//! prefetched ([`Lookahead::pop`]). Only hints: a packet whose zone or tuple differs by
//! the time it is tracked (rules, NAT, defrag) merely gets no benefit. Results never
//! depend on it.

use crate::conntrack::{Conntrack, Parsed};
use std::collections::VecDeque;

/// Packets in flight in the window.
const DEPTH: usize = 32;
/// Where in the window the chain's nodes are prefetched.
const HALF: usize = DEPTH / 2;

/// A window of upcoming packets (any item type) with their prefetch state.
#[derive(Debug)]
pub struct Lookahead<T> {
    q: VecDeque<(T, Option<u64>, bool)>,
}

impl<T> Default for Lookahead<T> {
    fn default() -> Self {
        Lookahead {
            q: VecDeque::with_capacity(DEPTH + 1),
        }
    }
}

impl<T> Lookahead<T> {
    /// Whether the window holds enough packets: stop pushing and pop one.
    pub fn is_full(&self) -> bool {
        self.q.len() >= DEPTH
    }

    /// Add an item; `l3` is its IP packet (or `None` for items that are not packets),
    /// whose bucket is prefetched in `ct`'s table for the default zone.
    pub fn push(&mut self, ct: &Conntrack, item: T, l3: Option<&[u8]>) {
        let h = l3.and_then(|p| Parsed::new_with(p, |t| ct.table().hash(t, 0)).map(|x| x.hash()));
        if let Some(h) = h {
            ct.table().prefetch(h);
        }
        self.q.push_back((item, h, false));
    }

    /// The oldest item, after the chain of the one half a window behind it has been
    /// prefetched.
    pub fn pop(&mut self, ct: &Conntrack) -> Option<T> {
        if let Some(x) = self.q.get_mut(HALF) {
            if let (Some(h), false) = (x.1, x.2) {
                let first = ct.table().prefetch_first(h);
                ct.table().prefetch_next(first);
                x.2 = true;
            }
        }
        self.q.pop_front().map(|x| x.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::Config;

    #[test]
    fn items_come_out_in_order_whatever_they_are() {
        let ct = Conntrack::new(Config::default());
        let mut la = Lookahead::default();
        let pkt = [
            0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8,
            0, 0,
        ];
        let mut out = Vec::new();
        for i in 0..40u32 {
            let l3 = match i % 3 {
                0 => Some(&pkt[..]),
                1 => Some(&pkt[..5]), // unparsable: no hint
                _ => None,
            };
            la.push(&ct, i, l3);
            if la.is_full() {
                out.extend(la.pop(&ct));
            }
        }
        while let Some(i) = la.pop(&ct) {
            out.push(i);
        }
        assert_eq!(out, (0..40).collect::<Vec<_>>());
    }
}
