//! The `[[webhooks]]` section of the configuration file, as operators write
//! it (`WebhookEntry`), and checked (`Endpoint`): every error names the key.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::event::EventPattern;
use crate::domain::TypePattern;

/// Per-request timeout when the entry sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest per-request timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Retry horizon when the entry sets none.
const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// Longest retry horizon accepted.
const MAX_RETRY_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most endpoints in one file.
const MAX_ENDPOINTS: usize = 64;
/// Longest endpoint name (it is part of every webhook id and metric label).
const MAX_NAME_CHARS: usize = 64;
/// Most secrets in one secret file (rotation needs two).
const MAX_SECRETS: usize = 4;

/// One `[[webhooks]]` entry, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// A short name for metrics, logs and `approvalctl` (the URL may hold a
    /// secret, as Slack's do): letters, digits, `-`, `_`, `.`. Default: the
    /// URL's host, when that is unique.
    pub name: Option<String>,
    /// `https://...` (or `http://`, for receivers on a trusted network).
    pub url: String,
    /// File holding the Standard Webhooks secret (`whsec_` + base64), one
    /// per line (two during a rotation: both signatures are sent). Required
    /// for `format = "standard"`.
    pub secret_file: Option<String>,
    /// Event types sent (default: all): `approval.created`, `approval.vote`,
    /// `approval.approved`, `approval.rejected`, `approval.expired`,
    /// `approval.cancelled`, `approval.reminder` (every reminder) or
    /// `approval.reminder.N` (the Nth only: escalation).
    pub events: Option<Vec<String>>,
    /// Approval type patterns (`deploy:*`), as in policies. Default: all.
    pub approval_types: Option<Vec<String>>,
    /// `standard` (default) or `slack` (an incoming-webhook message).
    pub format: Option<String>,
    /// Per-request timeout (default 10s, at most 60s).
    pub timeout: Option<String>,
    /// How long a failing delivery is retried before it becomes a dead
    /// letter (default 24h, at most 7d).
    pub retry_for: Option<String>,
    /// The inbox's public address, linked from messages.
    pub inbox_url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Standard,
    Slack,
}

/// A signing key, from a `whsec_` secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One checked endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub name: String,
    pub url: reqwest::Url,
    pub secrets: Vec<Secret>,
    /// Empty: every event.
    pub events: Vec<EventPattern>,
    /// Empty: every approval type.
    pub approval_types: Vec<TypePattern>,
    pub format: Format,
    pub timeout: Duration,
    pub retry_for: Duration,
    pub inbox_url: Option<String>,
}

/// Every endpoint of one configuration file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoints {
    pub list: Vec<Endpoint>,
}

impl Endpoints {
    pub fn get(&self, name: &str) -> Option<&Endpoint> {
        self.list.iter().find(|e| e.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The longest request timeout: a delivery's lease outlasts it.
    pub fn longest_timeout(&self) -> Duration {
        self.list
            .iter()
            .map(|e| e.timeout)
            .max()
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The longest retry horizon: events older than it are not planned.
    pub fn longest_retry_for(&self) -> Duration {
        self.list
            .iter()
            .map(|e| e.retry_for)
            .max()
            .unwrap_or(DEFAULT_RETRY_FOR)
    }

    /// Reads the `[[webhooks]]` of the configuration file at `path` (other
    /// sections are someone else's), and their secret files; relative
    /// paths are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct OnlyWebhooks {
            #[serde(default)]
            webhooks: Vec<WebhookEntry>,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
        let file: OnlyWebhooks =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_entries(&file.webhooks, &base).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_entries(entries: &[WebhookEntry], base: &Path) -> Result<Self, String> {
        if entries.len() > MAX_ENDPOINTS {
            return Err(format!(
                "webhooks: {} endpoints; at most {MAX_ENDPOINTS} allowed",
                entries.len()
            ));
        }
        let mut list: Vec<Endpoint> = Vec::with_capacity(entries.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let endpoint = Endpoint::check(&format!("webhooks[{i}]"), entry, base)?;
            if let Some(first) = seen.insert(endpoint.name.clone(), i) {
                return Err(format!(
                    "webhooks[{i}].name: {:?} is already the name of webhooks[{first}]; give each \
                     endpoint its own `name`",
                    endpoint.name
                ));
            }
            list.push(endpoint);
        }
        Ok(Self { list })
    }
}

fn duration(
    key: &str,
    raw: Option<&str>,
    default: Duration,
    max: Duration,
) -> Result<Duration, String> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let d = humantime::parse_duration(raw).map_err(|e| {
        format!("{key}: {raw:?} is not a duration such as \"10s\" or \"24h\" ({e})")
    })?;
    if d.is_zero() || d > max {
        return Err(format!(
            "{key}: {raw:?} must be more than 0 and at most {}",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

impl Endpoint {
    fn check(key: &str, e: &WebhookEntry, base: &Path) -> Result<Self, String> {
        let url =
            reqwest::Url::parse(&e.url).map_err(|err| format!("{key}.url: not a URL ({err})"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(format!(
                "{key}.url: must be an https:// (or http://) URL with a host"
            ));
        }
        let name = match &e.name {
            Some(name) => name.clone(),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{key}.name: {name:?} must be 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'"
            ));
        }
        let format = match e.format.as_deref() {
            None | Some("standard") => Format::Standard,
            Some("slack") => Format::Slack,
            Some(other) => {
                return Err(format!(
                    "{key}.format: {other:?}: use \"standard\" or \"slack\""
                ))
            }
        };
        let secrets = match &e.secret_file {
            Some(file) => read_secrets(&format!("{key}.secret_file"), &base.join(file))?,
            None if format == Format::Standard => {
                return Err(format!(
                    "{key}.secret_file: required for format \"standard\" (a file holding \
                     whsec_ + base64, see README \"Webhooks\")"
                ))
            }
            None => Vec::new(),
        };
        let events = e
            .events
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, raw)| EventPattern::parse(&format!("{key}.events[{j}]"), raw))
            .collect::<Result<Vec<_>, _>>()?;
        if e.events.as_ref().is_some_and(|v| v.is_empty()) {
            return Err(format!(
                "{key}.events: empty (the endpoint would get nothing); leave it out for every event"
            ));
        }
        let approval_types = e
            .approval_types
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, raw)| {
                TypePattern::parse(&format!("{key}.approval_types[{j}]"), raw)
                    .map_err(|err| err.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if e.approval_types.as_ref().is_some_and(|v| v.is_empty()) {
            return Err(format!(
                "{key}.approval_types: empty (the endpoint would get nothing); leave it out for every type"
            ));
        }
        let inbox_url = match &e.inbox_url {
            Some(raw) => {
                let parsed = reqwest::Url::parse(raw)
                    .map_err(|err| format!("{key}.inbox_url: not a URL ({err})"))?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(format!(
                        "{key}.inbox_url: must be an https:// or http:// URL"
                    ));
                }
                Some(raw.clone())
            }
            None => None,
        };
        Ok(Self {
            name,
            url,
            secrets,
            events,
            approval_types,
            format,
            timeout: duration(
                &format!("{key}.timeout"),
                e.timeout.as_deref(),
                DEFAULT_TIMEOUT,
                MAX_TIMEOUT,
            )?,
            retry_for: duration(
                &format!("{key}.retry_for"),
                e.retry_for.as_deref(),
                DEFAULT_RETRY_FOR,
                MAX_RETRY_FOR,
            )?,
            inbox_url,
        })
    }

    /// Whether this endpoint gets `event` about an approval of this type.
    pub fn wants(&self, event: super::event::WebhookEvent, approval_type: &str) -> bool {
        (self.events.is_empty() || self.events.iter().any(|p| p.matches(event)))
            && (self.approval_types.is_empty()
                || self.approval_types.iter().any(|p| p.matches(approval_type)))
    }
}

/// The secrets in `path`: one `whsec_<base64>` per non-empty line. Errors
/// say which line, never what it holds.
fn read_secrets(key: &str, path: &Path) -> Result<Vec<Secret>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let mut secrets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bytes = line
            .strip_prefix("whsec_")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .filter(|k| (24..=64).contains(&k.len()))
            .ok_or_else(|| {
                format!(
                    "{key}: {} line {} is not a Standard Webhooks secret: write whsec_ followed \
                     by the base64 of 24 to 64 random bytes",
                    path.display(),
                    n + 1
                )
            })?;
        secrets.push(Secret(bytes));
    }
    if secrets.is_empty() {
        return Err(format!("{key}: {} holds no secret", path.display()));
    }
    if secrets.len() > MAX_SECRETS {
        return Err(format!(
            "{key}: {} holds {} secrets; at most {MAX_SECRETS}",
            path.display(),
            secrets.len()
        ));
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> WebhookEntry {
        toml::from_str(toml_text).expect("entry parses")
    }

    fn secret_dir(content: &str) -> tempdir::Dir {
        tempdir::Dir::with_file("whsec", content)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn with_file(name: &str, content: &str) -> Self {
                let dir = std::env::temp_dir()
                    .join(format!("approvald-webhooks-{}", uuid::Uuid::now_v7()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                std::fs::write(dir.join(name), content).expect("write");
                Dir(dir)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_complete_entry_is_checked_into_an_endpoint() {
        let dir = secret_dir(SECRET);
        let e = entry(
            r#"
            url = "https://hooks.example.com/approvals"
            secret_file = "whsec"
            events = ["approval.created", "approval.reminder.2"]
            approval_types = ["deploy:*"]
            timeout = "5s"
            retry_for = "1h"
            "#,
        );
        let endpoints = Endpoints::from_entries(&[e], &dir.0).expect("valid");
        let ep = &endpoints.list[0];
        assert_eq!(ep.name, "hooks.example.com");
        assert_eq!(ep.timeout, Duration::from_secs(5));
        assert_eq!(ep.retry_for, Duration::from_secs(3600));
        assert_eq!(ep.secrets.len(), 1);
        assert!(ep.wants(super::super::event::WebhookEvent::Created, "deploy:prod"));
        assert!(!ep.wants(super::super::event::WebhookEvent::Created, "db:drop"));
        assert!(!ep.wants(super::super::event::WebhookEvent::Approved, "deploy:prod"));
        assert!(ep.wants(
            super::super::event::WebhookEvent::Reminder(2),
            "deploy:prod"
        ));
        assert!(!ep.wants(
            super::super::event::WebhookEvent::Reminder(1),
            "deploy:prod"
        ));
    }

    #[test]
    fn every_mistake_is_refused_naming_its_key() {
        let dir = secret_dir(SECRET);
        let cases = [
            (r#"url = "ftp://x/""#, "webhooks[0].url"),
            (r#"url = "not a url""#, "webhooks[0].url"),
            (r#"url = "https://x/""#, "webhooks[0].secret_file: required"),
            (
                r#"url = "https://x/"
                secret_file = "missing""#,
                "webhooks[0].secret_file: cannot read",
            ),
            (
                r#"url = "https://x/"
                format = "teams""#,
                "webhooks[0].format",
            ),
            (
                r#"url = "https://x/"
                format = "slack"
                events = ["approval.maybe"]"#,
                "webhooks[0].events[0]",
            ),
            (
                r#"url = "https://x/"
                format = "slack"
                approval_types = ["a*b*"]"#,
                "webhooks[0].approval_types[0]",
            ),
            (
                r#"url = "https://x/"
                format = "slack"
                timeout = "2m""#,
                "webhooks[0].timeout",
            ),
            (
                r#"url = "https://x/"
                format = "slack"
                retry_for = "soon""#,
                "webhooks[0].retry_for",
            ),
            (
                r#"url = "https://x/"
                format = "slack"
                name = "has space""#,
                "webhooks[0].name",
            ),
        ];
        for (text, want) in cases {
            let err = Endpoints::from_entries(&[entry(text)], &dir.0).expect_err(text);
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_malformed_secret_is_refused_without_showing_it() {
        let dir = secret_dir("whsec_not*base64*at*all\n");
        let e = entry(
            r#"url = "https://x/"
            secret_file = "whsec""#,
        );
        let err = Endpoints::from_entries(&[e], &dir.0).expect_err("bad secret");
        assert!(
            err.contains("line 1 is not a Standard Webhooks secret"),
            "{err}"
        );
        assert!(!err.contains("not*base64"), "the secret leaked: {err}");
    }

    #[test]
    fn two_endpoints_with_one_name_are_refused() {
        let dir = secret_dir(SECRET);
        let e = entry(
            r#"url = "https://x/a"
            secret_file = "whsec""#,
        );
        let err = Endpoints::from_entries(&[e.clone(), e], &dir.0).expect_err("duplicate");
        assert!(err.starts_with("webhooks[1].name"), "{err}");
    }
}
