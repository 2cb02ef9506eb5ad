//! Slows down repeated failures: after `limit` failures for one key (a client id or username together with
//! the caller's address) within `window`, further attempts for that key are refused until the window passes.
//! Keyed by address too, so an attacker elsewhere cannot lock a legitimate client out.
//!
//! Memory is bounded hard: keys are stored as 32-byte hashes, at most `cap` of them. A flood of new keys (a
//! different username per attempt) that fills the table is counted per address instead, so the flooding
//! address is still limited while the keys already tracked, and other addresses, keep their own counts.

use std::collections::HashMap;
use std::sync::Mutex;

use ferry_core::SharedClock;

type Key = [u8; 32];

/// Failures of one key within its current window.
#[derive(Clone, Copy)]
struct Window {
    start: i64,
    count: u32,
}

pub struct FailureLimiter {
    limit: u32,
    /// Seconds.
    window: i64,
    /// Most keys (and, separately, most addresses) tracked at once.
    cap: usize,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<Key, Window>,
    /// Failures that found the key table full, per address.
    overflow: HashMap<Key, Window>,
}

fn digest(s: &str) -> Key {
    *blake3::hash(s.as_bytes()).as_bytes()
}

impl FailureLimiter {
    pub fn new(limit: u32, window_secs: i64, clock: SharedClock) -> Self {
        Self::with_cap(limit, window_secs, 100_000, clock)
    }

    pub fn with_cap(limit: u32, window_secs: i64, cap: usize, clock: SharedClock) -> Self {
        Self {
            limit,
            window: window_secs,
            cap: cap.max(1),
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn over(&self, w: Option<&Window>, now: i64) -> Option<u64> {
        let w = w?;
        let elapsed = now - w.start;
        (elapsed < self.window && w.count >= self.limit)
            .then(|| (self.window - elapsed).max(1) as u64)
    }

    /// Seconds to wait before trying again, if the key (or its address, in overflow) is over its limit.
    pub fn blocked(&self, key: &str, peer: &str) -> Option<u64> {
        let now = self.clock.now();
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.over(st.keys.get(&digest(key)), now)
            .or_else(|| self.over(st.overflow.get(&digest(peer)), now))
    }

    pub fn record_failure(&self, key: &str, peer: &str) {
        let now = self.clock.now();
        let window = self.window;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = |w: &Window| now - w.start >= window;
        let k = digest(key);
        let table = if st.keys.contains_key(&k) || self.room(&mut st.keys, now) {
            &mut st.keys
        } else if self.room(&mut st.overflow, now) || st.overflow.contains_key(&digest(peer)) {
            return Self::count(&mut st.overflow, digest(peer), now, expired);
        } else {
            // Both tables full of live windows: nothing more is remembered until windows pass.
            return;
        };
        Self::count(table, k, now, expired);
    }

    /// Is there room for one more entry (after forgetting expired windows if full)?
    fn room(&self, table: &mut HashMap<Key, Window>, now: i64) -> bool {
        if table.len() >= self.cap {
            let window = self.window;
            table.retain(|_, w| now - w.start < window);
        }
        table.len() < self.cap
    }

    fn count(
        table: &mut HashMap<Key, Window>,
        k: Key,
        now: i64,
        expired: impl Fn(&Window) -> bool,
    ) {
        let w = table.entry(k).or_insert(Window {
            start: now,
            count: 0,
        });
        if expired(w) {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        w.count += 1;
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap();
        (st.keys.len(), st.overflow.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ManualClock;

    #[test]
    fn blocks_after_limit_per_key() {
        let l = FailureLimiter::new(3, 60, ferry_core::clock::system());
        for _ in 0..3 {
            assert!(l.blocked("a", "p").is_none());
            l.record_failure("a", "p");
        }
        assert!(l.blocked("a", "p").is_some());
        assert!(l.blocked("b", "p").is_none());
    }

    #[test]
    fn window_expires() {
        let clock = ManualClock::new();
        let l = FailureLimiter::new(1, 60, clock.clone());
        l.record_failure("a", "p");
        assert!(l.blocked("a", "p").is_some());
        clock.advance(61);
        assert!(l.blocked("a", "p").is_none());
    }

    /// A flood of new usernames from one address within one window: memory stays at the cap, the flooding
    /// address is limited, a key tracked before the flood keeps its count, and another address is not locked
    /// out (its new keys count against its own address only).
    #[test]
    fn a_flood_of_new_keys_is_bounded_and_limited_per_address() {
        let clock = ManualClock::new();
        let l = FailureLimiter::with_cap(5, 60, 100, clock.clone());
        l.record_failure("login alice@good", "10.0.0.2");
        for i in 0..100_000 {
            let key = format!("login user{i}@flood");
            if l.blocked(&key, "10.0.0.66").is_some() {
                continue;
            }
            l.record_failure(&key, "10.0.0.66");
        }
        let (keys, overflow) = l.sizes();
        assert!(
            keys <= 100 && overflow <= 100,
            "{keys} keys, {overflow} addresses"
        );
        assert!(
            l.blocked("login anyone", "10.0.0.66").is_some(),
            "the flooder is limited"
        );
        assert!(l.blocked("login alice@good", "10.0.0.2").is_none());
        assert!(l.blocked("login bob@good", "10.0.0.2").is_none());
        // Alice's tracked key still counts to its own limit.
        for _ in 0..4 {
            l.record_failure("login alice@good", "10.0.0.2");
        }
        assert!(l.blocked("login alice@good", "10.0.0.2").is_some());
        assert!(l.blocked("login carol@good", "10.0.0.3").is_none());
        // After the window the flood is forgotten and new keys are tracked again.
        clock.advance(61);
        assert!(l.blocked("login anyone", "10.0.0.66").is_none());
        l.record_failure("login new", "10.0.0.66");
        assert_eq!(l.sizes().0, 1);
    }
}
