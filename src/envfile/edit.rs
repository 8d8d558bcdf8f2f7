//! The pure edit: new bytes with one key set, every other byte kept.

use super::parse::*;
use super::*;

/// Validate a key: `[A-Za-z_][A-Za-z0-9_]*`. (dotenvy also reads `.` in keys, but no shell
/// or PostgreSQL tool can use such a name, so aksara never writes one.)
pub fn validate_key(key: &str) -> Result<(), EnvFileError> {
    let mut chars = key.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(EnvFileError::InvalidKey {
            key: key.to_string(),
        })
    }
}

/// Characters that force double quotes: those dotenvy reads specially unquoted (blanks, `#`
/// after a blank or first, quotes, `$`, `\`), control characters, and the few that would break
/// `set -a; . ./.env` in a shell (`&`, `;`, `|`, `<`, `>`, `(`, `)`, `` ` ``, `~`), since people
/// do source their `.env`, and a URL's query string easily holds a `&`.
pub(super) fn needs_quotes(value: &str) -> bool {
    value.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '"' | '\'' | '\\' | '$' | '#' | '&' | ';' | '|' | '<' | '>' | '(' | ')'
            )
            || matches!(c, '`' | '~')
    })
}

pub(super) fn encode_value(value: &str, previous: Option<Style>) -> String {
    // In single quotes dotenvy's line splitter honours `\` but its value parser does not, and
    // there is no way to write `'`: only plain single-line text keeps that style.
    let single_ok = !value.contains(['\'', '\\', '\n', '\r']);
    let style = match previous {
        Some(Style::Double) => Style::Double,
        Some(Style::Single) if single_ok => Style::Single,
        _ if needs_quotes(value) => Style::Double,
        _ => Style::Unquoted,
    };
    match style {
        Style::Unquoted => value.to_string(),
        Style::Single => format!("'{value}'"),
        Style::Double => double_quoted(value, Dollar::Escaped),
    }
}

/// What `$` is in [`double_quoted`]: a literal, or where the loaders expand `${NAME}`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dollar {
    Escaped,
    Expands,
}

/// `value` in double quotes: `\`, `"` and a newline escaped, and `$` as `dollar` says.
fn double_quoted(value: &str, dollar: Dollar) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' if dollar == Dollar::Escaped => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            // Everything else, `\r` included, is literal inside double quotes.
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The ending most lines use, for lines we add: CRLF only when it outnumbers LF.
pub(super) fn dominant_ending(bytes: &[u8]) -> &'static [u8] {
    let lf = bytes.iter().filter(|&&b| b == b'\n').count();
    let crlf = bytes.windows(2).filter(|w| w == b"\r\n").count();
    if crlf * 2 > lf { b"\r\n" } else { b"\n" }
}

/// `bytes` plus `line`, with the newline the file lacked added first.
pub(crate) fn append_line(bytes: &[u8], line: &[u8]) -> Vec<u8> {
    let ending = dominant_ending(bytes);
    let mut out = bytes.to_vec();
    if !bytes.is_empty() && bytes != BOM && !bytes.ends_with(b"\n") {
        out.extend_from_slice(ending);
    }
    out.extend_from_slice(line);
    out.extend_from_slice(ending);
    out
}

/// Pure: return the new bytes with `key` set to `value`, and what changed.
///
/// Every other byte stays as it was: comments, order, blank lines, line endings, an `export `
/// prefix, blanks around `=`, an inline comment after the value, bytes that are not UTF-8.
/// Only the value token of each assignment that differs is rewritten, keeping its quoting
/// style when that style can hold the new value; a new assignment is appended with the
/// file's dominant line ending (after adding a final newline the file lacked).
///
/// Every assignment of `key` that differs is rewritten (see the module docs for why). An
/// assignment whose value dotenvy cannot parse, or that expands `$NAME`, counts as differing.
pub fn upsert(
    original: &[u8],
    key: &str,
    value: &str,
    on_conflict: OnConflict,
) -> Result<(Vec<u8>, Change), EnvFileError> {
    let doc = parse_for_edit(original, key, value)?;
    let mine: Vec<&RawEntry> = doc.entries.iter().filter(|e| e.key == key).collect();
    if mine.is_empty() {
        let line = format!("{key}={}", encode_value(value, None));
        return Ok((append_line(original, line.as_bytes()), Change::Added));
    }
    let differing: Vec<&RawEntry> = mine
        .into_iter()
        .filter(|e| e.expands || e.lossy || e.value.as_deref() != Some(value))
        .collect();
    let Some(first) = differing.first() else {
        return Ok((original.to_vec(), Change::Unchanged));
    };
    if on_conflict == OnConflict::Fail {
        return Err(EnvFileError::KeyConflict {
            path: None,
            key: key.to_string(),
            line: first.line,
        });
    }
    let len = original.len();
    let previous = match &first.value {
        Some(v) => v.clone(),
        None => String::from_utf8_lossy(
            &original[doc.byte(first.token.0, len)..doc.byte(first.token.1, len)],
        )
        .into_owned(),
    };

    // dotenvy's quirks are many; never hand back a file whose meaning changed beyond the key,
    // nor one dotenvy cannot load when it could load the original. Rewriting whole
    // assignments is sound by construction, so it is the fallback; an empty value is then
    // written `""` if a bare one would leave the file ending in a blank.
    let acceptable = |out: &[u8]| {
        let after = parse(out);
        means_the_same_but_key(&doc, &after, key, value) && (doc.open_end || !after.open_end)
    };
    let encode = |style| encode_value(value, Some(style));
    let mut out = rewrite(
        original,
        &doc,
        &differing,
        &encode,
        on_conflict,
        Rewrite::InPlace,
    );
    for fallback in [Rewrite::WholeLines, Rewrite::WholeLinesQuotingEmpty] {
        if acceptable(&out) {
            break;
        }
        out = rewrite(original, &doc, &differing, &encode, on_conflict, fallback);
    }
    Ok((
        out,
        Change::Replaced {
            previous: Password::new(previous),
        },
    ))
}

/// Pure: the new bytes with every assignment of `key` set to `template`, a value *as written*
/// whose `${NAME}` references the loaders expand (python-dotenv, dotenvy and a shell's `set -a;
/// . .env` alike, in double quotes), where [`upsert`] writes a literal that nothing expands.
/// Every other byte stays as it was, and every other key must mean what it meant. The caller
/// checks that the result expands to what it wants (see `commands/doctor/fix/references.rs`).
pub fn upsert_template(
    original: &[u8],
    key: &str,
    template: &str,
) -> Result<(Vec<u8>, Change), EnvFileError> {
    let doc = parse_for_edit(original, key, template)?;
    let mine: Vec<&RawEntry> = doc.entries.iter().filter(|e| e.key == key).collect();
    let Some(first) = mine.first() else {
        let line = format!("{key}={}", double_quoted(template, Dollar::Expands));
        return Ok((append_line(original, line.as_bytes()), Change::Added));
    };
    let len = original.len();
    let previous = String::from_utf8_lossy(
        &original[doc.byte(first.token.0, len)..doc.byte(first.token.1, len)],
    )
    .into_owned();
    let acceptable = |out: &[u8]| {
        let after = parse(out);
        after.unclosed_quote.is_none()
            && assignments_of(&after, key) == assignments_of(&doc, key)
            && other_keys(&after, key) == other_keys(&doc, key)
            && (doc.open_end || !after.open_end)
    };
    let encode = |_| double_quoted(template, Dollar::Expands);
    let mut out = rewrite(
        original,
        &doc,
        &mine,
        &encode,
        OnConflict::Replace,
        Rewrite::InPlace,
    );
    if !acceptable(&out) {
        out = rewrite(
            original,
            &doc,
            &mine,
            &encode,
            OnConflict::Replace,
            Rewrite::WholeLines,
        );
    }
    if !acceptable(&out) {
        return Err(EnvFileError::KeyConflict {
            path: None,
            key: key.to_string(),
            line: first.line,
        });
    }
    Ok((
        out,
        Change::Replaced {
            previous: Password::new(previous),
        },
    ))
}

/// The file parsed for setting `key` to `value`: refused when either cannot be written or the
/// file has a quote dotenvy never sees closed.
fn parse_for_edit(original: &[u8], key: &str, value: &str) -> Result<Parsed, EnvFileError> {
    validate_key(key)?;
    if value.contains('\0') {
        return Err(EnvFileError::NulInValue {
            key: key.to_string(),
        });
    }
    let doc = parse(original);
    if let Some(line) = doc.unclosed_quote {
        return Err(EnvFileError::UnclosedQuote { path: None, line });
    }
    Ok(doc)
}

/// Every assignment but `key`'s, as dotenvy reads it: what an edit of `key` must leave alone.
fn other_keys(doc: &Parsed, key: &str) -> Vec<(String, Option<String>, bool)> {
    doc.entries
        .iter()
        .filter(|e| e.key != key)
        .map(|e| (e.key.clone(), e.value.clone(), e.expands))
        .collect()
}

fn assignments_of(doc: &Parsed, key: &str) -> usize {
    doc.entries.iter().filter(|e| e.key == key).count()
}

/// How [`rewrite`] replaces a value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Rewrite {
    /// Only the value token, where dotenvy's line splitter and value parser agree on it.
    InPlace,
    /// The whole assignment from the value on.
    WholeLines,
    /// As `WholeLines`, with an empty value written as `""`.
    WholeLinesQuotingEmpty,
}

/// The new bytes: each assignment in `differing` gets `value`, either in place of its value token
/// (keeping blanks and an inline comment after it) or, with `WholeLines` or when dotenvy's line
/// splitter disagrees with its value parser on that line, as a whole new assignment.
pub(super) fn rewrite(
    original: &[u8],
    doc: &Parsed,
    differing: &[&RawEntry],
    encode: &dyn Fn(Style) -> String,
    on_conflict: OnConflict,
    how: Rewrite,
) -> Vec<u8> {
    let whole_lines = how != Rewrite::InPlace;
    let len = original.len();
    let ending = dominant_ending(original);
    let mut out = Vec::with_capacity(len + 128);
    let mut copied = 0;
    for entry in differing {
        let logical_start = doc.byte(entry.logical.0, len);
        let token_start = doc.byte(entry.token.0, len);
        let token_end = doc.byte(entry.token.1, len);
        out.extend_from_slice(&original[copied..logical_start]);
        if on_conflict == OnConflict::ReplaceKeepingOldAsComment {
            let old = &original[logical_start..doc.byte(entry.logical.1, len)];
            for (n, line) in old.split_inclusive(|&b| b == b'\n').enumerate() {
                let (text, end) = match line.strip_suffix(b"\r\n") {
                    Some(text) => (text, &b"\r\n"[..]),
                    None => match line.strip_suffix(b"\n") {
                        Some(text) => (text, &b"\n"[..]),
                        None => (line, ending),
                    },
                };
                out.extend_from_slice(if n == 0 { REPLACED_PREFIX } else { "# " }.as_bytes());
                out.extend_from_slice(text);
                out.extend_from_slice(end);
            }
        }
        out.extend_from_slice(&original[logical_start..token_start]);
        let mut encoded = encode(entry.style);
        if encoded.is_empty() && how == Rewrite::WholeLinesQuotingEmpty {
            encoded = "\"\"".into();
        }
        out.extend_from_slice(encoded.as_bytes());
        if entry.splits_cleanly && !whole_lines {
            // `KEY=#note` is an empty value and a comment; `KEY=v#note` is the value `v#note`.
            let next = doc.units.get(entry.token.1).map(|u| u.ch);
            if !encoded.is_empty() && next.is_some_and(|c| !c.is_whitespace()) {
                out.push(b' ');
            }
            copied = token_end;
        } else {
            // Keep only the line ending of the assignment's last line.
            let logical_end = doc.byte(entry.logical.1, len);
            let last = &original[token_start..logical_end];
            copied = logical_end
                - if last.ends_with(b"\r\n") {
                    2
                } else {
                    usize::from(last.ends_with(b"\n"))
                };
        }
    }
    out.extend_from_slice(&original[copied..]);
    out
}

/// `after` assigns `value` to `key` wherever `before` assigned `key`, and everything else
/// exactly as `before` did.
pub(super) fn means_the_same_but_key(
    before: &Parsed,
    after: &Parsed,
    key: &str,
    value: &str,
) -> bool {
    after.unclosed_quote.is_none()
        && assignments_of(after, key) == assignments_of(before, key)
        && after
            .entries
            .iter()
            .filter(|e| e.key == key)
            .all(|e| e.value.as_deref() == Some(value) && !e.expands && !e.lossy)
        && other_keys(before, key) == other_keys(after, key)
}
