//! Get merging: the plain gets and multi-get parts that one submit sends to one server
//! share one `get k1 k2 ...` line (memcached answers one multi-key get much faster than as
//! many single gets), and the values that come back are split among the ops that asked.

use crate::response::Item;

/// Plain gets issued in one batch to one server share one line up to this many keys: the
/// bound keeps the line well inside what memcached reads in one go.
pub const MAX_COALESCED_KEYS: usize = 256;

/// A get line being built during `submit`, or sent and awaiting its values. The keys lie
/// end to end in one buffer: a 100-key multi-get makes no allocation per key.
#[derive(Debug, Default)]
pub struct GetLine {
    key_bytes: Vec<u8>,
    /// Where each key ends in `key_bytes`.
    key_ends: Vec<u32>,
    /// For each key, its index among the keys of the op that asked for it.
    pub indices: Vec<u32>,
    pub parts: Vec<GetPart>,
}

/// One op's share of a line.
#[derive(Debug)]
pub struct GetPart {
    pub id: u32,
    /// A multi-get part (answered key by key) rather than a single get (one outcome).
    pub multi: bool,
    pub keys: std::ops::Range<usize>,
}

impl GetLine {
    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }

    /// Key `k` of the line.
    pub fn key(&self, k: usize) -> &[u8] {
        let start = if k == 0 {
            0
        } else {
            self.key_ends[k - 1] as usize
        };
        &self.key_bytes[start..self.key_ends[k] as usize]
    }

    /// Every key, in line order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|k| self.key(k))
    }

    /// The bytes its buffers hold room for (what keeping it for reuse costs).
    pub fn capacity_bytes(&self) -> usize {
        self.key_bytes.capacity() + self.key_ends.capacity() * 4 + self.indices.capacity() * 4
    }

    /// Empties the line, keeping its buffers for the next one.
    pub fn clear(&mut self) {
        self.key_bytes.clear();
        self.key_ends.clear();
        self.indices.clear();
        self.parts.clear();
    }

    /// Whether `more` keys still fit.
    pub fn has_room(&self, more: usize) -> bool {
        self.len() + more <= MAX_COALESCED_KEYS
    }

    /// Adds one op's keys, each with its index among the op's keys.
    pub fn join<'k>(
        &mut self,
        id: u32,
        multi: bool,
        entries: impl IntoIterator<Item = (&'k [u8], u32)>,
    ) {
        let start = self.len();
        for (key, index) in entries {
            self.key_bytes.extend_from_slice(key);
            self.key_ends.push(self.key_bytes.len() as u32);
            self.indices.push(index);
        }
        self.parts.push(GetPart {
            id,
            multi,
            keys: start..self.len(),
        });
    }

    /// For each key of the line, the index of its item among `items`, into `hits`.
    /// memcached answers in the order the keys were asked (a key asked twice is answered
    /// twice), so one walk pairs them; should a server ever answer out of order, a search
    /// pairs the rest.
    pub fn match_items(&self, items: &[Item], hits: &mut Vec<Option<usize>>) {
        hits.clear();
        hits.resize(self.len(), None);
        let mut next = 0;
        for (k, key) in self.keys().enumerate() {
            if next < items.len() && items[next].key == key {
                hits[k] = Some(next);
                next += 1;
            }
        }
        if next < items.len() {
            let mut used = vec![false; items.len()];
            for h in hits.iter().flatten() {
                used[*h] = true;
            }
            for (k, key) in self.keys().enumerate() {
                if hits[k].is_none() {
                    if let Some(i) = (0..items.len()).find(|&i| !used[i] && items[i].key == key) {
                        used[i] = true;
                        hits[k] = Some(i);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &[u8]) -> Item {
        Item {
            key: key.to_vec(),
            flags: 0,
            cas: None,
            data: key.to_vec(),
            skipped: None,
        }
    }

    #[test]
    fn values_pair_with_keys_in_order_and_out_of_order() {
        let mut line = GetLine::default();
        line.join(1, false, [(&b"a"[..], 0)]);
        line.join(2, true, [(&b"b"[..], 0), (&b"a"[..], 1), (&b"c"[..], 2)]);
        assert_eq!(line.parts.len(), 2);
        assert_eq!(line.parts[1].keys, 1..4);
        // a asked twice is answered twice; b missed.
        let items = [item(b"a"), item(b"a"), item(b"c")];
        let mut hits = Vec::new();
        line.match_items(&items, &mut hits);
        assert_eq!(hits, vec![Some(0), None, Some(1), Some(2)]);
        let shuffled = [item(b"c"), item(b"a")];
        line.match_items(&shuffled, &mut hits);
        assert_eq!(hits, vec![Some(1), None, None, Some(0)]);
        line.clear();
        assert!(line.is_empty() && line.parts.is_empty());
    }

    #[test]
    fn a_line_has_room_up_to_the_bound() {
        let mut line = GetLine::default();
        line.join(
            1,
            true,
            (0..MAX_COALESCED_KEYS as u32).map(|i| (&b"k"[..], i)),
        );
        assert!(!line.has_room(1));
        assert!(GetLine::default().has_room(MAX_COALESCED_KEYS));
    }
}
