//! One sanitiser for every text that did not come from aksara: a server's error message,
//! detail, hint and `server_version`, user and database names decoded from URLs and `.env`
//! files. Such text reaches a terminal only through [`for_terminal`] (or the [`Untrusted`]
//! newtype, whose `Display` calls it, so a call site cannot forget): every character a
//! terminal would act on is shown escaped (`\x1b`, `\n`, `\u{9b}`, `\u{202e}`), so an OSC 0/52
//! sequence, a clear-screen or a CR/LF cannot retitle the window, write the clipboard or forge
//! an `[ok] all checks passed` line, on any stream and whatever the colour mode. Each field is
//! bounded ([`FIELD_LIMIT`] bytes, UTF-8 safe) and says how much was cut. JSON output takes the
//! raw text instead ([`Untrusted::raw`], and `Serialize`): serde escapes it there and nothing
//! is lost.
//!
//! Backslashes are left alone: the point is that nothing reaches the terminal raw, not that
//! the original can be reconstructed (JSON has it), and doubling them would garble ordinary
//! messages that quote paths or SQL.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// The most bytes of one untrusted field shown on a terminal (before the cut marker).
pub const FIELD_LIMIT: usize = 2048;

/// Whether a terminal (or a pager, or a log viewer) would act on this character rather than
/// show it: C0 controls (TAB, LF, CR and ESC among them), DEL, C1 controls (U+009B is a
/// one-character CSI on terminals that take 8-bit controls), the bidirectional embeddings,
/// overrides and isolates that reorder what follows (Trojan Source, CVE-2021-42574), the
/// implicit direction marks, and the Unicode line and paragraph separators.
pub fn is_dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{2028}' | '\u{2029}')
}

/// `text` as it may be shown on a terminal: dangerous characters escaped, at most
/// [`FIELD_LIMIT`] bytes of it, then a marker saying how many bytes were cut. Borrowed when
/// nothing had to change (the common case: a plain message).
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    for_terminal_within(text, FIELD_LIMIT)
}

/// [`for_terminal`] with another bound (in bytes of output before the marker).
pub fn for_terminal_within(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit && !text.chars().any(is_dangerous) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(limit) + 40);
    for (at, c) in text.char_indices() {
        let before = out.len();
        push_escaped(&mut out, c);
        if out.len() > limit {
            out.truncate(before);
            let cut = text.len() - at;
            // Never fails: writing to a String.
            let _ = write!(out, " …[{} cut]", bytes_text(cut));
            return Cow::Owned(out);
        }
    }
    Cow::Owned(out)
}

/// Only the escaping of [`for_terminal`], without the bound: for a caller that bounds the
/// whole text itself.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    for_terminal_within(text, usize::MAX)
}

/// Whether `text` can go to a terminal as it is: no dangerous character in it.
pub fn is_clean(text: &str) -> bool {
    !text.chars().any(is_dangerous)
}

fn push_escaped(out: &mut String, c: char) {
    if !is_dangerous(c) {
        out.push(c);
        return;
    }
    // Never fail: writing to a String.
    let _ = match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    };
}

fn bytes_text(bytes: usize) -> String {
    if bytes == 1 {
        "1 byte".into()
    } else {
        format!("{bytes} bytes")
    }
}

/// Text from outside aksara (a server, a URL, a file). `Display` sanitises it with
/// [`for_terminal`]; the raw text is there for logic and JSON ([`Untrusted::raw`],
/// `Serialize`), never for a terminal.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Untrusted(String);

impl Untrusted {
    pub fn new(text: impl Into<String>) -> Self {
        Untrusted(text.into())
    }

    /// The text as received: compare it, match on it, put it in JSON; do not print it.
    pub fn raw(&self) -> &str {
        &self.0
    }

    pub fn into_raw(self) -> String {
        self.0
    }

    /// What a terminal shows (the same as `Display`).
    pub fn shown(&self) -> Cow<'_, str> {
        for_terminal(&self.0)
    }
}

impl From<String> for Untrusted {
    fn from(text: String) -> Self {
        Untrusted(text)
    }
}

impl From<&str> for Untrusted {
    fn from(text: &str) -> Self {
        Untrusted(text.to_string())
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&for_terminal(&self.0))
    }
}

/// Debug output ends up on terminals too (a panic message, a test failure): sanitised as well.
impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Untrusted(\"{}\")", for_terminal(&self.0))
    }
}

impl serde::Serialize for Untrusted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "password authentication failed for user \"app\" — ünïcode 象 \\ 'q'";
        assert!(matches!(for_terminal(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn terminal_sequences_are_shown_escaped() {
        // OSC 0 (window title), OSC 52 (clipboard), clear screen, CSI as one C1 character.
        let osc_title = "\x1b]0;pwned\x07";
        let osc_clip = "\x1b]52;c;cm0gLXJmIH4K\x1b\\";
        let clear = "\x1b[2J\x1b[H";
        assert_eq!(for_terminal(osc_title), "\\x1b]0;pwned\\x07");
        assert_eq!(for_terminal(osc_clip), "\\x1b]52;c;cm0gLXJmIH4K\\x1b\\");
        assert_eq!(for_terminal(clear), "\\x1b[2J\\x1b[H");
        assert_eq!(for_terminal("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(
            for_terminal("a\tb\rc\nd\0e\x7f"),
            "a\\tb\\rc\\nd\\x00e\\x7f"
        );
        assert_eq!(
            for_terminal("admin\u{202e}txt.exe\u{2066}x\u{2069}"),
            "admin\\u{202e}txt.exe\\u{2066}x\\u{2069}"
        );
        assert_eq!(for_terminal("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn a_forged_success_line_stays_on_the_line_it_came_in() {
        let forged = "boom\r\n[ok] all checks passed\n\x1b[1A\x1b[2K[ok] all checks passed";
        let shown = for_terminal(forged);
        assert_eq!(shown.lines().count(), 1);
        assert!(!shown.contains('\r'));
        assert!(shown.starts_with("boom\\r\\n[ok] all checks passed\\n"));
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary_and_say_how_much() {
        let text = "é".repeat(3000); // 6000 bytes
        let shown = for_terminal(&text);
        let (kept, marker) = shown.split_once(" …[").expect("a cut marker");
        assert_eq!(kept.len(), FIELD_LIMIT);
        assert_eq!(marker, format!("{} bytes cut]", 6000 - FIELD_LIMIT));
        // Escapes count against the limit and are never split.
        let shown = for_terminal_within("\x1b\x1b\x1b", 9);
        assert_eq!(shown, "\\x1b\\x1b …[1 byte cut]");
        // 10 MB costs no more than the limit to show.
        let big = "x".repeat(10 * 1024 * 1024);
        assert!(for_terminal(&big).len() < FIELD_LIMIT + 40);
    }

    #[test]
    fn untrusted_displays_sanitised_and_serialises_raw() {
        let value = Untrusted::new("16.2\n[ok] all checks passed\x1b]0;x\x07");
        assert_eq!(
            value.to_string(),
            "16.2\\n[ok] all checks passed\\x1b]0;x\\x07"
        );
        assert_eq!(format!("{value}"), value.shown());
        assert!(!format!("{value:?}").contains('\x1b'));
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            "\"16.2\\n[ok] all checks passed\\u001b]0;x\\u0007\""
        );
        assert_eq!(value.raw(), "16.2\n[ok] all checks passed\x1b]0;x\x07");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn no_output_holds_a_raw_control_character(text in any::<String>()) {
            let shown = for_terminal(&text);
            prop_assert!(is_clean(&shown));
            prop_assert!(!shown.contains('\n') && !shown.contains('\r'));
            prop_assert!(shown.len() <= FIELD_LIMIT + " …[18446744073709551615 bytes cut]".len());
        }

        #[test]
        fn mixes_of_dangerous_characters_come_out_clean(chars in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    '\x1b', '\x07', '\n', '\r', '\t', '\x7f', '\u{9b}', '\u{9d}', '\u{202e}',
                    '\u{2067}', '\u{2028}', '[', ']', ';', 'é',
                ]),
                any::<char>(),
            ],
            0..400,
        )) {
            let text: String = chars.into_iter().collect();
            let shown = for_terminal(&text);
            prop_assert!(is_clean(&shown));
            prop_assert_eq!(shown.lines().count(), usize::from(!shown.is_empty()));
        }

        #[test]
        fn forged_lines_never_start_a_line(prefix in any::<String>(), suffix in any::<String>()) {
            let text = format!("{prefix}\n[ok] all checks passed\r{suffix}");
            let shown = for_terminal(&text);
            prop_assert_eq!(shown.lines().count(), 1);
        }

        #[test]
        fn clean_short_text_is_kept_exactly(text in "[^\\x00-\\x1f\\x7f-\\x9f\u{202a}-\u{202e}\u{2066}-\u{2069}\u{200e}\u{200f}\u{061c}\u{2028}\u{2029}]{0,300}") {
            prop_assert_eq!(for_terminal(&text), text.as_str());
        }

        #[test]
        fn bounded_output_is_a_prefix_of_the_escaped_text(text in any::<String>(), limit in 0usize..64) {
            let full = escape_controls(&text).into_owned();
            let shown = for_terminal_within(&text, limit);
            let kept = shown.split(" …[").next().unwrap_or("");
            prop_assert!(full.starts_with(kept));
            prop_assert!(kept.len() <= limit);
        }
    }
}
