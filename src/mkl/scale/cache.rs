//! An LRU cache of kernel rows under one byte budget, as libsvm's `Cache`: rows are looked up
//! by training point, the least recently used row goes first when a new one does not fit.
//! Rows hold the values over the solver's active set at the time they were stored; when the
//! active set shrinks the solver remaps every cached row ([`RowCache::retain_columns`]), and
//! when it grows again (gradient reconstruction) it clears the cache.

const NONE: u32 = u32::MAX;

struct Slot<T> {
    key: usize,
    row: Vec<T>,
    prev: u32,
    next: u32,
}

/// Cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Rows found in the cache.
    pub hits: u64,
    /// Rows computed (not found).
    pub misses: u64,
    /// Rows evicted to make room.
    pub evictions: u64,
    /// The largest number of rows held at once.
    pub max_rows: usize,
}

impl CacheStats {
    /// hits / (hits + misses), 0 before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    /// Adds another run's counters (max_rows: the larger).
    pub fn add(&mut self, o: &CacheStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.evictions += o.evictions;
        self.max_rows = self.max_rows.max(o.max_rows);
    }
}

/// LRU cache of rows keyed by training point.
pub(crate) struct RowCache<T> {
    budget: usize,
    used: usize,
    slot_of: Vec<u32>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    pub stats: CacheStats,
}

impl<T: Copy + Default> RowCache<T> {
    /// A cache for rows of `n` points under `budget` bytes.
    pub fn new(n: usize, budget: usize) -> Self {
        RowCache {
            budget,
            used: 0,
            slot_of: vec![NONE; n],
            slots: Vec::new(),
            free: Vec::new(),
            head: NONE,
            tail: NONE,
            stats: CacheStats::default(),
        }
    }

    fn row_bytes(len: usize) -> usize {
        len * std::mem::size_of::<T>()
    }

    fn unlink(&mut self, s: u32) {
        let (prev, next) = (self.slots[s as usize].prev, self.slots[s as usize].next);
        if prev != NONE {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NONE {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn push_front(&mut self, s: u32) {
        self.slots[s as usize].prev = NONE;
        self.slots[s as usize].next = self.head;
        if self.head != NONE {
            self.slots[self.head as usize].prev = s;
        }
        self.head = s;
        if self.tail == NONE {
            self.tail = s;
        }
    }

    /// The row of `key` (marked most recently used), or, if absent, a buffer of `len` values
    /// for it that `fill` writes (evicting least recently used rows to stay in budget); `fill`
    /// returning an error leaves the key absent. The bool says whether it was a hit.
    pub fn get_or_fill<E>(
        &mut self,
        key: usize,
        len: usize,
        fill: impl FnOnce(&mut [T]) -> Result<(), E>,
    ) -> Result<(&[T], bool), E> {
        let s = self.slot_of[key];
        if s != NONE {
            self.stats.hits += 1;
            self.unlink(s);
            self.push_front(s);
            return Ok((&self.slots[s as usize].row, true));
        }
        self.stats.misses += 1;
        let need = Self::row_bytes(len);
        // Evict until the new row fits (a row larger than the budget still gets the whole
        // cache: the solver checked that two rows fit before starting).
        let mut reuse: Option<Vec<T>> = None;
        while self.used + need > self.budget && self.tail != NONE {
            let t = self.tail;
            self.unlink(t);
            let slot = &mut self.slots[t as usize];
            self.slot_of[slot.key] = NONE;
            self.used -= Self::row_bytes(slot.row.len());
            let row = std::mem::take(&mut slot.row);
            if reuse.as_ref().is_none_or(|r| r.capacity() < row.capacity()) {
                reuse = Some(row);
            }
            self.free.push(t);
            self.stats.evictions += 1;
        }
        let mut row = reuse.unwrap_or_default();
        row.clear();
        row.resize(len, T::default());
        fill(&mut row)?;
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize].key = key;
                self.slots[s as usize].row = row;
                s
            }
            None => {
                self.slots.push(Slot {
                    key,
                    row,
                    prev: NONE,
                    next: NONE,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.slot_of[key] = s;
        self.used += need;
        self.push_front(s);
        let held = self.slots.len() - self.free.len();
        self.stats.max_rows = self.stats.max_rows.max(held);
        Ok((&self.slots[s as usize].row, false))
    }

    /// Drops every row (the counters stay).
    pub fn clear(&mut self) {
        for s in &mut self.slots {
            if s.key != usize::MAX {
                self.slot_of[s.key] = NONE;
            }
            s.key = usize::MAX;
            s.row = Vec::new();
        }
        self.slots.clear();
        self.free.clear();
        self.head = NONE;
        self.tail = NONE;
        self.used = 0;
    }

    /// Keeps, in every cached row, the values at positions `keep` (strictly increasing), in
    /// that order: the active set shrank to those positions. Rows of points no longer active
    /// are dropped.
    pub fn retain_columns(&mut self, keep: &[usize], still_active: impl Fn(usize) -> bool) {
        let mut s = self.head;
        while s != NONE {
            let next = self.slots[s as usize].next;
            let key = self.slots[s as usize].key;
            let old_len = self.slots[s as usize].row.len();
            if !still_active(key) {
                self.unlink(s);
                self.slot_of[key] = NONE;
                self.slots[s as usize].row = Vec::new();
                self.slots[s as usize].key = usize::MAX;
                self.free.push(s);
                self.used -= Self::row_bytes(old_len);
            } else {
                let row = &mut self.slots[s as usize].row;
                // keep[p] >= p, so a forward pass never overwrites a value it still needs.
                for (p, &k) in keep.iter().enumerate() {
                    row[p] = row[k];
                }
                row.truncate(keep.len());
                row.shrink_to_fit();
                self.used -= Self::row_bytes(old_len - keep.len());
            }
            s = next;
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_order_budget_and_remap() {
        // Room for two rows of 4 f64.
        let mut c = RowCache::<f64>::new(5, 64);
        let fill = |k: usize| {
            move |r: &mut [f64]| -> Result<(), ()> {
                for (p, v) in r.iter_mut().enumerate() {
                    *v = (k * 10 + p) as f64;
                }
                Ok(())
            }
        };
        assert!(!c.get_or_fill(0, 4, fill(0)).unwrap().1);
        assert!(!c.get_or_fill(1, 4, fill(1)).unwrap().1);
        assert!(c.get_or_fill(0, 4, fill(0)).unwrap().1); // 0 is now the most recent
        assert!(!c.get_or_fill(2, 4, fill(2)).unwrap().1); // evicts 1
        assert!(c.get_or_fill(0, 4, fill(0)).unwrap().1);
        assert!(!c.get_or_fill(1, 4, fill(1)).unwrap().1); // 1 was evicted; evicts 2
        assert_eq!(c.stats.evictions, 2);
        assert_eq!(c.used(), 64);
        // Keep positions 1 and 3 of every row; point 1 is no longer active.
        c.retain_columns(&[1, 3], |k| k != 1);
        assert_eq!(c.used(), 16);
        let (row, hit) = c.get_or_fill(0, 2, fill(0)).unwrap();
        assert!(hit);
        assert_eq!(row, &[1.0, 3.0]);
        assert!(!c.get_or_fill(1, 2, fill(1)).unwrap().1);
        // A failed fill leaves nothing behind.
        assert!(c.get_or_fill(4, 2, |_| Err(())).is_err());
        assert!(!c.get_or_fill(4, 2, fill(4)).unwrap().1);
        c.clear();
        assert_eq!(c.used(), 0);
        assert!(!c.get_or_fill(0, 2, fill(0)).unwrap().1);
        assert_eq!(c.stats.hits, 3);
    }
}
