//! Changes, as ordered logs: every store appends one event per change to
//! the log of the approval's partition (one log, unless the Redis store has
//! `--redis-partitions` N > 1), and a cursor names a position in a log (a
//! Redis Stream id, `ms-seq`). A `Frontier` is a position in every log:
//! what a watcher resumes from. Events of one partition are in order;
//! events of different partitions have no order between them.

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

/// A position in each partition's event log (partition 0 first): events
/// at or before it were seen. On the wire, the positions joined by `,`; with
/// one partition that is one position, byte for byte the cursor of a
/// single log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier(Vec<Cursor>);

impl Frontier {
    /// The most partitions a frontier (and so a namespace) may have.
    pub const MAX_PARTITIONS: usize = 64;

    /// Before every event of each of `partitions` logs.
    pub fn start(partitions: usize) -> Self {
        Frontier(vec![Cursor::START; partitions.max(1)])
    }

    /// The position of one log.
    pub fn single(at: Cursor) -> Self {
        Frontier(vec![at])
    }

    pub fn partitions(&self) -> usize {
        self.0.len()
    }

    /// The position in partition `part`'s log (`START` for one it lacks).
    pub fn get(&self, part: usize) -> Cursor {
        self.0.get(part).copied().unwrap_or(Cursor::START)
    }

    /// Moves partition `part`'s position to `at` (never back).
    pub fn advance(&mut self, part: usize, at: Cursor) {
        if let Some(c) = self.0.get_mut(part) {
            *c = (*c).max(at);
        }
    }

    /// Sets partition `part`'s position to `at`, back included (a new
    /// history).
    pub fn reset(&mut self, part: usize, at: Cursor) {
        if let Some(c) = self.0.get_mut(part) {
            *c = at;
        }
    }

    /// Moves every position to at least `other`'s.
    pub fn advance_to(&mut self, other: &Frontier) {
        for (part, at) in other.0.iter().enumerate() {
            self.advance(part, *at);
        }
    }

    /// Whether every position is at or past `other`'s.
    pub fn covers(&self, other: &Frontier) -> bool {
        (0..self.0.len().max(other.0.len())).all(|k| self.get(k) >= other.get(k))
    }

    /// The positions, partition 0 first.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Cursor)> + '_ {
        self.0.iter().copied().enumerate()
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        if raw.split(',').nth(Self::MAX_PARTITIONS).is_some() {
            return Err(DomainError::invalid(
                field,
                format!(
                    "names more than {} partitions: not a cursor this service returned",
                    Self::MAX_PARTITIONS
                ),
            ));
        }
        raw.split(',')
            .map(|at| Cursor::parse(field, at))
            .collect::<Result<_, _>>()
            .map(Frontier)
    }
}

impl fmt::Display for Frontier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, at) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{at}")?;
        }
        Ok(())
    }
}

/// One history of the event log. The store draws a new one when its data
/// is found wiped or rewound (restored from a backup): positions of another
/// epoch mean nothing in this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

/// A resume cursor as clients hold it: a position in every partition's log
/// and the epoch it belongs to, `ms-seq.epoch` on the wire (one partition),
/// `ms-seq,ms-seq,....epoch` (several). A cursor without an epoch (from an
/// older replica) is taken as a position alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub at: Frontier,
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
            at: Frontier::parse(field, at)?,
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
    /// Its position in its partition's log.
    pub cursor: Cursor,
    /// The partition whose log holds it (0 with one partition).
    pub partition: usize,
    /// Where a watcher that got this event resumes: its position in every
    /// partition's log. The store sets this log's position only (the
    /// others at `START`); the reader that knows where the other logs
    /// are (the event pump, a watcher reading the store) sets the rest.
    pub resume: Frontier,
    pub kind: EventKind,
    pub approval: Approval,
    pub detail: Detail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_partition_cursor_is_the_cursor_of_a_single_log_byte_for_byte() {
        let raw = "1764547200000-3.1f2e";
        let p = Position::parse("cursor", raw).unwrap();
        assert_eq!(
            p.at,
            Frontier::single(Cursor {
                ms: 1764547200000,
                seq: 3
            })
        );
        assert_eq!(p.to_string(), raw);
    }

    #[test]
    fn a_cursor_names_a_position_in_every_partition_and_reads_back_the_same() {
        let raw = "5-0,0-0,7-2.ab";
        let p = Position::parse("cursor", raw).unwrap();
        assert_eq!(p.at.partitions(), 3);
        assert_eq!(p.at.get(2), Cursor { ms: 7, seq: 2 });
        assert_eq!(p.to_string(), raw);
    }

    #[test]
    fn a_cursor_of_more_partitions_than_a_namespace_may_have_is_refused() {
        let raw = vec!["1-0"; Frontier::MAX_PARTITIONS + 1].join(",");
        assert!(Position::parse("cursor", &raw).is_err());
        let raw = vec!["1-0"; Frontier::MAX_PARTITIONS].join(",");
        assert!(Position::parse("cursor", &raw).is_ok());
        assert!(Position::parse("cursor", "1-0,,2-0").is_err());
    }

    #[test]
    fn a_frontier_moves_forward_only_and_covers_what_it_passed() {
        let mut f = Frontier::start(3);
        f.advance(1, Cursor { ms: 9, seq: 0 });
        f.advance(1, Cursor { ms: 4, seq: 0 });
        assert_eq!(f.get(1), Cursor { ms: 9, seq: 0 });
        let mut g = Frontier::start(3);
        g.advance(0, Cursor { ms: 2, seq: 0 });
        assert!(!f.covers(&g) && !g.covers(&f));
        f.advance_to(&g);
        assert!(f.covers(&g));
        assert_eq!(f.to_string(), "2-0,9-0,0-0");
    }
}
