//! The clock seam: core asks a [`Clock`] for the time so tests can fix it.

use std::fmt::Debug;

use time::OffsetDateTime;

#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
