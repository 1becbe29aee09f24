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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new pending approval.
    Added,
    /// A pending approval became final.
    Resolved,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Added => "added",
            EventKind::Resolved => "resolved",
        }
    }
}

/// One change: the approval as it was right after it.
#[derive(Clone, Debug)]
pub struct Event {
    pub cursor: Cursor,
    pub kind: EventKind,
    pub approval: Approval,
}
