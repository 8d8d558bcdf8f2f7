//! A `.env` line's `${NAME}` references, kept through `--fix`'s URL rewrite. python-dotenv (the
//! framework's loader) expands them when the app loads the file, so the checks ran on the
//! expanded URL; writing that URL back would put what the references expand to into the file
//! (a password the shell holds, in a file that did not hold it) and cut the line off from the
//! variables it follows. The rewrite is done on the line as written instead, each reference
//! standing in for itself, and kept only when the file then gives the app the URL that was
//! checked; otherwise the change is left to a person, who is told why.

use crate::drivers::SecretUrl;
use crate::envfile;

/// What becomes of the references of the rewritten line.
pub enum Kept {
    /// The line has none: the rewritten URL is written as it is.
    NoReferences,
    /// The rewritten URL as the line writes it, each reference where it stands.
    Template(SecretUrl),
    /// They cannot be kept: why, for the person who changes the line by hand.
    Lost(String),
}

/// `rewritten` (what `fix` makes of `expanded`, the URL `key` gives the app) as the line of
/// `path` should write it. `fix` is the rewrite itself, run again on the line with a token in
/// place of each reference.
pub fn keep(
    path: &std::path::Path,
    key: &str,
    expanded: &str,
    rewritten: &SecretUrl,
    fix: &dyn Fn(&str) -> Option<SecretUrl>,
) -> Kept {
    let Some(template) = envfile::read_file(path)
        .ok()
        .and_then(|bytes| envfile::python_dotenv_template(&bytes, key))
    else {
        return Kept::NoReferences;
    };
    let references = envfile::py_references(&template.written);
    if references.is_empty() {
        return Kept::NoReferences;
    }
    let written: Vec<&str> = references
        .iter()
        .map(|r| &template.written[r.range.clone()])
        .collect();
    let lost = || {
        let named = written.join(", ");
        let (them, they_stand, they_expand) = if written.len() == 1 {
            ("it", "it stands", "it expands")
        } else {
            ("them", "they stand", "they expand")
        };
        Kept::Lost(format!(
            "{key} takes {named} from the shell or the lines above (python-dotenv expands {them} when the app loads the file), and the rewritten URL cannot keep {them} where {they_stand}: writing it would put what {they_expand} to, a password perhaps, into the file. Change the line by hand as the hint says, keeping {named}"
        ))
    };
    if template.expand(&template.written) != expanded {
        return lost();
    }
    // Letters and digits stay as they are in every part of a URL; a base the line does not
    // already hold, and the closing `x`, keep one token from being read inside another.
    let mut base = String::from("aksararef");
    while template.written.contains(&base) {
        base.push('r');
    }
    let token = |i: usize| format!("{base}{i}x");
    let mut with_tokens = String::new();
    let mut copied = 0;
    for (i, reference) in references.iter().enumerate() {
        with_tokens.push_str(&template.written[copied..reference.range.start]);
        with_tokens.push_str(&token(i));
        copied = reference.range.end;
    }
    with_tokens.push_str(&template.written[copied..]);
    let Some(tokened) = fix(&with_tokens) else {
        return lost();
    };
    let back = |text: &str| {
        let mut text = text.to_owned();
        for (i, reference) in written.iter().enumerate() {
            text = text.replace(&token(i), reference);
        }
        text
    };
    let secret = back(tokened.expose());
    // What the file then gives the app must be the URL the fix was worked out for.
    if template.expand(&secret) != rewritten.expose() {
        return lost();
    }
    // Shown as written when its password is references alone (nothing secret in the text),
    // else with the password redacted like any other URL.
    let password_is_references = crate::drivers::meaning(tokened.expose())
        .ok()
        .and_then(|conn| conn.password)
        .is_none_or(|password| {
            let mut rest = password.expose().to_owned();
            for i in 0..written.len() {
                rest = rest.replace(&token(i), "");
            }
            rest.is_empty()
        });
    let shown = if password_is_references {
        secret.clone()
    } else {
        back(&tokened.to_string())
    };
    Kept::Template(SecretUrl::new(secret, shown))
}
