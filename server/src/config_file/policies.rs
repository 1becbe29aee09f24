//! The `[[policies]]` entries of the configuration file, as operators write
//! them, and their checks. Every value keeps its place in the file
//! (`Spanned`), so an error points at the line to fix.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::FileError;
use crate::domain::{
    ApprovalPolicy, OnTimeout, PolicyRule, TypePattern, Voter, MAX_REMINDERS,
    MAX_REQUIRED_APPROVALS, MAX_VOTERS,
};

/// One `[[policies]]` entry. See README, "Policies".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// Type patterns this policy covers (`deploy:*`); the most specific
    /// pattern of all policies wins.
    pub approval_types: Spanned<Vec<Spanned<String>>>,
    /// The older name of `allow_requester_vote`.
    #[serde(default)]
    pub allow_self_approval: bool,
    /// Distinct approvals needed (default 1).
    pub required_approvals: Option<Spanned<i64>>,
    /// Who may vote: principals and `role:<name>`; empty: approvers of the
    /// type (roles `approver`, `approver:<pattern>`, `admin`).
    #[serde(default)]
    pub voters: Vec<Spanned<String>>,
    /// Whether the requester may vote on its own approval (default false).
    #[serde(default)]
    pub allow_requester_vote: bool,
    /// `reject` (default) or `approve`.
    pub on_timeout: Option<Spanned<String>>,
    /// Durations like "90s", "10m", "1h".
    pub default_timeout: Option<Spanned<String>>,
    pub max_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub remind_after: Vec<Spanned<String>>,
}

fn duration(key: &str, raw: &Spanned<String>) -> Result<Duration, FileError> {
    let d = humantime::parse_duration(raw.get_ref()).map_err(|e| {
        FileError::at(
            raw.span(),
            key,
            format!(
                "{:?} is not a duration like \"90s\", \"10m\" or \"1h\": {e}",
                raw.get_ref()
            ),
        )
    })?;
    if d.is_zero() {
        return Err(FileError::at(raw.span(), key, "must be greater than zero"));
    }
    Ok(d)
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl PolicyEntry {
    /// The validated rule of `policies[index]`. `max_timeout` is the
    /// server's ceiling (--max-timeout), which no policy may pass.
    pub fn to_rule(
        &self,
        index: usize,
        whole: Range<usize>,
        max_timeout: Duration,
    ) -> Result<PolicyRule, FileError> {
        let key = |name: &str| format!("policies[{index}].{name}");
        let types = self.approval_types.get_ref();
        if types.is_empty() {
            return Err(FileError::at(
                self.approval_types.span(),
                &key("approval_types"),
                "must list at least one type pattern (e.g. \"deploy:*\")",
            ));
        }
        let patterns = types
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let k = key(&format!("approval_types[{j}]"));
                TypePattern::parse(&k, p.get_ref()).map_err(|e| FileError::domain(p.span(), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let required = match &self.required_approvals {
            None => 1,
            Some(m) => match u32::try_from(*m.get_ref()) {
                Ok(n) if (1..=MAX_REQUIRED_APPROVALS).contains(&n) => n,
                _ => {
                    return Err(FileError::at(
                        m.span(),
                        &key("required_approvals"),
                        format!(
                            "{} is out of range: between 1 and {MAX_REQUIRED_APPROVALS}",
                            m.get_ref()
                        ),
                    ))
                }
            },
        };
        if self.voters.len() > MAX_VOTERS {
            return Err(FileError::at(
                whole,
                &key("voters"),
                format!("lists {} voters; at most {MAX_VOTERS}", self.voters.len()),
            ));
        }
        let mut voters: Vec<Voter> = Vec::new();
        for (j, v) in self.voters.iter().enumerate() {
            let voter = Voter::parse(&key(&format!("voters[{j}]")), v.get_ref())
                .map_err(|e| FileError::domain(v.span(), e))?;
            if !voters.contains(&voter) {
                voters.push(voter);
            }
        }
        let only_principals =
            !voters.is_empty() && voters.iter().all(|v| matches!(v, Voter::Principal(_)));
        if only_principals && (voters.len() as u32) < required {
            let span = self
                .required_approvals
                .as_ref()
                .map_or(whole.clone(), |m| m.span());
            return Err(FileError::at(
                span,
                &key("required_approvals"),
                format!(
                    "needs {required} distinct approvals but voters lists only {} principals: no approval could ever be approved",
                    voters.len()
                ),
            ));
        }
        let on_timeout = match &self.on_timeout {
            None => OnTimeout::Reject,
            Some(raw) => OnTimeout::parse(&key("on_timeout"), raw.get_ref())
                .map_err(|e| FileError::domain(raw.span(), e))?,
        };
        let policy_max = self
            .max_timeout
            .as_ref()
            .map(|raw| {
                let d = duration(&key("max_timeout"), raw)?;
                if d > max_timeout {
                    return Err(FileError::at(
                        raw.span(),
                        &key("max_timeout"),
                        format!(
                            "{} is longer than the server's --max-timeout ({})",
                            show(d),
                            show(max_timeout)
                        ),
                    ));
                }
                Ok(d)
            })
            .transpose()?;
        let ceiling = policy_max.unwrap_or(max_timeout);
        let default_timeout = self
            .default_timeout
            .as_ref()
            .map(|raw| {
                let d = duration(&key("default_timeout"), raw)?;
                if d > ceiling {
                    return Err(FileError::at(
                        raw.span(),
                        &key("default_timeout"),
                        format!(
                            "{} is longer than the maximum timeout ({})",
                            show(d),
                            show(ceiling)
                        ),
                    ));
                }
                Ok(d)
            })
            .transpose()?;
        if self.remind_after.len() > MAX_REMINDERS {
            return Err(FileError::at(
                whole,
                &key("remind_after"),
                format!(
                    "lists {} reminders; at most {MAX_REMINDERS}",
                    self.remind_after.len()
                ),
            ));
        }
        let mut remind_after: Vec<Duration> = Vec::new();
        for (j, raw) in self.remind_after.iter().enumerate() {
            let k = key(&format!("remind_after[{j}]"));
            let d = duration(&k, raw)?;
            if remind_after.last().is_some_and(|prev| d <= *prev) {
                return Err(FileError::at(
                    raw.span(),
                    &k,
                    "reminders must come in increasing order, each later than the one before",
                ));
            }
            if d >= ceiling {
                return Err(FileError::at(
                    raw.span(),
                    &k,
                    format!(
                        "{} is not before the maximum timeout ({}): it could never be sent",
                        show(d),
                        show(ceiling)
                    ),
                ));
            }
            remind_after.push(d);
        }
        Ok(PolicyRule {
            patterns,
            policy: ApprovalPolicy {
                name: String::new(),
                required_approvals: required,
                voters,
                allow_requester_vote: self.allow_requester_vote || self.allow_self_approval,
                on_timeout,
                remind_after,
            },
            default_timeout,
            max_timeout: policy_max,
        })
    }
}
