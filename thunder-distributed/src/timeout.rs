//! The one place user-given timeouts are checked.
//!
//! A timeout bounds how long a rank waits for the others; it comes from a user (`--dist-timeout`,
//! Python's `timeout_s`, a Rust caller). `Duration::from_secs_f64` panics on infinite, NaN and
//! negative seconds, and `Instant + Duration` panics past the clock's range, so every timeout is
//! checked here first and every deadline is computed with [`deadline`].

use crate::error::{Error, Result};
use std::time::{Duration, Instant};

/// The shortest timeout accepted: below it a wait could never succeed (and seconds round to 0).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The longest timeout accepted: a day. A longer wait for a rank that is gone is a hang, not a
/// timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// `t`, if it lies in `MIN_TIMEOUT..=MAX_TIMEOUT`; otherwise an error naming `what`.
pub fn check(what: &str, t: Duration) -> Result<Duration> {
    if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&t) {
        Ok(t)
    } else {
        Err(Error::BadTimeout {
            what: what.to_string(),
            given: format!("{} s", t.as_secs_f64()),
        })
    }
}

/// A timeout of `secs` seconds (Python's `timeout_s`): finite and in
/// `MIN_TIMEOUT..=MAX_TIMEOUT`, otherwise an error naming `what`.
pub fn from_secs_f64(what: &str, secs: f64) -> Result<Duration> {
    // The comparisons are false for NaN, so NaN is refused with the infinities.
    if secs.is_finite() && secs >= MIN_TIMEOUT.as_secs_f64() && secs <= MAX_TIMEOUT.as_secs_f64() {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(Error::BadTimeout {
            what: what.to_string(),
            given: format!("{secs} s"),
        })
    }
}

/// `timeout` from now, checked (an unchecked `Instant + Duration` panics when it overflows).
pub fn deadline(what: &str, timeout: Duration) -> Result<Instant> {
    let t = check(what, timeout)?;
    Instant::now()
        .checked_add(t)
        .ok_or_else(|| Error::BadTimeout {
            what: what.to_string(),
            given: format!("{} s (past the end of the clock)", t.as_secs_f64()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_nan_negative_zero_and_huge_seconds_are_errors_not_panics() {
        for bad in [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -1.0,
            -0.0,
            0.0,
            1e-9,
            1e30,
            86_400.5,
            f64::MAX,
        ] {
            let e = from_secs_f64("timeout_s", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("timeout_s: ")
                    && e.ends_with(
                        "is not a valid timeout; give a finite number of seconds from 0.001 to \
                         86400 (24 h)"
                    ),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            from_secs_f64("t", 0.25).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(from_secs_f64("t", 86_400.0).unwrap(), MAX_TIMEOUT);
    }

    #[test]
    fn durations_out_of_range_are_errors_and_deadlines_never_overflow() {
        for bad in [Duration::ZERO, Duration::from_nanos(999_999), Duration::MAX] {
            assert!(matches!(check("x", bad), Err(Error::BadTimeout { .. })));
            assert!(matches!(deadline("x", bad), Err(Error::BadTimeout { .. })));
        }
        assert!(deadline("x", MAX_TIMEOUT).unwrap() > Instant::now());
    }
}
