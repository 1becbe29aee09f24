//! Changes, as an ordered log: every store appends one event per change, and
//! a cursor names a position in that log (a Redis Stream id, `ms-seq`).

use std::fmt;
use std::str::FromStr;

use super::{Approval, DomainError};

/// A position in the event log. Ordered like Redis Stream ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    pub ms: u64,
    pub seq: u64,
}

impl Cursor {
    /// Before every event.
    pub const START: Cursor = Cursor { ms: 0, seq: 0 };

    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        raw.parse().map_err(|_| {
            DomainError::invalid(
                field,
                format!("{} is not a cursor this service returned", super::echo(raw)),
            )
        })
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.split_once('-').ok_or(())?;
        Ok(Cursor {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One history of the event log. The store draws a new one when its data
/// is found wiped or rewound (restored from a backup): positions of another
/// epoch mean nothing in this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

/// A resume cursor as clients hold it: a position and the epoch it belongs
/// to, `ms-seq.epoch` on the wire. A cursor without an epoch (from an older
/// replica) is taken as a position alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub at: Cursor,
    pub epoch: Option<Epoch>,
}

impl Position {
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let (at, epoch) = match raw.split_once('.') {
            Some((at, epoch)) => (at, Some(epoch)),
            None => (raw, None),
        };
        let epoch = epoch
            .map(|e| u64::from_str_radix(e, 16).map(Epoch))
            .transpose()
            .map_err(|_| {
                DomainError::invalid(field, "is not a cursor this service returned".to_string())
            })?;
        Ok(Position {
            at: Cursor::parse(field, at)?,
            epoch,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch {
            Some(Epoch(e)) => write!(f, "{}.{e:x}", self.at),
            None => write!(f, "{}", self.at),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new pending approval.
    Added,
    /// A pending approval became final.
    Resolved,
    /// A pending approval changed and is still pending: a vote arrived.
    Updated,
    /// The n-th reminder (1-based) of a still-pending approval fell due
    /// (its policy's `remind_after`). For notifications: `WatchPending`
    /// does not show it.
    Reminder(u32),
}

impl EventKind {
    /// The name the store's event log records (the Lua scripts write it).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Added => "added",
            EventKind::Resolved => "resolved",
            EventKind::Updated => "updated",
            EventKind::Reminder(_) => "reminder",
        }
    }
}

/// How much of its approval an event holds. The Redis log keeps its
/// entries small: the id, status, times and decision, not the immutable
/// part (type, agent, requester, context, labels, policy), which a reader
/// that needs it reads from the approval's record (`Store::complete_events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// The whole approval as it was right after the change.
    Full,
    /// The log entry's fields only: the immutable part is not read yet
    /// (empty in `approval`).
    Summary,
    /// The log entry's fields only, for good: the approval's record is gone
    /// (past its retention), so its immutable part is lost.
    Gone,
}

/// One change: the approval as it was right after it (all of it, or what
/// the log entry holds: see `detail`).
#[derive(Clone, Debug)]
pub struct Event {
    pub cursor: Cursor,
    pub kind: EventKind,
    pub approval: Approval,
    pub detail: Detail,
}
