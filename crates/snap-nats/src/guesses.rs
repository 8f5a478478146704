//! What the handle last saw of each stream's head and each aggregate's latest snapshot, so a
//! save after a load need not read them again.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many entries are kept; past it the table starts again empty.
const KEPT: usize = 16_384;

/// The last seen value per subject. Only a guess: a write made on it names the sequence it
/// expects, the server checks it, and a stale guess costs one more read.
#[derive(Debug)]
pub(crate) struct Guesses<V> {
    known: Mutex<HashMap<String, V>>,
}

impl<V> Default for Guesses<V> {
    fn default() -> Self {
        Self {
            known: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Copy> Guesses<V> {
    /// The last value seen of `subject`.
    pub(crate) fn get(&self, subject: &str) -> Option<V> {
        self.known.lock().ok()?.get(subject).copied()
    }

    /// Notes `value` as `subject`'s latest.
    pub(crate) fn note(&self, subject: &str, value: V) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if let Some(slot) = known.get_mut(subject) {
            *slot = value;
            return;
        }
        if known.len() >= KEPT {
            known.clear();
        }
        known.insert(subject.to_owned(), value);
    }

    /// Forgets `subject`.
    pub(crate) fn forget(&self, subject: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_note_wins_and_the_table_stays_bounded() {
        let heads = Guesses::<(u64, u64)>::default();
        heads.note("a", (5, 10));
        assert_eq!(heads.get("a"), Some((5, 10)));
        heads.note("a", (6, 11));
        assert_eq!(heads.get("a"), Some((6, 11)));
        heads.forget("a");
        assert_eq!(heads.get("a"), None);
        for i in 0..=KEPT {
            heads.note(&i.to_string(), (1, 1));
        }
        assert!(heads.known.lock().unwrap().len() <= KEPT);
    }
}
