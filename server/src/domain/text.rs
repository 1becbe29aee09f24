//! Which characters a field may hold, and how a refused value is shown back.
//!
//! Approvals end up on people's terminals and screens (`approvalctl`, web
//! inboxes), so what a caller types must not be able to drive the terminal
//! (ESC, BEL, CR, NUL...) or make text read differently than it is stored
//! (bidi overrides, zero-width characters).

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::DomainError;

/// A refused value is echoed back at most this many characters long: error
/// messages travel in a header that clients cap (8-16 KB).
pub const ECHO_CHARS: usize = 32;

/// `raw` as an error message shows it: quoted and escaped, cut to
/// `ECHO_CHARS` characters with its full length when longer.
pub fn echo(raw: &str) -> String {
    let n = raw.chars().count();
    if n <= ECHO_CHARS {
        return format!("{raw:?}");
    }
    let prefix: String = raw.chars().take(ECHO_CHARS).collect();
    format!("{prefix:?}… ({} bytes)", raw.len())
}

/// Bidi_Control characters (Unicode): they reorder how the text around them
/// is displayed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Identifiers (agent ids, principals, label values, idempotency keys):
/// no control characters at all, no format characters (Unicode `Cf`:
/// bidi controls, zero-width spaces and joiners, soft hyphens...), and no
/// line or paragraph separators, so two ids that look alike are alike.
pub fn check_identifier(field: &str, raw: &str) -> Result<(), DomainError> {
    let bad = raw.char_indices().find(|(_, c)| {
        c.is_control()
            || matches!(
                c.general_category(),
                GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
    });
    match bad {
        None => Ok(()),
        Some((at, c)) => Err(DomainError::invalid(
            field,
            format!(
                "contains {} at byte {at}; identifiers may not hold control or invisible format characters",
                describe(c)
            ),
        )),
    }
}

/// Text for people (reasons): no control characters but newline and tab,
/// and no bidi controls.
pub fn check_human_text(field: &str, raw: &str) -> Result<(), DomainError> {
    let bad = raw
        .char_indices()
        .find(|(_, c)| (c.is_control() && !matches!(c, '\n' | '\t')) || is_bidi_control(*c));
    match bad {
        None => Ok(()),
        Some((at, c)) => Err(DomainError::invalid(
            field,
            format!(
                "contains {} at byte {at}; text may hold newlines and tabs but no other control characters and no bidi controls",
                describe(c)
            ),
        )),
    }
}

fn describe(c: char) -> String {
    let kind = if c.is_control() {
        "control character"
    } else if is_bidi_control(c) {
        "bidi control"
    } else {
        "invisible format character"
    };
    format!("U+{:04X} (a {kind})", c as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_echoed_as_a_short_prefix() {
        let shown = echo(&"x".repeat(100_000));
        assert!(shown.len() < 80, "{shown}");
        assert!(shown.contains("100000 bytes"), "{shown}");
    }
}
