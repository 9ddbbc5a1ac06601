//! The one backoff policy every retry and reconnect loop uses.
//!
//! After a Redis restart every worker's connections fail at the same moment; with a fixed doubling they would all
//! come back in lockstep, hammering the server as it loads its data. Each delay here is drawn with jitter (backon's
//! exponential backoff: from 50 ms, doubling, capped at 2 s, plus a random part up to the delay itself), so the
//! reconnects spread out. Callers bound the whole by time ([`for_up_to`]) or loop for as long as they must
//! ([`forever`]).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The first delay.
pub const FIRST: Duration = Duration::from_millis(50);
/// The longest delay (before jitter).
pub const LONGEST: Duration = Duration::from_secs(2);

fn policy() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_jitter()
}

/// Delays for a retry loop bounded by time: it ends once the delays so far add up to `total`.
pub fn for_up_to(total: Duration) -> impl Iterator<Item = Duration> + Send {
    policy()
        .without_max_times()
        .with_total_delay(Some(total))
        .build()
}

/// Delays for a loop that never gives up by itself (a reconnect loop with its own deadline or none).
pub fn forever() -> impl Iterator<Item = Duration> + Send {
    policy().without_max_times().build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_differ_between_loops() {
        let a: Vec<Duration> = forever().take(12).collect();
        let b: Vec<Duration> = forever().take(12).collect();
        assert!(a[0] >= FIRST && a[0] < FIRST * 2, "{a:?}");
        assert!(a.iter().all(|d| *d < LONGEST * 2), "{a:?}");
        assert!(a[11] >= LONGEST, "the delays reach the cap: {a:?}");
        assert_ne!(a, b, "two loops do not wait in lockstep");
    }

    #[test]
    fn a_bounded_loop_ends() {
        let total: Duration = for_up_to(Duration::from_secs(5)).sum();
        assert!(total <= Duration::from_secs(5) + LONGEST * 2, "{total:?}");
        assert!(total >= Duration::from_secs(1), "{total:?}");
    }
}
