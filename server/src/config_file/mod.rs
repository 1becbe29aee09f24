//! The service's configuration file (TOML, `--config`): authentication
//! (`[[tokens]]`, `[jwt]`, `[certificates]`: see SECURITY.md) and
//! `[[policies]]` (README, "Policies"). Authentication is on exactly when
//! the file has an authentication section.
//!
//! The file is re-read on SIGHUP and when it changes; a file that does not
//! load leaves the previous one in force (and the log says why). Errors
//! name the key and, where the file has one, the line and column.

mod policies;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use serde::Deserialize;

use crate::approvals::SharedPolicies;
use crate::auth::{
    AuthFile, AuthHandle, Authenticator, CertificateSection, JwtSection, TokenEntry,
};
use crate::domain::{DomainError, Policies};
use crate::webhooks::WebhookEntry;

pub use policies::PolicyEntry;

/// The file as written: every section, so that an unknown key anywhere is
/// an error. Each section is read by its owner: authentication by `auth`,
/// `[[policies]]` here, `[[webhooks]]` by `webhooks` (which reads the
/// file again on its own: `Endpoints::load`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSections {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    jwt: Option<JwtSection>,
    certificates: Option<CertificateSection>,
    #[serde(default)]
    policies: Vec<toml::Spanned<PolicyEntry>>,
    /// Parsed here for its errors (key, line, column) with the rest of the
    /// file; `webhooks` builds its endpoints from the file itself.
    #[serde(default)]
    #[allow(dead_code)]
    webhooks: Vec<WebhookEntry>,
}

/// What is wrong with a configuration file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Byte range in the file, when known.
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl FileError {
    pub fn at(span: Range<usize>, key: &str, message: impl fmt::Display) -> Self {
        Self {
            span: Some(span),
            message: format!("{key}: {message}"),
        }
    }

    fn domain(span: Range<usize>, e: DomainError) -> Self {
        Self {
            span: Some(span),
            message: e.to_string(),
        }
    }

    fn whole(message: impl fmt::Display) -> Self {
        Self {
            span: None,
            message: message.to_string(),
        }
    }

    /// `path:line:column: message` (1-based), or `path: message`.
    pub fn render(&self, path: &Path, text: &str) -> String {
        match &self.span {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                format!("{}:{line}:{column}: {}", path.display(), self.message)
            }
            None => format!("{}: {}", path.display(), self.message),
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One loaded file.
pub struct Loaded {
    /// `None` when the file has no authentication section.
    pub auth: Option<Authenticator>,
    pub policies: Policies,
}

impl Loaded {
    /// Parses and checks `text`; relative paths inside it are relative to
    /// `base`. `max_timeout` is the server's --max-timeout.
    pub fn parse(text: &str, base: &Path, max_timeout: Duration) -> Result<Self, FileError> {
        let file: FileSections = toml::from_str(text).map_err(|e| FileError {
            span: e.span(),
            message: e.message().trim_end().to_string(),
        })?;
        let mut rules = Vec::new();
        for (i, entry) in file.policies.iter().enumerate() {
            rules.push(entry.get_ref().to_rule(i, entry.span(), max_timeout)?);
        }
        let policies = Policies::new(rules).map_err(|e| {
            let span = match &e {
                DomainError::InvalidArgument { field, .. } => field
                    .strip_prefix("policies[")
                    .and_then(|rest| rest.split(']').next())
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| file.policies.get(i))
                    .map(|p| p.get_ref().approval_types.span()),
                _ => None,
            };
            FileError {
                span,
                message: e.to_string(),
            }
        })?;
        let sections = AuthFile {
            tokens: file.tokens,
            jwt: file.jwt,
            certificates: file.certificates,
        };
        let auth = match sections.is_empty() {
            false => Some(Authenticator::from_file(sections, base).map_err(FileError::whole)?),
            true => None,
        };
        Ok(Self { auth, policies })
    }

    /// Reads and checks the file at `path`; the error is rendered with the
    /// path and, where known, the line and column.
    pub fn read(path: &Path, max_timeout: Duration) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base, max_timeout).map_err(|e| e.render(path, &text))
    }
}

/// The file in force: its authentication (if it has any) and policies.
#[derive(Clone)]
pub struct ConfigHandle {
    path: PathBuf,
    max_timeout: Duration,
    auth: Option<AuthHandle>,
    policies: SharedPolicies,
}

impl ConfigHandle {
    pub fn load(path: PathBuf, max_timeout: Duration) -> Result<Self, String> {
        let loaded = Loaded::read(&path, max_timeout)?;
        Ok(Self {
            auth: loaded.auth.map(AuthHandle::new),
            policies: Arc::new(ArcSwap::from_pointee(loaded.policies)),
            path,
            max_timeout,
        })
    }

    /// Authentication, when the file turned it on.
    pub fn auth(&self) -> Option<AuthHandle> {
        self.auth.clone()
    }

    pub fn policies(&self) -> SharedPolicies {
        self.policies.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file; on any error the previous configuration stays
    /// whole. A file that would turn authentication on or off is refused:
    /// that takes a restart (listeners were checked against it).
    pub fn reload(&self) -> Result<(), String> {
        let loaded = Loaded::read(&self.path, self.max_timeout)?;
        match (&self.auth, loaded.auth) {
            (Some(handle), Some(auth)) => handle.replace(auth),
            (None, None) => {}
            (Some(_), None) => {
                return Err(format!(
                    "{}: the file no longer has an authentication section ([[tokens]], [jwt] or [certificates]); turning authentication off takes a restart",
                    self.path.display()
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{}: the file now has an authentication section; turning authentication on takes a restart",
                    self.path.display()
                ))
            }
        }
        self.policies.store(Arc::new(loaded.policies));
        Ok(())
    }
}

/// `approvald check-config FILE`: what the file configures, or exactly
/// what is wrong.
pub fn check(path: &Path, max_timeout: Duration) -> Result<String, String> {
    let loaded = Loaded::read(path, max_timeout)?;
    Ok(format!(
        "{}: valid; authentication {}, {} polic{}",
        path.display(),
        if loaded.auth.is_some() { "on" } else { "off" },
        loaded.policies.len(),
        if loaded.policies.len() == 1 {
            "y"
        } else {
            "ies"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

    fn parse(text: &str) -> Result<Loaded, String> {
        Loaded::parse(text, Path::new("."), MAX).map_err(|e| e.render(Path::new("c.toml"), text))
    }

    #[test]
    fn a_file_without_an_auth_section_configures_policies_with_auth_off() {
        let loaded = parse(
            r#"
[[policies]]
approval_types = ["deploy:production"]
required_approvals = 2
voters = ["role:sre", "alice"]
on_timeout = "approve"
default_timeout = "10m"
max_timeout = "1h"
remind_after = ["90s", "5m"]
"#,
        )
        .unwrap();
        assert!(loaded.auth.is_none());
        let applied = loaded.policies.for_type("deploy:production");
        assert_eq!(applied.policy.required_approvals, 2);
        assert_eq!(applied.default_timeout, Some(Duration::from_secs(600)));
        assert_eq!(applied.max_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(
            applied.policy.remind_after,
            vec![Duration::from_secs(90), Duration::from_secs(300)]
        );
    }

    #[test]
    fn errors_give_the_line_and_column_of_the_bad_value() {
        let cases = [
            ("[[policies]]\napproval_types = [\"a\"]\non_timeout = \"maybe\"\n", "c.toml:3:14: policies[0].on_timeout"),
            ("[[policies]]\napproval_types = [\"a\"]\nrequired_approvals = 0\n", "c.toml:3:22: policies[0].required_approvals"),
            ("[[policies]]\napproval_types = [\"a\"]\n\nremind_after = [\"5m\", \"1m\"]\n", "c.toml:4:23: policies[0].remind_after[1]"),
            ("[[policies]]\napproval_types = [\"a b\"]\n", "c.toml:2:19: policies[0].approval_types[0]"),
            ("[[policies]]\napproval_types = [\"a\", \"de*ploy\"]\n", "c.toml:2:24: policies[0].approval_types[1]"),
            ("[[policies]]\napproval_types = [\"a\"]\ndefault_timeout = \"soon\"\n", "c.toml:3:19: policies[0].default_timeout"),
            ("[[policies]]\napproval_types = [\"a\"]\nvoters = [\"alice\"]\nrequired_approvals = 2\n", "c.toml:4:22: policies[0].required_approvals: needs 2"),
            ("[[policies]]\napproval_types = [\"a\"]\n[[policies]]\napproval_types = [\"b\", \"a\"]\n", "c.toml:4:18: policies[1].approval_types"),
            ("[[policies]]\napproval_types = [\"a\"]\nrequired = 2\n", "c.toml:3:1: unknown field `required`"),
            ("[[policies]\n", "c.toml:1:"),
        ];
        for (text, want) in cases {
            let got = parse(text).err().unwrap_or_default();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}..."
            );
        }
    }

    #[test]
    fn a_policy_may_not_outlast_the_servers_max_timeout() {
        let e = parse("[[policies]]\napproval_types = [\"a\"]\nmax_timeout = \"30d\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("--max-timeout"), "{e}");
    }
}
