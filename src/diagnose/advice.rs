//! Advice about this machine's PostgreSQL: how to install it, and the command that starts the
//! server that should be listening on a port (for the hint after a refused connection).

/// The seed page's installation advice for this OS.
pub fn install_advice() -> String {
    if cfg!(target_os = "macos") {
        "Install and start PostgreSQL: download Postgres.app from postgresapp.com, or `brew install postgresql@15 && brew services start postgresql@15`; or with Docker: `docker run -d --name aksara-postgres -e POSTGRES_PASSWORD=... -p 5432:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15`".into()
    } else if cfg!(target_os = "windows") {
        "Install PostgreSQL from postgresql.org (the installer asks for the postgres user's password), or use the Linux instructions inside WSL2".into()
    } else {
        let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let like = os
            .lines()
            .filter(|l| l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            .collect::<Vec<_>>()
            .join(" ");
        let install = if like.contains("fedora") || like.contains("rhel") {
            "`sudo dnf install postgresql-server && sudo postgresql-setup --initdb && sudo systemctl start postgresql`"
        } else if like.contains("debian") || like.contains("ubuntu") {
            "`sudo apt-get install -y postgresql` (starts a server on port 5432), or start an installed one: `sudo systemctl start postgresql`"
        } else {
            "install the postgresql server package of your distribution and start it"
        };
        format!(
            "Install and start PostgreSQL: {install}; or with Docker: `docker run -d --name aksara-postgres -e POSTGRES_PASSWORD=... -p 5432:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15`"
        )
    }
}

/// The command that starts the server configured for `port` on this machine, for the hint
/// after a refused connection: an installed cluster's own command, as this machine runs it
/// (`pg_ctlcluster 15 main start`, `sudo` only when not root and sudo exists, `systemctl`
/// only where systemd runs; src/clusters.rs), else Homebrew's service on macOS.
pub fn start_command(port: u16) -> Option<String> {
    let all = crate::clusters::configured();
    if let Some(cluster) = crate::clusters::configured_for(&all, port).first() {
        return Some(if cluster.start.needs_root {
            format!("{} (as root)", cluster.start)
        } else {
            cluster.start.to_string()
        });
    }
    if cfg!(target_os = "macos") {
        // Homebrew's service; Postgres.app users press Start in the app instead.
        return Some("brew services start postgresql@15".to_string());
    }
    None
}
