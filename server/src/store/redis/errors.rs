//! What Redis's errors mean for a caller: refused writes (with a cause a
//! person understands), connection trouble (UNAVAILABLE: retry), writes
//! whose outcome is unknown, and bugs (INTERNAL).

use redis::RedisError;

use crate::domain::DomainError;

/// Redis answering that it will not write now, in words a person
/// understands, with a stable cause name; `None` for any other error.
fn write_refusal(e: &RedisError) -> Option<DomainError> {
    let (cause, message) = match e.code()? {
        "OOM" => (
            "out_of_memory",
            "Redis is out of memory (maxmemory reached, and under maxmemory-policy noeviction it \
             refuses writes): an operator must raise maxmemory or free memory",
        ),
        "READONLY" => (
            "read_only",
            "Redis is a read-only replica, not the master (a failover may be under way)",
        ),
        "LOADING" => (
            "loading",
            "Redis is loading its data set into memory (it restarted)",
        ),
        "MASTERDOWN" => (
            "master_down",
            "the Redis replica in use lost its link to the master",
        ),
        "BUSY" => ("busy", "Redis is busy running a long script"),
        "MISCONF" => (
            "cannot_persist",
            "Redis cannot save to disk and refuses writes (stop-writes-on-bgsave-error)",
        ),
        "NOREPLICAS" => (
            "not_enough_replicas",
            "Redis has fewer healthy replicas than its min-replicas-to-write",
        ),
        _ => return None,
    };
    Some(DomainError::WritesRefused {
        cause,
        message: message.to_string(),
        detail: e.to_string(),
    })
}

/// A failed write: refused, not sent (no connection could be made), or
/// sent with no answer (timeout, connection lost), when nobody can tell
/// whether Redis applied it.
pub(super) fn write_error(e: RedisError) -> DomainError {
    if write_refusal(&e).is_some() || e.is_connection_refusal() {
        return e.into();
    }
    if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
    {
        return DomainError::OutcomeUnknown {
            detail: format!("Redis did not answer ({e})"),
            advice: "read the approval back before acting on this failure".into(),
        };
    }
    e.into()
}

/// Redis refusing writes and connection trouble are UNAVAILABLE (retry);
/// anything else is a bug here.
impl From<RedisError> for DomainError {
    fn from(e: RedisError) -> Self {
        if let Some(refused) = write_refusal(&e) {
            return refused;
        }
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        {
            DomainError::Unavailable(format!("Redis: {e}"))
        } else {
            DomainError::Internal(format!("Redis: {e}"))
        }
    }
}
