//! Where every part of Ferry gets the time: the system clock in production, a clock that tests move forward, so
//! that no test waits in real time for a code, token, rule or lease to expire.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::time::Timestamp;

pub trait Clock: Send + Sync + fmt::Debug {
    /// Unix seconds, UTC.
    fn now(&self) -> Timestamp;
}

/// A clock shared by every part of one server.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        system_now()
    }
}

fn system_now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The system clock as every server uses it by default.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system clock plus an offset that a test moves forward. It keeps ticking between moves, so that work
/// measured in real time (leases renewed while a task runs) still sees time pass.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves the clock forward by `secs` seconds (never backward: time that went back would revive expired
    /// things).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs.max(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        system_now() + self.offset.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_forward_only() {
        let c = ManualClock::new();
        let t0 = c.now();
        c.advance(3600);
        assert!(c.now() >= t0 + 3600);
        c.advance(-7200);
        assert!(c.now() >= t0 + 3600);
    }
}
