//! The application user's password: the one `.env` already holds when it still logs in (or,
//! for a user that does not exist yet, the one `.env`'s URL names it with), one given, typed or
//! generated; and, when the server refused `.env`'s URL for another reason
//! than its password (NOLOGIN, a database that takes no connections), that reason instead of
//! an offer of a new password that would not help.

use crate::code::Code;
use crate::connect;
use crate::diagnose::{self, Diagnosis};
use crate::dsn::ConnString;
use crate::error::{CliError, CliResult};
use crate::provision::{self, Existing};

use super::Setup;

impl Setup<'_> {
    /// The URL already in `.env`, when it is for this user and database and still logs in
    /// (and no other password was given): rerunning keeps it. When it was tried and refused
    /// for another reason than its password (NOLOGIN, a database that takes no connections,
    /// pg_hba), what the server said, diagnosed: a new password would not help there.
    pub(super) async fn working_env_url(
        &self,
        existing_cs: Option<&ConnString>,
        existing: &Existing,
        db: &str,
        role: &str,
    ) -> (Option<ConnString>, Option<Diagnosis>) {
        let Some(cs) = existing_cs else {
            return (None, None);
        };
        let for_this = existing.role_exists
            && existing.database_owner.is_some()
            && cs.user.as_deref() == Some(role)
            && cs.dbname.as_deref() == Some(db);
        let Some(mut cfg) = for_this.then(|| cs.resolve(self.env).ok()).flatten() else {
            return (None, None);
        };
        cfg.allow_cleartext = self.s.allow_cleartext;
        let connected = {
            let _spinner = self.printer.spinner("Trying the password already in .env");
            connect::connect(&cfg, self.s.limits.connect).await
        };
        let connected = match connected {
            Ok(connected) => connected,
            Err(failure) => {
                let context = diagnose::Context::default();
                let refused = diagnose::diagnose(&cfg, failure.last(), &context);
                let not_the_password =
                    !matches!(refused.code, Code::AuthFailed | Code::PasswordRequired);
                return (None, not_the_password.then_some(refused));
            }
        };
        connect::close(connected.conn).await;
        let same = self
            .s
            .password
            .as_ref()
            .is_none_or(|g| cs.password.as_ref().map(|p| p.expose()) == Some(g.value.as_str()));
        (same.then(|| cs.clone()), None)
    }

    /// The password `.env`'s URL gives `role` when that user does not exist yet and no password
    /// was given: a project that ships its URL (a `.env` copied from `.env.example`, a compose
    /// file or a teammate's setup with the same password) gets the user its URL names, and
    /// every copy of that URL keeps working. A generated password would make the setup rewrite
    /// `.env` and break the other copies.
    pub(super) fn env_password_for_new_user(
        &self,
        existing_cs: Option<&ConnString>,
        existing: &Existing,
        role: &str,
    ) -> Option<String> {
        if existing.role_exists || self.s.password.is_some() || self.s.force_new_password {
            return None;
        }
        let cs = existing_cs.filter(|cs| cs.user.as_deref() == Some(role))?;
        let password = cs.password.as_ref()?.expose();
        // One that sqlx could not log in with is not offered: the setup's own check would fail.
        (!password.is_empty() && provision::scram_password_usable(password))
            .then(|| password.to_string())
    }

    /// Ask for the password (or, in CI, take `.env`'s or generate one). Returns it, and whether
    /// it is the existing user's current password (kept, not set).
    pub(super) async fn choose_password(
        &self,
        existing: &Existing,
        role: &str,
        // `.env`'s URL refused for another reason than its password (`working_env_url`).
        env_url_refused: Option<&Diagnosis>,
        // The password `.env`'s URL names a user that does not exist yet with.
        from_env: Option<&str>,
    ) -> CliResult<(String, bool)> {
        let Some(p) = self.prompter else {
            if let Some(password) = from_env {
                let line = format!(
                    "Password for \"{role}\": the one {}'s {} holds",
                    self.s.env_file.display(),
                    self.s.env_key
                );
                self.printer.step(crate::ui::Mark::Pass, &line);
                return Ok((password.to_string(), false));
            }
            // A new password would not help: say what the server said instead.
            if let Some(refused) = env_url_refused
                && !self.s.force_new_password
            {
                return Err(CliError::failure(format!(
                    "user \"{role}\" already exists, and the URL in {} does not log in as it: {}",
                    self.s.env_file.display(),
                    refused.message
                ))
                .before_any_change()
                .with_code(refused.code)
                .with_hint(format!("{}; then run dbsetup again", refused.hint)));
            }
            // Another project's `.env`, a deployed app or a teammate may hold the current
            // password; a new one is set only when asked for.
            if existing.role_exists && !self.s.force_new_password {
                return Err(CliError::failure(format!(
                    "user \"{role}\" already exists, and {} holds no URL that logs in as it: a new password would break every URL that holds its current one",
                    self.s.env_file.display()
                ))
                .before_any_change()
                .with_hint("pass the password it should have in AKSARA_DB_PASSWORD (or --db-password-stdin), --force password to set a new generated one, or --db-user with another name"));
            }
            return Ok((provision::generate_password(), false));
        };
        if existing.role_exists {
            // The URL in .env was refused for another reason than its password: say so before
            // a menu that is all about passwords (a new one turns LOGIN back on, nothing else).
            if let Some(refused) = env_url_refused {
                self.printer.warn(&format!(
                    "the URL in {} does not log in as \"{role}\": {} [{}]",
                    self.s.env_file.display(),
                    refused.message,
                    refused.code.id()
                ));
                self.printer.hint(&refused.hint);
            }
            let choice = p
                .select(
                    &format!("User \"{role}\" already exists"),
                    vec![
                        "Set a new generated password on it (URLs holding the current one stop working)".into(),
                        "Type its current password".into(),
                        "Type a new password for it".into(),
                    ],
                    0,
                )
                .await?;
            return Ok(match choice {
                0 => (provision::generate_password(), false),
                1 => (
                    p.password(&format!("Current password of \"{role}\""), false)
                        .await?,
                    true,
                ),
                _ => (
                    p.password(&format!("New password for \"{role}\""), true)
                        .await?,
                    false,
                ),
            });
        }
        let options = match from_env {
            // Another password means a new URL in `.env`: said where it is chosen.
            Some(_) => vec![
                format!(
                    "The one {}'s {} holds for \"{role}\"",
                    self.s.env_file.display(),
                    self.s.env_key
                ),
                format!(
                    "Generate a strong one ({} gets a new URL)",
                    self.s.env_file.display()
                ),
                "Type my own".to_string(),
            ],
            None => vec![
                "Generate a strong one (recommended)".to_string(),
                "Type my own".to_string(),
            ],
        };
        let choice = p
            .select("Password for the application user", options, 0)
            .await?;
        let choice = match (from_env, choice) {
            (Some(password), 0) => return Ok((password.to_string(), false)),
            (Some(_), n) => n - 1,
            (None, n) => n,
        };
        if choice == 0 {
            Ok((provision::generate_password(), false))
        } else {
            let typed = p
                .password(&format!("Password for \"{role}\""), true)
                .await?;
            Ok((typed, false))
        }
    }
}
