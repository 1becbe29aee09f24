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

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
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
