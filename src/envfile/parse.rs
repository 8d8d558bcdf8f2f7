//! Reading a `.env` the way dotenvy 0.15 does, on bytes, with offsets kept for editing.

use super::*;

// ---------------------------------------------------------------------------------------------
// Parsing: a mirror of dotenvy 0.15's `QuotedLines` (which physical lines form one logical line)
// and `LineParser`/`parse_value` (what a logical line means), run on bytes so that nothing is
// lost, with byte offsets kept so that an edit can touch only the value.

/// One character of the file and where it starts. A byte that is not UTF-8 becomes its own
/// U+FFFD unit, so offsets stay exact and such bytes never look like syntax.
#[derive(Clone, Copy)]
pub(super) struct Unit {
    pub(super) at: usize,
    pub(super) ch: char,
    pub(super) invalid: bool,
}

pub(super) fn decode(bytes: &[u8]) -> Vec<Unit> {
    let mut units = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for chunk in bytes.utf8_chunks() {
        for (i, ch) in chunk.valid().char_indices() {
            units.push(Unit {
                at: at + i,
                ch,
                invalid: false,
            });
        }
        at += chunk.valid().len();
        for i in 0..chunk.invalid().len() {
            units.push(Unit {
                at: at + i,
                ch: char::REPLACEMENT_CHARACTER,
                invalid: true,
            });
        }
        at += chunk.invalid().len();
    }
    units
}

/// dotenvy's `ParseState`, deciding where a logical line ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum LineState {
    Complete,
    Escape,
    StrongOpen,
    StrongOpenEscape,
    WeakOpen,
    WeakOpenEscape,
    WhiteSpace,
}

impl LineState {
    pub(super) fn step(self, c: char) -> LineState {
        use LineState::*;
        match self {
            WhiteSpace => match c {
                '\\' => Escape,
                '"' => WeakOpen,
                '\'' => StrongOpen,
                _ => Complete,
            },
            Escape => Complete,
            Complete => match c {
                c if c.is_whitespace() && c != '\n' && c != '\r' => WhiteSpace,
                '\\' => Escape,
                '"' => WeakOpen,
                '\'' => StrongOpen,
                _ => Complete,
            },
            WeakOpen => match c {
                '\\' => WeakOpenEscape,
                '"' => Complete,
                _ => WeakOpen,
            },
            WeakOpenEscape => WeakOpen,
            StrongOpen => match c {
                '\\' => StrongOpenEscape,
                '\'' => Complete,
                _ => StrongOpen,
            },
            StrongOpenEscape => StrongOpen,
        }
    }

    pub(super) fn in_quote(self) -> bool {
        matches!(
            self,
            LineState::StrongOpen
                | LineState::StrongOpenEscape
                | LineState::WeakOpen
                | LineState::WeakOpenEscape
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Style {
    Unquoted,
    Single,
    Double,
}

/// An assignment as found in the file, with what an edit needs.
pub(super) struct RawEntry {
    pub(super) key: String,
    pub(super) line: usize,
    /// Units of the whole logical line, line endings included.
    pub(super) logical: (usize, usize),
    /// Units of the value token: from its first character to where dotenvy stops reading it
    /// (before trailing blanks and an inline comment, which an edit keeps).
    pub(super) token: (usize, usize),
    /// `None` when dotenvy would reject the line.
    pub(super) value: Option<String>,
    pub(super) expands: bool,
    pub(super) lossy: bool,
    pub(super) style: Style,
    /// dotenvy's line splitter is in its plain state right after the token, so a new token
    /// (which always ends in that state) leaves the rest of the line meaning what it meant.
    /// Not so after quirks such as `"$\"`, where the splitter and the value parser disagree
    /// about a quote; such a line is rewritten whole.
    pub(super) splits_cleanly: bool,
}

pub(super) struct Parsed {
    pub(super) units: Vec<Unit>,
    pub(super) entries: Vec<RawEntry>,
    /// First line of a quote dotenvy never sees closed.
    pub(super) unclosed_quote: Option<usize>,
    /// The file ends (without a newline) in a blank or a backslash after a value, which makes
    /// dotenvy fail on the whole file.
    pub(super) open_end: bool,
}

impl Parsed {
    pub(super) fn byte(&self, unit: usize, len: usize) -> usize {
        self.units.get(unit).map_or(len, |u| u.at)
    }
}

pub(super) fn parse(bytes: &[u8]) -> Parsed {
    let units = decode(bytes);
    // Physical lines as unit ranges, each with its '\n'.
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, u) in units.iter().enumerate() {
        if u.ch == '\n' {
            lines.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < units.len() {
        lines.push((start, units.len()));
    }
    // dotenvy's `load()` drops a BOM; its iterators do not. Being lenient costs nothing here.
    if let Some(first) = lines.first_mut()
        && units[0].ch == '\u{FEFF}'
    {
        first.0 = 1;
    }

    let mut entries = Vec::new();
    let mut unclosed_quote = None;
    let mut open_end = false;
    let mut p = 0;
    while p < lines.len() {
        let (s, e) = lines[p];
        let first_visible = (s..e).find(|&i| !units[i].ch.is_whitespace());
        if first_visible.is_some_and(|i| units[i].ch == '#') {
            p += 1;
            continue;
        }
        let mut state = LineState::Complete;
        let mut q = p;
        let content_end = loop {
            let (qs, qe) = lines[q];
            let mut comment_at = None;
            for (i, unit) in units.iter().enumerate().take(qe).skip(qs) {
                if state == LineState::WhiteSpace && unit.ch == '#' {
                    comment_at = Some(i);
                    break;
                }
                state = state.step(unit.ch);
            }
            if let Some(i) = comment_at {
                break Some(i);
            }
            if state == LineState::Complete {
                let mut end = qe;
                if end > qs && units[end - 1].ch == '\n' {
                    end -= 1;
                    if end > qs && units[end - 1].ch == '\r' {
                        end -= 1;
                    }
                }
                break Some(end);
            }
            if q + 1 == lines.len() {
                // dotenvy fails on any open state at the end of the file. Reading, only an
                // open quote matters (a trailing blank or backslash is settled by a newline);
                // an edit must not leave such an end where there was none.
                open_end = !state.in_quote();
                break if state.in_quote() { None } else { Some(qe) };
            }
            q += 1;
        };
        match content_end {
            Some(content_end) => {
                let logical = (s, lines[q].1);
                if let Some(entry) = parse_assignment(&units, s, content_end, logical, p + 1) {
                    entries.push(entry);
                }
                p = q + 1;
            }
            None => {
                // Read the opening line on its own and go on: reading stays lenient, editing
                // refuses (see `UnclosedQuote`).
                unclosed_quote.get_or_insert(p + 1);
                let (s, e) = lines[p];
                let mut end = e;
                while end > s && matches!(units[end - 1].ch, '\n' | '\r') {
                    end -= 1;
                }
                if let Some(entry) = parse_assignment(&units, s, end, (s, e), p + 1) {
                    entries.push(entry);
                }
                p += 1;
            }
        }
    }
    Parsed {
        units,
        entries,
        unclosed_quote,
        open_end,
    }
}

/// dotenvy's `LineParser::parse_line` on the units `[start, end)` of one logical line.
pub(super) fn parse_assignment(
    units: &[Unit],
    start: usize,
    end: usize,
    logical: (usize, usize),
    line: usize,
) -> Option<RawEntry> {
    let mut end = end;
    while end > start && units[end - 1].ch.is_whitespace() {
        end -= 1;
    }
    let skip_ws = |mut i: usize| {
        while i < end && units[i].ch.is_whitespace() {
            i += 1;
        }
        i
    };
    let parse_key = |i: usize| -> Option<(String, usize)> {
        let first = units.get(i).filter(|_| i < end)?.ch;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let mut j = i;
        while j < end && (units[j].ch.is_ascii_alphanumeric() || matches!(units[j].ch, '_' | '.')) {
            j += 1;
        }
        Some((units[i..j].iter().map(|u| u.ch).collect(), j))
    };
    let at = |i: usize, c: char| i < end && units[i].ch == c;

    let i = skip_ws(start);
    if i == end || units[i].ch == '#' {
        return None;
    }
    let (mut key, j) = parse_key(i)?;
    let mut i = skip_ws(j);
    if key == "export" && !at(i, '=') {
        let (k, j) = parse_key(i)?;
        key = k;
        i = skip_ws(j);
    }
    if !at(i, '=') {
        return None;
    }
    let after_eq = i + 1;
    let value_start = skip_ws(after_eq);
    if value_start == end || units[value_start].ch == '#' {
        // An empty value: a new one goes right after `=`, before any blank or comment.
        return Some(RawEntry {
            key,
            line,
            logical,
            token: (after_eq, after_eq),
            value: Some(String::new()),
            expands: false,
            lossy: false,
            style: Style::Unquoted,
            splits_cleanly: !spans_lines(&units[after_eq..logical.1]),
        });
    }
    let parsed = parse_value(&units[value_start..end]);
    let style = match units[value_start].ch {
        '\'' => Style::Single,
        '"' => Style::Double,
        _ => Style::Unquoted,
    };
    let token_end = match (&parsed.value, parsed.token_len) {
        (Some(_), Some(len)) => value_start + len,
        _ => end,
    };
    let mut state = LineState::Complete;
    for unit in &units[logical.0..token_end] {
        if state == LineState::WhiteSpace && unit.ch == '#' {
            // Cannot happen inside the parsed content; fail safe if it ever does.
            state = LineState::Escape;
            break;
        }
        state = state.step(unit.ch);
    }
    Some(RawEntry {
        key,
        line,
        logical,
        splits_cleanly: state == LineState::Complete && !spans_lines(&units[token_end..logical.1]),
        token: (value_start, token_end),
        lossy: units[value_start..token_end].iter().any(|u| u.invalid),
        value: parsed.value,
        expands: parsed.expands,
        style,
    })
}

/// Whether what follows a value token goes on past the end of its line (ignoring the final
/// line ending). Lines that dotenvy swallowed into an assignment (`KEY=#it's` opens a quote in
/// its line splitter) would come back to life after a cleaner token.
pub(super) fn spans_lines(rest: &[Unit]) -> bool {
    let rest = match rest.split_last() {
        Some((last, init)) if last.ch == '\n' => init,
        _ => rest,
    };
    rest.iter().any(|u| u.ch == '\n')
}

pub(super) struct ValueParse {
    pub(super) value: Option<String>,
    pub(super) expands: bool,
    /// Where dotenvy started expecting the end of the line (an unquoted blank), if it did.
    pub(super) token_len: Option<usize>,
}

#[derive(PartialEq, Eq)]
pub(super) enum Substitution {
    None,
    Block,
    EscapedBlock,
}

/// dotenvy's `parse_value`, except that `$NAME` references are kept as written instead of
/// being looked up in the process environment, which would make parsing impure.
pub(super) fn parse_value(units: &[Unit]) -> ValueParse {
    let mut strong_quote = false;
    let mut weak_quote = false;
    let mut escaped = false;
    let mut expecting_end: Option<usize> = None;
    let mut output = String::new();
    let mut mode = Substitution::None;
    let mut name = String::new();
    let mut expands = false;
    let fail = |expands| ValueParse {
        value: None,
        expands,
        token_len: None,
    };

    for (index, unit) in units.iter().enumerate() {
        let c = unit.ch;
        if expecting_end.is_some() {
            if c == ' ' || c == '\t' {
                continue;
            } else if c == '#' {
                break;
            } else {
                return fail(expands);
            }
        } else if escaped {
            match c {
                '\\' | '\'' | '"' | '$' | ' ' => output.push(c),
                'n' => output.push('\n'),
                _ => return fail(expands),
            }
            escaped = false;
        } else if strong_quote {
            if c == '\'' {
                strong_quote = false;
            } else {
                output.push(c);
            }
        } else if mode != Substitution::None {
            if c.is_alphanumeric() {
                name.push(c);
            } else if mode == Substitution::Block {
                if c == '{' && name.is_empty() {
                    mode = Substitution::EscapedBlock;
                } else {
                    output.push('$');
                    output.push_str(&std::mem::take(&mut name));
                    if c == '$' {
                        mode = Substitution::Block;
                    } else {
                        mode = Substitution::None;
                        output.push(c);
                    }
                }
            } else if c == '}' {
                mode = Substitution::None;
                output.push_str("${");
                output.push_str(&std::mem::take(&mut name));
                output.push('}');
            } else {
                name.push(c);
            }
        } else if c == '$' {
            expands = true;
            mode = Substitution::Block;
        } else if weak_quote {
            if c == '"' {
                weak_quote = false;
            } else if c == '\\' {
                escaped = true;
            } else {
                output.push(c);
            }
        } else if c == '\'' {
            strong_quote = true;
        } else if c == '"' {
            weak_quote = true;
        } else if c == '\\' {
            escaped = true;
        } else if c == ' ' || c == '\t' {
            expecting_end = Some(index);
        } else {
            output.push(c);
        }
    }
    if mode == Substitution::EscapedBlock || strong_quote || weak_quote {
        return fail(expands);
    }
    if mode == Substitution::Block {
        output.push('$');
        output.push_str(&name);
    }
    ValueParse {
        value: Some(output),
        expands,
        token_len: expecting_end,
    }
}

/// Parse a `.env`'s bytes leniently: what dotenvy would load, line by line, skipping the lines
/// it would reject instead of failing the whole file. A key assigned twice appears twice, in
/// file order (dotenvy's `dotenv()` uses the first, override loaders and shells the last).
pub fn parse_entries(bytes: &[u8]) -> Vec<EnvEntry> {
    parse(bytes)
        .entries
        .into_iter()
        .filter_map(|e| {
            Some(EnvEntry {
                key: e.key,
                value: e.value?,
                line: e.line,
                expands: e.expands,
            })
        })
        .collect()
}

/// Read and parse a `.env`. A missing file is `Err(NotFound)`, so callers can tell it apart
/// from an empty one.
pub fn read_entries(path: &Path) -> Result<Vec<EnvEntry>, EnvFileError> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse_entries(&bytes)),
        Err(e) => Err(match e.kind() {
            io::ErrorKind::NotFound => EnvFileError::NotFound {
                path: path.to_path_buf(),
            },
            io::ErrorKind::IsADirectory => EnvFileError::IsADirectory {
                path: path.to_path_buf(),
            },
            _ => EnvFileError::Io {
                action: IoAction::Read,
                path: path.to_path_buf(),
                source: e,
            },
        }),
    }
}
