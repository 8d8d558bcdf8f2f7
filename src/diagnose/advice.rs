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
        let install = linux_install(&like, &crate::clusters::Machine::detect());
        format!(
            "Install and start PostgreSQL: {install}; or with Docker: `docker run -d --name aksara-postgres -e POSTGRES_PASSWORD=... -p 5432:5432 -v aksara_pgdata:/var/lib/postgresql/data postgres:15`"
        )
    }
}

/// The install line for this distribution, as this machine runs it: `sudo` only when not root
/// and sudo exists, `systemctl` only where systemd is the running init.
fn linux_install(like: &str, machine: &crate::clusters::Machine) -> String {
    let sudo = if !machine.root && machine.sudo {
        "sudo "
    } else {
        ""
    };
    if like.contains("fedora") || like.contains("rhel") {
        let start = if machine.systemd {
            format!(" && {sudo}systemctl start postgresql")
        } else {
            " && start it with pg_ctl as the postgres user".to_string()
        };
        format!("`{sudo}dnf install postgresql-server && {sudo}postgresql-setup --initdb{start}`")
    } else if like.contains("debian") || like.contains("ubuntu") {
        let start = if machine.systemd {
            format!("`{sudo}systemctl start postgresql`")
        } else {
            format!("`{sudo}pg_ctlcluster VERSION main start` (`pg_lsclusters` lists them)")
        };
        format!(
            "`{sudo}apt-get install -y postgresql` (creates and starts a server on port 5432), or start an installed one: {start}"
        )
    } else {
        "install the postgresql server package of your distribution and start it".to_string()
    }
}

/// The command that starts the server configured for `port` on this machine, for the hint
/// after a refused connection: an installed cluster's own command, as this machine runs it
/// (`pg_ctlcluster 15 main start`, `sudo` only when not root and sudo exists, `systemctl`
/// only where systemd runs; src/clusters.rs), else Homebrew's service on macOS.
pub fn start_command(port: u16) -> Option<super::Start> {
    use super::{Start, StartedServer};
    let all = crate::clusters::configured();
    if let Some(cluster) = crate::clusters::configured_for(&all, port).first() {
        let command = if cluster.start.needs_root {
            format!("{} (as root)", cluster.start)
        } else {
            cluster.start.to_string()
        };
        return Some(
            Start::new(command, StartedServer::ConfiguredCluster)
                .with_cluster_files(cluster.config_file.clone(), cluster.socket_dir.clone())
                .with_pid_file(cluster.pid_file.clone()),
        );
    }
    if cfg!(target_os = "macos") {
        // Homebrew's service; Postgres.app users press Start in the app instead.
        return Some(Start::new(
            "brew services start postgresql@15",
            StartedServer::Service,
        ));
    }
    None
}

#[cfg(test)]
mod install_tests {
    use super::linux_install;
    use crate::clusters::Machine;

    #[test]
    fn root_without_systemd_gets_no_sudo_and_pg_ctlcluster() {
        let root = Machine {
            root: true,
            sudo: true,
            systemd: false,
        };
        let line = linux_install("ID=debian", &root);
        assert!(!line.contains("sudo"), "{line}");
        assert!(!line.contains("systemctl"), "{line}");
        assert!(line.contains("`apt-get install -y postgresql`"), "{line}");
        assert!(
            line.contains("`pg_ctlcluster VERSION main start`"),
            "{line}"
        );
    }

    #[test]
    fn a_user_with_sudo_on_systemd_gets_sudo_systemctl() {
        let user = Machine {
            root: false,
            sudo: true,
            systemd: true,
        };
        let line = linux_install("ID=ubuntu ID_LIKE=debian", &user);
        assert!(
            line.contains("`sudo apt-get install -y postgresql`"),
            "{line}"
        );
        assert!(line.contains("`sudo systemctl start postgresql`"), "{line}");
        let no_sudo = Machine {
            sudo: false,
            ..user
        };
        assert!(!linux_install("ID=fedora", &no_sudo).contains("sudo "));
    }
}
