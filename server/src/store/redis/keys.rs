//! The key layout, and the one builder every key goes through.
//!
//! Every key is under one hash tag `{prefix}`, so each Lua script touches
//! one Cluster slot:
//!
//! | key                         | type   | bound                                  |
//! |-----------------------------|--------|----------------------------------------|
//! | `{p}:approval:<id>`         | hash   | TTL: deadline + retention, then retention once final |
//! | `{p}:idem:<requester>:<key>`| string | TTL: as the approval when created      |
//! | `{p}:pending`               | zset   | pending approvals only (by deadline)   |
//! | `{p}:index`                 | zset   | ids within retention (lexicographic)   |
//! | `{p}:open`                  | hash   | one field per requester with pending approvals |
//! | `{p}:reminders`             | zset   | pending approvals with a reminder to come (by when) |
//! | `{p}:events`                | stream | capped (`MAXLEN ~`)                    |
//! | `{p}:epoch`                 | string | one value: the history's epoch (hex)   |
//! | `{p}:writable`              | string | TTL: one minute (the health write probe) |
//! | `{p}:hooks:due`, `{p}:hooks:queued` | zset, hash | capped (`outbox::MAX_QUEUED`): webhook deliveries waiting |
//! | `{p}:hooks:dead`, `{p}:hooks:dead_order` | hash, zset | capped (`outbox::MAX_DEAD`): webhook dead letters |
//!
//! The event stream also carries the consumer group `webhooks` (`outbox.rs`).
//!
//! Partitions (`--redis-partitions N`): partition 0 is the tag `{p}` above,
//! byte for byte; partition `k` (1..N) has the same keys under `{p:k}`, so
//! each partition hashes to a slot of its own. An approval's id names its
//! partition (`partition_of`). Each partition's `events` is its own log
//! (with its own consumer group `webhooks`) and `writable` its own probe;
//! `epoch` and the `hooks:*` keys are used in partition 0 only (one
//! history, one delivery queue for the namespace). One more key records
//! the layout:
//!
//! | key           | type   | bound                                       |
//! |---------------|--------|---------------------------------------------|
//! | `{p}:layout`  | string | one value: `partitions=N`                   |

/// The keys of one namespace (`prefix`).
pub(super) struct Keys {
    tag: String,
    pub(super) pending: String,
    pub(super) index: String,
    pub(super) events: String,
    pub(super) open: String,
    pub(super) reminders: String,
    pub(super) epoch: String,
    pub(super) writable: String,
}

/// The most partitions a namespace may have (the id names its partition
/// in its last byte).
pub const MAX_PARTITIONS: usize = crate::domain::Frontier::MAX_PARTITIONS;

/// The key recording how many partitions a namespace's data is laid out in.
pub(super) fn layout_key(prefix: &str) -> String {
    format!("{{{prefix}}}:layout")
}

/// The partition of the approval with id `id` among `partitions`: with one,
/// every id (ids written before partitions existed included); with more,
/// the id's last byte (two hex digits), `None` when no such partition
/// exists (an id from no approval of this namespace).
pub(super) fn partition_of(id: &str, partitions: usize) -> Option<usize> {
    if partitions <= 1 {
        return Some(0);
    }
    let last = id.get(id.len().checked_sub(2)?..)?;
    let part = usize::from_str_radix(last, 16).ok()?;
    (part < partitions).then_some(part)
}

/// The id `id` placed in partition `part` (its last byte replaced), so that
/// `partition_of` finds it there. Still a UUIDv7 in text: the last byte is
/// part of its random bits.
pub(super) fn place_in(id: &str, part: usize) -> String {
    match id.get(..id.len().saturating_sub(2)) {
        Some(head) if id.len() >= 2 => format!("{head}{part:02x}"),
        _ => id.to_string(),
    }
}

/// The partition of a requester's approvals: every one of a requester's
/// approvals lives in one partition, so its open quota and its
/// idempotency keys are checked in one script, exactly as with one
/// partition. FNV-1a: stable across processes and versions (every replica
/// must agree).
pub(super) fn partition_of_requester(requester: &str, partitions: usize) -> usize {
    if partitions <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in requester.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % partitions as u64) as usize
}

impl Keys {
    /// The keys of partition `part` of the namespace `prefix` (partition 0
    /// is the namespace as it was before partitions).
    pub(super) fn new(prefix: &str, part: usize) -> Self {
        let tag = match part {
            0 => format!("{{{prefix}}}"),
            k => format!("{{{prefix}:{k}}}"),
        };
        Self {
            pending: format!("{tag}:pending"),
            index: format!("{tag}:index"),
            events: format!("{tag}:events"),
            open: format!("{tag}:open"),
            reminders: format!("{tag}:reminders"),
            epoch: format!("{tag}:epoch"),
            writable: format!("{tag}:writable"),
            tag,
        }
    }

    /// The hash of the approval with this id.
    pub(super) fn approval(&self, id: &str) -> String {
        format!("{}{id}", self.approval_prefix())
    }

    /// An approval's key without its id (create.lua builds keys of the
    /// approvals it ages out of the index).
    pub(super) fn approval_prefix(&self) -> String {
        format!("{}:approval:", self.tag)
    }

    /// The idempotency record of `requester`'s `key`.
    pub(super) fn idempotency(&self, requester: &str, key: &str) -> String {
        // Length-prefixed so that no two (requester, key) pairs collide.
        format!("{}:idem:{}:{requester}:{key}", self.tag, requester.len())
    }

    /// The webhook outbox's keys, in the order its scripts take them
    /// (`outbox/common.lua`): due, queued, dead, dead order.
    pub(super) fn outbox(&self) -> [String; 4] {
        ["due", "queued", "dead", "dead_order"].map(|k| format!("{}:hooks:{k}", self.tag))
    }

    /// The key create.lua is given when a request has no idempotency key
    /// (never written: the script looks at it only with a key).
    pub(super) fn no_idempotency(&self) -> String {
        format!("{}:idem:-", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "019ad5a1-7c3e-7b2a-9f10-5c2d8e4a61b7";

    #[test]
    fn one_partition_reads_every_id_as_partition_zero() {
        assert_eq!(partition_of(ID, 1), Some(0));
        assert_eq!(partition_of("", 1), Some(0));
    }

    #[test]
    fn a_placed_id_names_its_partition_and_placing_it_again_keeps_it() {
        for part in 0..5 {
            let placed = place_in(ID, part);
            assert_eq!(placed.len(), ID.len());
            assert_eq!(&placed[..34], &ID[..34], "only the last byte changes");
            assert_eq!(partition_of(&placed, 5), Some(part));
            assert_eq!(place_in(&placed, part), placed);
            assert!(uuid::Uuid::try_parse(&placed).is_ok_and(|u| u.get_version_num() == 7));
        }
    }

    #[test]
    fn an_id_naming_a_partition_that_does_not_exist_has_none() {
        assert_eq!(partition_of(&place_in(ID, 3), 3), None);
        assert_eq!(partition_of(&place_in(ID, 0xff), 64), None);
        assert_eq!(partition_of("x", 3), None);
        assert_eq!(partition_of("é", 3), None);
    }

    #[test]
    fn a_requesters_partition_is_the_same_in_every_process_and_version() {
        // Replicas must agree, across versions: a changed hash would put a
        // requester's new approvals beside its old ones in another
        // partition (open quota and idempotency keys split). FNV-1a pinned.
        assert_eq!(partition_of_requester("alice", 1), 0);
        // FNV-1a 64 of "alice" is 0x508b2abb65a03907 (computed apart).
        assert_eq!(partition_of_requester("alice", 3), 2);
        assert_eq!(partition_of_requester("alice", 7), 1);
        assert_eq!(partition_of_requester("agent-7", 3), 2);
        assert_eq!(partition_of_requester("requester-0", 3), 0);
    }
}
