//! Slows down repeated failures: after `limit` failures for one key (a client id or username together with
//! the caller's address) within `window`, further attempts for that key are refused until the window passes.
//! Keyed by address too, so an attacker elsewhere cannot lock a legitimate client out.

use std::collections::HashMap;
use std::sync::Mutex;

use ferry_core::SharedClock;

pub struct FailureLimiter {
    limit: u32,
    /// Seconds.
    window: i64,
    clock: SharedClock,
    entries: Mutex<HashMap<String, (i64, u32)>>,
}

impl FailureLimiter {
    pub fn new(limit: u32, window_secs: i64, clock: SharedClock) -> Self {
        Self {
            limit,
            window: window_secs,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait before trying again, if the key is over its limit.
    pub fn blocked(&self, key: &str) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = entries.get(key)?;
        let elapsed = self.clock.now() - start;
        (elapsed < self.window && *count >= self.limit)
            .then(|| (self.window - elapsed).max(1) as u64)
    }

    pub fn record_failure(&self, key: &str) {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: forget expired windows.
            let window = self.window;
            entries.retain(|_, (start, _)| now - *start < window);
        }
        let e = entries.entry(key.to_string()).or_insert((now, 0));
        if now - e.0 >= self.window {
            *e = (now, 0);
        }
        e.1 += 1;
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
            assert!(l.blocked("a").is_none());
            l.record_failure("a");
        }
        assert!(l.blocked("a").is_some());
        assert!(l.blocked("b").is_none());
    }

    #[test]
    fn window_expires() {
        let clock = ManualClock::new();
        let l = FailureLimiter::new(1, 60, clock.clone());
        l.record_failure("a");
        assert!(l.blocked("a").is_some());
        clock.advance(61);
        assert!(l.blocked("a").is_none());
    }
}
