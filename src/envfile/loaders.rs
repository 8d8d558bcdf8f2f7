//! What the application gets for a key when its `.env` loader reads the file: python-dotenv's
//! `load_dotenv()` (Python apps, the Aksara framework's own), node's `dotenv` (`config()`), and
//! Rust's dotenvy (`dotenv()`). The loaders disagree, and the doctor must check the value the
//! app will see, not the one aksara's editor reads:
//!
//! - A variable already in the environment wins in all three by default (python-dotenv
//!   `override=False`, node `override: false`, dotenvy's `dotenv()` never overwrites).
//! - Duplicates: python-dotenv and node dotenv keep the *last* assignment; dotenvy's `dotenv()`
//!   keeps the *first* (it does not overwrite what it set itself).
//! - An unterminated quote: python-dotenv skips that line (warning "could not parse statement
//!   starting at line N") and reads on; node dotenv takes the rest of the line, opening quote
//!   included, as the value (or, when a matching quote comes later, everything up to it, across
//!   lines); dotenvy stops at that line.
//! - Spaces inside quotes are kept by all three; unquoted values are trimmed.
//!
//! Ported from the loaders' own sources: python-dotenv 1.2 `dotenv/parser.py` (`parse_binding`)
//! and `main.py` (`resolve_variables`, `set_as_environment_variables`); node dotenv 16
//! `lib/main.js` (`LINE`, `parse`, `populate`); dotenvy 0.15 through [`super::parse`], which
//! mirrors it. Pure: the file's bytes and the environment come in, data goes out.

use super::parse::parse;
use super::*;

/// A `.env` loader an application uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loader {
    PythonDotenv,
    NodeDotenv,
    Dotenvy,
}

impl Loader {
    pub const ALL: [Loader; 3] = [Loader::PythonDotenv, Loader::NodeDotenv, Loader::Dotenvy];

    pub fn name(self) -> &'static str {
        match self {
            Loader::PythonDotenv => "python-dotenv",
            Loader::NodeDotenv => "node dotenv",
            Loader::Dotenvy => "dotenvy",
        }
    }
}

impl fmt::Display for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one loader gives the application for the key. Values are usually URLs with
/// passwords: they have the redacting type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// The variable was already set in the environment, and the loader leaves it alone.
    /// `file_line` is the line the file would have given it, if any.
    FromEnvironment {
        value: Password,
        file_line: Option<usize>,
    },
    /// From the file: the assignment on `line` (1-based) wins; `lines` lists every
    /// assignment of the key, so a report can say which of several won.
    FromFile {
        value: Password,
        line: usize,
        lines: Vec<usize>,
    },
    /// The loader cannot read the assignment (or stops before it): the key stays unset.
    Unreadable { line: usize, problem: &'static str },
    /// Neither the file nor the environment sets the key.
    Unset,
}

/// What one loader reads from the file for one key, before the environment is consulted.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileValue {
    Found { value: Password, line: usize },
    Unreadable { line: usize, problem: &'static str },
    Missing,
}

/// What each of [`Loader::ALL`] gives the app for `key`, with `env` the variables already set
/// (the shell's) and used for python-dotenv's `${NAME}` expansion. `env` must answer `Some`
/// for a variable set to the empty string: all three loaders leave such a variable alone
/// (`k in os.environ`, `hasOwnProperty`, `env::var(..).is_ok()`).
pub fn what_the_app_gets(
    bytes: &[u8],
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(Loader, Loaded)> {
    Loader::ALL
        .iter()
        .map(|&loader| (loader, app_gets(loader, bytes, key, env)))
        .collect()
}

/// What python-dotenv, the framework's loader, gives the app for `key` from the file: the value
/// and its line, its `${NAME}` references expanded (from earlier lines, else the environment).
/// The shell's own value of `key` is left aside (a caller that cares looks at it itself). None
/// when the file gives nothing.
pub fn python_dotenv_value(bytes: &[u8], key: &str) -> Option<(Password, usize)> {
    let env = |name: &str| (name != key).then(|| std::env::var(name).ok()).flatten();
    match app_gets(Loader::PythonDotenv, bytes, key, &env) {
        Loaded::FromFile { value, line, .. } => Some((value, line)),
        _ => None,
    }
}

/// What `loader` gives the app for `key`.
pub fn app_gets(
    loader: Loader,
    bytes: &[u8],
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Loaded {
    let (file, lines) = match loader {
        Loader::PythonDotenv => python_dotenv(bytes, key, env),
        Loader::NodeDotenv => node_dotenv(bytes, key),
        Loader::Dotenvy => dotenvy(bytes, key),
    };
    let file_line = match &file {
        FileValue::Found { line, .. } => Some(*line),
        _ => None,
    };
    if let Some(value) = env(key) {
        return Loaded::FromEnvironment {
            value: Password::new(value),
            file_line,
        };
    }
    match file {
        FileValue::Found { value, line } => Loaded::FromFile { value, line, lines },
        FileValue::Unreadable { line, problem } => Loaded::Unreadable { line, problem },
        FileValue::Missing => Loaded::Unset,
    }
}

// ---------------------------------------------------------------------------------------------
// dotenvy 0.15 (`dotenv()`): the first assignment wins; loading stops at the first line it
// rejects.

fn dotenvy(bytes: &[u8], key: &str) -> (FileValue, Vec<usize>) {
    let doc = parse(bytes);
    let lines = doc
        .entries
        .iter()
        .filter(|e| e.key == key)
        .map(|e| e.line)
        .collect();
    for entry in &doc.entries {
        if doc.unclosed_quote.is_some_and(|open| open <= entry.line) {
            break;
        }
        match &entry.value {
            None => {
                return (
                    FileValue::Unreadable {
                        line: entry.line,
                        problem: "dotenvy stops loading at this line, which it cannot parse",
                    },
                    lines,
                );
            }
            Some(value) if entry.key == key => {
                let found = FileValue::Found {
                    value: Password::new(value.clone()),
                    line: entry.line,
                };
                return (found, lines);
            }
            Some(_) => {}
        }
    }
    match doc.unclosed_quote {
        Some(line) => (
            FileValue::Unreadable {
                line,
                problem: "dotenvy stops loading at this quote, which is never closed",
            },
            lines,
        ),
        None => (FileValue::Missing, lines),
    }
}

// ---------------------------------------------------------------------------------------------
// python-dotenv 1.2: `parse_binding` per statement, the last binding of a key wins, `${NAME}`
// and `${NAME:-default}` expanded from earlier bindings and then the environment (which wins
// with override=False).

/// Python's `\s` on `str`: Unicode whitespace plus the information separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `[^\S\r\n]`: whitespace that does not end a line.
fn py_blank(c: char) -> bool {
    py_space(c) && c != '\r' && c != '\n'
}

struct PyReader {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl PyReader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn advance_to(&mut self, end: usize) {
        let mut i = self.at;
        while i < end {
            // `\r\n` is one line break, as `_newline` matches it.
            match self.chars[i] {
                '\r' if self.chars.get(i + 1) == Some(&'\n') && i + 1 < end => {
                    self.line += 1;
                    i += 1;
                }
                '\r' | '\n' => self.line += 1,
                _ => {}
            }
            i += 1;
        }
        self.at = end;
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) -> usize {
        let start = self.at;
        let mut end = start;
        while self.chars.get(end).is_some_and(|&c| keep(c)) {
            end += 1;
        }
        self.advance_to(end);
        end - start
    }

    /// A quoted value from the opening quote on, escapes decoded as python-dotenv decodes them.
    fn quoted(&mut self, quote: char) -> Option<String> {
        let mut i = self.at + 1;
        let mut raw = String::new();
        loop {
            match *self.chars.get(i)? {
                '\\' => {
                    raw.push('\\');
                    raw.push(*self.chars.get(i + 1)?);
                    i += 2;
                }
                c if c == quote => break,
                c => {
                    raw.push(c);
                    i += 1;
                }
            }
        }
        self.advance_to(i + 1);
        Some(py_unescape(&raw, quote))
    }
}

/// `decode_escapes`: in double quotes `\\ \' \" \a \b \f \n \r \t \v`, in single quotes only
/// `\\` and `\'`; any other backslash stays.
fn py_unescape(raw: &str, quote: char) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let decoded = match (c, next) {
            ('\\', Some(e @ ('\\' | '\''))) => Some(e),
            ('\\', Some(e)) if quote == '"' => match e {
                '"' => Some('"'),
                'a' => Some('\u{7}'),
                'b' => Some('\u{8}'),
                'f' => Some('\u{c}'),
                'n' => Some('\n'),
                'r' => Some('\r'),
                't' => Some('\t'),
                'v' => Some('\u{b}'),
                _ => None,
            },
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars.next();
            }
            None => out.push(c),
        }
    }
    out
}

/// A statement python-dotenv cannot parse: where it starts, and its key when that much parsed.
struct PyError {
    line: usize,
    key: Option<String>,
}

/// One statement: `Ok(Some((line, key, value)))`, `Ok(None)` for a comment or blank, `Err` for
/// a statement python-dotenv cannot parse (it then skips the rest of that line).
fn py_binding(r: &mut PyReader) -> Result<Option<(usize, String, Option<String>)>, PyError> {
    r.skip_while(py_space);
    if r.peek().is_none() {
        return Ok(None);
    }
    let line = r.line;
    let fail = |key: Option<&String>| PyError {
        line,
        key: key.cloned(),
    };
    // `(?:export[^\S\r\n]+)?`
    let rest: String = r.chars[r.at..].iter().take(7).collect();
    if rest.starts_with("export") && rest.chars().nth(6).is_some_and(py_blank) {
        r.advance_to(r.at + 6);
        r.skip_while(py_blank);
    }
    let key = match r.peek() {
        Some('#') => None,
        Some('\'') => {
            let end = r.chars[r.at + 1..].iter().position(|&c| c == '\'');
            match end {
                Some(0) | None => return Err(fail(None)),
                Some(n) => {
                    let key: String = r.chars[r.at + 1..r.at + 1 + n].iter().collect();
                    r.advance_to(r.at + n + 2);
                    Some(key)
                }
            }
        }
        _ => {
            let start = r.at;
            if r.skip_while(|c| c != '=' && c != '#' && !py_space(c)) == 0 {
                return Err(fail(None));
            }
            Some(r.chars[start..r.at].iter().collect())
        }
    };
    r.skip_while(py_blank);
    let mut value = None;
    if r.peek() == Some('=') {
        r.advance_to(r.at + 1);
        let blanks = r.skip_while(py_blank);
        value = Some(if blanks > 0 && r.peek() == Some('#') {
            String::new()
        } else {
            match r.peek() {
                Some(q @ ('\'' | '"')) => r.quoted(q).ok_or_else(|| fail(key.as_ref()))?,
                None | Some('\n' | '\r') => String::new(),
                Some(_) => {
                    let start = r.at;
                    r.skip_while(|c| c != '\r' && c != '\n');
                    py_unquoted(&r.chars[start..r.at])
                }
            }
        });
    }
    // `_comment` then `_end_of_line`.
    r.skip_while(py_blank);
    if r.peek() == Some('#') {
        r.skip_while(|c| c != '\r' && c != '\n');
    }
    match r.peek() {
        None => {}
        Some('\r' | '\n') => {
            let end = r.at
                + if r.chars[r.at..].starts_with(&['\r', '\n']) {
                    2
                } else {
                    1
                };
            r.advance_to(end);
        }
        Some(_) => return Err(fail(key.as_ref())),
    }
    Ok(key.map(|key| (line, key, value)))
}

/// `re.sub(r"\s+#.*", "", part).rstrip()`.
fn py_unquoted(part: &[char]) -> String {
    let cut = (1..part.len())
        .find(|&i| part[i] == '#' && py_space(part[i - 1]))
        .map(|i| {
            let mut start = i;
            while start > 0 && py_space(part[start - 1]) {
                start -= 1;
            }
            start
        })
        .unwrap_or(part.len());
    let text: String = part[..cut].iter().collect();
    text.trim_end_matches(py_space).to_owned()
}

/// One `${NAME}` or `${NAME:-default}` of a value, as python-dotenv's `_posix_variable` regex
/// finds it: `range` is its text in the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyReference {
    pub range: std::ops::Range<usize>,
    pub name: String,
    pub default: String,
}

/// The references python-dotenv expands in `value`, in order. `${` without a closing `}`, and a
/// name with a colon that does not start `:-`, are no references: they stay as written.
pub fn py_references(value: &str) -> Vec<PyReference> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = value[at..].find("${").map(|i| at + i) {
        let Some(len) = value[start + 2..].find('}') else {
            break;
        };
        let inner = &value[start + 2..start + 2 + len];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        let end = start + 3 + len;
        // `[^\}:]*` then `:-`: any other colon makes it no variable at all.
        if !name.contains(':') {
            found.push(PyReference {
                range: start..end,
                name: name.to_owned(),
                default: default.to_owned(),
            });
        }
        at = end;
    }
    found
}

/// `${NAME}` and `${NAME:-default}` from `earlier` bindings, the environment winning.
fn py_expand(
    value: &str,
    earlier: &[(String, Option<String>)],
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let lookup = |name: &str| {
        env(name).or_else(|| {
            earlier
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        })
    };
    let mut out = String::new();
    let mut copied = 0;
    for reference in py_references(value) {
        out.push_str(&value[copied..reference.range.start]);
        out.push_str(&lookup(&reference.name).unwrap_or(reference.default));
        copied = reference.range.end;
    }
    out.push_str(&value[copied..]);
    out
}

/// The binding python-dotenv keeps for a key, as written, with what its references expand
/// from: a rewrite of the value can keep `${NAME}` where it stands instead of writing what
/// it expands to (a password from the shell would otherwise land in the file).
pub struct PythonDotenvTemplate {
    /// The value before expansion.
    pub written: String,
    pub line: usize,
    earlier: Vec<(String, Option<String>)>,
    key: String,
}

impl PythonDotenvTemplate {
    /// `text` expanded as python-dotenv would expand it on this binding's line (the shell's
    /// variables first, then the lines above).
    pub fn expand(&self, text: &str) -> String {
        let env = |name: &str| {
            (name != self.key)
                .then(|| std::env::var(name).ok())
                .flatten()
        };
        py_expand(text, &self.earlier, &env)
    }
}

/// [`PythonDotenvTemplate`] of the binding python-dotenv keeps for `key`; None when the file has
/// none it can read.
pub fn python_dotenv_template(bytes: &[u8], key: &str) -> Option<PythonDotenvTemplate> {
    let env = |name: &str| (name != key).then(|| std::env::var(name).ok()).flatten();
    let (found, _, template) = python_dotenv_bindings(bytes, key, &env);
    match found {
        FileValue::Found { .. } => template,
        _ => None,
    }
}

fn python_dotenv(
    bytes: &[u8],
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (FileValue, Vec<usize>) {
    let (found, lines, _) = python_dotenv_bindings(bytes, key, env);
    (found, lines)
}

fn python_dotenv_bindings(
    bytes: &[u8],
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (FileValue, Vec<usize>, Option<PythonDotenvTemplate>) {
    // `open(..., encoding="utf-8")`: a file that is not UTF-8 raises before anything loads.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (
            FileValue::Unreadable {
                line: 1,
                problem: "python-dotenv cannot decode the file as UTF-8 and loads nothing",
            },
            Vec::new(),
            None,
        );
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = PyReader {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
    };
    let mut bindings: Vec<(String, Option<String>)> = Vec::new();
    let mut found = FileValue::Missing;
    let mut lines = Vec::new();
    let mut template = None;
    while r.at < r.chars.len() {
        match py_binding(&mut r) {
            Ok(Some((line, name, value))) => {
                if name == key {
                    template = value.as_ref().map(|written| PythonDotenvTemplate {
                        written: written.clone(),
                        line,
                        earlier: bindings.clone(),
                        key: key.to_owned(),
                    });
                }
                let value = value.map(|v| py_expand(&v, &bindings, env));
                if name == key {
                    lines.push(line);
                    found = match &value {
                        Some(v) => FileValue::Found {
                            value: Password::new(v.clone()),
                            line,
                        },
                        // `KEY` alone binds None, which `load_dotenv` then does not set.
                        None => FileValue::Missing,
                    };
                }
                bindings.push((name, value));
            }
            Ok(None) => {}
            Err(error) => {
                // `_rest_of_line` from where parsing stopped.
                r.skip_while(|c| c != '\r' && c != '\n');
                if r.peek().is_some() {
                    let crlf = r.chars[r.at..].starts_with(&['\r', '\n']);
                    r.advance_to(r.at + if crlf { 2 } else { 1 });
                }
                let mine = error.key.as_deref() == Some(key);
                if mine && !matches!(found, FileValue::Found { .. }) {
                    found = FileValue::Unreadable {
                        line: error.line,
                        problem: "python-dotenv cannot parse the statement starting at this line and skips it",
                    };
                }
            }
        }
    }
    (found, lines, template)
}

// ---------------------------------------------------------------------------------------------
// node dotenv 16: the `LINE` regex run over the whole file (line endings made `\n` first),
// the last match of a key wins. Written out as the backtracking the regex does:
// `^\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|`
// `\s*\`(?:\\\`|[^\`])*\`|[^#\r\n]+)?\s*(?:#.*)?$` with the `m` flag.

/// JavaScript's `\s` (and what `String.prototype.trim` removes).
fn js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

fn js_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn skip(s: &[char], mut i: usize, keep: impl Fn(char) -> bool) -> usize {
    while s.get(i).is_some_and(|&c| keep(c)) {
        i += 1;
    }
    i
}

/// `\s*(?:#.*)?$`: where the match ends, trying the longest whitespace run first.
fn js_tail(s: &[char], t: usize) -> Option<usize> {
    let top = skip(s, t, js_space);
    (t..=top).rev().find_map(|q| match s.get(q) {
        Some('#') => Some(skip(s, q, |c| c != '\n')),
        None | Some('\n') => Some(q),
        Some(_) => None,
    })
}

/// Where a quoted alternative can close, in the order the regex tries them.
fn js_quote_closes(s: &[char], v: usize, quote: char) -> Vec<usize> {
    let open = skip(s, v, js_space);
    if s.get(open) != Some(&quote) {
        return Vec::new();
    }
    let (mut i, mut escaped_quotes) = (open + 1, Vec::new());
    while let Some(&c) = s.get(i) {
        if c == '\\' && s.get(i + 1) == Some(&quote) {
            escaped_quotes.push(i + 1);
            i += 2;
        } else if c == quote {
            break;
        } else {
            i += 1;
        }
    }
    let mut closes = Vec::new();
    if s.get(i) == Some(&quote) {
        closes.push(i);
    }
    closes.extend(escaped_quotes.into_iter().rev());
    closes
}

/// The value group and the tail from `v`: (value end, match end).
fn js_value(s: &[char], v: usize) -> Option<(usize, usize)> {
    for quote in ['\'', '"', '`'] {
        for close in js_quote_closes(s, v, quote) {
            if let Some(end) = js_tail(s, close + 1) {
                return Some((close + 1, end));
            }
        }
    }
    let run = skip(s, v, |c| c != '#' && c != '\n' && c != '\r');
    if run > v {
        return js_tail(s, run).map(|end| (run, end));
    }
    js_tail(s, v).map(|end| (v, end))
}

/// The match at line start `p`: (key start, key end, value start, value end, match end).
fn js_line(s: &[char], p: usize) -> Option<(usize, usize, usize, usize, usize)> {
    let start = skip(s, p, js_space);
    let after_export = s[start..].starts_with(&['e', 'x', 'p', 'o', 'r', 't'])
        && s.get(start + 6).is_some_and(|&c| js_space(c));
    let key_starts = if after_export {
        vec![skip(s, start + 6, js_space), start]
    } else {
        vec![start]
    };
    for k in key_starts {
        let key_end = skip(s, k, js_word);
        if key_end == k {
            continue;
        }
        let eq = skip(s, key_end, js_space);
        let mut value_starts = Vec::new();
        if s.get(eq) == Some(&'=') {
            let lazy_end = skip(s, eq + 1, js_space);
            value_starts.extend(eq + 1..=lazy_end);
        }
        if s.get(key_end) == Some(&':') && s.get(key_end + 1).is_some_and(|&c| js_space(c)) {
            let lazy_end = skip(s, key_end + 1, js_space);
            value_starts.extend(key_end + 2..=lazy_end);
        }
        for v in value_starts {
            if let Some((value_end, end)) = js_value(s, v) {
                return Some((k, key_end, v, value_end, end));
            }
        }
    }
    None
}

/// `parse`'s clean-up of a matched value: trim, strip one pair of surrounding quotes, and in
/// double quotes turn `\n` and `\r` into line breaks.
fn js_clean(raw: &[char]) -> String {
    let text: String = raw.iter().collect();
    let text = text.trim_matches(js_space);
    let chars: Vec<char> = text.chars().collect();
    let mut value = text.to_owned();
    if let Some(&quote) = chars.first().filter(|c| matches!(c, '\'' | '"' | '`')) {
        // `^(['"`])([\s\S]*)\1$` (multi-line): the last such quote before a line end.
        let close = (1..chars.len())
            .rev()
            .find(|&j| chars[j] == quote && chars.get(j + 1).is_none_or(|&c| c == '\n'));
        if let Some(j) = close {
            value = chars[1..j].iter().chain(&chars[j + 1..]).collect();
        }
        if quote == '"' {
            value = value.replace("\\n", "\n").replace("\\r", "\r");
        }
    }
    value
}

fn node_dotenv(bytes: &[u8], key: &str) -> (FileValue, Vec<usize>) {
    let text = String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let s: Vec<char> = text.chars().collect();
    let mut found = FileValue::Missing;
    let mut lines = Vec::new();
    let mut p = 0;
    while p <= s.len() {
        match js_line(&s, p) {
            Some((k, key_end, v, value_end, end)) => {
                if s[k..key_end].iter().copied().eq(key.chars()) {
                    let line = 1 + s[..k].iter().filter(|&&c| c == '\n').count();
                    lines.push(line);
                    found = FileValue::Found {
                        value: Password::new(js_clean(&s[v..value_end])),
                        line,
                    };
                }
                // The next search starts at the match's end; `^` needs a line start.
                p = if s[end - 1] == '\n' {
                    end
                } else {
                    match s[end..].iter().position(|&c| c == '\n') {
                        Some(n) => end + n + 1,
                        None => break,
                    }
                };
            }
            None => match s[p..].iter().position(|&c| c == '\n') {
                Some(n) => p += n + 1,
                None => break,
            },
        }
    }
    (found, lines)
}
