//! The requester's W3C trace context, kept with the approval so that what
//! happens to it later (votes, expiry, reminders, webhook deliveries) can be
//! linked to the trace that asked for it. Never an API field, never a span
//! attribute: it is the caller's, and may say more than it should.
//!
//! Both headers come from the network, so only what the W3C Trace Context
//! format allows is kept, bounded: a `traceparent` that does not parse is
//! dropped (with its `tracestate`), a `tracestate` longer than
//! `MAX_TRACESTATE` loses its last members until it fits. A bad context
//! never fails the call: tracing is best effort.

/// The longest `tracestate` kept, in bytes (the W3C recommendation: at
/// least 512 should be propagated; longer ones may be truncated).
pub const MAX_TRACESTATE: usize = 512;
/// A version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
const TRACEPARENT_LEN: usize = 55;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: String,
}

impl TraceContext {
    /// The context of a call's `traceparent` / `tracestate` headers, if the
    /// `traceparent` is valid (`None` otherwise: the call has no trace).
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = valid_traceparent(traceparent?.trim())?;
        Some(Self {
            traceparent,
            tracestate: bounded_tracestate(tracestate.unwrap_or_default().trim()),
        })
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    pub fn tracestate(&self) -> &str {
        &self.tracestate
    }

    /// One string, as a store keeps it (a newline cannot be in a header).
    pub fn to_stored(&self) -> String {
        if self.tracestate.is_empty() {
            self.traceparent.clone()
        } else {
            format!("{}\n{}", self.traceparent, self.tracestate)
        }
    }

    /// Back from `to_stored` (validated again: `None` if it is not one).
    pub fn from_stored(raw: &str) -> Option<Self> {
        let (parent, state) = raw.split_once('\n').unwrap_or((raw, ""));
        Self::from_headers(Some(parent), Some(state))
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The version-00 part of a `traceparent` (a later version may append
/// fields after a `-`: they are dropped), or `None` when it is malformed or
/// its ids are all zeros.
fn valid_traceparent(raw: &str) -> Option<String> {
    let head = raw.get(..TRACEPARENT_LEN)?;
    let rest = &raw[TRACEPARENT_LEN..];
    let mut parts = head.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let ok = version.len() == 2
        && trace_id.len() == 32
        && parent_id.len() == 16
        && flags.len() == 2
        && [version, trace_id, parent_id, flags]
            .iter()
            .all(|p| is_hex(p))
        && version != "ff"
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0')
        && (rest.is_empty() || (version != "00" && rest.starts_with('-')));
    ok.then(|| head.to_string())
}

/// The `tracestate` members that fit in `MAX_TRACESTATE` bytes (whole
/// members, from the first), or nothing if it holds other than printable
/// ASCII.
fn bounded_tracestate(raw: &str) -> String {
    if !raw.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return String::new();
    }
    let mut kept = String::new();
    for member in raw.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let extra = if kept.is_empty() { 0 } else { 1 };
        if kept.len() + extra + member.len() > MAX_TRACESTATE {
            break;
        }
        if extra == 1 {
            kept.push(',');
        }
        kept.push_str(member);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_context_is_kept_and_survives_the_store() {
        let cx = TraceContext::from_headers(Some(PARENT), Some("a=1, b=2")).expect("valid");
        assert_eq!(cx.traceparent(), PARENT);
        assert_eq!(cx.tracestate(), "a=1,b=2");
        assert_eq!(TraceContext::from_stored(&cx.to_stored()), Some(cx));
        let bare = TraceContext::from_headers(Some(PARENT), None).expect("valid");
        assert_eq!(TraceContext::from_stored(&bare.to_stored()), Some(bare));
    }

    #[test]
    fn a_malformed_traceparent_is_dropped_with_its_tracestate() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(
                TraceContext::from_headers(Some(bad), Some("a=1")),
                None,
                "{bad:?}"
            );
        }
        // A later version may carry more fields: its version-00 part is kept.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        assert_eq!(
            TraceContext::from_headers(Some(later), None).map(|c| c.traceparent().len()),
            Some(TRACEPARENT_LEN)
        );
    }

    #[test]
    fn a_hostile_tracestate_is_cut_to_whole_members_within_the_bound() {
        let huge = (0..10_000)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let cx = TraceContext::from_headers(Some(PARENT), Some(&huge)).expect("valid");
        assert!(cx.tracestate().len() <= MAX_TRACESTATE);
        assert!(cx.tracestate().starts_with("k0=v,k1=v"));
        assert!(cx
            .tracestate()
            .split(',')
            .all(|m| m.starts_with('k') && m.ends_with("=v")));
        let one_long = "k=".to_string() + &"v".repeat(MAX_TRACESTATE);
        let cx = TraceContext::from_headers(Some(PARENT), Some(&one_long)).expect("valid");
        assert_eq!(cx.tracestate(), "");
        let cx = TraceContext::from_headers(Some(PARENT), Some("a=1\nb=2")).expect("valid");
        assert_eq!(cx.tracestate(), "", "not printable ASCII: dropped");
    }
}
