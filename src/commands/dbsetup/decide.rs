//! Deciding what to create: the database and user names (asked for, or from the flags), what
//! to do with a database or user that exists, the application password (which one, in
//! `password`: kept when `.env` already holds one that works, given, typed or generated), the
//! plan and whether the admin
//! may run it, and whether `.env` may be changed. Nothing on the server changes here, except
//! what a person agrees to at its own prompt: giving their peer-login role the CREATEDB and
//! CREATEROLE it lacks, through the server's OS user (a change of its own, not undone if the
//! setup fails later).

use crate::code::Code;
use crate::dsn::{ConnString, Endpoint, Format, Host, HostSpec, Password, SslMode};
use crate::envfile::OnConflict;
use crate::error::{CliError, CliResult};
use crate::provision::{self, AdminRights, Existing, NameKind, PasswordAction, Step};

use super::Setup;
use super::discover::{Admin, folder_name};
use super::execute::{differing_lines, existing_objects};
use super::settings::{DriverKey, Name, check_password};
use crate::drivers::{self, Driver, forms};

/// What the setup will do, decided before anything changes.
pub struct Plan {
    pub db: String,
    pub role: String,
    pub existing: Existing,
    pub steps: Vec<Step>,
    /// The application URL that will be verified.
    pub url: ConnString,
    /// What `.env` gets: the form every driver reads (or the working value already there).
    pub written: WrittenUrl,
    /// `--driver-url` (or accepted offers): each driver's own form, written with `written`.
    pub forms: Vec<DriverForm>,
    /// For every key written: `--force`, a confirmed prompt, or nothing to replace.
    pub on_conflict: OnConflict,
    /// The password already in `.env` (or typed as the current one) is kept.
    pub password_kept: bool,
}

/// The URL as `.env` will hold it.
pub struct WrittenUrl {
    /// The text written (holds the password).
    pub secret: String,
    /// The same, the password redacted, for the plan and the summary.
    pub shown: String,
    /// Drivers this URL cannot serve, each with the form it needs (redacted) and why.
    pub exceptions: Vec<Exception>,
    /// The `.env`'s own line, which works and stays as written (`${NAME}` references and all):
    /// not written again.
    pub stays: bool,
    /// What the app gets from the line: `secret`, or a kept line as python-dotenv expands it.
    pub app_value: String,
}

/// A driver the written URL cannot serve.
#[derive(Debug, Clone)]
pub struct Exception {
    pub driver: Driver,
    /// Its own form, redacted and in backticks, or why no URL can serve it.
    pub form: String,
    /// What it would do with the written URL.
    pub reason: String,
}

/// A driver's own form of the URL, written under its own key in the same `.env` write.
pub struct DriverForm {
    pub driver: Driver,
    pub key: String,
    /// The text written (holds the password).
    pub secret: String,
    /// The same, the password redacted.
    pub shown: String,
    /// What had to change for this driver, and why.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for DriverForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DriverForm({} {}={})",
            self.driver.id(),
            self.key,
            self.shown
        )
    }
}

/// Each driver's form of what `url` means (`drivers::forms::form_for`, the forms the suite
/// connects with the real drivers), refused before anything changes when a driver cannot be
/// given this URL at all.
pub fn driver_forms(url: &ConnString, keys: &[DriverKey]) -> CliResult<Vec<DriverForm>> {
    keys.iter()
        .map(|DriverKey { driver, key }| {
            let form = forms::form_for(*driver, url).map_err(|refusal| {
                CliError::usage(format!(
                    "--driver-url {}={key}: no URL gives {} this server: {}",
                    driver.id(),
                    driver.name(),
                    refusal.message
                ))
                .before_any_change()
                .with_code(refusal.code)
                .with_hint(format!("leave --driver-url {}=… out", driver.id()))
            })?;
            Ok(DriverForm {
                driver: *driver,
                key: key.clone(),
                secret: form.url.expose().to_owned(),
                shown: form.url.to_string(),
                notes: form.notes,
            })
        })
        .collect()
}

impl std::fmt::Debug for WrittenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrittenUrl({})", self.shown)
    }
}

/// The form of `url` every supported driver reads (drivers::portable, proven with the real
/// drivers by tests/cli/drivers.rs), refused before anything changes when none exists.
pub fn portable_url(url: &ConnString) -> CliResult<WrittenUrl> {
    let portable = crate::drivers::portable::portable(url).map_err(|refusal| {
        CliError::usage(format!(
            "no database URL with these names can be read by every driver: {}",
            refusal.message
        ))
        .before_any_change()
        .with_code(refusal.code)
        .with_hint("choose a --db-name / --db-user without the character named")
    })?;
    let exceptions = portable
        .exceptions
        .iter()
        .map(|(driver, problem)| {
            let form = match &problem.fix {
                Ok(fix) => format!("`{}`", fix.url),
                Err(refusal) => refusal.message.clone(),
            };
            Exception {
                driver: *driver,
                form,
                reason: problem.message.clone(),
            }
        })
        .collect();
    Ok(WrittenUrl {
        secret: portable.url.url.expose().to_string(),
        shown: portable.url.url.to_string(),
        exceptions,
        stays: false,
        app_value: portable.url.url.expose().to_string(),
    })
}

impl Setup<'_> {
    /// The database and user names: from the flags, else asked for. The names the `.env`'s URL
    /// already holds (`in_env`) are offered first, so a rerun proposes what the first run set
    /// up; else the project folder's name. Without `--db-user` the user is `.env`'s for the
    /// same database, asked or not.
    pub async fn names(&self, in_env: Option<&ConnString>) -> CliResult<(String, String)> {
        let from_env = in_env.and_then(|cs| {
            // Not the server's own database or superuser, which a setup refuses by default.
            let db = cs.dbname.clone().filter(|d| {
                validate_db(d).is_ok()
                    && !["postgres", "template0", "template1"].contains(&d.as_str())
            })?;
            let role = cs
                .user
                .clone()
                .filter(|r| validate_role(r).is_ok() && r != "postgres");
            Some((db, role))
        });
        let db = match (&self.s.db_name, self.prompter) {
            (Name::Given(n), _) => n.clone(),
            (Name::Ask, Some(p)) => {
                let default = match &from_env {
                    Some((db, _)) => db.clone(),
                    None => provision::default_db_name(&folder_name(&self.s.env_file)),
                };
                p.input("Database name", Some(default), validate_db).await?
            }
            (Name::Ask, None) => {
                return Err(CliError::usage(
                    "--db-name is required with --non-interactive",
                ));
            }
        };
        // The user `.env`'s URL pairs with this database, else one named after it: the same
        // default whether it is asked for or not (CI reruns what a first, interactive run set up).
        let default_role = match &from_env {
            Some((env_db, Some(role))) if *env_db == db => role.clone(),
            _ => provision::default_role_name(&db),
        };
        let role = match (&self.s.db_user, self.prompter, &self.s.db_name) {
            (Some(n), _, _) => n.clone(),
            (None, Some(p), Name::Ask) => {
                p.input("Application user", Some(default_role), validate_role)
                    .await?
            }
            _ => default_role,
        };
        Ok((db, role))
    }

    /// Interactive, on a socket where the admin logged in by peer without a password and sudo
    /// is here: offer to run the grant line the refusal's hint names, with the terminal
    /// attached, and read the rights again. None (the refusal stands, with its hint) when not
    /// asked, declined, or when the line is not one aksara may run.
    async fn grant_missing_rights(
        &self,
        admin: &mut Admin,
        steps: &[Step],
        rights: AdminRights,
    ) -> CliResult<Option<AdminRights>> {
        let Some(p) = self.prompter else {
            return Ok(None);
        };
        let missing = provision::missing_rights(steps, rights, &admin.cfg.user);
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        let grants: Vec<&str> = missing.iter().map(|(_, g)| g.as_str()).collect();
        let Some(line) = grant_as_socket_owner(admin, &grants.join(" ")) else {
            return Ok(None);
        };
        if line.run_as != crate::peer::RunAs::Sudo {
            return Ok(None);
        }
        let role = &admin.cfg.user;
        let revoke: Vec<String> = names.iter().map(|n| format!("NO{n}")).collect();
        let names = names.join(" and ");
        self.printer.step(
            crate::ui::Mark::Warn,
            &format!(
                "Your role \"{role}\" lacks {names}, which this setup needs; the server's OS user can grant them: `{}`",
                line.shown
            ),
        );
        let question = "Run that now (sudo asks for your password if it needs one)?";
        if !p.confirm(question, true).await? {
            return Ok(None);
        }
        crate::peer::run_attached(&line.argv, &line.shown).map_err(|why| {
            CliError::failure(format!("the grant did not run: {why}"))
                .before_any_change()
                .with_code(Code::PermissionDenied)
                .with_hint(crate::peer::SUDO_FAILED_HINT)
        })?;
        let rights = super::execute::admin_rights(&mut admin.conn, self.s.limits).await?;
        // Said only when the server now shows them (else the refusal follows, as before).
        if provision::missing_rights(steps, rights, role).is_empty() {
            self.progress.borrow_mut().granted = Some(format!(
                "{names} granted to \"{role}\" at the prompt stay (`ALTER ROLE {} {};` takes them back)",
                provision::quote_ident(role),
                revoke.join(" ")
            ));
            self.printer.step(
                crate::ui::Mark::Pass,
                &format!("Granted {names} to \"{role}\""),
            );
        }
        Ok(Some(rights))
    }

    /// Everything decided under the setup lock, before any statement runs.
    pub async fn decide(
        &self,
        admin: &mut Admin,
        db: String,
        role: String,
        rights: AdminRights,
        env_value: Option<&str>,
    ) -> CliResult<Plan> {
        let in_env = super::execute::app_value(&self.s.env_file, &self.s.env_key, env_value);
        let existing_cs = in_env.as_deref().and_then(|v| ConnString::parse(v).ok());
        let (db, existing) = self.reuse_or_rename(admin, db, &role).await?;
        // The application URL's host: the admin's TCP address, or localhost on the same port
        // when the admin came in over a socket (application users rarely have peer access).
        let endpoint = app_endpoint(admin).await;
        let (mut keep_url, env_url_refused) = self
            .working_env_url(existing_cs.as_ref(), &existing, &db, &role)
            .await;
        let kept_from_env = keep_url.is_some();
        // An admin URL that requires TLS says the server wants it: the app's URL asks too.
        let sslmode = self.s.sslmode.or_else(|| {
            (self.s.admin_url.is_some() && admin.cfg.sslmode.requires_tls())
                .then_some(admin.cfg.sslmode)
        });
        // A user that does not exist yet, named with a password by `.env`'s URL.
        let from_env = self.env_password_for_new_user(existing_cs.as_ref(), &existing, &role);
        let password = match (&keep_url, &self.s.password) {
            (Some(cs), _) => cs
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
            (None, Some(g)) => g.value.clone(),
            (None, None) => {
                let (password, typed_current) = self
                    .choose_password(
                        &existing,
                        &role,
                        env_url_refused.as_ref(),
                        from_env.as_deref(),
                    )
                    .await?;
                if typed_current {
                    keep_url = Some(app_conn_string(&endpoint, &role, &password, &db, sslmode));
                    password
                } else {
                    check_password(password, "the prompt")?.value
                }
            }
        };
        let action = if keep_url.is_some() {
            PasswordAction::Keep
        } else {
            PasswordAction::Set(password.clone())
        };
        let mut steps = provision::plan(&db, &role, &action, &existing, rights);
        if let Err(refusal) = refuse_missing_rights(&steps, rights, admin) {
            let granted = self.grant_missing_rights(admin, &steps, rights).await?;
            let rights = granted.ok_or(refusal)?;
            steps = provision::plan(&db, &role, &action, &existing, rights);
            refuse_missing_rights(&steps, rights, admin)?;
        }
        let password_kept = keep_url.is_some();
        let url =
            keep_url.unwrap_or_else(|| app_conn_string(&endpoint, &role, &password, &db, sslmode));
        // The new user got `.env`'s password and the URL written would be the one `.env`
        // already means (a `${NAME}` in it expanded): its line stays as written.
        let env_url_is_this_one = !kept_from_env
            && from_env.as_deref() == Some(password.as_str())
            && in_env.as_deref() == Some(portable_url(&url)?.secret.as_str());
        let kept_from_env = kept_from_env || env_url_is_this_one;
        let (written, replaced) = self.env_write(env_value, in_env, kept_from_env, &url)?;
        let mut keys = self.s.driver_urls.clone();
        keys.extend(self.offered_driver_keys(&written, &keys).await?);
        let forms = driver_forms(&url, &keys)?;
        let mut writes = Vec::new();
        if !written.stays {
            writes.push((self.s.env_key.clone(), replaced));
        }
        for form in &forms {
            let replaced = differing_lines(&self.s.env_file, &form.key, &form.secret)?;
            writes.push((form.key.clone(), replaced));
        }
        let on_conflict = self.env_conflict(&writes).await?;
        Ok(Plan {
            db,
            role,
            existing,
            steps,
            url,
            written,
            forms,
            on_conflict,
            password_kept,
        })
    }

    /// What `.env` gets for the key, and the lines of it that writing that would replace.
    /// `kept_from_env`: the value `.env` holds (`env_value` as written, `in_env` as the app
    /// reads it) is the URL: it stays as it is.
    fn env_write(
        &self,
        env_value: Option<&str>,
        in_env: Option<String>,
        kept_from_env: bool,
        url: &ConnString,
    ) -> CliResult<(WrittenUrl, Vec<usize>)> {
        // A value in .env that already works for this user and database (or that the new user
        // with `.env`'s password makes work) stays as it is. When
        // other lines assign the key something else (a stale URL that dotenvy, which keeps the
        // first, would read), the working value is written over them too, as a literal: unless
        // it holds `$`, whose `${NAME}` a literal write would no longer let python-dotenv expand;
        // that line stays and the others are named.
        match (env_value, in_env) {
            (Some(value), Some(app_value)) if kept_from_env => {
                let others = differing_lines(&self.s.env_file, &self.s.env_key, value)?;
                let references = value.contains('$');
                if !others.is_empty() && references {
                    let (s, those) = if others.len() > 1 {
                        ("s", "those lines")
                    } else {
                        ("", "that line")
                    };
                    self.printer.warn(&format!(
                        "{} also sets {} on line{s} {}, to a value the app does not get (dotenvy-based tools such as sqlx-cli read the first): delete {those}",
                        self.s.env_file.display(),
                        self.s.env_key,
                        others.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                    ));
                }
                let written = WrittenUrl {
                    secret: value.to_string(),
                    shown: url.to_string(),
                    exceptions: Vec::new(),
                    stays: others.is_empty() || references,
                    app_value,
                };
                Ok((written, others))
            }
            _ => {
                let written = portable_url(url)?;
                let replaced = differing_lines(&self.s.env_file, &self.s.env_key, &written.secret)?;
                Ok((written, replaced))
            }
        }
    }

    /// What exists already; interactive: reuse an existing database, or choose another name.
    async fn reuse_or_rename(
        &self,
        admin: &mut Admin,
        mut db: String,
        role: &str,
    ) -> CliResult<(String, Existing)> {
        let limits = self.s.limits;
        let mut existing = {
            let _spinner = self
                .printer
                .spinner("Looking for an existing database and user");
            existing_objects(&mut admin.conn, &db, role, limits).await?
        };
        let Some(p) = self.prompter else {
            return Ok((db, existing));
        };
        while let Some(owner) = &existing.database_owner
            && admin.created_database.as_deref() != Some(db.as_str())
        {
            let choice = p
                .select(
                    &format!("Database \"{db}\" already exists (owner \"{owner}\")"),
                    vec![
                        "Reuse it (nothing is dropped)".into(),
                        "Choose another name".into(),
                    ],
                    0,
                )
                .await?;
            if choice == 0 {
                break;
            }
            db = p.input("Database name", None, validate_db).await?;
            existing = existing_objects(&mut admin.conn, &db, role, limits).await?;
        }
        Ok((db, existing))
    }

    /// The .env must be writable without clobbering a different value of any key it gets
    /// (`writes`: key, the lines that assign it something else): decided before any change,
    /// once for all of them, since they are written together. Every assignment counts, not only
    /// the one the app gets: a key assigned twice is rewritten on both lines, so a line that
    /// dotenvy would read (it keeps the first) is not replaced unasked.
    async fn env_conflict(&self, writes: &[(String, Vec<usize>)]) -> CliResult<OnConflict> {
        let differing: Vec<String> = writes
            .iter()
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(key, lines)| {
                let numbers: Vec<String> = lines.iter().map(usize::to_string).collect();
                let s = if lines.len() > 1 { "s" } else { "" };
                format!("{key} (line{s} {})", numbers.join(", "))
            })
            .collect();
        if differing.is_empty() {
            return Ok(OnConflict::Fail);
        }
        let (file, keys) = (self.s.env_file.display(), differing.join(" and "));
        if self.s.force {
            return Ok(OnConflict::ReplaceKeepingOldAsComment);
        }
        let (them, value) = if differing.len() > 1 {
            ("them", "different values")
        } else {
            ("it", "a different value")
        };
        let Some(p) = self.prompter else {
            return Err(CliError::failure(format!("{file} already sets {keys} to {value}"))
                .before_any_change()
                .with_hint(format!("pass --force to replace {them} (the old line is kept as a comment), or --env-key / --driver-url with another key")));
        };
        let question = format!(
            "{file} already sets {keys}; replace {them} (the old line is kept as a comment)?"
        );
        if p.confirm(&question, true).await? {
            return Ok(OnConflict::ReplaceKeepingOldAsComment);
        }
        Err(CliError::failure("setup cancelled")
            .before_any_change()
            .with_hint("pass --env-key OTHER_KEY to write another variable, or --env-file PATH"))
    }

    /// Interactive only: for each driver the project uses (`drivers::detect`) that the
    /// written URL cannot serve and that has a form of its own, offer to write that form under
    /// a key of its own (what `--driver-url` does).
    async fn offered_driver_keys(
        &self,
        written: &WrittenUrl,
        given: &[DriverKey],
    ) -> CliResult<Vec<DriverKey>> {
        let Some(p) = self.prompter else {
            return Ok(Vec::new());
        };
        let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
        let used = drivers::detect(&dir);
        let mut offered: Vec<DriverKey> = Vec::new();
        for exception in &written.exceptions {
            let driver = exception.driver;
            let taken = given.iter().chain(&offered).any(|d| d.driver == driver);
            if taken || !used.contains(&driver) || forms::not_writable(driver).is_some() {
                continue;
            }
            let question = format!(
                "{} cannot use {} as it is ({}); also write its own form to {}?",
                driver.name(),
                self.s.env_key,
                exception.reason,
                self.s.env_file.display()
            );
            if !p.confirm(&question, true).await? {
                continue;
            }
            let label = format!("Variable for the {} URL", driver.name());
            let key = loop {
                let key = p
                    .input(
                        &label,
                        Some(forms::default_key(driver).to_owned()),
                        validate_driver_key,
                    )
                    .await?;
                let clash =
                    key == self.s.env_key || given.iter().chain(&offered).any(|d| d.key == key);
                if !clash {
                    break key;
                }
                self.printer.warn(&format!(
                    "`{key}` is written already: choose another variable"
                ));
            };
            offered.push(DriverKey { driver, key });
        }
        Ok(offered)
    }
}

/// A key for a driver's form: a valid name that doctor and libpq read as nothing else.
fn validate_driver_key(key: &str) -> Result<(), String> {
    crate::envfile::validate_key(key).map_err(|e| e.to_string())?;
    forms::refused_key(key).map_or(Ok(()), Err)
}

/// Refuse before touching anything when the admin lacks a privilege the plan needs.
fn refuse_missing_rights(steps: &[Step], rights: AdminRights, admin: &Admin) -> CliResult<()> {
    let admin_role = admin.cfg.user.as_str();
    let missing = provision::missing_rights(steps, rights, admin_role);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<_> = missing.iter().map(|(n, _)| n.as_str()).collect();
    let grants: Vec<_> = missing.iter().map(|(_, g)| g.as_str()).collect();
    let creates_database = steps
        .iter()
        .any(|s| matches!(s, Step::CreateDatabase { .. }));
    let grants = grants.join(" ");
    Err(CliError::failure(format!(
        "the admin role \"{admin_role}\" lacks the {} privilege{} needed to create {}",
        names.join(" and "),
        if names.len() > 1 { "s" } else { "" },
        if creates_database {
            "the database"
        } else {
            "the user"
        }
    ))
    .before_any_change()
    .with_code(Code::PermissionDenied)
    .with_hint(match grant_as_socket_owner(admin, &grants) {
        Some(line) => {
            format!("{line}, or as a superuser `{grants}`; or pass --admin-url with a superuser")
        }
        None => format!("as a superuser run `{grants}`, or pass --admin-url with a superuser"),
    }))
}

/// The grants as psql run by the server's OS user, when the admin came in over a socket with no
/// password (peer, as an ordinary user on Debian's cluster): the way such a machine gives a
/// role rights, where "as a superuser" names a session the user does not have.
fn grant_as_socket_owner(admin: &Admin, grants: &str) -> Option<crate::peer::SocketOwnerLine> {
    let Host::Socket(dir) = &admin.endpoint.host else {
        return None;
    };
    if admin.cfg.password.is_some() {
        return None;
    }
    crate::peer::as_socket_owner(dir, admin.endpoint.port, "psql", &["-c", grants])
}

fn validate_db(s: &str) -> Result<(), String> {
    provision::validate_name(NameKind::Database, s).map_err(|e| format!("{e}; {}", e.hint()))
}

fn validate_role(s: &str) -> Result<(), String> {
    provision::validate_name(NameKind::Role, s).map_err(|e| format!("{e}; {}", e.hint()))
}

pub fn app_conn_string(
    ep: &Endpoint,
    role: &str,
    password: &str,
    db: &str,
    sslmode: Option<SslMode>,
) -> ConnString {
    let host = match &ep.host {
        Host::Tcp(h) => h.clone(),
        Host::Socket(dir) => dir.display().to_string(),
    };
    ConnString {
        format: Format::Uri,
        hosts: vec![HostSpec {
            host: Some(host),
            port: Some(ep.port),
        }],
        user: Some(role.to_string()),
        password: Some(Password::new(password.to_string())),
        dbname: Some(db.to_string()),
        sslmode,
        connect_timeout: None,
        application_name: None,
        sslrootcert: None,
        options: None,
        unknown: Vec::new(),
    }
}

pub async fn app_endpoint(admin: &Admin) -> Endpoint {
    let Host::Socket(_) = &admin.endpoint.host else {
        return admin.endpoint.clone();
    };
    let port = admin.endpoint.port;
    let tcp = admin.answered.iter().find(|(ep, _)| {
        matches!(&ep.host, Host::Tcp(h) if h == "localhost" || h == "127.0.0.1") && ep.port == port
    });
    if let Some((ep, _)) = tcp {
        return ep.clone();
    }
    // Discovery may have asked before the server listened on TCP (one just started): ask again.
    let localhost = Endpoint {
        host: Host::Tcp("localhost".into()),
        port,
    };
    match crate::probe::probe(&localhost, std::time::Duration::from_secs(2)).await {
        crate::probe::Answer::Postgres { .. } => localhost,
        _ => admin.endpoint.clone(),
    }
}
