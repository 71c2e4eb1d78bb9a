//! The fake GitHub's secondary limits, as GitHub publishes them: points per minute per
//! endpoint class and credential (a write costs more than a read), and concurrent requests
//! per credential. A request over a limit is not performed and is answered as GitHub does: 403,
//! requests still remaining, the secondary-limit message and a `retry-after`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The limits a fake GitHub enforces (off unless given).
#[derive(Debug, Clone, Copy)]
pub struct FakeLimits {
    /// Points per endpoint class and credential in any 60 seconds.
    pub points_per_minute: u64,
    pub write_points: u64,
    pub read_points: u64,
    /// Requests of one credential in flight at once.
    pub max_concurrent: u64,
    /// How long each request takes to answer (so that requests overlap, as on GitHub).
    pub latency: Duration,
}

impl Default for FakeLimits {
    /// GitHub's published figures, and 50 ms a request.
    fn default() -> Self {
        FakeLimits {
            points_per_minute: 900,
            write_points: 5,
            read_points: 1,
            max_concurrent: 100,
            latency: Duration::from_millis(50),
        }
    }
}

/// One request the limits let through: when, whose, which class.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub at: Instant,
    pub credential: String,
    pub class: String,
}

/// What the fake keeps to enforce the limits.
#[derive(Default)]
pub(crate) struct Enforcer {
    /// (credential, class) → the points spent in the last minute, oldest first.
    windows: HashMap<(String, String), VecDeque<(Instant, u64)>>,
    in_flight: HashMap<String, u64>,
    /// Requests answered with a secondary limit.
    pub refused: u64,
    pub admitted: Vec<Admitted>,
}

impl Enforcer {
    /// Lets a request in, or says which limit it would go over. A request let in holds a
    /// place among the concurrent requests until [`Enforcer::finish`].
    pub fn admit(
        &mut self,
        l: &FakeLimits,
        credential: &str,
        class: &str,
        write: bool,
        now: Instant,
    ) -> Result<(), &'static str> {
        let in_flight = self.in_flight.entry(credential.to_string()).or_default();
        if *in_flight >= l.max_concurrent {
            self.refused += 1;
            return Err("concurrent requests");
        }
        let cost = if write { l.write_points } else { l.read_points };
        let w = self
            .windows
            .entry((credential.to_string(), class.to_string()))
            .or_default();
        while w
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            w.pop_front();
        }
        let spent: u64 = w.iter().map(|(_, p)| p).sum();
        if spent + cost > l.points_per_minute {
            self.refused += 1;
            return Err("points per minute");
        }
        w.push_back((now, cost));
        *in_flight += 1;
        self.admitted.push(Admitted {
            at: now,
            credential: credential.to_string(),
            class: class.to_string(),
        });
        Ok(())
    }

    pub fn finish(&mut self, credential: &str) {
        if let Some(n) = self.in_flight.get_mut(credential) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_refuses_the_181st_write_of_a_minute_and_the_101st_concurrent_request() {
        let l = FakeLimits::default();
        let mut e = Enforcer::default();
        let t = Instant::now();
        for _ in 0..180 {
            e.admit(&l, "a", "POST /x", true, t).unwrap();
            e.finish("a");
        }
        assert_eq!(
            e.admit(&l, "a", "POST /x", true, t),
            Err("points per minute")
        );
        // Another class, another credential: their own budgets.
        e.admit(&l, "a", "POST /y", true, t).unwrap();
        e.admit(&l, "b", "POST /x", true, t).unwrap();
        // A minute later the window is free again.
        e.admit(&l, "a", "POST /x", true, t + Duration::from_secs(60))
            .unwrap();
        let mut c = Enforcer::default();
        for _ in 0..100 {
            c.admit(&l, "a", "GET /x", false, t).unwrap();
        }
        assert_eq!(
            c.admit(&l, "a", "GET /y", false, t),
            Err("concurrent requests")
        );
        assert_eq!(c.refused, 1);
    }
}
