//! Listing: a walk of the time index, newest first, filtered, bounded;
//! with several partitions, a walk of each, merged in id (creation) order.

use redis::{AsyncCommands, RedisError};

use super::keys::Keys;
use super::RedisStore;
use crate::domain::{Approval, ApprovalId, Caller, DomainError, ListQuery, Page, PageToken};
use crate::store;

impl RedisStore {
    pub(super) async fn list(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Page, DomainError> {
        if let [keys] = &self.parts[..] {
            return self.list_in(keys, caller, query).await;
        }
        // Each partition's page below the same token. A partition whose
        // page has a `next` knows its ids only down to it: the merged page
        // keeps what every partition knows (ids at or above the highest
        // such token), newest first, and goes on from there.
        let mut merged = Vec::new();
        let mut known_down_to: Option<String> = None;
        for keys in &self.parts {
            let page = self.list_in(keys, caller, query).await?;
            if let Some(PageToken(next)) = page.next {
                if known_down_to.as_deref() < Some(next.as_str()) {
                    known_down_to = Some(next.as_str().to_string());
                }
            }
            merged.extend(page.approvals);
        }
        merged.sort_by(|a, b| b.id.as_str().cmp(a.id.as_str()));
        if let Some(bound) = &known_down_to {
            merged.retain(|a| a.id.as_str() >= bound.as_str());
        }
        let mut page: Vec<Approval> = Vec::new();
        let mut bytes = 0;
        for a in merged {
            let size = a.wire_size();
            if store::page_full(query, page.len(), bytes, size) {
                let next = page.last().map(|a| PageToken(a.id.clone()));
                return Ok(Page {
                    approvals: page,
                    next,
                });
            }
            bytes += size;
            page.push(a);
        }
        Ok(Page {
            approvals: page,
            next: known_down_to.map(|id| PageToken(ApprovalId::trusted(id))),
        })
    }

    /// One partition's page.
    async fn list_in(
        &self,
        keys: &Keys,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Page, DomainError> {
        // Walk the time index newest first, filter, stop at a page (plus one
        // to know whether more follow) or after a bounded scan, in which case
        // the page may be short but the token lets the caller go on.
        const MAX_SCANNED: usize = 5000;
        let batch = (query.page_size * 2).clamp(100, 1000);
        let mut upper = match &query.after {
            Some(PageToken(id)) => format!("({id}"),
            None => "+".to_string(),
        };
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut scanned = 0;
        loop {
            let ids: Vec<String> = self
                .conn()?
                .zrevrangebylex_limit(&keys.index, &upper, "-", 0, batch as isize)
                .await?;
            let exhausted = ids.len() < batch;
            let rows = self.fetch(&ids).await?;
            let mut gone = Vec::new();
            for (id, row) in ids.iter().zip(rows) {
                scanned += 1;
                upper = format!("({id}");
                match row {
                    None => gone.push(id.clone()),
                    Some(a) if caller.may_see(&a) && query.matches(&a) => {
                        let size = a.wire_size();
                        if store::page_full(query, page.len(), bytes, size) {
                            // One more exists: the page is complete.
                            let next = page.last().map(|a: &Approval| PageToken(a.id.clone()));
                            self.forget(keys, &gone).await;
                            return Ok(Page {
                                approvals: page,
                                next,
                            });
                        }
                        bytes += size;
                        page.push(a);
                    }
                    Some(_) => {}
                }
            }
            self.forget(keys, &gone).await;
            if exhausted {
                return Ok(Page {
                    approvals: page,
                    next: None,
                });
            }
            if scanned >= MAX_SCANNED {
                let last = upper.trim_start_matches('(').to_string();
                return Ok(Page {
                    approvals: page,
                    next: Some(PageToken(ApprovalId::trusted(last))),
                });
            }
        }
    }

    /// Drops index entries whose approval aged out. Best effort: a failure
    /// only leaves entries that the next list skips again.
    async fn forget(&self, keys: &Keys, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        if let Ok(mut conn) = self.conn() {
            let _: Result<(), RedisError> = conn.zrem(&keys.index, ids).await;
        }
    }
}
