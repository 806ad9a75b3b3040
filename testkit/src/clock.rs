//! The mocks' clock: the real time plus whatever tests moved it forward by, shared by every
//! mock of a server so that token expiry (Entra), token checks and item times (Graph) agree.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// A clock tests can move forward instead of waiting. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<Mutex<Duration>>,
}

impl Clock {
    /// The mock time now.
    pub fn now(&self) -> OffsetDateTime {
        let real = OffsetDateTime::now_utc();
        time::Duration::try_from(self.offset())
            .ok()
            .and_then(|offset| real.checked_add(offset))
            .unwrap_or(real)
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset = offset.saturating_add(by);
    }

    /// How far the clock has been moved so far.
    pub fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_offset() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = clock.now();
        other.advance(Duration::from_secs(3600));
        assert_eq!(clock.offset(), Duration::from_secs(3600));
        assert!(clock.now() - before >= time::Duration::hours(1));
        clock.advance(Duration::MAX);
        assert_eq!(other.offset(), Duration::MAX, "saturates");
        // Beyond what `time` can represent, the real time is answered rather than a panic.
        assert!(other.now() >= before);
    }
}
