//! Validated request fields ("parse, don't validate"): each constructor is the
//! only way to make the value, so a value that exists is valid. Every error
//! names the field it is about.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use prost::Message;

use super::text::{check_human_text, check_identifier, echo};
use super::{Approval, DomainError, Limits, Millis, Status};

type Result<T> = std::result::Result<T, DomainError>;

/// An approval id: a UUIDv7 in its canonical lowercase form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// A new id whose embedded timestamp is `now`, so ids sort by creation
    /// (within one process also inside one millisecond: a shared counter).
    pub fn generate_at(now: Millis) -> Self {
        static COUNTER: std::sync::Mutex<uuid::ContextV7> =
            std::sync::Mutex::new(uuid::ContextV7::new());
        let counter = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        let ts = uuid::Timestamp::from_unix(
            &*counter,
            now.0 / 1000,
            ((now.0 % 1000) * 1_000_000) as u32,
        );
        Self(uuid::Uuid::new_v7(ts).to_string())
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(DomainError::invalid(field, "is required"));
        }
        let not_an_id = || {
            DomainError::invalid(
                field,
                format!("{} is not an approval id (a UUIDv7)", echo(raw)),
            )
        };
        let uuid = uuid::Uuid::try_parse(raw).map_err(|_| not_an_id())?;
        if uuid.get_version_num() != 7 {
            return Err(not_an_id());
        }
        Ok(Self(uuid.to_string()))
    }

    /// For ids the service wrote itself (read back from a store).
    pub(crate) fn trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The smallest id that could have been generated at `at`: ids below it
    /// are older (used to trim time-ordered indexes).
    pub fn lower_bound_at(at: Millis) -> String {
        format!("{:08x}-{:04x}", at.0 >> 16, at.0 & 0xffff)
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_name(field: &str, raw: &str, max_chars: usize, allow_star: bool) -> Result<()> {
    let n = raw.chars().count();
    if n > max_chars {
        return Err(DomainError::invalid(
            field,
            format!("is {n} characters long; at most {max_chars} allowed"),
        ));
    }
    let bad = raw.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '.' | '_' | '-' | ':' | '/')
            || (allow_star && *c == '*'))
    });
    if let Some(c) = bad {
        return Err(DomainError::invalid(
            field,
            format!(
                "{} contains {c:?}; use letters, digits and . _ - : /",
                echo(raw)
            ),
        ));
    }
    Ok(())
}

/// A free-form identifier (agent id, principal, label value, idempotency
/// key): any script, but nothing invisible or that drives a terminal.
fn check_id_text(field: &str, raw: &str, max_chars: usize) -> Result<()> {
    let n = raw.chars().count();
    if n > max_chars {
        return Err(DomainError::invalid(
            field,
            format!("is {n} characters long; at most {max_chars} allowed"),
        ));
    }
    check_identifier(field, raw)
}

/// What kind of action an approval gates, e.g. `deploy:production`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalType(String);

impl ApprovalType {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(DomainError::invalid(
                field,
                "is required (what the approval gates, e.g. \"deploy:production\")",
            ));
        }
        check_name(field, raw, Limits::MAX_NAME_CHARS, false)?;
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An approval-type filter: exact, or a prefix when it ends in `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypePattern {
    Exact(String),
    Prefix(String),
}

impl TypePattern {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(DomainError::invalid(field, "must not be an empty string"));
        }
        check_name(field, raw, Limits::MAX_NAME_CHARS, true)?;
        match raw.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Ok(Self::Prefix(prefix.to_string())),
            None if !raw.contains('*') => Ok(Self::Exact(raw.to_string())),
            _ => Err(DomainError::invalid(
                field,
                format!("{}: '*' is only allowed once, at the end", echo(raw)),
            )),
        }
    }

    pub fn matches(&self, approval_type: &str) -> bool {
        match self {
            Self::Exact(t) => t == approval_type,
            Self::Prefix(p) => approval_type.starts_with(p.as_str()),
        }
    }
}

/// The agent or workflow asking; may be empty.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AgentId(String);

impl AgentId {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        check_id_text(field, raw, Limits::MAX_NAME_CHARS)?;
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Who makes a call: the authenticated identity once auth is on; until then
/// the name the caller gave (`agent_id`, `responder`) or `anonymous`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal(String);

impl Principal {
    pub const ANONYMOUS: &'static str = "anonymous";

    pub fn anonymous() -> Self {
        Self(Self::ANONYMOUS.to_string())
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(DomainError::invalid(field, "is required"));
        }
        check_id_text(field, raw, Limits::MAX_NAME_CHARS)?;
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The data shown to the human, bounded in encoded size.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Context(prost_types::Struct);

impl Context {
    pub fn parse(field: &str, raw: Option<prost_types::Struct>, limits: &Limits) -> Result<Self> {
        let value = raw.unwrap_or_default();
        let size = value.encoded_len();
        if size > limits.max_context_bytes {
            return Err(DomainError::invalid(
                field,
                format!(
                    "is {size} bytes encoded; at most {} allowed",
                    limits.max_context_bytes
                ),
            ));
        }
        if let Some(path) = non_json_number(&value) {
            return Err(DomainError::invalid(
                field,
                format!("holds NaN or Infinity at {path}, which JSON (and so context_digest) cannot represent"),
            ));
        }
        Ok(Self(value))
    }

    pub fn into_struct(self) -> prost_types::Struct {
        self.0
    }
}

/// The path of the first number JSON cannot carry (NaN, +-Infinity), if any.
/// Depth is bounded by protobuf decoding's recursion limit.
fn non_json_number(s: &prost_types::Struct) -> Option<String> {
    use prost_types::value::Kind;
    fn walk(v: &prost_types::Value, path: String) -> Option<String> {
        match &v.kind {
            Some(Kind::NumberValue(n)) if !n.is_finite() => Some(path),
            Some(Kind::StructValue(s)) => s
                .fields
                .iter()
                .find_map(|(k, v)| walk(v, format!("{path}.{k}"))),
            Some(Kind::ListValue(l)) => l
                .values
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, format!("{path}[{i}]"))),
            _ => None,
        }
    }
    s.fields.iter().find_map(|(k, v)| walk(v, k.clone()))
}

/// Labels for filtering: bounded in number, keys like approval types.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// `max` bounds the count (`Limits::max_labels` on an approval; filters
    /// pass the same bound).
    pub fn parse<I>(field: &str, raw: I, max: usize) -> Result<Self>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let map: BTreeMap<String, String> = raw.into_iter().collect();
        if map.len() > max {
            return Err(DomainError::invalid(
                field,
                format!("has {} labels; at most {max} allowed", map.len()),
            ));
        }
        for (k, v) in &map {
            if k.is_empty() {
                return Err(DomainError::invalid(field, "a label key is empty"));
            }
            let key_field = format!("{field}[{}]", echo(k));
            check_name(&key_field, k, Limits::MAX_LABEL_KEY_CHARS, false)?;
            check_id_text(&key_field, v, Limits::MAX_LABEL_VALUE_CHARS)?;
        }
        Ok(Self(map))
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }

    /// True when `labels` carries every label of `self`.
    pub fn all_in(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// How long an approval stays open: > 0 and at most the configured maximum.
/// It remembers whether the request gave it or the server's default filled
/// it in: an idempotency key stands for the request as sent
/// (`Approval::request_fingerprint`), and replicas may differ in defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    value: Duration,
    requested: bool,
}

impl Timeout {
    pub fn parse(field: &str, raw: Option<prost_types::Duration>, limits: &Limits) -> Result<Self> {
        let Some(d) = raw else {
            return Ok(Self {
                value: limits.default_timeout,
                requested: false,
            });
        };
        if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
            return Err(DomainError::invalid(
                field,
                format!(
                    "{}s {}ns is not a valid positive duration",
                    d.seconds, d.nanos
                ),
            ));
        }
        let value = Duration::new(d.seconds as u64, d.nanos as u32);
        if value < Duration::from_millis(1) {
            return Err(DomainError::invalid(
                field,
                "must be greater than zero (at least 1ms); omit it for the default",
            ));
        }
        if value > limits.max_timeout {
            return Err(DomainError::invalid(
                field,
                format!(
                    "{} is longer than the maximum of {}",
                    humantime::format_duration(value),
                    humantime::format_duration(limits.max_timeout)
                ),
            ));
        }
        Ok(Self {
            value,
            requested: true,
        })
    }

    pub fn get(self) -> Duration {
        self.value
    }

    /// The timeout the request gave (`None`: it gave none, the default
    /// applies).
    pub fn as_requested(self) -> Option<Duration> {
        self.requested.then_some(self.value)
    }
}

/// The responder's or canceller's reason, bounded in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reason(String);

impl Reason {
    pub fn parse(field: &str, raw: &str, limits: &Limits) -> Result<Self> {
        if raw.len() > limits.max_reason_bytes {
            return Err(DomainError::invalid(
                field,
                format!(
                    "is {} bytes; at most {} allowed",
                    raw.len(),
                    limits.max_reason_bytes
                ),
            ));
        }
        check_human_text(field, raw)?;
        Ok(Self(raw.to_string()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Calls with the same requester and key attach to one approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>> {
        if raw.is_empty() {
            return Ok(None);
        }
        check_id_text(field, raw, Limits::MAX_NAME_CHARS)?;
        Ok(Some(Self(raw.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Which approvals a watcher or a list asks for: request data only. What
/// the caller may see is checked beside it (`Caller::may_see`), from the
/// caller every use case takes.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub types: Vec<TypePattern>,
    pub agent_id: Option<AgentId>,
    pub labels: Labels,
}

impl Filter {
    pub fn matches(&self, a: &Approval) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t.matches(&a.approval_type)))
            && self
                .agent_id
                .as_ref()
                .is_none_or(|id| id.as_str() == a.agent_id)
            && self.labels.all_in(&a.labels)
    }
}

/// Where a list page starts: after this id (lists run newest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageToken(pub ApprovalId);

impl PageToken {
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>> {
        if raw.is_empty() {
            return Ok(None);
        }
        ApprovalId::parse(field, raw)
            .map(|id| Some(Self(id)))
            .map_err(|_| DomainError::invalid(field, "is not a token this service returned"))
    }
}

/// A validated `ListApprovals` request.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub statuses: Vec<Status>,
    pub filter: Filter,
    pub page_size: usize,
    pub after: Option<PageToken>,
}

impl ListQuery {
    pub fn matches(&self, a: &Approval) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&a.status)) && self.filter.matches(a)
    }
}

/// One page of a list, newest first.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub approvals: Vec<Approval>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}
