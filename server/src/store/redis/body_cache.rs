//! Approval bodies this replica read lately, for completing events
//! (`RedisStore::complete_events`). A body never changes once written, so
//! a cached one is never stale; and an approval's `resolved` event often
//! follows its `added` one by seconds, so with watchers open its body is
//! read from Redis once, not once per event. Bounded in bytes: the oldest
//! entries leave first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The most body bytes a replica keeps: 128 bodies at the default largest
/// context (64 KB), thousands of small ones.
pub(super) const BODY_CACHE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
pub(super) struct BodyCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bodies: HashMap<String, Arc<[u8]>>,
    /// Ids in the order they came in.
    order: VecDeque<String>,
    bytes: usize,
}

impl BodyCache {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<[u8]>> {
        self.state().bodies.get(id).cloned()
    }

    pub(super) fn put(&self, id: &str, body: Arc<[u8]>) {
        if body.len() > BODY_CACHE_BYTES {
            return;
        }
        let mut s = self.state();
        if s.bodies.contains_key(id) {
            return;
        }
        while s.bytes + body.len() > BODY_CACHE_BYTES {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            if let Some(gone) = s.bodies.remove(&oldest) {
                s.bytes -= gone.len();
            }
        }
        s.bytes += body.len();
        s.order.push_back(id.to_string());
        s.bodies.insert(id.to_string(), body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_newest_bodies_within_its_bytes() {
        let cache = BodyCache::default();
        let body: Arc<[u8]> = vec![0u8; BODY_CACHE_BYTES / 4].into();
        for id in ["a", "b", "c", "d", "e"] {
            cache.put(id, body.clone());
        }
        assert!(cache.get("a").is_none(), "the oldest left first");
        assert!(["b", "c", "d", "e"]
            .iter()
            .all(|id| cache.get(id).is_some()));
        assert!(cache.state().bytes <= BODY_CACHE_BYTES);
        cache.put("huge", vec![0u8; BODY_CACHE_BYTES + 1].into());
        assert!(cache.get("huge").is_none() && cache.get("e").is_some());
    }
}
