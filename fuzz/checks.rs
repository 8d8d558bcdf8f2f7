//! The properties the fuzz targets check, shared by `cargo fuzz` (fuzz_targets/*.rs) and the
//! stable smoke test that runs in CI (tests/fuzz_smoke.rs). Each function takes arbitrary
//! bytes and panics when a property fails; every other outcome is fine.

// Each fuzz target uses one of the checks.
#![allow(dead_code)]

use aksara::dsn::{ConnString, Format, Password, Reveal};
use aksara::envfile::{self, Change, EnvFileError, OnConflict};

/// Connection strings: parsing never panics, and whatever parses renders back to a string
/// that parses to the same thing, in its own format and in the other one; a redacted
/// rendering does not depend on the password.
pub fn dsn_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(conn) = ConnString::parse(text) else {
        return;
    };
    let rendered = conn.render(Reveal::Secret);
    match ConnString::parse(&rendered) {
        Ok(again) => assert_eq!(
            again, conn,
            "{text:?} rendered as {rendered:?} reads differently"
        ),
        Err(e) => panic!("{text:?} parsed, but its rendering {rendered:?} does not: {e}"),
    }
    // libpq reads `ssl=true` as sslmode=require in a URI only; in keyword/value form it is
    // an unknown parameter, which no URI can carry unchanged.
    let uri_only = conn.unknown.iter().any(|(k, v)| k == "ssl" && v == "true");
    for format in [Format::Uri, Format::KeyValue] {
        if format != conn.format && uri_only {
            continue;
        }
        let other = ConnString {
            format,
            ..conn.clone()
        };
        let rendered = other.render(Reveal::Secret);
        match ConnString::parse(&rendered) {
            Ok(again) => assert_eq!(
                again, other,
                "{text:?} rendered as {rendered:?} reads differently"
            ),
            Err(e) => panic!("{text:?} parsed, but its rendering {rendered:?} does not: {e}"),
        }
    }
    if conn.password.is_some() {
        let other = ConnString {
            password: Some(Password::new("a different one".into())),
            ..conn.clone()
        };
        assert_eq!(
            conn.render(Reveal::Redacted),
            other.render(Reveal::Redacted),
            "the redacted form of {text:?} depends on its password"
        );
        assert_eq!(conn.to_string(), other.to_string());
    }
}

const KEYS: [&str; 4] = ["KEY", "DATABASE_URL", "A", "_x1"];
const MODES: [OnConflict; 3] = [
    OnConflict::Replace,
    OnConflict::ReplaceKeepingOldAsComment,
    OnConflict::Fail,
];

/// The .env editor. Input: one byte choosing the key and the conflict mode, the value up to
/// the first 0xFF byte (as UTF-8, lossily), then the file's bytes. Setting the key never
/// panics; every other assignment keeps its value; the key reads back as the value wherever
/// it is assigned; doing it again changes nothing; and where dotenvy itself can load the file,
/// it loads the result with only that key changed.
pub fn env_upsert(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let key = KEYS[usize::from(selector) % KEYS.len()];
    let mode = MODES[usize::from(selector / 4) % MODES.len()];
    let (value, file) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let value = String::from_utf8_lossy(value).into_owned();
    let (out, change) = match envfile::upsert(file, key, &value, mode) {
        Ok(done) => done,
        Err(EnvFileError::NulInValue { .. }) => {
            assert!(value.contains('\0'));
            return;
        }
        Err(EnvFileError::UnclosedQuote { .. }) => return,
        Err(EnvFileError::KeyConflict { .. }) => {
            assert_eq!(mode, OnConflict::Fail);
            return;
        }
        Err(e) => panic!("unexpected error {e} for {file:?}"),
    };
    let others = |bytes: &[u8]| -> Vec<(String, String, bool)> {
        envfile::parse_entries(bytes)
            .into_iter()
            .filter(|e| e.key != key)
            .map(|e| (e.key, e.value, e.expands))
            .collect()
    };
    assert_eq!(
        others(file),
        others(&out),
        "other assignments changed: {file:?} -> {out:?}"
    );
    let mine: Vec<_> = envfile::parse_entries(&out)
        .into_iter()
        .filter(|e| e.key == key)
        .collect();
    assert!(!mine.is_empty(), "{key} not set: {file:?} -> {out:?}");
    assert!(
        mine.iter().all(|e| e.value == value && !e.expands),
        "{key} does not read back as {value:?}: {file:?} -> {out:?}"
    );
    if change == Change::Unchanged {
        assert_eq!(out, file);
    }
    match envfile::upsert(&out, key, &value, OnConflict::Fail) {
        Ok((again, Change::Unchanged)) => assert_eq!(again, out),
        other => panic!("a second upsert was not a no-op ({other:?}): {file:?} -> {out:?}"),
    }
    let loaded = dotenvy::from_read_iter(file).collect::<Result<Vec<_>, _>>();
    if let (Ok(before), false) = (loaded, file.contains(&b'$')) {
        let mut want: Vec<(String, String)> = before
            .into_iter()
            .map(|(k, v)| if k == key { (k, value.clone()) } else { (k, v) })
            .collect();
        if change == Change::Added {
            want.push((key.to_string(), value.clone()));
        }
        let after = dotenvy::from_read_iter(&out[..]).collect::<Result<Vec<_>, _>>();
        match after {
            Ok(after) => assert_eq!(after, want, "dotenvy reads {out:?} differently"),
            Err(e) => panic!("dotenvy loaded {file:?} but not {out:?}: {e}"),
        }
    }
}
