//! Listing: a walk of the time index, newest first, filtered, bounded.

use redis::{AsyncCommands, RedisError};

use super::RedisStore;
use crate::domain::{Approval, ApprovalId, DomainError, ListQuery, Page, PageToken};
use crate::store;

impl RedisStore {
    pub(super) async fn list(&self, query: &ListQuery) -> Result<Page, DomainError> {
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
                .zrevrangebylex_limit(&self.keys.index, &upper, "-", 0, batch as isize)
                .await?;
            let exhausted = ids.len() < batch;
            let rows = self.fetch(&ids).await?;
            let mut gone = Vec::new();
            for (id, row) in ids.iter().zip(rows) {
                scanned += 1;
                upper = format!("({id}");
                match row {
                    None => gone.push(id.clone()),
                    Some(a) if query.matches(&a) => {
                        let size = a.wire_size();
                        if store::page_full(query, page.len(), bytes, size) {
                            // One more exists: the page is complete.
                            let next = page.last().map(|a: &Approval| PageToken(a.id.clone()));
                            self.forget(&gone).await;
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
            self.forget(&gone).await;
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
    async fn forget(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        if let Ok(mut conn) = self.conn() {
            let _: Result<(), RedisError> = conn.zrem(&self.keys.index, ids).await;
        }
    }
}
