//! Time for every decision is Redis's clock, so hosts whose clocks differ agree. Asking Redis
//! for it on every step cost a round trip each (three per runner made); a process samples it
//! instead and extrapolates with its own monotonic clock between samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The clock port: the deployment's one clock, unix milliseconds. In production it is Redis's
/// (the Redis store reads it, sampled); simulations and the domain's tests give the in-memory
/// store a [`VirtualClock`].
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// A clock that moves only when told: a simulation's, a test's.
#[derive(Debug)]
pub struct VirtualClock {
    ms: AtomicU64,
}

impl VirtualClock {
    /// A clock showing `start_ms` (unix milliseconds).
    pub fn new(start_ms: u64) -> VirtualClock {
        VirtualClock {
            ms: AtomicU64::new(start_ms),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// How long a sample of Redis's clock is used before it is taken again. Bounds how far a
/// process can be off after Redis's clock was stepped or Redis failed over to a host whose
/// clock differs.
pub const SAMPLE_FOR: Duration = Duration::from_secs(1);

/// A sample of a remote clock (unix milliseconds) and the local instant it was read at.
#[derive(Debug, Default)]
pub struct Sampled {
    last: Mutex<Option<(u64, Instant)>>,
}

impl Sampled {
    /// The remote clock now, when the last sample is younger than [`SAMPLE_FOR`].
    pub fn now_ms(&self, now: Instant) -> Option<u64> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (ms, at) = last?;
        let age = now.checked_duration_since(at)?;
        (age < SAMPLE_FOR).then(|| ms + age.as_millis() as u64)
    }

    /// Records a reading of the remote clock, asked at `sent` and answered at `answered`: the
    /// reading is taken to belong to the middle of the round trip.
    pub fn record(&self, ms: u64, sent: Instant, answered: Instant) {
        let middle = sent + answered.saturating_duration_since(sent) / 2;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((ms, middle));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_clock_moves_only_when_told() {
        let c = VirtualClock::new(5_000);
        assert_eq!(c.now_ms(), 5_000);
        assert_eq!(c.now_ms(), 5_000);
        c.advance(Duration::from_millis(1_500));
        assert_eq!(c.now_ms(), 6_500);
    }

    #[test]
    fn a_sample_is_extrapolated_then_expires() {
        let c = Sampled::default();
        let t0 = Instant::now();
        assert_eq!(c.now_ms(t0), None);
        c.record(1_000_000, t0, t0 + Duration::from_millis(2));
        assert_eq!(c.now_ms(t0 + Duration::from_millis(1)), Some(1_000_000));
        assert_eq!(c.now_ms(t0 + Duration::from_millis(501)), Some(1_000_500));
        assert_eq!(c.now_ms(t0 + SAMPLE_FOR + Duration::from_millis(2)), None);
        // An instant before the sample is not extrapolated backwards.
        assert_eq!(c.now_ms(t0), None);
    }
}
