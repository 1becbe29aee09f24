//! The validated fields ("parse, don't validate"): each constructor accepts
//! exactly the documented values, and every refusal names its field.

use std::time::Duration;

use super::field_of;
use crate::domain::{
    AgentId, ApprovalId, ApprovalType, Context, DomainError, IdempotencyKey, Labels, Limits,
    Millis, Principal, Reason, Timeout, TypePattern,
};

/// Whether `parsed` was accepted; a refusal must name `field`.
fn accepted<T>(parsed: Result<T, DomainError>, field: &str) -> bool {
    match parsed {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(field_of(e), field);
            false
        }
    }
}

#[test]
fn an_approval_id_is_a_uuidv7_in_canonical_lowercase() {
    let generated = ApprovalId::generate_at(Millis::now());
    let upper = generated.as_str().to_uppercase();
    let accepted = [
        (generated.as_str(), generated.as_str()),
        (upper.as_str(), generated.as_str()),
    ];
    for (raw, canonical) in accepted {
        let id = ApprovalId::parse("id", raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(id.as_str(), canonical);
    }
    let refused = [
        ("empty", ""),
        ("not a uuid", "not-a-uuid"),
        ("a UUIDv1", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        ("a UUIDv4", "9f0c0f5e-6f4b-4c43-9a57-2f1f5d6b8e0a"),
        ("trailing text", &format!("{generated}x")),
    ];
    for (name, raw) in refused {
        let err = ApprovalId::parse("id", raw).expect_err(name);
        assert_eq!(field_of(err), "id", "{name}");
    }
}

#[test]
fn ids_sort_by_the_time_they_were_generated_at() {
    // Later than any id this process made so far: the shared counter keeps
    // ids monotonic, so an earlier time would sort after those.
    let t = Millis::now().plus(Duration::from_secs(86_400));
    let ids: Vec<ApprovalId> = [t, t, Millis(t.0 + 1), Millis(t.0 + 1000)]
        .into_iter()
        .map(ApprovalId::generate_at)
        .collect();
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
    }
    // lower_bound_at is below every id generated at that time or later.
    for id in &ids {
        assert!(
            ApprovalId::lower_bound_at(t).as_str() <= id.as_str(),
            "{id}"
        );
    }
    assert!(ApprovalId::lower_bound_at(Millis(t.0 + 1)).as_str() > ids[0].as_str());
}

#[test]
fn an_approval_type_is_a_required_name_of_at_most_128_safe_characters() {
    let longest = "a".repeat(Limits::MAX_NAME_CHARS);
    let too_long = "a".repeat(Limits::MAX_NAME_CHARS + 1);
    let cases = [
        ("a plain name", "deploy", true),
        ("with . _ - : /", "deploy:prod/eu-1_a.b", true),
        ("at the length limit", &longest, true),
        ("empty", "", false),
        ("over the length limit", &too_long, false),
        ("a space", "deploy prod", false),
        ("a star (only patterns have one)", "deploy:*", false),
        ("non-ASCII", "déploy", false),
        ("a control character", "deploy\u{1b}", false),
    ];
    for (name, raw, ok) in cases {
        let parsed = ApprovalType::parse("approval_type", raw);
        assert_eq!(accepted(parsed, "approval_type"), ok, "{name}");
    }
}

#[test]
fn a_type_pattern_is_exact_or_a_prefix_ending_in_one_star() {
    let cases = [
        ("deploy", "deploy", true),
        ("deploy", "deploy:prod", false),
        ("deploy:*", "deploy:prod", true),
        ("deploy:*", "deploy:", true),
        ("deploy:*", "deploy", false),
        ("deploy:*", "build:deploy:x", false),
        ("*", "anything", true),
    ];
    for (pattern, approval_type, want) in cases {
        let p = TypePattern::parse("approval_types", pattern).unwrap();
        assert_eq!(
            p.matches(approval_type),
            want,
            "{pattern} ~ {approval_type}"
        );
    }
    for bad in ["", "**", "deploy:*:*", "a b*"] {
        let err = TypePattern::parse("approval_types", bad).expect_err(bad);
        assert_eq!(field_of(err), "approval_types", "{bad:?}");
    }
}

#[test]
fn a_star_anywhere_but_the_end_is_refused_saying_where_it_may_go() {
    for bad in ["de*ploy", "*deploy", "deploy:*:prod", "*:prod"] {
        match TypePattern::parse("approval_types", bad) {
            Err(DomainError::InvalidArgument { field, message }) => {
                assert_eq!(field, "approval_types", "{bad}");
                assert!(
                    message.contains("only allowed once, at the end"),
                    "{bad}: {message}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn identifiers_take_any_script_but_nothing_invisible_or_that_drives_a_terminal() {
    let cases = [
        ("ASCII", "agent-7", true),
        ("another script", "エージェント", true),
        ("an e-mail", "alice@example.com", true),
        ("escape", "agent\u{1b}[31m", false),
        ("newline", "agent\n7", false),
        ("NUL", "agent\0", false),
        ("zero-width space", "age\u{200b}nt", false),
        ("bidi override", "\u{202e}tnega", false),
        ("over 128 characters", &"x".repeat(129), false),
    ];
    for (name, raw, ok) in cases {
        let verdicts = [
            accepted(AgentId::parse("agent_id", raw), "agent_id"),
            accepted(Principal::parse("responder", raw), "responder"),
            accepted(
                IdempotencyKey::parse("idempotency_key", raw),
                "idempotency_key",
            ),
        ];
        assert_eq!(
            verdicts, [ok; 3],
            "{name}: agent_id, responder, idempotency_key"
        );
    }
}

#[test]
fn an_empty_agent_id_or_key_is_absent_but_a_principal_is_required() {
    assert_eq!(AgentId::parse("agent_id", "").unwrap().as_str(), "");
    assert!(IdempotencyKey::parse("idempotency_key", "")
        .unwrap()
        .is_none());
    let err = Principal::parse("responder", "").unwrap_err();
    assert_eq!(field_of(err), "responder");
}

fn duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

#[test]
fn a_timeout_is_the_default_when_absent_and_otherwise_from_1ms_to_the_maximum() {
    let limits = Limits {
        default_timeout: Duration::from_secs(300),
        max_timeout: Duration::from_secs(3600),
        ..Limits::default()
    };
    let accepted = [
        ("absent", None, Duration::from_secs(300), false),
        (
            "1 ms",
            duration(0, 1_000_000),
            Duration::from_millis(1),
            true,
        ),
        (
            "the maximum",
            duration(3600, 0),
            Duration::from_secs(3600),
            true,
        ),
    ];
    for (name, raw, want, requested) in accepted {
        let t = Timeout::parse("timeout", raw, &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.get(), want, "{name}");
        assert_eq!(
            t.as_requested(),
            requested.then_some(want),
            "{name}: as requested"
        );
    }
    let refused = [
        ("zero", duration(0, 0)),
        ("under 1 ms", duration(0, 999_999)),
        ("negative seconds", duration(-1, 0)),
        ("negative nanos", duration(1, -1)),
        ("nanos of a whole second", duration(1, 1_000_000_000)),
        ("a nanosecond over the maximum", duration(3600, 1)),
        ("far over the maximum", duration(i64::MAX, 0)),
    ];
    for (name, raw) in refused {
        let err = Timeout::parse("timeout", raw, &limits).expect_err(name);
        assert_eq!(field_of(err), "timeout", "{name}");
    }
}

#[test]
fn a_reason_is_text_for_people_within_its_byte_bound() {
    let limits = Limits {
        max_reason_bytes: 16,
        ..Limits::default()
    };
    let cases = [
        ("empty", "", true),
        ("at the bound", "0123456789abcdef", true),
        ("lines and tabs", "one\ntwo\tthree", true),
        ("a byte over the bound", "0123456789abcdefg", false),
        ("multi-byte over the bound", "éééééééé1", false),
        ("escape", "ok\u{1b}[2J", false),
        ("bidi override", "ok\u{202e}", false),
    ];
    for (name, raw, ok) in cases {
        let parsed = Reason::parse("reason", raw, &limits).map(Reason::into_string);
        if let Ok(kept) = &parsed {
            assert_eq!(kept, raw, "{name}: kept as given");
        }
        assert_eq!(accepted(parsed, "reason"), ok, "{name}");
    }
}

#[test]
fn labels_are_bounded_in_number_and_a_bad_one_is_named_by_its_key() {
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    let ok = Labels::parse(
        "labels",
        [label("team", "payments"), label("env", "prod")],
        2,
    )
    .unwrap();
    assert_eq!(ok.into_map().len(), 2);
    let cases = [
        (
            "one over the count",
            vec![label("a", "1"), label("b", "2"), label("c", "3")],
            "labels",
        ),
        ("an empty key", vec![label("", "x")], "labels"),
        (
            "a key with a space",
            vec![label("my team", "x")],
            "labels[\"my team\"]",
        ),
        (
            "a value with an escape",
            vec![label("team", "x\u{1b}")],
            "labels[\"team\"]",
        ),
        (
            "a value over 256 characters",
            vec![label("team", &"v".repeat(257))],
            "labels[\"team\"]",
        ),
    ];
    for (name, raw, field) in cases {
        let err = Labels::parse("labels", raw, 2).expect_err(name);
        assert_eq!(field_of(err), field, "{name}");
    }
}

#[test]
fn a_context_is_bounded_in_encoded_bytes_and_holds_only_json_numbers() {
    use prost_types::value::Kind;
    let value = |kind| prost_types::Value { kind: Some(kind) };
    let context = |fields: Vec<(&str, prost_types::Value)>| prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let limits = Limits {
        max_context_bytes: 64,
        ..Limits::default()
    };
    let fits = context(vec![("n", value(Kind::NumberValue(1.5)))]);
    assert!(Context::parse("context", Some(fits), &limits).is_ok());
    assert!(
        Context::parse("context", None, &limits).is_ok(),
        "absent is empty"
    );
    let cases = [
        (
            "over the byte bound",
            context(vec![("s", value(Kind::StringValue("x".repeat(64))))]),
        ),
        (
            "NaN",
            context(vec![("n", value(Kind::NumberValue(f64::NAN)))]),
        ),
        (
            "Infinity deep inside",
            context(vec![(
                "outer",
                value(Kind::ListValue(prost_types::ListValue {
                    values: vec![value(Kind::NumberValue(f64::INFINITY))],
                })),
            )]),
        ),
    ];
    for (name, raw) in cases {
        let err = Context::parse("context", Some(raw), &limits).expect_err(name);
        assert_eq!(field_of(err), "context", "{name}");
    }
}
