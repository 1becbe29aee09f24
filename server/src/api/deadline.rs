//! The caller's gRPC deadline (`grpc-timeout`), read by the handlers that
//! block. tonic itself cancels a call at that deadline with CANCELLED; we
//! answer a little earlier with DEADLINE_EXCEEDED and a message saying how to
//! go on (the approval stays pending).

use std::time::Duration;

use tokio::time::Instant;
use tonic::Request;

/// How much earlier than the caller's deadline a blocked call answers, so
/// that the answer arrives before the caller gives up.
fn margin(timeout: Duration) -> Duration {
    (timeout / 20).min(Duration::from_millis(200))
}

/// When a blocking call must give up, if the caller set a deadline.
pub fn of<T>(request: &Request<T>) -> Option<Instant> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let timeout = parse(raw)?;
    Some(Instant::now() + timeout - margin(timeout))
}

/// `grpc-timeout`: 1 to 8 digits and a unit (H, M, S, m, u, n).
fn parse(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_grpc_timeout_unit() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("9n"), Some(Duration::from_nanos(9)));
    }

    #[test]
    fn refuses_malformed_grpc_timeouts() {
        for bad in ["", "S", "10", "10x", "123456789S", "-1S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
