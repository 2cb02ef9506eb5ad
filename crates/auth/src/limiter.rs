//! Slows down repeated failures: after `limit` failures for one key (a client id or username together with
//! the caller's address) within `window`, further attempts for that key are refused until the window passes.
//! Keyed by address too, so an attacker elsewhere cannot lock a legitimate client out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait before trying again, if the key is over its limit.
    pub fn blocked(&self, key: &str) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = entries.get(key)?;
        let elapsed = start.elapsed();
        (elapsed < self.window && *count >= self.limit)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: forget expired windows.
            let window = self.window;
            entries.retain(|_, (start, _)| start.elapsed() < window);
        }
        let now = Instant::now();
        let e = entries.entry(key.to_string()).or_insert((now, 0));
        if e.0.elapsed() >= self.window {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit_per_key() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.blocked("a").is_none());
            l.record_failure("a");
        }
        assert!(l.blocked("a").is_some());
        assert!(l.blocked("b").is_none());
    }

    #[test]
    fn window_expires() {
        let l = FailureLimiter::new(1, Duration::from_millis(20));
        l.record_failure("a");
        assert!(l.blocked("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.blocked("a").is_none());
    }
}
