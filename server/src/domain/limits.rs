//! Size and time limits. Each default is defined here and nowhere else.

use std::time::Duration;

/// Bounds on what one request may carry. Configurable (see `Config`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Encoded size of `context`, in bytes.
    pub max_context_bytes: usize,
    /// Number of labels on one approval.
    pub max_labels: usize,
    /// Size of a `reason`, in bytes.
    pub max_reason_bytes: usize,
    /// `timeout` when the request gives none.
    pub default_timeout: Duration,
    /// Largest `timeout` accepted.
    pub max_timeout: Duration,
    /// Pending approvals one requester may hold at once.
    pub max_open_per_requester: usize,
    /// `WatchPending` streams one principal may hold open on one replica.
    pub max_watchers_per_principal: usize,
    /// `WatchPending` streams one replica holds open, whoever asks (auth on
    /// or off).
    pub max_watchers: usize,
    /// How long a watcher whose queue is full may take nothing before it is
    /// ended (UNAVAILABLE: resume with the last cursor).
    pub watcher_stall: Duration,
}

impl Limits {
    pub const DEFAULT_MAX_CONTEXT_BYTES: usize = 64 * 1024;
    pub const DEFAULT_MAX_LABELS: usize = 64;
    pub const DEFAULT_MAX_REASON_BYTES: usize = 4 * 1024;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Fixed: these are identifiers, not payloads.
    pub const MAX_NAME_CHARS: usize = 128;
    pub const MAX_LABEL_KEY_CHARS: usize = 63;
    pub const MAX_LABEL_VALUE_CHARS: usize = 256;
    pub const DEFAULT_MAX_OPEN_PER_REQUESTER: usize = 1000;
    pub const DEFAULT_MAX_WATCHERS_PER_PRINCIPAL: usize = 32;
    pub const DEFAULT_MAX_WATCHERS: usize = 1000;
    pub const DEFAULT_WATCHER_STALL: Duration = Duration::from_secs(30);
    /// What one watcher may have queued, in encoded bytes, ahead of its
    /// HTTP/2 stream (which holds at most about 400 KB more, hyper's
    /// per-stream send buffer).
    pub const WATCHER_QUEUE_BYTES: usize = 128 * 1024;
    /// What one watcher reads from the store at once (a snapshot page, a
    /// batch of events to catch up), counting every context at its largest.
    pub const WATCHER_PAGE_BYTES: usize = 256 * 1024;
    /// prost refuses messages nested deeper than this (fixed in prost).
    pub const DECODER_NESTING_LIMIT: usize = 100;
    /// Depths of `context` that `DECODER_NESTING_LIMIT` always accepts,
    /// counting the context object itself as level 1 (an object costs
    /// three nested messages, a list two): objects within objects, or lists
    /// within lists inside the context object, with values at the bottom.
    pub const MAX_CONTEXT_OBJECT_DEPTH: usize = 32;
    pub const MAX_CONTEXT_LIST_DEPTH: usize = 48;
    pub const DEFAULT_PAGE_SIZE: usize = 50;
    pub const MAX_PAGE_SIZE: usize = 1000;
    /// Most bytes of approvals in one `ListApprovals` page: gRPC clients
    /// refuse messages over 4 MiB by default, so a page stops short of that
    /// (less room for the envelope) and says where to go on, however large
    /// the contexts. A page holds at least one approval.
    pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_context_bytes: Self::DEFAULT_MAX_CONTEXT_BYTES,
            max_labels: Self::DEFAULT_MAX_LABELS,
            max_reason_bytes: Self::DEFAULT_MAX_REASON_BYTES,
            default_timeout: Self::DEFAULT_TIMEOUT,
            max_timeout: Self::DEFAULT_MAX_TIMEOUT,
            max_open_per_requester: Self::DEFAULT_MAX_OPEN_PER_REQUESTER,
            max_watchers_per_principal: Self::DEFAULT_MAX_WATCHERS_PER_PRINCIPAL,
            max_watchers: Self::DEFAULT_MAX_WATCHERS,
            watcher_stall: Self::DEFAULT_WATCHER_STALL,
        }
    }
}
